#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

DOCUMENTATION = r"""
module: module_config_info
short_description: Read DKP ModuleConfigs with their status
version_added: 0.1.0
description:
  - Returns one ModuleConfig (O(name)) or all of them, with C(status.version) and C(status.message).
  - Secrets in settings are redacted by the rule of M(deckhouse.platform.module_config) (O(redact_keys) adds keys).
author: deckhouse.platform contributors (@deckhouse)
options:
  name:
    description: Name of one ModuleConfig. Omit to list all.
    type: str
  redact_keys:
    description: More setting names whose values are secret (matched like the built-in ones, at any depth).
    type: list
    elements: str
    default: []
    version_added: 0.2.0
extends_documentation_fragment:
  - deckhouse.platform.connection
  - deckhouse.platform.query
  - deckhouse.platform.wait.PRESENCE
  - deckhouse.platform.attributes
  - deckhouse.platform.attributes.READ_ONLY
"""

EXAMPLES = r"""
- name: Read the deckhouse ModuleConfig
  deckhouse.platform.module_config_info:
    name: deckhouse
  register: mc

- name: Read every ModuleConfig
  deckhouse.platform.module_config_info:
  register: all_mc

- name: ModuleConfigs that report an error
  ansible.builtin.debug:
    msg: "{{ all_mc.configs | selectattr('error') | map(attribute='name') }}"

- name: The same with a JMESPath query
  deckhouse.platform.module_config_info:
    query: "[?error].name"
  register: broken
"""

RETURN = r"""
configs:
  description: The ModuleConfigs found (empty when O(name) does not exist).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: ModuleConfig (module) name.
      type: str
    enabled:
      description: C(spec.enabled); null when left to the bundle.
      type: bool
    version:
      description: C(spec.version).
      type: int
    settings:
      description: C(spec.settings), secrets redacted.
      type: dict
    source:
      description: C(spec.source).
      type: str
    update_policy:
      description: C(spec.updatePolicy).
      type: str
    maintenance:
      description: C(spec.maintenance).
      type: str
    status_version:
      description: C(status.version), the schema version in use.
      type: str
    message:
      description: C(status.message).
      type: str
    error:
      description: The status message when it reports an error or an unknown module, else null.
      type: str
    object:
      description: The whole object (without managedFields), secrets redacted.
      type: dict
query_result:
  description: What O(query) makes of RV(configs).
  returned: when O(query) is set
  type: raw
  version_added: 0.2.0
"""

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_base import InfoModule
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_modules import check_name, config_info_item
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_query import QUERY_ARG_SPEC


class ModuleConfigInfo(InfoModule):
    kind = "ModuleConfig"
    list_key = "configs"

    def name_error(self, name):
        return check_name(name)

    def summary(self, obj):
        return config_info_item(obj, self.params.get("redact_keys"))

    def wait(self, name):
        return self.wait_presence(name)


def main():
    ModuleConfigInfo(argument_spec=dict(name=dict(type="str"),
                                        redact_keys=dict(type="list", elements="str", default=[], no_log=False),
                                        wait_for=dict(type="str", choices=["present", "absent"]),
                                        wait_timeout=dict(type="int", default=300),
                                        **QUERY_ARG_SPEC),
                     supports_check_mode=True).main()


if __name__ == "__main__":
    main()
