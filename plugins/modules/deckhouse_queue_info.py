#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

DOCUMENTATION = r"""
module: deckhouse_queue_info
short_description: Read Deckhouse's task queue (what C(d8 system queue list) shows)
version_added: 0.1.0
description:
  - Finds the Running Deckhouse leader pod (namespace C(d8-system), labels C(app=deckhouse,leader=true)) and
    runs C(curl -s http://127.0.0.1:9652/queue/list.json) in its C(deckhouse) container, like
    C(d8 system queue list -o json).
  - Returns the totals, every active queue with its tasks, and the failing tasks. Deckhouse reports a task's
    errors only inside its description (C(:failures N:<last error>)); they are parsed into RV(failing_tasks).
  - Read-only - never reports a change and runs unchanged in check mode (the exec only reads).
  - Task descriptions are parsed as shell-operator writes them (C(<Type>:<queue>[:<metadata>][:failures N[:<error>]]),
    for example C(ModuleRun:main:cert-manager:doStartup:OnStartup)) into C(type), C(module), C(event), C(failures) and
    C(error); a queue whose status says C(sleep after fail for 10s) is backing off its first task, which counts as
    failing.
  - While the leader pod is being replaced or Deckhouse restarts (after registry switches, release deploys and
    reinstalls; its debug API then refuses connections) the read is retried with growing pauses for up to
    O(leader_wait_timeout) seconds, then fails saying that Deckhouse is restarting. No leader pod at all fails with
    a message saying what to do; an RBAC refusal of C(pods/exec) or rejected credentials fail at once.
author: deckhouse.platform contributors (@deckhouse)
options:
  leader_wait_timeout:
    description:
      - Seconds to keep retrying while there is no Running leader pod or the queue API does not answer yet.
      - V(0) tries once; negative values are refused.
    type: int
    default: 120
  wait_for:
    description:
      - V(empty) - first wait until the queue has drained (no task in any queue), then return it. The queue is
        reachable only through the exec, so it is read every 2 seconds. A failing task fails the wait at once
        (it does not drain by itself); a Deckhouse restart meanwhile is ridden through (O(leader_wait_timeout)
        per read).
      - On timeout the task fails describing the last queue seen; the queue fields are in the result.
    type: str
    choices: [empty]
    version_added: 0.2.0
  wait_timeout:
    description: Seconds O(wait_for) waits. Must be greater than 0.
    type: int
    default: 300
    version_added: 0.2.0
extends_documentation_fragment:
  - deckhouse.platform.connection
  - deckhouse.platform.attributes
  - deckhouse.platform.attributes.READ_ONLY
notes:
  - Needs C(list) on C(pods) and C(create) on C(pods/exec) in namespace C(d8-system).
  - O(impersonate_user) and O(impersonate_groups) are not applied to the exec (the kubernetes client sends only
    the Authorization header on the exec websocket); the module warns when they are set.
"""

EXAMPLES = r"""
- name: Read the queue
  deckhouse.platform.deckhouse_queue_info:
  register: queue

- name: Stop when a task keeps failing
  ansible.builtin.assert:
    that: queue.failing_tasks | length == 0
    fail_msg: "{{ queue.failing_tasks | map(attribute='description') | join('; ') }}"

- name: Wait until the queue drains (a failing task fails at once)
  deckhouse.platform.deckhouse_queue_info:
    wait_for: empty
    wait_timeout: 300
"""

RETURN = r"""
total_tasks:
  description: C(summary.totalTasks).
  returned: always
  type: int
main_queue_tasks:
  description: C(summary.mainQueueTasks).
  returned: always
  type: int
other_queues:
  description: C(summary.otherQueues) - counts of active and empty queues and their tasks.
  returned: always
  type: dict
active_queues:
  description: Queues that have tasks, main first.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Queue name.
      type: str
    tasks_count:
      description: Number of tasks.
      type: int
    status:
      description: What the queue is doing, for example C(run first task) or C(sleep after fail for 10s).
      type: str
    backoff_seconds:
      description: The pause of C(sleep after fail for N) in the status (the first task is failing), else null.
      type: float
    tasks:
      description: Tasks with C(index), C(description), C(type), C(module), C(event), C(failures) and C(error).
      type: list
      elements: dict
failing_tasks:
  description:
    - Tasks whose description carries C(:failures N) with N > 0, or the first task of a queue backing off - queue,
      index, description, type, module, event, failures, error, backoff_seconds.
  returned: always
  type: list
  elements: dict
startup_tasks:
  description: Tasks of a C(doStartup) event - many right after Deckhouse (re)started.
  returned: always
  type: int
empty:
  description: No task in any queue (C(summary.totalTasks == 0)).
  returned: always
  type: bool
leader:
  description: The pod the queue was read from - name, phase, ready, node, restarts.
  returned: always
  type: dict
waited:
  description: Seconds O(wait_for) waited.
  returned: when O(wait_for) is set
  type: float
"""

import time

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_base import DkpModule
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_queue import (
    impersonation_note,
    read_queue,
    wait_queue_empty,
)


def run(module):
    p = module.params
    note = impersonation_note(module.client)
    if note:
        module.warn(note)
    if p["wait_for"] == "empty":
        started = time.monotonic()
        queue, leader = wait_queue_empty(module.client, p["wait_timeout"], leader_timeout=p["leader_wait_timeout"])
        return dict(queue, leader=leader, changed=False, waited=round(time.monotonic() - started, 1))
    queue, leader = read_queue(module.client, timeout=p["leader_wait_timeout"])
    return dict(queue, leader=leader, changed=False)


def main():
    module = DkpModule(
        argument_spec=dict(
            leader_wait_timeout=dict(type="int", default=120),
            wait_for=dict(type="str", choices=["empty"]),
            wait_timeout=dict(type="int", default=300),
        ),
        supports_check_mode=True,
        non_negative_params=("leader_wait_timeout",),
    )
    module.run(lambda: run(module))


if __name__ == "__main__":
    main()
