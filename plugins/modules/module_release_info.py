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
  - With O(wait_for), waits first until one release (O(name), or O(module) and O(version)) is Pending or
    Deployed, with the same watch-based engine and rules as M(deckhouse.platform.module_release).
author: deckhouse.platform contributors (@deckhouse)
options:
  name:
    description:
      - One ModuleRelease by name, C(<module>-v<version>); RV(release) is its summary. The module's other releases
        are still returned in RV(releases).
      - Mutually exclusive with O(module).
    type: str
    version_added: 0.2.0
  module:
    description: Only the releases of this module.
    type: str
  version:
    description:
      - With O(module), the release of that version (with or without a leading C(v)); RV(release) is its summary.
    type: str
    version_added: 0.2.0
  phase:
    description:
      - Only releases in one of these phases in RV(releases). RV(modules) and RV(release) are not filtered.
    type: list
    elements: str
    choices: [Pending, Deployed, Superseded, Suspended, Skipped, Terminating]
  wait_for:
    description:
      - Wait until the release named by O(name), or by O(module) and O(version), is V(pending) (it exists and is
        Pending, for example after the next registry scan) or V(deployed).
      - Fails at once when the release can no longer reach that phase (V(deployed) - it became Superseded,
        Skipped, Suspended or was deleted; V(pending) - it is already Deployed or in a final phase), and on timeout
        with the release's phase and message and the Module's phase.
      - The current state counts (a reader makes no change that could make it stale).
    type: str
    choices: [pending, deployed]
    version_added: 0.2.0
  wait_timeout:
    description: Seconds O(wait_for) waits before failing with the last observed state.
    type: int
    default: 300
    version_added: 0.2.0
extends_documentation_fragment:
  - deckhouse.platform.query
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

- name: Wait until the registry scan has created console 1.41.0
  deckhouse.platform.module_release_info:
    module: console
    version: 1.41.0
    wait_for: pending
    wait_timeout: 600

- name: Names of the releases that wait for an approval
  deckhouse.platform.module_release_info:
    query: "[?contains(blocked_by, 'approval')].name"
  register: approvals
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
release:
  description: The summary of the release O(name) or O(module) and O(version) select (after O(wait_for)).
  returned: when name, or module and version, are set
  type: dict
query_result:
  description: The value of O(query) applied to RV(releases).
  returned: when query is set
  type: raw
modules:
  description: Per module name, C(deployed) (the Deployed release's summary or null) and C(pending) (summaries of
    its Pending releases, lowest version first).
  returned: always
  type: dict
"""

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_base import InfoModule
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_query import QUERY_ARG_SPEC
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_releases import (
    RELEASE_PHASES,
    list_module_releases,
    module_release_state,
    release_module,
    release_summary,
    selected_release,
    sort_releases,
    validate_release_query,
)
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_wait import wait_for


class ModuleReleaseInfo(InfoModule):
    """The releases of one module (or of all), filtered by phase; `modules` and `release` beside them."""

    kind = "ModuleRelease"
    list_key = "releases"

    def validate(self):
        validate_release_query(self.params)

    def read(self):
        self.selected = selected_release(self.client, self.params, wait_for)
        module_name = self.params.get("module") or (release_module(self.selected) if self.selected else None)
        return list_module_releases(self.client, module_name)

    def order(self, objs):
        return sort_releases(objs)

    def summary(self, obj):
        return release_summary(obj)

    def keep(self, summary):
        return summary["phase"] in (self.params.get("phase") or RELEASE_PHASES)

    def extra(self, objs):
        out = {"modules": module_release_state(objs)}  # from every release, whatever the phase filter
        if self.selected is not None:
            out["release"] = release_summary(self.selected)
        return out


def main():
    ModuleReleaseInfo(
        argument_spec=dict(
            name=dict(type="str"),
            module=dict(type="str"),
            version=dict(type="str"),
            phase=dict(type="list", elements="str", choices=list(RELEASE_PHASES)),
            wait_for=dict(type="str", choices=["pending", "deployed"]),
            wait_timeout=dict(type="int", default=300),
            **QUERY_ARG_SPEC
        ),
        supports_check_mode=True,
    ).main()


if __name__ == "__main__":
    main()
