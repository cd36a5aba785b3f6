"""deckhouse.platform.module_pull_override through ansible-playbook against the local DKP cluster and the
simulator: digest waits, renew, rollback on deletion, failures that need an operator."""
from __future__ import annotations

import time

import pytest

from ansible_run import run_tasks
from ansible_run import task_status as status
from dkp_audit import our_writes

MPO = "deckhouse.platform.module_pull_override"
MODULE = "hello-world"


def mpo_task(title="mpo", **params):
    return {"name": title, MPO: params, "register": "out", "ignore_errors": True}


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
    assert run.rc == 0, run.output
    return fresh_simulator


def test_override_digest_renew_and_rollback(kc, api, dkp_cluster, hello):
    task = mpo_task(name=MODULE, image_tag="pr1", rollback=True, wait=True, wait_timeout=60)
    first = run_tasks(kc, [task])
    result = first.task("mpo")
    assert first.rc == 0 and result["changed"] is True, first.output
    assert result["image_digest"].startswith("sha256:") and result["message"] == "Ready" and result["updated_at"]
    assert get_mpo(api)["spec"] == {"imageTag": "pr1", "rollback": True, "scanInterval": "15s"}

    mark = dkp_cluster.audit_marker()
    second = run_tasks(kc, [task])
    assert second.rc == 0 and second.task("mpo")["changed"] is False, second.output
    assert second.task("mpo")["image_digest"] == result["image_digest"]
    assert our_writes(dkp_cluster, mark) == []

    renew = mpo_task(name=MODULE, renew=True, wait=True, wait_timeout=60)
    renewed = run_tasks(kc, [renew])
    assert renewed.rc == 0 and renewed.task("mpo")["changed"] is True, renewed.output
    digest2 = renewed.task("mpo")["image_digest"]
    assert digest2 != result["image_digest"] and renewed.task("mpo")["message"] == "Ready"
    again = run_tasks(kc, [renew])
    assert again.task("mpo")["changed"] is True, "renew is an action"
    assert again.task("mpo")["image_digest"] not in (digest2, result["image_digest"])

    new_tag = run_tasks(kc, [mpo_task(name=MODULE, image_tag="pr2", wait=True, wait_timeout=60)])
    assert new_tag.rc == 0 and new_tag.task("mpo")["changed"] is True, new_tag.output
    assert new_tag.task("mpo")["image_digest"] != again.task("mpo")["image_digest"]

    gone = run_tasks(kc, [mpo_task(name=MODULE, state="absent", rollback=True, wait=True, wait_timeout=60)])
    assert gone.rc == 0 and gone.task("mpo")["changed"] is True, gone.output
    assert get_mpo(api) is None
    assert run_tasks(kc, [mpo_task(name=MODULE, state="absent")]).task("mpo")["changed"] is False


def test_check_mode_writes_nothing(kc, api, dkp_cluster, hello):
    mark = dkp_cluster.audit_marker()
    run = run_tasks(kc, [mpo_task(name=MODULE, image_tag="pr1", wait=True)], check=True, diff=True)
    result = run.task("mpo")
    assert run.rc == 0 and result["changed"] is True, run.output
    assert result["override"]["spec"]["imageTag"] == "pr1"
    assert result["diff"]["after"]["spec"]["imageTag"] == "pr1"
    writes = our_writes(dkp_cluster, mark)
    assert writes and all(w.dry_run for w in writes), writes
    assert get_mpo(api) is None


def test_renew_in_check_mode_reports_a_change_and_keeps_the_digest(kc, api, dkp_cluster, hello):
    run_tasks(kc, [mpo_task(name=MODULE, image_tag="pr1", wait=True, wait_timeout=60)])
    digest = get_mpo(api)["status"]["imageDigest"]
    mark = dkp_cluster.audit_marker()
    run = run_tasks(kc, [mpo_task(name=MODULE, renew=True, wait=True)], check=True)
    assert run.rc == 0 and run.task("mpo")["changed"] is True, run.output
    assert all(w.dry_run for w in our_writes(dkp_cluster, mark))
    time.sleep(1)
    assert "renew" not in (get_mpo(api)["metadata"].get("annotations") or {})
    assert get_mpo(api)["status"]["imageDigest"] == digest


def test_wait_fails_early_on_a_message_that_needs_an_operator(kc, api, fresh_simulator):
    run_tasks(kc, [{"name": "source", "deckhouse.platform.module_source": {
        "name": "example", "repo": "registry.example.com/deckhouse/modules", "wait": True, "wait_timeout": 60}}])
    started = time.monotonic()
    run = run_tasks(kc, [mpo_task(name="commander", image_tag="pr1", wait=True, wait_timeout=120)])
    result = run.task("mpo")
    assert status(run, "mpo") == "failed" and result["changed"] is True
    assert "The module disabled" in result["msg"] and "enabled: true" in result["msg"], result["msg"]
    assert time.monotonic() - started < 60, "failed early, not at the timeout"


@pytest.mark.parametrize("params, needle", [
    (dict(name=MODULE), "set image_tag"),
    (dict(name=MODULE, image_tag="-bad"), "not a valid image tag"),
    (dict(name=MODULE, image_tag="pr1", scan_interval="15"), "scan_interval must be a duration"),
    (dict(name=MODULE, state="absent", image_tag="pr1"), "remove image_tag"),
])
def test_bad_input_fails_before_any_write(kc, dkp_cluster, fresh_simulator, params, needle):
    mark = dkp_cluster.audit_marker()
    run = run_tasks(kc, [mpo_task(**params)])
    assert status(run, "mpo") == "failed"
    assert needle in run.task("mpo")["msg"], run.task("mpo")["msg"]
    assert our_writes(dkp_cluster, mark) == []
