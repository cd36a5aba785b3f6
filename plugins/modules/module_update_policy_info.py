#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

DOCUMENTATION = r"""
module: module_update_policy_info
short_description: Read DKP ModuleUpdatePolicies and the ModuleConfigs that use them
version_added: 0.2.0
description:
  - Returns one C(deckhouse.io/v1alpha2) ModuleUpdatePolicy (O(name)) or all of them, as summaries with the
    release channel, update mode and windows, and the ModuleConfigs whose C(spec.updatePolicy) names each policy
    (a policy in use cannot be deleted).
  - A policy has no status in DKP, so O(wait_for) can only wait for it to exist or to be gone; use
    M(deckhouse.platform.module_release_info) to wait for what a policy lets through.
author: deckhouse.platform contributors (@deckhouse)
options:
  name:
    description: Name of one policy; RV(policy) is its summary (null when it does not exist). Omit to list all.
    type: str
extends_documentation_fragment:
  - deckhouse.platform.connection
  - deckhouse.platform.query
  - deckhouse.platform.wait.PRESENCE
  - deckhouse.platform.attributes
  - deckhouse.platform.attributes.READ_ONLY
"""

EXAMPLES = r"""
- name: All update policies
  deckhouse.platform.module_update_policy_info:
  register: policies

- name: Policies no ModuleConfig uses (safe to delete)
  deckhouse.platform.module_update_policy_info:
    query: "[?length(used_by) == `0`].name"
  register: unused

- name: One policy
  deckhouse.platform.module_update_policy_info:
    name: manual
  register: manual
"""

RETURN = r"""
policies:
  description: Policy summaries sorted by name (only O(name) when it is set; empty when it does not exist).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Policy name.
      type: str
    release_channel:
      description: C(spec.releaseChannel).
      type: str
    mode:
      description: C(spec.update.mode).
      type: str
    windows:
      description: C(spec.update.windows), each with C(from), C(to) and C(days) when set.
      type: list
      elements: dict
    used_by:
      description: Names of the ModuleConfigs whose C(spec.updatePolicy) is this policy.
      type: list
      elements: str
    object:
      description: The ModuleUpdatePolicy without managedFields.
      type: dict
policy:
  description: The summary of O(name), null when it does not exist.
  returned: when name is set
  type: dict
query_result:
  description: The value of O(query) applied to RV(policies).
  returned: when query is set
  type: raw
"""

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_base import InfoModule
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_modules import check_name
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_query import QUERY_ARG_SPEC
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_update_policies import policy_summary, users_by_policy


class ModuleUpdatePolicyInfo(InfoModule):
    kind = "ModuleUpdatePolicy"
    list_key = "policies"
    item_key = "policy"

    def name_error(self, name):
        return check_name(name, "ModuleUpdatePolicy name")

    def read(self):
        items = super().read()
        self.used = users_by_policy(self.client) if items else {}  # one list of ModuleConfigs for all policies
        return items

    def summary(self, obj):
        return dict(policy_summary(obj), used_by=self.used.get(obj["metadata"]["name"], []))

    def wait(self, name):
        return self.wait_presence(name)


def main():
    ModuleUpdatePolicyInfo(
        argument_spec=dict(
            name=dict(type="str"),
            wait_for=dict(type="str", choices=["present", "absent"]),
            wait_timeout=dict(type="int", default=300),
            **QUERY_ARG_SPEC
        ),
        supports_check_mode=True,
    ).main()


if __name__ == "__main__":
    main()
