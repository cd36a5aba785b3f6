"""deckhouse.platform.module_source through ansible-playbook against the local DKP cluster and the simulator:
credentials compared by value and never printed, waits for a fresh sync, the Deckhouse-owned source."""
from __future__ import annotations

import base64
import json

import pytest

from ansible_run import run_tasks
from ansible_run import task_status as status
from dkp_audit import our_writes

MS = "deckhouse.platform.module_source"
REPO = "registry.example.com/deckhouse/modules"
HOST = "registry.example.com"
PASSWORD = "s3cr3t-Registry-Pa55"
NO_LOG = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


def ms_task(title="src", **params):
    return {"name": title, MS: params, "register": "out", "ignore_errors": True}


def get_source(api, name):
    from kubernetes.client.rest import ApiException
    try:
        return api.get_cluster_custom_object("deckhouse.io", "v1alpha1", "modulesources", name)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def docker_cfg(obj):
    value = (((obj or {}).get("spec") or {}).get("registry") or {}).get("dockerCfg")
    return json.loads(base64.b64decode(value)) if value else None


def secret_forms(user, password):
    """Every form the password could leak in: itself, user:password in base64, the whole dockerCfg."""
    auth = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
    return [password, auth]


def test_credentials_are_written_once_compared_by_value_and_never_printed(kc, api, dkp_cluster, fresh_simulator):
    task = ms_task(name="example", repo=REPO, registry_username="robot", registry_password=PASSWORD,
                   scan_interval="30s", wait=True, wait_timeout=60)
    first = run_tasks(kc, [task], diff=True, verbosity=3)
    result = first.task("src")
    assert first.rc == 0 and result["changed"] is True and result["method"] == "create", first.output
    live = get_source(api, "example")
    cfg = docker_cfg(live)
    assert cfg["auths"][HOST]["username"] == "robot" and cfg["auths"][HOST]["password"] == PASSWORD
    assert result["source"]["docker_config"] == NO_LOG
    assert result["source"]["sync_time"], "waited for a sync"
    assert {"hello-world", "commander", "console"} <= {m["name"] for m in result["modules"]}
    dockercfg = live["spec"]["registry"]["dockerCfg"]
    for secret in secret_forms("robot", PASSWORD) + [dockercfg]:
        assert secret not in first.output, "a credential leaked into the -vvv output"
        assert secret not in json.dumps(first.records)

    mark = dkp_cluster.audit_marker()
    second = run_tasks(kc, [task], diff=True, verbosity=3)
    assert second.rc == 0 and second.task("src")["changed"] is False, second.output
    assert our_writes(dkp_cluster, mark) == []
    for secret in secret_forms("robot", PASSWORD) + [dockercfg]:
        assert secret not in second.output

    # the same credentials given as a docker config (another encoding) are still no change
    as_docker_config = base64.b64encode(json.dumps({"auths": {HOST: {"auth": base64.b64encode(
        ("robot:%s" % PASSWORD).encode()).decode()}}}, indent=2).encode()).decode()
    third = run_tasks(kc, [ms_task(name="example", repo=REPO, docker_config=as_docker_config)])
    assert third.rc == 0 and third.task("src")["changed"] is False, third.output


def test_new_password_is_a_change_with_a_redacted_diff(kc, api, fresh_simulator):
    run_tasks(kc, [ms_task(name="example", repo=REPO, registry_username="robot", registry_password="old-Pa55")])
    run = run_tasks(kc, [ms_task(name="example", registry_username="robot", registry_password=PASSWORD)],
                    diff=True, verbosity=3)
    result = run.task("src")
    assert run.rc == 0 and result["changed"] is True, run.output
    registry_after = result["diff"]["after"]["spec"]["registry"]
    assert registry_after["dockerCfg"] == NO_LOG and result["diff"]["before"]["spec"]["registry"]["dockerCfg"] == NO_LOG
    assert registry_after["repo"] == REPO
    assert docker_cfg(get_source(api, "example"))["auths"][HOST]["password"] == PASSWORD
    for secret in secret_forms("robot", PASSWORD) + secret_forms("robot", "old-Pa55"):
        assert secret not in run.output


def test_check_mode_writes_nothing(kc, api, dkp_cluster, fresh_simulator):
    mark = dkp_cluster.audit_marker()
    run = run_tasks(kc, [ms_task(name="example", repo=REPO, registry_username="robot", registry_password=PASSWORD,
                                 wait=True)], check=True, diff=True)
    result = run.task("src")
    assert run.rc == 0 and result["changed"] is True, run.output
    assert result["source"]["repo"] == REPO and result["source"]["docker_config"] == NO_LOG
    writes = our_writes(dkp_cluster, mark)
    assert writes and all(w.dry_run for w in writes), writes
    assert get_source(api, "example") is None
    assert PASSWORD not in run.output


def test_pull_errors_of_offered_modules_are_returned(kc, fresh_simulator):
    run = run_tasks(kc, [
        ms_task(name="example", repo=REPO, wait=True, wait_timeout=60),
        {"name": "enable", "deckhouse.platform.module_config": {"name": "broken-module", "enabled": True,
                                                                "source": "example"}},
        ms_task(title="after", name="example", scan_interval="10s", wait=True, wait_timeout=60),
    ])
    assert run.rc == 0, run.output
    modules = {m["name"]: m for m in run.task("after")["modules"]}
    assert "MANIFEST_UNKNOWN" in modules["broken-module"]["error"]
    assert modules["hello-world"]["error"] is None
    assert run.task("after")["source"]["message"] == "Some errors occurred. Inspect status for details"


def test_deckhouse_source_allows_only_scan_interval(kc, api, dkp_cluster, fresh_simulator):
    before = get_source(api, "deckhouse")
    mark = dkp_cluster.audit_marker()
    bad = run_tasks(kc, [ms_task(name="deckhouse", repo="registry.example.com/other"),
                         ms_task(title="creds", name="deckhouse", registry_username="u", registry_password=PASSWORD),
                         ms_task(title="delete", name="deckhouse", state="absent")])
    for task in ("src", "creds"):
        msg = bad.task(task)["msg"]
        assert status(bad, task) == "failed"
        assert "managed by Deckhouse" in msg and "only scan_interval" in msg, msg
    assert "cannot be deleted" in bad.task("delete")["msg"]
    assert our_writes(dkp_cluster, mark) == []
    assert get_source(api, "deckhouse")["spec"] == before["spec"]

    ok = run_tasks(kc, [ms_task(name="deckhouse", scan_interval="1m", wait=True, wait_timeout=60)], diff=True)
    result = ok.task("src")
    assert ok.rc == 0 and result["changed"] is True, ok.output
    assert get_source(api, "deckhouse")["spec"]["scanInterval"] == "1m"
    assert result["source"]["deckhouse_owned"] is True and result["source"]["docker_config"] == NO_LOG
    assert "FAKE-SECRET" not in ok.output, "the deckhouse source's own dockerCfg stays hidden"


def test_wait_needs_a_sync_newer_than_the_change(kc, api, fresh_simulator):
    run_tasks(kc, [ms_task(name="example", repo=REPO, wait=True, wait_timeout=60)])
    synced_before = get_source(api, "example")["status"]["syncTime"]
    fresh_simulator.pause()
    try:
        stale = run_tasks(kc, [ms_task(name="example", scan_interval="45s", wait=True, wait_timeout=3)])
    finally:
        fresh_simulator.resume()
    msg = stale.task("src")["msg"]
    assert status(stale, "src") == "failed" and stale.task("src")["changed"] is True
    assert "Timed out after 3s" in msg and "syncTime %s" % synced_before in msg, msg
    fresh = run_tasks(kc, [ms_task(name="example", scan_interval="40s", wait=True, wait_timeout=60)])
    assert fresh.rc == 0, fresh.output
    assert fresh.task("src")["source"]["sync_time"] != synced_before or fresh.task("src")["changed"] is False


@pytest.mark.parametrize("params, needle", [
    (dict(name="example", repo="https://registry.example.com/m"), "without the scheme"),
    (dict(name="example", repo=REPO, scan_interval="5 minutes"), "scan_interval must be a duration"),
    (dict(name="example", repo=REPO, docker_config="bm90IGpzb24="), "not a base64-encoded docker config"),
    (dict(name="example", repo=REPO, registry_username="u"), "registry_password"),
    (dict(name="example", scan_interval="1m"), "set repo"),
    (dict(name="Example", repo=REPO), "not a valid ModuleSource name"),
])
def test_bad_input_fails_before_any_write(kc, dkp_cluster, fresh_simulator, params, needle):
    mark = dkp_cluster.audit_marker()
    run = run_tasks(kc, [ms_task(**params)])
    assert status(run, "src") == "failed"
    assert needle in run.task("src")["msg"], run.task("src")["msg"]
    assert our_writes(dkp_cluster, mark) == []


def test_absent_deletes_and_waits_until_gone(kc, api, fresh_simulator):
    run_tasks(kc, [ms_task(name="example", repo=REPO, wait=True, wait_timeout=60)])
    run = run_tasks(kc, [ms_task(name="example", state="absent", wait=True, wait_timeout=60)])
    assert run.rc == 0 and run.task("src")["changed"] is True, run.output
    assert get_source(api, "example") is None
    again = run_tasks(kc, [ms_task(name="example", state="absent")])
    assert again.task("src")["changed"] is False
