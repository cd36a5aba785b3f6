# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The registry module of DKP: settings, transition rules and the switch state (dkp-spec.md §4).

Pure logic, importable on the controller (action plugin, lookup) and in modules:

* building and validating ModuleConfig ``deckhouse`` ``spec.settings.registry`` from task parameters,
  with DKP's own messages, so a bad request fails before anything is written;
* the transition rules DKP only reports after the fact (``ErrTransitionNotSupported``);
* reading Secret ``d8-system/registry-state`` without ever touching its ``state`` key;
* following a switch: which observed states belong to *our* write, condition changes for live
  progress, completion, fail-fast errors and the timeout message.
"""

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import base64
import binascii
import copy
import hashlib
import json
import re

try:
    from ansible.module_utils.common.yaml import yaml_load
    HAS_YAML = True
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    HAS_YAML = False

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import DkpError, NO_LOG_MARKER

NAMESPACE = "d8-system"
STATE_SECRET = "registry-state"
RW_USER_SECRET = "registry-user-rw"
DECKHOUSE_CONFIG = "deckhouse"
REGISTRY_MODULE = "registry"
SETTINGS_VERSION = 1  # settings schema version of the `deckhouse` module that carries `registry`

MODES = ("Unmanaged", "Direct", "Proxy", "Local")
SECTIONS = {"Direct": "direct", "Proxy": "proxy", "Unmanaged": "unmanaged"}
SCHEMES = ("HTTP", "HTTPS")
CHECK_MODES = ("Default", "Relax")
DEFAULT_SCHEME = "HTTPS"
DEFAULT_CHECK_MODE = "Default"
MIN_TTL_SECONDS = 300

# Task parameter -> key of the registry section.
PARAM_KEYS = (("images_repo", "imagesRepo"), ("scheme", "scheme"), ("license", "license"),
              ("username", "username"), ("password", "password"), ("ca", "ca"),
              ("check_mode", "checkMode"), ("ttl", "ttl"))
SECRET_KEYS = ("license", "password")

IMAGES_REPO_RE = re.compile(r"^[0-9a-zA-Z\.\-]+(\:[0-9]{1,5})?(\/[0-9a-zA-Z\.\-\_]+)*$")
TTL_RE = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")

# Condition types (modules/038-registry/hooks/orchestrator/const.go).
READY = "Ready"
IMAGES = "RegistryContainsRequiredImages"
PREFLIGHT = "ContainerdConfigPreflightReady"
TRANSITION = "TransitionContainerdConfigReady"
IN_CLUSTER_PROXY = "InClusterProxyReady"
NODE_SERVICES = "NodeServicesReady"
SWITCH = "DeckhouseRegistrySwitchReady"
FINAL = "FinalContainerdConfigReady"
CLEANUP_NODE_SERVICES = "CleanupNodeServices"
CLEANUP_IN_CLUSTER_PROXY = "CleanupInClusterProxy"
ERR_TRANSITION = "ErrTransitionNotSupported"

# The documented step order per target mode (dkp-spec.md §4.2), used to name steps not reached yet.
STEPS = {
    "Direct": (IMAGES, PREFLIGHT, TRANSITION, IN_CLUSTER_PROXY, SWITCH, FINAL, CLEANUP_NODE_SERVICES, READY),
    "Proxy": (IMAGES, PREFLIGHT, TRANSITION, NODE_SERVICES, SWITCH, FINAL, CLEANUP_IN_CLUSTER_PROXY, READY),
    "Local": (IMAGES, PREFLIGHT, TRANSITION, NODE_SERVICES, SWITCH, FINAL, CLEANUP_IN_CLUSTER_PROXY, READY),
    "Unmanaged": (READY,),
}


# -- settings ---------------------------------------------------------------------------------------


def ttl_seconds(value):
    """Seconds of a DKP ttl like `1h30m`, or None when it is not in that format."""
    match = TTL_RE.match(str(value or ""))
    if not match or not any(match.groups()):
        return None
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def section_params(params):
    """The registry section keys given in the task parameters (None and '' mean not given)."""
    return {key: params[name] for name, key in PARAM_KEYS if params.get(name) not in (None, "")}


def build_settings(mode, params):
    """spec.settings.registry for `mode` and the task parameters; no validation."""
    registry = {"mode": mode}
    section = SECTIONS.get(mode)
    values = section_params(params)
    if section and (mode != "Unmanaged" or values):
        registry[section] = values
    return registry


def is_configurable(settings):
    """Unmanaged with an `unmanaged` section is configurable; every other mode counts as configurable."""
    settings = settings or {}
    return live_mode(settings) != "Unmanaged" or bool(settings.get("unmanaged"))


def live_mode(settings):
    return (settings or {}).get("mode") or "Unmanaged"


def validate_settings(registry):
    """Every rule DKP enforces on spec.settings.registry, with DKP's messages; a list of errors."""
    errors = []
    mode = live_mode(registry)
    if mode not in MODES:
        return ["registry.mode should be one of [%s], got %r" % (" ".join(MODES), mode)]
    for mode_name, section in SECTIONS.items():
        if mode == mode_name and section not in registry and mode != "Unmanaged":
            errors.append("registry: when mode is '%s', '%s' section must be specified." % (mode_name, section))
        if mode != mode_name and section in registry:
            errors.append("registry: when mode is not '%s', '%s' section must be omitted." % (mode_name, section))
    section = SECTIONS.get(mode)
    values = registry.get(section) if section else None
    if not isinstance(values, dict):
        return errors
    repo = values.get("imagesRepo")
    if not repo:
        errors.append("registry.%s: 'imagesRepo' is required." % section)
    elif re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", str(repo)):
        errors.append("registry.%s.imagesRepo %r must not contain a scheme: give the repository as host[:port]/path "
                      "and the scheme in `scheme` (HTTP or HTTPS)" % (section, repo))
    elif not IMAGES_REPO_RE.match(str(repo)):
        errors.append("registry.%s.imagesRepo %r should match '%s'" % (section, repo, IMAGES_REPO_RE.pattern))
    if values.get("scheme") not in (None,) + SCHEMES:
        errors.append("registry.%s.scheme should be one of [HTTP HTTPS], got %r" % (section, values["scheme"]))
    if values.get("checkMode") not in (None,) + CHECK_MODES:
        errors.append("registry.%s.checkMode should be one of [Default Relax], got %r" % (section, values["checkMode"]))
    if values.get("username") and not values.get("password"):
        errors.append("'password' is required when 'username' is provided.")
    if values.get("password") and not values.get("username"):
        errors.append("'username' is required when 'password' is provided.")
    if values.get("license") and (values.get("username") or values.get("password")):
        errors.append("'license' and 'username'/'password' are mutually exclusive.")
    ca = values.get("ca")
    if ca and "-----BEGIN CERTIFICATE-----" not in str(ca):
        errors.append("registry.%s.ca must be a PEM certificate (-----BEGIN CERTIFICATE----- ...)" % section)
    if "ttl" in values:
        if section != "proxy":
            errors.append("registry.%s: 'ttl' is only a setting of mode Proxy" % section)
        else:
            seconds = ttl_seconds(values["ttl"])
            if seconds is None:
                errors.append("registry.proxy.ttl %r should match '%s' (for example 24h or 30m)"
                              % (values["ttl"], TTL_RE.pattern))
            elif seconds < MIN_TTL_SECONDS:
                errors.append("registry.proxy: 'ttl' should be at least 5 minutes.")
    return errors


def check_params(mode, params):
    """Task-level checks on top of validate_settings; raises DkpError listing every problem."""
    values = section_params(params)
    errors = []
    if mode == "Local" and values:
        errors.append("mode Local has no registry parameters (images are pushed into the in-cluster registry): "
                      "remove %s" % ", ".join(sorted(n for n, k in PARAM_KEYS if k in values)))
    elif mode != "Proxy" and "ttl" in values:
        errors.append("ttl is a parameter of mode Proxy only")
    else:
        errors.extend(validate_settings(build_settings(mode, params)))
    if errors:
        raise DkpError("Invalid registry settings for mode %s: %s" % (mode, " ".join(errors)))


def normalized(registry):
    """Registry settings with DKP's defaults applied, for comparing what the cluster would run."""
    registry = registry or {}
    mode = live_mode(registry)
    out = {"mode": mode}
    section = SECTIONS.get(mode)
    values = registry.get(section) if section else None
    if isinstance(values, dict) and values:
        norm = {k: v for k, v in values.items() if v not in (None, "")}
        norm.setdefault("scheme", DEFAULT_SCHEME)
        norm.setdefault("checkMode", DEFAULT_CHECK_MODE)
        if "ttl" in norm and ttl_seconds(norm["ttl"]) is not None:
            norm["ttl"] = ttl_seconds(norm["ttl"])
        out[section] = norm
    return out


def settings_match(live, wanted):
    """True when the live registry settings already say what `wanted` says (secrets compared by value)."""
    return normalized(live) == normalized(wanted)


def redact_settings(registry):
    """Registry settings safe to show: license and password replaced by the no_log marker."""
    registry = copy.deepcopy(registry or {})
    for key, values in registry.items():
        if isinstance(values, dict):
            for secret in SECRET_KEYS:
                if values.get(secret) not in (None, ""):
                    values[secret] = NO_LOG_MARKER
    return registry


def live_registry(config):
    """spec.settings.registry of ModuleConfig deckhouse (an empty dict when absent)."""
    settings = (((config or {}).get("spec") or {}).get("settings") or {})
    registry = settings.get("registry")
    return copy.deepcopy(registry) if isinstance(registry, dict) else {}


def desired_config(live, registry):
    """ModuleConfig deckhouse with spec.settings.registry replaced, everything else kept."""
    obj = copy.deepcopy(live) if live else {"apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleConfig",
                                            "metadata": {"name": DECKHOUSE_CONFIG}, "spec": {}}
    spec = obj.setdefault("spec", {})
    settings = spec.get("settings") if isinstance(spec.get("settings"), dict) else {}
    settings = dict(settings, registry=copy.deepcopy(registry))
    spec["settings"] = settings
    if not spec.get("version"):
        spec["version"] = SETTINGS_VERSION
    return obj


# -- transitions ---------------------------------------------------------------------------------------


def effective_mode(mode):
    """The orchestrator treats an empty mode as Unmanaged and the legacy Detached as Local."""
    if not mode:
        return "Unmanaged"
    return "Local" if mode == "Detached" else mode


def transition_error(current, target, configurable=True):
    """Why DKP will refuse the move from `current` to `target` (None when it is supported)."""
    current, target = effective_mode(current), effective_mode(target)
    if {current, target} == {"Local", "Proxy"}:
        return ("mode transition from %s to %s not supported: DKP moves between Local and Proxy only through "
                "Direct or Unmanaged; switch to Direct first (role registry_switch: `via: Direct`)"
                % (current, target))
    if target == "Unmanaged" and not configurable and current == "Local":
        return ("mode transition from Local to non-configurable Unmanaged not supported: give `images_repo` "
                "(and credentials) for a configurable Unmanaged registry")
    return None


def plan_hops(current, target, configurable=True, via=None):
    """The modes to set in order: [target], or [via, target] when the direct move is unsupported."""
    error = transition_error(current, target, configurable)
    if error is None or effective_mode(current) == effective_mode(target):
        return [target], None
    if not via:
        return None, error
    for step_from, step_to, conf in ((current, via, True), (via, target, configurable)):
        hop_error = transition_error(step_from, step_to, conf)
        if hop_error:
            return None, "via %s does not help: %s" % (via, hop_error)
    return [via, target], None


def restart_impact(current, target, settings_changed):
    """Which DKP components the switch restarts (dkp-spec.md §4.3)."""
    current, target = effective_mode(current), effective_mode(target)
    if not settings_changed:
        return {"deckhouse": False, "all_components": False, "reason": None}
    if current == "Unmanaged" and target != "Unmanaged":
        return {"deckhouse": True, "all_components": True,
                "reason": "the switch from Unmanaged to %s (the first switch away from Unmanaged) restarts all "
                          "DKP components" % target}
    if current == "Unmanaged" and target == "Unmanaged":
        return {"deckhouse": True, "all_components": True,
                "reason": "changing the registry in Unmanaged mode restarts all DKP components"}
    return {"deckhouse": True, "all_components": False,
            "reason": "changing the registry mode or its parameters restarts Deckhouse"}


# -- registry-state ------------------------------------------------------------------------------------


def _decode(data, key):
    raw = (data or {}).get(key)
    if raw in (None, ""):
        return None
    try:
        return base64.b64decode(raw).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None


def parse_conditions(text):
    """The `conditions` key (YAML list of metav1.Condition) as plain dicts; bad input gives []."""
    if not text or not HAS_YAML:
        return []
    try:
        data = yaml_load(text)
    except Exception:  # a YAML error must not break a wait; report no conditions instead
        return []
    if not isinstance(data, list):
        return []
    out = []
    for item in data:
        if isinstance(item, dict) and item.get("type"):
            out.append({
                "type": str(item.get("type")),
                "status": str(item.get("status") or "Unknown"),
                "reason": str(item.get("reason") or ""),
                "message": str(item.get("message") or ""),
                "last_transition_time": str(item.get("lastTransitionTime") or "") or None,
            })
    return out


def empty_state():
    summary = {"exists": False, "mode": None, "target_mode": None, "hash": None, "conditions": [],
               "complete": False, "in_progress": False, "pending": [], "failed_conditions": [], "transition_error": None,
               "message": "Secret d8-system/registry-state does not exist: the registry module is not in use "
                          "(or has not reconciled yet)"}
    summary["fingerprint"] = fingerprint(summary)
    return summary


def parse_state(secret):
    """Summary of Secret d8-system/registry-state. The `state` key is never read."""
    if not secret:
        return empty_state()
    data = secret.get("data") or {}
    conditions = parse_conditions(_decode(data, "conditions"))
    mode = _decode(data, "mode")
    target = _decode(data, "target_mode")
    by_type = {c["type"]: c for c in conditions}
    ready = by_type.get(READY, {}).get("status") == "True"
    err = by_type.get(ERR_TRANSITION)
    transition = (err["message"] or "mode transition not supported") if err and err["status"] == "True" else None
    complete = ready and bool(target) and effective_mode(mode) == effective_mode(target) and not transition
    pending = [c for c in conditions if c["status"] != "True" and c["type"] != ERR_TRANSITION]
    failed = [c for c in conditions
              if (c["type"] == ERR_TRANSITION and c["status"] == "True") or (c["reason"] == "Error" and c["status"] != "True")]
    summary = {
        "exists": True,
        "mode": mode,
        "target_mode": target,
        "hash": _decode(data, "hash"),
        "conditions": conditions,
        "complete": complete,
        "in_progress": bool(target) and not complete and not transition,
        "pending": pending,
        "failed_conditions": failed,
        "transition_error": transition,
        "message": describe_state_short(mode, target, complete, transition, pending),
    }
    summary["fingerprint"] = fingerprint(summary)
    return summary


def describe_state_short(mode, target, complete, transition, pending):
    if transition:
        return "switch to %s refused by DKP: %s" % (target, transition)
    if complete:
        return "mode %s, switch complete" % mode
    if not target:
        return "no target mode yet"
    return "switching from %s to %s; waiting for %s" % (
        effective_mode(mode), target, ", ".join(c["type"] for c in pending) or "the first condition")


def fingerprint(summary):
    """A short digest of what a watcher shows (never of `state`): equal digests mean nothing to report."""
    view = {k: summary.get(k) for k in ("exists", "mode", "target_mode", "hash")}
    view["conditions"] = sorted((c["type"], c["status"], c["reason"], c["message"])
                                for c in summary.get("conditions") or [])
    return hashlib.sha256(json.dumps(view, sort_keys=True).encode()).hexdigest()[:16]


def one_line(message, limit=400):
    text = "; ".join(line.strip() for line in str(message or "").splitlines() if line.strip())
    return text if len(text) <= limit else text[:limit] + "..."


def format_condition(cond):
    """`NodeServicesReady: False — master-1: …` (the message only when there is one)."""
    line = "%s: %s" % (cond["type"], cond["status"])
    if cond.get("message"):
        line += " \u2014 " + one_line(cond["message"])
    return line


def state_baseline(summary, written, resource_version=None):
    """What the wait needs to know about the state before a write (see SwitchTracker); the
    fingerprint and resourceVersion let the wait replay every change made after the write."""
    return {"exists": bool(summary.get("exists")), "mode": summary.get("mode"),
            "target_mode": summary.get("target_mode"), "hash": summary.get("hash"), "written": bool(written),
            "fingerprint": summary.get("fingerprint"), "resource_version": resource_version}


class SwitchTracker:
    """Follows registry-state after a write toward `target` and tells progress, success and failure.

    A state counts only when it belongs to the write (`baseline`, the state read just before it):
    * the target changed: DKP clears the conditions when the target changes, so once target_mode is
      ours the conditions are fresh;
    * the target was already ours (parameter change, or a second write): the `hash` must differ from
      the one before the write, or a Ready left from the previous parameters would pass;
    * nothing was written (resume, idempotent run): any state toward the target counts.
    """

    def __init__(self, target, baseline=None, started=0.0):
        self.target = target
        self.baseline = baseline or {}
        self.started = started
        self.fresh = False
        self.last = None
        self.events = []  # every reported change: {after, type, status, reason, message}
        self.true_at = {}  # condition type -> seconds after start when it (last) became True
        self.first_seen = {}
        self.images_true_at = None
        self._prev_fresh = False

    def is_fresh(self, summary):
        if self.fresh:
            return True
        if not summary.get("exists") or effective_mode(summary.get("target_mode")) != effective_mode(self.target):
            return False
        base = self.baseline
        if not base.get("written") or not base.get("exists"):
            self.fresh = True
        elif effective_mode(base.get("target_mode")) != effective_mode(self.target):
            self.fresh = True
        elif summary.get("hash") != base.get("hash"):
            self.fresh = True
        return self.fresh

    def observe(self, summary, now):
        """Record an observed state; returns the lines to show (may be empty)."""
        after = round(max(0.0, now - self.started), 1)
        lines = []
        prev = self.last
        if prev is None or (prev.get("target_mode"), prev.get("mode")) != (summary.get("target_mode"), summary.get("mode")):
            if summary.get("exists"):
                lines.append("registry-state: mode %s, target %s%s" % (
                    summary.get("mode") or "-", summary.get("target_mode") or "-",
                    "" if self.is_fresh(summary) else " (waiting for DKP to pick up the new target)"))
            else:
                lines.append("registry-state: Secret d8-system/registry-state does not exist yet")
        fresh = self.is_fresh(summary)
        before = {c["type"]: c for c in (prev or {}).get("conditions") or []} if prev is not None else {}
        if fresh:
            if not self._prev_fresh:
                before = {}
            for cond in summary.get("conditions") or []:
                old = before.get(cond["type"])
                key = (cond["status"], cond["reason"], cond["message"])
                if old is None or (old["status"], old["reason"], old["message"]) != key:
                    lines.append(format_condition(cond))
                    self.events.append({"after": after, "type": cond["type"], "status": cond["status"],
                                        "reason": cond["reason"], "message": cond["message"],
                                        "last_transition_time": cond.get("last_transition_time")})
                    self.first_seen.setdefault(cond["type"], after)
                    if cond["status"] == "True":
                        self.true_at[cond["type"]] = after
                        if cond["type"] == IMAGES and self.images_true_at is None:
                            self.images_true_at = now
        self._prev_fresh = fresh
        self.last = summary
        return lines

    def failure(self):
        """Fail-fast message once DKP refused our target."""
        s = self.last or {}
        if self.fresh and s.get("transition_error"):
            return ("DKP refused the switch to %s: %s. Nothing more will happen until the registry settings are "
                    "changed: switch through Direct or Unmanaged first (role registry_switch: `via: Direct`)."
                    % (self.target, s["transition_error"]))
        return None

    @property
    def done(self):
        s = self.last or {}
        return bool(self.fresh and s.get("complete") and effective_mode(s.get("mode")) == effective_mode(self.target))

    def images_pending(self):
        """The RegistryContainsRequiredImages condition while it is not True (after our write), else None."""
        if not self.fresh:
            return None
        for cond in (self.last or {}).get("conditions") or []:
            if cond["type"] == IMAGES and cond["status"] != "True":
                return cond
        return None

    def not_true(self):
        """Every condition that is not True, and the documented steps not reported yet."""
        s = self.last or {}
        conds = s.get("conditions") or [] if self.fresh else []
        bad = [c for c in conds if c["status"] != "True" and c["type"] != ERR_TRANSITION]
        seen = {c["type"] for c in conds}
        missing = [t for t in STEPS.get(effective_mode(self.target), ()) if t not in seen]
        return bad, missing

    def timeout_message(self, timeout, what=None):
        s = self.last or {}
        what = what or "the registry switch to %s" % self.target
        if not s.get("exists"):
            state = "Secret d8-system/registry-state does not exist (is the registry module enabled?)"
        elif not self.fresh:
            state = ("registry-state still shows mode %s, target %s from before the change (hash unchanged): DKP "
                     "has not picked up the new settings; check the deckhouse leader pod and its queue"
                     % (s.get("mode"), s.get("target_mode")))
        else:
            bad, missing = self.not_true()
            parts = [format_condition(c) for c in bad]
            if missing:
                parts.append("not reported yet: %s" % ", ".join(missing))
            state = "mode %s, target %s; %s" % (s.get("mode"), s.get("target_mode"),
                                                "; ".join(parts) or "every condition True but mode != target")
        return "Timed out after %ss waiting for %s: %s" % (int(timeout), what, state)

    def timings(self):
        """Per condition: seconds after the start when it was first reported and when it became True."""
        out = []
        for ctype, first in sorted(self.first_seen.items(), key=lambda kv: kv[1]):
            out.append({"type": ctype, "first_seen": first, "true_after": self.true_at.get(ctype)})
        return out


# -- Local: how to push the images -------------------------------------------------------------------


def public_domain(global_config):
    template = ((((global_config or {}).get("spec") or {}).get("settings") or {}).get("modules") or {}).get(
        "publicDomainTemplate")
    return template if isinstance(template, str) and "%s" in template else None


def local_push_instructions(global_config, rw_secret):
    """How to fill the in-cluster registry for Local (never the password itself)."""
    template = public_domain(global_config)
    host = template.replace("%s", "registry", 1) if template else "registry.<publicDomain>"
    login = _decode((rw_secret or {}).get("data"), "name") or "rw"
    target = "%s/system/deckhouse" % host
    command = ("d8 mirror push --registry-login='%s' --registry-password=\"$(d8 k -n %s get secret %s "
               "-o jsonpath='{.data.password}' | base64 -d)\" <bundle-dir> %s"
               % (login, NAMESPACE, RW_USER_SECRET, target))
    return {"registry": target, "login": login, "password_from": "Secret %s/%s key password" % (NAMESPACE, RW_USER_SECRET),
            "public_domain_known": bool(template), "command": command}


# -- following a switch ------------------------------------------------------------------------------


def images_timeout_message(timeout, tracker, push):
    cond = tracker.images_pending() or {}
    seen = format_condition(cond) if cond else "%s not reported yet" % IMAGES
    how = (" Push them: %s (the password is in %s)" % (push["command"], push["password_from"])) if push else ""
    return ("Timed out after %ss waiting for the platform images in the in-cluster registry (%s).%s"
            % (int(timeout), seen, how))


def follow_switch(step, tracker, wait_timeout, images_timeout=None, clock=None, sleep=None, on_lines=None,
                  on_images_pending=None, push=None, step_timeout=30, max_errors=5, since=None):
    """Drive `step(fingerprint, timeout) -> state summary` until the switch completes, fails or times out.

    `step(None, 0)` must read at once; with a fingerprint it returns on the next change (or after
    `timeout` seconds). `since` (the fingerprint before a write) starts with the changes after it
    instead of the current state. Lines to show go to `on_lines`; `on_images_pending(condition)` is
    called once when a Local switch waits for images to be pushed. Raises DkpError with the tracker's
    details.
    """
    import time as _time
    clock = clock or _time.monotonic
    sleep = sleep or _time.sleep
    local = effective_mode(tracker.target) == "Local"
    start = tracker.started = clock()
    fp = since
    deadline = start + step_timeout
    errors = 0
    told_push = False
    while True:
        try:
            now = clock()
            if fp is None:
                summary = step(None, 0)
            else:
                summary = step(fp, max(1, int(min(step_timeout, max(1.0, deadline - now)))))
            errors = 0
        except DkpError as e:
            errors += 1
            if errors >= max_errors:
                raise DkpError("Lost track of the registry switch: %s" % e.msg, **tracker_details(tracker))
            sleep(min(2.0 * errors, 10.0))
            continue
        now = clock()
        for seen in summary.get("history") or [summary]:
            lines = tracker.observe(seen, now)
            if lines and on_lines:
                on_lines(lines)
        fp = summary.get("fingerprint")
        pending = tracker.images_pending() if local else None
        if pending and not told_push and on_images_pending:
            on_images_pending(pending)
            told_push = True
        message = tracker.failure()
        if message:
            raise DkpError(message, **tracker_details(tracker))
        if tracker.done:
            return summary
        if not tracker.baseline.get("written") and not summary.get("exists"):
            return summary  # nothing written and no registry module at work: nothing will happen
        if local and tracker.images_true_at is None and images_timeout is not None:
            deadline = start + images_timeout
            if now >= deadline:
                raise DkpError(images_timeout_message(images_timeout, tracker, push), **tracker_details(tracker))
        else:
            base = tracker.images_true_at if (local and tracker.images_true_at is not None) else start
            deadline = base + wait_timeout
            if now >= deadline:
                raise DkpError(tracker.timeout_message(wait_timeout), **tracker_details(tracker))


def tracker_details(tracker):
    return {"state": tracker.last, "progress": list(tracker.events), "timings": tracker.timings()}


# -- reading through a DkpClient ------------------------------------------------------------------------


def read_state(client):
    """The registry-state summary (see parse_state); the Secret itself never leaves this function."""
    return parse_state(client.get("Secret", STATE_SECRET, NAMESPACE))


def watch_state(client, since=None, resource_version=None, timeout=30, gather=1.0, clock=None, sleep=None):
    """Every state the Secret went through after (`since` fingerprint, `resource_version`).

    Returns (history, resource_version, timed_out). `history` lists the summaries whose fingerprint
    changed, oldest first. Resuming from the resourceVersion of the previous call means no change is
    lost between two calls; after the first change, events are gathered `gather` more seconds so a
    burst of changes comes back in one answer. An empty history means nothing changed within
    `timeout`. Without `since` the current state is returned at once.
    """
    import time as _time

    from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import ApiError

    clock = clock or _time.monotonic
    sleep = sleep or _time.sleep
    history = []
    last_fp = since
    rv = resource_version
    deadline = clock() + max(0, timeout)

    def relist():
        items, list_rv = client.list("Secret", namespace=NAMESPACE, field_selector="metadata.name=%s" % STATE_SECRET)
        return parse_state(items[0] if items else None), list_rv

    if not since or not rv:
        current, rv = relist()
        if current["fingerprint"] != since:
            return [current], rv, False
    gather_until = None
    failures = 0
    while True:
        end = gather_until if gather_until is not None else deadline
        remaining = end - clock()
        if remaining <= 0:
            break
        try:
            events = client.watch("Secret", rv, namespace=NAMESPACE, name=STATE_SECRET, timeout=max(1, remaining))
            try:
                for etype, obj in events:
                    rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                    if etype == "BOOKMARK":
                        continue
                    summary = parse_state(None if etype == "DELETED" else obj)
                    if summary["fingerprint"] != last_fp:
                        history.append(summary)
                        last_fp = summary["fingerprint"]
                        if gather_until is None:
                            # leave the long watch: gathering goes on with a short one
                            gather_until = clock() + gather
                            break
                    if gather_until is not None and clock() >= gather_until:
                        break
            finally:
                events.close()
            failures = 0
        except ApiError as e:
            if e.status in (401, 403) or e.reason == "NotServed":
                raise
            current, rv = relist()  # 410: history compacted; anything else: start over from a list
            if current["fingerprint"] != last_fp:
                history.append(current)
                last_fp = current["fingerprint"]
                gather_until = gather_until or clock()
        except DkpError:
            failures += 1
            if failures > 5:
                raise
            sleep(min(1.0, max(0.0, end - clock())))
            rv = None
            current, rv = relist()
            if current["fingerprint"] != last_fp:
                history.append(current)
                last_fp = current["fingerprint"]
                gather_until = gather_until or clock()
        if gather_until is not None and clock() >= gather_until:
            break
    return history, rv, not history


def wait_for_change(client, since, timeout, resource_version=None):
    """(summary, timed_out): the latest state after a change from `since` (see watch_state)."""
    history, rv, timed_out = watch_state(client, since, resource_version, timeout)
    summary = dict(history[-1]) if history else read_state(client)
    summary["history"] = history
    summary["resource_version"] = rv
    return summary, timed_out
