#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

DOCUMENTATION = r"""
module: registry_switch_preflight
short_description: Check that a DKP cluster is fit for a registry switch and plan it (hops, restart gate)
version_added: 0.2.0
description:
  - One read of everything a registry switch must know before it writes - the checks below, the hops to make,
    what DKP will restart and whether that needs a confirmation, the registry parameters of every hop
    validated (and the first hop sent as a server dry-run), and every reason to refuse, in RV(blockers).
    A runbook calls it once instead of reading and re-deriving those facts itself.
  - Formerly C(deckhouse.platform.preflight); that name stays as an alias (meta/runtime.yml plugin_routing).
  - C(control_plane_ready) - every node labelled C(node-role.kubernetes.io/control-plane) (falling back to
    C(node-role.kubernetes.io/master)) is Ready and not cordoned (C(SchedulingDisabled)).
  - C(queue_empty) - Deckhouse's queue is empty, optionally waiting up to O(queue_wait_timeout) seconds for
    it to drain. A failing task (C(:failures N:) in its description, or a queue backing off with
    C(sleep after fail for ...)) fails the check at once - it will not drain by itself. While Deckhouse
    restarts (its debug API refuses connections) the read is retried for up to O(leader_wait_timeout).
  - C(module_ready) - the Module O(module_name) is enabled and Ready (phase C(Ready), C(IsReady=True)),
    optionally waiting up to O(module_wait_timeout) seconds (for the check after a switch).
  - C(registry_transition) - the move from the current registry mode to O(target_mode) is one DKP supports
    (Local and Proxy only through Direct or Unmanaged, which DKP 1.75+ also enforces at admission;
    non-configurable Unmanaged not from Local), directly or through O(via); and no other switch is in progress.
    A switch already under way toward O(target_mode) (or O(via)) passes as a resume.
  - With O(target_mode), when there is nothing new to start (the settings already match and the switch is
    complete, or a switch of ours is resumed) the gate checks C(control_plane_ready), C(queue_empty) and
    C(module_ready) are not run (reported with C(skipped=true)); a busy queue during a switch is normal.
  - Every check runs even when an earlier one fails; the task then fails with every blocker listed, each with
    what to do about it (use C(failed_when=false) to report instead).
  - Read-only (the dry-run writes nothing; with O(run_lock) the lock's Lease is the one write); runs unchanged in
    check mode.
author: deckhouse.platform contributors (@deckhouse)
options:
  checks:
    description: The checks to run.
    type: list
    elements: str
    choices: [control_plane_ready, queue_empty, module_ready, registry_transition]
    default: [control_plane_ready, queue_empty, module_ready, registry_transition]
  queue_wait_timeout:
    description:
      - Seconds C(queue_empty) waits for a busy queue to drain; V(0) checks once.
    type: int
    default: 0
  leader_wait_timeout:
    description: Seconds C(queue_empty) retries while the Deckhouse leader pod is replaced or restarts.
    type: int
    default: 60
  module_name:
    description: The Module C(module_ready) checks.
    type: str
    default: registry
  module_wait_timeout:
    description: Seconds C(module_ready) waits for the Module to become Ready; V(0) checks once.
    type: int
    default: 0
  target_mode:
    description: The registry mode C(registry_transition) checks the move to and the plan is made for.
    type: str
    choices: [Unmanaged, Direct, Proxy, Local]
  target_configurable:
    description:
      - For O(target_mode=Unmanaged) - whether the target is a configurable Unmanaged (with an C(unmanaged)
        section) or the non-configurable one. Default - configurable when O(images_repo) is given.
    type: bool
  via:
    description:
      - An intermediate mode that makes an unsupported move possible in two hops (Local to Proxy via Direct).
        The first hop takes O(images_repo) and the credentials when given, else carries the current ones over.
    type: str
    choices: [Direct, Unmanaged]
  images_repo:
    description:
      - The registry parameters of the switch (as in M(deckhouse.platform.registry_mode)), validated for every hop.
      - Without any registry parameter (and a target other than Local or non-configurable Unmanaged) only the
        transition is judged, and the restart gate assumes the mode changes.
    type: str
  scheme:
    description: See M(deckhouse.platform.registry_mode).
    type: str
    choices: [HTTP, HTTPS]
  license:
    description: See M(deckhouse.platform.registry_mode). Never shown.
    type: str
  username:
    description: Registry user (not the API server's); see M(deckhouse.platform.registry_mode).
    type: str
  password:
    description: Registry password (not the API server's). Never shown.
    type: str
  ca:
    description: See M(deckhouse.platform.registry_mode).
    type: str
  image_check_mode:
    description: DKP's image check mode (C(checkMode)); see M(deckhouse.platform.registry_mode).
    type: str
    choices: [Default, Relax]
  ttl:
    description: Proxy cache ttl; see M(deckhouse.platform.registry_mode).
    type: str
  dry_run:
    description: Send the first hop's settings as a server dry-run (DKP's admission and webhooks judge them).
    type: bool
    default: true
  confirm_restart:
    description:
      - Accept a switch that restarts every DKP component (the first switch away from Unmanaged, or a change in
        Unmanaged mode). V(false) makes such a switch a blocker; unset, the gate is only reported in
        RV(restart_gate) (the behaviour of the old C(preflight) name).
    type: bool
  run_lock:
    description:
      - Take the cluster's run lock (the Lease of M(deckhouse.platform.run_lock)) before anything is read, so a
        runbook needs no task of its own for it. A lock held by another run fails the task at once (or after
        O(run_lock.max_wait)) naming the holder; nothing else is checked then.
      - When the preflight then fails (a blocker or an error), the lock is released again before the task fails
        - nothing was written. When it passes, RV(lock) names the holder; release it with
        M(deckhouse.platform.run_lock) (O(deckhouse.platform.run_lock#module:state=released)) when the run ends.
      - The Lease is the only write of this module; it is not reported as a change. In check mode nothing is
        written; C(would) in RV(lock) says what a real run would do.
    type: dict
    version_added: 0.2.0
    suboptions:
      name:
        description: Name of the Lease.
        type: str
        default: deckhouse-platform-runbook
      namespace:
        description: Namespace of the Lease.
        type: str
        default: d8-system
      job_id:
        description: The AWX job id, part of the holder's identity (see M(deckhouse.platform.run_lock)).
        type: str
      purpose:
        description: What the run does, kept in the Lease for whoever finds it held.
        type: str
      lease_duration:
        description: Seconds the lock stays valid without renewal (a killed run frees it after that).
        type: int
        default: 900
      max_wait:
        description: Seconds to wait for a lock held by another run; V(0) fails at once naming the holder.
        type: int
        default: 0
        aliases: [wait_timeout]
      break_lock:
        description: Take over a lock held by another run (that run is gone, e.g. a killed AWX job).
        type: bool
        default: false
extends_documentation_fragment:
  - deckhouse.platform.connection
  - deckhouse.platform.attributes
  - deckhouse.platform.attributes.READ_ONLY
seealso:
  - module: deckhouse.platform.registry_mode
  - module: deckhouse.platform.registry_state_info
"""

EXAMPLES = r"""
- name: Is the cluster fit for a switch to Proxy, and what will it take?
  deckhouse.platform.registry_switch_preflight:
    target_mode: Proxy
    images_repo: registry.deckhouse.io/deckhouse/ee
    license: "{{ dkp_license }}"
    queue_wait_timeout: 300
  register: plan
  failed_when: false

- name: Refuse with every reason at once
  ansible.builtin.assert:
    that: plan.blockers | length == 0
    fail_msg: "{{ plan.blockers | join(' || ') }}"

- name: After a switch - the registry module Ready and the queue drained (waits, no retries needed)
  deckhouse.platform.registry_switch_preflight:
    checks: [module_ready, queue_empty]
    module_wait_timeout: 300
    queue_wait_timeout: 300
"""

RETURN = r"""
checks:
  description: One entry per check run, keyed by check name.
  returned: always
  type: dict
  contains:
    passed:
      description: Whether the check passed.
      type: bool
    skipped:
      description: The check was not needed (nothing new to start).
      type: bool
    message:
      description: What was found and, on failure, what to do.
      type: str
    details:
      description: The facts behind it (nodes, queue, module status, modes).
      type: dict
failed_checks:
  description: Names of the checks that failed.
  returned: always
  type: list
  elements: str
blockers:
  description:
    - "Every reason to refuse the switch, as C(<what>: <message>) - failed checks, invalid parameters of a hop, the
      dry-run's refusal, the restart gate."
  returned: always
  type: list
  elements: str
passed:
  description: No blockers.
  returned: always
  type: bool
hops:
  description:
    - The writes to make in order, each C(mode), C(params) (take the task's registry parameters),
      C(from_current) (carry the current ones over) and C(ttl) (take O(ttl)). Empty without O(target_mode) or
      when the move is refused.
  returned: always
  type: list
  elements: dict
current_mode:
  description: The mode the cluster runs now (registry-state C(mode), else the ModuleConfig's).
  returned: when target_mode is set
  type: str
noop:
  description: The settings already match the target and the switch is complete - nothing to do.
  returned: when target_mode is set
  type: bool
resuming:
  description: A switch toward O(target_mode) (or O(via)) is already under way - the runbook waits for it.
  returned: when target_mode is set
  type: bool
restart:
  description: What the first write restarts - C(deckhouse), C(all_components), C(reason).
  returned: when target_mode is set
  type: dict
restart_gate:
  description: C(needed) (the switch restarts every DKP component), C(confirmed) (O(confirm_restart)), C(reason).
  returned: when target_mode is set
  type: dict
plan:
  description: The first hop's write - C(mode), C(changed), C(method) of the dry-run.
  returned: when target_mode is set
  type: dict
settings_before:
  description: C(spec.settings.registry) now, license and password redacted.
  returned: when target_mode is set
  type: dict
state:
  description: The registry-state summary now (see M(deckhouse.platform.registry_state_info)).
  returned: when target_mode is set
  type: dict
lock:
  description:
    - The run lock (as M(deckhouse.platform.run_lock) returns it) - C(acquired), C(holder), C(lease); after a
      failed preflight C(released). In check mode C(would) (acquire, renew, break, wait or fail).
  returned: when run_lock is set
  type: dict
"""

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_base import DkpModule
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import (
    ApiError,
    AuthError,
    DkpError,
    UnreachableError,
)
from ansible_collections.deckhouse.platform.plugins.module_utils import dkp_lock
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_gates import (
    check_control_plane,
    check_module,
    check_queue,
    result,
)
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_registry import (
    DECKHOUSE_CONFIG,
    NAMESPACE,
    STATE_SECRET,
    desired_config,
    dropped_credentials,
    effective_mode,
    explain_denial,
    live_mode,
    live_registry,
    parse_state,
    plan_hops,
    redact_settings,
    resolve_settings,
    restart_impact,
    settings_match,
)

REGISTRY_PARAMS = ("images_repo", "scheme", "license", "username", "password", "ca", "image_check_mode", "ttl")
GATES = ("control_plane_ready", "queue_empty", "module_ready")
# Problems that make every other check pointless: the cluster cannot be reached or rejects the credentials.
FATAL = (AuthError, UnreachableError)


CHECKS = ("control_plane_ready", "queue_empty", "module_ready", "registry_transition")


def evaluate_transition(state, live_settings, target, configurable=True, via=None):
    """The registry_transition verdict (pure): state summary and live spec.settings.registry."""
    current = effective_mode(state["mode"]) if state["exists"] else live_mode(live_settings)
    details = {"current_mode": current, "target_mode": target, "via": via, "state": state["message"],
               "in_progress": state["in_progress"], "state_target_mode": state["target_mode"], "resuming": False}
    if state["in_progress"]:
        ours = [m for m in (target, via) if m]
        if effective_mode(state["target_mode"]) in ours:
            details["resuming"] = True
            hops = [target] if effective_mode(state["target_mode"]) == target else [via, target]
            return result(True, "a switch to %s is already in progress (%s): resuming it"
                          % (state["target_mode"], state["message"]), hops=hops, **details)
        return result(False, "another registry switch is in progress: %s. Wait until it completes (or fails) "
                      "before starting a switch to %s" % (state["message"], target), hops=None, **details)
    hops, error = plan_hops(current, target, configurable, via)
    if error:
        return result(False, error, hops=None, **details)
    if len(hops) == 2:
        return result(True, "%s to %s is not supported directly; going through %s" % (current, target, via),
                      hops=hops, **details)
    return result(True, "the switch from %s to %s is supported" % (current, target), hops=hops, **details)


def hop_list(hops, target, via, params):
    """The hops in the shape runbooks feed to registry_mode: which parameters each one takes."""
    given = bool(params.get("images_repo"))
    final = {"mode": target, "params": target != "Local", "from_current": False, "ttl": True}
    if hops and len(hops) == 2:
        return [{"mode": via, "params": given, "from_current": True, "ttl": False}, final]
    return [final] if hops else []


def hop_params(hop, params):
    """registry_mode parameters of one hop (what the runbook will send)."""
    out = {"mode": hop["mode"], "settings": None, "from_current": hop["from_current"]}
    for name in REGISTRY_PARAMS:
        value = params.get(name) if hop["params"] else None
        if name == "ttl":
            value = params.get(name) if hop["ttl"] else None
        out[name] = value
    return out


def dry_run(client, wanted, live, target):
    """Send the first hop as a server dry-run; (method, blocker or None)."""
    from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_resource import ensure

    def desired(obj):
        return obj if settings_match(live_registry(obj), wanted) else desired_config(obj, wanted)
    try:
        res = ensure(client, "ModuleConfig", DECKHOUSE_CONFIG, desired, check_mode=True)
    except ApiError as e:
        if isinstance(e, FATAL):
            raise
        denied = explain_denial(e, target)
        return None, "dry_run: %s" % (denied.msg if denied else "DKP refused the registry settings: %s" % e.msg)
    return res.method, None


def plan_switch(client, params, config, state, checks):
    """The plan part of the result and its blockers (pure but for the dry-run)."""
    target, via = params["target_mode"], params.get("via")
    live = live_registry(config)
    configurable = params["target_configurable"]
    if configurable is None:
        configurable = target != "Unmanaged" or bool(params.get("images_repo"))
    current = effective_mode(state["mode"]) if state["exists"] else live_mode(live)
    transition = evaluate_transition(state, live, target, configurable, via)
    blockers = []
    if "registry_transition" in checks:
        checks["registry_transition"] = transition
    elif not transition["passed"]:
        blockers.append("registry_transition: %s" % transition["message"])
    modes = transition["details"].get("hops") or []
    hops = hop_list(modes, target, via, params)
    out = {"current_mode": current, "state": state, "settings_before": redact_settings(live), "hops": hops,
           "resuming": bool(transition["details"].get("resuming")), "noop": False,
           "restart": restart_impact(current, target, False), "plan": None}
    previous, before_mode = config, current
    wanted_first = None
    # without any registry parameter only the transition is judged (the old `preflight` behaviour),
    # unless the target needs none (Local, non-configurable Unmanaged)
    planning = any(params.get(n) not in (None, "") for n in REGISTRY_PARAMS) or target == "Local" or not configurable
    if not planning and hops:
        changed = effective_mode(hops[0]["mode"]) != current
        out["restart"] = restart_impact(current, hops[0]["mode"], changed)
        out["plan"] = {"mode": hops[0]["mode"], "changed": changed, "method": None}
        out["noop"] = len(hops) == 1 and not changed and (not state["exists"] or state["complete"])
        hops = []
    for index, hop in enumerate(hops):
        try:
            mode, wanted = resolve_settings(hop_params(hop, params), previous)
        except DkpError as e:
            blockers.append("parameters (%s): %s" % (hop["mode"], e.msg))
            break
        prev_registry = live_registry(previous)
        changed = not settings_match(prev_registry, wanted)
        dropped = dropped_credentials(prev_registry, wanted) if changed else None
        if dropped:
            blockers.append("parameters (%s): %s" % (hop["mode"], dropped))
        if index == 0:
            wanted_first = wanted
            out["restart"] = restart_impact(before_mode, mode, changed)
            out["plan"] = {"mode": mode, "changed": changed, "method": "none" if not changed else None}
            out["noop"] = (len(hops) == 1 and not changed and (not state["exists"] or state["complete"]))
        elif restart_impact(before_mode, mode, changed)["all_components"] and not out["restart"]["all_components"]:
            out["restart"] = restart_impact(before_mode, mode, changed)
        previous, before_mode = desired_config(previous, wanted), mode
    gate = {"needed": bool(out["restart"].get("all_components")) and not out["resuming"],
            "confirmed": bool(params["confirm_restart"]), "reason": out["restart"].get("reason")}
    out["restart_gate"] = gate
    if gate["needed"] and params["confirm_restart"] is False:
        blockers.append("confirm_restart: %s. That interrupts the whole platform for a while: plan a window, then "
                        "confirm the restart (confirm_restart: true; role: registry_switch_confirm_restart: true)"
                        % gate["reason"])
    if (params["dry_run"] and wanted_first is not None and not blockers and out["plan"]["changed"]
            and not out["resuming"] and transition["passed"]):
        method, refused = dry_run(client, wanted_first, live, hops[0]["mode"])
        out["plan"]["method"] = method
        if refused:
            blockers.append(refused)
    return out, blockers


RUNNERS = {
    "control_plane_ready": lambda client, p: check_control_plane(client),
    "queue_empty": lambda client, p: check_queue(client, p["queue_wait_timeout"], p["leader_wait_timeout"]),
    "module_ready": lambda client, p: check_module(client, p["module_name"], p["module_wait_timeout"]),
}


def take_lock(module, spec):
    """The run lock (options of M(deckhouse.platform.run_lock)) before anything is read: a run that is not
    alone stops here. Check mode only reports what a real run would do."""
    holder = dkp_lock.default_holder(spec.get("job_id"))
    lock = dkp_lock.acquire(module.client, spec["name"], holder, spec["lease_duration"], spec["max_wait"],
                            namespace=spec["namespace"], purpose=spec.get("purpose"), check_mode=module.check_mode,
                            break_lock=spec["break_lock"])
    warning = dkp_lock.takeover_warning(lock)
    if warning:
        module.warn(warning)
    # the Lease is the run's own bookkeeping, not a change of the cluster
    lock["changed"] = False
    return lock


def release_lock(module, spec, lock):
    try:
        freed = dkp_lock.release(module.client, spec["name"], lock["holder"], namespace=spec["namespace"])
    except DkpError as e:  # the Lease then expires by itself; the refusal is what the run must see
        return dict(lock, released=False, release_error=e.msg)
    return dict(lock, acquired=False, released=freed.get("released", False))


def run(module):
    spec = module.params.get("run_lock")
    if not spec:
        return run_checks(module)
    try:
        dkp_lock.check_name(spec["name"], spec["namespace"])
        dkp_lock.check_ttl(spec["lease_duration"], spec["max_wait"])
    except DkpError as e:
        raise DkpError("run_lock: %s" % e.msg)
    lock = take_lock(module, spec)
    if not lock.get("acquired"):
        return dict(run_checks(module), lock=lock)
    try:
        out = run_checks(module)
    except DkpError as e:
        # nothing was written: the lock goes back at once, so the next run need not wait for its expiry
        e.details["lock"] = release_lock(module, spec, lock)
        raise
    out["lock"] = lock
    return out


def run_checks(module):
    params = module.params
    names = []
    for name in params["checks"]:
        if name not in names:
            names.append(name)
    if "registry_transition" in names and not params.get("target_mode"):
        raise DkpError("The registry_transition check needs `target_mode` (Unmanaged, Direct, Proxy or Local)")
    client = module.client
    checks = {}
    out = {"hops": []}
    blockers = []
    if params.get("target_mode"):
        # one read of the registry facts; a resumed or finished switch needs no gates
        config = client.get("ModuleConfig", DECKHOUSE_CONFIG)
        state = parse_state(client.get("Secret", STATE_SECRET, NAMESPACE))
        if "registry_transition" in names:
            checks["registry_transition"] = None
        plan, blockers = plan_switch(client, params, config, state, checks)
        out.update(plan)
    for name in names:
        if name == "registry_transition":
            continue
        if name in GATES and params.get("target_mode") and (out.get("noop") or out.get("resuming")):
            why = "nothing to do" if out.get("noop") else "resuming the switch already in progress"
            checks[name] = dict(result(True, "not needed: %s" % why), skipped=True)
            continue
        try:
            checks[name] = RUNNERS[name](client, params)
        except FATAL:
            raise  # no point in running the other checks
        except DkpError as e:
            checks[name] = result(False, e.msg)
    ordered = {n: checks[n] for n in names if n in checks}
    failed = [n for n in names if n in ordered and not ordered[n]["passed"]]
    blockers = ["%s: %s" % (n, ordered[n]["message"]) for n in failed] + blockers
    out.update(checks=ordered, failed_checks=failed, blockers=blockers, passed=not blockers, changed=False)
    if blockers:
        msg = "Preflight refused%s (%d problem(s)): %s" % (
            " the registry switch to %s" % params["target_mode"] if params.get("target_mode") else "",
            len(blockers), " || ".join(blockers))
        raise DkpError(msg, **{k: v for k, v in out.items() if k != "changed"})
    return out


def main():
    module = DkpModule(
        argument_spec=dict(
            checks=dict(type="list", elements="str", choices=list(CHECKS), default=list(CHECKS)),
            queue_wait_timeout=dict(type="int", default=0),
            leader_wait_timeout=dict(type="int", default=60),
            module_name=dict(type="str", default="registry"),
            module_wait_timeout=dict(type="int", default=0),
            target_mode=dict(type="str", choices=["Unmanaged", "Direct", "Proxy", "Local"]),
            target_configurable=dict(type="bool"),
            via=dict(type="str", choices=["Direct", "Unmanaged"]),
            images_repo=dict(type="str"),
            scheme=dict(type="str", choices=["HTTP", "HTTPS"]),
            license=dict(type="str", no_log=True),
            username=dict(type="str"),
            password=dict(type="str", no_log=True),
            ca=dict(type="str"),
            image_check_mode=dict(type="str", choices=["Default", "Relax"]),
            ttl=dict(type="str", no_log=False),
            dry_run=dict(type="bool", default=True),
            confirm_restart=dict(type="bool"),
            run_lock=dict(type="dict", options=dict(
                name=dict(type="str", default=dkp_lock.DEFAULT_NAME),
                namespace=dict(type="str", default=dkp_lock.DEFAULT_NAMESPACE),
                job_id=dict(type="str"),
                purpose=dict(type="str"),
                lease_duration=dict(type="int", default=dkp_lock.DEFAULT_TTL),
                max_wait=dict(type="int", default=0, aliases=["wait_timeout"]),
                break_lock=dict(type="bool", default=False),
            )),
        ),
        supports_check_mode=True,
        non_negative_params=("queue_wait_timeout", "leader_wait_timeout", "module_wait_timeout"),
    )
    module.run(lambda: run(module))


if __name__ == "__main__":
    main()
