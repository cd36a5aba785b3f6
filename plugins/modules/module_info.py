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
extends_documentation_fragment:
  - deckhouse.platform.connection
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
    conditions:
      description: C(status.conditions).
      type: list
      elements: dict
"""

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_module import DkpModule
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_modules import module_summary


def matches(summary, params):
    if params.get("phase") and summary["phase"] not in params["phase"]:
        return False
    if params.get("enabled") is not None and summary["enabled"] != params["enabled"]:
        return False
    if params.get("source") and summary["source"] != params["source"]:
        return False
    return True


def run(module):
    client = module.client
    if module.params.get("name"):
        obj = client.get("Module", module.params["name"])
        objs = [obj] if obj else []
    else:
        objs, _rv = client.list("Module")
    summaries = [module_summary(o) for o in objs]
    return {"modules": sorted((s for s in summaries if matches(s, module.params)), key=lambda s: s["name"])}


def main():
    module = DkpModule(
        argument_spec=dict(
            name=dict(type="str"),
            phase=dict(type="list", elements="str"),
            enabled=dict(type="bool"),
            source=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    module.run(lambda: run(module))


if __name__ == "__main__":
    main()
