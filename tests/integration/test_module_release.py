"""deckhouse.platform.module_release / module_release_info / the module_release lookup, through ansible-playbook,
against the local DKP cluster and the Deckhouse simulator.

Every test starts from a fresh simulator with the ModuleSource `example` (registry.example.com), the Manual
ModuleUpdatePolicy `manual` and the module hello-world enabled from that source: its first release 0.1.1 is
deployed (DKP installs a module's first release at once). Publishing 0.2.0 and 0.3.0 then creates two Pending
releases: 0.2.0 waits for approval, 0.3.0 for 0.2.0.
"""
from __future__ import annotations

import datetime
import json
import time

import pytest

from ansible_run import run_tasks
from ansible_run import task_status as status
from dkp_audit import our_writes

MR = "deckhouse.platform.module_release"
INFO = "deckhouse.platform.module_release_info"
MODULE = "hello-world"
APPROVED = "modules.deckhouse.io/approved"
APPLY_NOW = "modules.deckhouse.io/apply-now"
REINSTALL = "modules.deckhouse.io/reinstall"
IS_UPDATING = "modules.deckhouse.io/isUpdating"
APPROVAL_MESSAGE = "Release is waiting for the 'modules.deckhouse.io/approved: \"true\"' annotation"


def mr_task(title="act", **params):
    return {"name": title, MR: params, "register": "out", "ignore_errors": True}


def get(api, plural, name, version="v1alpha1"):
    from kubernetes.client.rest import ApiException
    try:
        return api.get_cluster_custom_object("deckhouse.io", version, plural, name)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def release(api, version):
    return get(api, "modulereleases", "%s-v%s" % (MODULE, version))


def phase(obj):
    return ((obj or {}).get("status") or {}).get("phase")


def message(api, version):
    return ((release(api, version) or {}).get("status") or {}).get("message") or ""


def annotations(obj):
    return ((obj or {}).get("metadata") or {}).get("annotations") or {}


def eventually(check, timeout=60, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.2)


@pytest.fixture
def hello(fresh_simulator, kc, api):
    """hello-world 0.1.1 Deployed under the Manual policy `manual`, from the ModuleSource `example`."""
    run = run_tasks(kc, [
        {"name": "policy", "deckhouse.platform.module_update_policy": {"name": "manual", "mode": "Manual",
                                                                       "release_channel": "Stable"}},
        {"name": "source", "deckhouse.platform.module_source": {"name": "example",
                                                                "repo": "registry.example.com/deckhouse/modules"}},
        {"name": "config", "deckhouse.platform.module_config": {"name": MODULE, "enabled": True, "source": "example",
                                                                "update_policy": "manual"}},
    ])
    assert run.rc == 0, run.output
    eventually(lambda: phase(release(api, "0.1.1")) == "Deployed", what="hello-world 0.1.1 deployed")
    eventually(lambda: phase(get(api, "modules", MODULE)) == "Ready", what="hello-world Ready")
    return fresh_simulator


@pytest.fixture
def pending(hello, api):
    """0.2.0 Pending for approval and 0.3.0 Pending for 0.2.0."""
    hello.add_release(MODULE, "0.3.0", source="example")
    eventually(lambda: message(api, "0.2.0") == APPROVAL_MESSAGE, what="0.2.0 waiting for approval")
    eventually(lambda: "awaiting" in message(api, "0.3.0"), what="0.3.0 awaiting 0.2.0")
    return hello


def test_info_reports_pending_releases_with_their_blocking_reason(kc, pending):
    run = run_tasks(kc, [{"name": "info", INFO: {"module": MODULE}, "register": "out"},
                         {"name": "pending", INFO: {"phase": ["Pending"]}, "register": "out"}])
    assert run.rc == 0, run.output
    info = run.task("info")
    assert [(r["version"], r["phase"]) for r in info["releases"]] == [
        ("0.1.1", "Deployed"), ("0.2.0", "Pending"), ("0.3.0", "Pending")]
    by_version = {r["version"]: r for r in info["releases"]}
    assert by_version["0.2.0"]["message"] == APPROVAL_MESSAGE
    assert by_version["0.2.0"]["blocked_by"] == ["approval"]
    assert by_version["0.3.0"]["message"] == "awaiting for v0.2.0 release to be deployed"
    assert by_version["0.3.0"]["blocked_by"] == ["awaiting_release"]
    assert by_version["0.1.1"]["blocked_by"] == []
    assert by_version["0.2.0"]["update_policy"] == "manual" and by_version["0.2.0"]["source"] == "example"
    state = info["modules"][MODULE]
    assert state["deployed"]["name"] == "hello-world-v0.1.1"
    assert [p["version"] for p in state["pending"]] == ["0.2.0", "0.3.0"]
    assert [r["version"] for r in run.task("pending")["releases"]] == ["0.2.0", "0.3.0"]
    assert info["changed"] is False


def test_approval_flow_is_waitable_and_idempotent(kc, api, dkp_cluster, pending):
    task = mr_task(module=MODULE, version="v0.2.0", action="approve", wait=True, wait_timeout=60)
    run = run_tasks(kc, [task])
    result = run.task("act")
    assert run.rc == 0 and result["changed"] is True, run.output
    assert result["release"]["name"] == "hello-world-v0.2.0"
    assert result["release"]["phase"] == "Deployed" and result["release"]["approved"] is True
    assert result["module"]["name"] == MODULE
    assert phase(release(api, "0.1.1")) == "Superseded"
    assert annotations(release(api, "0.2.0"))[APPROVED] == "true"

    mark = dkp_cluster.audit_marker()
    again = run_tasks(kc, [task])
    assert again.rc == 0 and again.task("act")["changed"] is False, again.output
    assert our_writes(dkp_cluster, mark) == []

    # 0.3.0 now waits for its own approval, and `release: pending` finds it
    eventually(lambda: message(api, "0.3.0") == APPROVAL_MESSAGE, what="0.3.0 waiting for approval")
    nxt = run_tasks(kc, [mr_task(module=MODULE, release="pending", action="approve", wait=True, wait_timeout=60)])
    assert nxt.rc == 0, nxt.output
    assert nxt.task("act")["release"]["version"] == "0.3.0" and nxt.task("act")["release"]["phase"] == "Deployed"
    none_left = run_tasks(kc, [mr_task(module=MODULE, release="pending", action="approve")])
    assert none_left.rc == 0
    assert none_left.task("act")["changed"] is False and none_left.task("act")["release"] is None


def test_approving_a_superseded_release_fails_with_its_phase_and_the_deployed_one(kc, api, dkp_cluster, pending):
    run = run_tasks(kc, [mr_task(module=MODULE, version="0.2.0", action="approve", wait=True, wait_timeout=60)])
    assert run.rc == 0, run.output
    mark = dkp_cluster.audit_marker()
    bad = run_tasks(kc, [mr_task(name="hello-world-v0.1.1", action="approve"),
                         mr_task(title="now", module=MODULE, version="0.1.1", action="apply_now")])
    for task in ("act", "now"):
        result = bad.task(task)
        assert status(bad, task) == "failed"
        assert "hello-world-v0.1.1 is Superseded" in result["msg"], result["msg"]
        assert "the Deployed release is hello-world-v0.2.0 (0.2.0)" in result["msg"], result["msg"]
    assert our_writes(dkp_cluster, mark) == []


def test_apply_now_deploys_and_is_not_added_again(kc, api, dkp_cluster, pending):
    task = mr_task(name="hello-world-v0.2.0", action="apply_now", wait=True, wait_timeout=60)
    run = run_tasks(kc, [task])
    assert run.rc == 0 and run.task("act")["changed"] is True, run.output
    deployed = release(api, "0.2.0")
    assert phase(deployed) == "Deployed"
    assert APPLY_NOW not in annotations(deployed), "the controller deletes apply-now after deploying"
    assert APPROVED not in annotations(deployed), "apply-now deploys without approval"

    mark = dkp_cluster.audit_marker()
    again = run_tasks(kc, [task])
    assert again.rc == 0 and again.task("act")["changed"] is False, again.output
    assert APPLY_NOW not in annotations(release(api, "0.2.0"))
    assert our_writes(dkp_cluster, mark) == []


def test_update_window_blocks_a_release_and_apply_now_skips_it(kc, api, hello):
    # an Auto policy whose only window opens two hours from now: a patch release waits for it
    start = (datetime.datetime.now(datetime.timezone.utc).hour + 2) % 24
    run = run_tasks(kc, [
        {"name": "policy", "deckhouse.platform.module_update_policy": {
            "name": "later", "mode": "Auto", "windows": [{"from": "%d:00" % start, "to": "%d:30" % start}]}},
        {"name": "config", "deckhouse.platform.module_config": {"name": MODULE, "update_policy": "later"}},
    ])
    assert run.rc == 0, run.output
    hello.add_release(MODULE, "0.1.2", source="example")
    eventually(lambda: message(api, "0.1.2").startswith("Release is waiting for the update window until "),
               what="0.1.2 waiting for the update window")
    info = run_tasks(kc, [{"name": "info", INFO: {"module": MODULE, "phase": ["Pending"]}, "register": "out"}])
    pending_release = info.task("info")["releases"][0]
    assert pending_release["message"] == message(api, "0.1.2")
    assert pending_release["blocked_by"] == ["update_window"]

    now = run_tasks(kc, [mr_task(module=MODULE, version="0.1.2", action="apply_now", wait=True, wait_timeout=60)])
    assert now.rc == 0 and now.task("act")["release"]["phase"] == "Deployed", now.output


def test_check_mode_writes_nothing_and_reports_the_change(kc, api, dkp_cluster, pending):
    mark = dkp_cluster.audit_marker()
    run = run_tasks(kc, [mr_task(module=MODULE, version="0.2.0", action="approve", wait=True)], check=True, diff=True)
    result = run.task("act")
    assert run.rc == 0 and result["changed"] is True, run.output
    assert result["release"]["approved"] is True, "check mode returns the dry-run object"
    assert result["diff"]["after"]["metadata"]["annotations"][APPROVED] == "true"
    assert APPROVED not in result["diff"]["before"]["metadata"]["annotations"]
    assert "module" not in result, "check mode does not wait"
    writes = our_writes(dkp_cluster, mark)
    assert writes and all(w.dry_run for w in writes), writes
    assert APPROVED not in annotations(release(api, "0.2.0"))
    assert phase(release(api, "0.2.0")) == "Pending"


def test_reinstall_waits_for_a_fresh_ready_module(kc, api, dkp_cluster, hello):
    before = get(api, "modules", MODULE)
    assert phase(before) == "Ready", "the Module is Ready before the reinstall: that Ready must not count"
    mark = dkp_cluster.audit_marker()
    run = run_tasks(kc, [mr_task(module=MODULE, action="reinstall", wait=True, wait_timeout=60)])
    result = run.task("act")
    assert run.rc == 0 and result["changed"] is True, run.output
    assert result["release"]["name"] == "hello-world-v0.1.1"
    assert result["module"]["ready"] is True and result["module"]["phase"] == "Ready"
    # the task returned only after DKP took the request and settled it
    after = release(api, "0.1.1")
    assert REINSTALL not in annotations(after) and annotations(after).get(IS_UPDATING) == "false"
    assert REINSTALL not in result["release"]["annotations"]
    assert result["release"]["annotations"].get(IS_UPDATING) == "false"
    assert dkp_cluster.writes_since(mark, resource="modules", subresource="status"), \
        "the reinstall re-ran the module, so its status was written after the request"


def test_reinstall_of_a_release_that_is_not_deployed_fails_clearly(kc, dkp_cluster, pending):
    mark = dkp_cluster.audit_marker()
    run = run_tasks(kc, [mr_task(module=MODULE, version="0.2.0", action="reinstall")])
    msg = run.task("act")["msg"]
    assert status(run, "act") == "failed"
    assert "hello-world-v0.2.0 is Pending" in msg and "only the Deployed release" in msg, msg
    assert "hello-world-v0.1.1" in msg
    assert our_writes(dkp_cluster, mark) == []


@pytest.mark.parametrize("params, needle", [
    (dict(module=MODULE, version="latest", action="approve"), "not a semantic version"),
    (dict(module=MODULE, action="approve"), "set version"),
    (dict(name="hello-world-v0.2.0", module=MODULE, action="approve"), "name selects the release on its own"),
    (dict(module=MODULE, version="0.2.0", release="pending", action="approve"), "use one of them"),
    (dict(module=MODULE, version="9.9.9", action="approve"), "has no release 9.9.9. Its releases: 0.1.1 (Deployed)"),
    (dict(name="hello-world-v9.9.9", action="approve"), "hello-world-v9.9.9 does not exist"),
    (dict(module=MODULE, version="0.2.0", action="promote"), "value of action must be one of"),
])
def test_bad_input_fails_before_any_write(kc, dkp_cluster, hello, params, needle):
    mark = dkp_cluster.audit_marker()
    run = run_tasks(kc, [mr_task(**params)])
    assert status(run, "act") == "failed"
    assert needle in run.task("act")["msg"], run.task("act")["msg"]
    assert our_writes(dkp_cluster, mark) == []


def test_wait_timeout_names_the_release_and_module_state(kc, api, pending):
    pending.pause()
    try:
        run = run_tasks(kc, [mr_task(module=MODULE, version="0.2.0", action="approve", wait=True, wait_timeout=3)])
    finally:
        pending.resume()
    result = run.task("act")
    assert status(run, "act") == "failed" and result["changed"] is True
    msg = result["msg"]
    assert "Timed out after 3s" in msg, msg
    assert "release hello-world-v0.2.0 is Pending: %s" % APPROVAL_MESSAGE in msg, msg
    assert "Module hello-world: phase Ready" in msg, msg
    assert result["release"]["approved"] is True


def test_lookup(kc, pending):
    run = run_tasks(kc, [{"name": "lk", "ansible.builtin.set_fact": {
        "all": "{{ lookup('deckhouse.platform.module_release', 'hello-world') }}",
        "deployed": "{{ lookup('deckhouse.platform.module_release', 'hello-world', deployed=true) }}",
        "no_releases": "{{ lookup('deckhouse.platform.module_release', 'commander') }}",
        "no_deployed": "{{ lookup('deckhouse.platform.module_release', 'commander', deployed=true, default='-') }}",
        "waiting": "{{ lookup('deckhouse.platform.module_release', 'hello-world') "
                   "| selectattr('blocked_by', 'contains', 'approval') | map(attribute='version') | list }}"}}])
    assert run.rc == 0, run.output
    facts = run.task("lk")["ansible_facts"]
    assert [r["version"] for r in facts["all"]] == ["0.1.1", "0.2.0", "0.3.0"]
    assert facts["deployed"]["version"] == "0.1.1" and facts["deployed"]["phase"] == "Deployed"
    assert facts["no_releases"] == [] and facts["no_deployed"] == "-"
    assert facts["waiting"] == ["0.2.0"]


def test_lookup_and_info_on_a_cluster_without_the_crds_fail_clearly(kc, bare_cluster):
    run = run_tasks(kc, [
        {"name": "info", INFO: {"kubeconfig": str(bare_cluster)}, "ignore_errors": True},
        {"name": "lk", "ansible.builtin.debug": {
            "msg": "{{ lookup('deckhouse.platform.module_release', 'console', kubeconfig='%s') }}" % bare_cluster},
         "ignore_errors": True},
    ])
    for task in ("info", "lk"):
        assert "does not serve deckhouse.io/v1alpha1 ModuleRelease: is this a Deckhouse cluster?" in run.task(task)["msg"]
    assert "Traceback" not in run.output


def test_results_carry_no_changelog_noise(kc, pending):
    run = run_tasks(kc, [mr_task(module=MODULE, release="deployed", action="approve")])
    assert run.rc == 0 and run.task("act")["changed"] is False
    assert set(run.task("act")["release"]) >= {"name", "module", "version", "phase", "message", "annotations"}
    assert "managedFields" not in json.dumps(run.task("act"))
