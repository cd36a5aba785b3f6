#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

DOCUMENTATION = r"""
module: module_pull_override
short_description: Run a module from an image tag instead of its releases (DKP ModulePullOverride)
version_added: 0.1.0
description:
  - Creates, updates or deletes the C(deckhouse.io/v1alpha2) ModulePullOverride of one module, a developer and
    debugging tool. While it exists, DKP runs the module from O(image_tag) of the module's source and does not
    process the module's Pending releases; every new image digest restarts Deckhouse.
  - Only the fields the task names are written (a JSON merge patch guarded by the object's resourceVersion).
  - The module must be enabled in its ModuleConfig for a first override to take effect.
author: deckhouse.platform contributors (@deckhouse)
options:
  name:
    description: Module name (the ModulePullOverride is named after the module).
    type: str
    required: true
  state:
    description: C(present) creates or updates the override; C(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  image_tag:
    description: Image tag of the module in its source's registry (C(spec.imageTag)), for example C(pr123). Required
      to create the override.
    type: str
  scan_interval:
    description: How often DKP checks the tag for a new digest (C(spec.scanInterval)), for example C(15s) (DKP's default).
    type: str
  rollback:
    description:
      - Return the module to its release when the override is deleted (C(spec.rollback)).
      - With O(state=absent), V(true) sets it just before deleting, so that deleting the override rolls the module
        back to its Deployed release.
    type: bool
  renew:
    description:
      - Ask DKP to pull the tag again now (the C(renew) annotation). This is an action, so the task always reports
        C(changed). The annotation gets a new value on every run, because DKP reacts to annotation changes and
        keeps the annotation when the digest did not change.
    type: bool
    default: false
  wait:
    description:
      - Wait until C(status.imageDigest) is set and C(status.message) is C(Ready). After O(renew) or a new O(image_tag)
        the digest must also differ from the one before the task (or, for a new tag, C(status.updatedAt) must have
        changed), so the Ready of the previous image does not count. When the tag still names the same image, DKP
        has nothing to deploy and the wait ends at O(wait_timeout), naming the unchanged digest.
      - Fails early on a message that needs an operator (C(The module disabled), C(The module not found),
        C(The source not found), C(Download error ...), ...).
      - With O(state=absent), wait until the override is gone.
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
- name: Run console from the image of a merge request
  deckhouse.platform.module_pull_override:
    name: console
    image_tag: pr123
    rollback: true
    wait: true
  register: mpo

- name: Show the digest that runs
  ansible.builtin.debug:
    msg: "{{ mpo.image_digest }} since {{ mpo.updated_at }}"

- name: A new image was pushed under the same tag; pull it now
  deckhouse.platform.module_pull_override:
    name: console
    renew: true
    wait: true

- name: Back to the module's release
  deckhouse.platform.module_pull_override:
    name: console
    state: absent
    rollback: true
    wait: true
"""

RETURN = r"""
override:
  description: The ModulePullOverride after the task (the dry-run result in check mode).
  returned: when state is present
  type: dict
image_digest:
  description: C(status.imageDigest), the digest that runs.
  returned: when state is present
  type: str
updated_at:
  description: C(status.updatedAt), when that digest was deployed.
  returned: when state is present
  type: str
message:
  description: C(status.message), C(Ready) or what keeps the override from working.
  returned: when state is present
  type: str
diff:
  description: Spec, labels and annotations before and after (diff mode).
  returned: in diff mode, when changed
  type: dict
method:
  description: What was sent, one of C(create), C(patch), C(delete) or C(none).
  returned: always
  type: str
"""

import datetime
import re
import time

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import KINDS, DkpError
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_module import DkpModule
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_modules import check_name
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_releases import duration_error
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_resource import (
    deep_merge,
    diff_view,
    ensure,
    ensure_absent,
    strip_server_fields,
)
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_wait import wait_for

RENEW_ANNOTATION = "renew"
READY_MESSAGE = "Ready"
# Messages that stay until an operator acts (DKP's override controller).
FAILURE_PREFIXES = ("The module is embedded", "The module disabled", "The module not found", "The source not found",
                    "The module does not have an active source", "Download error", "validation failed")
# Seconds an unchanged failure message from before our write may persist before it counts.
STALE_ERROR_GRACE = 10
_IMAGE_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def validate(params):
    errors = []
    if check_name(params["name"]):
        errors.append(check_name(params["name"]))
    if params["state"] == "absent":
        conflicting = [k for k in ("image_tag", "scan_interval") if params.get(k) is not None]
        if params["renew"]:
            conflicting.append("renew")
        if params.get("rollback") is False:
            conflicting.append("rollback=false")
        if conflicting:
            errors.append("state=absent deletes the override; remove %s from the task" % ", ".join(conflicting))
    if params.get("image_tag") is not None and not _IMAGE_TAG_RE.match(params["image_tag"]):
        errors.append("image_tag %r is not a valid image tag: up to 128 letters, digits, '_', '.' and '-', not "
                      "starting with '.' or '-'" % params["image_tag"])
    errors += [m for m in [duration_error(params.get("scan_interval"), "scan_interval")] if m]
    if errors:
        raise DkpError("; ".join(errors))


def desired_object(params, live, renew_value):
    name = params["name"]
    if live is None and not params.get("image_tag"):
        raise DkpError("ModulePullOverride %s does not exist: set image_tag to create it" % name)
    kind = KINDS["ModulePullOverride"]
    obj = live or {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": {"name": name}, "spec": {}}
    overlay = {"spec": {}}
    for option, field in (("image_tag", "imageTag"), ("scan_interval", "scanInterval"), ("rollback", "rollback")):
        if params.get(option) is not None:
            overlay["spec"][field] = params[option]
    if renew_value:
        overlay["metadata"] = {"annotations": {RENEW_ANNOTATION: renew_value}}
    return deep_merge(obj, overlay)


def status_of(obj):
    return (obj or {}).get("status") or {}


def failure_message(message):
    if not message or not message.startswith(FAILURE_PREFIXES):
        return None
    if message.startswith("The module disabled"):
        return message + ": enable the module in its ModuleConfig (enabled: true) for the override to take effect"
    return message


def describe_override(obj):
    if obj is None:
        return "the ModulePullOverride does not exist"
    status = status_of(obj)
    return "message %r, imageDigest %s, updatedAt %s" % (
        status.get("message") or "", status.get("imageDigest") or "<none>", status.get("updatedAt") or "<none>")


def wait_deployed(module, name, before, must_change, timeout):
    """Ready with a digest. `must_change` keeps the previous image's Ready from counting: "digest" (after
    renew) needs a digest other than `before`'s, "digest_or_time" (after a new tag) also accepts a new
    updatedAt; None accepts the current state."""
    old = status_of(before)
    started = time.monotonic()

    def ready(obj):
        status = status_of(obj)
        if not status.get("imageDigest") or status.get("message") != READY_MESSAGE:
            return False
        new_digest = status["imageDigest"] != old.get("imageDigest")
        if must_change == "digest":
            return new_digest
        if must_change == "digest_or_time":
            return new_digest or status.get("updatedAt") != old.get("updatedAt")
        return True

    def failure(obj):
        if obj is None:
            return "ModulePullOverride %s was deleted while waiting" % name
        message = status_of(obj).get("message")
        stale = message == old.get("message") and time.monotonic() - started < STALE_ERROR_GRACE
        return None if stale else failure_message(message)

    def describe(obj):
        text = describe_override(obj)
        if must_change and obj is not None and status_of(obj).get("imageDigest") == old.get("imageDigest"):
            text += " (the digest from before the task: no new image has been deployed)"
        return text

    return wait_for(module.client, "ModulePullOverride", name, ready, timeout, describe=describe, failure=failure)


def run(module):
    params = module.params
    validate(params)
    client = module.client
    name = params["name"]
    if params["state"] == "absent":
        live = client.get("ModulePullOverride", name)
        if live is not None and params.get("rollback"):
            ensure(client, "ModulePullOverride", name, lambda obj: deep_merge(obj, {"spec": {"rollback": True}}),
                   check_mode=module.check_mode)
        res = ensure_absent(client, "ModulePullOverride", name, check_mode=module.check_mode)
        result = {"changed": res.changed, "method": res.method}
        if module.diff_mode and res.changed:
            result["diff"] = diff_view(res.before, None)
        if params["wait"] and res.changed and not module.check_mode:
            wait_for(client, "ModulePullOverride", name, lambda obj: obj is None, params["wait_timeout"],
                     describe=lambda obj: describe_override(obj) + (
                         "; finalizers %s" % obj["metadata"].get("finalizers") if obj else ""))
        return result

    renew_value = (datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                   if params["renew"] else None)
    res = ensure(client, "ModulePullOverride", name, lambda live: desired_object(params, live, renew_value),
                 check_mode=module.check_mode)
    status = status_of(res.after)
    result = {"changed": res.changed, "method": res.method, "override": strip_server_fields(res.after),
              "image_digest": status.get("imageDigest"), "updated_at": status.get("updatedAt"),
              "message": status.get("message")}
    if module.diff_mode and res.changed:
        result["diff"] = diff_view(res.before, res.after)
    if params["wait"] and not module.check_mode:
        old_tag = ((res.before or {}).get("spec") or {}).get("imageTag")
        new_tag = (res.after.get("spec") or {}).get("imageTag")
        if params["renew"]:
            must_change = "digest"
        elif res.before is not None and old_tag != new_tag:
            must_change = "digest_or_time"
        else:
            must_change = None
        try:
            obj = wait_deployed(module, name, res.before, must_change, params["wait_timeout"])
        except DkpError as e:
            raise DkpError(e.msg, changed=res.changed, image_digest=result["image_digest"], **e.details)
        status = status_of(obj)
        result.update(override=strip_server_fields(obj), image_digest=status.get("imageDigest"),
                      updated_at=status.get("updatedAt"), message=status.get("message"))
    return result


def main():
    module = DkpModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            image_tag=dict(type="str"),
            scan_interval=dict(type="str"),
            rollback=dict(type="bool"),
            renew=dict(type="bool", default=False),
            wait=dict(type="bool", default=False),
            wait_timeout=dict(type="int", default=300),
        ),
        supports_check_mode=True,
    )
    module.run(lambda: run(module))


if __name__ == "__main__":
    main()
