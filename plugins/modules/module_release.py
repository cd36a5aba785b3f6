#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

DOCUMENTATION = r"""
module: module_release
short_description: Approve, apply now or reinstall a DKP ModuleRelease
version_added: 0.1.0
description:
  - Acts on one C(deckhouse.io/v1alpha1) ModuleRelease by adding the annotation DKP reads for the action
    (a JSON merge patch of that annotation only, guarded by the object's resourceVersion).
  - The release is chosen by O(name), by O(module) and O(version), or by O(module) and O(release).
  - Idempotency follows the release's state, not its annotations. DKP deletes C(apply-now) and C(reinstall)
    once it has acted on them, so re-adding them on every run would redeploy or reinstall forever.
    C(approve) and C(apply_now) change nothing on a Deployed release or on one that already carries the
    annotation; on a Superseded, Skipped, Suspended or Terminating release they fail, naming its phase and
    the module's Deployed release.
  - C(reinstall) is an action; every run on a Deployed release without a pending reinstall request
    reinstalls the module again (C(changed=true)). Guard it with a condition when the play runs repeatedly.
  - C(changed) is decided before any wait. In check mode the annotation is sent as a server-side dry run.
author: deckhouse.platform contributors (@deckhouse)
options:
  name:
    description: ModuleRelease name, C(<module>-v<version>), for example C(console-v1.2.3).
    type: str
  module:
    description: Module name; select the release with O(version) or O(release).
    type: str
  version:
    description: Release version of O(module), with or without a leading C(v) (C(1.2.3) or C(v1.2.3)).
    type: str
  release:
    description:
      - Select the Deployed release of O(module) (V(deployed)) or the Pending one DKP deploys next, the
        lowest Pending release by semantic version (V(pending)).
      - V(pending) is resolved on every run; once that release is deployed, a second run acts on the next
        Pending release if there is one. Pin O(version) when the play must act on one release only.
      - When no release is in that phase the task changes nothing and returns RV(release=null).
      - With O(action=reinstall) and only O(module) given, V(deployed) is assumed.
    type: str
    choices: [deployed, pending]
  action:
    description:
      - V(approve) adds C(modules.deckhouse.io/approved="true"), the manual approval a Pending release needs
        under a C(Manual) update policy (and for minor releases under C(AutoPatch)).
      - V(apply_now) adds C(modules.deckhouse.io/apply-now="true"). It deploys the release at once, skipping
        update windows, cooldown, notification delays B(and manual approval).
      - V(reinstall) adds C(modules.deckhouse.io/reinstall="true") to the Deployed release. DKP downloads the
        release again, validates it against the current ModuleConfig and restarts Deckhouse. Only a Deployed
        release can be reinstalled.
    type: str
    required: true
    choices: [approve, apply_now, reinstall]
  wait:
    description:
      - For V(approve) and V(apply_now), wait until the release is Deployed; fail early when it becomes
        Superseded, Skipped or Suspended or is deleted.
      - For V(reinstall), wait until DKP has removed the C(reinstall) annotation, its C(isUpdating) annotation
        is no longer C("true"), and after that the Module is C(Ready) with condition C(IsReady=True). A Ready
        Module seen while the request is still on the release is the Ready from before the reinstall and does
        not count; C(isUpdating) covers the time between DKP taking the request and Deckhouse restarting, in
        which the Module still shows its earlier Ready.
      - A Module in phase C(Error) or C(DownloadingError) (for example C(IsReady=False) with reason C(HookError))
        fails the wait only when the error persists longer than O(wait_grace) seconds, because DKP also shows
        hook errors that it retries and clears while a module installs. C(Conflict) and C(Unavailable) fail at once.
      - The Deckhouse restart that follows every deploy and reinstall (its webhook refusing writes, the API
        answering 5xx) is ridden through by the connection's retries and the wait engine.
      - On timeout the error names the release's phase and message and the Module's phase.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait before failing with the last observed state.
    type: int
    default: 600
extends_documentation_fragment:
  - deckhouse.platform.wait
  - deckhouse.platform.connection
  - deckhouse.platform.attributes
  - deckhouse.platform.attributes.CHECK_MODE_WRITE
"""

EXAMPLES = r"""
- name: Approve console 1.41.0 (Manual update policy) and wait until it is deployed
  deckhouse.platform.module_release:
    module: console
    version: v1.41.0
    action: approve
    wait: true

- name: Approve whatever console release DKP would deploy next
  deckhouse.platform.module_release:
    module: console
    release: pending
    action: approve
  register: approval

- name: Deploy a release now, outside the update windows and without separate approval
  deckhouse.platform.module_release:
    name: console-v1.43.0
    action: apply_now
    wait: true
    wait_timeout: 900

- name: Reinstall the deployed console release once, and wait until the Module is Ready again
  deckhouse.platform.module_release:
    module: console
    action: reinstall
    wait: true
  when: console_needs_reinstall | default(false)
"""

RETURN = r"""
release:
  description:
    - The release after the task (the dry-run result in check mode); null when O(release) found no release in
      that phase.
  returned: always
  type: dict
  contains:
    name:
      description: Object name, C(<module>-v<version>).
      type: str
    module:
      description: C(spec.moduleName).
      type: str
    version:
      description: C(spec.version), without a leading C(v).
      type: str
    phase:
      description: C(status.phase) (an empty phase is reported as C(Pending), as DKP treats it).
      type: str
    message:
      description: C(status.message), for example why a Pending release waits.
      type: str
    approved:
      description: The C(modules.deckhouse.io/approved) annotation parses as true.
      type: bool
    apply_now:
      description: The C(modules.deckhouse.io/apply-now) annotation is C("true").
      type: bool
    reinstall:
      description: The C(modules.deckhouse.io/reinstall) annotation is C("true").
      type: bool
    annotations:
      description: The release annotations DKP acts on (approved, apply-now, reinstall, force, isUpdating,
        notified, change-cause) that are set.
      type: dict
    blocked_by:
      description: For a Pending release, why it waits, parsed from its message (see M(deckhouse.platform.module_release_info)).
      type: list
      elements: str
module:
  description: Status summary of the Module (phase, enabled, ready, version, conditions) when the task waited.
  returned: when wait is true and the task waited
  type: dict
diff:
  description: Labels and annotations before and after (diff mode).
  returned: in diff mode, when changed
  type: dict
method:
  description: What was sent, C(patch) or C(none).
  returned: always
  type: str
"""

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_base import ResourceModule
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_modules import module_summary
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_releases import (
    plan_action,
    release_summary,
    select_for_action,
    validate_release_action,
    wait_action_done,
)
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_resource import deep_merge
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_wait import WAIT_ARG_SPEC, wait_for


class ModuleReleaseModule(ResourceModule):
    """Annotates the release the task selects; a ModuleRelease is never created or deleted by a task."""

    kind = "ModuleRelease"
    creates = False

    def validate(self):
        validate_release_action(self.params)

    def prepare(self):
        release, self.releases, done = select_for_action(self.client, self.params)
        if release is not None:
            self.release_name = release["metadata"]["name"]
            self.module_name = release_summary(release)["module"]
        return done

    def identity(self):
        return self.release_name, None

    def missing(self, name):
        return "ModuleRelease %s was deleted while the task ran" % name

    def desired(self, live):
        return deep_merge(live, {"metadata": {"annotations": plan_action(self.params["action"], live, self.releases)}})

    def present_result(self, res):
        return {"release": release_summary(res.after)}

    def wait_present(self, res):
        p = self.params
        if not p["wait"]:
            return None
        after, mod = wait_action_done(self.client, p["action"], self.release_name, self.module_name,
                                      p["wait_timeout"], p["wait_grace"], wait_for)
        return {"release": release_summary(after), "module": module_summary(mod) if mod else None}


def main():
    ModuleReleaseModule(
        argument_spec=dict(
            name=dict(type="str"),
            module=dict(type="str"),
            version=dict(type="str"),
            release=dict(type="str", choices=["deployed", "pending"]),
            action=dict(type="str", required=True, choices=["approve", "apply_now", "reinstall"]),
            **dict(WAIT_ARG_SPEC, wait_timeout=dict(WAIT_ARG_SPEC["wait_timeout"], default=600))
        ),
        supports_check_mode=True,
    ).main()


if __name__ == "__main__":
    main()
