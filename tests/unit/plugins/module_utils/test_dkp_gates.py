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
