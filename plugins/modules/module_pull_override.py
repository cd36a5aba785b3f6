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

import time

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_base import ResourceModule
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import DkpError
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_pull_overrides import (
    desired_object,
    gone_rules,
    must_change_after,
    newest_digest_message,
    not_offered_refusal,
    offering_sources,
    override_result,
    renew_stamp,
    validate,
    wait_running,
)
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_wait import WAIT_ARG_SPEC, WaitTimeout, wait_for


class ModulePullOverrideModule(ResourceModule):
    kind = "ModulePullOverride"

    def validate(self):
        validate(self.params)

    def prepare(self):
        self.renew_value = renew_stamp() if self.params["renew"] else None  # one value per task, also on a 409

    def desired(self, live):
        return desired_object(self.params, live, self.renew_value)

    def create_body(self, wanted):
        # Refused before creating: an override for a module no source offers can never pull anything.
        sources, offered = offering_sources(self.client, self.params["name"])
        if not sources:
            raise DkpError(not_offered_refusal(self.params["name"], offered))
        return wanted

    def before_delete(self, live):
        # rollback: true just before deleting, so that the deletion rolls the module back to its release
        return {"spec": {"rollback": True}} if self.params.get("rollback") else None

    def present_result(self, res):
        self.written_at = time.monotonic()  # DKP's reaction time counts from the write
        return override_result(res.after)

    def wait_present(self, res):
        p = self.params
        if not p["wait"]:
            return None
        obj, moved = wait_running(self.client, p["name"], res.before, must_change_after(res.before, res.after, p["renew"]),
                                  self.written_at, p["wait_timeout"], p["wait_grace"], wait_for, WaitTimeout)
        out = override_result(obj)
        if not moved:
            out["changed"] = (res.before or {}).get("spec") != (res.after or {}).get("spec")
            out["msg"] = newest_digest_message(p["name"], (res.after.get("spec") or {}).get("imageTag"), obj)
        return out

    def wait_absent(self, res):
        if self.params["wait"]:
            wait_for(self.client, "ModulePullOverride", self.params["name"], timeout=self.params["wait_timeout"],
                     **gone_rules())


def main():
    ModulePullOverrideModule(
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
    ).main()


if __name__ == "__main__":
    main()
