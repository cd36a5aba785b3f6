#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

DOCUMENTATION = r"""
module: module_release_info
short_description: Read DKP ModuleReleases, what is deployed and why Pending releases wait
version_added: 0.1.0
description:
  - Returns the ModuleReleases of all modules, or of one O(module), optionally filtered by O(phase), sorted
    by module and semantic version (C(1.10.0) after C(1.9.0); a pre-release before its release).
  - Also returns, per module, the Deployed release and the Pending releases (lowest first, the next one DKP
    deploys comes first), whatever O(phase) selects.
  - For every Pending release, RV(releases[].blocked_by) turns its message into machine-readable reasons
    (approval needed, update window, requirements, awaiting another release, ...).
author: deckhouse.platform contributors (@deckhouse)
options:
  module:
    description: Only the releases of this module.
    type: str
  phase:
    description: Only releases in one of these phases.
    type: list
    elements: str
    choices: [Pending, Deployed, Superseded, Suspended, Skipped, Terminating]
extends_documentation_fragment:
  - deckhouse.platform.connection
  - deckhouse.platform.attributes
  - deckhouse.platform.attributes.READ_ONLY
"""

EXAMPLES = r"""
- name: Releases of console
  deckhouse.platform.module_release_info:
    module: console
  register: console_releases

- name: Show what is deployed and what waits for approval
  ansible.builtin.debug:
    msg: >-
      deployed {{ console_releases.modules.console.deployed.version | default('none') }},
      waiting for approval:
      {{ console_releases.modules.console.pending | selectattr('blocked_by', 'contains', 'approval')
         | map(attribute='version') | list }}

- name: Every Pending release in the cluster
  deckhouse.platform.module_release_info:
    phase: [Pending]
  register: pending
"""

RETURN = r"""
releases:
  description: Release summaries sorted by module and semantic version.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Object name, C(<module>-v<version>).
      type: str
    module:
      description: C(spec.moduleName).
      type: str
    version:
      description: C(spec.version), without a leading C(v).
      type: str
    phase:
      description: C(status.phase); an empty phase is reported as C(Pending), as DKP treats it.
      type: str
    message:
      description: C(status.message).
      type: str
    transition_time:
      description: C(status.transitionTime).
      type: str
    approved:
      description: The C(modules.deckhouse.io/approved) annotation parses as true.
      type: bool
    apply_now:
      description: The C(modules.deckhouse.io/apply-now) annotation is C("true").
      type: bool
    reinstall:
      description: The C(modules.deckhouse.io/reinstall) annotation is C("true").
      type: bool
    annotations:
      description: The release annotations DKP acts on that are set.
      type: dict
    update_policy:
      description: The C(modules.deckhouse.io/update-policy) label (the policy DKP resolved for the release).
      type: str
    source:
      description: The C(source) label (ModuleSource name).
      type: str
    apply_after:
      description: C(spec.applyAfter), when DKP postponed the release.
      type: str
    blocked_by:
      description:
        - Pending releases only (empty otherwise); why the release waits, in the order its message names them.
        - C(approval) (needs C(modules.deckhouse.io/approved="true")), C(update_window), C(requirements),
          C(awaiting_release) (a lower release must be deployed first), C(version_gap) (a minor or major jump
          DKP does not allow), C(module_not_ready), C(cooldown), C(postponed), C(notification),
          C(disruption_approval), C(update_policy) (no usable ModuleUpdatePolicy), C(config_validation),
          or C(unknown) for a message not recognised. An empty list means no reason is given yet.
      type: list
      elements: str
modules:
  description: Per module name, C(deployed) (the Deployed release's summary or null) and C(pending) (summaries of
    its Pending releases, lowest version first).
  returned: always
  type: dict
"""

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import DkpError
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_module import DkpModule
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_modules import check_name
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_releases import (
    RELEASE_PHASES,
    list_module_releases,
    module_release_state,
    release_summary,
    sort_releases,
)


def run(module):
    params = module.params
    if params.get("module") and check_name(params["module"]):
        raise DkpError(check_name(params["module"]))
    releases = list_module_releases(module.client, params.get("module"))
    phases = params.get("phase") or RELEASE_PHASES
    summaries = [release_summary(r) for r in sort_releases(releases)]
    return {"releases": [s for s in summaries if s["phase"] in phases],
            "modules": module_release_state(releases)}


def main():
    module = DkpModule(
        argument_spec=dict(
            module=dict(type="str"),
            phase=dict(type="list", elements="str", choices=list(RELEASE_PHASES)),
        ),
        supports_check_mode=True,
    )
    module.run(lambda: run(module))


if __name__ == "__main__":
    main()
