#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

DOCUMENTATION = r"""
module: module_update_policy
short_description: Manage a DKP ModuleUpdatePolicy (release channel, update mode, update windows)
version_added: 0.1.0
description:
  - Creates, updates or deletes a C(deckhouse.io/v1alpha2) ModuleUpdatePolicy. Modules use it through
    C(spec.updatePolicy) of their ModuleConfig (see M(deckhouse.platform.module_config)).
  - Only the fields the task names are written (a JSON merge patch guarded by the object's resourceVersion).
  - Update windows are checked before anything is written, with DKP's own wording; a window must start
    before it ends on the same day (UTC).
author: deckhouse.platform contributors (@deckhouse)
options:
  name:
    description: ModuleUpdatePolicy name.
    type: str
    required: true
  state:
    description: C(present) creates or updates the policy; C(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  release_channel:
    description: Release channel of the modules using the policy (C(spec.releaseChannel)); DKP's default is C(Stable).
    type: str
    choices: [Alpha, Beta, EarlyAccess, Stable, RockSolid, Lts]
  mode:
    description:
      - Update mode (C(spec.update.mode)); DKP's default for v1alpha2 is C(Auto).
      - C(Auto) deploys every release (within the windows); C(AutoPatch) deploys patch releases and needs
        approval for minor ones; C(Manual) needs approval for every release (see M(deckhouse.platform.module_release)).
    type: str
    choices: [Auto, Manual, AutoPatch]
  windows:
    description:
      - Update windows (C(spec.update.windows)), replacing the live list; V([]) removes all windows.
      - Windows apply to patch releases unless the mode is C(Manual), and to minor releases in C(Auto) mode.
    type: list
    elements: dict
    suboptions:
      from:
        description: Start, C(H:MM) or C(HH:MM), UTC.
        type: str
        required: true
      to:
        description: End, C(H:MM) or C(HH:MM), UTC; later than O(windows[].from).
        type: str
        required: true
      days:
        description: Days the window applies to; every day when omitted.
        type: list
        elements: str
        choices: [Mon, Tue, Wed, Thu, Fri, Sat, Sun]
extends_documentation_fragment:
  - deckhouse.platform.connection
  - deckhouse.platform.attributes
  - deckhouse.platform.attributes.CHECK_MODE_WRITE
"""

EXAMPLES = r"""
- name: Manual approval of every release from the Stable channel
  deckhouse.platform.module_update_policy:
    name: manual-stable
    release_channel: Stable
    mode: Manual

- name: Automatic updates at night, on working days only
  deckhouse.platform.module_update_policy:
    name: night-updates
    release_channel: EarlyAccess
    mode: Auto
    windows:
      - days: [Mon, Tue, Wed, Thu, Fri]
        from: "1:00"
        to: "4:30"

- name: Use the policy for console
  deckhouse.platform.module_config:
    name: console
    update_policy: night-updates

- name: Remove a policy
  deckhouse.platform.module_update_policy:
    name: night-updates
    state: absent
"""

RETURN = r"""
policy:
  description: The ModuleUpdatePolicy after the task (the dry-run result in check mode).
  returned: when state is present
  type: dict
diff:
  description: Spec, labels and annotations before and after (diff mode).
  returned: in diff mode, when changed
  type: dict
method:
  description: What was sent, one of C(create), C(patch), C(delete) or C(none).
  returned: always
  type: str
"""

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import KINDS, DkpError
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_module import DkpModule
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_modules import check_name
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_releases import window_errors, windows_spec
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_resource import (
    deep_merge,
    diff_view,
    ensure,
    ensure_absent,
    strip_server_fields,
)

CHANNELS = ["Alpha", "Beta", "EarlyAccess", "Stable", "RockSolid", "Lts"]
MODES = ["Auto", "Manual", "AutoPatch"]


def validate(params):
    errors = []
    if check_name(params["name"], "ModuleUpdatePolicy name"):
        errors.append(check_name(params["name"], "ModuleUpdatePolicy name"))
    if params["state"] == "absent":
        conflicting = [k for k in ("release_channel", "mode", "windows") if params.get(k) is not None]
        if conflicting:
            errors.append("state=absent deletes the policy; remove %s from the task" % ", ".join(conflicting))
    errors += window_errors(params.get("windows"))
    if errors:
        raise DkpError("; ".join(errors))


def desired_object(params, live):
    kind = KINDS["ModuleUpdatePolicy"]
    obj = live or {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": {"name": params["name"]},
                   "spec": {"update": {}}}
    overlay = {"update": {}}
    if params.get("release_channel") is not None:
        overlay["releaseChannel"] = params["release_channel"]
    if params.get("mode") is not None:
        overlay["update"]["mode"] = params["mode"]
    spec = deep_merge(obj.get("spec") or {}, overlay)
    if params.get("windows") is not None:
        if params["windows"]:
            spec["update"]["windows"] = windows_spec(params["windows"])
        else:
            spec["update"].pop("windows", None)
    return dict(obj, spec=spec)


def run(module):
    params = module.params
    validate(params)
    client = module.client
    if params["state"] == "absent":
        res = ensure_absent(client, "ModuleUpdatePolicy", params["name"], check_mode=module.check_mode)
        result = {"changed": res.changed, "method": res.method}
        if module.diff_mode and res.changed:
            result["diff"] = diff_view(res.before, None)
        return result
    res = ensure(client, "ModuleUpdatePolicy", params["name"], lambda live: desired_object(params, live),
                 check_mode=module.check_mode)
    result = {"changed": res.changed, "method": res.method, "policy": strip_server_fields(res.after)}
    if module.diff_mode and res.changed:
        result["diff"] = diff_view(res.before, res.after)
    return result


def main():
    module = DkpModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            release_channel=dict(type="str", choices=CHANNELS),
            mode=dict(type="str", choices=MODES),
            windows=dict(type="list", elements="dict", options=dict(
                **{"from": dict(type="str", required=True)},
                to=dict(type="str", required=True),
                days=dict(type="list", elements="str", choices=["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]),
            )),
        ),
        supports_check_mode=True,
    )
    module.run(lambda: run(module))


if __name__ == "__main__":
    main()
