# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

DOCUMENTATION = r"""
name: module_release
short_description: Read the ModuleReleases of DKP modules
version_added: 0.1.0
description:
  - Returns, for each named module, its ModuleRelease summaries sorted by semantic version (the same fields as
    M(deckhouse.platform.module_release_info)), or with O(deployed=true) only the Deployed release's summary.
  - A module without releases (or without a Deployed one) gives O(default); when O(default) is unset, an empty
    list (an empty dictionary with O(deployed=true)).
  - A cluster that does not serve ModuleRelease fails the lookup with a clear message.
author: deckhouse.platform contributors (@deckhouse)
options:
  _terms:
    description: Module names.
    required: true
    type: list
    elements: str
  deployed:
    description: Return only the Deployed release of each module.
    type: bool
    default: false
  default:
    description: Value for a module without (Deployed) releases.
    type: raw
extends_documentation_fragment:
  - deckhouse.platform.connection
  - deckhouse.platform.query
"""

EXAMPLES = r"""
- name: Version of console that runs
  ansible.builtin.debug:
    msg: "{{ lookup('deckhouse.platform.module_release', 'console', deployed=true).version | default('none') }}"

- name: Versions of console that wait for an approval (JMESPath)
  ansible.builtin.debug:
    msg: "{{ lookup('deckhouse.platform.module_release', 'console', query=\"[?contains(blocked_by, 'approval')].version\") }}"

- name: Fail when a console release waits for approval
  ansible.builtin.assert:
    that: >-
      lookup('deckhouse.platform.module_release', 'console')
      | selectattr('blocked_by', 'contains', 'approval') | list | length == 0
"""

RETURN = r"""
_raw:
  description: Per term, the list of release summaries, or with O(deployed=true) one summary.
  type: list
  elements: raw
"""

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import DkpError
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_modules import check_name
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_releases import (
    deployed_release,
    list_module_releases,
    release_summary,
    sort_releases,
)
from ansible_collections.deckhouse.platform.plugins.plugin_utils.dkp_lookup import DkpLookupBase


class LookupModule(DkpLookupBase):
    def lookup_term(self, client, term):
        if term is None:
            raise DkpError("name at least one module, for example lookup('deckhouse.platform.module_release', 'console')")
        if check_name(term):
            raise DkpError(check_name(term))
        releases = list_module_releases(client, term)
        if self.get_option("deployed"):
            deployed = deployed_release(releases)
            return release_summary(deployed) if deployed else None
        if releases:
            return [release_summary(r) for r in sort_releases(releases)]
        # The base class turns None into `default` or {}; a release list is empty rather than {}.
        return None if self.get_option("default") is not None else []
