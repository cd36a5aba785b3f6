#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

DOCUMENTATION = r"""
module: module_info
short_description: Read DKP Modules (phase, enabled, ready, source, version)
version_added: 0.1.0
description:
  - Returns one Module (O(name)) or all Modules, optionally filtered.
  - C(ready) follows DKP's READY column (phase C(Ready) and condition C(IsReady=True)). A disabled module
    can keep phase C(Ready), so C(enabled) comes from condition C(EnabledByModuleManager).
  - With O(wait_for) it first waits (watching, not polling) until the Module named by O(name) is in that state.
author: deckhouse.platform contributors (@deckhouse)
options:
  name:
    description: Name of one Module. Omit to list all.
    type: str
  phase:
    description: Only Modules in one of these phases (for example C(Ready), C(Conflict)).
    type: list
    elements: str
  enabled:
    description: Only enabled (V(true)) or disabled (V(false)) Modules.
    type: bool
  source:
    description: Only Modules taken from this source (C(Embedded) for built-in modules).
    type: str
  version:
    description:
      - Only Modules running this version (C(properties.version); a leading C(v) is ignored on both sides).
    type: str
    version_added: 0.2.0
  overridden:
    description:
      - Only Modules with (V(true)) or without (V(false)) an active ModulePullOverride (condition C(IsOverridden)).
    type: bool
    version_added: 0.2.0
  ready_after:
    description:
      - Only Modules whose condition C(IsReady) turned True at or after this RFC 3339 time (for example the
        C(updated_at) of a ModulePullOverride). With O(wait_for=ready) this is the evidence that Deckhouse ran the
        module again after that change, so a Ready from before it is not accepted.
    type: str
    version_added: 0.2.0
  wait_for:
    description:
      - Wait until the Module O(name) is in this state before returning it. V(ready) is phase C(Ready) with
        C(IsReady=True); V(disabled) is C(EnabledByModuleManager) not True and not ready; V(absent) is no Module
        object; V(overridden) is C(IsOverridden=True) (a ModulePullOverride is active); a phase name
        (V(Reconciling), V(Downloaded), ...) is that C(status.phase).
      - For V(ready), C(Conflict) and C(Unavailable) fail at once, and C(Error)/C(HookError) or C(DownloadingError)
        fail when they persist for O(wait_grace) seconds, naming the last hook error.
      - The filters O(phase), O(enabled), O(source), O(version), O(overridden) and O(ready_after) are part of the state waited
        for (not V(absent)). V(ready) with O(source) waits until the Module is Ready on that source, V(ready) with
        O(overridden=false) until it is Ready without a ModulePullOverride, V(ready) with O(version) until it runs
        that version.
      - A state that already holds returns at once. Needs O(name).
    type: str
    choices: [ready, disabled, absent, overridden, Unavailable, Available, Downloading, DownloadingError, Reconciling,
              Installing, HooksDisabled, WaitSyncTasks, Downloaded, Conflict, Ready, Error]
    version_added: 0.2.0
  wait_timeout:
    description: Seconds O(wait_for) waits before failing with the last observed state. Must be greater than 0.
    type: int
    default: 300
    version_added: 0.2.0
  wait_grace:
    description: Seconds a transient Module error may persist while waiting for V(ready). V(0) fails at the first one.
    type: int
    default: 60
    version_added: 0.2.0
extends_documentation_fragment:
  - deckhouse.platform.connection
  - deckhouse.platform.query
  - deckhouse.platform.attributes
  - deckhouse.platform.attributes.READ_ONLY
"""

EXAMPLES = r"""
- name: Modules that are enabled but not ready
  deckhouse.platform.module_info:
    enabled: true
  register: enabled_modules

- name: Show them
  ansible.builtin.debug:
    msg: "{{ enabled_modules.modules | rejectattr('ready') | map(attribute='name') }}"

- name: The same with a JMESPath query
  deckhouse.platform.module_info:
    query: "[?enabled && !ready].name"
  register: not_ready

- name: Wait until cert-manager is Ready (a hook error that clears within a minute is tolerated)
  deckhouse.platform.module_info:
    name: cert-manager
    wait_for: ready
    wait_timeout: 600

- name: Wait until a ModulePullOverride is active for console
  deckhouse.platform.module_info:
    name: console
    wait_for: overridden

- name: Wait until commander is Ready on the ModuleSource example, without an override
  deckhouse.platform.module_info:
    name: commander
    wait_for: ready
    source: example
    overridden: false
"""

RETURN = r"""
modules:
  description: Module summaries, sorted by name (empty when O(name) does not exist).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Module name.
      type: str
    phase:
      description: C(status.phase).
      type: str
    enabled:
      description: Condition C(EnabledByModuleManager) is True.
      type: bool
    ready:
      description: Phase Ready and condition C(IsReady) True.
      type: bool
    source:
      description: C(properties.source).
      type: str
    version:
      description: C(properties.version).
      type: str
    weight:
      description: C(properties.weight).
      type: int
    available_sources:
      description: C(properties.availableSources).
      type: list
      elements: str
    critical:
      description: C(properties.critical).
      type: bool
    overridden:
      description: Condition C(IsOverridden) is True (a ModulePullOverride is active).
      type: bool
    hook_error:
      description: The last hook or module error Deckhouse reports (C(IsReady) reason C(HookError)/C(ModuleError)), or null.
      type: str
    conditions:
      description: C(status.conditions).
      type: list
      elements: dict
query_result:
  description: What O(query) makes of RV(modules).
  returned: when O(query) is set
  type: raw
  version_added: 0.2.0
waited:
  description: Seconds O(wait_for) waited.
  returned: when O(wait_for) is set
  type: float
  version_added: 0.2.0
"""

import time

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_base import InfoModule
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_modules import (
    info_filters,
    info_wait_rules,
    module_summary,
    summary_matches,
    validate_module_info,
)
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_query import QUERY_ARG_SPEC
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_wait import wait_for


class ModuleInfo(InfoModule):
    kind = "Module"
    list_key = "modules"

    def validate(self):
        validate_module_info(self.params)

    def wait(self, name):
        p = self.params
        start = time.monotonic()
        obj = wait_for(self.client, self.kind, name, timeout=p["wait_timeout"], grace=p["wait_grace"],
                       **info_wait_rules(name, p["wait_for"], info_filters(p)))
        self.result["waited"] = round(time.monotonic() - start, 3)
        return obj

    def summary(self, obj):
        return module_summary(obj)

    def keep(self, summary):
        return summary_matches(summary, info_filters(self.params))


def main():
    ModuleInfo(
        argument_spec=dict(
            name=dict(type="str"),
            phase=dict(type="list", elements="str"),
            enabled=dict(type="bool"),
            source=dict(type="str"),
            version=dict(type="str"),
            overridden=dict(type="bool"),
            ready_after=dict(type="str"),
            wait_for=dict(type="str", choices=["ready", "disabled", "absent", "overridden", "Unavailable", "Available",
                                               "Downloading", "DownloadingError", "Reconciling", "Installing",
                                               "HooksDisabled", "WaitSyncTasks", "Downloaded", "Conflict", "Ready",
                                               "Error"]),
            wait_timeout=dict(type="int", default=300),
            wait_grace=dict(type="int", default=60),
            **QUERY_ARG_SPEC
        ),
        supports_check_mode=True,
    ).main()


if __name__ == "__main__":
    main()
