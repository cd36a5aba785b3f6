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
  - Creating an override for a module that no ModuleSource offers (in C(status.modules)) fails before anything is
    written and names the sources and the modules they offer.
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
      - Ask DKP to pull the tag again now (the C(renew) annotation). The annotation gets a new value on every run,
        because DKP reacts to annotation changes and keeps the annotation when the digest did not change.
      - Without O(wait) the task reports C(changed) (a pull was requested). With O(wait), C(changed) says whether a
        new image was deployed; when the tag still resolves to the digest that runs, the task reports
        C(changed=false) and says that the module already runs the newest digest of the tag.
    type: bool
    default: false
  wait:
    description:
      - Wait until C(status.imageDigest) is set and C(status.message) is C(Ready). After O(renew) or a new O(image_tag)
        the digest must also differ from the one before the task (or, for a new tag, C(status.updatedAt) must have
        changed), so the Ready of the previous image does not count.
      - The wait waits only for what can happen. DKP reacts to a renew or a new tag at once, and when the tag still
        names the image that runs it changes nothing at all. So when the digest has not moved about 10 seconds after
        the write and the override is C(Ready), the wait ends there (see O(renew)) instead of at O(wait_timeout).
      - Fails early on a message that needs an operator (C(The module disabled), C(The module not found),
        C(The source not found), C(Download error ...), ...); a message left from before the task counts only
        once DKP has had about 10 seconds to react to the change.
      - With O(state=absent), wait until the override is gone.
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
import time

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_base import DkpModule
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import DkpError
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_pull_overrides import (
    SETTLE_SECONDS,
    desired_object,
    gone_rules,
    not_offered_refusal,
    offering_sources,
    override_wait_rules,
    runs_newest,
    status_of,
    validate,
)
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_resource import (
    deep_merge,
    diff_view,
    ensure,
    ensure_absent,
    strip_server_fields,
)
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_wait import (
    WAIT_ARG_SPEC,
    WaitTimeout,
    wait_for,
)


def wait_running(module, name, before, must_change, written_at):
    """Wait for the image the task asked for. When DKP has to move (renew, new tag), give it SETTLE_SECONDS; a
    digest that has not moved by then, with the override Ready, is the newest one of the tag: nothing more
    can happen, so the wait ends there instead of at the timeout. Returns (obj, moved)."""
    client, timeout = module.client, module.params["wait_timeout"]
    grace = module.params["wait_grace"]
    deadline = time.monotonic() + timeout

    def settled():
        return time.monotonic() - written_at >= SETTLE_SECONDS

    rules = override_wait_rules(name, before, must_change, settled)
    if must_change:
        window = min(timeout, max(1, SETTLE_SECONDS - (time.monotonic() - written_at)))
        try:
            return wait_for(client, "ModulePullOverride", name, timeout=window, grace=grace, **rules), True
        except WaitTimeout:
            live = client.get("ModulePullOverride", name)
            if runs_newest(before, live):
                return live, False
            if time.monotonic() >= deadline:
                raise
    remaining = max(1, deadline - time.monotonic())
    return wait_for(client, "ModulePullOverride", name, timeout=remaining, grace=grace, **rules), True


def result_of(res, obj):
    status = status_of(obj)
    return {"override": strip_server_fields(obj), "image_digest": status.get("imageDigest"),
            "updated_at": status.get("updatedAt"), "message": status.get("message")}


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
        module.result.update(result)
        if params["wait"] and res.changed and not module.check_mode:
            wait_for(client, "ModulePullOverride", name, timeout=params["wait_timeout"], **gone_rules())
        return result

    if client.get("ModulePullOverride", name) is None and params.get("image_tag"):
        # Refused before creating: an override for a module no source offers can never pull anything.
        sources, offered = offering_sources(client, name)
        if not sources:
            raise DkpError(not_offered_refusal(name, offered))
    renew_value = (datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                   if params["renew"] else None)
    res = ensure(client, "ModulePullOverride", name, lambda live: desired_object(params, live, renew_value),
                 check_mode=module.check_mode)
    written_at = time.monotonic()
    result = dict(result_of(res, res.after), changed=res.changed, method=res.method)
    if module.diff_mode and res.changed:
        result["diff"] = diff_view(res.before, res.after)
    module.result.update(result)  # survives a failed wait
    if params["wait"] and not module.check_mode:
        old_tag = ((res.before or {}).get("spec") or {}).get("imageTag")
        new_tag = (res.after.get("spec") or {}).get("imageTag")
        if res.before is None:
            must_change = None
        elif params["renew"]:
            must_change = "digest"
        elif old_tag != new_tag:
            must_change = "digest_or_time"
        else:
            must_change = None
        obj, moved = wait_running(module, name, res.before, must_change, written_at)
        result.update(result_of(res, obj))
        if not moved:
            spec_changed = (res.before or {}).get("spec") != (res.after or {}).get("spec")
            result["changed"] = spec_changed
            result["msg"] = ("Module %s already runs the newest digest of tag %s (%s, deployed %s): DKP found no new "
                             "image, so nothing was redeployed"
                             % (name, new_tag, result["image_digest"], result["updated_at"]))
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
            **dict(WAIT_ARG_SPEC, wait_timeout=dict(WAIT_ARG_SPEC["wait_timeout"], default=300))
        ),
        supports_check_mode=True,
    )
    module.run(lambda: run(module))


if __name__ == "__main__":
    main()
