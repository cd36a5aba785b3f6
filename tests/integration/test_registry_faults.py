# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Faults, races and bad input for the registry modules (registry_mode, registry_state_info,
registry_switch_preflight, deckhouse_queue_info), through ansible-playbook against the local cluster.

Every bad input is refused before any write, proved from the audit log; waits ride through an API
server restart of 35 s and a paused simulator; a second writer is detected before the write and during
the wait."""
from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import threading
import time

import pytest
import yaml

from ansible_run import run_tasks
from registry_support import LICENSE, PASSWORD, REPO, Cluster, assert_no_secrets, our_writes, task_status

NO_LOG = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


@pytest.fixture
def registry(kube, fresh_simulator):
    cluster = Cluster(kube)
    cluster.enable_registry()
    return cluster


def people(writes):
    """Writes by a user of the cluster (the collection runs as the kubeconfig's user), not by kube-system
    components renewing their leases."""
    return [w for w in writes if not (w.impersonated_user or w.user or "").startswith("system:")]


def task(module, register="out", **params):
    return {"name": register, "deckhouse.platform." + module: params, "register": register}


def wait_for_our_switch(registry, mode, timeout=120):
    """Until our write is in ModuleConfig deckhouse (license LICENSE) and registry-state targets `mode`: a
    leftover target of an earlier test must not pass for ours."""
    def ours():
        settings = registry.registry_settings() or {}
        section = settings.get(mode.lower()) or {}
        return (settings.get("mode") == mode and section.get("license") == LICENSE
                and (registry.state() or {}).get("target_mode") == mode)
    registry.wait(ours, "our switch to %s" % mode, timeout=timeout)


class InBackground:
    """run_tasks in a thread, so the test can break things while the task waits."""

    def __init__(self, kc, tasks, **kw):
        self.run = None
        self.thread = threading.Thread(target=self._go, args=(kc, tasks), kwargs=kw, daemon=True)
        self.thread.start()

    def _go(self, kc, tasks, **kw):
        self.run = run_tasks(kc, tasks, **kw)

    def join(self, timeout=600):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the playbook did not end"
        return self.run


# -- bad input: refused before any write --------------------------------------------------------------

BAD = [
    ("registry_mode", dict(mode="Direct", images_repo=REPO, wait=True, wait_timeout=-1), "wait_timeout must be greater than 0"),
    ("registry_mode", dict(mode="Direct", images_repo=REPO, wait=True, wait_timeout=0), "wait_timeout must be greater than 0"),
    ("registry_mode", dict(mode="Local", images_wait_timeout=-5), "images_wait_timeout must be greater than 0"),
    ("registry_mode", dict(mode="Direct", images_repo=REPO, request_timeout=0), "request_timeout must be greater than 0"),
    ("registry_mode", dict(mode="Dirct", images_repo=REPO), "value of mode must be one of"),
    ("registry_mode", dict(mode="Direct", images_repo=REPO, image_check_mode="Strict"), "image_check_mode must be one of"),
    ("registry_mode", dict(mode="Direct", images_repo=REPO, scheme="FTP"), "scheme must be one of"),
    ("registry_mode", dict(mode="Direct", settings={"mode": "Direct"}), "mutually exclusive"),
    ("registry_mode", dict(settings={"mode": "Proxy", "proxy": {"imagesRepo": REPO, "ttl": "1m"}}),
     "'ttl' should be at least 5 minutes"),
    ("registry_mode", dict(settings={"mode": "Direct"}), "'direct' section must be specified"),
    ("registry_mode", dict(mode="Local", images_repo=REPO), "mode Local has no registry parameters"),
    ("registry_mode", dict(mode="Direct", images_repo=REPO, ca="not a certificate"), "must be a PEM certificate"),
    ("registry_mode", dict(mode="Direct", images_repo=REPO, license=LICENSE, username="u", password=PASSWORD),
     "mutually exclusive"),
    ("registry_mode", dict(mode="Direct", images_repo="registry.example.com/a b"), "should match"),
    ("registry_mode", dict(mode="Proxy", images_repo=REPO, ttl="1d"), "registry.proxy.ttl"),
    ("registry_mode", dict(mode="Direct", images_repo=REPO, ttl="1h"), "ttl is a parameter of mode Proxy only"),
    ("registry_mode", dict(images_repo=REPO), "one of the following is required: mode, settings"),
    ("registry_mode", dict(mode="Direct", images_repo=REPO, wait="maybe"), "wait"),
    ("registry_state_info", dict(changed_since="x", resource_version="abc"), "is not a Kubernetes resourceVersion"),
    ("registry_state_info", dict(resource_version="12; DROP"), "is not a Kubernetes resourceVersion"),
    ("registry_state_info", dict(changed_since="x", wait_timeout=0), "wait_timeout must be greater than 0"),
    ("registry_state_info", dict(changed_since="x", wait_timeout=-30), "wait_timeout must be greater than 0"),
    ("registry_switch_preflight", dict(checks=["registry_transition"]), "needs `target_mode`"),
    ("registry_switch_preflight", dict(checks=["nodes"]), "value of checks must be one or more of"),
    ("registry_switch_preflight", dict(queue_wait_timeout=-1, checks=["queue_empty"]), "queue_wait_timeout must be 0 or more"),
    ("registry_switch_preflight", dict(module_wait_timeout=-1, checks=["module_ready"]), "module_wait_timeout must be 0 or more"),
    ("registry_switch_preflight", dict(target_mode="Local", via="Proxy"), "value of via must be one of"),
    ("registry_switch_preflight", dict(target_mode="Proxy", images_repo=REPO, ttl="2m", checks=["registry_transition"]),
     "'ttl' should be at least 5 minutes"),
    ("registry_switch_preflight", dict(target_mode="Direct", images_repo="https://" + REPO,
                                       checks=["registry_transition"]), "must not contain a scheme"),
    ("preflight", dict(leader_wait_timeout=-3, checks=["queue_empty"]), "leader_wait_timeout must be 0 or more"),
    ("deckhouse_queue_info", dict(leader_wait_timeout=-1), "leader_wait_timeout must be 0 or more"),
    ("deckhouse_queue_info", dict(leader_wait_timeout="soon"), "leader_wait_timeout"),
]


def test_bad_inputs_are_refused_before_any_write(kc, dkp_cluster, registry):
    mark = dkp_cluster.audit_marker()
    tasks = [dict(task(module, register="case%d" % i, **params), ignore_errors=True)
             for i, (module, params, _msg) in enumerate(BAD)]
    run = run_tasks(kc, tasks)
    problems = []
    for i, (module, params, msg) in enumerate(BAD):
        status = task_status(run, "case%d" % i)
        got = run.task("case%d" % i).get("msg", "")
        if status != "failed" or msg not in got:
            problems.append("%s %s: %s %r" % (module, params, status, got))
    assert problems == []
    # nothing was written, not even as a dry-run: every case failed before its first write
    assert people(our_writes(dkp_cluster, mark, dry_run=None, resource=None)) == []
    assert_no_secrets(run.output, str(run.records))


def test_negative_wait_timeout_does_not_start_a_switch(kc, dkp_cluster, registry):
    before = registry.registry_settings()
    mark = dkp_cluster.audit_marker()
    run = run_tasks(kc, [task("registry_mode", mode="Direct", images_repo=REPO, license=LICENSE, wait=True,
                              wait_timeout=-1)])
    assert task_status(run, "out") == "failed"
    assert people(our_writes(dkp_cluster, mark, dry_run=None, resource=None)) == []
    assert registry.registry_settings() == before and registry.complete("Unmanaged")


# -- credentials, aliases, examples ---------------------------------------------------------------------

def test_proxy_to_direct_without_license_is_refused_unless_carried_over(kc, dkp_cluster, registry):
    registry.set_registry({"mode": "Proxy", "proxy": {"imagesRepo": REPO, "license": LICENSE}}, "Proxy")
    mark = dkp_cluster.audit_marker()
    run = run_tasks(kc, [task("registry_mode", mode="Direct", images_repo=REPO, wait=True)])
    assert task_status(run, "out") == "failed"
    msg = run.task("out")["msg"]
    assert "would drop it" in msg and "from_current: true" in msg
    assert our_writes(dkp_cluster, mark, dry_run=None) == []
    carried = run_tasks(kc, [task("registry_mode", mode="Direct", images_repo=REPO, from_current=True)], check=True)
    assert task_status(carried, "out") == "ok" and carried.task("out")["changed"] is True
    assert carried.task("out")["settings"]["direct"]["license"] == NO_LOG
    assert_no_secrets(run.output, carried.output, str(carried.records))


def test_check_mode_option_is_a_deprecated_alias_of_image_check_mode(kc, registry):
    run = run_tasks(kc, [task("registry_mode", mode="Direct", images_repo=REPO, check_mode="Relax")], check=True)
    assert task_status(run, "out") == "ok", run.output
    out = run.task("out")
    assert out["settings"]["direct"]["checkMode"] == "Relax"
    assert any("check_mode" in str(d) for d in out.get("deprecations") or []) or "check_mode" in run.output
    new = run_tasks(kc, [task("registry_mode", mode="Direct", images_repo=REPO, image_check_mode="Relax")], check=True)
    assert task_status(new, "out") == "ok" and not new.task("out").get("deprecations")


def test_registry_state_info_example_runs_when_all_is_well(kc, registry):
    """The module's EXAMPLES block, as documented, on a healthy cluster (ansible-core >= 2.19 templating)."""
    import ast
    import pathlib
    source = (pathlib.Path(__file__).resolve().parents[2] / "plugins" / "modules" / "registry_state_info.py").read_text()
    examples = next(n.value.value for n in ast.parse(source).body
                    if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == "EXAMPLES")
    tasks = yaml.safe_load(examples)
    run = run_tasks(kc, tasks)
    assert run.rc == 0, run.output


# -- races ----------------------------------------------------------------------------------------------

def test_another_switch_in_progress_is_refused_just_before_the_write(kc, dkp_cluster, registry, simulator):
    simulator.hold_condition("TransitionContainerdConfigReady", "held by the test")
    registry.patch_mc("deckhouse", [{"op": "add", "path": "/spec/settings/registry",
                                     "value": {"mode": "Direct", "direct": {"imagesRepo": REPO}}}])
    registry.wait(lambda: (registry.state() or {}).get("target_mode") == "Direct", "target Direct")
    mark = dkp_cluster.audit_marker()
    # check_transition off: only the re-read just before the write stands between this run and the other one
    run = run_tasks(kc, [task("registry_mode", mode="Unmanaged", images_repo=REPO, wait=True)])
    assert task_status(run, "out") == "failed"
    assert "registry-state shows a switch to Direct" in run.task("out")["msg"]
    assert our_writes(dkp_cluster, mark, dry_run=None) == []


def test_wait_fails_at_once_when_another_target_replaces_ours(kc, registry, simulator):
    simulator.hold_condition("TransitionContainerdConfigReady", "held by the test")
    bg = InBackground(kc, [task("registry_mode", mode="Direct", images_repo=REPO, license=LICENSE, wait=True,
                                wait_timeout=300)])
    wait_for_our_switch(registry, "Direct")
    started = time.monotonic()
    registry.patch_mc("deckhouse", [{"op": "add", "path": "/spec/settings/registry",
                                     "value": {"mode": "Unmanaged", "unmanaged": {"imagesRepo": REPO}}}])
    run = bg.join(120)
    assert task_status(run, "out") == "failed"
    msg = run.task("out")["msg"]
    assert "another run (or an operator) changed the registry settings" in msg and "run_lock" in msg
    assert time.monotonic() - started < 60  # not the 300 s timeout
    assert run.task("out")["changed"] is True


# -- faults -------------------------------------------------------------------------------------------

def test_wait_rides_through_an_apiserver_restart_of_35s(kc, dkp_cluster, registry, simulator):
    from harness import cluster as harness_cluster

    if dkp_cluster.dir is None:
        pytest.skip("needs a harness cluster (restart-apiserver)")
    simulator.hold_condition("DeckhouseRegistrySwitchReady", "held by the test")
    bg = InBackground(kc, [task("registry_mode", mode="Direct", images_repo=REPO, license=LICENSE, wait=True,
                                wait_timeout=300)], env={"DKP_RETRY_TIMEOUT": "120"})
    wait_for_our_switch(registry, "Direct")
    down = harness_cluster.restart_apiserver(dkp_cluster.dir, down_seconds=35)
    assert down["down_seconds"] >= 30
    simulator.release_condition()
    run = bg.join(400)
    assert task_status(run, "out") == "ok", run.output[-3000:]
    out = run.task("out")
    assert out["state"]["complete"] and out["state"]["mode"] == "Direct"
    assert any(line.startswith("Ready: True") for line in out["progress_lines"])
    assert_no_secrets(run.output, str(run.records))


def test_wait_rides_through_a_paused_and_restarted_simulator(kc, registry, simulator):
    bg = InBackground(kc, [task("registry_mode", mode="Proxy", images_repo=REPO, license=LICENSE, wait=True,
                                wait_timeout=300)])
    wait_for_our_switch(registry, "Proxy")
    simulator.pause()
    time.sleep(12)  # Deckhouse frozen mid-switch: the wait must neither end nor fail
    assert bg.thread.is_alive()
    simulator.resume()
    run = bg.join(400)
    assert task_status(run, "out") == "ok", run.output[-3000:]
    out = run.task("out")
    assert out["state"]["complete"] and out["state"]["mode"] == "Proxy"
    assert "target_mode changed to Proxy" in out["evidence"]


def test_queue_read_during_a_deckhouse_restart(kc, registry, simulator):
    simulator.restart_deckhouse(duration=6)
    run = run_tasks(kc, [task("deckhouse_queue_info", leader_wait_timeout=90)])
    assert task_status(run, "out") == "ok", run.output[-3000:]
    out = run.task("out")
    assert out["leader"]["phase"] == "Running"
    # the main queue refills with startup tasks in the released format
    for t in (t for q in out["active_queues"] for t in q["tasks"]):
        assert t["type"] and ":" not in (t["module"] or "")
