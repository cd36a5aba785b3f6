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
        C(30s), C(3m) or C(1h30m); DKP's default is C(3m). The only field of the C(deckhouse) source users may change.
    type: str
  wait:
    description:
      - Wait until DKP has synced the source after the task's change (C(status.syncTime) later than the write,
        or changed from its value before it), or, when nothing changed, until the source has been synced once.
      - With O(state=absent), wait until the source is gone (DKP keeps it while releases from it exist).
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait before failing with the last observed state.
    type: int
    default: 300
extends_documentation_fragment:
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
    scan_interval: 1m

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
diff:
  description: Spec, labels and annotations before and after (diff mode), C(dockerCfg) redacted.
  returned: in diff mode, when changed
  type: dict
method:
  description: What was sent, one of C(create), C(patch), C(delete) or C(none).
  returned: always
  type: str
"""

import datetime

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import FIELD_MANAGER, DkpError
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_module import DkpModule
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_modules import check_name
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_releases import duration_error
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_resource import (
    deep_merge,
    diff_view,
    ensure,
    ensure_absent,
    managed_view,
    merge_patch_between,
)
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_sources import (
    DOCKER_CFG_PATH,
    build_docker_config,
    deckhouse_owned_violation,
    desired_docker_config,
    is_deckhouse_owned,
    registry_host,
    source_modules,
    source_summary,
)
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_wait import wait_for

SPEC_OPTIONS = ("repo", "scheme", "ca", "docker_config", "registry_username", "registry_password", "scan_interval")


def validate(params):
    errors = []
    if check_name(params["name"], "ModuleSource name"):
        errors.append(check_name(params["name"], "ModuleSource name"))
    if params["state"] == "absent":
        conflicting = [k for k in SPEC_OPTIONS if params.get(k) is not None]
        if conflicting:
            errors.append("state=absent deletes the source; remove %s from the task" % ", ".join(conflicting))
    if params.get("repo") is not None:
        try:
            registry_host(params["repo"])
        except DkpError as e:
            errors.append(e.msg)
    errors += [m for m in [duration_error(params.get("scan_interval"), "scan_interval")] if m]
    if errors:
        raise DkpError("; ".join(errors))


def desired_object(params, live):
    name = params["name"]
    obj = live or {"apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleSource", "metadata": {"name": name},
                   "spec": {"registry": {}}}
    registry = (obj.get("spec") or {}).get("registry") or {}
    repo = params.get("repo") or registry.get("repo")
    if not repo:
        raise DkpError("ModuleSource %s does not exist: set repo (the registry repository of the modules) to "
                       "create it" % name)
    overlay = {"registry": {"repo": repo}}
    if params.get("scheme") is not None:
        overlay["registry"]["scheme"] = params["scheme"]
    if params.get("ca") is not None:
        overlay["registry"]["ca"] = params["ca"] or None
    if params.get("scan_interval") is not None:
        overlay["scanInterval"] = params["scan_interval"]
    spec = deep_merge(obj.get("spec") or {}, overlay)
    docker_cfg = desired_docker_config(registry.get("dockerCfg"), registry_host(repo),
                                       docker_config=params.get("docker_config"),
                                       username=params.get("registry_username"),
                                       password=params.get("registry_password"))
    if docker_cfg:
        spec["registry"]["dockerCfg"] = docker_cfg
    else:
        spec["registry"].pop("dockerCfg", None)
    wanted = dict(obj, spec=spec)
    violation = deckhouse_owned_violation(live, merge_patch_between(managed_view(live), managed_view(wanted)))
    if violation:
        raise DkpError(violation)
    return wanted


def write_time(obj):
    """Server time of our last write to `obj`, from its managedFields (None when unknown)."""
    times = [f.get("time") for f in (obj.get("metadata") or {}).get("managedFields") or []
             if f.get("manager") == FIELD_MANAGER and f.get("time")]
    return max(times) if times else None


def parse_time(value):
    """An RFC 3339 UTC timestamp to whole seconds (fractions dropped), or None."""
    try:
        return datetime.datetime.strptime(value[:19], "%Y-%m-%dT%H:%M:%S")
    except (TypeError, ValueError):
        return None


def describe_source(source):
    if source is None:
        return "the ModuleSource does not exist"
    summary = source_summary(source)
    errors = ["%s: %s" % (m["name"], m["error"]) for m in source_modules(source) if m["error"]]
    return "syncTime %s, %s modules%s%s%s" % (
        summary["sync_time"] or "never", summary["modules_count"] if summary["modules_count"] is not None else "no",
        ", phase %s" % summary["phase"] if summary["phase"] else "",
        ", message %r" % summary["message"] if summary["message"] else "",
        "; pull errors: " + "; ".join(errors) if errors else "")


def wait_synced(module, name, before, after, changed, timeout):
    """A sync counts when it is newer than our write: syncTime later than the write's server time, or
    different from the syncTime before the write (in case the clocks disagree)."""
    before_sync = ((before or {}).get("status") or {}).get("syncTime")
    written_at = parse_time(write_time(after)) if changed else None

    def synced(source):
        sync = ((source or {}).get("status") or {}).get("syncTime")
        if not sync:
            return False
        if not changed:
            return True
        synced_at = parse_time(sync)
        return sync != before_sync or (written_at is not None and synced_at is not None and synced_at > written_at)

    return wait_for(module.client, "ModuleSource", name, synced, timeout, describe=describe_source)


def mask_derived_secrets(module, params, *sources):
    """Register values derived from the no_log credentials (the dockerCfg built from them, the dockerCfg
    of `sources`) as no_log, so Ansible masks them should any message ever carry them."""
    secrets = [(((source or {}).get("spec") or {}).get("registry") or {}).get("dockerCfg") for source in sources]
    if params.get("registry_username") is not None and params.get("repo"):
        secrets.append(build_docker_config(registry_host(params["repo"]), params["registry_username"],
                                           params["registry_password"]))
    module.ansible.no_log_values.update(s for s in secrets if s)


def run(module):
    params = module.params
    validate(params)
    client = module.client
    name = params["name"]
    if params["state"] == "absent":
        if is_deckhouse_owned(client.get("ModuleSource", name)):
            raise DkpError("ModuleSource %s is managed by Deckhouse (label heritage: deckhouse) and cannot be "
                           "deleted" % name)
        res = ensure_absent(client, "ModuleSource", name, check_mode=module.check_mode)
        result = {"changed": res.changed, "method": res.method}
        if module.diff_mode and res.changed:
            result["diff"] = diff_view(res.before, None, secret_paths=[DOCKER_CFG_PATH])
        if params["wait"] and res.changed and not module.check_mode:
            wait_for(client, "ModuleSource", name, lambda obj: obj is None, params["wait_timeout"],
                     describe=lambda obj: describe_source(obj) + (
                         "; finalizers %s" % obj["metadata"].get("finalizers") if obj else ""))
        return result

    mask_derived_secrets(module, params)
    res = ensure(client, "ModuleSource", name, lambda live: desired_object(params, live), check_mode=module.check_mode)
    mask_derived_secrets(module, params, res.before, res.after)
    result = {"changed": res.changed, "method": res.method, "source": source_summary(res.after),
              "modules": source_modules(res.after)}
    if module.diff_mode and res.changed:
        result["diff"] = diff_view(res.before, res.after, secret_paths=[DOCKER_CFG_PATH])
    if params["wait"] and not module.check_mode:
        try:
            synced = wait_synced(module, name, res.before, res.after, res.changed, params["wait_timeout"])
        except DkpError as e:
            raise DkpError(e.msg, changed=res.changed, source=result["source"], **e.details)
        result.update(source=source_summary(synced), modules=source_modules(synced))
    return result


def main():
    module = DkpModule(
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
            wait=dict(type="bool", default=False),
            wait_timeout=dict(type="int", default=300),
        ),
        mutually_exclusive=[("docker_config", "registry_username"), ("docker_config", "registry_password")],
        required_together=[("registry_username", "registry_password")],
        supports_check_mode=True,
    )
    module.run(lambda: run(module))


if __name__ == "__main__":
    main()
