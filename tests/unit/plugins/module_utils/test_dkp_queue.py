"""Parsing Deckhouse's queue dump and reading it through the leader pod (fake client)."""
from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import json

import pytest

from ansible_collections.deckhouse.platform.plugins.module_utils import dkp_queue as q
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import DkpError

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
    assert out["failing_tasks"] == [{"queue": "main", "index": 1,
                                     "description": "ModuleRun:main:cert-manager:failures 3:hook failed: exit 1",
                                     "failures": 3, "error": "hook failed: exit 1"}]
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
    c = FakeClient([[pod("deckhouse-0")]], [DkpError("Forbidden: cannot exec into pod d8-system/deckhouse-0.")])
    clock = Clock()
    with pytest.raises(DkpError, match="Forbidden"):
        q.read_queue(c, timeout=600, clock=clock, sleep=clock.sleep)
    assert clock.t == 0
