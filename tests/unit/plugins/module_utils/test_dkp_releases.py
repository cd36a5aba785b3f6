from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import pytest

from ansible_collections.deckhouse.platform.plugins.module_utils import dkp_releases as r
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import DkpError


def release(version, phase="Pending", module="console", message="", annotations=None, labels=None):
    meta = {"name": "%s-v%s" % (module, version), "resourceVersion": "1",
            "labels": dict({"module": module}, **(labels or {})), "annotations": dict(annotations or {})}
    status = {"phase": phase, "message": message} if phase else {}
    return {"apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleRelease", "metadata": meta,
            "spec": {"moduleName": module, "version": version}, "status": status}


class FakeClient:
    """Serves get/list of ModuleReleases from a list, as DkpClient does (label selector module=...)."""

    def __init__(self, releases):
        self.releases = releases

    def get(self, kind, name, namespace=None):
        assert kind == "ModuleRelease"
        return next((x for x in self.releases if x["metadata"]["name"] == name), None)

    def list(self, kind, namespace=None, label_selector=None, field_selector=None):
        items = self.releases
        if label_selector:
            key, value = label_selector.split("=")
            items = [x for x in items if x["metadata"]["labels"].get(key) == value]
        return items, "1"


# -- versions ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("given, expected", [("1.2.3", "1.2.3"), ("v1.2.3", "1.2.3"), (" v0.10.0 ", "0.10.0"),
                                             ("1.0.0-rc.1", "1.0.0-rc.1"), ("v2.0.0+build.5", "2.0.0+build.5")])
def test_normalize_version_accepts_with_and_without_v(given, expected):
    assert r.normalize_version(given) == expected


@pytest.mark.parametrize("bad", ["1.2", "latest", "v1.2.3.4", "01.2.3", "", "vv1.2.3"])
def test_normalize_version_refuses_what_is_not_semver(bad):
    with pytest.raises(DkpError, match="not a semantic version"):
        r.normalize_version(bad)


def test_semver_sort_is_numeric_and_puts_prereleases_before_their_release():
    versions = ["1.10.0", "1.9.0", "1.2.10", "1.2.9", "2.0.0-rc.1", "2.0.0", "2.0.0-alpha", "2.0.0-rc.10",
                "2.0.0-rc.2", "1.0.0-alpha.beta", "1.0.0-alpha.1", "not-a-version"]
    assert sorted(versions, key=r.version_key) == [
        "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.2.9", "1.2.10", "1.9.0", "1.10.0",
        "2.0.0-alpha", "2.0.0-rc.1", "2.0.0-rc.2", "2.0.0-rc.10", "2.0.0", "not-a-version"]


def test_release_names_carry_v_and_versions_do_not():
    assert r.release_name("console", "v1.2.3") == "console-v1.2.3"
    assert r.release_name("console", "1.2.3") == "console-v1.2.3"
    assert r.parse_release_name("cert-manager-v1.20.3") == ("cert-manager", "1.20.3")
    assert r.parse_release_name("console") == (None, None)
    assert r.release_version({"spec": {"version": "v1.2.3"}}) == "1.2.3"


def test_release_name_validation():
    assert r.check_release_name("console-v1.2.3") is None
    assert "console-v1.2.3" in r.check_release_name("Console v1.2.3")


# -- blocking reasons: the messages DKP writes on Pending releases -----------------------------------

@pytest.mark.parametrize("message, reasons", [
    ("", []),
    ("Release is waiting for the 'modules.deckhouse.io/approved: \"true\"' annotation", ["approval"]),
    ("Release is waiting for the update window until 21 Nov 25 01:00 UTC", ["update_window"]),
    ("Release is waiting for the update window, waiting for the 'modules.deckhouse.io/approved: \"true\"' "
     "annotation. After approval the release will be delayed until 21 Nov 25 01:00 UTC",
     ["update_window", "approval"]),
    ("Release is in cooldown, waiting for the update window", ["cooldown", "update_window"]),
    ("Release is postponed until 02 Jan 26 15:04 UTC", ["postponed"]),
    ("Release is postponed by notification", ["notification"]),
    ("Release is blocked, failed to send release notification", ["notification"]),
    ("release blocked, disruption approval required: ingress", ["disruption_approval"]),
    ("awaiting for v1.3.0 release to be deployed", ["awaiting_release"]),
    ("minor version is greater than deployed 1.2.0 by one", ["version_gap"]),
    ("major version is greater than deployed 1.9.0", ["version_gap"]),
    ("awaiting for module to be ready", ["module_not_ready"]),
    ("awaiting for module v1.2.3 to be ready", ["module_not_ready"]),
    ("requirements are not satisfied: current deckhouse version is not suitable: 1.0.0 is less than or equal to "
     "v1.64.0", ["requirements"]),
    ("kubernetes version is not suitable: 1.29 < 1.30; deckhouse version is not suitable: 1.60 < 1.61",
     ["requirements"]),
    ("Update policy manual not found", ["update_policy"]),
    ("Update policy not set. Create a suitable ModuleUpdatePolicy object", ["update_policy"]),
    ("Initial module config validation failed:\nspec.settings.a is required", ["config_validation"]),
    ("something new", ["unknown"]),
])
def test_blocking_reasons(message, reasons):
    assert r.blocking_reasons(message) == reasons


def test_summary_reports_blocked_by_only_for_pending_releases():
    pending = release("1.3.0", message="Release is waiting for the update window")
    deployed = release("1.2.0", phase="Deployed", message="Release is waiting for the update window")
    assert r.release_summary(pending)["blocked_by"] == ["update_window"]
    assert r.release_summary(deployed)["blocked_by"] == []


def test_summary_fields_and_empty_phase_is_pending():
    rel = release("1.3.0", phase=None, annotations={r.APPROVED_ANNOTATION: "True", r.APPLY_NOW_ANNOTATION: "true",
                                                    "unrelated": "x"},
                  labels={r.UPDATE_POLICY_LABEL: "manual", "source": "example"})
    s = r.release_summary(rel)
    assert s["phase"] == "Pending" and s["approved"] is True and s["apply_now"] is True and s["reinstall"] is False
    assert s["annotations"] == {r.APPROVED_ANNOTATION: "True", r.APPLY_NOW_ANNOTATION: "true"}
    assert (s["module"], s["version"], s["update_policy"], s["source"]) == ("console", "1.3.0", "manual", "example")


# -- selection ---------------------------------------------------------------------------------------

RELEASES = [release("1.10.0"), release("1.9.0"), release("1.2.0", "Superseded"), release("1.3.0", "Deployed"),
            release("0.1.0", "Deployed", module="other")]


def test_pending_selects_the_lowest_pending_by_semver_and_deployed_the_deployed():
    client = FakeClient(RELEASES)
    assert r.find_release(client, module="console", which="pending")[0]["metadata"]["name"] == "console-v1.9.0"
    assert r.find_release(client, module="console", which="deployed")[0]["metadata"]["name"] == "console-v1.3.0"
    assert r.find_release(client, module="nothing", which="pending") == (None, [])


def test_select_by_version_with_or_without_v_and_by_name():
    client = FakeClient(RELEASES)
    assert r.find_release(client, module="console", version="v1.10.0")[0]["metadata"]["name"] == "console-v1.10.0"
    assert r.find_release(client, module="console", version="1.10.0")[0]["metadata"]["name"] == "console-v1.10.0"
    rel, siblings = r.find_release(client, name="console-v1.2.0")
    assert rel["status"]["phase"] == "Superseded" and len(siblings) == 4


def test_select_by_version_finds_a_release_whose_name_does_not_follow_the_convention():
    odd = release("2.0.0")
    odd["metadata"]["name"] = "console-custom"
    client = FakeClient([odd])
    assert r.find_release(client, module="console", version="2.0.0")[0] is odd


def test_missing_release_lists_the_candidates():
    client = FakeClient(RELEASES)
    with pytest.raises(DkpError) as e:
        r.find_release(client, module="console", version="1.4.0")
    assert "1.2.0 (Superseded), 1.3.0 (Deployed), 1.9.0 (Pending), 1.10.0 (Pending)" in e.value.msg
    with pytest.raises(DkpError, match="console-v9.9.9 does not exist.*1.3.0 \\(Deployed\\)"):
        r.find_release(client, name="console-v9.9.9")
    with pytest.raises(DkpError, match="installed from a ModuleSource"):
        r.find_release(client, module="nothing", version="1.0.0")


def test_module_release_state_per_module():
    state = r.module_release_state(RELEASES)
    assert state["console"]["deployed"]["version"] == "1.3.0"
    assert [p["version"] for p in state["console"]["pending"]] == ["1.9.0", "1.10.0"]
    assert state["other"] == {"deployed": r.release_summary(RELEASES[4]), "pending": []}


# -- actions: idempotency by state --------------------------------------------------------------------

def test_approve_pending_adds_the_annotation_once():
    rel = release("1.9.0")
    assert r.plan_action("approve", rel, RELEASES) == {r.APPROVED_ANNOTATION: "true"}
    rel["metadata"]["annotations"][r.APPROVED_ANNOTATION] = "true"
    assert r.plan_action("approve", rel, RELEASES) == {}


def test_approve_and_apply_now_on_a_deployed_release_change_nothing():
    deployed = release("1.3.0", "Deployed")  # the controller has removed apply-now already
    assert r.plan_action("approve", deployed, RELEASES) == {}
    assert r.plan_action("apply_now", deployed, RELEASES) == {}


def test_apply_now_pending_once():
    rel = release("1.9.0")
    assert r.plan_action("apply_now", rel, RELEASES) == {r.APPLY_NOW_ANNOTATION: "true"}
    rel["metadata"]["annotations"][r.APPLY_NOW_ANNOTATION] = "true"
    assert r.plan_action("apply_now", rel, RELEASES) == {}


@pytest.mark.parametrize("phase", ["Superseded", "Skipped", "Suspended", "Terminating"])
def test_approving_a_final_release_fails_naming_its_phase_and_the_deployed_one(phase):
    rel = release("1.2.0", phase, message="validation failed: x" if phase == "Suspended" else "")
    with pytest.raises(DkpError) as e:
        r.plan_action("approve", rel, RELEASES)
    assert "console-v1.2.0 is %s" % phase in e.value.msg
    assert "the Deployed release is console-v1.3.0 (1.3.0)" in e.value.msg
    if phase == "Suspended":
        assert "validation failed: x" in e.value.msg


def test_reinstall_only_on_the_deployed_release():
    deployed = release("1.3.0", "Deployed")
    assert r.plan_action("reinstall", deployed, RELEASES) == {r.REINSTALL_ANNOTATION: "true"}
    deployed["metadata"]["annotations"][r.REINSTALL_ANNOTATION] = "true"
    assert r.plan_action("reinstall", deployed, RELEASES) == {}
    with pytest.raises(DkpError, match="console-v1.9.0 is Pending: only the Deployed release .* console-v1.3.0"):
        r.plan_action("reinstall", release("1.9.0"), RELEASES)


def test_final_release_without_any_deployed_release():
    with pytest.raises(DkpError, match="the module has no Deployed release"):
        r.plan_action("approve", release("1.0.0", "Skipped"), [release("1.0.0", "Skipped")])


# -- update windows and durations ---------------------------------------------------------------------

def test_valid_windows_pass():
    assert r.window_errors([{"from": "8:00", "to": "10:30", "days": ["Mon", "Sun"]}, {"from": "00:00", "to": "23:59"}]) == []


def test_window_must_start_before_it_ends_with_dkps_message():
    errors = r.window_errors([{"from": "10:00", "to": "08:00"}, {"from": "10:00", "to": "10:00"}])
    assert len(errors) == 2
    assert errors[0].startswith("spec.update.windows[0]: Invalid update windows. Start time (windows.from) should be "
                                "less than the end time of the update window (windows.to)")
    assert "from 10:00, to 08:00" in errors[0]


@pytest.mark.parametrize("window, fragment", [
    ({"from": "24:00", "to": "25:00"}, "spec.update.windows[0].from in body should match"),
    ({"from": "8:0", "to": "9:00"}, "windows[0].from in body should match"),
    ({"from": "8:00", "to": "9:60"}, "windows[0].to in body should match"),
    ({"from": "630", "to": "9:00"}, "base-60 number"),
    ({"to": "9:00"}, "windows[0].from: Required value"),
])
def test_window_format_errors(window, fragment):
    errors = r.window_errors([window])
    assert any(fragment in e for e in errors), errors


@pytest.mark.parametrize("value, ok", [("15s", True), ("3m", True), ("1h30m", True), ("1h2m3s", True),
                                       ("", False), ("90", False), ("1d", False), ("3m1h", False)])
def test_durations(value, ok):
    assert (r.duration_error(value, "scan_interval") is None) is ok


@pytest.mark.parametrize("value, approved", [
    ("1", True), ("t", True), ("T", True), ("TRUE", True), ("true", True), ("True", True),
    ("TrUe", False), (" true ", False), ("yes", False), ("on", False), ("false", False), ("0", False), ("", False),
    (None, False),
])
def test_approval_is_read_as_go_parse_bool(value, approved):
    anns = {} if value is None else {"modules.deckhouse.io/approved": value}
    release = {"metadata": {"name": "a-v1.0.0", "annotations": anns}, "status": {"phase": "Pending"}}
    assert r.is_approved(release) is approved
    # an unparsable value is not an approval, so the task writes "true" over it
    assert r.plan_action("approve", release, [release]) == ({} if approved else {"modules.deckhouse.io/approved": "true"})


def test_summary_reports_the_released_update_versions_field():
    release = {"metadata": {"name": "a-v1.0.0"},
               "spec": {"moduleName": "a", "version": "v1.0.0", "update": {"versions": [{"from": "0.9", "to": "1.0"}]}}}
    assert r.release_summary(release)["update_versions"] == [{"from": "0.9", "to": "1.0"}]
    assert r.release_summary({"metadata": {"name": "a-v1.0.0"}})["update_versions"] == []


def mr(phase, **annotations):
    return {"metadata": {"name": "a-v1.0.0", "annotations": annotations}, "status": {"phase": phase}}


def test_wait_rules_per_target():
    deployed = r.release_wait_rules(None, None, "deployed")
    assert deployed["predicate"](mr("Deployed")) and not deployed["predicate"](mr("Pending"))
    assert "became Skipped" in deployed["failure"](mr("Skipped")) and deployed["failure"](mr("Pending")) is None
    pending = r.release_wait_rules(None, None, "pending")
    assert pending["predicate"](mr("Pending")) and pending["failure"](None) is None
    assert "not Pending" in pending["failure"](mr("Deployed"))
    reinstalled = r.release_wait_rules(None, None, "reinstalled")
    assert not reinstalled["predicate"](mr("Deployed", **{"modules.deckhouse.io/reinstall": "true"}))
    assert not reinstalled["predicate"](mr("Deployed", **{"modules.deckhouse.io/isUpdating": "true"}))
    assert reinstalled["predicate"](mr("Deployed", **{"modules.deckhouse.io/isUpdating": "false"}))
    assert "no longer Deployed" in reinstalled["failure"](mr("Pending"))
    with pytest.raises(ValueError):
        r.release_wait_rules(None, None, "ready")


def test_describe_names_the_release_and_the_module():
    class Client:
        def get(self, kind, name):
            return {"metadata": {"name": name}, "status": {"phase": "Error", "conditions": [
                {"type": "IsReady", "status": "False", "reason": "HookError", "message": "hook failed"}]}}
    text = r.describe_release(Client(), "a")(mr("Pending", **{"modules.deckhouse.io/reinstall": "true"}))
    assert text.startswith("release a-v1.0.0 is Pending") and "reinstall" in text
    assert "Module a: phase Error" in text and "hook failed" in text


def test_module_after_reinstall_tolerates_hook_errors_and_fails_on_conflict():
    rules = r.module_ready_rules(None, "a", "a-v1.0.0")
    hook = {"metadata": {"name": "a"}, "status": {"phase": "Error", "conditions": [
        {"type": "IsReady", "status": "False", "reason": "HookError", "message": "boom"}]}}
    assert rules["failure"](hook) is None and "boom" in rules["transient"](hook)
    assert rules["failure"]({"metadata": {"name": "a"}, "properties": {}, "status": {"phase": "Conflict"}})
    ready = {"metadata": {"name": "a"}, "status": {"phase": "Ready", "conditions": [{"type": "IsReady", "status": "True"}]}}
    assert rules["predicate"](ready) and rules["transient"](ready) is None


def test_module_error_tick_fails_stuck_at_once_and_hook_errors_after_the_grace():
    now = [0.0]
    state = {"m": None}

    class Client:
        def get(self, kind, name):
            return state["m"]
    hook = {"metadata": {"name": "a"}, "status": {"phase": "Error", "conditions": [
        {"type": "IsReady", "status": "False", "reason": "HookError", "message": "boom"}]}}
    tick = r.module_error_tick(Client(), "a", 10, clock=lambda: now[0])
    assert tick() is None
    state["m"] = hook
    assert tick() is None
    now[0] = 5
    assert tick() is None
    state["m"] = {"metadata": {"name": "a"}, "status": {"phase": "Reconciling"}}
    now[0] = 12
    assert tick() is None, "the error cleared: the timer restarts"
    state["m"] = hook
    assert tick() is None
    now[0] = 23
    assert "boom" in tick()
    state["m"] = {"metadata": {"name": "a"}, "properties": {}, "status": {"phase": "Unavailable"}}
    assert "cannot become Ready" in r.module_error_tick(Client(), "a", 10, clock=lambda: 0)()
