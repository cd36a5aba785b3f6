"""module_config `wait` under faults: no stale Ready (simulator paused), transient and persistent hook errors,
an apiserver down for 30 s mid-wait, and a Deckhouse restart whose webhook refuses writes."""
from __future__ import annotations

import threading
import time

import pytest

from ansible_run import run_tasks, task_status
from harness import cluster
from test_module_config import delete_mc, get_mc, mc_task


def delete_mc_and_wait(api, name, timeout=60.0):
    """Delete a ModuleConfig and wait until it is gone. Deckhouse keeps a finalizer on it, so a delete only
    marks it terminating: a test that enabled it meanwhile patched the dying object, which vanished a moment
    later (under load) and made the next write fail with 404 NotFound."""
    delete_mc(api, name)
    deadline = time.monotonic() + timeout
    while get_mc(api, name) is not None:
        assert time.monotonic() < deadline, "ModuleConfig %s still exists %ss after its deletion" % (name, timeout)
        time.sleep(0.2)


@pytest.fixture
def ingress(api, simulator):
    simulator.resume()  # the finalizer is removed by the (running) reconciler
    delete_mc_and_wait(api, "ingress-nginx")
    yield "ingress-nginx"
    simulator.resume()
    simulator.module_error_clear("ingress-nginx")
    delete_mc_and_wait(api, "ingress-nginx")


def enable(kc, name):
    run = run_tasks(kc, [mc_task(name=name, enabled=True, wait=True, wait_timeout=60)])
    assert run.rc == 0, run.output
    assert run.task("set")["ready"] is True


def test_paused_deckhouse_settings_change_is_not_claimed_ready(kc, simulator, ingress):
    enable(kc, ingress)
    simulator.pause()
    try:
        start = time.monotonic()
        run = run_tasks(kc, [mc_task(name=ingress, version=1, settings={"highAvailability": True}, wait=True,
                                     wait_timeout=60)])
        took = time.monotonic() - start
    finally:
        simulator.resume()
    assert run.rc == 0, run.output
    res = run.task("set")
    assert res["changed"] is True
    assert res["processed"] is False and res["ready"] is None and res["evidence"] is None, res
    assert res["module"]["phase"] == "Ready", "the summary still says what the Module shows"
    assert any("no evidence" in w for w in res.get("warnings", [])), res
    assert took >= 5, "the settle window was not watched"


def test_paused_deckhouse_enabling_a_bundle_module_does_not_return_ready(kc, api, simulator):
    # cert-manager is Ready by bundle (no enabled in its ModuleConfig); enabling it explicitly must wait for
    # EnabledByModuleConfig=True, which a paused Deckhouse never writes
    delete_mc(api, "cert-manager")
    simulator.pause()
    try:
        run = run_tasks(kc, [dict(mc_task(name="cert-manager", enabled=True, wait=True, wait_timeout=6),
                                  ignore_errors=True)])
    finally:
        simulator.resume()
    try:
        assert task_status(run, "set") == "failed"
        msg = run.task("set")["msg"]
        assert "Timed out" in msg and "cert-manager" in msg, msg
        assert run.task("set")["changed"] is True, "the partial result says the ModuleConfig was written"
        run = run_tasks(kc, [mc_task(name="cert-manager", enabled=True, wait=True, wait_timeout=60)])
        assert run.rc == 0, run.output
        assert run.task("set")["ready"] is True and run.task("set")["processed"] is True
    finally:
        delete_mc(api, "cert-manager")


def inject_after_write(api, simulator, name, key, value, message, duration):
    """Put a hook error on the Module as soon as the task's write lands (from a thread)."""
    def watch():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            settings = ((get_mc(api, name) or {}).get("spec") or {}).get("settings") or {}
            if settings.get(key) == value:
                simulator.module_error(name, message=message, duration=duration)
                return
            time.sleep(0.1)
    t = threading.Thread(target=watch)
    t.start()
    return t


def test_transient_hook_error_within_grace_is_ridden_out(kc, api, simulator, ingress):
    enable(kc, ingress)
    t = inject_after_write(api, simulator, ingress, "highAvailability", True,
                           "hook validation failed: transient-hook-boom", 6)
    start = time.monotonic()
    run = run_tasks(kc, [mc_task(name=ingress, version=1, settings={"highAvailability": True}, wait=True,
                                 wait_grace=30, wait_timeout=90)])
    took = time.monotonic() - start
    t.join()
    assert run.rc == 0, run.output
    res = run.task("set")
    assert res["ready"] is True and res["processed"] is True, res
    assert took >= 6, "returned before the hook error cleared"


def test_persistent_hook_error_fails_after_grace_and_names_it(kc, simulator, ingress):
    enable(kc, ingress)
    simulator.module_error(ingress, message="hook validation failed: persistent-hook-boom", duration=0)
    start = time.monotonic()
    run = run_tasks(kc, [dict(mc_task(name=ingress, version=1, settings={"enableIstioSidecar": True}, wait=True,
                                      wait_grace=4, wait_timeout=60), ignore_errors=True)])
    took = time.monotonic() - start
    assert task_status(run, "set") == "failed"
    res = run.task("set")
    assert "persistent-hook-boom" in res["msg"], res["msg"]
    assert res["changed"] is True
    assert took < 45, "failed at the grace window, not at the timeout"


def test_wait_rides_through_an_apiserver_restart(kc, api, dkp_cluster, simulator, ingress):
    simulator.pause()  # the Module cannot become Ready before the apiserver goes away
    box = {}

    def play():
        box["run"] = run_tasks(kc, [mc_task(name=ingress, enabled=True, wait=True, wait_timeout=150)])
    t = threading.Thread(target=play)
    t.start()
    try:
        deadline = time.monotonic() + 60
        while get_mc(api, ingress) is None and time.monotonic() < deadline:
            time.sleep(0.3)
        time.sleep(1.0)  # the task is in its wait now
        cluster.restart_apiserver(dkp_cluster.dir, 30)
    finally:
        simulator.resume()
        t.join(240)
    run = box["run"]
    assert run.rc == 0, run.output
    assert run.task("set")["ready"] is True and run.task("set")["processed"] is True


def test_write_rides_through_a_deckhouse_restart(kc, api, simulator, ingress):
    enable(kc, ingress)
    simulator.restart_deckhouse(duration=8)
    start = time.monotonic()
    run = run_tasks(kc, [mc_task(name=ingress, version=1, settings={"highAvailability": False}, wait=True,
                                 wait_timeout=90)])
    took = time.monotonic() - start
    assert run.rc == 0, run.output
    assert run.task("set")["changed"] is True
    assert get_mc(api, ingress)["spec"]["settings"] == {"highAvailability": False}
    assert took >= 4, "the write went through while the webhook was said to refuse it"
