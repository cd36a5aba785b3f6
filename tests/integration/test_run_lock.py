"""deckhouse.platform.run_lock through ansible-playbook against the local cluster's kube-apiserver."""
from __future__ import annotations

import threading
import time
import uuid

import pytest

from ansible_run import run_tasks
from ansible_run import task_status as status
from dkp_audit import USER_AGENT, our_writes

LOCK = "deckhouse.platform.run_lock"
NS = "d8-system"


@pytest.fixture
def lease(kube):
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    name = "test-lock-%s" % uuid.uuid4().hex[:8]
    yield name
    try:
        client.CoordinationV1Api(kube).delete_namespaced_lease(name, NS)
    except ApiException as e:
        if e.status != 404:
            raise


def get_lease(kube, name):
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    try:
        return client.CoordinationV1Api(kube).read_namespaced_lease(name, NS)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def lock_task(title, **params):
    return {"name": title, LOCK: params, "register": "out", "ignore_errors": True}


def test_cluster_serves_leases(kube):
    from kubernetes import client

    groups = [g.name for g in client.ApisApi(kube).get_api_versions().groups]
    assert "coordination.k8s.io" in groups


def test_two_concurrent_runs_exactly_one_acquires(kc, kube, dkp_cluster, lease):
    mark = dkp_cluster.audit_marker()
    tasks = [lock_task("take", name=lease, purpose="race test"),
             {"name": "hold", "ansible.builtin.command": "sleep 4", "when": "out is succeeded"}]
    runs = [None, None]

    def go(i):
        runs[i] = run_tasks(kc, tasks)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    outcomes = sorted(status(r, "take") for r in runs)
    assert outcomes == ["failed", "ok"], [r.output for r in runs]
    winner = [r for r in runs if status(r, "take") == "ok"][0]
    loser = [r for r in runs if status(r, "take") == "failed"][0]
    holder = winner.task("take")["holder"]
    assert winner.task("take")["acquired"] is True
    message = loser.task("take")["msg"]
    assert "held by %s since " % holder in message and "max_wait is 0" in message, message
    assert get_lease(kube, lease).spec.holder_identity == holder
    created = [w for w in our_writes(dkp_cluster, mark, resource="leases", name=lease) if w.succeeded]
    assert len(created) == 1 and created[0].verb == "create", created


def test_release_then_other_acquires_and_wait(kc, kube, lease):
    first = run_tasks(kc, [lock_task("take", name=lease, holder="job-a")])
    assert status(first, "take") == "ok", first.output
    # Someone else's release does nothing.
    other = run_tasks(kc, [lock_task("release", name=lease, holder="job-b", state="released")])
    assert status(other, "release") == "ok" and other.task("release")["released"] is False
    assert "held by job-a" in other.task("release")["reason"]

    def release_later():
        time.sleep(4)
        run_tasks(kc, [lock_task("release", name=lease, holder="job-a", state="released")])

    t = threading.Thread(target=release_later)
    t.start()
    started = time.monotonic()
    waiter = run_tasks(kc, [lock_task("take", name=lease, holder="job-b", wait_timeout=60)])
    t.join()
    assert status(waiter, "take") == "ok", waiter.output
    assert waiter.task("take")["acquired"] is True and waiter.task("take")["waited"] >= 2
    assert time.monotonic() - started < 60
    assert get_lease(kube, lease).spec.holder_identity == "job-b"
    assert get_lease(kube, lease).spec.lease_transitions == 1

    renewed = run_tasks(kc, [lock_task("renew", name=lease, holder="job-b", state="renewed")])
    assert status(renewed, "renew") == "ok" and renewed.task("renew")["action"] == "renewed"
    lost = run_tasks(kc, [lock_task("renew", name=lease, holder="job-a", state="renewed")])
    assert status(lost, "renew") == "failed" and "not held by job-a" in lost.task("renew")["msg"]


def test_expires_after_crash(kc, kube, lease):
    crashed = run_tasks(kc, [lock_task("take", name=lease, holder="crashed-job", lease_duration=25)])
    assert status(crashed, "take") == "ok", crashed.output  # never released: the run "crashed"
    blocked = run_tasks(kc, [lock_task("take", name=lease, holder="next-job")])
    assert status(blocked, "take") == "failed" and "held by crashed-job" in blocked.task("take")["msg"]
    renewed = get_lease(kube, lease).spec.renew_time
    import datetime
    left = (renewed + datetime.timedelta(seconds=25) - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
    assert left > 0, "the blocked run came after the expiry: the test proves nothing"
    time.sleep(left + 0.5)
    taken = run_tasks(kc, [lock_task("take", name=lease, holder="next-job")])
    assert status(taken, "take") == "ok", taken.output
    assert taken.task("take")["took_over_from"]["holder"] == "crashed-job"
    assert get_lease(kube, lease).spec.holder_identity == "next-job"


def test_check_mode_takes_nothing(kc, kube, dkp_cluster, lease):
    mark = dkp_cluster.audit_marker()
    free = run_tasks(kc, [lock_task("take", name=lease)], check=True)
    assert status(free, "take") == "ok" and free.task("take")["would"] == "acquire", free.output
    assert get_lease(kube, lease) is None
    assert our_writes(dkp_cluster, mark) == []

    assert status(run_tasks(kc, [lock_task("take", name=lease, holder="job-a")]), "take") == "ok"
    mark = dkp_cluster.audit_marker()
    held = run_tasks(kc, [lock_task("take", name=lease, holder="job-b", wait_timeout=30),
                          lock_task("release", name=lease, holder="job-a", state="released")], check=True)
    assert status(held, "take") == "ok" and held.task("take")["would"] == "wait"
    assert held.task("release")["would"] == "release"
    assert our_writes(dkp_cluster, mark) == [], "check mode wrote (not even a dry run is sent)"
    assert get_lease(kube, lease).spec.holder_identity == "job-a"


def test_bad_numbers_refused_before_any_write(kc, dkp_cluster, lease):
    mark = dkp_cluster.audit_marker()
    for params in ({"wait_timeout": -1}, {"lease_duration": 0}, {"wait_timeout": "soon"}):
        run = run_tasks(kc, [lock_task("take", name=lease, **params)])
        assert status(run, "take") == "failed", params
    assert our_writes(dkp_cluster, mark) == []


def test_bad_lease_name_refused_before_any_request(kc, dkp_cluster):
    mark = dkp_cluster.audit_marker()
    for params in ({"name": "Bad_Lease"}, {"name": "-lock"}, {"name": "x" * 254},
                   {"name": "ok-lock", "namespace": "D8_System"}):
        run = run_tasks(kc, [lock_task("take", **params)])
        assert status(run, "take") == "failed", params
        msg = run.task("take")["msg"]
        option = "namespace" if "namespace" in params else "name"
        assert msg.startswith(option + " must be") and "DNS-1123" in msg, msg
        assert "422" not in msg and "Unprocessable" not in msg, msg  # refused here, not by the apiserver
    assert our_writes(dkp_cluster, mark) == []
    # not even a read: the name is judged before the first request
    assert [e for e in dkp_cluster.audit_events(mark, resource="leases")
            if e.user_agent.startswith(USER_AGENT)] == []


def test_break_lock_takes_over_a_killed_jobs_lock(kc, kube, lease):
    killed = run_tasks(kc, [lock_task("take", name=lease, holder="awx-job-41", purpose="registry_switch to Proxy",
                                      lease_duration=1800)])
    assert status(killed, "take") == "ok", killed.output  # never released: the job was killed
    blocked = run_tasks(kc, [lock_task("take", name=lease, holder="awx-job-42")])
    assert status(blocked, "take") == "failed"
    msg = blocked.task("take")["msg"]
    # the refusal says who, since when, until when, why, and how to get past it
    since = get_lease(kube, lease).spec.acquire_time
    assert "held by awx-job-41 since " in msg and since.strftime("%Y-%m-%dT%H:%M:%S") in msg, msg
    assert "expires " in msg and "registry_switch to Proxy" in msg and "break_lock=true" in msg, msg

    checked = run_tasks(kc, [lock_task("take", name=lease, holder="awx-job-42", break_lock=True)], check=True)
    assert checked.task("take")["would"] == "break" and get_lease(kube, lease).spec.holder_identity == "awx-job-41"

    broke = run_tasks(kc, [lock_task("take", name=lease, holder="awx-job-42", break_lock=True)])
    assert status(broke, "take") == "ok", broke.output
    res = broke.task("take")
    assert res["acquired"] is True and res["broken_from"]["holder"] == "awx-job-41"
    assert "taken over (break_lock) from awx-job-41" in broke.output
    live = get_lease(kube, lease)
    assert live.spec.holder_identity == "awx-job-42" and live.spec.lease_transitions == 1
    # breaking is only for a lock held by someone else: our own lock is simply renewed
    again = run_tasks(kc, [lock_task("take", name=lease, holder="awx-job-42", break_lock=True)])
    assert again.task("take")["action"] == "renewed" and "broken_from" not in again.task("take")
