"""preflight: the node and transition verdicts (pure)."""
from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

from ansible_collections.deckhouse.platform.plugins.module_utils import dkp_gates as gates
from ansible_collections.deckhouse.platform.plugins.modules import registry_switch_preflight as pf
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_registry import parse_state


def node(name, ready=True, unschedulable=False, message=None):
    cond = {"type": "Ready", "status": "True" if ready else "False"}
    if message:
        cond.update(reason="KubeletNotReady", message=message)
    return {"metadata": {"name": name}, "spec": {"unschedulable": unschedulable} if unschedulable else {},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, cond]}}


def test_all_masters_ready():
    out = gates.evaluate_nodes([node("master-1"), node("master-0")], "node-role.kubernetes.io/control-plane")
    assert out["passed"] and "master-0, master-1" in out["message"]


def test_cordoned_and_not_ready_masters_are_named():
    out = gates.evaluate_nodes([node("master-0"), node("master-1", unschedulable=True),
                                node("master-2", ready=False, message="container runtime is down")], "x")
    assert not out["passed"]
    assert "master-1 is cordoned (SchedulingDisabled)" in out["message"]
    assert "master-2 is NotReady: container runtime is down" in out["message"]
    assert "master-0" not in out["message"]


def test_no_masters():
    assert not gates.evaluate_nodes([], None)["passed"]


def state(mode=None, target=None, conditions=()):
    if mode is None:
        return parse_state(None)
    import base64
    import yaml

    def b(x):
        return base64.b64encode(x.encode()).decode()
    conds = [{"type": t, "status": s, "reason": "", "message": m} for t, s, m in conditions]
    return parse_state({"data": {"mode": b(mode), "target_mode": b(target), "hash": b("h"),
                                 "conditions": b(yaml.safe_dump(conds))}})


def test_transition_supported_from_live_settings_without_state():
    out = pf.evaluate_transition(state(), {}, "Direct")
    assert out["passed"] and out["details"]["current_mode"] == "Unmanaged" and out["details"]["hops"] == ["Direct"]


def test_proxy_to_local_refused_and_via_direct_accepted():
    s = state("Proxy", "Proxy", [("Ready", "True", "")])
    refused = pf.evaluate_transition(s, {"mode": "Proxy"}, "Local")
    assert not refused["passed"] and "mode transition from Proxy to Local not supported" in refused["message"]
    ok = pf.evaluate_transition(s, {"mode": "Proxy"}, "Local", via="Direct")
    assert ok["passed"] and ok["details"]["hops"] == ["Direct", "Local"]


def test_other_switch_in_progress_refused_same_target_resumes():
    s = state("Direct", "Proxy", [("NodeServicesReady", "False", "waiting")])
    other = pf.evaluate_transition(s, {"mode": "Proxy"}, "Direct")
    assert not other["passed"] and "another registry switch is in progress" in other["message"]
    same = pf.evaluate_transition(s, {"mode": "Proxy"}, "Proxy")
    assert same["passed"] and same["details"]["resuming"]
    hop = pf.evaluate_transition(state("Proxy", "Direct", [("Ready", "False", "")]), {"mode": "Direct"}, "Local", via="Direct")
    assert hop["passed"] and hop["details"]["resuming"] and hop["details"]["hops"] == ["Direct", "Local"]


def test_refused_switch_is_not_in_progress():
    s = state("Proxy", "Local", [("ErrTransitionNotSupported", "True", "mode transition from Proxy to Local not supported")])
    back = pf.evaluate_transition(s, {"mode": "Local"}, "Direct")
    assert back["passed"]


PARAMS = dict(target_mode=None, via=None, target_configurable=None, images_repo=None, scheme=None, license=None,
              username=None, password=None, ca=None, image_check_mode=None, ttl=None, dry_run=False,
              confirm_restart=False)


def mc(registry):
    return {"metadata": {"name": "deckhouse", "resourceVersion": "1"},
            "spec": {"version": 1, "settings": {"registry": registry}}}


def plan(current_registry, st, **kw):
    params = dict(PARAMS, **kw)
    checks = {"registry_transition": None}
    out, blockers = pf.plan_switch(None, params, mc(current_registry), st, checks)
    return out, blockers, checks


def test_plan_one_hop_with_restart_gate():
    out, blockers, checks = plan({"mode": "Unmanaged"}, state("Unmanaged", "Unmanaged", [("Ready", "True", "")]),
                                 target_mode="Direct", images_repo="a.b/c", license="L")
    assert [h["mode"] for h in out["hops"]] == ["Direct"] and out["hops"][0]["params"]
    assert out["restart_gate"] == {"needed": True, "confirmed": False, "reason": out["restart"]["reason"]}
    assert len(blockers) == 1 and blockers[0].startswith("confirm_restart: ")
    assert checks["registry_transition"]["passed"] and not out["noop"] and out["plan"]["changed"]
    out, blockers, _checks = plan({"mode": "Unmanaged"}, state("Unmanaged", "Unmanaged", [("Ready", "True", "")]),
                                  target_mode="Direct", images_repo="a.b/c", license="L", confirm_restart=True)
    assert blockers == [] and out["restart_gate"]["confirmed"]


def test_plan_two_hops_and_refusal_reason():
    st = state("Proxy", "Proxy", [("Ready", "True", "")])
    proxy = {"mode": "Proxy", "proxy": {"imagesRepo": "a.b/c", "license": "L"}}
    out, blockers, checks = plan(proxy, st, target_mode="Local")
    assert not checks["registry_transition"]["passed"] and "VAP" in checks["registry_transition"]["message"]
    assert out["hops"] == []
    out, blockers, checks = plan(proxy, st, target_mode="Local", via="Direct")
    assert [h["mode"] for h in out["hops"]] == ["Direct", "Local"] and out["hops"][0]["from_current"]
    assert blockers == []


def test_plan_noop_and_parameter_errors():
    direct = {"mode": "Direct", "direct": {"imagesRepo": "a.b/c", "license": "L"}}
    out, blockers, _checks = plan(direct, state("Direct", "Direct", [("Ready", "True", "")]),
                                  target_mode="Direct", images_repo="a.b/c", license="L")
    assert out["noop"] and blockers == [] and not out["restart_gate"]["needed"]
    out, blockers, _checks = plan(direct, state("Direct", "Direct", [("Ready", "True", "")]),
                                  target_mode="Proxy", images_repo="a.b/c", license="L", ttl="1m")
    assert any(b.startswith("parameters (Proxy):") and "5 minutes" in b for b in blockers)
    out, blockers, _checks = plan(direct, state("Direct", "Direct", [("Ready", "True", "")]),
                                  target_mode="Proxy", images_repo="a.b/c")
    assert any("from_current: true" in b for b in blockers) and all("L" != b for b in blockers)
