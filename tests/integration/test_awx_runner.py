"""Every playbook under playbooks/ as an AWX job (issue 11): ansible-runner with an AWX-shaped private data dir.

Survey answers are strings in env/extravars ("true", "false", "yes", "0", "", "600"), the credential is what AWX's
Kubernetes bearer-token credential injects in env/envvars (a ServiceAccount token with cluster-admin on the local
cluster), and each test checks the job's outcome, the `artifact_data` published with set_stats, what the cluster
shows, and that no secret (token, license, passwords, and their base64 forms) is in any artifact file.

A "false" confirmation must refuse before any write: the audit log shows no write of the collection to a DKP object
(the run lock Lease, the runbook's own bookkeeping, is the only write allowed and is released again).
"""
from __future__ import annotations

import pathlib
import time

import pytest
from kubernetes.client.rest import ApiException

from awx_runner import run_job, secret_forms, service_account_credential
from dkp_audit import our_writes
from registry_support import FAKE_STATE_SECRET, LICENSE, PASSWORD, REPO, Cluster

ROOT = pathlib.Path(__file__).resolve().parents[2]
HOST = "cluster-a"
SOURCE_PASSWORD = "SOURCE-PASSWORD-awx-9c1d-must-never-be-printed"
MIGRATE_LICENSE = "MIGRATE-LICENSE-awx-44ab-must-never-be-printed"
# playbook -> the test function(s) below that run it; a new playbook without a test here fails the suite
COVERED = {
    "module_enable.yml": "test_module_enable_survey_strings",
    "module_dev_override.yml": "test_module_dev_override_survey_strings",
    "module_reinstall.yml": "test_module_reinstall_survey_strings",
    "module_release_approve.yml": "test_module_release_approve_survey_strings",
    "module_source_switch.yml": "test_module_source_switch_check_job",
    "registry_migrate.yml": "test_registry_migrate_false_confirmation_refuses_before_writing",
    "registry_switch.yml": "test_registry_switch_false_confirmation_then_true",
    "gitops_sync.yml": "test_gitops_sync_plan_job",
}


def test_every_playbook_has_an_awx_job_test():
    playbooks = sorted(p.name for p in (ROOT / "playbooks").glob("*.yml"))
    assert sorted(COVERED) == playbooks, "playbooks without an ansible-runner test: %s" % sorted(
        set(playbooks) - set(COVERED))
    for test in COVERED.values():
        assert test in globals(), test


@pytest.fixture(scope="module")
def credential(dkp_cluster, kube, tmp_path_factory):
    if dkp_cluster.audit_log_path is None:
        pytest.skip("needs a harness cluster (audit log and simulator)")
    return service_account_credential(kube, pathlib.Path(dkp_cluster.kubeconfig),
                                      tmp_path_factory.mktemp("awx-credential") / "ca.crt")


@pytest.fixture
def jobs(tmp_path):
    return tmp_path / "jobs"


def secrets_of(credential):
    return [credential["K8S_AUTH_API_KEY"], LICENSE, PASSWORD, SOURCE_PASSWORD, MIGRATE_LICENSE, FAKE_STATE_SECRET]


def assert_no_secret_in_artifacts(job, credential):
    """No secret, nor its base64 form, in any artifact file. Runner's own `command` file records the job's
    environment (the credential AWX injected, by design of ansible-runner): only the token may be there."""
    token = credential["K8S_AUTH_API_KEY"]
    for path, text in job.artifact_texts():
        for secret in secrets_of(credential):
            if path.name == "command" and secret == token:
                continue
            for form in secret_forms(secret):
                assert form not in text, "secret %s... (or its base64) in artifact %s" % (secret[:12], path)


def writes_to_dkp(dkp_cluster, mark):
    """The collection's real writes since `mark`, the run lock Lease left out."""
    return [w for w in our_writes(dkp_cluster, mark) if not w.dry_run and w.resource != "leases"]


def lock_free(kube):
    from kubernetes import client
    from kubernetes.client.rest import ApiException
    try:
        lease = client.CoordinationV1Api(kube).read_namespaced_lease("deckhouse-platform-runbook", "d8-system")
    except ApiException as e:
        if e.status == 404:
            return True
        raise
    return not (lease.spec.holder_identity or "")


def clear_lock(kube):
    """A killed earlier run leaves its Lease until it expires; the tests start without one."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException
    try:
        client.CoordinationV1Api(kube).delete_namespaced_lease("deckhouse-platform-runbook", "d8-system")
    except ApiException as e:
        if e.status != 404:
            raise


def report(job, key):
    data = job.artifact_data
    assert key in data and HOST in data[key], "artifact_data has no %s.%s: %s" % (key, HOST, data)
    return data[key][HOST]


def assert_ok(job):
    assert job.rc == 0 and job.status == "successful", "job %s (rc %s) failed tasks %s:\n%s" % (
        job.status, job.rc, job.failed_tasks(), job.stdout[-6000:])


def assert_failed(job):
    assert job.rc != 0 and job.status == "failed", "job should have failed (%s, rc %s):\n%s" % (
        job.status, job.rc, job.stdout[-4000:])


# -- the module runbooks, each on a fresh simulator (no test relies on what an earlier one left) -------------


@pytest.fixture
def module_cluster(fresh_simulator, credential, kube):
    clear_lock(kube)
    yield fresh_simulator
    fresh_simulator.reset()


def wait_until(predicate, what, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except ApiException as e:  # not created yet
            if e.status != 404:
                raise
        time.sleep(0.5)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


@pytest.fixture
def hello_world(module_cluster, api):
    """hello-world enabled from ModuleSource `example` and Ready: what test_module_enable_survey_strings makes
    through AWX, made here with the admin client so that the tests that need it run in any order."""
    api.create_cluster_custom_object("deckhouse.io", "v1alpha1", "modulesources", {
        "apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleSource", "metadata": {"name": "example"},
        "spec": {"registry": {"repo": "registry.example.com/deckhouse/modules"}}})
    wait_until(lambda: "example" in ((api.get_cluster_custom_object("deckhouse.io", "v1alpha1", "modules",
                                                                    "hello-world").get("properties") or {})
                                     .get("availableSources") or []), "ModuleSource example to offer hello-world")
    api.create_cluster_custom_object("deckhouse.io", "v1alpha1", "moduleconfigs", {
        "apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleConfig", "metadata": {"name": "hello-world"},
        "spec": {"enabled": True, "source": "example"}})

    def ready():
        status = api.get_cluster_custom_object("deckhouse.io", "v1alpha1", "modules", "hello-world").get("status") or {}
        return status.get("phase") == "Ready" and any(
            c.get("type") == "IsReady" and c.get("status") == "True" for c in status.get("conditions") or [])
    wait_until(ready, "module hello-world to be Ready")
    return module_cluster


def test_module_enable_survey_strings(module_cluster, credential, jobs, dkp_cluster, kube, api):
    answers = {
        "module_enable_module": "hello-world",
        "module_enable_state": "enabled",
        "module_enable_source": "example",
        "module_enable_source_repo": "registry.example.com/deckhouse/modules",
        "module_enable_source_scan_interval": "10s",
        "module_enable_source_username": "reader",
        "module_enable_source_password": SOURCE_PASSWORD,
        "module_enable_source_timeout": "300",
        "module_enable_wait_timeout": "600",
        "module_enable_allow_disabling": "false",
        "module_enable_update_policy": "",
        "module_enable_update_policy_mode": "",
        "module_enable_update_policy_windows": "",
        "module_enable_settings": "",
        "module_enable_settings_mode": "merge",
        "module_enable_report_dir": "",
    }
    job = run_job(jobs, credential, "module_enable.yml", answers)
    assert_ok(job)
    rep = report(job, "module_enable")
    assert rep["status"] == "succeeded" and rep["module_after"]["ready"] is True, rep
    assert [w["step"] for w in rep["writes"]] == ["module_source", "module_config"], rep["writes"]
    assert lock_free(kube)
    assert_no_secret_in_artifacts(job, credential)

    # the same answers again: nothing to change
    mark = dkp_cluster.audit_marker()
    again = run_job(jobs, credential, "module_enable.yml", answers)
    assert_ok(again)
    assert report(again, "module_enable")["writes"] == []
    assert again.stats.get("changed", {}).get(HOST, 0) == 0, again.stats
    assert writes_to_dkp(dkp_cluster, mark) == []

    # a bad boolean and a zero timeout are refused before anything, naming the variables
    mark = dkp_cluster.audit_marker()
    bad_answers = dict(answers, module_enable_allow_disabling="maybe", module_enable_wait_timeout="0")
    bad = run_job(jobs, credential, "module_enable.yml", bad_answers)
    assert_failed(bad)
    assert "module_enable_allow_disabling" in bad.stdout and "module_enable_wait_timeout" in bad.stdout
    assert our_writes(dkp_cluster, mark) == []


def test_module_dev_override_survey_strings(hello_world, credential, jobs, kube):
    answers = {"module_dev_override_module": "hello-world", "module_dev_override_image_tag": "pr-42",
               "module_dev_override_scan_interval": "30s", "module_dev_override_rollback": "true",
               "module_dev_override_renew": "false", "module_dev_override_wait_timeout": "180"}
    job = run_job(jobs, credential, "module_dev_override.yml", answers)
    assert_ok(job)
    rep = report(job, "module_dev_override")
    assert rep["status"] == "succeeded" and rep["renew"] is False and rep["rollback"] is True, rep
    gone = run_job(jobs, credential, "module_dev_override.yml", {
        "module_dev_override_module": "hello-world", "module_dev_override_state": "absent",
        "module_dev_override_rollback": "yes", "module_dev_override_renew": "", "module_dev_override_wait_timeout": "180"})
    assert_ok(gone)
    assert report(gone, "module_dev_override")["status"] == "succeeded"
    assert lock_free(kube)
    assert_no_secret_in_artifacts(gone, credential)


def test_module_reinstall_survey_strings(hello_world, credential, jobs, dkp_cluster):
    mark = dkp_cluster.audit_marker()
    job = run_job(jobs, credential, "module_reinstall.yml", {
        "module_reinstall_module": "hello-world", "module_reinstall_force": "0", "module_reinstall_wait_timeout": "600"})
    assert_ok(job)
    rep = report(job, "module_reinstall")
    # Ready and not forced ("0" is false): nothing to reinstall, nothing written
    assert rep["status"] == "succeeded" and rep["writes"] == [], rep
    assert writes_to_dkp(dkp_cluster, mark) == []
    assert_no_secret_in_artifacts(job, credential)


def test_module_release_approve_survey_strings(hello_world, credential, jobs, dkp_cluster):
    mark = dkp_cluster.audit_marker()
    job = run_job(jobs, credential, "module_release_approve.yml", {
        "module_release_approve_module": "hello-world", "module_release_approve_version": "",
        "module_release_approve_all": "no", "module_release_approve_apply_now": "false",
        "module_release_approve_wait": "yes", "module_release_approve_wait_timeout": "600"})
    assert_ok(job)
    rep = report(job, "module_release_approve")
    assert rep["status"] == "succeeded", rep
    assert writes_to_dkp(dkp_cluster, mark) == [] or rep["writes"], rep
    assert_no_secret_in_artifacts(job, credential)


def test_module_source_switch_check_job(hello_world, credential, jobs, dkp_cluster, kube):
    """A job template of type "check": reads for real, writes nothing, takes no lock."""
    mark = dkp_cluster.audit_marker()
    job = run_job(jobs, credential, "module_source_switch.yml", {
        "module_source_switch_module": "hello-world", "module_source_switch_source": "example",
        "module_source_switch_wait_timeout": "600", "module_source_switch_source_timeout": "300",
        "module_source_switch_release_timeout": "0"}, check=True)
    assert_ok(job)
    rep = report(job, "module_source_switch")
    assert rep["check_mode"] is True and rep["status"] == "succeeded", rep
    assert [w for w in our_writes(dkp_cluster, mark) if not w.dry_run] == []
    assert job.results("Runbook | take the run lock")[-1][0] == "runner_on_skipped"
    assert_no_secret_in_artifacts(job, credential)


# -- registry runbooks ---------------------------------------------------------------------------------------


@pytest.fixture
def registry_cluster(fresh_simulator, kube, credential):
    clear_lock(kube)
    c = Cluster(kube)
    c.enable_registry()
    return c


def test_registry_switch_false_confirmation_then_true(registry_cluster, credential, jobs, dkp_cluster, kube):
    answers = {"registry_switch_mode": "Direct", "registry_switch_images_repo": REPO,
               "registry_switch_license": LICENSE, "registry_switch_scheme": "", "registry_switch_via": "",
               "registry_switch_rollback_on_failure": "false", "registry_switch_timeout": "600",
               "registry_switch_queue_wait_timeout": "120", "registry_switch_images_timeout": "600"}
    before = registry_cluster.registry_settings()
    for word in ("false", "no", "0", ""):
        mark = dkp_cluster.audit_marker()
        job = run_job(jobs, credential, "registry_switch.yml", dict(answers, registry_switch_confirm_restart=word))
        assert_failed(job)
        assert "confirm_restart" in job.stdout, job.stdout[-3000:]
        assert writes_to_dkp(dkp_cluster, mark) == [], "confirm_restart=%r wrote" % word
        assert registry_cluster.registry_settings() == before
        rep = report(job, "registry_switch")
        assert rep["outcome"] == "failed" and rep["written"] is False
        assert any(b.startswith("confirm_restart") for b in rep["blockers"]), rep["blockers"]
        assert lock_free(kube)
        assert_no_secret_in_artifacts(job, credential)

    job = run_job(jobs, credential, "registry_switch.yml", dict(answers, registry_switch_confirm_restart="true"))
    assert_ok(job)
    rep = report(job, "registry_switch")
    assert rep["outcome"] == "switched" and rep["after"]["state"]["mode"] == "Direct", rep
    # issue 13: one preflight that also takes the run lock, one write that waits and settles on the controller
    # (verify reads with lookups), and the lock's release
    runs = job.module_executions()
    print("module executions of a one-hop switch: %d %s" % (len(runs), runs))
    assert sorted(runs) == sorted(["registry_switch_preflight", "registry_mode", "run_lock"]), runs
    assert registry_cluster.complete("Direct")
    assert lock_free(kube)
    assert_no_secret_in_artifacts(job, credential)


def test_registry_switch_bad_timeout_refused(registry_cluster, credential, jobs, dkp_cluster):
    for bad in ("-1", "0", "abc"):
        mark = dkp_cluster.audit_marker()
        job = run_job(jobs, credential, "registry_switch.yml", {
            "registry_switch_mode": "Direct", "registry_switch_images_repo": REPO, "registry_switch_license": LICENSE,
            "registry_switch_confirm_restart": "yes", "registry_switch_timeout": bad})
        assert_failed(job)
        assert "registry_switch_timeout" in job.stdout
        assert our_writes(dkp_cluster, mark) == []
        assert_no_secret_in_artifacts(job, credential)


def test_registry_migrate_false_confirmation_refuses_before_writing(fresh_simulator, credential, jobs,
                                                                    dkp_cluster, kube):
    clear_lock(kube)
    for word in ("false", ""):
        mark = dkp_cluster.audit_marker()
        job = run_job(jobs, credential, "registry_migrate.yml", {
            "registry_migrate_images_repo": "registry.deckhouse.io/deckhouse/ce",
            "registry_migrate_license": MIGRATE_LICENSE, "registry_migrate_confirm_restart": word,
            "registry_migrate_bashible_config_removed": "false", "registry_migrate_timeout": "300"})
        assert_failed(job)
        assert "registry_migrate_confirm_restart" in job.stdout
        assert writes_to_dkp(dkp_cluster, mark) == [], "confirm_restart=%r wrote" % word
        assert report(job, "registry_migrate")["status"] == "failed"
        # issue 13: preflight reads on the controller (lookups); the lock and the rescue's diagnostics are modules
        runs = job.module_executions()
        assert sorted(runs) == sorted(["run_lock", "registry_state_info", "module_info", "deckhouse_queue_info",
                                       "run_lock"]), runs
        assert lock_free(kube)
        assert_no_secret_in_artifacts(job, credential)


# -- gitops ------------------------------------------------------------------------------------------------------


def test_gitops_sync_plan_job(module_cluster, credential, jobs, dkp_cluster, tmp_path):
    src = tmp_path / "state"
    src.mkdir()
    (src / "modules.yaml").write_text(
        "apiVersion: deckhouse.io/v1alpha1\nkind: ModuleConfig\nmetadata:\n  name: prometheus\n"
        "spec:\n  version: 1\n  settings:\n    retentionDays: 12\n")
    mark = dkp_cluster.audit_marker()
    job = run_job(jobs, credential, "gitops_sync.yml", {
        "gitops_sync_mode": "plan", "gitops_sync_src": str(src), "gitops_sync_prune": "false",
        "gitops_sync_fail_on_drift": "no", "gitops_sync_wait_timeout": "900"})
    assert_ok(job)
    assert job.artifact_data, "gitops_sync published no artifact_data"
    assert [w for w in our_writes(dkp_cluster, mark) if not w.dry_run] == []
    assert_no_secret_in_artifacts(job, credential)


# -- one runbook at a time (issue 10) --------------------------------------------------------------------------


def test_second_run_fails_naming_the_lock_holder(module_cluster, credential, jobs, dkp_cluster, kube):
    import datetime

    from kubernetes import client

    now = datetime.datetime.now(datetime.timezone.utc)
    clear_lock(kube)
    client.CoordinationV1Api(kube).create_namespaced_lease("d8-system", {
        "metadata": {"name": "deckhouse-platform-runbook", "namespace": "d8-system",
                     "annotations": {"deckhouse.platform/purpose": "registry_switch to Proxy"}},
        "spec": {"holderIdentity": "awx-job-4242", "leaseDurationSeconds": 600,
                 "acquireTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                 "renewTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}})
    try:
        mark = dkp_cluster.audit_marker()
        job = run_job(jobs, credential, "module_reinstall.yml", {
            "module_reinstall_module": "hello-world", "module_reinstall_force": "true",
            "module_reinstall_wait_timeout": "600"})
        assert_failed(job)
        assert "awx-job-4242" in job.stdout and "registry_switch to Proxy" in job.stdout, job.stdout[-3000:]
        assert writes_to_dkp(dkp_cluster, mark) == []
        rep = report(job, "module_reinstall")
        assert rep["status"] == "failed" and "awx-job-4242" in rep["error"]["message"]
        lease = client.CoordinationV1Api(kube).read_namespaced_lease("deckhouse-platform-runbook", "d8-system")
        assert lease.spec.holder_identity == "awx-job-4242", "the other run's lock was released"
    finally:
        clear_lock(kube)
