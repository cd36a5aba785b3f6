#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

DOCUMENTATION = r"""
module: preflight
short_description: Check that a DKP cluster is fit for a disruptive change (registry switch, upgrade)
version_added: 0.1.0
description:
  - Runs the named checks and returns one result per check (C(passed), C(message), C(details)). Every check
    runs even when an earlier one fails; the task then fails with all failed checks listed, each with what
    to do about it.
  - C(control_plane_ready) - every node labelled C(node-role.kubernetes.io/control-plane) (falling back to
    C(node-role.kubernetes.io/master)) is Ready and not cordoned (C(SchedulingDisabled)).
  - C(queue_empty) - Deckhouse's queue is empty, optionally waiting up to O(queue_wait_timeout) seconds for
    it to drain. A failing task (C(:failures N:) in its description) fails the check at once - it will not
    drain by itself.
  - C(module_ready) - the Module O(module_name) is enabled and Ready (phase C(Ready), C(IsReady=True)).
  - C(registry_transition) - the move from the current registry mode to O(target_mode) is one DKP supports
    (Local and Proxy only through Direct or Unmanaged; non-configurable Unmanaged not from Local), directly
    or through O(via); and no other switch is in progress. A switch already under way toward
    O(target_mode) (or O(via)) passes as a resume.
  - Read-only; runs unchanged in check mode.
author: deckhouse.platform contributors (@deckhouse)
options:
  checks:
    description: The checks to run.
    type: list
    elements: str
    choices: [control_plane_ready, queue_empty, module_ready, registry_transition]
    default: [control_plane_ready, queue_empty, module_ready, registry_transition]
  queue_wait_timeout:
    description:
      - Seconds C(queue_empty) waits for a busy queue to drain; V(0) checks once.
    type: int
    default: 0
  leader_wait_timeout:
    description: Seconds C(queue_empty) retries while the Deckhouse leader pod is being replaced.
    type: int
    default: 60
  module_name:
    description: The Module C(module_ready) checks.
    type: str
    default: registry
  target_mode:
    description: The registry mode C(registry_transition) checks the move to. Required for that check.
    type: str
    choices: [Unmanaged, Direct, Proxy, Local]
  target_configurable:
    description:
      - For O(target_mode=Unmanaged) - whether the target is a configurable Unmanaged (with an C(unmanaged)
        section, that is an C(images_repo)) or the non-configurable one.
    type: bool
    default: true
  via:
    description:
      - An intermediate mode that makes an unsupported move possible in two hops (Local to Proxy via Direct).
    type: str
    choices: [Direct, Unmanaged]
extends_documentation_fragment:
  - deckhouse.platform.connection
  - deckhouse.platform.attributes
  - deckhouse.platform.attributes.READ_ONLY
"""

EXAMPLES = r"""
- name: Is the cluster fit for a switch to Proxy?
  deckhouse.platform.preflight:
    target_mode: Proxy
    queue_wait_timeout: 300

- name: Only the nodes and the queue, and keep going to report
  deckhouse.platform.preflight:
    checks: [control_plane_ready, queue_empty]
  register: preflight
  failed_when: false

- name: Show what failed
  ansible.builtin.debug:
    msg: "{{ preflight.failed_checks }}"
"""

RETURN = r"""
checks:
  description: One entry per check run, keyed by check name.
  returned: always
  type: dict
  contains:
    passed:
      description: Whether the check passed.
      type: bool
    message:
      description: What was found and, on failure, what to do.
      type: str
    details:
      description: The facts behind it (nodes, queue, module status, modes).
      type: dict
  sample:
    control_plane_ready:
      passed: false
      message: "master-2 is cordoned (SchedulingDisabled): uncordon it (d8 k uncordon master-2) or finish its maintenance first"
      details: {nodes: [{name: master-2, ready: true, schedulable: false}]}
failed_checks:
  description: Names of the checks that failed.
  returned: always
  type: list
  elements: str
passed:
  description: All checks passed.
  returned: always
  type: bool
"""

import time

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import DkpError
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_module import DkpModule
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_modules import describe_module, module_summary
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_queue import (
    describe_failing,
    describe_queue,
    read_queue,
)
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_registry import (
    DECKHOUSE_CONFIG,
    NAMESPACE,
    STATE_SECRET,
    effective_mode,
    live_mode,
    live_registry,
    parse_state,
    plan_hops,
)

CHECKS = ("control_plane_ready", "queue_empty", "module_ready", "registry_transition")
CONTROL_PLANE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")


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


def check_control_plane(client, params):
    for label in CONTROL_PLANE_LABELS:
        nodes, _rv = client.list("Node", label_selector=label)
        if nodes:
            return evaluate_nodes(nodes, label)
    return evaluate_nodes([], None)


def check_queue(client, params, sleep=time.sleep, clock=time.monotonic):
    wait = max(0, params["queue_wait_timeout"])
    deadline = clock() + wait
    while True:
        queue, leader = read_queue(client, timeout=params["leader_wait_timeout"])
        details = {"total_tasks": queue["total_tasks"], "failing_tasks": queue["failing_tasks"],
                   "active_queues": [{"name": q["name"], "tasks_count": q["tasks_count"]} for q in queue["active_queues"]],
                   "leader": leader["name"]}
        if queue["failing_tasks"]:
            return result(False, "Deckhouse's queue has %d failing task(s): %s. They do not drain by themselves: fix "
                          "the cause (d8 system queue list; the module's logs) before switching"
                          % (len(queue["failing_tasks"]), describe_failing(queue)), **details)
        if queue["empty"]:
            return result(True, "Deckhouse's queue is empty", **details)
        if clock() >= deadline:
            waited = " after waiting %ss" % wait if wait else ""
            return result(False, "Deckhouse's queue is not empty%s: %s. Wait until it drains (d8 system queue list), "
                          "or raise queue_wait_timeout" % (waited, describe_queue(queue)), **details)
        sleep(min(3.0, max(0.0, deadline - clock())))


def check_module(client, params):
    name = params["module_name"]
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


def evaluate_transition(state, live_settings, target, configurable=True, via=None):
    """The registry_transition verdict (pure): state summary and live spec.settings.registry."""
    current = effective_mode(state["mode"]) if state["exists"] else live_mode(live_settings)
    details = {"current_mode": current, "target_mode": target, "via": via, "state": state["message"],
               "in_progress": state["in_progress"], "state_target_mode": state["target_mode"], "resuming": False}
    if state["in_progress"]:
        ours = [m for m in (target, via) if m]
        if effective_mode(state["target_mode"]) in ours:
            details["resuming"] = True
            hops = [target] if effective_mode(state["target_mode"]) == target else [via, target]
            return result(True, "a switch to %s is already in progress (%s): resuming it"
                          % (state["target_mode"], state["message"]), hops=hops, **details)
        return result(False, "another registry switch is in progress: %s. Wait until it completes (or fails) "
                      "before starting a switch to %s" % (state["message"], target), hops=None, **details)
    hops, error = plan_hops(current, target, configurable, via)
    if error:
        return result(False, error, hops=None, **details)
    if len(hops) == 2:
        return result(True, "%s to %s is not supported directly; going through %s" % (current, target, via),
                      hops=hops, **details)
    return result(True, "the switch from %s to %s is supported" % (current, target), hops=hops, **details)


def check_transition(client, params):
    if not params.get("target_mode"):
        raise DkpError("The registry_transition check needs `target_mode`")
    state = parse_state(client.get("Secret", STATE_SECRET, NAMESPACE))
    live = live_registry(client.get("ModuleConfig", DECKHOUSE_CONFIG))
    return evaluate_transition(state, live, params["target_mode"], params["target_configurable"], params.get("via"))


RUNNERS = {
    "control_plane_ready": check_control_plane,
    "queue_empty": check_queue,
    "module_ready": check_module,
    "registry_transition": check_transition,
}


def run(module):
    params = module.params
    names = []
    for name in params["checks"]:
        if name not in names:
            names.append(name)
    if "registry_transition" in names and not params.get("target_mode"):
        raise DkpError("The registry_transition check needs `target_mode` (Unmanaged, Direct, Proxy or Local)")
    checks = {}
    for name in names:
        try:
            checks[name] = RUNNERS[name](module.client, params)
        except DkpError as e:
            if e.msg.startswith(("Unauthorized", "Cannot reach", "No cluster", "kubeconfig")):
                raise  # no point in running the other checks
            checks[name] = result(False, e.msg)
    failed = [n for n in names if not checks[n]["passed"]]
    out = {"checks": checks, "failed_checks": failed, "passed": not failed, "changed": False}
    if failed:
        msg = "Preflight failed (%d of %d checks): %s" % (len(failed), len(names),
                                                          " | ".join("%s: %s" % (n, checks[n]["message"]) for n in failed))
        raise DkpError(msg, **{k: v for k, v in out.items() if k != "changed"})
    return out


def main():
    module = DkpModule(
        argument_spec=dict(
            checks=dict(type="list", elements="str", choices=list(CHECKS), default=list(CHECKS)),
            queue_wait_timeout=dict(type="int", default=0),
            leader_wait_timeout=dict(type="int", default=60),
            module_name=dict(type="str", default="registry"),
            target_mode=dict(type="str", choices=["Unmanaged", "Direct", "Proxy", "Local"]),
            target_configurable=dict(type="bool", default=True),
            via=dict(type="str", choices=["Direct", "Unmanaged"]),
        ),
        supports_check_mode=True,
    )
    module.run(lambda: run(module))


if __name__ == "__main__":
    main()
