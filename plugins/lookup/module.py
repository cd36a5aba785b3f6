# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

DOCUMENTATION = r"""
name: module
short_description: Read the status summary of DKP Modules
version_added: 0.1.0
description:
  - Returns a summary of each named Module (phase, enabled, ready, source, version, weight, conditions),
    the same fields as M(deckhouse.platform.module_info).
  - A Module that does not exist gives O(default) (an empty dictionary when unset).
  - Without terms, returns the list of all Module summaries (sorted by name); with O(query) that is how to ask
    for, say, the enabled Modules that are not Ready.
author: deckhouse.platform contributors (@deckhouse)
options:
  _terms:
    description: Module names. Omit them to get one list of all Modules.
    required: false
    type: list
    elements: str
  default:
    description: Value for a Module that does not exist.
    type: raw
extends_documentation_fragment:
  - deckhouse.platform.connection
  - deckhouse.platform.query
"""

EXAMPLES = r"""
- name: Fail early when cert-manager is not ready
  ansible.builtin.assert:
    that: lookup('deckhouse.platform.module', 'cert-manager').ready
    fail_msg: cert-manager is not Ready

- name: Names of the enabled Modules that are not Ready (one list, filtered by JMESPath)
  ansible.builtin.debug:
    msg: "{{ lookup('deckhouse.platform.module', query='[?enabled && !ready].name') }}"

- name: Phase of one Module
  ansible.builtin.debug:
    msg: "{{ lookup('deckhouse.platform.module', 'cert-manager', query='phase') }}"
"""

RETURN = r"""
_raw:
  description:
    - One summary dictionary per term (what O(query) makes of it, with O(query)).
    - Without terms, one list of every Module's summary (or what O(query) makes of it).
  type: list
  elements: raw
"""

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_modules import module_summary
from ansible_collections.deckhouse.platform.plugins.plugin_utils.dkp_lookup import DkpLookupBase


class LookupModule(DkpLookupBase):
    def lookup_term(self, client, term):
        if term is None:
            items, _rv = client.list("Module")
            return sorted((module_summary(o) for o in items), key=lambda s: s["name"])
        obj = client.get("Module", term)
        return module_summary(obj) if obj else None
