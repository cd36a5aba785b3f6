"""Pure logic of registry switches: settings, transitions, registry-state, the switch tracker."""
from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import base64

import pytest
import yaml

from ansible_collections.deckhouse.platform.plugins.module_utils import dkp_registry as r
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import DkpError, NO_LOG_MARKER

SECRET_MARKER = "TOPSECRET-state-material"


def p(**kw):
    base = {name: None for name, _key in r.PARAM_KEYS}
    base.update(kw)
    return base


def b64(text):
    return base64.b64encode(text.encode()).decode()


def secret(mode="Direct", target="Direct", hash_="h1", conditions=(), state=SECRET_MARKER):
    conds = [dict(type=t, status=s, reason=rs, message=m, lastTransitionTime="2026-01-01T00:00:00Z",
                  observedGeneration=1) for t, s, rs, m in conditions]
    data = {"mode": b64(mode), "target_mode": b64(target), "hash": b64(hash_),
            "conditions": b64(yaml.safe_dump(conds)), "state": b64(state)}
    return {"metadata": {"name": "registry-state", "namespace": "d8-system"}, "data": data}


# -- settings ----------------------------------------------------------------------------------------

def test_build_settings_per_mode():
    assert r.build_settings("Direct", p(images_repo="reg.example.com/d8/ee", license="L")) == {
        "mode": "Direct", "direct": {"imagesRepo": "reg.example.com/d8/ee", "license": "L"}}
    assert r.build_settings("Local", p()) == {"mode": "Local"}
    assert r.build_settings("Unmanaged", p()) == {"mode": "Unmanaged"}
    assert r.build_settings("Unmanaged", p(images_repo="a.b/c"))["unmanaged"] == {"imagesRepo": "a.b/c"}
    proxy = r.build_settings("Proxy", p(images_repo="a.b/c", ttl="24h", check_mode="Relax", scheme="HTTP"))
    assert proxy == {"mode": "Proxy", "proxy": {"imagesRepo": "a.b/c", "ttl": "24h", "checkMode": "Relax", "scheme": "HTTP"}}


@pytest.mark.parametrize("mode,params,message", [
    ("Direct", p(), "registry.direct: 'imagesRepo' is required."),
    ("Proxy", p(license="x"), "registry.proxy: 'imagesRepo' is required."),
    ("Unmanaged", p(scheme="HTTP"), "registry.unmanaged: 'imagesRepo' is required."),
    ("Direct", p(images_repo="a.b/c", username="u"), "'password' is required when 'username' is provided."),
    ("Direct", p(images_repo="a.b/c", password="pw"), "'username' is required when 'password' is provided."),
    ("Direct", p(images_repo="a.b/c", license="L", username="u", password="pw"),
     "'license' and 'username'/'password' are mutually exclusive."),
    ("Proxy", p(images_repo="a.b/c", ttl="4m"), "registry.proxy: 'ttl' should be at least 5 minutes."),
    ("Proxy", p(images_repo="a.b/c", ttl="1d"), "registry.proxy.ttl"),
    ("Direct", p(images_repo="https://a.b/c"), "must not contain a scheme"),
    ("Direct", p(images_repo="a.b/c d"), "should match"),
    ("Direct", p(images_repo="a.b/c", ttl="1h"), "ttl is a parameter of mode Proxy only"),
    ("Local", p(images_repo="a.b/c"), "mode Local has no registry parameters"),
    ("Direct", p(images_repo="a.b/c", ca="not a pem"), "PEM"),
])
def test_check_params_messages(mode, params, message):
    with pytest.raises(DkpError) as e:
        r.check_params(mode, params)
    assert message in e.value.msg


def test_check_params_lists_every_problem():
    with pytest.raises(DkpError) as e:
        r.check_params("Direct", p(images_repo="a.b/c", username="u", license="L"))
    assert "'password' is required" in e.value.msg and "mutually exclusive" in e.value.msg


@pytest.mark.parametrize("mode,params", [
    ("Direct", p(images_repo="registry.example.com:5000/deckhouse/ee", license="L")),
    ("Proxy", p(images_repo="a.b/c", ttl="5m", username="u", password="pw")),
    ("Proxy", p(images_repo="a.b/c", ttl="1h30m")),
    ("Unmanaged", p()),
    ("Unmanaged", p(images_repo="a.b/c", scheme="HTTP")),
    ("Local", p()),
])
def test_check_params_accepts_valid(mode, params):
    r.check_params(mode, params)


def test_validate_settings_section_rules():
    assert r.validate_settings({"mode": "Direct"}) == ["registry: when mode is 'Direct', 'direct' section must be specified."]
    errors = r.validate_settings({"mode": "Local", "proxy": {"imagesRepo": "a"}, "unmanaged": {"imagesRepo": "a"}})
    assert "registry: when mode is not 'Proxy', 'proxy' section must be omitted." in errors
    assert "registry: when mode is not 'Unmanaged', 'unmanaged' section must be omitted." in errors


def test_ttl_seconds():
    assert r.ttl_seconds("1h30m") == 5400
    assert r.ttl_seconds("300s") == 300
    assert r.ttl_seconds("") is None and r.ttl_seconds("1d") is None


def test_settings_match_defaults_and_secrets_by_value():
    live = {"mode": "Direct", "direct": {"imagesRepo": "a.b/c", "license": "L"}}
    assert r.settings_match(live, {"mode": "Direct", "direct": {"imagesRepo": "a.b/c", "license": "L", "scheme": "HTTPS"}})
    assert not r.settings_match(live, {"mode": "Direct", "direct": {"imagesRepo": "a.b/c", "license": "OTHER"}})
    assert not r.settings_match(live, {"mode": "Direct", "direct": {"imagesRepo": "a.b/c"}})  # license removed
    assert r.settings_match({}, {"mode": "Unmanaged"})
    assert r.settings_match({"mode": "Proxy", "proxy": {"imagesRepo": "x", "ttl": "5m"}},
                            {"mode": "Proxy", "proxy": {"imagesRepo": "x", "ttl": "300s"}})


def test_redact_settings():
    out = r.redact_settings({"mode": "Direct", "direct": {"imagesRepo": "a", "license": "L", "password": ""}})
    assert out["direct"]["license"] == NO_LOG_MARKER and out["direct"]["password"] == ""


def test_desired_config_keeps_other_settings_and_sets_version():
    live = {"metadata": {"name": "deckhouse", "resourceVersion": "5"},
            "spec": {"enabled": True, "settings": {"bundle": "Default", "registry": {"mode": "Unmanaged"}}}}
    out = r.desired_config(live, {"mode": "Direct", "direct": {"imagesRepo": "a.b/c"}})
    assert out["spec"]["settings"]["bundle"] == "Default"
    assert out["spec"]["settings"]["registry"] == {"mode": "Direct", "direct": {"imagesRepo": "a.b/c"}}
    assert out["spec"]["version"] == 1 and out["spec"]["enabled"] is True
    assert live["spec"]["settings"]["registry"] == {"mode": "Unmanaged"}  # not mutated


# -- transitions -------------------------------------------------------------------------------------

@pytest.mark.parametrize("current,target,configurable,ok", [
    ("Proxy", "Local", True, False), ("Local", "Proxy", True, False), ("Detached", "Proxy", True, False),
    ("Local", "Unmanaged", False, False), ("Local", "Unmanaged", True, True),
    ("Direct", "Unmanaged", False, True), ("", "Direct", True, True), ("Direct", "Local", True, True),
    ("Unmanaged", "Proxy", True, True), ("Proxy", "Direct", True, True),
])
def test_transition_rules(current, target, configurable, ok):
    assert (r.transition_error(current, target, configurable) is None) == ok


def test_plan_hops():
    assert r.plan_hops("Proxy", "Local") == (None, r.transition_error("Proxy", "Local"))
    assert r.plan_hops("Proxy", "Local", via="Direct") == (["Direct", "Local"], None)
    assert r.plan_hops("Direct", "Local", via="Direct") == (["Local"], None)
    hops, error = r.plan_hops("Local", "Unmanaged", configurable=False, via="Direct")
    assert hops == ["Direct", "Unmanaged"] and error is None


def test_restart_impact():
    assert r.restart_impact("Unmanaged", "Direct", True)["all_components"]
    assert r.restart_impact("Unmanaged", "Unmanaged", True)["all_components"]
    assert not r.restart_impact("Direct", "Proxy", True)["all_components"]
    assert r.restart_impact("Direct", "Proxy", True)["deckhouse"]
    assert not r.restart_impact("Unmanaged", "Direct", False)["deckhouse"]


# -- registry-state -------------------------------------------------------------------------------

def test_parse_state_never_contains_state_key():
    s = r.parse_state(secret(conditions=[("Ready", "True", "Ready", "")]))
    assert SECRET_MARKER not in repr(s)
    assert "state" not in s
    assert s["complete"] and not s["in_progress"] and s["mode"] == "Direct"


def test_parse_state_absent():
    s = r.parse_state(None)
    assert s["exists"] is False and s["complete"] is False and "does not exist" in s["message"]


def test_complete_requires_mode_equal_target():
    s = r.parse_state(secret(mode="Direct", target="Proxy", conditions=[("Ready", "True", "", "")]))
    assert not s["complete"] and s["in_progress"]


def test_pending_failed_and_transition_error():
    s = r.parse_state(secret(mode="Proxy", target="Local", conditions=[
        ("ErrTransitionNotSupported", "True", "Error", "mode transition from Proxy to Local not supported"),
        ("Ready", "False", "Processing", "")]))
    assert s["transition_error"] == "mode transition from Proxy to Local not supported"
    assert not s["in_progress"] and not s["complete"]
    assert [c["type"] for c in s["pending"]] == ["Ready"]
    assert [c["type"] for c in s["failed_conditions"]] == ["ErrTransitionNotSupported"]


def test_bad_conditions_yaml_gives_empty_list():
    sec = secret()
    sec["data"]["conditions"] = b64("{{{ not yaml")
    assert r.parse_state(sec)["conditions"] == []


def test_fingerprint_ignores_state_and_time():
    a = r.parse_state(secret(state="one", conditions=[("Ready", "False", "Processing", "x")]))
    b = r.parse_state(secret(state="two", conditions=[("Ready", "False", "Processing", "x")]))
    c = r.parse_state(secret(conditions=[("Ready", "True", "", "")]))
    assert a["fingerprint"] == b["fingerprint"] != c["fingerprint"]


def test_format_condition():
    assert r.format_condition({"type": "TransitionContainerdConfigReady", "status": "True", "message": ""}) == \
        "TransitionContainerdConfigReady: True"
    assert r.format_condition({"type": "NodeServicesReady", "status": "False",
                               "message": "master-1: waiting\nmaster-2: ok"}) == \
        "NodeServicesReady: False \u2014 master-1: waiting; master-2: ok"


# -- tracker ----------------------------------------------------------------------------------------

def st(**kw):
    return r.parse_state(secret(**kw))


def test_tracker_ignores_stale_ready_after_mode_change():
    before = st(mode="Direct", target="Direct", hash_="h1", conditions=[("Ready", "True", "", "")])
    t = r.SwitchTracker("Proxy", r.state_baseline(before, written=True))
    t.observe(before, 1)
    assert not t.done and not t.fresh
    t.observe(st(mode="Direct", target="Proxy", hash_="h2", conditions=[]), 2)
    assert t.fresh and not t.done
    lines = t.observe(st(mode="Direct", target="Proxy", hash_="h2", conditions=[
        ("TransitionContainerdConfigReady", "True", "", ""), ("NodeServicesReady", "False", "Processing", "master-1: x")]), 3)
    assert "TransitionContainerdConfigReady: True" in lines
    assert "NodeServicesReady: False \u2014 master-1: x" in lines
    t.observe(st(mode="Proxy", target="Proxy", hash_="h2", conditions=[("Ready", "True", "", "")]), 4)
    assert t.done


def test_tracker_params_change_needs_new_hash():
    before = st(mode="Direct", target="Direct", hash_="h1", conditions=[("Ready", "True", "", "")])
    t = r.SwitchTracker("Direct", r.state_baseline(before, written=True))
    t.observe(before, 1)
    assert not t.done
    t.observe(st(mode="Direct", target="Direct", hash_="h2", conditions=[("Ready", "True", "", "")]), 2)
    assert t.done


def test_tracker_without_write_accepts_current_state():
    now = st(mode="Direct", target="Direct", hash_="h1", conditions=[("Ready", "True", "", "")])
    t = r.SwitchTracker("Direct", r.state_baseline(now, written=False))
    t.observe(now, 0)
    assert t.done


def test_tracker_fails_fast_on_transition_error():
    before = st(mode="Proxy", target="Proxy", conditions=[("Ready", "True", "", "")])
    t = r.SwitchTracker("Local", r.state_baseline(before, written=True))
    t.observe(st(mode="Proxy", target="Local", hash_="h9", conditions=[
        ("ErrTransitionNotSupported", "True", "Error", "mode transition from Proxy to Local not supported")]), 1)
    assert "mode transition from Proxy to Local not supported" in t.failure()


def test_tracker_timeout_message_lists_every_non_true_condition():
    t = r.SwitchTracker("Proxy", {"written": False})
    t.observe(st(mode="Direct", target="Proxy", conditions=[
        ("RegistryContainsRequiredImages", "True", "", "ok"),
        ("NodeServicesReady", "False", "Processing", "master-1: pods pending"),
        ("Ready", "False", "Processing", "")]), 5)
    msg = t.timeout_message(60)
    assert "NodeServicesReady: False \u2014 master-1: pods pending" in msg
    assert "Ready: False" in msg and "RegistryContainsRequiredImages" not in msg.split("not reported yet")[0]
    assert "not reported yet" in msg and "DeckhouseRegistrySwitchReady" in msg


def test_tracker_timeout_when_dkp_never_picked_up():
    before = st(mode="Direct", target="Direct", hash_="h1", conditions=[("Ready", "True", "", "")])
    t = r.SwitchTracker("Direct", r.state_baseline(before, written=True))
    t.observe(before, 1)
    assert "has not picked up the new settings" in t.timeout_message(10)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.now += s


def test_follow_switch_reports_changes_and_completes():
    clock = FakeClock()
    states = iter([
        st(mode="Direct", target="Direct", hash_="h1", conditions=[("Ready", "True", "", "")]),
        st(mode="Direct", target="Proxy", hash_="h2", conditions=[("RegistryContainsRequiredImages", "False", "Processing", "Initializing")]),
        st(mode="Direct", target="Proxy", hash_="h2", conditions=[("RegistryContainsRequiredImages", "True", "", "ok")]),
        st(mode="Proxy", target="Proxy", hash_="h2", conditions=[("RegistryContainsRequiredImages", "True", "", "ok"), ("Ready", "True", "", "")]),
    ])

    def step(since, timeout):
        clock.now += 1
        return next(states)

    shown = []
    t = r.SwitchTracker("Proxy", {"exists": True, "target_mode": "Direct", "hash": "h1", "written": True})
    final = r.follow_switch(step, t, 100, clock=clock, sleep=clock.sleep, on_lines=shown.extend)
    assert final["mode"] == "Proxy"
    assert "RegistryContainsRequiredImages: False \u2014 Initializing" in shown
    assert "Ready: True" in shown
    assert [e["type"] for e in t.events] == ["RegistryContainsRequiredImages", "RegistryContainsRequiredImages", "Ready"]


def test_follow_switch_times_out_with_message():
    clock = FakeClock()
    stuck = st(mode="Direct", target="Proxy", conditions=[("NodeServicesReady", "False", "Processing", "master-1: held")])

    def step(since, timeout):
        clock.now += max(timeout, 1)
        return stuck

    t = r.SwitchTracker("Proxy", {"written": False})
    with pytest.raises(DkpError) as e:
        r.follow_switch(step, t, 60, clock=clock, sleep=clock.sleep)
    assert "NodeServicesReady: False \u2014 master-1: held" in e.value.msg
    assert e.value.details["progress"]


def test_follow_switch_local_images_phase_and_push_hint():
    clock = FakeClock()
    waiting = st(mode="Direct", target="Local", conditions=[("RegistryContainsRequiredImages", "False", "Processing", "0 of 157 items")])

    def step(since, timeout):
        clock.now += max(timeout, 1)
        return waiting

    told = []
    push = r.local_push_instructions(None, None)
    t = r.SwitchTracker("Local", {"written": False})
    with pytest.raises(DkpError) as e:
        r.follow_switch(step, t, 10, images_timeout=50, clock=clock, sleep=clock.sleep, on_images_pending=told.append, push=push)
    assert len(told) == 1
    assert "platform images" in e.value.msg and "d8 mirror push" in e.value.msg
    assert clock.now >= 50  # the images phase has its own timeout, not wait_timeout


def test_follow_switch_retries_step_errors_then_fails():
    clock = FakeClock()

    def step(since, timeout):
        raise DkpError("Cannot reach the Kubernetes API")

    with pytest.raises(DkpError, match="Lost track"):
        r.follow_switch(step, r.SwitchTracker("Direct", {}), 60, clock=clock, sleep=clock.sleep)


def test_local_push_instructions_never_hold_password():
    rw = {"data": {"name": b64("rw"), "password": b64("s3cr3t-rw-pass")}}
    glob = {"spec": {"settings": {"modules": {"publicDomainTemplate": "%s.example.com"}}}}
    out = r.local_push_instructions(glob, rw)
    assert out["registry"] == "registry.example.com/system/deckhouse"
    assert out["login"] == "rw" and "s3cr3t-rw-pass" not in repr(out)
    assert "d8 mirror push" in out["command"] and "registry-user-rw" in out["command"]
    assert r.local_push_instructions(None, None)["registry"] == "registry.<publicDomain>/system/deckhouse"


def test_follow_switch_returns_when_nothing_was_written_and_no_state():
    clock = FakeClock()
    calls = []

    def step(since, timeout):
        calls.append(since)
        return r.parse_state(None)

    out = r.follow_switch(step, r.SwitchTracker("Unmanaged", {"written": False}), 60, clock=clock, sleep=clock.sleep)
    assert out["exists"] is False and calls == [None]


class FakeWatchClient:
    """list/watch of the registry-state Secret from a scripted list of versions."""

    def __init__(self, versions):
        self.versions = versions  # [(rv, secret)]
        self.watch_calls = []

    def list(self, kind, namespace=None, field_selector=None, label_selector=None):
        rv, obj = self.versions[0]
        return [obj], rv

    def watch(self, kind, resource_version, namespace=None, name=None, timeout=30, label_selector=None):
        self.watch_calls.append(resource_version)

        def gen():
            for rv, obj in self.versions:
                if int(rv) > int(resource_version):
                    obj = dict(obj, metadata=dict(obj["metadata"], resourceVersion=rv))
                    yield "MODIFIED", obj
        return gen()


def test_watch_state_replays_every_change_since_a_resource_version():
    a = secret(mode="Direct", target="Direct", hash_="h1", conditions=[("Ready", "True", "", "")])
    b = secret(mode="Direct", target="Proxy", hash_="h2", conditions=[])
    c = secret(mode="Direct", target="Proxy", hash_="h2", conditions=[("NodeServicesReady", "False", "Processing", "m")])
    d = secret(mode="Proxy", target="Proxy", hash_="h2", conditions=[("Ready", "True", "", "")])
    client = FakeWatchClient([("10", a), ("11", b), ("12", c), ("13", d)])
    since = r.parse_state(a)["fingerprint"]
    history, rv, timed_out = r.watch_state(client, since, "10", timeout=5, gather=0)
    assert not timed_out and client.watch_calls[0] == "10"
    assert [h["target_mode"] for h in history][0] == "Proxy"
    assert rv in ("11", "12", "13")
    # resuming from the returned resourceVersion gives the rest, nothing twice
    rest, _rv, _t = r.watch_state(client, history[-1]["fingerprint"], rv, timeout=5, gather=0)
    seen = history + rest
    assert [h["fingerprint"] for h in seen] == [r.parse_state(x)["fingerprint"] for x in (b, c, d)][:len(seen)]
