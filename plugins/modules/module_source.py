#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

DOCUMENTATION = r"""
module: module_source
short_description: Manage a DKP ModuleSource (the registry modules are delivered from)
version_added: 0.1.0
description:
  - Creates, updates or deletes a C(deckhouse.io/v1alpha1) ModuleSource. Only the fields the task names are
    written (a JSON merge patch guarded by the object's resourceVersion).
  - Registry credentials are compared by value. The live C(spec.registry.dockerCfg) is decoded and the
    credentials stored for the repository's host are compared with the task's, so the same credentials
    never cause a write, whatever encoding or extra entries the live value has.
  - The credentials and C(dockerCfg) never appear in the result, in the diff or in error messages.
  - The ModuleSource C(deckhouse) is rendered by Deckhouse (label C(heritage=deckhouse)); DKP lets users change
    only its C(scanInterval). A task that would change anything else on it, or on any other Deckhouse-owned
    source, fails before writing and says so.
author: deckhouse.platform contributors (@deckhouse)
options:
  name:
    description: ModuleSource name.
    type: str
    required: true
  state:
    description: C(present) creates or updates the source; C(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  repo:
    description:
      - Registry repository the modules are pulled from (C(spec.registry.repo)), C(HOST[:PORT]/PATH) without a
        scheme, for example C(registry.example.com/deckhouse/modules). Required to create a source.
    type: str
  scheme:
    description: Registry protocol (C(spec.registry.scheme)); DKP's default is C(HTTPS).
    type: str
    choices: [HTTP, HTTPS]
  ca:
    description:
      - PEM CA certificate of the registry (C(spec.registry.ca)); V("") removes it.
      - Anything but PEM certificate blocks (C(-----BEGIN CERTIFICATE-----), base64 DER, C(-----END CERTIFICATE-----))
        is refused before writing, as M(deckhouse.platform.registry_mode) refuses it.
      - Creating a source with a CA restarts containerd on all nodes.
    type: str
  docker_config:
    description:
      - Registry credentials as the base64-encoded docker config (C(spec.registry.dockerCfg)), for example
        C(base64 -w0 ~/.docker/config.json). V("") removes the credentials (anonymous pulls).
      - Mutually exclusive with O(registry_username)/O(registry_password).
    type: str
  registry_username:
    description:
      - Registry user; the module builds the docker config for the host of O(repo).
      - Named C(registry_) because C(username) and C(password) are the API server's connection options.
    type: str
  registry_password:
    description: Password (or token) of O(registry_username).
    type: str
  scan_interval:
    description:
      - How often DKP scans the registry for new releases (C(spec.scanInterval), DKP 1.75+), a duration such as
        C(5m) or C(1h30m); DKP's default is C(3m). The only field of the C(deckhouse) source users may change.
      - DKP 1.75 and 1.76 use it only when it is longer than C(3m); a shorter value is written as given but gets a
        warning, because the registry is still scanned every 3 minutes.
    type: str
  wait:
    description:
      - Wait until DKP has synced the source after the task's change (C(status.syncTime) later than the write,
        or changed from its value before it), or, when nothing changed, until the source has been synced once.
      - Fails at once when that sync reports a registry error in C(status.message) (for example
        C(list tags ... NAME_UNKNOWN)). Pull errors of single modules do not fail the wait; they are in
        RV(modules[].error).
      - With O(state=absent), wait until the source is gone (DKP keeps it while releases from it exist).
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait before failing with the last observed state.
    type: int
    default: 300
extends_documentation_fragment:
  - deckhouse.platform.wait
  - deckhouse.platform.connection
  - deckhouse.platform.attributes
  - deckhouse.platform.attributes.CHECK_MODE_WRITE
"""

EXAMPLES = r"""
- name: A private module registry, credentials from the vault, and wait for the first scan
  deckhouse.platform.module_source:
    name: example
    repo: registry.example.com/deckhouse/modules
    registry_username: "{{ vault_registry_user }}"
    registry_password: "{{ vault_registry_password }}"
    scan_interval: 5m
    wait: true
  register: source

- name: Modules the source offers, and pull errors
  ansible.builtin.debug:
    msg: "{{ source.modules | map(attribute='name') }}; errors: {{ source.modules | selectattr('error') }}"

- name: Credentials from an existing docker config
  deckhouse.platform.module_source:
    name: example
    repo: registry.example.com/deckhouse/modules
    docker_config: "{{ lookup('ansible.builtin.file', 'docker-config.json') | b64encode }}"

- name: Scan the Deckhouse-owned source more often (the only change DKP allows on it)
  deckhouse.platform.module_source:
    name: deckhouse
    scan_interval: 5m

- name: Remove a source
  deckhouse.platform.module_source:
    name: example
    state: absent
"""

RETURN = r"""
source:
  description: Summary of the source after the task (the dry-run result in check mode); no credentials.
  returned: when state is present
  type: dict
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
    docker_config:
      description: C(VALUE_SPECIFIED_IN_NO_LOG_PARAMETER) when credentials are set, else null.
      type: str
    scan_interval:
      description: C(spec.scanInterval).
      type: str
    deckhouse_owned:
      description: The source carries C(heritage=deckhouse).
      type: bool
    sync_time:
      description: C(status.syncTime), the last registry scan.
      type: str
    message:
      description: C(status.message), for example C(Some errors occurred. Inspect status for details).
      type: str
modules:
  description: The modules the source offers (C(status.modules)), each with C(name), C(version), C(policy),
    C(checksum), C(overridden) and C(error), the pull error (null when none).
  returned: when state is present
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
diff:
  description: Spec, labels and annotations before and after (diff mode), C(dockerCfg) redacted.
  returned: in diff mode, when changed
  type: dict
method:
  description: What was sent, one of C(create), C(patch), C(delete) or C(none).
  returned: always
  type: str
"""

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_base import ResourceModule
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import DkpError
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_sources import (
    DOCKER_CFG_PATH,
    derived_secret_values,
    desired_object,
    owned_deletion_refusal,
    scan_interval_warning,
    source_gone_rules,
    source_modules,
    source_summary,
    source_wait_rules,
    validate,
)
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_wait import WAIT_ARG_SPEC, wait_for


class ModuleSourceModule(ResourceModule):
    kind = "ModuleSource"
    secret_paths = (DOCKER_CFG_PATH,)

    def mask(self, *sources):
        for secret in derived_secret_values(self.params, *sources):
            self.no_log(secret)

    def validate(self):
        validate(self.params)
        warning = scan_interval_warning(self.params.get("scan_interval"))
        if warning:
            self.warn(warning)

    def prepare(self):
        if self.params["state"] != "absent":
            self.mask()

    def desired(self, live):
        return desired_object(self.params, live)

    def before_delete(self, live):
        refusal = owned_deletion_refusal(live)
        if refusal:
            raise DkpError(refusal)

    def present_result(self, res):
        self.mask(res.before, res.after)
        return {"source": source_summary(res.after), "modules": source_modules(res.after)}

    def wait_present(self, res):
        p = self.params
        if not p["wait"]:
            return None
        synced = wait_for(self.client, "ModuleSource", p["name"], timeout=p["wait_timeout"], grace=p["wait_grace"],
                          **source_wait_rules(res.before, res.after, res.changed))
        return {"source": source_summary(synced), "modules": source_modules(synced)}

    def wait_absent(self, res):
        if self.params["wait"]:
            wait_for(self.client, "ModuleSource", self.params["name"], timeout=self.params["wait_timeout"],
                     **source_gone_rules())


def main():
    ModuleSourceModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            repo=dict(type="str"),
            scheme=dict(type="str", choices=["HTTP", "HTTPS"]),
            ca=dict(type="str"),
            docker_config=dict(type="str", no_log=True),
            registry_username=dict(type="str"),
            registry_password=dict(type="str", no_log=True),
            scan_interval=dict(type="str"),
            **dict(WAIT_ARG_SPEC, wait_timeout=dict(WAIT_ARG_SPEC["wait_timeout"], default=300))
        ),
        mutually_exclusive=[("docker_config", "registry_username"), ("docker_config", "registry_password")],
        required_together=[("registry_username", "registry_password")],
        supports_check_mode=True,
    ).main()


if __name__ == "__main__":
    main()
