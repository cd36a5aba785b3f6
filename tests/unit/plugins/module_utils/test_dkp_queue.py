"""Parsing Deckhouse's queue dump and reading it through the leader pod (fake client)."""
from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import json

import pytest

from ansible_collections.deckhouse.platform.plugins.module_utils import dkp_queue as q
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import (
    AuthError,
    DkpError,
    ForbiddenError,
    UnreachableError,
)

IDLE = {"active": [], "summary": {"mainQueueTasks": 0, "otherQueues": {"active": 0, "empty": 107, "tasks": 0},
                                  "totalTasks": 0}}
BUSY = {"active": [
    {"name": "main", "tasksCount": 2, "status": "run first task", "tasks": [
        {"index": 1, "description": "ModuleRun:main:cert-manager:failures 3:hook failed: exit 1"},
        {"index": 2, "description": "ModuleRun:main:prometheus"}]},
    {"name": "/modules/registry", "tasksCount": 1, "status": "", "tasks": [
        {"index": 1, "description": "HookRun:/modules/registry:orchestrator"}]}],
    "summary": {"mainQueueTasks": 2, "otherQueues": {"active": 1, "empty": 5, "tasks": 1}, "totalTasks": 3}}


def test_parse_idle_queue():
    out = q.parse_queue(json.dumps(IDLE))
    assert out["empty"] and out["total_tasks"] == 0 and out["failing_tasks"] == []


def test_parse_busy_queue_with_failures():
    out = q.parse_queue(json.dumps(BUSY))
    assert not out["empty"] and out["total_tasks"] == 3 and out["main_queue_tasks"] == 2
    assert [x["name"] for x in out["active_queues"]] == ["main", "/modules/registry"]
    failing = out["failing_tasks"]
    assert len(failing) == 1
    assert {k: failing[0][k] for k in ("queue", "index", "description", "failures", "error", "type", "module")} == {
        "queue": "main", "index": 1, "description": "ModuleRun:main:cert-manager:failures 3:hook failed: exit 1",
        "failures": 3, "error": "hook failed: exit 1", "type": "ModuleRun", "module": "cert-manager"}
    assert "cert-manager" in q.describe_failing(out) and "3 failure(s)" in q.describe_failing(out)
    assert "3 task(s) in total" in q.describe_queue(out)


def test_failures_zero_is_not_failing_and_without_error():
    assert q.parse_task("main", {"index": 1, "description": "X:main:failures 0"})["failures"] == 0
    assert q.parse_task("main", {"index": 1, "description": "X:main:failures 2"})["error"] is None


def test_parse_rejects_non_queue():
    with pytest.raises(ValueError):
        q.parse_queue("<html>")
    with pytest.raises(ValueError):
        q.parse_queue("{}")


def pod(name, phase="Running", deleting=False):
    meta = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "spec": {"nodeName": "master-1"},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True"}]}}


class FakeClient:
    def __init__(self, pods_seq, exec_seq):
        self.pods_seq = list(pods_seq)
        self.exec_seq = list(exec_seq)
        self.execs = []

    def list(self, kind, namespace=None, label_selector=None, field_selector=None):
        assert (kind, namespace, label_selector) == ("Pod", "d8-system", "app=deckhouse,leader=true")
        return (self.pods_seq.pop(0) if len(self.pods_seq) > 1 else self.pods_seq[0]), "1"

    def exec_in_pod(self, namespace, pod, container, command, timeout=None):
        self.execs.append((pod, container, command))
        item = self.exec_seq.pop(0) if len(self.exec_seq) > 1 else self.exec_seq[0]
        if isinstance(item, Exception):
            raise item
        return item


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.t += max(s, 0.1)


def test_read_queue_retries_while_leader_is_replaced():
    c = FakeClient([[pod("deckhouse-old", deleting=True)], [], [pod("deckhouse-new", "Pending")], [pod("deckhouse-new")]],
                   [(0, json.dumps(IDLE), "")])
    clock = Clock()
    out, leader = q.read_queue(c, timeout=60, clock=clock, sleep=clock.sleep)
    assert out["empty"] and leader["name"] == "deckhouse-new"
    assert c.execs == [("deckhouse-new", "deckhouse", ["curl", "-s", "http://127.0.0.1:9652/queue/list.json"])]


def test_read_queue_retries_curl_failure_then_succeeds():
    c = FakeClient([[pod("deckhouse-0")]], [(7, "", "connection refused"), (0, json.dumps(BUSY), "")])
    clock = Clock()
    out, _leader = q.read_queue(c, timeout=60, clock=clock, sleep=clock.sleep)
    assert out["total_tasks"] == 3


def test_read_queue_no_leader_fails_clearly():
    clock = Clock()
    with pytest.raises(DkpError, match="no Deckhouse leader pod"):
        q.read_queue(FakeClient([[]], [(0, "", "")]), timeout=5, clock=clock, sleep=clock.sleep)


def test_read_queue_forbidden_fails_at_once():
    c = FakeClient([[pod("deckhouse-0")]], [ForbiddenError(403, "Forbidden", "pods/exec is forbidden")])
    clock = Clock()
    with pytest.raises(DkpError, match="Forbidden"):
        q.read_queue(c, timeout=600, clock=clock, sleep=clock.sleep)
    assert clock.t == 0


def test_forbidden_is_decided_by_type_not_text():
    """A message that merely mentions 403 is retried; a typed refusal is not."""
    c = FakeClient([[pod("deckhouse-0")]], [DkpError("exec failed: Handshake status 403 Forbidden"),
                                            (0, json.dumps(IDLE), "")])
    clock = Clock()
    queue, _leader = q.read_queue(c, timeout=60, clock=clock, sleep=clock.sleep)
    assert queue["empty"]
    c = FakeClient([[pod("deckhouse-0")]], [AuthError(401, "Unauthorized", "no")])
    with pytest.raises(AuthError, match="Unauthorized"):
        q.read_queue(c, timeout=600, clock=Clock(), sleep=Clock().sleep)


REAL = {"active": [
    {"name": "main", "tasksCount": 3, "status": "sleep after fail for 10s", "tasks": [
        {"index": 1, "description": "ModuleRun:main:cert-manager:doStartup:OnStartup:failures 2:hook "
                                    "/modules/cert-manager/hooks/x failed: exit status 1"},
        {"index": 2, "description": "ModuleRun:main:prometheus:doStartup:OnStartup"},
        {"index": 3, "description": "ConvergeModules:main:ReloadAllModules"}]}],
    "summary": {"mainQueueTasks": 3, "otherQueues": {"active": 0, "empty": 107, "tasks": 0}, "totalTasks": 3}}


def test_parse_real_descriptions_and_backoff():
    out = q.parse_queue(json.dumps(REAL))
    t1, t2, t3 = out["active_queues"][0]["tasks"]
    assert (t1["type"], t1["module"], t1["failures"]) == ("ModuleRun", "cert-manager", 2)
    assert t1["event"] == "doStartup:OnStartup" and t1["error"].startswith("hook /modules/cert-manager")
    assert (t2["module"], t2["event"], t2["failures"]) == ("prometheus", "doStartup:OnStartup", 0)
    assert t3["type"] == "ConvergeModules"
    assert out["active_queues"][0]["backoff_seconds"] == 10.0
    assert out["startup_tasks"] == 2 and "startup task(s)" in q.describe_queue(out)
    assert out["failing_tasks"][0]["backoff_seconds"] == 10.0
    assert "retried every 10.0s" in q.describe_failing(out)


def test_backoff_status_marks_the_head_task_failing():
    doc = {"active": [{"name": "main", "tasksCount": 1, "status": "sleep after fail for 5s", "tasks": [
        {"index": 1, "description": "ModuleRun:main:cert-manager:doStartup:OnStartup"}]}],
        "summary": {"mainQueueTasks": 1, "otherQueues": {}, "totalTasks": 1}}
    out = q.parse_queue(json.dumps(doc))
    assert [t["module"] for t in out["failing_tasks"]] == ["cert-manager"]
    assert q.backoff_seconds("sleep after fail for 500ms") == 0.5
    assert q.backoff_seconds("run first task") is None


def test_refused_debug_api_is_retried_with_backoff_then_says_restarting():
    c = FakeClient([[pod("deckhouse-0")]], [(7, "", "")])
    clock = Clock()
    with pytest.raises(q.DeckhouseRestarting) as e:
        q.read_queue(c, timeout=60, clock=clock, sleep=clock.sleep)
    assert "Deckhouse is restarting" in e.value.msg and e.value.details["restarting"]
    assert 3 <= len(c.execs) <= 12  # growing pauses, not one try per second


def test_refused_debug_api_then_answer():
    c = FakeClient([[pod("deckhouse-0")]], [(7, "", ""), (7, "", ""), (0, json.dumps(IDLE), "")])
    clock = Clock()
    queue, leader = q.read_queue(c, timeout=60, clock=clock, sleep=clock.sleep)
    assert queue["empty"] and leader["name"] == "deckhouse-0"


def test_unreachable_api_is_retried_within_the_timeout():
    c = FakeClient([[pod("deckhouse-0")]], [UnreachableError("connection refused"), (0, json.dumps(IDLE), "")])
    clock = Clock()
    assert q.read_queue(c, timeout=60, clock=clock, sleep=clock.sleep)[0]["empty"]


def _queue(total=0, failing=()):
    return {"empty": total == 0, "total_tasks": total, "main_queue_tasks": total, "startup_tasks": 0,
            "failing_tasks": list(failing), "active_queues": [
                {"name": "main", "tasks_count": total, "tasks": [{"description": "ModuleRun:main:prometheus"}]}
            ] if total else []}


def test_wait_queue_empty_polls_until_drained(monkeypatch):
    from ansible_collections.deckhouse.platform.plugins.module_utils import dkp_queue

    seen = iter([_queue(3), _queue(1), _queue(0)])
    monkeypatch.setattr(dkp_queue, "read_queue", lambda client, timeout: (next(seen), {"name": "deckhouse-0"}))
    slept = []
    queue, leader = dkp_queue.wait_queue_empty(None, 60, sleep=slept.append, clock=lambda: 0.0)
    assert queue["empty"] and leader["name"] == "deckhouse-0" and slept == [2.0, 2.0]


def test_wait_queue_empty_fails_at_once_on_a_failing_task_and_describes_the_last_queue(monkeypatch):
    from ansible_collections.deckhouse.platform.plugins.module_utils import dkp_queue
    from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_wait import WaitFailed, WaitTimeout

    failing = {"queue": "main", "index": 0, "description": "ModuleRun:main:x:failures 3:boom", "failures": 3,
               "error": "boom", "module": "x", "type": "ModuleRun", "event": None, "backoff_seconds": None}
    monkeypatch.setattr(dkp_queue, "read_queue", lambda client, timeout: (_queue(1, [failing]), {"name": "d"}))
    with pytest.raises(WaitFailed) as e:
        dkp_queue.wait_queue_empty(None, 60, sleep=lambda s: None, clock=lambda: 0.0)
    assert "1 failing task(s)" in e.value.msg

    ticks = iter([0.0, 0.0, 5.0, 11.0])
    monkeypatch.setattr(dkp_queue, "read_queue", lambda client, timeout: (_queue(2), {"name": "d"}))
    with pytest.raises(WaitTimeout) as e:
        dkp_queue.wait_queue_empty(None, 10, sleep=lambda s: None, clock=lambda: next(ticks))
    assert e.value.msg.startswith("Timed out after 10s waiting for Deckhouse's queue to drain; last seen: 2 task(s)")
    assert e.value.details["total_tasks"] == 2
