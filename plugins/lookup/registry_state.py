# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

DOCUMENTATION = r"""
name: registry_state
short_description: Read the registry-mode switch state of a DKP cluster
version_added: 0.1.0
description:
  - Returns the summary of Secret C(d8-system/registry-state) - mode, target_mode, hash, parsed conditions,
    complete, in_progress, pending, failed_conditions, transition_error and containerd_blocked - the same data as
    M(deckhouse.platform.registry_state_info).
  - C(containerd_blocked) (since 0.2.0) is what condition C(ContainerdConfigPreflightReady=False) says when nodes
    carry custom containerd registry configuration (any registry change waits at that step until it is moved), else
    null.
  - The Secret's C(state) key (private keys and passwords of the in-cluster registry) is never read into
    the result.
  - When the Secret does not exist the result has C(exists=false); that is not an error.
  - Terms are ignored; call it without terms.
author: deckhouse.platform contributors (@deckhouse)
options:
  _terms:
    description: Not used.
    required: false
    type: list
    elements: str
extends_documentation_fragment:
  - deckhouse.platform.connection
"""

EXAMPLES = r"""
- name: Refuse to start while a switch is under way
  ansible.builtin.assert:
    that: not lookup('deckhouse.platform.registry_state').in_progress
    fail_msg: "{{ lookup('deckhouse.platform.registry_state').message }}"

- name: Refuse a registry change while custom containerd configuration blocks DKP's containerd preflight
  ansible.builtin.assert:
    that: lookup('deckhouse.platform.registry_state').containerd_blocked is none
    fail_msg: "Move the custom containerd configuration first: {{ lookup('deckhouse.platform.registry_state').containerd_blocked }}"

- name: Current registry mode
  ansible.builtin.debug:
    msg: "{{ lookup('deckhouse.platform.registry_state', kubeconfig=dkp_kubeconfig).mode }}"
"""

RETURN = r"""
_raw:
  description: One summary dictionary (see M(deckhouse.platform.registry_state_info) for its keys).
  type: list
  elements: dict
"""

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_registry import read_state
from ansible_collections.deckhouse.platform.plugins.plugin_utils.dkp_lookup import DkpLookupBase


class LookupModule(DkpLookupBase):
    def run(self, terms, variables=None, **kwargs):
        # one cluster, one state: however many terms were given
        return super().run([None], variables=variables, **kwargs)

    def lookup_term(self, client, term):
        return read_state(client)
