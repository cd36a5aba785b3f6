# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

DOCUMENTATION = r"""
name: module_config
short_description: Read the settings (or the whole spec) of DKP ModuleConfigs
version_added: 0.1.0
description:
  - Returns C(spec.settings) of each named ModuleConfig, or its whole C(spec) with O(spec=true).
  - A ModuleConfig that does not exist gives O(default) (an empty dictionary when unset).
  - Secret settings are redacted by the collection's one rule (see M(deckhouse.platform.module_config)); name more
    keys with O(redact_keys).
  - Without terms, returns one list of every ModuleConfig as C({name, spec}) (secrets redacted), sorted by name.
author: deckhouse.platform contributors (@deckhouse)
options:
  _terms:
    description: ModuleConfig (module) names. Omit them to get one list of every ModuleConfig.
    required: false
    type: list
    elements: str
  spec:
    description: Return the whole C(spec) (enabled, version, settings, source, updatePolicy) instead of the settings.
    type: bool
    default: false
  default:
    description: Value for a ModuleConfig that does not exist.
    type: raw
  redact_keys:
    description: More setting names whose values are secret (matched like the built-in ones, at any depth).
    type: list
    elements: str
    default: []
    version_added: 0.2.0
extends_documentation_fragment:
  - deckhouse.platform.connection
  - deckhouse.platform.query
"""

EXAMPLES = r"""
- name: Settings of the deckhouse ModuleConfig
  ansible.builtin.debug:
    msg: "{{ lookup('deckhouse.platform.module_config', 'deckhouse') }}"

- name: Is cert-manager enabled in its ModuleConfig?
  ansible.builtin.debug:
    msg: "{{ lookup('deckhouse.platform.module_config', 'cert-manager', spec=true, default={}).enabled | default(false) }}"

- name: The registry mode, straight from the deckhouse ModuleConfig
  ansible.builtin.debug:
    msg: "{{ lookup('deckhouse.platform.module_config', 'deckhouse', query='registry.mode') }}"

- name: Names of the ModuleConfigs that disable their module
  ansible.builtin.debug:
    msg: "{{ lookup('deckhouse.platform.module_config', query='[?spec.enabled == `false`].name') }}"
"""

RETURN = r"""
_raw:
  description:
    - One dictionary per term (settings, or the spec with O(spec=true)), or what O(query) makes of it.
    - Without terms, one list of C({name, spec}) dictionaries, or what O(query) makes of it.
  type: list
  elements: raw
"""

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_modules import redact_config
from ansible_collections.deckhouse.platform.plugins.plugin_utils.dkp_lookup import DkpLookupBase


class LookupModule(DkpLookupBase):
    def view(self, obj):
        spec = (redact_config(obj, self.get_option("redact_keys")) or {}).get("spec") or {}
        return spec if self.get_option("spec") else spec.get("settings") or {}

    def lookup_term(self, client, term):
        if term is None:
            items, _rv = client.list("ModuleConfig")
            return [{"name": o["metadata"]["name"], "spec": (redact_config(o, self.get_option("redact_keys")) or {})
                     .get("spec") or {}} for o in sorted(items, key=lambda o: o["metadata"]["name"])]
        obj = client.get("ModuleConfig", term)
        return None if obj is None else self.view(obj)
