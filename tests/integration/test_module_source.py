"""deckhouse.platform.module_source and module_source_info through ansible-playbook against the local DKP cluster
and the simulator: credentials compared by value and never printed, waits for a fresh sync that fail on a registry
error, the Deckhouse-owned source, bad input refused before writing. Every task's status is asserted: only tasks
expected to fail carry ignore_errors, and they are asserted `failed`."""
from __future__ import annotations

import base64
import json
import time

from ansible_run import run_tasks
from ansible_run import task_status as status
from dkp_audit import our_writes

MS = "deckhouse.platform.module_source"
INFO = "deckhouse.platform.module_source_info"
REPO = "registry.example.com/deckhouse/modules"
HOST = "registry.example.com"
PASSWORD = "s3cr3t-Registry-Pa55"
NO_LOG = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


def ms_task(title="src", fails=False, **params):
    task = {"name": title, MS: params, "register": "out"}
    if fails:
        task["ignore_errors"] = True  # asserted `failed` by the test
    return task


def ok(run, title="src"):
    assert status(run, title) == "ok", run.output
    return run.task(title)


def failed(run, title="src"):
    assert status(run, title) == "failed", run.output
    return run.task(title)


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
    result = ok(first)
    assert result["changed"] is True and result["method"] == "create", first.output
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
    assert ok(second)["changed"] is False
    assert our_writes(dkp_cluster, mark) == []
    for secret in secret_forms("robot", PASSWORD) + [dockercfg]:
        assert secret not in second.output

    # the same credentials given as a docker config (another encoding) are still no change
    as_docker_config = base64.b64encode(json.dumps({"auths": {HOST: {"auth": base64.b64encode(
        ("robot:%s" % PASSWORD).encode()).decode()}}}, indent=2).encode()).decode()
    third = run_tasks(kc, [ms_task(name="example", repo=REPO, docker_config=as_docker_config)])
    assert ok(third)["changed"] is False

    # the reader never shows them either, at -vvv
    read = run_tasks(kc, [{"name": "info", INFO: {"name": "example"}, "register": "out"}], verbosity=3)
    assert ok(read, "info")["source"]["docker_config"] == NO_LOG
    for secret in secret_forms("robot", PASSWORD) + [dockercfg]:
        assert secret not in read.output and secret not in json.dumps(read.records)


def test_new_password_is_a_change_with_a_redacted_diff(kc, api, fresh_simulator):
    ok(run_tasks(kc, [ms_task(name="example", repo=REPO, registry_username="robot", registry_password="old-Pa55")]))
    run = run_tasks(kc, [ms_task(name="example", registry_username="robot", registry_password=PASSWORD)],
                    diff=True, verbosity=3)
    result = ok(run)
    assert result["changed"] is True
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
    result = ok(run)
    assert result["changed"] is True
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
        ms_task(title="after", name="example", scan_interval="10m", wait=True, wait_timeout=60),
    ])
    ok(run, "enable")
    modules = {m["name"]: m for m in ok(run, "after")["modules"]}
    assert "MANIFEST_UNKNOWN" in modules["broken-module"]["error"]
    assert modules["hello-world"]["error"] is None
    assert run.task("after")["source"]["message"] == "Some errors occurred. Inspect status for details"


def test_deckhouse_source_allows_only_scan_interval(kc, api, dkp_cluster, fresh_simulator):
    before = get_source(api, "deckhouse")
    mark = dkp_cluster.audit_marker()
    bad = run_tasks(kc, [ms_task(name="deckhouse", repo="registry.example.com/other", fails=True),
                         ms_task(title="creds", name="deckhouse", registry_username="u", registry_password=PASSWORD,
                                 fails=True),
                         ms_task(title="delete", name="deckhouse", state="absent", fails=True)])
    for task in ("src", "creds"):
        msg = failed(bad, task)["msg"]
        assert "managed by Deckhouse" in msg and "only scan_interval" in msg, msg
    assert "cannot be deleted" in failed(bad, "delete")["msg"]
    assert our_writes(dkp_cluster, mark) == []
    assert get_source(api, "deckhouse")["spec"] == before["spec"]

    good = run_tasks(kc, [ms_task(name="deckhouse", scan_interval="5m", wait=True, wait_timeout=60)], diff=True)
    result = ok(good)
    assert result["changed"] is True
    assert get_source(api, "deckhouse")["spec"]["scanInterval"] == "5m"
    assert result["source"]["deckhouse_owned"] is True and result["source"]["docker_config"] == NO_LOG
    assert "FAKE-SECRET" not in good.output, "the deckhouse source's own dockerCfg stays hidden"
    assert not result.get("warnings"), "5m is longer than 3m: no warning"


def test_scan_interval_of_3m_or_less_is_written_with_a_warning(kc, api, fresh_simulator):
    run = run_tasks(kc, [ms_task(name="example", repo=REPO, scan_interval="1m")])
    result = ok(run)
    assert result["changed"] is True and get_source(api, "example")["spec"]["scanInterval"] == "1m"
    assert any("not longer than 3m" in w for w in result.get("warnings") or []), result


def test_wait_needs_a_sync_newer_than_the_change(kc, api, fresh_simulator):
    ok(run_tasks(kc, [ms_task(name="example", repo=REPO, wait=True, wait_timeout=60)]))
    synced_before = get_source(api, "example")["status"]["syncTime"]
    fresh_simulator.pause()
    try:
        stale = run_tasks(kc, [ms_task(name="example", scan_interval="45m", wait=True, wait_timeout=3, fails=True)])
    finally:
        fresh_simulator.resume()
    result = failed(stale)
    msg = result["msg"]
    assert result["changed"] is True, "the write happened; only the wait failed"
    assert "Timed out after 3s" in msg and "syncTime %s" % synced_before in msg, msg
    fresh = run_tasks(kc, [ms_task(name="example", scan_interval="40m", wait=True, wait_timeout=60)])
    result = ok(fresh)
    assert result["source"]["sync_time"] != synced_before or result["changed"] is False


def test_wait_fails_at_once_on_a_registry_error_and_the_reader_too(kc, api, fresh_simulator):
    """A repository the registry does not know: DKP's sync writes NAME_UNKNOWN into status.message."""
    repo = "registry.example.com/no/such/repo"
    started = time.monotonic()
    run = run_tasks(kc, [
        ms_task(name="broken", repo=repo, wait=True, wait_timeout=120, fails=True),
        {"name": "info", INFO: {"name": "broken", "wait_for": "synced", "wait_timeout": 120}, "register": "out",
         "ignore_errors": True},
        {"name": "list", INFO: {"query": "[?sync_error].name"}, "register": "out"},
    ])
    result = failed(run)
    assert result["changed"] is True
    assert "ModuleSource broken failed to sync its registry" in result["msg"] and "NAME_UNKNOWN" in result["msg"]
    assert "NAME_UNKNOWN" in failed(run, "info")["msg"]
    assert ok(run, "list")["query_result"] == ["broken"]
    assert time.monotonic() - started < 90, "both waits (timeout 120 s each) failed at once, not at the timeout"


def test_reader_one_all_wait_and_check_mode(kc, api, dkp_cluster, fresh_simulator):
    ok(run_tasks(kc, [ms_task(name="example", repo=REPO)]))
    mark = dkp_cluster.audit_marker()
    run = run_tasks(kc, [
        {"name": "synced", INFO: {"name": "example", "wait_for": "synced", "wait_timeout": 60}, "register": "out"},
        {"name": "all", INFO: {}, "register": "out"},
        {"name": "missing", INFO: {"name": "nope"}, "register": "out"},
        {"name": "offers", INFO: {"name": "example", "query": "[0].modules[?name=='hello-world'].name"},
         "register": "out"},
    ], check=True)
    synced = ok(run, "synced")
    assert synced["changed"] is False and synced["source"]["sync_time"] and synced["source"]["sync_error"] is None
    assert "hello-world" in [m["name"] for m in synced["source"]["modules"]]
    assert {"deckhouse", "example"} <= {s["name"] for s in ok(run, "all")["sources"]}
    assert ok(run, "missing")["source"] is None and ok(run, "missing")["sources"] == []
    assert ok(run, "offers")["query_result"] == ["hello-world"]
    assert our_writes(dkp_cluster, mark) == []


NOT_PEM = "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----"


def test_bad_inputs_are_refused_before_any_write(kc, dkp_cluster, fresh_simulator):
    """One playbook, every bad input a task of its own: each fails with its message, the audit log shows no
    write at all."""
    cases = [
        ("scheme-in-repo", dict(name="example", repo="https://registry.example.com/m"), "without the scheme"),
        ("repo-space", dict(name="example", repo="registry example.com/m"), "not a registry repository path"),
        ("scan-words", dict(name="example", repo=REPO, scan_interval="5 minutes"), "scan_interval must be a duration"),
        ("scan-number", dict(name="example", repo=REPO, scan_interval="300"), "scan_interval must be a duration"),
        ("scan-empty", dict(name="example", repo=REPO, scan_interval=""), "scan_interval must be a duration"),
        ("docker-config", dict(name="example", repo=REPO, docker_config="bm90IGpzb24="),
         "not a base64-encoded docker config"),
        ("user-only", dict(name="example", repo=REPO, registry_username="u"), "registry_password"),
        ("both-creds", dict(name="example", repo=REPO, docker_config="e30=", registry_username="u",
                            registry_password="p"), "mutually exclusive"),
        ("no-repo", dict(name="example", scan_interval="5m"), "set repo"),
        ("name-case", dict(name="Example", repo=REPO), "not a valid ModuleSource name"),
        ("name-long", dict(name="x" * 64, repo=REPO), "not a valid ModuleSource name"),
        ("scheme", dict(name="example", repo=REPO, scheme="FTP"), "value of scheme must be one of"),
        ("ca-text", dict(name="example", repo=REPO, ca="my-ca"), "ca must be a PEM certificate"),
        ("ca-bad-body", dict(name="example", repo=REPO, ca=NOT_PEM), "ca must be a PEM certificate"),
        ("absent-repo", dict(name="example", state="absent", repo=REPO), "state=absent deletes the source"),
        ("timeout-0", dict(name="example", repo=REPO, wait=True, wait_timeout=0), "wait_timeout must be greater than 0"),
        ("timeout-neg", dict(name="example", repo=REPO, wait=True, wait_timeout=-5),
         "wait_timeout must be greater than 0"),
        ("timeout-str", dict(name="example", repo=REPO, wait=True, wait_timeout="soon"), "wait_timeout"),
        ("grace-neg", dict(name="example", repo=REPO, wait=True, wait_grace=-1), "wait_grace must be 0 or more"),
        ("state", dict(name="example", repo=REPO, state="gone"), "value of state must be one of"),
    ]
    reader_cases = [
        ("info-wait-all", {"wait_for": "synced"}, "wait_for waits on one source: set name"),
        ("info-wait-for", {"name": "example", "wait_for": "ready"}, "value of wait_for must be one of"),
        ("info-timeout", {"name": "example", "wait_for": "synced", "wait_timeout": -1},
         "wait_timeout must be greater than 0"),
        ("info-query", {"query": "[?"}, "`query` is not a valid JMESPath expression"),
        ("info-name", {"name": "Bad_Name"}, "not a valid ModuleSource name"),
    ]
    mark = dkp_cluster.audit_marker()
    tasks = [ms_task(title, fails=True, **params) for title, params, _needle in cases]
    tasks += [{"name": title, INFO: params, "register": "out", "ignore_errors": True}
              for title, params, _needle in reader_cases]
    run = run_tasks(kc, tasks)
    for title, _params, needle in cases + reader_cases:
        msg = failed(run, title)["msg"]
        assert needle in msg, (title, msg)
    assert "Traceback" not in run.output
    assert our_writes(dkp_cluster, mark) == []


def test_absent_deletes_and_waits_until_gone(kc, api, fresh_simulator):
    ok(run_tasks(kc, [ms_task(name="example", repo=REPO, wait=True, wait_timeout=60)]))
    run = run_tasks(kc, [ms_task(name="example", state="absent", wait=True, wait_timeout=60)])
    assert ok(run)["changed"] is True
    assert get_source(api, "example") is None
    again = run_tasks(kc, [ms_task(name="example", state="absent")])
    assert ok(again)["changed"] is False
