# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Module/ModuleConfig kind rules: evidence, targets, failure rules, refusals, redaction, and the wait flow
(with the engine replaced by a recorder, so each call's predicate/fresh/failure rules are checked)."""

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import base64
import json

import pytest

from ansible_collections.deckhouse.platform.plugins.module_utils import dkp_modules as dm
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import NO_LOG_MARKER, DkpError
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_resource import EnsureResult
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_wait import WaitTimeout


def cond(ctype, status, reason="", message="", t="2026-12-01T10:00:00Z"):
    return {"type": ctype, "status": status, "reason": reason, "message": message, "lastTransitionTime": t}


def module(phase="Ready", mc="True", mm="True", ready="True", ready_reason="", ready_msg="", t="2026-12-01T10:00:00Z",
           critical=None, confirmation=None, overridden=None):
    conds = [cond("EnabledByModuleConfig", mc, t=t), cond("EnabledByModuleManager", mm, t=t),
             cond("IsReady", ready, ready_reason, ready_msg, t=t)]
    if overridden:
        conds.append(cond("IsOverridden", overridden))
    props = {"source": "Embedded"}
    if critical:
        props["critical"] = True
    if confirmation:
        props["disableOptions"] = {"confirmation": True, "message": confirmation}
    return {"metadata": {"name": "m"}, "properties": props, "status": {"phase": phase, "conditions": conds}}


def mc_obj(spec, message=""):
    return {"metadata": {"name": "m", "resourceVersion": "1"}, "spec": spec, "status": {"version": "1", "message": message}}


# -- evidence ------------------------------------------------------------------------------------------

def test_same_status_is_no_evidence_and_any_transition_is():
    before = module()
    assert dm.change_evidence(before, module()) is None
    assert "EnabledByModuleConfig" in dm.change_evidence(module(mc="False"), module())
    same_time = before["status"]["conditions"][0]["lastTransitionTime"]
    assert "phase" in dm.change_evidence(before, module(phase="Reconciling", ready="False", t=same_time))
    # a new transition time of IsReady alone counts (Ready -> Reconciling -> Ready between two reads)
    later = module()
    later["status"]["conditions"][2]["lastTransitionTime"] = "2026-12-01T10:05:00Z"
    assert dm.change_evidence(before, later)
    assert dm.change_evidence(None, module()) == "the Module appeared"
    assert dm.change_evidence(module(), None) == "the Module disappeared"


@pytest.mark.parametrize("before,target,live,new,expected", [
    (module(mc="False"), "enabled", {}, {"enabled": True}, True),              # omitted -> true flips EnabledByMC
    (module(), "enabled", {"enabled": True}, {"enabled": True}, False),        # settings only
    (module(mc="False"), "disabled", {}, {"enabled": False}, True),            # bundle-enabled module switched off
    (module(mc="False", mm="False", ready="False", phase="Downloaded"), "disabled", {}, {"enabled": False}, False),
    (module(mc="False", mm="False", ready="False", phase="Downloaded"), "enabled", {}, {"enabled": True}, True),
    (None, "enabled", {}, {}, False),
])
def test_expects_evidence(before, target, live, new, expected):
    assert dm.expects_evidence(before, target, live, new) is expected


# -- targets and failure rules -----------------------------------------------------------------------

def test_targets():
    assert dm.target_reached("enabled", module())
    assert not dm.target_reached("enabled", module(phase="Reconciling", ready="False"))
    assert not dm.target_reached("enabled", None)
    off = module(phase="Downloaded", mc="False", mm="False", ready="False")
    assert dm.target_reached("disabled", off) and dm.target_reached("disabled", None)
    assert not dm.target_reached("disabled", module())
    # bundle: released DKP gives EnabledByModuleConfig=False for an omitted `enabled`: Ready is enough
    assert dm.target_reached("bundle", module(mc="False"))
    assert not dm.target_reached("bundle", module(mc="False", phase="Reconciling", ready="False"))
    assert dm.target_reached("bundle", off)
    assert dm.config_wait_target(None, {"enabled": True}) == "enabled"
    assert dm.config_wait_target(None, {}) == "bundle"
    assert dm.config_wait_target(False, {"enabled": True}) == "disabled"


def test_stuck_and_transient_rules():
    conflict = module(phase="Conflict", ready="False")
    conflict["properties"]["availableSources"] = ["a", "b"]
    assert "set `source` to one of a, b" in dm.stuck_failure("m", conflict)
    assert dm.stuck_failure("m", module(phase="Unavailable", ready="False"))
    assert dm.stuck_failure("m", module(phase="Error", ready="False", ready_reason="HookError")) is None
    hook = module(phase="Error", ready="False", ready_reason="HookError", ready_msg="hook main.py failed: boom")
    msg = dm.transient_failure("m", hook)
    assert "HookError: hook main.py failed: boom" in msg
    assert dm.module_summary(hook)["hook_error"] == "HookError: hook main.py failed: boom"
    assert dm.transient_failure("m", module()) is None
    assert dm.transient_failure("m", module(phase="DownloadingError", ready="False"))


def test_info_predicates():
    assert dm.info_predicate("ready")(module())
    assert dm.info_predicate("absent")(None) and not dm.info_predicate("absent")(module())
    assert dm.info_predicate("overridden")(module(overridden="True"))
    assert dm.info_predicate("Reconciling")(module(phase="Reconciling"))
    assert dm.info_predicate("disabled")(module(phase="Downloaded", mm="False", ready="False"))
    with pytest.raises(DkpError, match="wait_for must be one of"):
        dm.info_predicate("green")


def test_info_predicates_honour_the_filters():
    src = module(overridden="True")
    src["properties"].update(source="example", version="v1.2.3")
    plain = module()
    plain["properties"].update(source="example", version="v1.2.0")
    # Ready on a source / without an override / on a version
    assert dm.info_predicate("ready", {"source": "example"})(src)
    assert not dm.info_predicate("ready", {"source": "deckhouse"})(src)
    assert not dm.info_predicate("ready", {"overridden": False})(src)
    assert dm.info_predicate("ready", {"overridden": False})(plain)
    assert dm.info_predicate("ready", {"overridden": True})(src)
    assert dm.info_predicate("ready", {"version": "1.2.3"})(src) and dm.info_predicate("ready", {"version": "v1.2.3"})(src)
    assert not dm.info_predicate("ready", {"version": "1.2.3"})(plain)
    assert not dm.info_predicate("ready", {"enabled": False})(plain)
    # the state itself still has to hold; None filters mean any
    assert not dm.info_predicate("ready", {"source": "example"})(module(phase="Reconciling", ready="False"))
    assert dm.info_predicate("ready", {"source": None, "version": None, "overridden": None})(module())
    # absent ignores the filters
    assert dm.info_predicate("absent", {"source": "example"})(None)
    assert not dm.info_predicate("overridden", {"source": "x"})(src)


def test_summary_matches_and_same_version():
    s = dm.module_summary(module())
    assert dm.summary_matches(s, None) and dm.summary_matches(s, {"phase": ["Ready", "Error"]})
    assert not dm.summary_matches(s, {"phase": ["Error"]})
    assert not dm.summary_matches(s, {"version": "1.0.0"}), "a Module without a version matches no version"
    assert dm.same_version("v1.2.3", "1.2.3") and not dm.same_version(None, "1.2.3")


# -- refusals ---------------------------------------------------------------------------------------

def test_critical_and_confirmed_modules_need_allow_disabling():
    live = mc_obj({"enabled": True})
    msg = dm.disabling_refusal("deckhouse", module(critical=True), live, "present", False, False)
    assert "allow_disabling" in msg and "critical" in msg
    assert dm.disabling_refusal("deckhouse", module(critical=True), live, "present", False, True) is None
    msg = dm.disabling_refusal("registry", module(critical=True, confirmation="Disabling this module will stop"),
                               None, "present", False, False)
    assert "Disabling this module will stop" in msg
    assert "Deleting the ModuleConfig" in dm.disabling_refusal("deckhouse", module(critical=True), live, "absent",
                                                               None, False)
    assert "must be confirmed" in dm.disabling_refusal("console", module(confirmation="Sure?"), live, "present",
                                                       False, False)
    # not disabling: nothing to refuse
    assert dm.disabling_refusal("deckhouse", module(critical=True), live, "present", True, False) is None
    assert dm.disabling_refusal("deckhouse", module(critical=True), mc_obj({"enabled": False}), "present", False,
                                False) is None
    assert dm.disabling_refusal("x", module(), live, "present", False, False) is None


def test_request_size_refusal_names_413():
    assert dm.request_size_refusal("ModuleConfig", "m", {"spec": {"settings": {"a": "x" * 100}}}) is None
    msg = dm.request_size_refusal("ModuleConfig", "m", {"spec": {"settings": {"blob": "x" * int(3.6e6)}}})
    assert "request too large (413)" in msg


# -- secrets ----------------------------------------------------------------------------------------

def test_redaction_covers_nested_keys_lists_and_extra_keys():
    settings = {"licenseKey": "LIC-1234", "apiKeys": ["ak-one", "ak-two"], "sshPrivateKeys": ["-----BEGIN x"],
                "auth": {"basic": "dXNlcjpwYXNz"}, "deep": {"list": [{"passphrase": "pp-secret"}]},
                "custom": {"myField": "mf-secret"}, "plain": "visible", "n": 3}
    obj = dm.redact_config(mc_obj({"version": 1, "settings": settings}), ["myField"])
    out = obj["spec"]["settings"]
    assert out["licenseKey"] == NO_LOG_MARKER
    assert out["apiKeys"] == [NO_LOG_MARKER, NO_LOG_MARKER]
    assert out["sshPrivateKeys"] == [NO_LOG_MARKER]
    assert out["auth"]["basic"] == NO_LOG_MARKER
    assert out["deep"]["list"][0]["passphrase"] == NO_LOG_MARKER
    assert out["custom"]["myField"] == NO_LOG_MARKER
    assert out["plain"] == "visible" and out["n"] == 3
    values = set(dm.config_secret_values(settings, ["myField"]))
    for secret in ("LIC-1234", "ak-one", "ak-two", "pp-secret", "mf-secret", "dXNlcjpwYXNz"):
        assert secret in values and base64.b64encode(secret.encode()).decode() in values
    assert "visible" not in values
    assert "mf-secret" not in json.dumps(obj)


# -- the wait flow (engine replaced by a recorder) -----------------------------------------------------

class FakeClient:
    def __init__(self, module_obj=None, config=None):
        self.module_obj = module_obj
        self.config = config

    def get(self, kind, name, namespace=None):
        return self.module_obj if kind == "Module" else self.config


class Engine:
    """Stands in for dkp_wait.wait_for: records each call and answers from a script of states."""

    def __init__(self, states, timeout_on_settle=False):
        self.states = list(states)
        self.calls = []
        self.timeout_on_settle = timeout_on_settle

    def __call__(self, client, kind, name, predicate, timeout, **kw):
        self.calls.append(dict(kw, predicate=predicate, timeout=timeout))
        fresh = kw.get("fresh") or (lambda m: True)
        for state in self.states:
            if kw.get("tick") and kw["tick"]():
                raise DkpError(kw["tick"]())
            if fresh(state) and predicate(state):
                return state
        raise WaitTimeout("Timed out after %ss" % timeout, last_state="x")


def run_wait(monkeypatch, before, states, res, target="enabled", config=None):
    engine = Engine(states)
    client = FakeClient(states[-1] if states else before, config or res.after)
    out = dm.wait_config_applied(client, "m", target, before, res, 60, 30, engine, WaitTimeout)
    return out, engine


def test_stale_ready_is_not_accepted_after_enabling(monkeypatch):
    before = module(mc="False")   # bundle-enabled, Ready, enabled omitted
    res = EnsureResult(True, mc_obj({}), mc_obj({"enabled": True}), "patch")
    out, engine = run_wait(monkeypatch, before, [before, module()], res)
    assert out["processed"] is True and out["ready"] is True
    assert "EnabledByModuleConfig" in out["evidence"]
    assert engine.calls[0]["fresh"](before) is False
    assert engine.calls[0]["transient"] and engine.calls[0]["grace"] == 30


def test_settings_change_without_evidence_is_not_claimed_ready(monkeypatch):
    before = module()
    res = EnsureResult(True, mc_obj({"enabled": True, "version": 1, "settings": {"a": 1}}),
                       mc_obj({"enabled": True, "version": 1, "settings": {"a": 2}}), "patch")
    out, engine = run_wait(monkeypatch, before, [before], res)
    assert out == {"module": dm.module_summary(before), "processed": False, "evidence": None, "ready": None}
    assert engine.calls[0]["timeout"] == dm.SETTLE_SECONDS


def test_settings_change_with_a_rerun_is_processed(monkeypatch):
    before = module()
    rerun = module(phase="Reconciling", ready="False", t="2026-12-01T10:05:00Z")
    done = module(t="2026-12-01T10:06:00Z")
    res = EnsureResult(True, mc_obj({"enabled": True}), mc_obj({"enabled": True, "settings": {"a": 2}}), "patch")
    out, engine = run_wait(monkeypatch, before, [before, rerun, done], res)
    assert out["processed"] is True and out["ready"] is True and len(engine.calls) == 2


def test_unchanged_task_judges_the_current_state(monkeypatch):
    before = module()
    res = EnsureResult(False, mc_obj({"enabled": True}), mc_obj({"enabled": True}), "none")
    out, engine = run_wait(monkeypatch, before, [before], res)
    assert out["processed"] is True and out["ready"] is True
    assert "fresh" not in engine.calls[0]


def test_new_config_error_fails_the_wait(monkeypatch):
    before = module(mc="False", mm="False", ready="False", phase="Downloaded")
    res = EnsureResult(True, mc_obj({}), mc_obj({"enabled": True}), "patch")
    with pytest.raises(DkpError, match="reports: Error: spec.settings are not valid"):
        run_wait(monkeypatch, before, [before], res,
                 config=mc_obj({"enabled": True}, message="Error: spec.settings are not valid (version 1)"))


def test_disable_wait_ignores_errors_on_the_way_down(monkeypatch):
    before = module()
    off = module(phase="Downloaded", mc="False", mm="False", ready="False", t="2026-12-01T10:05:00Z")
    res = EnsureResult(True, mc_obj({"enabled": True}), mc_obj({"enabled": False}), "patch")
    out, engine = run_wait(monkeypatch, before, [before, off], res, target="disabled")
    assert out["processed"] and out["ready"] is False
    assert engine.calls[0]["failure"] is None and engine.calls[0]["transient"] is None


def test_hook_error_left_unchanged_after_the_change_fails_after_grace():
    stuck = module(phase="Error", ready="False", ready_reason="HookError", ready_msg="hook x failed: old-boom")
    res = EnsureResult(True, mc_obj({"enabled": True}), mc_obj({"enabled": True, "settings": {"a": 2}}), "patch")
    now = [0.0]

    def clock():
        now[0] += 20.0
        return now[0]
    client = FakeClient(stuck, res.after)
    with pytest.raises(DkpError, match=r"old-boom, unchanged for \d+s after this change \(longer than the grace of 30s"):
        dm.wait_config_applied(client, "m", "enabled", stuck, res, 600, 30, Engine([stuck, stuck]), WaitTimeout,
                               clock=clock)


def test_ready_after_needs_a_fresh_is_ready():
    m = module(t="2026-12-01T10:00:05Z")
    assert dm.parse_time("2026-12-01T10:00:05Z") == dm.parse_time("2026-12-01T10:00:05.000+00:00")
    assert dm.parse_time("2026-12-01T12:00:05+02:00") == dm.parse_time("2026-12-01T10:00:05Z")
    assert dm.parse_time("yesterday") is None and dm.parse_time(None) is None
    assert dm.info_predicate("ready", {"ready_after": "2026-12-01T10:00:05Z"})(m), "the same second counts"
    assert dm.info_predicate("ready", {"ready_after": "2026-12-01T10:00:00Z"})(m)
    assert not dm.info_predicate("ready", {"ready_after": "2026-12-01T10:00:06Z"})(m), "a Ready from before"
    assert not dm.summary_matches(dm.module_summary(module(phase="Reconciling", ready="False")),
                                  {"ready_after": "2026-12-01T09:00:00Z"})
