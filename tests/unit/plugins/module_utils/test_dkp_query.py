# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The `query` option: dkp_query for reader modules and the lookup base (with a fake client)."""

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import pytest

from ansible.errors import AnsibleLookupError

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import DkpError
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_query import apply_query, compile_query
from ansible_collections.deckhouse.platform.plugins.plugin_utils import dkp_lookup
from ansible_collections.deckhouse.platform.plugins.lookup import module as module_lookup
from ansible_collections.deckhouse.platform.plugins.lookup import module_config as mc_lookup

MODULES = [{"name": "a", "enabled": True, "ready": False}, {"name": "b", "enabled": True, "ready": True},
           {"name": "c", "enabled": False, "ready": False}]


def test_apply_query():
    assert apply_query(MODULES, "[?enabled && !ready].name") == ["a"]
    assert apply_query(MODULES, None) is MODULES
    assert apply_query(MODULES, compile_query("length(@)")) == 3
    with pytest.raises(DkpError, match="not a valid JMESPath expression"):
        compile_query("[?")
    with pytest.raises(DkpError, match="must be a JMESPath expression string"):
        compile_query(["x"])


def obj(kind, name, **extra):
    o = {"apiVersion": "deckhouse.io/v1alpha1", "kind": kind, "metadata": {"name": name}}
    o.update(extra)
    return o


class FakeClient:
    created = 0

    def __init__(self, params):
        FakeClient.created += 1
        self.objects = {
            "Module": [obj("Module", "x", properties={}, status={"phase": "Ready", "conditions": [
                {"type": "EnabledByModuleManager", "status": "True"}, {"type": "IsReady", "status": "True"}]}),
                obj("Module", "y", properties={}, status={"phase": "Downloaded", "conditions": []})],
            "ModuleConfig": [obj("ModuleConfig", "x", spec={
                "enabled": True, "version": 1, "settings": {"mode": "m", "licenseKey": "L-1234"}})],
        }

    def get(self, kind, name, namespace=None):
        return next((o for o in self.objects[kind] if o["metadata"]["name"] == name), None)

    def list(self, kind, **kw):
        return list(self.objects[kind]), "1"


def make(cls):
    """A lookup whose options come from its DOCUMENTATION defaults plus run()'s keywords (no plugin loader)."""
    import yaml
    from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import CONNECTION_ARG_SPEC

    doc = yaml.safe_load(__import__(cls.__module__, fromlist=["DOCUMENTATION"]).DOCUMENTATION)
    opts = {k: v.get("default") for k, v in doc["options"].items() if k != "_terms"}
    opts.update({k: None for k in CONNECTION_ARG_SPEC})
    opts["query"] = None
    base = dict(opts)
    lk = cls()

    def set_options(var_options=None, direct=None):
        opts.clear()
        opts.update(base, **(direct or {}))
    lk.set_options = set_options
    lk.get_option = lambda name, hostvars=None: opts[name]
    lk.has_option = lambda name: name in opts
    return lk


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(dkp_lookup, "DkpClient", FakeClient)
    FakeClient.created = 0


def test_lookups_apply_the_query_per_term_and_without_terms(fake):
    lk = make(module_lookup.LookupModule)
    assert lk.run(["x", "nope"], {}, query="phase", default="none") == ["Ready", "none"]
    assert lk.run([], {}, query="[?enabled && ready].name") == [["x"]]
    mc = make(mc_lookup.LookupModule)
    assert mc.run(["x"], {}, query="mode") == ["m"]
    assert mc.run(["x"], {}) == [{"mode": "m", "licenseKey": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"}]
    assert mc.run([], {}, query="[?spec.enabled].name") == [["x"]]
    assert mc.run(["x"], {}, redact_keys=["mode"]) == [{"mode": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER",
                                                        "licenseKey": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"}]


def test_invalid_query_fails_before_any_request(fake):
    with pytest.raises(AnsibleLookupError, match="not a valid JMESPath expression"):
        make(module_lookup.LookupModule).run(["x"], {}, query="[?")
    assert FakeClient.created == 0
