#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

DOCUMENTATION = r"""
module: module_config
short_description: Manage a DKP ModuleConfig (enable, configure, disable a module)
version_added: 0.1.0
description:
  - Creates, updates or deletes the C(deckhouse.io/v1alpha1) ModuleConfig of one module.
  - Only the fields the task names are written (a JSON merge patch guarded by the object's
    resourceVersion), so settings written by others survive, also when both write at the same time.
  - C(changed) is decided from spec, labels and annotations before any wait; status never counts.
  - Optionally waits until the Module is Ready (or disabled), failing early when the ModuleConfig reports
    an error.
author: deckhouse.platform contributors (@deckhouse)
options:
  name:
    description: Module name (the ModuleConfig's name), for example C(cert-manager), or C(global).
    type: str
    required: true
  state:
    description: C(present) creates or updates the ModuleConfig; C(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  enabled:
    description: Enable (V(true)) or disable (V(false)) the module. Omitted leaves it as it is.
    type: bool
  version:
    description:
      - Settings schema version (C(spec.version)). DKP requires it whenever O(settings) are set.
    type: int
  settings:
    description:
      - Module settings (C(spec.settings)).
      - With O(settings_mode=merge) they are deep-merged into the live settings and a V(null) value removes
        that key; with O(settings_mode=replace) the settings become exactly this dictionary.
    type: dict
  settings_mode:
    description: How O(settings) combine with the live settings.
    type: str
    choices: [merge, replace]
    default: merge
  source:
    description: ModuleSource the module is taken from (C(spec.source)). Needed when several sources offer it.
    type: str
  update_policy:
    description: Name of a ModuleUpdatePolicy (C(spec.updatePolicy)).
    type: str
  maintenance:
    description:
      - V(NoResourceReconciliation) stops Deckhouse reconciling the module's resources; V(off) removes it.
    type: str
    choices: [NoResourceReconciliation, "off"]
  allow_disabling:
    description:
      - When the task disables the module (or deletes the ModuleConfig), add the annotation
        C(modules.deckhouse.io/allow-disabling=true) that DKP requires for modules whose disabling must be
        confirmed. Without it such a task fails before writing anything.
    type: bool
    default: false
  wait:
    description:
      - Wait until the Module is Ready with C(IsReady=True) (when enabled) or disabled (when disabled).
      - Fails early when the ModuleConfig reports C(Error ...) or C(Ignored. unknown module name), or the
        Module reaches a phase that needs an operator (Conflict, Error, DownloadingError, Unavailable).
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait before failing with the last observed Module state.
    type: int
    default: 600
extends_documentation_fragment:
  - deckhouse.platform.connection
  - deckhouse.platform.attributes
  - deckhouse.platform.attributes.CHECK_MODE_WRITE
"""

EXAMPLES = r"""
- name: Enable cert-manager with one setting, keeping every other setting as it is
  deckhouse.platform.module_config:
    name: cert-manager
    enabled: true
    version: 1
    settings:
      disableLetsencrypt: true
    wait: true

- name: Remove one setting (null removes the key)
  deckhouse.platform.module_config:
    name: cert-manager
    settings:
      disableLetsencrypt: null

- name: Disable a module whose disabling DKP asks to confirm
  deckhouse.platform.module_config:
    name: console
    enabled: false
    allow_disabling: true
    wait: true

- name: Connection options once for the whole collection
  module_defaults:
    group/deckhouse.platform.dkp:
      kubeconfig: /etc/dkp/admin.kubeconfig
  block:
    - name: Take console from a given source with an update policy
      deckhouse.platform.module_config:
        name: console
        enabled: true
        source: deckhouse-prod
        update_policy: manual-console
"""

RETURN = r"""
config:
  description: The ModuleConfig after the task (the dry-run result in check mode); secret-looking settings redacted.
  returned: when state is present
  type: dict
module:
  description: Status summary of the Module (phase, enabled, ready, source, conditions) when the task waited.
  returned: when wait is true
  type: dict
diff:
  description: Spec, labels and annotations before and after (diff mode), secrets redacted.
  returned: in diff mode, when changed
  type: dict
method:
  description: What was sent, one of C(create), C(patch), C(delete) or C(none).
  returned: always
  type: str
"""

import time

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_module import DkpModule
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import DkpError
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_modules import (
    ALLOW_DISABLING_ANNOTATION,
    MODULE_FAILED_PHASES,
    check_name,
    config_error,
    config_summary,
    describe_module,
    is_true,
    module_summary,
)
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_resource import (
    condition,
    deep_merge,
    diff_view,
    ensure,
    ensure_absent,
)
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_wait import wait_for

# Seconds an unchanged, pre-existing ModuleConfig error may persist after our write before it counts.
STALE_ERROR_GRACE = 10


def validate(params):
    errors = [m for m in (check_name(params["name"]),
                          params.get("source") and check_name(params["source"], "ModuleSource name"),
                          params.get("update_policy") and check_name(params["update_policy"], "ModuleUpdatePolicy name"))
              if m]
    if params["state"] == "absent":
        conflicting = [k for k in ("enabled", "version", "settings", "source", "update_policy", "maintenance")
                       if params.get(k) is not None]
        if conflicting:
            errors.append("state=absent deletes the ModuleConfig; remove %s from the task" % ", ".join(conflicting))
    if params.get("version") is not None and params["version"] < 1:
        errors.append("version must be a positive settings schema version (for example 1), got %s" % params["version"])
    if errors:
        raise DkpError("; ".join(errors))


def desired_object(params, live):
    """The whole ModuleConfig the task wants, built on top of the live one."""
    name = params["name"]
    obj = live or {"apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleConfig",
                   "metadata": {"name": name}, "spec": {}}
    overlay = {}
    if params.get("enabled") is not None:
        overlay["enabled"] = params["enabled"]
    if params.get("version") is not None:
        overlay["version"] = params["version"]
    if params.get("source") is not None:
        overlay["source"] = params["source"]
    if params.get("update_policy") is not None:
        overlay["updatePolicy"] = params["update_policy"]
    if params.get("maintenance") is not None:
        overlay["maintenance"] = None if params["maintenance"] == "off" else params["maintenance"]
    spec = deep_merge(obj.get("spec") or {}, overlay)
    if params.get("settings") is not None:
        if params["settings_mode"] == "replace":
            spec["settings"] = deep_merge({}, params["settings"])
        else:
            spec["settings"] = deep_merge(spec.get("settings") or {}, params["settings"])
        if not spec["settings"]:
            spec.pop("settings")
    if spec.get("settings") and not spec.get("version"):
        raise DkpError("ModuleConfig %s would have settings without a version: DKP rejects that. Set `version` to "
                       "the module's settings schema version (for example `version: 1`)." % name)
    wanted = dict(obj, spec=spec)
    if params.get("allow_disabling") and params.get("enabled") is False:
        meta = dict(wanted.get("metadata") or {})
        meta["annotations"] = dict(meta.get("annotations") or {}, **{ALLOW_DISABLING_ANNOTATION: "true"})
        wanted["metadata"] = meta
    return wanted


def check_disabling_allowed(module, params, live):
    """Fail before writing when DKP would refuse to disable the module without confirmation."""
    disabling = params["state"] == "absent" or (params.get("enabled") is False
                                                and (live or {}).get("spec", {}).get("enabled") is not False)
    if not disabling or params["allow_disabling"]:
        return
    annotations = ((live or {}).get("metadata") or {}).get("annotations") or {}
    if annotations.get(ALLOW_DISABLING_ANNOTATION) == "true":
        return
    mod = module.client.get("Module", params["name"])
    opts = ((mod or {}).get("properties") or {}).get("disableOptions") or {}
    if opts.get("confirmation"):
        raise DkpError("Disabling module %s must be confirmed: %s. Set `allow_disabling: true` to add the "
                       "%s=true annotation if you are sure." % (params["name"], opts.get("message") or "DKP asks "
                                                                "for confirmation", ALLOW_DISABLING_ANNOTATION))


def wait_module(module, params, config_before, write_time):
    name = params["name"]
    client = module.client
    enabled = params.get("enabled")
    if enabled is None:
        enabled = ((client.get("ModuleConfig", name) or {}).get("spec") or {}).get("enabled")
    if enabled is None:  # left to the bundle: wait for whatever Deckhouse decided
        current = client.get("Module", name)
        enabled = bool(current) and module_summary(current)["enabled"]
    before_error = config_error(config_before)

    def config_tick():
        error = config_error(client.get("ModuleConfig", name))
        if error and (error != before_error or time.monotonic() - write_time > STALE_ERROR_GRACE):
            return "ModuleConfig %s reports: %s" % (name, error)
        return None

    def ready(mod):
        if mod is None:
            return not enabled
        s = module_summary(mod)
        if enabled:
            return s["enabled_by_config"] and s["ready"]
        return not is_true(condition(mod, "EnabledByModuleConfig")) and not is_true(condition(mod, "IsReady"))

    def failure(mod):
        if enabled and mod is not None and (mod.get("status") or {}).get("phase") in MODULE_FAILED_PHASES:
            s = module_summary(mod)
            if s["phase"] == "Conflict":
                return ("Module %s is offered by several sources and none is chosen: set `source` to one of %s"
                        % (name, ", ".join(s["available_sources"]) or "the available sources"))
            return "Module %s cannot become Ready: %s" % (name, describe_module(mod))
        return None

    mod = wait_for(client, "Module", name, ready, params["wait_timeout"], describe=describe_module,
                   failure=failure, tick=config_tick)
    return module_summary(mod) if mod else None


def run(module):
    params = module.params
    validate(params)
    client = module.client
    name = params["name"]
    result = {}
    live = client.get("ModuleConfig", name)
    check_disabling_allowed(module, params, live)

    if params["state"] == "absent":
        if live is not None and params["allow_disabling"]:
            ensure(client, "ModuleConfig", name,
                   lambda obj: deep_merge(obj, {"metadata": {"annotations": {ALLOW_DISABLING_ANNOTATION: "true"}}}),
                   check_mode=module.check_mode)
        res = ensure_absent(client, "ModuleConfig", name, check_mode=module.check_mode)
        result.update(changed=res.changed, method=res.method)
        if module.diff_mode and res.changed:
            result["diff"] = diff_view(res.before, None)
        return result

    write_time = time.monotonic()
    res = ensure(client, "ModuleConfig", name, lambda obj: desired_object(params, obj), check_mode=module.check_mode)
    result.update(changed=res.changed, method=res.method, config=config_summary(res.after))
    if module.diff_mode and res.changed:
        result["diff"] = diff_view(res.before, res.after)
    if params["wait"] and not module.check_mode:
        try:
            result["module"] = wait_module(module, params, res.before, write_time)
        except DkpError as e:
            raise DkpError(e.msg, changed=res.changed, config=result["config"], **e.details)
    return result


def main():
    module = DkpModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            enabled=dict(type="bool"),
            version=dict(type="int"),
            settings=dict(type="dict"),
            settings_mode=dict(type="str", choices=["merge", "replace"], default="merge"),
            source=dict(type="str"),
            update_policy=dict(type="str"),
            maintenance=dict(type="str", choices=["NoResourceReconciliation", "off"]),
            allow_disabling=dict(type="bool", default=False),
            wait=dict(type="bool", default=False),
            wait_timeout=dict(type="int", default=600),
        ),
        supports_check_mode=True,
    )
    module.run(lambda: run(module))


if __name__ == "__main__":
    main()
