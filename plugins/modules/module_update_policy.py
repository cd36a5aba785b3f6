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
  - Deleting a policy that a ModuleConfig names in C(spec.updatePolicy) fails before anything is written and names
    those ModuleConfigs (DKP's webhook refuses the deletion as well).
  - The module uses C(deckhouse.io/v1alpha2), the version DKP 1.75 and 1.76 both serve (1.76 no longer serves
    C(v1alpha1)).
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
    description:
      - Release channel of the modules using the policy (C(spec.releaseChannel)); DKP's default is C(Stable).
      - V(Lts) exists from DKP 1.76; on DKP 1.75 the task fails before writing and says so.
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
      - A list of windows, each a dictionary with C(from) (start, C(H:MM) or C(HH:MM), UTC, required), C(to) (end,
        later than C(from), required) and C(days) (a list of C(Mon), C(Tue), C(Wed), C(Thu), C(Fri), C(Sat),
        C(Sun); every day when omitted). JSON text of such a list is accepted too (a survey answer).
      - Checked before anything is written; anything else (a plain string, an element that is not a window)
        fails with a message that names O(windows).
      - Windows apply to patch releases unless the mode is C(Manual), and to minor releases in C(Auto) mode.
    type: raw
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

- name: Remove a policy (DKP refuses while a ModuleConfig uses it)
  deckhouse.platform.module_update_policy:
    name: manual-stable
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

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_base import ResourceModule
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import DkpError
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_update_policies import (
    CHANNELS,
    MODES,
    configs_using_policy,
    desired_object,
    in_use_refusal,
    lts_refusal,
    validate,
)


class ModuleUpdatePolicyModule(ResourceModule):
    kind = "ModuleUpdatePolicy"
    result_key = "policy"

    def validate(self):
        validate(self.params)

    def prepare(self):
        refusal = lts_refusal(self.client, self.params) if self.params["state"] != "absent" else None
        if refusal:
            raise DkpError(refusal)

    def desired(self, live):
        return desired_object(self.params, live)

    def before_delete(self, live):
        configs = configs_using_policy(self.client, self.params["name"]) if live is not None else []
        if configs:
            raise DkpError(in_use_refusal(self.params["name"], configs), module_configs=configs)


def main():
    ModuleUpdatePolicyModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            release_channel=dict(type="str", choices=CHANNELS),
            mode=dict(type="str", choices=MODES),
            # raw: checked element by element in dkp_update_policies (messages that name the option)
            windows=dict(type="raw"),
        ),
        supports_check_mode=True,
    ).main()


if __name__ == "__main__":
    main()
