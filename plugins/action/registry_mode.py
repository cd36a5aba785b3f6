# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action plugin of deckhouse.platform.registry_mode: the write runs as the module, the wait runs here,
on the controller, so that every condition change is printed while it happens.

A module cannot stream output: its result arrives once, at the end. With `connection: local` (how the
collection's modules run) the controller reaches the same API server, so the module writes with
`wait: false` and this plugin follows registry-state itself with the collection's one wait engine
(dkp_registry.follow_switch), printing each change with Ansible's Display (the terminal and AWX's job
output see it at once) and returning the same lines in `progress_lines`. Write + wait is one module
execution. On any other connection the module waits itself (same function, progress in the result).
"""

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import copy

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.validation import check_type_bool, check_type_list
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import (
    CONNECTION_ARG_SPEC,
    NO_LOG_MARKER,
    DkpError,
)

display = Display()

MODULE = "deckhouse.platform.registry_mode"
# registry_mode's own `username`/`password` are the registry's credentials, not the API server's
REGISTRY_OWNED = ("username", "password")
LOCAL_CONNECTIONS = ("local", "ansible.builtin.local")


def controller_client(args):
    """A DkpClient built here from the task's connection options (with the same env fallbacks as the module),
    or None when the controller cannot build one (then the module waits)."""
    try:
        from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import DkpClient, HAS_KUBERNETES
    except ImportError:  # pragma: no cover - the controller lacks urllib3/yaml
        return None
    if not HAS_KUBERNETES:
        return None
    spec = {k: copy.deepcopy(v) for k, v in CONNECTION_ARG_SPEC.items() if k not in REGISTRY_OWNED}
    params = {k: v for k, v in args.items() if k in spec}
    validated = ArgumentSpecValidator(spec).validate(params)
    if validated.error_messages:
        raise AnsibleActionFail("connection options: %s" % "; ".join(validated.error_messages))
    values = dict(validated.validated_parameters)
    values.update({k: None for k in REGISTRY_OWNED})
    return DkpClient(values)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def _is_local(self):
        conn = getattr(self._connection, "transport", None) or getattr(self._play_context, "connection", None)
        return conn in LOCAL_CONNECTIONS

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp

        try:
            wait = check_type_bool(self._task.args.get("wait", False))
        except TypeError as e:
            raise AnsibleActionFail("wait: %s" % e)
        here = wait and not self._task.check_mode and self._is_local()
        client = None
        if here:
            try:
                client = controller_client(self._task.args)
            except DkpError as e:
                raise AnsibleActionFail(e.msg)
            here = client is not None
        module_args = dict(self._task.args)
        if here:
            module_args["wait"] = False  # the module writes; the wait runs here
        written = self._execute_module(module_name=MODULE, module_args=module_args, task_vars=task_vars)
        result.update(written)
        if result.get("failed") or not here:
            return result

        from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_registry import follow_switch

        host = task_vars.get("inventory_hostname", "localhost")
        mode = result.get("mode") or self._task.args.get("mode")
        secrets = [str(v) for k, v in self._task.args.items()
                   if k in ("license", "password", "api_key") and v not in (None, "")]
        for values in (self._task.args.get("settings") or {}).values():
            if isinstance(values, dict):
                secrets.extend(str(values[k]) for k in ("license", "password") if values.get(k) not in (None, ""))

        def clean(line):
            for value in secrets:  # belt and braces: DKP's messages should never carry them
                line = line.replace(value, NO_LOG_MARKER)
            return line

        def show(line):
            display.display("registry_mode [%s]: %s" % (host, clean(line)))

        def images_pending(cond):
            push = result.get("local_push") or {}
            show("waiting for the platform images in the in-cluster registry (%s: %s)"
                 % (cond["type"], (cond.get("message") or cond["status"]).splitlines()[0]))
            if push:
                show("push them with: %s" % push["command"])
                show("the rw user's password is in %s; it is not printed here" % push["password_from"])
                if not push.get("public_domain_known"):
                    show("set <publicDomain> from ModuleConfig global spec.settings.modules.publicDomainTemplate")

        # the module validated these (> 0) before writing
        wait_timeout = int(self._task.args.get("wait_timeout", 1800))
        images_timeout = int(self._task.args.get("images_wait_timeout", 3600))
        configurable = mode != "Unmanaged" or bool((result.get("settings") or {}).get("unmanaged"))
        waited, error = follow_switch(client, mode, result.get("wait_baseline") or {}, wait_timeout, images_timeout,
                                      push=result.get("local_push"), configurable=configurable,
                                      on_lines=lambda lines: [show(line) for line in lines],
                                      on_images_pending=images_pending)
        waited["progress_lines"] = [clean(line) for line in waited.get("progress_lines") or []]
        result.update(waited)
        if error is not None:
            result.update({k: v for k, v in error.details.items() if k not in waited})
            result.update(failed=True, msg=clean(error.msg))
            show("FAILED: %s" % clean(error.msg))
            return result
        show("switch to %s complete" % mode)
        settle_checks = check_type_list(self._task.args.get("settle") or [])  # the module validated the choices
        if settle_checks:
            from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_gates import settle_after_switch

            show("waiting for Deckhouse to settle (%s)" % ", ".join(settle_checks))
            settled, failure = settle_after_switch(client, mode, settle_checks,
                                                   int(self._task.args.get("settle_timeout", 300)))
            result.update(settled)
            if failure:
                result.update(failed=True, msg=clean(failure))
                show("FAILED: %s" % result["msg"])
                return result
            show("Deckhouse settled: %s" % "; ".join(c["message"] for c in result["settled"].values()))
        return result
