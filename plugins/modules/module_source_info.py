#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

DOCUMENTATION = r"""
module: module_source_info
short_description: Read DKP ModuleSources (registry, sync state, offered modules), credentials redacted
version_added: 0.2.0
description:
  - Returns one C(deckhouse.io/v1alpha1) ModuleSource (O(name)) or all of them, as summaries. The registry
    credentials (C(spec.registry.dockerCfg) and the credentials inside it) are never returned or printed;
    RV(sources[].docker_config) only says whether there are any.
  - With O(wait_for=synced) it first waits (watching, not polling) until the source O(name) has been synced
    without a registry error.
author: deckhouse.platform contributors (@deckhouse)
options:
  name:
    description: Name of one ModuleSource; RV(source) is its summary (null when it does not exist). Omit to list all.
    type: str
  wait_for:
    description:
      - V(synced) waits until the source O(name) has a C(status.syncTime) and its C(status.message) reports no
        registry error. Any sync counts (a reader changes nothing that could make the current one stale).
      - A sync that reports a registry error (for example C(list tags ... NAME_UNKNOWN)) fails at once with that
        error; pull errors of single modules do not (see RV(sources[].modules[].error)). On timeout the error names
        the last syncTime, message and pull errors. Needs O(name).
    type: str
    choices: [synced]
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
- name: Wait until the source of our modules has scanned its registry
  deckhouse.platform.module_source_info:
    name: example
    wait_for: synced
    wait_timeout: 600
  register: example_source

- name: Modules it offers
  ansible.builtin.debug:
    msg: "{{ example_source.source.modules | map(attribute='name') }}"

- name: Sources whose last sync reported an error
  deckhouse.platform.module_source_info:
    query: "[?sync_error].name"
  register: broken_sources
"""

RETURN = r"""
sources:
  description: Source summaries sorted by name (only O(name) when it is set; empty when it does not exist).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: ModuleSource name.
      type: str
    repo:
      description: C(spec.registry.repo).
      type: str
    scheme:
      description: C(spec.registry.scheme).
      type: str
    ca:
      description: C(spec.registry.ca) (a public certificate).
      type: str
    docker_config:
      description: C(VALUE_SPECIFIED_IN_NO_LOG_PARAMETER) when the source has credentials, else null.
      type: str
    scan_interval:
      description: C(spec.scanInterval).
      type: str
    deckhouse_owned:
      description: The source carries C(heritage=deckhouse) (the C(deckhouse) source).
      type: bool
    phase:
      description: C(status.phase).
      type: str
    message:
      description: C(status.message); empty after a good sync in released DKP.
      type: str
    sync_error:
      description: The registry error of the last sync (C(status.message) when it is one), else null.
      type: str
    sync_time:
      description: C(status.syncTime), the last registry scan.
      type: str
    modules_count:
      description: C(status.modulesCount).
      type: int
    modules:
      description: The modules the source offers, each with C(name), C(version), C(policy), C(checksum),
        C(overridden) and C(error) (the pull error, null when none).
      type: list
      elements: dict
      contains:
        name:
          description: Module name.
          type: str
        version:
          description: Version the source offers for the module (C(version) of the C(status.modules) entry).
          type: str
        policy:
          description: The name of the ModuleUpdatePolicy that applies to the module (C(policy) of the entry; null for the embedded policy, which DKP omits).
          type: str
        checksum:
          description: C(checksum) of the entry.
          type: str
        overridden:
          description: The module runs a ModulePullOverride (C(overridden) of the entry); false when unset.
          type: bool
        error:
          description: The module's pull error (C(error), older C(pullError) or C(status.moduleErrors)), null when none.
          type: str
source:
  description: The summary of O(name), null when it does not exist.
  returned: when name is set
  type: dict
query_result:
  description: The value of O(query) applied to RV(sources).
  returned: when query is set
  type: raw
"""

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_base import InfoModule
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_modules import check_name
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_query import QUERY_ARG_SPEC
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_sources import (
    source_info_summary,
    source_secret_values,
    source_wait_rules,
)
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_wait import wait_for


class ModuleSourceInfo(InfoModule):
    kind = "ModuleSource"
    list_key = "sources"
    item_key = "source"
    wait_noun = "source"

    def name_error(self, name):
        return check_name(name, "ModuleSource name")

    def wait(self, name):
        return wait_for(self.client, self.kind, name, timeout=self.params["wait_timeout"], **source_wait_rules())

    def secrets(self, obj):
        return source_secret_values(obj)

    def summary(self, obj):
        return source_info_summary(obj)


def main():
    ModuleSourceInfo(
        argument_spec=dict(
            name=dict(type="str"),
            wait_for=dict(type="str", choices=["synced"]),
            wait_timeout=dict(type="int", default=300),
            **QUERY_ARG_SPEC
        ),
        supports_check_mode=True,
    ).main()


if __name__ == "__main__":
    main()
