#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

DOCUMENTATION = r"""
module: module_pull_override_info
short_description: Read DKP ModulePullOverrides (the image tag and digest a module runs instead of its releases)
version_added: 0.2.0
description:
  - Returns the C(deckhouse.io/v1alpha2) ModulePullOverride of one module (O(name)) or all of them, as summaries.
  - With O(wait_for) it first waits (watching, not polling) until the override O(name) runs an image
    (V(ready)) or is gone (V(absent)).
author: deckhouse.platform contributors (@deckhouse)
options:
  name:
    description: Module name (the override is named after it); RV(override) is its summary (null when there is
      none). Omit to list all.
    type: str
  wait_for:
    description:
      - V(ready) waits until C(status.imageDigest) is set and C(status.message) is C(Ready). A message that needs an
        operator (C(The module disabled), C(The module not found), C(The source not found), C(Download error ...))
        fails at once.
      - V(absent) waits until the override is deleted (DKP removes its finalizer after the rollback).
      - The current state counts. Needs O(name).
    type: str
    choices: [ready, absent]
  wait_timeout:
    description: Seconds O(wait_for) waits before failing with the last observed state. Must be greater than 0.
    type: int
    default: 300
extends_documentation_fragment:
  - deckhouse.platform.connection
  - deckhouse.platform.query
  - deckhouse.platform.attributes
  - deckhouse.platform.attributes.READ_ONLY
"""

EXAMPLES = r"""
- name: Which modules run from an image tag
  deckhouse.platform.module_pull_override_info:
    query: "[].{module: name, tag: image_tag, digest: image_digest}"
  register: overrides

- name: Wait until console runs its override image
  deckhouse.platform.module_pull_override_info:
    name: console
    wait_for: ready
  register: console_override
"""

RETURN = r"""
overrides:
  description: Override summaries sorted by name (only O(name) when it is set; empty when there is none).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Module name.
      type: str
    image_tag:
      description: C(spec.imageTag).
      type: str
    scan_interval:
      description: C(spec.scanInterval).
      type: str
    rollback:
      description: C(spec.rollback).
      type: bool
    image_digest:
      description: C(status.imageDigest), the digest that runs.
      type: str
    updated_at:
      description: C(status.updatedAt), when that digest was deployed.
      type: str
    message:
      description: C(status.message).
      type: str
    ready:
      description: C(status.message) is C(Ready) and a digest is set.
      type: bool
    renew_pending:
      description: The C(renew) annotation is set (DKP keeps it when the tag still resolves to the running digest).
      type: bool
    error:
      description: C(status.message) when it needs an operator, else null.
      type: str
    object:
      description: The ModulePullOverride without managedFields.
      type: dict
override:
  description: The summary of O(name), null when there is none.
  returned: when name is set
  type: dict
query_result:
  description: The value of O(query) applied to RV(overrides).
  returned: when query is set
  type: raw
"""

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_base import InfoModule
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_modules import check_name
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_pull_overrides import (
    gone_rules,
    override_summary,
    override_wait_rules,
)
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_query import QUERY_ARG_SPEC
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_wait import wait_for


class ModulePullOverrideInfo(InfoModule):
    kind = "ModulePullOverride"
    list_key = "overrides"
    item_key = "override"
    wait_noun = "override"

    def name_error(self, name):
        return check_name(name)

    def wait(self, name):
        if self.params["wait_for"] == "absent":
            rules = gone_rules()
        else:  # ready: the override may still be created
            rules = override_wait_rules(name, None, None, lambda: True, allow_missing=True)
        return wait_for(self.client, self.kind, name, timeout=self.params["wait_timeout"], **rules)

    def summary(self, obj):
        return override_summary(obj)


def main():
    ModulePullOverrideInfo(
        argument_spec=dict(
            name=dict(type="str"),
            wait_for=dict(type="str", choices=["ready", "absent"]),
            wait_timeout=dict(type="int", default=300),
            **QUERY_ARG_SPEC
        ),
        supports_check_mode=True,
    ).main()


if __name__ == "__main__":
    main()
