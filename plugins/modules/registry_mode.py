#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

DOCUMENTATION = r"""
module: registry_mode
short_description: Set the registry mode of a DKP cluster (Unmanaged, Direct, Proxy, Local) and follow the switch
version_added: 0.1.0
description:
  - Sets C(spec.settings.registry) of ModuleConfig C(deckhouse) and nothing else - every other setting and
    field of that ModuleConfig is kept. The task describes the whole registry configuration - parameters
    it does not give are removed, and so are the sections the new mode must not have.
  - Before writing, checks every rule DKP enforces (section consistency, C(imagesRepo) format, license
    versus username/password, password with username, ttl of at least 5 minutes) with DKP's own messages,
    and the transition rules DKP only reports after the fact in C(registry-state) - Local and Proxy only
    through Direct or Unmanaged; non-configurable Unmanaged not from Local.
  - Unchanged when the live settings already say the same (DKP's defaults applied, secrets compared by
    value) - nothing is written, so DKP does not restart anything.
  - Just before writing, reads Secret C(registry-state) again and fails at once when it shows a switch toward
    another target (a racing run or an operator); the write itself is guarded, so settings changed by someone
    else since the task read them are never overwritten. Use M(deckhouse.platform.run_lock) to serialise runs.
  - Refuses, before writing, a switch that would silently drop the credentials of the registry in use (for
    example Proxy to Direct on the same registry without O(license)) - give them, or O(from_current=true).
  - DKP 1.75+ refuses Local to Proxy (and to non-configurable Unmanaged) and Proxy to Local at admission
    (ValidatingAdmissionPolicy C(deckhouse-module-registry-validation)); such a denial is reported with what to
    do (switch through Direct).
  - With O(wait), follows Secret C(d8-system/registry-state) until the switch completes (C(Ready=True) and
    C(mode == target_mode)). A state from before the write never counts. The evidence that DKP saw the
    write (RV(evidence)) - a new target mode (DKP clears the conditions then); for a change of parameters in
    the same mode, conditions whose C(observedGeneration) passes the generation Secret C(registry-config) had
    before the write, or, where DKP reports no generations, the orchestrator resetting C(Ready) after the
    write. C(hash) is not evidence - DKP changes it on unrelated node and pod events.
  - Fails at once when DKP reports C(ErrTransitionNotSupported) or another target replaces ours; on timeout
    reports every condition that is not True, with its message, and the steps not reported yet (in the
    released order of the target mode). The wait rides through dropped watches and an API server restart.
  - The action plugin of this module runs the wait on the controller (connection C(local)) and prints each
    condition change as it happens (for example C(TransitionContainerdConfigReady=True)), for Local also how
    to push the images, so a long switch shows progress in the playbook output and in AWX. The same lines are
    returned in RV(progress_lines). The write and the wait are one module execution.
  - O(license) and O(password) are never shown - not in results, diff, progress or errors.
author: deckhouse.platform contributors (@deckhouse)
options:
  mode:
    description:
      - The registry mode. C(Unmanaged) without O(images_repo) is the non-configurable Unmanaged mode; with it,
        the configurable one (an C(unmanaged) section).
      - Required unless O(settings) is given.
    type: str
    choices: [Unmanaged, Direct, Proxy, Local]
  images_repo:
    description:
      - Repository with the platform images, C(host[:port]/path) without a scheme (C(imagesRepo)), for
        example C(registry.deckhouse.io/deckhouse/ee). Required for Direct and Proxy.
    type: str
  scheme:
    description: Protocol to reach O(images_repo) (C(scheme)); DKP's default is C(HTTPS).
    type: str
    choices: [HTTP, HTTPS]
  license:
    description: License key for the registry (C(license)); excludes O(username)/O(password).
    type: str
  username:
    description: Registry user (C(username)); needs O(password).
    type: str
  password:
    description: Registry password (C(password)); needs O(username).
    type: str
  ca:
    description: PEM certificate of the CA that signed the registry's certificate (C(ca)).
    type: str
  image_check_mode:
    description:
      - DKP's image check mode (C(checkMode)) - C(Default) checks every required image in the new registry,
        C(Relax) only the Deckhouse image (for edition switches). Not Ansible's check mode.
      - The alias C(check_mode) is deprecated (it reads like the task keyword of the same name) and will be
        removed in 1.0.0.
    type: str
    aliases: [check_mode]
    choices: [Default, Relax]
  ttl:
    description: Proxy only - how long the proxy caches images (C(ttl), like C(24h) or C(30m); at least 5 minutes).
    type: str
  from_current:
    description:
      - Take the registry parameters that the task does not give from the section of the mode the cluster is in
        now (for example keep the upstream registry and license of Proxy when switching to Direct). C(ttl) is
        only carried over to Proxy. The carried values never appear in the output.
    type: bool
    default: false
  settings:
    description:
      - The complete C(spec.settings.registry) to set, for example a RV(restore_point) saved before a switch, to
        roll back. Excludes O(mode) and the registry parameters; checked by the same rules.
      - Its C(license) and C(password) values are never shown.
    type: dict
  return_restore_point:
    description:
      - Also return RV(restore_point) - the registry settings before the task, with license and password in
        clear, for a later rollback with O(settings). Only allowed on a task with C(no_log=true).
    type: bool
    default: false
  write:
    description:
      - V(false) writes nothing - the task only reports on (and with O(wait) waits for) a switch to O(mode) made
        earlier, for example by a task that had O(wait=false) (pass its RV(wait_baseline) as O(baseline)).
    type: bool
    default: true
  check_transition:
    description:
      - Refuse transitions that DKP does not support before writing. Turn off only to validate the second hop of
        a two-hop switch ahead of time (in check mode).
    type: bool
    default: true
  wait:
    description: Follow C(registry-state) until the switch to O(mode) completes.
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait for the switch to complete; greater than 0. For Local, the time spent waiting for the
        images to be pushed is not counted here (see O(images_wait_timeout)).
    type: int
    default: 1800
  images_wait_timeout:
    description:
      - Local only - seconds to wait for the platform images to be pushed into the in-cluster registry
        (condition C(RegistryContainsRequiredImages)), counted from the start of the images check (in Local
        mode after the node services are up); greater than 0.
    type: int
    default: 3600
  baseline:
    description:
      - The registry-state recorded before an earlier write, as returned in RV(wait_baseline) by an earlier task
        (typically with O(wait=false)). Lets a later task wait for that write without taking the state from
        before it as done. Ignored when this task writes itself.
    type: dict
  settle:
    description:
      - With O(wait), once the switch is complete also wait until Deckhouse has settled - a switch restarts
        Deckhouse, which then replays its startup queue. C(module_ready) - the Module C(registry) is enabled and
        Ready; C(queue_empty) - Deckhouse's queue has drained (a failing task fails at once). What was found is in
        RV(settled); a check that does not pass fails the task (the write is still reported as a change).
      - Lets a runbook verify a switch in the same task, without another module call.
    type: list
    elements: str
    choices: [module_ready, queue_empty]
    default: []
    version_added: 0.2.0
  settle_timeout:
    description: Seconds, for all O(settle) checks together; greater than 0.
    type: int
    default: 300
    version_added: 0.2.0
extends_documentation_fragment:
  - deckhouse.platform.connection
  - deckhouse.platform.attributes
  - deckhouse.platform.attributes.CHECK_MODE_WRITE
seealso:
  - module: deckhouse.platform.registry_state_info
  - module: deckhouse.platform.preflight
"""

EXAMPLES = r"""
- name: Proxy with a one-day cache
  deckhouse.platform.registry_mode:
    mode: Proxy
    images_repo: registry.deckhouse.io/deckhouse/ee
    license: "{{ dkp_license }}"
    ttl: 24h
    wait: true
    wait_timeout: 3600

- name: Switch to Direct with a license and wait, printing every condition change
  deckhouse.platform.registry_mode:
    mode: Direct
    images_repo: registry.deckhouse.io/deckhouse/ee
    license: "{{ dkp_license }}"
    wait: true

- name: Write now, wait in a later task (Local from Direct; DKP refuses Proxy to Local)
  deckhouse.platform.registry_mode:
    mode: Local
  register: registry_write

- name: Wait (prints how to push the images while RegistryContainsRequiredImages is False)
  deckhouse.platform.registry_mode:
    mode: Local
    wait: true
    baseline: "{{ registry_write.wait_baseline }}"
"""

RETURN = r"""
settings:
  description: C(spec.settings.registry) after the task (the dry-run result in check mode), license and password redacted.
  returned: always
  type: dict
  sample: {mode: Direct, direct: {imagesRepo: registry.example.com/deckhouse/ee, license: VALUE_SPECIFIED_IN_NO_LOG_PARAMETER}}
settings_before:
  description: C(spec.settings.registry) before the task, redacted.
  returned: always
  type: dict
method:
  description: C(patch), C(create) or C(none).
  returned: always
  type: str
mode:
  description: The target mode of the task.
  returned: always
  type: str
current_mode:
  description: The mode the cluster ran before the task (registry-state C(mode), else the ModuleConfig's).
  returned: always
  type: str
restart:
  description:
    - What DKP restarts because of this change - C(deckhouse), C(all_components) (the first switch away from
      Unmanaged, or a change in Unmanaged mode) and the C(reason).
  returned: always
  type: dict
wait_baseline:
  description:
    - The registry-state before the write (exists, mode, target_mode, complete, written, config_generation -
      the generation of Secret C(registry-config) before the write), for O(baseline).
  returned: always
  type: dict
state:
  description: The registry-state summary at the end (see M(deckhouse.platform.registry_state_info)).
  returned: when wait is true
  type: dict
progress:
  description: Every condition change seen while waiting - after (seconds), type, status, reason, message.
  returned: when wait is true
  type: list
  elements: dict
progress_lines:
  description: The progress lines the action plugin printed while waiting (the live progress, for AWX).
  returned: when wait is true
  type: list
  elements: str
evidence:
  description: How the wait told the state of this write from an older one (see the description).
  returned: when wait is true
  type: str
settled:
  description:
    - One entry per O(settle) check - C(passed), C(message), C(details) (as in
      M(deckhouse.platform.registry_switch_preflight)'s RV(deckhouse.platform.registry_switch_preflight#module:checks)).
  returned: when wait is true and settle is set, and the switch completed
  type: dict
settle_duration:
  description: Seconds the O(settle) checks took.
  returned: when wait is true and settle is set, and the switch completed
  type: float
timings:
  description: Per condition, seconds after the start when it was first reported and when it became True.
  returned: when wait is true
  type: list
  elements: dict
local_push:
  description:
    - For mode Local - where and how to push the platform images (C(d8 mirror push) to
      C(registry.<publicDomain>/system/deckhouse) as the rw user of Secret C(d8-system/registry-user-rw)). The
      password is never included; the command reads it from the Secret.
  returned: when mode is Local
  type: dict
restore_point:
  description: The registry settings before the task, license and password in clear (see O(return_restore_point)).
  returned: when return_restore_point is true
  type: dict
diff:
  description: C(spec.settings.registry) before and after, secrets redacted.
  returned: in diff mode, when changed
  type: dict
"""

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import ApiError, DkpError
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_base import DkpModule
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_registry import (
    DECKHOUSE_CONFIG,
    NAMESPACE,
    RW_USER_SECRET,
    STATE_SECRET,
    desired_config,
    dropped_credentials,
    effective_mode,
    explain_denial,
    follow_switch,
    is_configurable,
    live_mode,
    live_registry,
    local_push_instructions,
    parse_state,
    read_config_generation,
    read_state,
    resolve_settings,
    redact_settings,
    restart_impact,
    settings_match,
    state_baseline,
    transition_error,
)
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_resource import ensure


def plan(params, live_config, state):
    """What the task will do, before writing: (mode, wanted settings, changed, current mode, restart)."""
    mode, wanted = resolve_settings(params, live_config)
    live = live_registry(live_config)
    changed = not settings_match(live, wanted)
    current = effective_mode(state["mode"]) if state["exists"] else live_mode(live)
    if changed and params.get("check_transition", True):
        error = transition_error(current, mode, is_configurable(wanted))
        if error:
            raise DkpError("Refusing to write the registry settings: %s" % error, current_mode=current)
    if changed and params.get("settings") is None:
        dropped = dropped_credentials(live, wanted)
        if dropped:
            raise DkpError("Refusing to write the registry settings: %s" % dropped, current_mode=current)
    return mode, wanted, changed, current, restart_impact(current, mode, changed)


def check_no_other_switch(client, mode, first, restore=False):
    """Re-read registry-state just before the write: a switch toward another target (a racing run, an
    operator) makes this run fail at once instead of overwriting it. A rollback (`settings`, the restore
    point) back to the mode still in effect is this run undoing its own switch, not a race."""
    state = read_state(client)
    target = state.get("target_mode")
    if restore and state["exists"] and effective_mode(state.get("mode") or "") == effective_mode(mode):
        return state
    if state["exists"] and target and effective_mode(target) != effective_mode(mode) and (
            state["in_progress"] or target != first.get("target_mode")):
        raise DkpError("Refusing to write the registry settings: registry-state shows a switch to %s (%s), not to "
                       "%s. Another run (or an operator) is switching the registry; only one switch may run at a "
                       "time (deckhouse.platform.run_lock). Wait until it completes, then run again."
                       % (target, state["message"], mode), state=state)
    return state


def local_push(client):
    """Instructions for Local; a refused read of the rw Secret only loses the login name."""
    try:
        global_config = client.get("ModuleConfig", "global")
    except DkpError:
        global_config = None
    try:
        rw = client.get("Secret", RW_USER_SECRET, NAMESPACE)
    except DkpError:
        rw = None
    return local_push_instructions(global_config, rw)


def protect_settings(module, settings):
    """Mask the license/password inside `settings` everywhere in the output, like no_log parameters (a no_log
    dict would mask every value in it, even the mode)."""
    for values in (settings or {}).values():
        if isinstance(values, dict):
            for key in ("license", "password"):
                if values.get(key) not in (None, ""):
                    module.ansible.no_log_values.add(str(values[key]))


def run(module):
    params = module.params
    client = module.client
    protect_settings(module, params.get("settings"))
    if params.get("return_restore_point") and not module.ansible.no_log:
        raise DkpError("return_restore_point returns the registry license/password in clear: set `no_log: true` "
                       "on the task")
    config = client.get("ModuleConfig", DECKHOUSE_CONFIG)
    state_secret = client.get("Secret", STATE_SECRET, NAMESPACE)
    state = parse_state(state_secret)
    live = live_registry(config)
    result = {"settings_before": redact_settings(live)}
    if params.get("return_restore_point"):
        result["restore_point"] = live

    if params["write"]:
        mode, wanted, needs_write, current, restart = plan(params, config, state)
    else:
        mode = params["mode"] or live_mode(params.get("settings"))
        wanted = None
        needs_write = False
        current = effective_mode(state["mode"]) if state["exists"] else live_mode(live)
        restart = restart_impact(current, mode, False)

    def desired(obj):
        now = live_registry(obj)
        if settings_match(now, wanted):
            return obj
        if not settings_match(now, live):
            raise DkpError("Refusing to write the registry settings: spec.settings.registry of ModuleConfig "
                           "deckhouse changed while this task ran (another run or an operator); run again")
        return desired_config(obj, wanted)

    result.update(mode=mode, current_mode=current, restart=restart)
    generation = None
    if needs_write:
        if not module.check_mode:
            state = check_no_other_switch(client, mode, state, restore=params.get("settings") is not None)
            generation = read_config_generation(client)
        try:
            res = ensure(client, "ModuleConfig", DECKHOUSE_CONFIG, desired, check_mode=module.check_mode)
        except ApiError as e:
            denied = explain_denial(e, mode)
            if denied:
                raise denied
            raise
        changed, method, after = res.changed, res.method, res.after
    else:
        changed, method, after = False, "none", config
    written = changed and not module.check_mode
    result.update(changed=changed, method=method, settings=redact_settings(live_registry(after)))
    if module.diff_mode and changed:
        result["diff"] = {"before": {"registry": result["settings_before"]},
                          "after": {"registry": result["settings"]}}
    baseline = state_baseline(state, written, generation)
    if written:
        baseline["module_config_generation"] = ((after or {}).get("metadata") or {}).get("generation")
    if not written and params.get("baseline"):
        baseline = dict(params["baseline"])
    result["wait_baseline"] = baseline
    if mode == "Local":
        result["local_push"] = local_push(client)
    if not changed:
        result["restart"] = restart_impact(current, mode, False)

    if params["wait"] and not module.check_mode:
        configurable = is_configurable(wanted) if wanted is not None else bool(params.get("images_repo"))
        waited, error = follow_switch(client, mode, baseline, params["wait_timeout"], params["images_wait_timeout"],
                                      push=result.get("local_push"), configurable=configurable)
        result.update(waited)
        if error is not None:
            extra = {k: v for k, v in error.details.items() if k not in result}
            raise type(error)(error.msg, **dict(result, **extra))
        if params["settle"]:
            from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_gates import settle_after_switch

            settled, failure = settle_after_switch(client, mode, params["settle"], params["settle_timeout"])
            result.update(settled)
            if failure:
                raise DkpError(failure, **result)
    return result


def main():
    module = DkpModule(
        argument_spec=dict(
            mode=dict(type="str", choices=["Unmanaged", "Direct", "Proxy", "Local"]),
            images_repo=dict(type="str"),
            scheme=dict(type="str", choices=["HTTP", "HTTPS"]),
            license=dict(type="str", no_log=True),
            username=dict(type="str"),
            password=dict(type="str", no_log=True),
            ca=dict(type="str"),
            image_check_mode=dict(type="str", choices=["Default", "Relax"], aliases=["check_mode"],
                                  deprecated_aliases=[dict(name="check_mode", version="1.0.0",
                                                           collection_name="deckhouse.platform")]),
            ttl=dict(type="str", no_log=False),
            from_current=dict(type="bool", default=False),
            settings=dict(type="dict", no_log=False),  # its license/password are registered as no_log values
            return_restore_point=dict(type="bool", default=False),
            write=dict(type="bool", default=True),
            check_transition=dict(type="bool", default=True),
            wait=dict(type="bool", default=False),
            wait_timeout=dict(type="int", default=1800),
            images_wait_timeout=dict(type="int", default=3600),
            baseline=dict(type="dict"),
            settle=dict(type="list", elements="str", choices=["module_ready", "queue_empty"], default=[]),
            settle_timeout=dict(type="int", default=300),
        ),
        supports_check_mode=True,
        positive_params=("images_wait_timeout", "settle_timeout"),
        required_one_of=[("mode", "settings")],
        mutually_exclusive=[("settings", name) for name in ("mode", "images_repo", "scheme", "license", "username",
                                                            "password", "ca", "image_check_mode", "ttl", "from_current")],
    )
    module.run(lambda: run(module))


if __name__ == "__main__":
    main()
