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
  - Secret-looking settings (passwords, licenses, tokens, dockerCfg) are redacted.
author: deckhouse.platform contributors (@deckhouse)
options:
  _terms:
    description: ModuleConfig (module) names.
    required: true
    type: list
    elements: str
  spec:
    description: Return the whole C(spec) (enabled, version, settings, source, updatePolicy) instead of the settings.
    type: bool
    default: false
  default:
    description: Value for a ModuleConfig that does not exist.
    type: raw
extends_documentation_fragment:
  - deckhouse.platform.connection
"""

EXAMPLES = r"""
- name: Settings of the deckhouse ModuleConfig
  ansible.builtin.debug:
    msg: "{{ lookup('deckhouse.platform.module_config', 'deckhouse') }}"

- name: Is cert-manager enabled in its ModuleConfig?
  ansible.builtin.debug:
    msg: "{{ lookup('deckhouse.platform.module_config', 'cert-manager', spec=true, default={}).enabled | default(false) }}"
"""

RETURN = r"""
_raw:
  description: One dictionary per term (settings, or the spec with O(spec=true)).
  type: list
  elements: dict
"""

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_resource import redact_sensitive
from ansible_collections.deckhouse.platform.plugins.plugin_utils.dkp_lookup import DkpLookupBase


class LookupModule(DkpLookupBase):
    def lookup_term(self, client, term):
        obj = client.get("ModuleConfig", term)
        if obj is None:
            return None
        spec = redact_sensitive(obj.get("spec") or {})
        return spec if self.get_option("spec") else spec.get("settings") or {}
