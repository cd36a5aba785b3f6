"""deckhouse.platform.module_pull_override and module_pull_override_info through ansible-playbook against the
local DKP cluster and the simulator (released DKP: a renew or tag whose digest did not move changes nothing; a new
digest deploys and restarts Deckhouse): digest waits, renew, rollback on deletion, failures that need an operator,
bad input refused before writing. Every task's status is asserted; only tasks expected to fail carry
ignore_errors, and they are asserted `failed`."""
from __future__ import annotations

import time

import pytest

from ansible_run import run_tasks
from ansible_run import task_status as status
from dkp_audit import our_writes

MPO = "deckhouse.platform.module_pull_override"
MODULE = "hello-world"


INFO = "deckhouse.platform.module_pull_override_info"


def mpo_task(title="mpo", fails=False, **params):
    task = {"name": title, MPO: params, "register": "out"}
    if fails:
        task["ignore_errors"] = True  # asserted `failed` by the test
    return task


def ok(run, title="mpo"):
    assert status(run, title) == "ok", run.output
    return run.task(title)


def failed(run, title="mpo"):
    assert status(run, title) == "failed", run.output
    return run.task(title)


def get(api, plural, name, version):
    from kubernetes.client.rest import ApiException
    try:
        return api.get_cluster_custom_object("deckhouse.io", version, plural, name)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def get_mpo(api, name=MODULE):
    return get(api, "modulepulloverrides", name, "v1alpha2")


@pytest.fixture
def hello(fresh_simulator, kc, api):
    """hello-world enabled from the ModuleSource `example`, its first release deployed."""
    run = run_tasks(kc, [
        {"name": "source", "deckhouse.platform.module_source": {"name": "example",
                                                                "repo": "registry.example.com/deckhouse/modules",
                                                                "wait": True, "wait_timeout": 60}},
        {"name": "config", "deckhouse.platform.module_config": {"name": MODULE, "enabled": True, "source": "example",
                                                                "wait": True, "wait_timeout": 60}},
    ])
    ok(run, "source")
    ok(run, "config")
    return fresh_simulator


def test_override_digest_renew_and_rollback(kc, api, dkp_cluster, hello):
    # a long scan interval: only our renew makes DKP look at the tag again (its own check would otherwise find a
    # published digest first, and the renew would rightly find nothing new)
    task = mpo_task(name=MODULE, image_tag="pr1", rollback=True, scan_interval="1h", wait=True, wait_timeout=60)
    first = run_tasks(kc, [task])
    result = ok(first)
    assert result["changed"] is True
    assert result["image_digest"].startswith("sha256:") and result["message"] == "Ready" and result["updated_at"]
    assert get_mpo(api)["spec"] == {"imageTag": "pr1", "rollback": True, "scanInterval": "1h"}

    mark = dkp_cluster.audit_marker()
    second = run_tasks(kc, [task])
    assert ok(second)["changed"] is False
    assert second.task("mpo")["image_digest"] == result["image_digest"]
    assert our_writes(dkp_cluster, mark) == []

    # a new image under the same tag: renew deploys it and the wait returns the new digest
    # DKP also re-checks the tag by itself, and the simulator does so on its next pass: when that deploy comes
    # before our renew, the renew rightly finds nothing new. The audit log says which came first.
    hello.wait_idle(timeout=30)
    published_at = dkp_cluster.audit_marker()
    published = hello.publish_digest(MODULE, source="example", tag="pr1")["digest"]
    renew = mpo_task(name=MODULE, renew=True, wait=True, wait_timeout=60)
    renewed = run_tasks(kc, [renew])
    assert ok(renewed)["image_digest"] == published
    writes = dkp_cluster.writes_since(published_at, resource="modulepulloverrides")
    ours = [i for i, w in enumerate(writes) if w.user_agent.startswith("deckhouse.platform")]
    dkp_first = any(w.subresource == "status" for w in writes[:ours[0]])
    if dkp_first:
        assert renewed.task("mpo")["changed"] is False
        assert "already runs the newest digest of tag pr1" in renewed.task("mpo")["msg"]
        assert "renew" in get_mpo(api)["metadata"]["annotations"], "DKP keeps renew when the digest is the same"
    else:
        assert renewed.task("mpo")["changed"] is True, renewed.task("mpo").get("msg")
        assert "renew" not in (get_mpo(api)["metadata"].get("annotations") or {}), "DKP removes renew after a deploy"
    digest2 = renewed.task("mpo")["image_digest"]
    assert digest2 != result["image_digest"] and renewed.task("mpo")["message"] == "Ready"

    # nothing new under the tag: DKP changes nothing, and the task says so instead of waiting for its timeout
    started = time.monotonic()
    again = run_tasks(kc, [mpo_task(name=MODULE, renew=True, wait=True, wait_timeout=120)])
    elapsed = time.monotonic() - started
    same = ok(again)
    assert same["changed"] is False and same["image_digest"] == digest2
    assert "already runs the newest digest of tag pr1" in same["msg"], same
    assert elapsed < 60, "no wait to time out (%.0f s)" % elapsed
    assert "renew" in get_mpo(api)["metadata"]["annotations"], "released DKP keeps renew when the digest is the same"

    hello.publish_digest(MODULE, source="example", tag="pr2")
    new_tag = run_tasks(kc, [mpo_task(name=MODULE, image_tag="pr2", wait=True, wait_timeout=60)])
    assert ok(new_tag)["changed"] is True
    assert new_tag.task("mpo")["image_digest"] != digest2

    gone = run_tasks(kc, [mpo_task(name=MODULE, state="absent", rollback=True, wait=True, wait_timeout=60)])
    assert ok(gone)["changed"] is True
    assert get_mpo(api) is None
    assert ok(run_tasks(kc, [mpo_task(name=MODULE, state="absent")]))["changed"] is False


def test_check_mode_writes_nothing(kc, api, dkp_cluster, hello):
    mark = dkp_cluster.audit_marker()
    run = run_tasks(kc, [mpo_task(name=MODULE, image_tag="pr1", wait=True)], check=True, diff=True)
    result = ok(run)
    assert result["changed"] is True
    assert result["override"]["spec"]["imageTag"] == "pr1"
    assert result["diff"]["after"]["spec"]["imageTag"] == "pr1"
    writes = our_writes(dkp_cluster, mark)
    assert writes and all(w.dry_run for w in writes), writes
    assert get_mpo(api) is None


def test_renew_in_check_mode_reports_a_change_and_keeps_the_digest(kc, api, dkp_cluster, hello):
    ok(run_tasks(kc, [mpo_task(name=MODULE, image_tag="pr1", wait=True, wait_timeout=60)]))
    digest = get_mpo(api)["status"]["imageDigest"]
    mark = dkp_cluster.audit_marker()
    run = run_tasks(kc, [mpo_task(name=MODULE, renew=True, wait=True)], check=True)
    assert ok(run)["changed"] is True
    assert all(w.dry_run for w in our_writes(dkp_cluster, mark))
    time.sleep(1)
    assert "renew" not in (get_mpo(api)["metadata"].get("annotations") or {})
    assert get_mpo(api)["status"]["imageDigest"] == digest


def test_wait_fails_early_on_a_message_that_needs_an_operator(kc, api, fresh_simulator):
    ok(run_tasks(kc, [{"name": "source", "deckhouse.platform.module_source": {
        "name": "example", "repo": "registry.example.com/deckhouse/modules", "wait": True, "wait_timeout": 60}}]),
       "source")
    started = time.monotonic()
    run = run_tasks(kc, [mpo_task(name="commander", image_tag="pr1", wait=True, wait_timeout=120, fails=True)])
    result = failed(run)
    assert result["changed"] is True
    assert "The module disabled" in result["msg"] and "enabled: true" in result["msg"], result["msg"]
    assert time.monotonic() - started < 60, "failed early, not at the timeout"


def test_reader_one_all_query_and_waits(kc, api, dkp_cluster, hello):
    ok(run_tasks(kc, [mpo_task(name=MODULE, image_tag="pr1")]))
    mark = dkp_cluster.audit_marker()
    run = run_tasks(kc, [
        {"name": "ready", INFO: {"name": MODULE, "wait_for": "ready", "wait_timeout": 60}, "register": "out"},
        {"name": "all", INFO: {"query": "[].{module: name, tag: image_tag}"}, "register": "out"},
        {"name": "none", INFO: {"name": "console"}, "register": "out"},
    ], check=True)
    ready = ok(run, "ready")
    assert ready["changed"] is False and ready["override"]["ready"] is True
    assert ready["override"]["image_digest"].startswith("sha256:") and ready["override"]["image_tag"] == "pr1"
    assert ok(run, "all")["query_result"] == [{"module": MODULE, "tag": "pr1"}]
    assert ok(run, "none")["override"] is None and run.task("none")["overrides"] == []
    assert our_writes(dkp_cluster, mark) == []

    gone = run_tasks(kc, [
        mpo_task(name=MODULE, state="absent"),
        {"name": "absent", INFO: {"name": MODULE, "wait_for": "absent", "wait_timeout": 60}, "register": "out"},
    ])
    ok(gone)
    assert ok(gone, "absent")["overrides"] == [] and get_mpo(api) is None


def test_bad_inputs_are_refused_before_any_write(kc, dkp_cluster, hello):
    """One playbook, every bad input a task of its own: each fails with its message and the audit log shows no
    write. An override for a module that no source offers is refused before it is created."""
    cases = [
        ("no-tag", dict(name=MODULE), "set image_tag"),
        ("tag-dash", dict(name=MODULE, image_tag="-bad"), "not a valid image tag"),
        ("tag-slash", dict(name=MODULE, image_tag="pr/1"), "not a valid image tag"),
        ("tag-long", dict(name=MODULE, image_tag="a" * 129), "not a valid image tag"),
        ("scan-number", dict(name=MODULE, image_tag="pr1", scan_interval="15"), "scan_interval must be a duration"),
        ("scan-words", dict(name=MODULE, image_tag="pr1", scan_interval="soon"), "scan_interval must be a duration"),
        ("absent-tag", dict(name=MODULE, state="absent", image_tag="pr1"), "remove image_tag"),
        ("absent-renew", dict(name=MODULE, state="absent", renew=True), "remove renew"),
        ("absent-no-rollback", dict(name=MODULE, state="absent", rollback=False), "remove rollback=false"),
        ("name", dict(name="Hello_World", image_tag="pr1"), "not a valid module name"),
        ("not-offered", dict(name="no-such-module", image_tag="pr1"),
         "No ModuleSource offers module no-such-module"),
        ("not-offered-check", dict(name="no-such-module", image_tag="pr1"), "example offers"),
        ("timeout-0", dict(name=MODULE, image_tag="pr1", wait=True, wait_timeout=0),
         "wait_timeout must be greater than 0"),
        ("grace-neg", dict(name=MODULE, image_tag="pr1", wait=True, wait_grace=-1), "wait_grace must be 0 or more"),
        ("renew-str", dict(name=MODULE, renew="please"), "renew"),
        ("state", dict(name=MODULE, state="latest"), "value of state must be one of"),
    ]
    reader_cases = [
        ("i-wait-all", {"wait_for": "ready"}, "wait_for waits on one override: set name"),
        ("i-wait-for", {"name": MODULE, "wait_for": "deployed"}, "value of wait_for must be one of"),
        ("i-query", {"query": "[?"}, "`query` is not a valid JMESPath expression"),
        ("i-name", {"name": "-x"}, "not a valid module name"),
        ("i-timeout", {"name": MODULE, "wait_for": "ready", "wait_timeout": -2}, "wait_timeout must be greater than 0"),
    ]
    mark = dkp_cluster.audit_marker()
    tasks = [mpo_task(title, fails=True, **params) for title, params, _needle in cases]
    tasks[[t["name"] for t in tasks].index("not-offered-check")]["check_mode"] = True
    tasks += [{"name": title, INFO: params, "register": "out", "ignore_errors": True}
              for title, params, _needle in reader_cases]
    run = run_tasks(kc, tasks)
    for title, _params, needle in cases + reader_cases:
        msg = failed(run, title)["msg"]
        assert needle in msg, (title, msg)
    assert "Traceback" not in run.output
    assert our_writes(dkp_cluster, mark) == [], "refused before any write, dry runs included"
