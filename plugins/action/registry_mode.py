# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action plugin of deckhouse.platform.registry_mode: the write runs as the module, the wait is
driven from the controller so that every condition change is printed while it happens.

A module cannot stream output: its result arrives once, at the end. So the wait is cut into steps.
The write runs as `registry_mode` with `wait: false` (it returns the registry-state recorded before
the write). Each step then runs `registry_state_info` with `changed_since: <fingerprint>`, which
watches the Secret on the managed host and returns on the next change (or after a heartbeat). The
controller judges every step with the same SwitchTracker the module uses and prints the changes
with Ansible's Display, which reaches the terminal and AWX's job output at once.
"""

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import time

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.validation import check_type_bool, check_type_int
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import (
    CONNECTION_OPTION_NAMES,
    NO_LOG_MARKER,
    DkpError,
)
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_registry import (
    SwitchTracker,
    follow_switch,
)

display = Display()

MODULE = "deckhouse.platform.registry_mode"
STATE_MODULE = "deckhouse.platform.registry_state_info"
STEP_TIMEOUT = 30  # heartbeat: a quiet step returns after this long, so timeouts are checked
STATE_KEYS = ("exists", "mode", "target_mode", "hash", "conditions", "complete", "in_progress", "pending",
              "failed_conditions", "transition_error", "message", "fingerprint")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def _arg(self, name, default, check):
        value = self._task.args.get(name, default)
        try:
            return check(value)
        except (TypeError, ValueError) as e:
            raise AnsibleActionFail("%s: %s" % (name, e))

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp

        wait = self._arg("wait", False, check_type_bool)
        module_args = dict(self._task.args)
        if wait:
            module_args["wait"] = False  # the module writes; the wait runs from here
        written = self._execute_module(module_name=MODULE, module_args=module_args, task_vars=task_vars)
        result.update(written)
        if result.get("failed") or not wait or self._task.check_mode:
            return result

        host = task_vars.get("inventory_hostname", "localhost")
        mode = result.get("mode") or self._task.args.get("mode")
        wait_timeout = self._arg("wait_timeout", 1800, check_type_int)
        images_timeout = self._arg("images_wait_timeout", 3600, check_type_int)
        connection = {k: v for k, v in self._task.args.items() if k in CONNECTION_OPTION_NAMES}

        secrets = [str(v) for k, v in self._task.args.items()
                   if k in ("license", "password", "api_key") and v not in (None, "")]

        def show(line):
            for value in secrets:  # belt and braces: DKP's messages should never carry them
                line = line.replace(value, NO_LOG_MARKER)
            display.display("registry_mode [%s]: %s" % (host, line))

        baseline = result.get("wait_baseline") or {}
        # after a write, replay every change from the state read just before it
        replay = bool(baseline.get("written") and baseline.get("fingerprint"))
        cursor = {"rv": baseline.get("resource_version")} if replay else {}

        def step(since, timeout):
            args = dict(connection)
            if since:
                args.update(changed_since=since, wait_timeout=int(timeout), resource_version=cursor.get("rv"))
            res = self._execute_module(module_name=STATE_MODULE, module_args=args, task_vars=task_vars)
            if res.get("failed"):
                cursor.pop("rv", None)
                raise DkpError(res.get("msg") or "reading registry-state failed")
            cursor["rv"] = res.get("resource_version")
            summary = {k: res.get(k) for k in STATE_KEYS}
            summary["history"] = [{k: h.get(k) for k in STATE_KEYS} for h in res.get("history") or []]
            return summary

        def images_pending(cond):
            push = result.get("local_push") or {}
            show("waiting for the platform images in the in-cluster registry (%s: %s)"
                 % (cond["type"], (cond.get("message") or cond["status"]).splitlines()[0]))
            if push:
                show("push them with: %s" % push["command"])
                show("the rw user's password is in %s; it is not printed here" % push["password_from"])
                if not push.get("public_domain_known"):
                    show("set <publicDomain> from ModuleConfig global spec.settings.modules.publicDomainTemplate")

        tracker = SwitchTracker(mode, baseline)
        started = time.monotonic()
        try:
            final = follow_switch(step, tracker, wait_timeout, images_timeout,
                                  on_lines=lambda lines: [show(line) for line in lines],
                                  on_images_pending=images_pending, push=result.get("local_push"),
                                  step_timeout=STEP_TIMEOUT, since=baseline.get("fingerprint") if replay else None)
        except DkpError as e:
            result.update(e.details)
            result.update(failed=True, msg=e.msg)
            show("FAILED: %s" % e.msg)
            return result
        final.pop("history", None)
        result.update(state=final, progress=tracker.events, timings=tracker.timings(),
                      duration=round(time.monotonic() - started, 1))
        show("switch to %s complete" % mode)
        return result
