#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

DOCUMENTATION = r"""
module: registry_state_info
short_description: Read the registry-mode switch state of a DKP cluster (Secret d8-system/registry-state)
version_added: 0.1.0
description:
  - Reads Secret C(d8-system/registry-state), which the C(registry) module keeps while it switches the
    cluster's registry mode, and returns the mode, the target mode, the configuration hash and the parsed
    conditions.
  - The Secret's C(state) key holds private keys and passwords of the in-cluster registry. It is never read
    into the result, never logged and never used, not even in RV(fingerprint).
  - C(complete) follows DKP's rule - condition C(Ready) is C(True) B(and) C(mode) equals C(target_mode); a
    C(Ready) alone can be left over from a previous switch.
  - When the Secret does not exist (the registry module is not in use) the result says so with
    RV(exists=false); that is not an error.
  - With O(changed_since) the module long-polls - it watches the Secret and returns as soon as what it
    shows differs from that fingerprint, or after O(wait_timeout) seconds. The action plugin of
    M(deckhouse.platform.registry_mode) uses this to print every condition change as it happens.
author: deckhouse.platform contributors (@deckhouse)
options:
  changed_since:
    description:
      - A RV(fingerprint) from an earlier call. Return only once the state differs from it, or after
        O(wait_timeout) seconds (then RV(timed_out=true) and the unchanged state).
    type: str
  resource_version:
    description:
      - With O(changed_since) - the RV(resource_version) returned by the previous call. The watch resumes from
        there, so no change between two calls is missed and each one is returned in RV(history).
    type: str
  wait_timeout:
    description: Longest time in seconds to wait for a change when O(changed_since) is set.
    type: int
    default: 30
extends_documentation_fragment:
  - deckhouse.platform.connection
  - deckhouse.platform.attributes
  - deckhouse.platform.attributes.READ_ONLY
seealso:
  - module: deckhouse.platform.registry_mode
  - plugin: deckhouse.platform.registry_state
    plugin_type: lookup
"""

EXAMPLES = r"""
- name: Where is the registry switch?
  deckhouse.platform.registry_state_info:
  register: registry

- name: Show what is still pending
  ansible.builtin.debug:
    msg: "{{ registry.pending | map(attribute='type') }}"
  when: registry.in_progress

- name: Fail when DKP refused the last switch
  ansible.builtin.assert:
    that: registry.transition_error is none
    fail_msg: "{{ registry.transition_error }}"
"""

RETURN = r"""
exists:
  description: Whether Secret d8-system/registry-state exists (false when the registry module is not in use).
  returned: always
  type: bool
mode:
  description: The mode the cluster runs now (C(data.mode)).
  returned: always
  type: str
  sample: Direct
target_mode:
  description: The mode being switched to (C(data.target_mode)).
  returned: always
  type: str
  sample: Proxy
hash:
  description: Hash of the registry parameters the orchestrator works on; it changes with every parameter change.
  returned: always
  type: str
conditions:
  description: Parsed C(data.conditions).
  returned: always
  type: list
  elements: dict
  contains:
    type:
      description: Condition type, for example C(NodeServicesReady).
      type: str
    status:
      description: C(True), C(False) or C(Unknown).
      type: str
    reason:
      description: C(Ready), C(Processing), C(Error) or empty.
      type: str
    message:
      description: What the orchestrator says (may span several lines).
      type: str
    last_transition_time:
      description: C(lastTransitionTime).
      type: str
complete:
  description: Condition C(Ready) is True and C(mode) equals C(target_mode).
  returned: always
  type: bool
in_progress:
  description: A switch toward C(target_mode) is under way (not complete, not refused).
  returned: always
  type: bool
pending:
  description: Conditions that are not True, with their messages.
  returned: always
  type: list
  elements: dict
failed_conditions:
  description:
    - Conditions with reason C(Error), and C(ErrTransitionNotSupported) when True (not called C(failed), which would
      fail the task).
  returned: always
  type: list
  elements: dict
transition_error:
  description: The message of condition C(ErrTransitionNotSupported) when DKP refused the target, else null.
  returned: always
  type: str
  sample: mode transition from Proxy to Local not supported
message:
  description: One line describing the state.
  returned: always
  type: str
fingerprint:
  description: A digest of mode, target, hash and conditions, for O(changed_since).
  returned: always
  type: str
timed_out:
  description: With O(changed_since), true when nothing changed within O(wait_timeout).
  returned: when changed_since is set
  type: bool
history:
  description:
    - With O(changed_since) - every state the Secret went through since then, oldest first (the same keys as the
      top level, which shows the last one). Empty when nothing changed.
  returned: when changed_since is set
  type: list
  elements: dict
resource_version:
  description: With O(changed_since) - where the next call's watch resumes (pass it as O(resource_version)).
  returned: when changed_since is set
  type: str
"""

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_module import DkpModule
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_registry import read_state, wait_for_change


def run(module):
    params = module.params
    if params.get("changed_since"):
        summary, timed_out = wait_for_change(module.client, params["changed_since"], params["wait_timeout"],
                                             params.get("resource_version"))
        return dict(summary, timed_out=timed_out)
    return read_state(module.client)


def main():
    module = DkpModule(
        argument_spec=dict(
            changed_since=dict(type="str"),
            resource_version=dict(type="str"),
            wait_timeout=dict(type="int", default=30),
        ),
        supports_check_mode=True,
    )
    module.run(lambda: run(module))


if __name__ == "__main__":
    main()
