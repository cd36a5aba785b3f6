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
  - Secret-looking settings (passwords, licenses, tokens, dockerCfg) are redacted.
author: deckhouse.platform contributors (@deckhouse)
options:
  name:
    description: Name of one ModuleConfig. Omit to list all.
    type: str
extends_documentation_fragment:
  - deckhouse.platform.connection
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
"""

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_module import DkpModule
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_modules import config_error, config_summary


def item(obj):
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    obj = config_summary(obj)
    return {
        "name": obj["metadata"]["name"],
        "enabled": spec.get("enabled"),
        "version": spec.get("version"),
        "settings": (obj.get("spec") or {}).get("settings") or {},
        "source": spec.get("source"),
        "update_policy": spec.get("updatePolicy"),
        "maintenance": spec.get("maintenance"),
        "status_version": status.get("version"),
        "message": status.get("message"),
        "error": config_error(obj),
        "object": obj,
    }


def run(module):
    client = module.client
    if module.params.get("name"):
        obj = client.get("ModuleConfig", module.params["name"])
        objs = [obj] if obj else []
    else:
        objs, _rv = client.list("ModuleConfig")
    return {"configs": [item(o) for o in sorted(objs, key=lambda o: o["metadata"]["name"])]}


def main():
    module = DkpModule(argument_spec=dict(name=dict(type="str")), supports_check_mode=True)
    module.run(lambda: run(module))


if __name__ == "__main__":
    main()
