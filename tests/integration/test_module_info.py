"""module_info `wait_for` (ready, disabled, absent, overridden, a phase) and the JMESPath `query` of module_info,
module_config_info and the module/module_config lookups, through ansible-playbook on the local DKP cluster."""
from __future__ import annotations

import threading
import time

from ansible_run import run_tasks, task_status
from dkp_audit import our_writes

MI = "deckhouse.platform.module_info"
MC = "deckhouse.platform.module_config"


def test_query_filters_readers_and_lookups(kc, dkp_cluster):
    mark = dkp_cluster.audit_marker()
    run = run_tasks(kc, [
        {"name": "not-ready", MI: {"query": "[?enabled && !ready].name"}},
        {"name": "enabled", MI: {"query": "[?enabled].name"}},
        {"name": "phase", MI: {"name": "deckhouse", "query": "[0].phase"}},
        {"name": "mci", "deckhouse.platform.module_config_info": {"query": "[?name=='deckhouse'].version"}},
        {"name": "lk", "ansible.builtin.set_fact": {
            "one": "{{ lookup('deckhouse.platform.module', 'deckhouse', query='phase') }}",
            "all_enabled": "{{ lookup('deckhouse.platform.module', query='[?enabled].name') }}",
            "mode": "{{ lookup('deckhouse.platform.module_config', 'deckhouse', spec=true, query='enabled') }}",
            "mcs": "{{ lookup('deckhouse.platform.module_config', query='[].name') }}",
            "miss": "{{ lookup('deckhouse.platform.module', 'nope', query='phase', default='none') }}"}},
    ])
    assert run.rc == 0, run.output
    for title in ("not-ready", "enabled", "phase", "mci", "lk"):
        assert task_status(run, title) == "ok"
    enabled = run.task("enabled")["query_result"]
    assert "deckhouse" in enabled and "cert-manager" in enabled
    assert set(run.task("not-ready")["query_result"]) <= set(enabled)
    assert run.task("phase")["query_result"] == "Ready"
    assert run.task("phase")["modules"][0]["name"] == "deckhouse", "query adds query_result; modules stays"
    assert isinstance(run.task("mci")["query_result"], list)
    facts = run.task("lk")["ansible_facts"]
    assert facts["one"] == "Ready"
    assert sorted(facts["all_enabled"]) == sorted(enabled)
    assert "deckhouse" in facts["mcs"]
    assert facts["miss"] == "none"
    assert our_writes(dkp_cluster, mark) == []


def test_wait_for_ready_disabled_and_phase(kc, api, dkp_cluster, simulator):
    from test_module_config import delete_mc
    delete_mc(api, "ingress-nginx")
    try:
        # a state that already holds returns at once
        run = run_tasks(kc, [{"name": "off", MI: {"name": "ingress-nginx", "wait_for": "disabled", "wait_timeout": 10}},
                             {"name": "absent", MI: {"name": "no-such-module", "wait_for": "absent"}}])
        assert run.rc == 0, run.output
        assert run.task("off")["waited"] < 5 and run.task("off")["modules"][0]["enabled"] is False
        assert run.task("absent")["modules"] == []
        # enabled while Deckhouse is paused: the reader must be watching before the Module can become Ready
        simulator.pause()
        api.create_cluster_custom_object("deckhouse.io", "v1alpha1", "moduleconfigs", {
            "apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleConfig", "metadata": {"name": "ingress-nginx"},
            "spec": {"enabled": True}})
        mark = dkp_cluster.audit_marker()
        box = {}
        t = threading.Thread(target=lambda: box.update(run=run_tasks(kc, [
            {"name": "ready", MI: {"name": "ingress-nginx", "wait_for": "ready", "wait_timeout": 90}}])))
        t.start()
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not [
                    e for e in dkp_cluster.audit_events(mark, resource="modules", verb="watch")
                    if e.user_agent.startswith("deckhouse.platform")]:
                time.sleep(0.5)
        finally:
            simulator.resume()
            t.join(120)
        run = box["run"]
        assert run.rc == 0, run.output
        ready = run.task("ready")
        assert ready["modules"][0]["ready"] is True and ready["waited"] > 0.2
        # timeout names the last state
        simulator.pause()
        try:
            run = run_tasks(kc, [{"name": "phase", MI: {"name": "ingress-nginx", "wait_for": "Downloaded",
                                                        "wait_timeout": 3}, "ignore_errors": True}])
        finally:
            simulator.resume()
        assert task_status(run, "phase") == "failed"
        msg = run.task("phase")["msg"]
        assert "ingress-nginx" in msg and "phase Ready" in msg, msg
    finally:
        delete_mc(api, "ingress-nginx")


def test_wait_for_ready_tolerates_a_transient_hook_error_and_names_a_persistent_one(kc, api, simulator):
    simulator.module_error("cert-manager", message="hook orphan-secrets failed: transient-boom", duration=6)
    try:
        start = time.monotonic()
        run = run_tasks(kc, [{"name": "ready", MI: {"name": "cert-manager", "wait_for": "ready", "wait_grace": 30,
                                                    "wait_timeout": 60}}])
        assert run.rc == 0, run.output
        assert run.task("ready")["modules"][0]["ready"] is True
        assert time.monotonic() - start >= 4, "returned before the transient error cleared"
        simulator.module_error("cert-manager", message="hook orphan-secrets failed: persistent-boom", duration=0)
        run = run_tasks(kc, [{"name": "ready", MI: {"name": "cert-manager", "wait_for": "ready", "wait_grace": 3,
                                                    "wait_timeout": 60}, "ignore_errors": True}])
        assert task_status(run, "ready") == "failed"
        msg = run.task("ready")["msg"]
        assert "persistent-boom" in msg, msg
    finally:
        simulator.module_error_clear("cert-manager")
    run = run_tasks(kc, [{"name": "ready", MI: {"name": "cert-manager", "wait_for": "ready", "wait_timeout": 60}}])
    assert run.rc == 0, run.output


def test_check_mode_and_wait_for_write_nothing(kc, dkp_cluster):
    mark = dkp_cluster.audit_marker()
    run = run_tasks(kc, [{"name": "ready", MI: {"name": "deckhouse", "wait_for": "ready"}}], check=True)
    assert run.rc == 0, run.output
    assert task_status(run, "ready") == "ok" and run.task("ready")["changed"] is False
    assert our_writes(dkp_cluster, mark) == []


def test_wait_honours_the_filters(kc, dkp_cluster):
    """wait_for with source/version/overridden/ready_after: the filters are part of the state waited for."""
    mark = dkp_cluster.audit_marker()
    run = run_tasks(kc, [
        {"name": "now", MI: {"name": "deckhouse", "wait_for": "ready", "source": "Embedded", "overridden": False,
                             "ready_after": "2000-01-01T00:00:00Z", "wait_timeout": 10}},
        {"name": "other-source", MI: {"name": "deckhouse", "wait_for": "ready", "source": "example",
                                      "wait_timeout": 3}, "ignore_errors": True},
        {"name": "future", MI: {"name": "deckhouse", "wait_for": "ready", "ready_after": "2999-01-01T00:00:00Z",
                                "wait_timeout": 3}, "ignore_errors": True},
        {"name": "version", MI: {"name": "deckhouse", "version": "0.0.0-none"}},
        {"name": "bad-time", MI: {"name": "deckhouse", "ready_after": "yesterday"}, "ignore_errors": True},
    ])
    now = run.task("now")
    assert task_status(run, "now") == "ok" and now["waited"] < 5, run.output
    assert now["modules"][0]["name"] == "deckhouse" and now["modules"][0]["overridden"] is False
    for title in ("other-source", "future"):
        assert task_status(run, title) == "failed", run.output
        msg = run.task(title)["msg"]
        assert "deckhouse" in msg and "phase Ready" in msg, msg
    assert run.task("version")["modules"] == [], "a version filter that does not match returns nothing"
    assert task_status(run, "bad-time") == "failed"
    assert "ready_after must be an RFC 3339 time" in run.task("bad-time")["msg"]
    assert our_writes(dkp_cluster, mark) == []
