"""dkp_gates.settle: one time budget for the checks after a switch, failures collected, not raised."""
from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import pytest

from ansible_collections.deckhouse.platform.plugins.module_utils import dkp_gates
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import DkpError, UnreachableError


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_settle_runs_the_asked_checks_in_order_with_one_budget(monkeypatch):
    clock, calls = Clock(), []

    def module(client, name, timeout):
        calls.append(("module_ready", name, timeout))
        clock.now += 40  # the Module took 40 s to become Ready
        return dkp_gates.result(True, "Module registry is Ready")

    def queue(client, wait, leader):
        calls.append(("queue_empty", wait, leader))
        return dkp_gates.result(True, "Deckhouse's queue is empty")

    monkeypatch.setattr(dkp_gates, "check_module", module)
    monkeypatch.setattr(dkp_gates, "check_queue", queue)
    checks, failed = dkp_gates.settle(None, ["queue_empty", "module_ready"], 100, clock=clock)
    assert list(checks) == ["module_ready", "queue_empty"] and failed == []
    assert calls == [("module_ready", "registry", 100), ("queue_empty", 60, 60)]  # what is left of the budget


def test_settle_reports_a_failed_check_and_an_error_as_not_passed(monkeypatch):
    monkeypatch.setattr(dkp_gates, "check_module", lambda c, n, t: dkp_gates.result(False, "Module registry is not Ready"))

    def queue(client, wait, leader):
        raise DkpError("Deckhouse's debug API did not answer within 300s")

    monkeypatch.setattr(dkp_gates, "check_queue", queue)
    checks, failed = dkp_gates.settle(None, ["module_ready", "queue_empty"], 300)
    assert failed == ["module_ready", "queue_empty"]
    assert checks["queue_empty"] == {"passed": False, "message": "Deckhouse's debug API did not answer within 300s",
                                     "details": {}}
    msg = dkp_gates.settle_failure("Direct", checks, failed)
    assert msg.startswith("The switch to Direct is complete, but Deckhouse has not settled after it: module_ready: ")
    assert "|| queue_empty: Deckhouse's debug API" in msg


def test_settle_lets_an_unreachable_cluster_through(monkeypatch):
    def module(client, name, timeout):
        raise UnreachableError("cannot reach the API server")

    monkeypatch.setattr(dkp_gates, "check_module", module)
    with pytest.raises(UnreachableError):
        dkp_gates.settle(None, ["module_ready"], 10)


def _queue(total, failing=()):
    return {"empty": total == 0, "total_tasks": total, "main_queue_tasks": total, "startup_tasks": 0,
            "failing_tasks": list(failing), "active_queues": [
                {"name": "main", "tasks_count": total, "tasks": [{"description": "ModuleRun:main:prometheus"}]}
            ] if total else []}


def test_check_queue_verdicts_come_from_the_one_queue_wait(monkeypatch):
    from ansible_collections.deckhouse.platform.plugins.module_utils import dkp_queue

    leader = {"name": "deckhouse-0"}
    monkeypatch.setattr(dkp_queue, "read_queue", lambda client, timeout: (_queue(0), leader))
    assert dkp_gates.check_queue(None, 0, 60) == dkp_gates.result(
        True, "Deckhouse's queue is empty", total_tasks=0, failing_tasks=[], active_queues=[], leader="deckhouse-0")

    monkeypatch.setattr(dkp_queue, "read_queue", lambda client, timeout: (_queue(1), leader))
    busy = dkp_gates.check_queue(None, 0, 60)  # 0: read once
    assert not busy["passed"] and busy["details"]["active_queues"] == [{"name": "main", "tasks_count": 1}]
    assert busy["message"] == ("Deckhouse's queue is not empty: 1 task(s) in total (main: 1); queue 'main': 1 task(s), "
                               "first: ModuleRun:main:prometheus. Wait until it drains (d8 system queue list), or "
                               "raise queue_wait_timeout")

    failing = {"queue": "main", "index": 0, "description": "ModuleRun:main:x:failures 3:boom", "failures": 3,
               "error": "boom", "module": "x", "type": "ModuleRun", "event": None, "backoff_seconds": None}
    monkeypatch.setattr(dkp_queue, "read_queue", lambda client, timeout: (_queue(1, [failing]), leader))
    out = dkp_gates.check_queue(None, 300, 60)
    assert not out["passed"] and out["details"]["failing_tasks"] == [failing] and out["details"]["leader"] == "deckhouse-0"
    assert out["message"].startswith("Deckhouse's queue has 1 failing task(s): ")
    assert out["message"].endswith("fix the cause (d8 system queue list; the module's logs) before switching")
