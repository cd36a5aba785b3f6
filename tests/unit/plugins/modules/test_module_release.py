from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import pytest

from ansible_collections.deckhouse.platform.plugins.module_utils import dkp_releases
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import DkpError
from ansible_collections.deckhouse.platform.plugins.modules import module_release_info as info

BASE = dict(name=None, module=None, version=None, release=None, action="approve")


def params(**kw):
    return dict(BASE, **kw)


@pytest.mark.parametrize("ok", [dict(name="console-v1.2.3"), dict(module="console", version="v1.2.3"),
                                dict(module="console", version="1.2.3"), dict(module="console", release="pending"),
                                dict(module="console", action="reinstall")])
def test_valid_selections(ok):
    dkp_releases.validate_release_action(params(**ok))


@pytest.mark.parametrize("bad, fragment", [
    (dict(), "set name"),
    (dict(name="console-v1.2.3", module="console"), "name selects the release on its own"),
    (dict(name="Console_v1"), "not a valid ModuleRelease name"),
    (dict(module="console"), "set version"),
    (dict(module="console", version="1.2.3", release="pending"), "use one of them"),
    (dict(module="console", version="latest"), "not a semantic version"),
    (dict(module="Console", release="pending"), "not a valid module name"),
])
def test_bad_selections_fail_before_any_request(bad, fragment):
    with pytest.raises(DkpError, match=fragment):
        dkp_releases.validate_release_action(params(**bad))


def test_reinstall_with_only_a_module_means_the_deployed_release():
    assert dkp_releases.release_selection(params(module="console", action="reinstall")) == (None, "console", None, "deployed")
    assert dkp_releases.release_selection(params(module="console", release="pending")) == (None, "console", None, "pending")


def test_final_phase_or_deletion_fails_the_wait():
    assert "deleted" in dkp_releases.release_final(None)
    assert dkp_releases.release_final({"metadata": {"name": "a-v1.0.0"}, "status": {"phase": "Pending"}}) is None
    message = dkp_releases.release_final({"metadata": {"name": "a-v1.0.0"},
                                          "status": {"phase": "Skipped", "message": "skipped by update constraints"}})
    assert message == "ModuleRelease a-v1.0.0 became Skipped: skipped by update constraints"


@pytest.mark.parametrize("bad, fragment", [
    (dict(name="console-v1.2.3", module="console"), "name selects one release on its own"),
    (dict(version="1.2.3"), "set module too"),
    (dict(module="console", version="next"), "not a semantic version"),
    (dict(module="console", wait_for="deployed"), "wait_for waits on one release"),
    (dict(module="Console"), "not a valid module name"),
])
def test_info_bad_input_fails_before_any_request(bad, fragment):
    with pytest.raises(DkpError, match=fragment):
        dkp_releases.validate_release_query(dict(dict(name=None, module=None, version=None, wait_for=None), **bad))


class FakeClient:
    """A ModuleRelease list with label selectors."""

    def __init__(self, releases):
        self._releases = releases

    def list(self, kind, label_selector=None, **_kw):
        items = [r for r in self._releases
                 if not label_selector or r["metadata"]["labels"]["module"] == label_selector.split("=")[1]]
        return items, "1"


def reader(params, releases):
    """The module_release_info reader without AnsibleModule: its params and a fake client."""
    module = info.ModuleReleaseInfo.__new__(info.ModuleReleaseInfo)
    module.params = dict(dict(name=None, module=None, version=None, phase=None, wait_for=None, query=None), **params)
    module._client = FakeClient(releases)
    module.result = {}
    return module


def rel(module, version, phase):
    return {"metadata": {"name": "%s-v%s" % (module, version), "labels": {"module": module}},
            "spec": {"moduleName": module, "version": version}, "status": {"phase": phase}}


def test_info_filters_by_phase_but_reports_module_state_from_all_releases():
    releases = [rel("a", "1.10.0", "Pending"), rel("a", "1.9.0", "Deployed"), rel("b", "0.1.0", "Deployed"),
                rel("a", "1.2.0", "Superseded")]
    out = reader({"module": None, "phase": ["Pending", "Superseded"]}, releases).execute()
    assert [r["name"] for r in out["releases"]] == ["a-v1.2.0", "a-v1.10.0"]
    assert out["modules"]["a"]["deployed"]["version"] == "1.9.0"
    assert out["modules"]["b"]["pending"] == []
    only_b = reader({"module": "b", "phase": None}, releases).execute()
    assert [r["name"] for r in only_b["releases"]] == ["b-v0.1.0"] and list(only_b["modules"]) == ["b"]
