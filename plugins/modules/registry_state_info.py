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
  - With O(changed_since) the module long-polls - it watches the Secret (the collection's one wait engine,
    which rides through dropped watches and API server restarts) and returns as soon as what it shows differs
    from that fingerprint, or after O(wait_timeout) seconds.
  - To wait for a switch, use M(deckhouse.platform.registry_mode) with O(deckhouse.platform.registry_mode#module:wait=true)
    (it knows which states belong to its write); the lookup P(deckhouse.platform.registry_state#lookup) reads the same
    summary on the controller without a module execution.
author: deckhouse.platform contributors (@deckhouse)
options:
  changed_since:
    description:
      - A RV(fingerprint) from an earlier call. Return only once the state differs from it, or after
        O(wait_timeout) seconds (then RV(timed_out=true) and the unchanged state).
    type: str
  resource_version:
    description:
      - A Kubernetes resourceVersion (digits) from an earlier call; anything else is refused.
      - Since 0.2.0 the long poll lists the Secret before it watches, so the value only has to be valid; it is
        kept for compatibility.
    type: str
  wait_timeout:
    description: Longest time in seconds to wait for a change when O(changed_since) is set; greater than 0.
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
    msg: "{{ registry.pending | map(attribute='type') | list }}"
  when: registry.in_progress

- name: Fail when DKP refused the last switch
  ansible.builtin.assert:
    that: registry.transition_error is none
    fail_msg: "DKP refused the switch: {{ registry.transition_error | default('', true) }}"
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
  description:
    - Hash of every input of the orchestrator. It also changes on node, pod and deployment events, so it does not
      tell whether DKP saw a given change (see RV(observed_generation)).
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
    observed_generation:
      description: C(observedGeneration) (the registry-config generation this condition is about), or null.
      type: int
observed_generation:
  description:
    - The highest C(observedGeneration) of the conditions - the generation of Secret C(d8-system/registry-config)
      (rendered from ModuleConfig C(deckhouse)) the orchestrator last worked on; null when DKP reports none.
  returned: always
  type: int
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
containerd_blocked:
  description:
    - When condition C(ContainerdConfigPreflightReady) is C(False) because nodes carry custom containerd registry
      configuration (containerd v1, C(/etc/containerd/conf.d/*.toml)) - what it says, on one line; else null.
    - DKP waits at that step until an operator moves that configuration to
      C(/etc/containerd/registry.d/<registry host>/hosts.toml) (a NodeGroupConfiguration) and deletes the old files,
      so any registry change stops there - M(deckhouse.platform.registry_mode)'s wait fails at once on it.
    - It is read from the current state; it may be left over from before a later registry change.
  returned: always
  type: str
  version_added: 0.2.0
  sample: "node master-0: custom containerd configuration found in /etc/containerd/conf.d/registry.toml"
message:
  description: One line describing the state.
  returned: always
  type: str
fingerprint:
  description: A digest of mode, target and conditions (not C(hash)), for O(changed_since).
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
"""

import re

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import DkpError
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_base import DkpModule
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_registry import (
    read_state,
    wait_for_change,
)

RESOURCE_VERSION_RE = re.compile(r"^[0-9]{1,20}$")


def run(module):
    params = module.params
    rv = params.get("resource_version")
    if rv not in (None, "") and not RESOURCE_VERSION_RE.match(rv):
        raise DkpError("resource_version %r is not a Kubernetes resourceVersion (digits, as returned by an earlier "
                       "call)" % rv)
    if params.get("changed_since"):
        summary, timed_out = wait_for_change(module.client, params["changed_since"], params["wait_timeout"])
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
