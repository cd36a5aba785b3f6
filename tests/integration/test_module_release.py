"""deckhouse.platform.module_release / module_release_info / the module_release lookup, through ansible-playbook,
against the local DKP cluster and the Deckhouse simulator.

Every test starts from a fresh simulator with the ModuleSource `example` (registry.example.com), the Manual
ModuleUpdatePolicy `manual` and the module hello-world enabled from that source: its first release 0.1.1 is
deployed (DKP installs a module's first release at once). Publishing 0.2.0 and 0.3.0 then creates two Pending
releases: 0.2.0 waits for approval, 0.3.0 for 0.2.0.

Every task's status is asserted: only tasks expected to fail carry ignore_errors, and they are asserted `failed`.
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


NOTIFIED = "modules.deckhouse.io/notified"


def mr_task(title="act", fails=False, **params):
    task = {"name": title, MR: params, "register": "out"}
    if fails:
        task["ignore_errors"] = True  # asserted `failed` by the test
    return task


def info_task(title="info", fails=False, **params):
    task = {"name": title, INFO: params, "register": "out"}
    if fails:
        task["ignore_errors"] = True
    return task


def ok(run, title="act"):
    assert status(run, title) == "ok", run.output
    return run.task(title)


def failed(run, title="act"):
    assert status(run, title) == "failed", run.output
    return run.task(title)


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
    for title in ("policy", "source", "config"):
        ok(run, title)
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
    run = run_tasks(kc, [info_task(module=MODULE), info_task("pending", phase=["Pending"]),
                         info_task("query", query="[?contains(blocked_by, 'approval')].name")])
    info = ok(run, "info")
    assert ok(run, "query")["query_result"] == ["hello-world-v0.2.0"]
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
    assert [r["version"] for r in ok(run, "pending")["releases"]] == ["0.2.0", "0.3.0"]
    assert info["changed"] is False


def test_approval_flow_is_waitable_and_idempotent(kc, api, dkp_cluster, pending):
    task = mr_task(module=MODULE, version="v0.2.0", action="approve", wait=True, wait_timeout=60)
    run = run_tasks(kc, [task])
    result = ok(run)
    assert result["changed"] is True
    assert result["release"]["name"] == "hello-world-v0.2.0"
    assert result["release"]["phase"] == "Deployed" and result["release"]["approved"] is True
    assert result["module"]["name"] == MODULE
    assert phase(release(api, "0.1.1")) == "Superseded"
    assert annotations(release(api, "0.2.0"))[APPROVED] == "true"
    assert annotations(release(api, "0.2.0"))[NOTIFIED] == "true", "released DKP writes notified: true on deploy"

    mark = dkp_cluster.audit_marker()
    again = run_tasks(kc, [task])
    assert ok(again)["changed"] is False
    assert our_writes(dkp_cluster, mark) == []

    # 0.3.0 now waits for its own approval, and `release: pending` finds it
    eventually(lambda: message(api, "0.3.0") == APPROVAL_MESSAGE, what="0.3.0 waiting for approval")
    nxt = run_tasks(kc, [mr_task(module=MODULE, release="pending", action="approve", wait=True, wait_timeout=60)])
    assert ok(nxt)["release"]["version"] == "0.3.0" and nxt.task("act")["release"]["phase"] == "Deployed"
    none_left = run_tasks(kc, [mr_task(module=MODULE, release="pending", action="approve")])
    assert ok(none_left)["changed"] is False and none_left.task("act")["release"] is None


def test_approving_a_superseded_release_fails_with_its_phase_and_the_deployed_one(kc, api, dkp_cluster, pending):
    run = run_tasks(kc, [mr_task(module=MODULE, version="0.2.0", action="approve", wait=True, wait_timeout=60)])
    ok(run)
    mark = dkp_cluster.audit_marker()
    bad = run_tasks(kc, [mr_task(name="hello-world-v0.1.1", action="approve", fails=True),
                         mr_task(title="now", module=MODULE, version="0.1.1", action="apply_now", fails=True)])
    for task in ("act", "now"):
        result = failed(bad, task)
        assert "hello-world-v0.1.1 is Superseded" in result["msg"], result["msg"]
        assert "the Deployed release is hello-world-v0.2.0 (0.2.0)" in result["msg"], result["msg"]
    assert our_writes(dkp_cluster, mark) == []


def test_apply_now_deploys_and_is_not_added_again(kc, api, dkp_cluster, pending):
    task = mr_task(name="hello-world-v0.2.0", action="apply_now", wait=True, wait_timeout=60)
    run = run_tasks(kc, [task])
    assert ok(run)["changed"] is True
    deployed = release(api, "0.2.0")
    assert phase(deployed) == "Deployed"
    assert APPLY_NOW not in annotations(deployed), "the controller deletes apply-now after deploying"
    assert APPROVED not in annotations(deployed), "apply-now deploys without approval"

    mark = dkp_cluster.audit_marker()
    again = run_tasks(kc, [task])
    assert ok(again)["changed"] is False
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
    ok(run, "policy")
    ok(run, "config")
    hello.add_release(MODULE, "0.1.2", source="example")
    eventually(lambda: message(api, "0.1.2").startswith("Release is waiting for the update window until "),
               what="0.1.2 waiting for the update window")
    info = run_tasks(kc, [info_task(module=MODULE, phase=["Pending"])])
    pending_release = ok(info, "info")["releases"][0]
    assert pending_release["message"] == message(api, "0.1.2")
    assert pending_release["blocked_by"] == ["update_window"]

    now = run_tasks(kc, [mr_task(module=MODULE, version="0.1.2", action="apply_now", wait=True, wait_timeout=60)])
    assert ok(now)["release"]["phase"] == "Deployed"


def test_check_mode_writes_nothing_and_reports_the_change(kc, api, dkp_cluster, pending):
    mark = dkp_cluster.audit_marker()
    run = run_tasks(kc, [mr_task(module=MODULE, version="0.2.0", action="approve", wait=True)], check=True, diff=True)
    result = ok(run)
    assert result["changed"] is True
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
    result = ok(run)
    assert result["changed"] is True
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
    run = run_tasks(kc, [mr_task(module=MODULE, version="0.2.0", action="reinstall", fails=True)])
    msg = failed(run)["msg"]
    assert "hello-world-v0.2.0 is Pending" in msg and "only the Deployed release" in msg, msg
    assert "hello-world-v0.1.1" in msg
    assert our_writes(dkp_cluster, mark) == []


def test_bad_inputs_are_refused_before_any_write(kc, dkp_cluster, hello):
    """One playbook, every bad input a task of its own (writer and reader): each fails with its message, and the
    audit log shows no write at all."""
    cases = [
        ("semver", dict(module=MODULE, version="latest", action="approve"), "not a semantic version"),
        ("semver-4", dict(module=MODULE, version="1.2.3.4", action="approve"), "not a semantic version"),
        ("no-version", dict(module=MODULE, action="approve"), "set version"),
        ("no-selection", dict(action="approve"), "set name"),
        ("name-and-module", dict(name="hello-world-v0.2.0", module=MODULE, action="approve"),
         "name selects the release on its own"),
        ("both", dict(module=MODULE, version="0.2.0", release="pending", action="approve"), "use one of them"),
        ("missing-version", dict(module=MODULE, version="9.9.9", action="approve"),
         "has no release 9.9.9. Its releases: 0.1.1 (Deployed)"),
        ("missing-name", dict(name="hello-world-v9.9.9", action="approve"), "hello-world-v9.9.9 does not exist"),
        ("action", dict(module=MODULE, version="0.2.0", action="promote"), "value of action must be one of"),
        ("no-action", dict(module=MODULE, version="0.2.0"), "missing required arguments: action"),
        ("release-which", dict(module=MODULE, release="latest", action="approve"), "value of release must be one of"),
        ("module-name", dict(module="Hello_World", release="pending", action="approve"), "not a valid module name"),
        ("release-name", dict(name="Hello World", action="approve"), "not a valid ModuleRelease name"),
        ("timeout-0", dict(module=MODULE, version="0.1.1", action="approve", wait=True, wait_timeout=0),
         "wait_timeout must be greater than 0"),
        ("timeout-neg", dict(module=MODULE, version="0.1.1", action="reinstall", wait=True, wait_timeout=-1),
         "wait_timeout must be greater than 0"),
        ("grace-neg", dict(module=MODULE, action="reinstall", wait=True, wait_grace=-3), "wait_grace must be 0 or more"),
        ("wait-str", dict(module=MODULE, action="reinstall", wait="sometimes"), "wait"),
    ]
    reader_cases = [
        ("i-wait-module", dict(module=MODULE, wait_for="deployed"), "wait_for waits on one release"),
        ("i-wait-which", dict(name="hello-world-v0.1.1", wait_for="ready"), "value of wait_for must be one of"),
        ("i-version-only", dict(version="0.1.1"), "set module too"),
        ("i-name-module", dict(name="hello-world-v0.1.1", module=MODULE), "name selects one release on its own"),
        ("i-semver", dict(module=MODULE, version="one"), "not a semantic version"),
        ("i-phase", dict(phase=["Done"]), "value of phase must be one or more of"),
        ("i-query", dict(query="[?phase=="), "`query` is not a valid JMESPath expression"),
        ("i-timeout", dict(name="hello-world-v0.1.1", wait_for="deployed", wait_timeout=-1),
         "wait_timeout must be greater than 0"),
        ("i-missing", dict(module=MODULE, version="9.9.9"), "has no release 9.9.9"),
    ]
    mark = dkp_cluster.audit_marker()
    tasks = [mr_task(title, fails=True, **params) for title, params, _needle in cases]
    tasks += [info_task(title, fails=True, **params) for title, params, _needle in reader_cases]
    run = run_tasks(kc, tasks)
    for title, _params, needle in cases + reader_cases:
        msg = failed(run, title)["msg"]
        assert needle in msg, (title, msg)
    assert "Traceback" not in run.output
    assert our_writes(dkp_cluster, mark) == []


def test_wait_timeout_names_the_release_and_module_state(kc, api, pending):
    pending.pause()
    try:
        run = run_tasks(kc, [mr_task(module=MODULE, version="0.2.0", action="approve", wait=True, wait_timeout=3,
                                     fails=True)])
    finally:
        pending.resume()
    result = failed(run)
    assert result["changed"] is True
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
    facts = ok(run, "lk")["ansible_facts"]
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
        assert "does not serve deckhouse.io/v1alpha1 ModuleRelease: is this a Deckhouse cluster?" in \
            failed(run, task)["msg"]
    assert "Traceback" not in run.output


def test_results_carry_no_changelog_noise(kc, pending):
    run = run_tasks(kc, [mr_task(module=MODULE, release="deployed", action="approve")])
    assert ok(run)["changed"] is False
    assert set(run.task("act")["release"]) >= {"name", "module", "version", "phase", "message", "annotations"}
    assert "managedFields" not in json.dumps(run.task("act"))


def patch_annotations(api, version, annotations_):
    api.patch_cluster_custom_object("deckhouse.io", "v1alpha1", "modulereleases", "%s-v%s" % (MODULE, version),
                                    {"metadata": {"annotations": annotations_}})


def test_approval_is_read_as_go_parse_bool(kc, api, dkp_cluster, pending):
    """`TrUe` is no approval for DKP (strconv.ParseBool): the release stays Pending, the reader says not approved,
    and approve writes "true" over it. `True` is one: approve then changes nothing."""
    patch_annotations(api, "0.2.0", {APPROVED: "TrUe"})
    time.sleep(1)
    assert phase(release(api, "0.2.0")) == "Pending"
    run = run_tasks(kc, [info_task(module=MODULE, version="0.2.0"),
                         mr_task(module=MODULE, version="0.2.0", action="approve", wait=True, wait_timeout=60)])
    assert ok(run, "info")["release"]["approved"] is False
    result = ok(run)
    assert result["changed"] is True and result["release"]["phase"] == "Deployed"
    assert annotations(release(api, "0.2.0"))[APPROVED] == "true"

    eventually(lambda: message(api, "0.3.0") == APPROVAL_MESSAGE, what="0.3.0 waiting for approval")
    patch_annotations(api, "0.3.0", {APPROVED: "True"})
    eventually(lambda: phase(release(api, "0.3.0")) == "Deployed", what="0.3.0 deployed on `True`")
    mark = dkp_cluster.audit_marker()
    again = run_tasks(kc, [mr_task(module=MODULE, version="0.3.0", action="approve")])
    assert ok(again)["changed"] is False and again.task("act")["release"]["approved"] is True
    assert our_writes(dkp_cluster, mark) == []


def test_info_waits_for_pending_and_deployed(kc, api, dkp_cluster, hello):
    """module_release_info waits on the one engine: for a release the next scan creates (pending), and for its
    deploy (deployed) after an approval made outside the task; a release that cannot get there fails at once."""
    hello.add_release(MODULE, "0.2.0", source="example")
    mark = dkp_cluster.audit_marker()
    run = run_tasks(kc, [
        info_task("pending", module=MODULE, version="0.2.0", wait_for="pending", wait_timeout=60),
        {"name": "approve", "ansible.builtin.command": {"argv": [
            "kubectl", "--kubeconfig", str(kc), "annotate", "modulerelease", "hello-world-v0.2.0",
            "%s=true" % APPROVED]}, "changed_when": True},
        info_task("deployed", name="hello-world-v0.2.0", wait_for="deployed", wait_timeout=60),
        info_task("never", module=MODULE, version="0.1.1", wait_for="pending", wait_timeout=60, fails=True),
    ])
    assert ok(run, "pending")["release"]["phase"] == "Pending"
    ok(run, "approve")
    deployed = ok(run, "deployed")
    assert deployed["release"]["phase"] == "Deployed" and deployed["release"]["name"] == "hello-world-v0.2.0"
    assert deployed["modules"][MODULE]["deployed"]["version"] == "0.2.0"
    never = failed(run, "never")
    assert "hello-world-v0.1.1 is Superseded, not Pending" in never["msg"], never["msg"]
    assert [w for w in our_writes(dkp_cluster, mark) if w.resource == "modulereleases" and not w.dry_run] == [], \
        "the reader wrote nothing (the approval came from kubectl)"


def test_a_step_right_after_a_deploy_rides_through_the_deckhouse_restart(kc, api, pending):
    """Every deploy restarts Deckhouse: for a while its webhook refuses ModuleConfig writes. The next task (as the
    next step of a role would) still succeeds: the client retries the refused write."""
    pending.restart_seconds(6)
    try:
        before = pending.state().get("restarts", 0)
        run = run_tasks(kc, [
            mr_task(module=MODULE, version="0.2.0", action="approve", wait=True, wait_timeout=90),
            {"name": "next", "deckhouse.platform.module_config": {"name": "commander", "enabled": False},
             "register": "out"},
            mr_task("reinstall", module=MODULE, action="reinstall", wait=True, wait_timeout=90),
            {"name": "after-reinstall", "deckhouse.platform.module_config": {"name": "console", "enabled": False},
             "register": "out"},
        ])
    finally:
        pending.restart_seconds(3)
    assert ok(run)["release"]["phase"] == "Deployed"
    assert ok(run, "next")["changed"] is True
    assert ok(run, "reinstall")["module"]["ready"] is True
    assert ok(run, "after-reinstall")["changed"] is True
    assert pending.state().get("restarts", 0) >= before + 2, "Deckhouse restarted after the deploy and the reinstall"


def test_reinstall_tolerates_a_transient_hook_error_and_fails_on_a_persistent_one(kc, api, hello):
    hello.module_error(MODULE, message="hook retried: webhook not ready", duration=6)
    run = run_tasks(kc, [mr_task(module=MODULE, action="reinstall", wait=True, wait_timeout=90)])
    result = ok(run)
    assert result["changed"] is True and result["module"]["ready"] is True

    hello.module_error(MODULE, message="hook failed: bad config", duration=0)
    try:
        started = time.monotonic()
        bad = run_tasks(kc, [mr_task(module=MODULE, action="reinstall", wait=True, wait_timeout=90, wait_grace=3,
                                     fails=True)])
        elapsed = time.monotonic() - started
    finally:
        hello.module_error_clear(MODULE)
    result = failed(bad)
    assert result["changed"] is True, "the reinstall was requested; the wait failed"
    assert "hook failed: bad config" in result["msg"], result["msg"]
    assert elapsed < 60, "failed after the grace window, not at the timeout"
