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
* following a switch on the collection's one wait engine (dkp_wait): which observed states belong
  to *our* write, condition changes for live progress, completion, fail-fast errors, the Local
  images phase and the timeout message.

Released DKP 1.75/1.76 behaviour (docs/registry-switch.md keeps our own copy of these facts):
step orders per mode, conditions cleared only when the *target mode* changes, `hash` changing
with unrelated events (so it proves nothing), conditions' `observedGeneration` following Secret
d8-system/registry-config, and the VAP that refuses Local<->Proxy at admission.
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

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import (
    NO_LOG_MARKER,
    DkpError,
    ForbiddenError,
)

NAMESPACE = "d8-system"
STATE_SECRET = "registry-state"
CONFIG_SECRET = "registry-config"  # rendered from ModuleConfig deckhouse; its generation is what conditions observe
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
              ("image_check_mode", "checkMode"), ("ttl", "ttl"))
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

# Released step orders (modules/038-registry/hooks/orchestrator, v1.75.9/v1.76.8), used to name the
# steps not reached yet. Local checks the images only after the node services run: the images are
# checked against the per-node registries there.
STEPS = {
    "Direct": (IMAGES, PREFLIGHT, TRANSITION, IN_CLUSTER_PROXY, SWITCH, FINAL, CLEANUP_NODE_SERVICES, READY),
    "Proxy": (IMAGES, PREFLIGHT, NODE_SERVICES, TRANSITION, SWITCH, FINAL, CLEANUP_IN_CLUSTER_PROXY, READY),
    "Local": (PREFLIGHT, NODE_SERVICES, IMAGES, TRANSITION, SWITCH, FINAL, CLEANUP_IN_CLUSTER_PROXY, READY),
    "Unmanaged": (IMAGES, PREFLIGHT, TRANSITION, SWITCH, FINAL, CLEANUP_NODE_SERVICES, CLEANUP_IN_CLUSTER_PROXY,
                  READY),
}
# Non-configurable Unmanaged: leaving Direct/Proxy it checks images and makes a transition first.
STEPS_NON_CONFIGURABLE = {
    "leaving": (IMAGES, TRANSITION, SWITCH, FINAL, CLEANUP_NODE_SERVICES, CLEANUP_IN_CLUSTER_PROXY, READY),
    "other": (FINAL, CLEANUP_NODE_SERVICES, CLEANUP_IN_CLUSTER_PROXY, READY),
}


def steps_for(target, current=None, configurable=True):
    """The condition types the orchestrator walks toward `target`, in order."""
    target = effective_mode(target)
    if target == "Unmanaged" and not configurable:
        key = "leaving" if effective_mode(current) in ("Direct", "Proxy") else "other"
        return STEPS_NON_CONFIGURABLE[key]
    return STEPS.get(target, (READY,))


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


def resolve_settings(params, live_config):
    """(mode, wanted spec.settings.registry) from task parameters (`settings`, or `mode` and the registry
    parameters, `from_current`); raises DkpError on invalid input."""
    if params.get("settings") is not None:
        wanted = copy.deepcopy(params["settings"])
        errors = validate_settings(wanted)
        if errors:
            raise DkpError("Invalid registry settings in `settings`: %s" % " ".join(errors))
        return live_mode(wanted), wanted
    mode = params["mode"]
    values = dict(params)
    if params.get("from_current"):
        live = live_registry(live_config)
        current = live.get(SECTIONS.get(live_mode(live)) or "") or {}
        for name, key in PARAM_KEYS:
            if values.get(name) in (None, "") and current.get(key) not in (None, ""):
                if key == "ttl" and mode != "Proxy":
                    continue
                values[name] = current[key]
    check_params(mode, values)
    return mode, build_settings(mode, values)


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


def registry_host(repo):
    return str(repo or "").split("/", 1)[0].lower()


def dropped_credentials(live, wanted):
    """Why writing `wanted` would silently drop the credentials the cluster uses now, else None.

    Proxy -> Direct (or any move between sections) builds the new section from the task alone: when the
    same registry host keeps being used but the task gives no license/username, DKP would pull
    anonymously and fail only later. Carrying them over must be asked for (`from_current`)."""
    live_values = (live or {}).get(SECTIONS.get(live_mode(live)) or "") or {}
    new_section = SECTIONS.get(live_mode(wanted))
    new_values = (wanted or {}).get(new_section or "") or {}
    if not isinstance(live_values, dict) or not isinstance(new_values, dict) or not new_values:
        return None
    had = [k for k in ("license", "username") if live_values.get(k) not in (None, "")]
    has = [k for k in ("license", "username") if new_values.get(k) not in (None, "")]
    if not had or has or registry_host(live_values.get("imagesRepo")) != registry_host(new_values.get("imagesRepo")):
        return None
    return ("the cluster pulls from %s with a %s (registry.%s) and the new registry.%s has none: the switch would "
            "drop it and DKP would pull anonymously. Give `license` (or `username`/`password`), or set "
            "`from_current: true` to carry the current ones over"
            % (registry_host(live_values.get("imagesRepo")), " and ".join(had), SECTIONS.get(live_mode(live)),
               new_section))


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


# -- admission: the 1.75+ registry VAP --------------------------------------------------------------

VAP_NAME = "deckhouse-module-registry-validation"
# The opening words of the 1.75+ denials (modules/002-deckhouse/templates/registry/validation.yaml).
VAP_DENIALS = (
    ("Switching `spec.settings.registry.mode` to Proxy or non-configurable Unmanaged mode is not supported when "
     "registry is running in \"Local\" mode", "Local"),
    ("Switching `spec.settings.registry.mode` to Local mode is not supported when registry is running in "
     "\"Proxy\" mode", "Proxy"),
)


class RegistryWriteDenied(DkpError):
    """DKP's admission refused the registry settings (the 1.75+ registry VAP); nothing was written."""


def explain_denial(error, target):
    """A RegistryWriteDenied that explains a registry VAP denial in `error` (an ApiError), else None.

    DKP gives these denials no reason code of their own (HTTP 403/422 Invalid with the policy's message), so
    the policy's fixed message is the only thing that identifies them."""
    status = getattr(error, "status", None)
    if status not in (400, 403, 422):
        return None
    text = str(getattr(error, "msg", "") or "")
    for opening, running in VAP_DENIALS:
        if opening in text:
            return RegistryWriteDenied(
                "DKP refused the switch to %s at admission (ValidatingAdmissionPolicy %s, DKP 1.75+): the "
                "registry runs in %s mode, and %s cannot be reached from it directly. Nothing was written. "
                "Switch through Direct (or configurable Unmanaged) first (role registry_switch: `via: Direct`). "
                "DKP said: %s" % (target, VAP_NAME, running, target, one_line(text)),
                denied_by=VAP_NAME, running_mode=running, status=status)
    return None


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
                "Direct or Unmanaged (DKP 1.75+ refuses the write itself, VAP %s); switch to Direct first "
                "(role registry_switch: `via: Direct`)" % (current, target, VAP_NAME))
    if target == "Unmanaged" and not configurable and current == "Local":
        return ("mode transition from Local to non-configurable Unmanaged not supported (DKP 1.75+ refuses the "
                "write itself, VAP %s): give `images_repo` (and credentials) for a configurable Unmanaged "
                "registry" % VAP_NAME)
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


def _int_or_none(value):
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
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
        return []  # DKP renders empty conditions as `null`
    out = []
    for item in data:
        if isinstance(item, dict) and item.get("type"):
            out.append({
                "type": str(item.get("type")),
                "status": str(item.get("status") or "Unknown"),
                "reason": str(item.get("reason") or ""),
                "message": str(item.get("message") or ""),
                "last_transition_time": str(item.get("lastTransitionTime") or "") or None,
                "observed_generation": _int_or_none(item.get("observedGeneration")),
            })
    return out


def empty_state():
    summary = {"exists": False, "mode": None, "target_mode": None, "hash": None, "conditions": [],
               "observed_generation": None, "complete": False, "in_progress": False, "pending": [],
               "failed_conditions": [], "transition_error": None, "containerd_blocked": None,
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
    generations = [c["observed_generation"] for c in conditions if c["observed_generation"] is not None]
    summary = {
        "exists": True,
        "mode": mode,
        "target_mode": target,
        "hash": _decode(data, "hash"),
        "conditions": conditions,
        "observed_generation": max(generations) if generations else None,
        "complete": complete,
        "in_progress": bool(target) and not complete and not transition,
        "pending": pending,
        "failed_conditions": failed,
        "transition_error": transition,
        "containerd_blocked": containerd_blocked_message(containerd_custom_config(conditions)),
        "message": describe_state_short(mode, target, complete, transition, pending),
    }
    summary["fingerprint"] = fingerprint(summary)
    return summary


def containerd_custom_config(conditions):
    """The ContainerdConfigPreflightReady=False condition that reports custom containerd registry configuration on
    nodes (containerd v1, /etc/containerd/conf.d/*.toml), else None. DKP waits at that step until an operator moves
    the configuration: any registry change stops there, so the switch's wait fails at once on it and the roles
    refuse to start one while it is reported."""
    for cond in conditions or []:
        if cond.get("type") != PREFLIGHT or cond.get("status") != "False":
            continue
        if re.search(r"(?i)custom", (cond.get("message") or "") + " " + (cond.get("reason") or "")):
            return cond
    return None


def containerd_blocked_message(cond):
    """What the blocking containerd condition says, on one line (its reason when it has no message), else None."""
    if not cond:
        return None
    return "; ".join(line.strip() for line in (cond.get("message") or "").splitlines() if line.strip()) \
        or cond.get("reason") or PREFLIGHT


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
    """A short digest of what a watcher shows (never of `state`): equal digests mean nothing to report.
    `hash` is left out: DKP changes it on node/pod events that say nothing about the switch."""
    view = {k: summary.get(k) for k in ("exists", "mode", "target_mode")}
    view["conditions"] = sorted((c["type"], c["status"], c["reason"], c["message"], c.get("observed_generation") or 0)
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


CHECKED_RE = re.compile(r"^(?P<name>[^\s:][^:]*?): all (?P<total>\d+) items are checked\s*$")
PROCESSED_RE = re.compile(r"^(?P<name>[^\s:][^:]*?): (?P<done>\d+) of (?P<total>\d+) items processed"
                          r"(?:, (?P<errors>\d+) items with errors)?")


def parse_checker(message):
    """The image checker's message (hooks/checker/models.go) as {check_mode, registries, errors}.

    `Mode: <Default|Relax>` first, then one line per registry: `<name>: all N items are checked` or
    `<name>: X of Y items processed[, Z items with errors:]` followed by `- source/image/error` items. In
    Local mode `<name>` is a node name: the images are checked against each master's own registry."""
    out = {"check_mode": None, "registries": [], "errors": [], "initializing": False}
    for raw in str(message or "").splitlines():
        line = raw.strip()
        if not line:
            continue
        if line == "Initializing":
            out["initializing"] = True
        elif line.startswith("Mode:"):
            out["check_mode"] = line.split(":", 1)[1].strip() or None
        elif line.startswith("- "):
            out["errors"].append(line[2:].strip())
        else:
            m = CHECKED_RE.match(line)
            if m:
                total = int(m.group("total"))
                out["registries"].append({"name": m.group("name"), "checked": total, "total": total,
                                          "errors": 0, "complete": True})
                continue
            m = PROCESSED_RE.match(line)
            if m:
                out["registries"].append({"name": m.group("name"), "checked": int(m.group("done")),
                                          "total": int(m.group("total")), "errors": int(m.group("errors") or 0),
                                          "complete": False})
    return out


CONFIG_GENERATION_ANNOTATION = "registry.deckhouse.io/generation"


def config_generation(secret):
    """The generation of Secret d8-system/registry-config (None when absent): annotation
    registry.deckhouse.io/generation, else metadata.generation. Only metadata is read: the Secret's data
    holds the registry credentials."""
    if not secret:
        return None
    meta = secret.get("metadata") or {}
    gen = _int_or_none((meta.get("annotations") or {}).get(CONFIG_GENERATION_ANNOTATION))
    return gen if gen is not None else _int_or_none(meta.get("generation"))


def state_baseline(summary, written, generation=None, resource_version=None):
    """What the wait needs to know about the state before a write (see SwitchTracker)."""
    return {"exists": bool(summary.get("exists")), "mode": summary.get("mode"),
            "target_mode": summary.get("target_mode"), "hash": summary.get("hash"), "written": bool(written),
            "complete": bool(summary.get("complete")), "config_generation": generation,
            "observed_generation": summary.get("observed_generation"),
            "fingerprint": summary.get("fingerprint"), "resource_version": resource_version}


class SwitchTracker:
    """Follows registry-state after a write toward `target` and tells progress, success and failure.

    A state counts (is *fresh*) only when there is evidence that the orchestrator saw the write
    (`baseline` is the state read just before it):
    * nothing was written (resume, idempotent run): any state toward the target counts;
    * the target mode changed: DKP clears the conditions then, so once target_mode is ours they are new;
    * the same target (a parameter change): the conditions' observedGeneration must pass the
      generation Secret registry-config had before the write (Deckhouse renders our change into it);
      where DKP gives no generations, a state that is not complete must be seen after the write
      (the orchestrator reset Ready) before a Ready counts. `hash` proves nothing: DKP changes it
      on unrelated events, and a stale Ready=True stays next to it.
    Once fresh, a target_mode other than ours means another run (or an operator) took over: fail.
    """

    def __init__(self, target, baseline=None, started=0.0, configurable=True, images_timeout=None,
                 wait_timeout=None):
        self.target = target
        self.baseline = baseline or {}
        self.started = started
        self.configurable = configurable
        self.wait_timeout = wait_timeout
        self.images_timeout = images_timeout
        self.fresh = False
        self.reset_seen = False
        self.last = None
        self.lines = []  # every progress line shown, for the task result
        self.events = []  # every reported change: {after, type, status, reason, message}
        self.true_at = {}  # condition type -> seconds after start when it (last) became True
        self.first_seen = {}
        self.images_started_at = None  # clock time the images check started (fresh IMAGES seen)
        self.images_true_at = None
        self.taken_over = None
        self.timed_out = None  # the timeout message once a deadline passed
        self._prev_fresh = False

    # -- freshness ---------------------------------------------------------------------------------
    def _ours(self, summary):
        return effective_mode(summary.get("target_mode")) == effective_mode(self.target)

    def evidence(self):
        """How this wait tells our state from an older one (for docs and results)."""
        base = self.baseline
        if not base.get("written"):
            return "nothing written by this task: the current state toward the target counts"
        if not base.get("exists") or effective_mode(base.get("target_mode")) != effective_mode(self.target):
            return "target_mode changed to %s (DKP clears the conditions on a new target)" % self.target
        if base.get("config_generation") is not None:
            return ("conditions observe registry-config generation > %s (the one before the write)"
                    % base["config_generation"])
        return "the orchestrator reset Ready after the write (DKP reports no generations here)"

    def is_fresh(self, summary):
        if self.fresh:
            return self._ours(summary)
        if not summary.get("exists") or not self._ours(summary):
            return False
        base = self.baseline
        if not base.get("written") or not base.get("exists"):
            self.fresh = True
        elif effective_mode(base.get("target_mode")) != effective_mode(self.target):
            self.fresh = True
        elif base.get("config_generation") is not None and summary.get("observed_generation") is not None:
            self.fresh = summary["observed_generation"] > base["config_generation"]
        else:
            if not summary.get("complete"):
                self.reset_seen = True
            self.fresh = self.reset_seen
        return self.fresh

    def _ready_fresh(self, summary):
        """The Ready condition itself belongs to the write (a generation-based wait checks Ready's own)."""
        base = self.baseline
        if not (base.get("written") and base.get("exists")
                and effective_mode(base.get("target_mode")) == effective_mode(self.target)
                and base.get("config_generation") is not None):
            return True
        ready = next((c for c in summary.get("conditions") or [] if c["type"] == READY), None)
        if ready is None or ready.get("observed_generation") is None:
            return True
        return ready["observed_generation"] > base["config_generation"]

    # -- observing ---------------------------------------------------------------------------------
    def observe(self, summary, now):
        """Record an observed state; returns the lines to show (may be empty)."""
        after = round(max(0.0, now - self.started), 1)
        lines = []
        prev = self.last
        if self.fresh and summary.get("exists") and not self._ours(summary) and summary.get("target_mode"):
            self.taken_over = summary.get("target_mode")
        if prev is None or (prev.get("target_mode"), prev.get("mode")) != (summary.get("target_mode"), summary.get("mode")):
            if summary.get("exists"):
                lines.append("registry-state: mode %s, target %s%s" % (
                    summary.get("mode") or "-", summary.get("target_mode") or "-",
                    "" if self.is_fresh(summary) else " (waiting for DKP to pick up the new settings)"))
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
                    if cond["type"] == IMAGES and self.images_started_at is None:
                        self.images_started_at = now
                    if cond["status"] == "True":
                        self.true_at[cond["type"]] = after
                        if cond["type"] == IMAGES and self.images_true_at is None:
                            self.images_true_at = now
        self._prev_fresh = fresh
        self.last = summary
        self.lines.extend(lines)
        return lines

    def failure(self):
        """Fail-fast message: DKP refused our target, or someone else's target replaced ours."""
        s = self.last or {}
        if self.taken_over:
            seen = ("registry-state now shows target_mode %s instead of %s" % (self.taken_over, self.target)
                    if self.taken_over in MODES or self.taken_over == "Detached"
                    else "spec.settings.registry was %s after this task wrote it" % self.taken_over)
            return ("%s: another run (or an operator) changed the registry settings while this one waited. Only one "
                    "switch may run at a time (deckhouse.platform.run_lock); check ModuleConfig deckhouse "
                    "spec.settings.registry" % seen)
        blocked = self.containerd_blocked()
        if blocked:
            return ("DKP's containerd preflight failed (%s=False): %s. DKP waits at this step, nothing was changed "
                    "on the nodes: on these nodes (containerd v1) move the custom registry configuration from "
                    "/etc/containerd/conf.d/*.toml to /etc/containerd/registry.d/<registry host>/hosts.toml with a "
                    "NodeGroupConfiguration and delete the old files; DKP then continues by itself (re-run to "
                    "follow the switch to its end)." % (PREFLIGHT, containerd_blocked_message(blocked)))
        if self.fresh and s.get("transition_error"):
            return ("DKP refused the switch to %s: %s. Nothing more will happen until the registry settings are "
                    "changed: switch through Direct or Unmanaged first (role registry_switch: `via: Direct`)."
                    % (self.target, s["transition_error"]))
        return None

    def containerd_blocked(self):
        """The fresh ContainerdConfigPreflightReady=False reporting custom containerd configuration, else None.

        DKP does not get past it by itself: waiting on would only run into the timeout."""
        if not self.fresh:
            return None
        base = self.baseline
        cond = containerd_custom_config((self.last or {}).get("conditions"))
        if cond is None:
            return None
        # a condition DKP has not re-evaluated since the write is older evidence
        gen, seen = base.get("config_generation"), cond.get("observed_generation")
        if base.get("written") and gen is not None and seen is not None and seen <= gen:
            return None
        return cond

    @property
    def done(self):
        s = self.last or {}
        return bool(self.fresh and self._ours(s) and s.get("complete") and self._ready_fresh(s)
                    and effective_mode(s.get("mode")) == effective_mode(self.target))

    def images_pending(self):
        """The RegistryContainsRequiredImages condition while it is not True (after our write), else None."""
        if not self.fresh:
            return None
        for cond in (self.last or {}).get("conditions") or []:
            if cond["type"] == IMAGES and cond["status"] != "True":
                return cond
        return None

    def checker(self):
        """The parsed image-checker message of the current state (see parse_checker)."""
        for cond in (self.last or {}).get("conditions") or [] if self.fresh else []:
            if cond["type"] == IMAGES:
                return parse_checker(cond["message"])
        return parse_checker("")

    # -- deadlines ---------------------------------------------------------------------------------
    def check_deadlines(self, now, push=None):
        """The timeout message once a deadline passed (kept in `timed_out`), else None.

        `wait_timeout` counts from the start; for Local, the time spent waiting for the images to be
        pushed is not counted there but against `images_timeout`, which starts when the images check
        starts (after the node services: released step order)."""
        if self.timed_out:
            return self.timed_out
        local = effective_mode(self.target) == "Local"
        images_wait = 0.0
        if local and self.images_started_at is not None and self.images_timeout is not None:
            end = self.images_true_at if self.images_true_at is not None else now
            images_wait = max(0.0, end - self.images_started_at)
            if self.images_true_at is None and images_wait >= self.images_timeout:
                self.timed_out = images_timeout_message(self.images_timeout, self, push)
                return self.timed_out
        if self.wait_timeout is not None and now - self.started - images_wait >= self.wait_timeout:
            self.timed_out = self.timeout_message(self.wait_timeout)
        return self.timed_out

    def not_true(self):
        """Every condition that is not True, and the documented steps not reported yet."""
        s = self.last or {}
        conds = s.get("conditions") or [] if self.fresh else []
        bad = [c for c in conds if c["status"] != "True" and c["type"] != ERR_TRANSITION]
        seen = {c["type"] for c in conds}
        steps = steps_for(self.target, self.baseline.get("mode"), self.configurable)
        missing = [t for t in steps if t not in seen]
        return bad, missing

    def timeout_message(self, timeout, what=None):
        s = self.last or {}
        what = what or "the registry switch to %s" % self.target
        if not s.get("exists"):
            state = "Secret d8-system/registry-state does not exist (is the registry module enabled?)"
        elif not self.fresh:
            state = ("registry-state still shows mode %s, target %s%s from before the change: DKP has not "
                     "picked up the new settings (evidence looked for: %s); check the deckhouse leader pod and "
                     "its queue" % (s.get("mode"), s.get("target_mode"),
                                    ", Ready=True" if s.get("complete") else "", self.evidence()))
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

    def details(self):
        out = {"state": self.last, "progress": list(self.events), "progress_lines": list(self.lines),
               "timings": self.timings(), "evidence": self.evidence()}
        blocked = self.containerd_blocked()
        if blocked:
            out.update(reason="ContainerdConfigCustom", containerd_preflight=dict(blocked))
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


def per_node_registries(tracker):
    """The per-node registries the Local images check reports on: [{name, checked, total, errors}]."""
    return [dict(r) for r in tracker.checker()["registries"]]


def push_hint(tracker, push):
    """What to push where, naming the per-node registries that still miss images."""
    nodes = per_node_registries(tracker)
    missing = [n for n in nodes if not n["complete"]]
    where = ""
    if nodes:
        where = (" The images are checked against the registry on each master node: %s."
                 % ", ".join("%s (%s of %s items processed%s)" % (
                     n["name"], n["checked"], n["total"], ", %s with errors" % n["errors"] if n["errors"] else "")
                     for n in (missing or nodes)))
    how = (" Push them: %s (the password is in %s); the in-cluster registry serves every node's registry."
           % (push["command"], push["password_from"])) if push else ""
    return where + how


def images_timeout_message(timeout, tracker, push):
    cond = tracker.images_pending() or {}
    seen = format_condition(cond) if cond else "%s not reported yet" % IMAGES
    return ("Timed out after %ss (counted from the start of the images check) waiting for the platform images in "
            "the in-cluster registry (%s).%s" % (int(timeout), seen, push_hint(tracker, push)))


# -- reading and waiting through a DkpClient -------------------------------------------------------------


def read_state(client):
    """The registry-state summary (see parse_state); the Secret itself never leaves this function."""
    return parse_state(client.get("Secret", STATE_SECRET, NAMESPACE))


def read_config_generation(client):
    """Generation of Secret registry-config, None when it is absent or unreadable (then the wait falls back
    to seeing the orchestrator reset Ready)."""
    try:
        return config_generation(client.get("Secret", CONFIG_SECRET, NAMESPACE))
    except ForbiddenError:
        return None


def wait_switch(client, tracker, on_lines=None, on_images_pending=None, push=None, clock=None, sleep=None,
                heartbeat=5.0):
    """Follow registry-state on the one wait engine (dkp_wait.wait_for) until the switch completes.

    Rides through dropped watches and an apiserver restart (the engine's job); fails at once on DKP's
    refusal or a foreign target; times out by the tracker's deadlines (see check_deadlines). Returns the
    final state summary; raises WaitFailed/WaitTimeout with the tracker's details."""
    import time as _time

    from ansible_collections.deckhouse.platform.plugins.module_utils import dkp_wait

    clock = clock or _time.monotonic
    tracker.started = clock()
    local = effective_mode(tracker.target) == "Local"
    seen = {"key": None, "told_push": False}

    def judge(obj):
        meta = (obj or {}).get("metadata") or {}
        key = (meta.get("uid"), meta.get("resourceVersion")) if obj else ("absent",)
        if key != seen["key"]:
            seen["key"] = key
            lines = tracker.observe(parse_state(obj), clock())
            if lines and on_lines:
                on_lines(lines)
            pending = tracker.images_pending() if local else None
            if pending and not seen["told_push"] and on_images_pending:
                on_images_pending(pending)
                seen["told_push"] = True

    def failure(obj):
        judge(obj)
        return tracker.failure() or tracker.check_deadlines(clock(), push)

    def predicate(obj):
        judge(obj)
        if tracker.done:
            return True
        # nothing written and no registry module at work: nothing will happen
        return not tracker.baseline.get("written") and not (tracker.last or {}).get("exists")

    written_gen = tracker.baseline.get("module_config_generation") if tracker.baseline.get("written") else None

    def tick():
        if written_gen is not None and not tracker.taken_over:
            # another writer may change the settings before the orchestrator shows our target at all
            config = client.get("ModuleConfig", DECKHOUSE_CONFIG)
            gen = _int_or_none(((config or {}).get("metadata") or {}).get("generation"))
            if gen is not None and gen > written_gen:
                tracker.taken_over = "settings changed (ModuleConfig deckhouse generation %s -> %s)" % (
                    written_gen, gen)
        return tracker.failure() or tracker.check_deadlines(clock(), push)

    def describe(obj):
        return (tracker.last or parse_state(obj)).get("message")

    outer = (tracker.wait_timeout or 0) + (tracker.images_timeout or 0 if local else 0) + 60
    try:
        dkp_wait.wait_for(client, "Secret", STATE_SECRET, predicate, outer, namespace=NAMESPACE,
                          describe=describe, failure=failure, tick=tick, heartbeat=heartbeat, clock=clock,
                          sleep=sleep)
    except dkp_wait.WaitFailed as e:
        if tracker.timed_out:
            raise dkp_wait.WaitTimeout(tracker.timed_out, last_state=describe(None), **tracker.details())
        raise dkp_wait.WaitFailed(e.msg, last_state=describe(None), **tracker.details())
    except dkp_wait.WaitTimeout:
        message = tracker.timed_out or tracker.timeout_message(tracker.wait_timeout or outer)
        raise dkp_wait.WaitTimeout(message, last_state=describe(None), **tracker.details())
    return tracker.last


def follow_switch(client, mode, baseline, wait_timeout, images_timeout, push=None, configurable=True, on_lines=None,
                  on_images_pending=None):
    """The one wait of a switch - the action plugin runs it on the controller, the module on a remote host.
    Returns (result keys, error or None): the progress goes into the result either way."""
    import time as _time

    tracker = SwitchTracker(mode, baseline, configurable=configurable, wait_timeout=wait_timeout,
                            images_timeout=images_timeout)
    started = _time.monotonic()
    try:
        final = wait_switch(client, tracker, on_lines=on_lines, on_images_pending=on_images_pending, push=push)
        error = None
    except DkpError as e:
        final, error = tracker.last, e
    out = dict(tracker.details(), state=final, duration=round(_time.monotonic() - started, 1))
    return out, error


def wait_for_change(client, since, timeout):
    """(summary, timed_out): the state once its fingerprint differs from `since`, on the one wait engine.
    `history` lists every state seen on the way (oldest first)."""
    from ansible_collections.deckhouse.platform.plugins.module_utils import dkp_wait

    history = []

    def changed(obj):
        summary = parse_state(obj)
        if not history or history[-1]["fingerprint"] != summary["fingerprint"]:
            if summary["fingerprint"] != since:
                history.append(summary)
        return summary["fingerprint"] != since

    try:
        dkp_wait.wait_for(client, "Secret", STATE_SECRET, changed, timeout, namespace=NAMESPACE,
                          describe=lambda obj: parse_state(obj)["message"])
    except dkp_wait.WaitTimeout:
        summary = read_state(client)
        summary["history"] = []
        return summary, True
    summary = dict(history[-1])
    summary["history"] = history
    return summary, False
