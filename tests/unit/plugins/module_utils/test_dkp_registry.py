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


def secret(mode="Direct", target="Direct", hash_="h1", conditions=(), state=SECRET_MARKER, gen=1, rv="1"):
    conds = [dict(type=t, status=s, reason=rs, message=m, lastTransitionTime="2026-01-01T00:00:00Z",
                  **({"observedGeneration": gen} if gen is not None else {})) for t, s, rs, m in conditions]
    data = {"mode": b64(mode), "target_mode": b64(target), "hash": b64(hash_),
            "conditions": b64(yaml.safe_dump(conds)), "state": b64(state)}
    return {"metadata": {"name": "registry-state", "namespace": "d8-system", "resourceVersion": rv}, "data": data}


# -- settings ----------------------------------------------------------------------------------------

def test_build_settings_per_mode():
    assert r.build_settings("Direct", p(images_repo="reg.example.com/d8/ee", license="L")) == {
        "mode": "Direct", "direct": {"imagesRepo": "reg.example.com/d8/ee", "license": "L"}}
    assert r.build_settings("Local", p()) == {"mode": "Local"}
    assert r.build_settings("Unmanaged", p()) == {"mode": "Unmanaged"}
    assert r.build_settings("Unmanaged", p(images_repo="a.b/c"))["unmanaged"] == {"imagesRepo": "a.b/c"}
    proxy = r.build_settings("Proxy", p(images_repo="a.b/c", ttl="24h", image_check_mode="Relax", scheme="HTTP"))
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


def test_hash_is_not_in_the_fingerprint_but_generations_are():
    a = r.parse_state(secret(hash_="h1", conditions=[("Ready", "True", "", "")]))
    b = r.parse_state(secret(hash_="h2", conditions=[("Ready", "True", "", "")]))
    c = r.parse_state(secret(hash_="h1", gen=2, conditions=[("Ready", "True", "", "")]))
    assert a["fingerprint"] == b["fingerprint"] != c["fingerprint"]
    assert a["observed_generation"] == 1 and c["observed_generation"] == 2
    assert r.parse_state(secret(gen=None, conditions=[("Ready", "True", "", "")]))["observed_generation"] is None


def test_null_conditions_render_as_empty():
    sec = secret()
    sec["data"]["conditions"] = b64("null\n")
    assert r.parse_state(sec)["conditions"] == []


# -- released step orders, checker messages, VAP -----------------------------------------------------

def test_released_step_orders():
    assert r.steps_for("Local")[:3] == (r.PREFLIGHT, r.NODE_SERVICES, r.IMAGES)
    assert r.steps_for("Proxy")[:4] == (r.IMAGES, r.PREFLIGHT, r.NODE_SERVICES, r.TRANSITION)
    assert r.steps_for("Direct")[3] == r.IN_CLUSTER_PROXY
    assert r.steps_for("Unmanaged", "Direct", configurable=False)[:3] == (r.IMAGES, r.TRANSITION, r.SWITCH)
    assert r.steps_for("Unmanaged", "Unmanaged", configurable=False)[0] == r.FINAL
    assert r.steps_for("Unmanaged")[-3:] == (r.CLEANUP_NODE_SERVICES, r.CLEANUP_IN_CLUSTER_PROXY, r.READY)


def test_parse_checker_local_names_nodes():
    msg = ("Mode: Default\nmaster-0: all 166 items are checked\nmaster-1: 12 of 166 items processed, 2 items with "
           "errors:\n- source: registry.d8-system.svc/system/deckhouse\n  image: a@sha256:1\n  error: not found")
    out = r.parse_checker(msg)
    assert out["check_mode"] == "Default"
    assert [(x["name"], x["checked"], x["total"], x["errors"], x["complete"]) for x in out["registries"]] == [
        ("master-0", 166, 166, 0, True), ("master-1", 12, 166, 2, False)]
    assert out["errors"] and out["errors"][0].startswith("source:")
    assert r.parse_checker("Initializing")["initializing"]


VAP_LOCAL = ('ValidatingAdmissionPolicy \'deckhouse-module-registry-validation\' with binding \'x\' denied request: '
             'Switching `spec.settings.registry.mode` to Proxy or non-configurable Unmanaged mode is not supported '
             'when registry is running in "Local" mode. Please use a transition mode')
VAP_PROXY = ('... denied request: Switching `spec.settings.registry.mode` to Local mode is not supported when '
             'registry is running in "Proxy" mode.')


@pytest.mark.parametrize("status", [403, 422])
def test_vap_denial_explained(status):
    from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import ApiError
    e = r.explain_denial(ApiError(status, "Invalid", VAP_LOCAL), "Proxy")
    assert isinstance(e, r.RegistryWriteDenied)
    assert "Local mode" in e.msg and "via: Direct" in e.msg and "Nothing was written" in e.msg
    assert e.details["running_mode"] == "Local"
    assert r.explain_denial(ApiError(status, "Invalid", VAP_PROXY), "Local").details["running_mode"] == "Proxy"
    assert r.explain_denial(ApiError(status, "Invalid", "something else"), "Proxy") is None
    assert r.explain_denial(ApiError(500, "", VAP_LOCAL), "Proxy") is None


def test_dropped_credentials():
    proxy = {"mode": "Proxy", "proxy": {"imagesRepo": "registry.deckhouse.io/deckhouse/ee", "license": "L"}}
    bare = {"mode": "Direct", "direct": {"imagesRepo": "registry.deckhouse.io/deckhouse/ee"}}
    msg = r.dropped_credentials(proxy, bare)
    assert msg and "from_current: true" in msg and "L" not in msg.replace("License", "").replace("license", "")
    assert r.dropped_credentials(proxy, {"mode": "Direct", "direct": {"imagesRepo": "registry.deckhouse.io/x",
                                                                      "license": "L2"}}) is None
    assert r.dropped_credentials(proxy, {"mode": "Direct", "direct": {"imagesRepo": "mirror.example.com/d8"}}) is None
    assert r.dropped_credentials(proxy, {"mode": "Local"}) is None
    assert r.dropped_credentials({"mode": "Unmanaged"}, bare) is None


# -- tracker ----------------------------------------------------------------------------------------

def st(**kw):
    return r.parse_state(secret(**kw))


def test_tracker_ignores_stale_ready_after_mode_change():
    before = st(mode="Direct", target="Direct", hash_="h1", conditions=[("Ready", "True", "", "")])
    t = r.SwitchTracker("Proxy", r.state_baseline(before, written=True, generation=1))
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


def test_tracker_same_mode_change_ignores_a_new_hash_with_a_stale_ready():
    """A hash bump (node/pod events) next to the old Ready=True is not evidence: the generation is."""
    before = st(mode="Direct", target="Direct", hash_="h1", gen=3, conditions=[("Ready", "True", "", "")])
    t = r.SwitchTracker("Direct", r.state_baseline(before, written=True, generation=3))
    t.observe(before, 1)
    t.observe(st(mode="Direct", target="Direct", hash_="h2", gen=3, conditions=[("Ready", "True", "", "")]), 2)
    assert not t.fresh and not t.done
    assert "evidence looked for: conditions observe registry-config generation > 3" in t.timeout_message(10)
    t.observe(st(mode="Direct", target="Direct", hash_="h3", gen=4, conditions=[
        ("RegistryContainsRequiredImages", "False", "Processing", "Initializing"), ("Ready", "False", "Processing", "")]),
        3)
    assert t.fresh and not t.done
    t.observe(st(mode="Direct", target="Direct", hash_="h4", gen=4, conditions=[("Ready", "True", "", "")]), 4)
    assert t.done


def test_tracker_ready_of_the_old_generation_next_to_fresh_conditions_does_not_count():
    before = st(mode="Direct", target="Direct", gen=3, conditions=[("Ready", "True", "", "")])
    t = r.SwitchTracker("Direct", r.state_baseline(before, written=True, generation=3))
    summary = st(mode="Direct", target="Direct", gen=4, conditions=[("Ready", "True", "", "")])
    summary["conditions"][0]["observed_generation"] = 3
    summary["observed_generation"] = 4
    t.observe(summary, 1)
    assert t.fresh and not t.done


def test_tracker_same_mode_ready_of_the_new_generation_completes():
    before = st(mode="Direct", target="Direct", gen=3, conditions=[("Ready", "True", "", "")])
    t = r.SwitchTracker("Direct", r.state_baseline(before, written=True, generation=3))
    t.observe(st(mode="Direct", target="Direct", gen=4, conditions=[("Ready", "True", "", "")]), 2)
    assert t.done


def test_tracker_same_mode_without_generations_needs_a_reset_ready():
    before = st(mode="Direct", target="Direct", gen=None, conditions=[("Ready", "True", "", "")])
    t = r.SwitchTracker("Direct", r.state_baseline(before, written=True, generation=None))
    t.observe(st(mode="Direct", target="Direct", hash_="h9", gen=None, conditions=[("Ready", "True", "", "")]), 1)
    assert not t.done
    t.observe(st(mode="Direct", target="Direct", gen=None, conditions=[("Ready", "False", "Processing", "x")]), 2)
    assert t.fresh and not t.done
    t.observe(st(mode="Direct", target="Direct", gen=None, conditions=[("Ready", "True", "", "")]), 3)
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


def test_tracker_fails_fast_when_another_target_replaces_ours():
    before = st(mode="Unmanaged", target="Unmanaged", conditions=[("Ready", "True", "", "")])
    t = r.SwitchTracker("Direct", r.state_baseline(before, written=True))
    t.observe(st(mode="Unmanaged", target="Direct", conditions=[("Ready", "False", "Processing", "")]), 1)
    assert t.failure() is None
    t.observe(st(mode="Unmanaged", target="Proxy", conditions=[]), 2)
    assert "target_mode Proxy instead of Direct" in t.failure() and "run_lock" in t.failure()


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
    t = r.SwitchTracker("Direct", r.state_baseline(before, written=True, generation=1))
    t.observe(before, 1)
    assert "has not picked up the new settings" in t.timeout_message(10)


def test_local_images_timeout_starts_with_the_images_check():
    """Local: Preflight and NodeServices take their time first; the images budget starts at the images check."""
    before = st(mode="Direct", target="Direct", conditions=[("Ready", "True", "", "")])
    t = r.SwitchTracker("Local", r.state_baseline(before, written=True), wait_timeout=100, images_timeout=50)
    t.started = 0.0
    t.observe(st(mode="Direct", target="Local", conditions=[("NodeServicesReady", "False", "Processing", "")]), 1)
    assert t.check_deadlines(60) is None  # 60 s of node services: no images timeout (it has not started)
    t.observe(st(mode="Direct", target="Local", conditions=[
        ("NodeServicesReady", "True", "", ""),
        ("RegistryContainsRequiredImages", "False", "Processing",
         "Mode: Default\nmaster-0: 0 of 166 items processed\nmaster-1: 10 of 166 items processed")]), 70)
    assert t.check_deadlines(119) is None  # 49 s into the images check
    msg = t.check_deadlines(120, push={"command": "d8 mirror push ...", "password_from": "Secret x"})
    assert msg and "counted from the start of the images check" in msg
    assert "master-0 (0 of 166 items processed)" in msg and "master-1 (10 of 166 items processed)" in msg
    assert "d8 mirror push" in msg


def test_local_wait_timeout_does_not_count_the_images_wait():
    t = r.SwitchTracker("Local", {"written": False}, wait_timeout=100, images_timeout=1000)
    t.started = 0.0
    t.observe(st(mode="Direct", target="Local", conditions=[
        ("RegistryContainsRequiredImages", "False", "Processing", "Mode: Default\nmaster-0: 0 of 1 items processed")]), 50)
    t.observe(st(mode="Direct", target="Local", conditions=[("RegistryContainsRequiredImages", "True", "Ready", "")]), 650)
    assert t.check_deadlines(690) is None  # 690 - 600 s of images = 90 s < 100
    assert "Timed out after 100s" in t.check_deadlines(701)


# -- the wait on the one engine (fake API server, fake clock) -----------------------------------------

class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.now += max(s, 0.01)


class FakeSecrets:
    """registry-state with a history for watches, changes scheduled by clock time and an outage window."""

    def __init__(self, clock, first, plan=(), down=None):
        self.clock = clock
        self.rv = 1
        self.obj = dict(first, metadata=dict(first["metadata"], resourceVersion="1"))
        self.history = []
        self.plan = sorted(plan, key=lambda x: x[0])
        self.down = down
        self.calls = 0

    def retry_window(self, seconds):
        import contextlib
        return contextlib.nullcontext()

    def _due(self):
        while self.plan and self.plan[0][0] <= self.clock.now:
            _t, sec = self.plan.pop(0)
            self.rv += 1
            self.obj = dict(sec, metadata=dict(sec["metadata"], resourceVersion=str(self.rv)))
            self.history.append((self.rv, self.obj))

    def _check(self):
        from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import UnreachableError
        self.calls += 1
        if self.down and self.down[0] <= self.clock.now < self.down[1]:
            self.clock.now += 1
            raise UnreachableError("Cannot reach the Kubernetes API at https://fake: connection refused")

    def get(self, kind, name, namespace=None):
        self._check()
        self._due()
        return self.obj

    def list(self, kind, namespace=None, label_selector=None, field_selector=None):
        self._check()
        self._due()
        return [self.obj], str(self.rv)

    def watch(self, kind, resource_version, namespace=None, name=None, label_selector=None, timeout=30):
        self._check()
        end = self.clock.now + timeout
        pos = int(resource_version)
        while self.clock.now < end:
            self._due()
            for hrv, obj in self.history:
                if hrv > pos:
                    pos = hrv
                    yield "MODIFIED", obj
            if self.down and self.down[0] <= self.clock.now < self.down[1]:
                return  # the stream is cut when the apiserver goes away
            self.clock.now += 0.5


def run_wait(target, baseline, first, plan, wait_timeout=300, images_timeout=None, down=None):
    clock = FakeClock()
    api = FakeSecrets(clock, first, plan, down)
    t = r.SwitchTracker(target, baseline, wait_timeout=wait_timeout, images_timeout=images_timeout)
    shown = []
    final = r.wait_switch(api, t, on_lines=shown.extend, clock=clock, sleep=clock.sleep, heartbeat=2.0)
    return final, t, shown, clock


def test_wait_switch_reports_changes_and_completes():
    first = secret(mode="Direct", target="Direct", conditions=[("Ready", "True", "", "")])
    plan = [
        (2, secret(mode="Direct", target="Proxy", conditions=[
            ("RegistryContainsRequiredImages", "False", "Processing", "Initializing")])),
        (4, secret(mode="Direct", target="Proxy", conditions=[("RegistryContainsRequiredImages", "True", "", "ok")])),
        (6, secret(mode="Proxy", target="Proxy", conditions=[
            ("RegistryContainsRequiredImages", "True", "", "ok"), ("Ready", "True", "", "")])),
    ]
    base = r.state_baseline(r.parse_state(first), written=True, generation=1)
    final, t, shown, _clock = run_wait("Proxy", base, first, plan)
    assert final["mode"] == "Proxy" and t.done
    assert "RegistryContainsRequiredImages: False \u2014 Initializing" in shown and "Ready: True" in shown
    assert t.details()["progress_lines"] == shown


def test_wait_switch_rides_through_an_apiserver_outage_of_40s():
    first = secret(mode="Unmanaged", target="Unmanaged", conditions=[("Ready", "True", "", "")])
    plan = [(5, secret(mode="Unmanaged", target="Direct", conditions=[("Ready", "False", "Processing", "")])),
            (30, secret(mode="Direct", target="Direct", conditions=[("Ready", "True", "", "")]))]
    base = r.state_baseline(r.parse_state(first), written=True, generation=1)
    final, t, _shown, clock = run_wait("Direct", base, first, plan, down=(10, 50))
    assert t.done and final["mode"] == "Direct" and clock.now >= 50


def test_wait_switch_never_accepts_the_stale_ready_and_times_out_with_it():
    from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_wait import WaitTimeout
    first = secret(mode="Direct", target="Direct", gen=2, conditions=[("Ready", "True", "", "")])
    plan = [(3, secret(mode="Direct", target="Direct", hash_="bumped", gen=2, conditions=[("Ready", "True", "", "")]))]
    base = r.state_baseline(r.parse_state(first), written=True, generation=2)
    with pytest.raises(WaitTimeout) as e:
        run_wait("Direct", base, first, plan, wait_timeout=30)
    assert "has not picked up the new settings" in e.value.msg and e.value.details["evidence"]


def test_wait_switch_fails_fast_on_refusal():
    from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_wait import WaitFailed
    first = secret(mode="Proxy", target="Proxy", conditions=[("Ready", "True", "", "")])
    plan = [(2, secret(mode="Proxy", target="Local", conditions=[
        ("ErrTransitionNotSupported", "True", "Error", "mode transition from Proxy to Local not supported")]))]
    base = r.state_baseline(r.parse_state(first), written=True)
    with pytest.raises(WaitFailed) as e:
        run_wait("Local", base, first, plan, wait_timeout=600, images_timeout=600)
    assert "refused the switch to Local" in e.value.msg and e.value.details["progress"]


def test_wait_switch_fails_at_once_on_a_fresh_custom_containerd_preflight():
    from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_wait import WaitFailed
    custom = "master-0 has custom toml merge containerd configuration"
    # the False of the generation before the write is stale: it must not fail the wait
    first = secret(mode="Unmanaged", target="Unmanaged", gen=2, conditions=[
        ("ContainerdConfigPreflightReady", "False", "Processing", custom), ("Ready", "False", "Processing", "")])
    plan = [(3, secret(mode="Unmanaged", target="Unmanaged", gen=3, conditions=[
        ("ContainerdConfigPreflightReady", "False", "Processing", custom), ("Ready", "False", "Processing", "")]))]
    base = r.state_baseline(r.parse_state(first), written=True, generation=2)
    t = r.SwitchTracker("Unmanaged", base)
    t.observe(r.parse_state(first), 1)
    assert t.failure() is None and "containerd_preflight" not in t.details()
    with pytest.raises(WaitFailed) as e:
        run_wait("Unmanaged", base, first, plan, wait_timeout=600)
    assert "ContainerdConfigPreflightReady=False" in e.value.msg and custom in e.value.msg
    assert "/etc/containerd/registry.d/" in e.value.msg and "NodeGroupConfiguration" in e.value.msg
    assert e.value.details["reason"] == "ContainerdConfigCustom"
    assert e.value.details["containerd_preflight"]["message"] == custom
    assert e.value.details["containerd_preflight"]["observed_generation"] == 3


def test_tracker_containerd_preflight_checking_is_not_a_failure():
    before = st(mode="Unmanaged", target="Unmanaged", conditions=[("Ready", "True", "", "")])
    t = r.SwitchTracker("Direct", r.state_baseline(before, written=True))
    t.observe(st(mode="Unmanaged", target="Direct", conditions=[
        ("ContainerdConfigPreflightReady", "False", "Processing", "Checking containerd registry configuration")]), 1)
    assert t.failure() is None and t.containerd_blocked() is None


def test_wait_switch_returns_when_nothing_was_written_and_no_state():
    clock = FakeClock()

    class Absent(FakeSecrets):
        def list(self, *a, **kw):
            self._check()
            return [], "1"

    api = Absent(clock, secret())
    t = r.SwitchTracker("Direct", {"written": False}, wait_timeout=60)
    assert r.wait_switch(api, t, clock=clock, sleep=clock.sleep)["exists"] is False


def test_wait_for_change_returns_the_new_state():
    clock = FakeClock()
    first = secret(mode="Direct", target="Direct", conditions=[("Ready", "True", "", "")])
    api = FakeSecrets(clock, first, [(3, secret(mode="Direct", target="Proxy", conditions=[]))])
    fp = r.parse_state(first)["fingerprint"]
    from ansible_collections.deckhouse.platform.plugins.module_utils import dkp_wait
    orig = dkp_wait.wait_for

    def wait_for(*a, **kw):
        kw.update(clock=clock, sleep=clock.sleep)
        return orig(*a, **kw)
    dkp_wait.wait_for = wait_for
    try:
        summary, timed_out = r.wait_for_change(api, fp, 30)
    finally:
        dkp_wait.wait_for = orig
    assert not timed_out and summary["target_mode"] == "Proxy" and summary["history"][-1]["target_mode"] == "Proxy"


def test_local_push_instructions_never_hold_password():
    rw = {"data": {"name": b64("rw"), "password": b64("RW-PASSWORD")}}
    push = r.local_push_instructions({"spec": {"settings": {"modules": {"publicDomainTemplate": "%s.example.com"}}}}, rw)
    assert push["registry"] == "registry.example.com/system/deckhouse"
    assert "RW-PASSWORD" not in repr(push) and "registry-user-rw" in push["command"]


def test_wait_switch_fails_when_the_settings_are_rewritten_before_dkp_shows_our_target():
    from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_wait import WaitFailed
    first = secret(mode="Unmanaged", target="Unmanaged", conditions=[("Ready", "True", "", "")])
    clock = FakeClock()

    class WithConfig(FakeSecrets):
        def get(self, kind, name, namespace=None):
            if kind == "ModuleConfig":
                self._check()
                return {"metadata": {"name": "deckhouse", "generation": 7 if self.clock.now > 3 else 6}}
            return super().get(kind, name, namespace)

    api = WithConfig(clock, first)
    base = dict(r.state_baseline(r.parse_state(first), written=True, generation=1), module_config_generation=6)
    t = r.SwitchTracker("Direct", base, wait_timeout=300)
    with pytest.raises(WaitFailed) as e:
        r.wait_switch(api, t, clock=clock, sleep=clock.sleep, heartbeat=1.0)
    assert "generation 6 -> 7" in e.value.msg and clock.now < 20


def test_state_summary_names_the_custom_containerd_configuration_that_blocks_any_switch():
    """registry_state_info / the registry_state lookup: `containerd_blocked`, the rule of the switch's wait."""
    custom = "master-0: custom containerd configuration\nin /etc/containerd/conf.d/registry.toml"
    blocked = r.parse_state(secret("Unmanaged", "Unmanaged", conditions=[
        ("ContainerdConfigPreflightReady", "False", "Processing", custom), ("Ready", "False", "Processing", "")]))
    assert blocked["containerd_blocked"] == "master-0: custom containerd configuration; in /etc/containerd/conf.d/registry.toml"
    checking = r.parse_state(secret("Unmanaged", "Unmanaged", conditions=[
        ("ContainerdConfigPreflightReady", "False", "Processing", "Checking containerd registry configuration")]))
    assert checking["containerd_blocked"] is None
    ready = r.parse_state(secret("Unmanaged", "Unmanaged", conditions=[
        ("ContainerdConfigPreflightReady", "True", "Ready", "no custom configuration")]))
    assert ready["containerd_blocked"] is None
    reason_only = r.parse_state(secret("Unmanaged", "Unmanaged", conditions=[
        ("ContainerdConfigPreflightReady", "False", "CustomConfig", "")]))
    assert reason_only["containerd_blocked"] == "CustomConfig"
    assert r.parse_state(None)["containerd_blocked"] is None
    assert SECRET_MARKER not in str(blocked)
