# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The gates of a registry switch: control-plane nodes, Deckhouse's queue, the registry Module.

registry_switch_preflight runs them before a switch; registry_mode runs `settle` after one (option
`settle`), because a switch restarts Deckhouse and it is done only when Deckhouse has replayed its startup
queue and the registry Module is Ready again. Each check returns {passed, message, details}; a message
that fails says what to do.
"""

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import time

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import (
    AuthError,
    DkpError,
    UnreachableError,
)

CONTROL_PLANE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
SETTLE_CHECKS = ("module_ready", "queue_empty")


def result(passed, message, **details):
    return {"passed": passed, "message": message, "details": details}


def node_facts(node):
    ready = {}
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            ready = cond
    return {"name": node["metadata"]["name"], "ready": ready.get("status") == "True",
            "ready_reason": ready.get("reason"), "ready_message": ready.get("message"),
            "schedulable": not (node.get("spec") or {}).get("unschedulable", False)}


def evaluate_nodes(nodes, label):
    """The control_plane_ready verdict for a list of node objects (pure)."""
    if not nodes:
        return result(False, "no control-plane nodes found (no node labelled %s): cannot check the masters"
                      % " or ".join(CONTROL_PLANE_LABELS), nodes=[])
    facts = sorted((node_facts(n) for n in nodes), key=lambda f: f["name"])
    problems = []
    for f in facts:
        if not f["ready"]:
            why = ": %s" % (f["ready_message"] or f["ready_reason"]) if (f["ready_message"] or f["ready_reason"]) else ""
            problems.append("%s is NotReady%s: bring it back (check kubelet and containerd on it) before switching"
                            % (f["name"], why))
        if not f["schedulable"]:
            problems.append("%s is cordoned (SchedulingDisabled): uncordon it (d8 k uncordon %s) or finish its "
                            "maintenance first" % (f["name"], f["name"]))
    if problems:
        return result(False, "; ".join(problems), label=label, nodes=facts)
    return result(True, "%d control-plane node(s) Ready and schedulable: %s"
                  % (len(facts), ", ".join(f["name"] for f in facts)), label=label, nodes=facts)


def check_control_plane(client):
    for label in CONTROL_PLANE_LABELS:
        nodes, _rv = client.list("Node", label_selector=label)
        if nodes:
            return evaluate_nodes(nodes, label)
    return evaluate_nodes([], None)


def check_queue(client, wait_timeout, leader_wait_timeout):
    """Deckhouse's queue empty, waiting up to `wait_timeout` s for it to drain (0: read once) with the one queue
    wait (dkp_queue.wait_queue_empty): a failing task fails at once, the read retries for `leader_wait_timeout` s
    while Deckhouse restarts."""
    from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_queue import describe_queue, wait_queue_empty
    from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_wait import WaitFailed, WaitTimeout

    wait = max(0, wait_timeout)
    try:
        queue, leader = wait_queue_empty(client, wait, leader_timeout=leader_wait_timeout)
        passed, message = True, "Deckhouse's queue is empty"
    except WaitFailed as e:
        queue, leader = e.details, e.details["leader"]
        passed, message = False, e.msg + " before switching"
    except WaitTimeout as e:
        queue, leader = e.details, e.details["leader"]
        waited = " after waiting %ss" % wait if wait else ""
        passed, message = False, ("Deckhouse's queue is not empty%s: %s. Wait until it drains (d8 system queue "
                                  "list), or raise queue_wait_timeout" % (waited, describe_queue(queue)))
    return result(passed, message, total_tasks=queue["total_tasks"], failing_tasks=queue["failing_tasks"],
                  active_queues=[{"name": q["name"], "tasks_count": q["tasks_count"]} for q in queue["active_queues"]],
                  leader=leader["name"])


def check_module(client, name, wait_timeout):
    """The Module `name` enabled and Ready, waiting (watch) up to `wait_timeout` s for it (0: read once)."""
    from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_modules import describe_module, module_summary

    module = client.get("Module", name)
    if module is not None and wait_timeout and not module_summary(module)["ready"]:
        from ansible_collections.deckhouse.platform.plugins.module_utils import dkp_wait
        try:
            module = dkp_wait.wait_for(client, "Module", name, lambda m: m is not None and module_summary(m)["ready"],
                                       wait_timeout, describe=describe_module)
        except dkp_wait.WaitTimeout:
            module = client.get("Module", name)
    if module is None:
        return result(False, "Module %s does not exist: this DKP version has no %s module" % (name, name), module=None)
    s = module_summary(module)
    details = {"phase": s["phase"], "enabled": s["enabled"], "ready": s["ready"], "conditions": s["conditions"]}
    if not s["enabled"]:
        return result(False, "Module %s is disabled: enable it (ModuleConfig %s, spec.enabled: true; "
                      "deckhouse.platform.module_config) and wait until it is Ready" % (name, name), **details)
    if not s["ready"]:
        return result(False, "Module %s is not Ready (%s): wait until it is Ready, or fix what its conditions say"
                      % (name, describe_module(module)), **details)
    return result(True, "Module %s is Ready" % name, **details)


def settle(client, checks, timeout, module_name="registry", clock=time.monotonic):
    """After a switch: wait (one budget of `timeout` s for all) until the Module is Ready and the queue has
    drained. Returns (checks dict, list of failed check names)."""
    deadline = clock() + timeout
    out = {}
    for name in SETTLE_CHECKS:
        if name not in checks:
            continue
        left = max(1, int(deadline - clock()))
        try:
            if name == "module_ready":
                out[name] = check_module(client, module_name, left)
            else:
                out[name] = check_queue(client, left, left)
        except (AuthError, UnreachableError):
            raise
        except DkpError as e:
            out[name] = result(False, e.msg)
    return out, [n for n, c in out.items() if not c["passed"]]


def settle_failure(mode, checks, failed):
    return ("The switch to %s is complete, but Deckhouse has not settled after it: %s"
            % (mode, " || ".join("%s: %s" % (n, checks[n]["message"]) for n in failed)))


def settle_after_switch(client, mode, checks, timeout):
    """registry_mode's option `settle` (the module and its action plugin): the result keys `settled` and
    `settle_duration`, and the failure message (None when Deckhouse settled)."""
    started = time.monotonic()
    settled, failed = settle(client, checks, timeout)
    out = {"settled": settled, "settle_duration": round(time.monotonic() - started, 1)}
    return out, (settle_failure(mode, settled, failed) if failed else None)
