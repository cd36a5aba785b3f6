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
- name: Approve console 1.2.3 (Manual update policy) and wait until it is deployed
  deckhouse.platform.module_release:
    module: console
    version: v1.2.3
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
    name: console-v1.2.4
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

import time

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import DkpError
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_base import DkpModule
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_modules import check_name, module_summary
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_releases import (
    check_release_name,
    describe_candidates,
    find_release,
    module_error_tick,
    module_ready_rules,
    normalize_version,
    plan_action,
    release_summary,
    release_wait_rules,
)
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_resource import deep_merge, diff_view, ensure
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_wait import WAIT_ARG_SPEC, wait_for


def validate(params):
    """Refuse a task that cannot name one release, before anything is read or written."""
    errors = []
    if params.get("name"):
        if params.get("module") or params.get("version") or params.get("release"):
            errors.append("name selects the release on its own; remove module, version and release from the task")
        elif check_release_name(params["name"]):
            errors.append(check_release_name(params["name"]))
    elif params.get("module"):
        if check_name(params["module"]):
            errors.append(check_name(params["module"]))
        if params.get("version") is not None and params.get("release"):
            errors.append("version and release both select the release; use one of them")
        elif params.get("version") is None and not params.get("release") and params["action"] != "reinstall":
            errors.append("with module, set version (for example 1.2.3) or release (deployed or pending)")
        if params.get("version") is not None:
            try:
                normalize_version(params["version"])
            except DkpError as e:
                errors.append(e.msg)
    else:
        errors.append("set name (for example console-v1.2.3), or module with version or release")
    if errors:
        raise DkpError("; ".join(errors))


def selection(params):
    """(name, module, version, which) for find_release."""
    which = params.get("release")
    if params.get("module") and params.get("version") is None and not which:
        which = "deployed"  # reinstall of the module's release
    return params.get("name"), params.get("module"), params.get("version"), which


def wait_done(module, action, name, module_name):
    """approve/apply_now: the release is Deployed. reinstall: DKP settled the request on the release, and only
    after that the Module is Ready (so the Ready from before the reinstall does not count)."""
    client, params = module.client, module.params
    timeout, grace = params["wait_timeout"], params["wait_grace"]
    started = time.monotonic()
    if action != "reinstall":
        release = wait_for(client, "ModuleRelease", name, timeout=timeout, grace=grace,
                           **release_wait_rules(client, module_name, "deployed"))
        return release, client.get("Module", module_name)
    release = wait_for(client, "ModuleRelease", name, timeout=timeout, grace=grace,
                       tick=module_error_tick(client, module_name, grace),
                       **release_wait_rules(client, module_name, "reinstalled"))
    mod = wait_for(client, "Module", module_name, timeout=max(1, timeout - (time.monotonic() - started)),
                   grace=grace, **module_ready_rules(client, module_name, name))
    return client.get("ModuleRelease", name) or release, mod


def run(module):
    params = module.params
    validate(params)
    client = module.client
    action = params["action"]
    name, module_name, version, which = selection(params)
    release, releases = find_release(client, name=name, module=module_name, version=version, which=which)
    if release is None and action == "reinstall":
        raise DkpError("Module %s has no Deployed release to reinstall. Its releases: %s"
                       % (module_name, describe_candidates(releases)))
    if release is None:
        return {"changed": False, "method": "none", "release": None,
                "msg": "Module %s has no %s release; nothing to %s"
                       % (module_name, which.capitalize(), action.replace("_", " "))}
    name = release["metadata"]["name"]
    module_name = release_summary(release)["module"]

    def desired(live):
        if live is None:
            raise DkpError("ModuleRelease %s was deleted while the task ran" % name)
        return deep_merge(live, {"metadata": {"annotations": plan_action(action, live, releases)}})

    res = ensure(client, "ModuleRelease", name, desired, check_mode=module.check_mode)
    result = {"changed": res.changed, "method": res.method, "release": release_summary(res.after)}
    if module.diff_mode and res.changed:
        result["diff"] = diff_view(res.before, res.after)
    module.result.update(result)  # survives a failed wait
    if params["wait"] and not module.check_mode:
        after, mod = wait_done(module, action, name, module_name)
        result["release"] = release_summary(after)
        result["module"] = module_summary(mod) if mod else None
    return result


def main():
    module = DkpModule(
        argument_spec=dict(
            name=dict(type="str"),
            module=dict(type="str"),
            version=dict(type="str"),
            release=dict(type="str", choices=["deployed", "pending"]),
            action=dict(type="str", required=True, choices=["approve", "apply_now", "reinstall"]),
            **dict(WAIT_ARG_SPEC, wait_timeout=dict(WAIT_ARG_SPEC["wait_timeout"], default=600))
        ),
        supports_check_mode=True,
    )
    module.run(lambda: run(module))


if __name__ == "__main__":
    main()
