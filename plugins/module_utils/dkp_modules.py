# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Rules of the Module and ModuleConfig kinds: summaries, redaction of settings, refusals before a write,
and the predicates, evidence, failure and transient-error rules the one wait engine (dkp_wait) applies.

Evidence that Deckhouse processed a ModuleConfig change (`change_evidence`): DKP's ModuleConfig status has
no observedGeneration, so the only proof is on the Module: after our write its status must differ from the
snapshot read before the write (phase, hooksState, or the status or lastTransitionTime of one of
EnabledByModuleConfig, EnabledByModuleManager, IsReady). Deckhouse always changes one of them when
`spec.enabled` flips between true and not-true, and when the module's effective enabled state changes. A
change of settings (or version, source, policy, maintenance) on a module that stays as it was shows nothing:
Deckhouse reruns the module without touching the Module status (its own controller notes the queue as the
only reliable signal). Then the wait watches a short settle window for evidence or errors and, seeing none,
reports `processed: false` instead of claiming Ready.
"""

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import json
import re
import time

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import DkpError
from ansible_collections.deckhouse.platform.plugins.module_utils import dkp_resource
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_resource import condition, strip_server_fields

# Module names are kebab-case DNS labels (ModuleConfig name == module name).
MODULE_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
ALLOW_DISABLING_ANNOTATION = "modules.deckhouse.io/allow-disabling"
UNKNOWN_MODULE_MESSAGE = "Ignored: unknown module name"

# Module.status.phase values of the released CRD (1.75/1.76).
MODULE_PHASES = ("Unavailable", "Available", "Downloading", "DownloadingError", "Reconciling", "Installing",
                 "HooksDisabled", "WaitSyncTasks", "Downloaded", "Conflict", "Ready", "Error")
# Phases that do not change without an operator: fail a wait for Ready at once.
MODULE_STUCK_PHASES = ("Conflict", "Unavailable")
# Phases Deckhouse leaves by itself when a retried hook or a pull succeeds: fail only after the grace window.
MODULE_TRANSIENT_PHASES = ("Error", "DownloadingError")
# Kept for callers of the previous API (roles' docs): every phase a Ready wait may fail on.
MODULE_FAILED_PHASES = MODULE_TRANSIENT_PHASES + MODULE_STUCK_PHASES

# Seconds a settings-only change is watched for evidence before the result says Deckhouse showed none.
SETTLE_SECONDS = 5.0
# Seconds an unchanged, pre-existing ModuleConfig error may persist after our write before it counts.
STALE_CONFIG_ERROR_GRACE = 10.0
# kube-apiserver refuses request bodies over 3 MiB with 413 (and etcd objects over 1.5 MiB).
MAX_REQUEST_BYTES = 3 * 1024 * 1024

INFO_WAIT_TARGETS = ("ready", "disabled", "absent", "overridden") + MODULE_PHASES


# ---------------------------------------------------------------------------------------------- names

def check_name(value, what="module name"):
    """A clear message when `value` cannot be a module (or other DNS-label) name, else None."""
    if not isinstance(value, str) or not MODULE_NAME_RE.match(value):
        return ("%r is not a valid %s: use lowercase letters, digits and '-', starting and ending with a "
                "letter or digit (for example 'cert-manager')" % (value, what))
    return None


def is_true(cond):
    return (cond or {}).get("status") == "True"


# ---------------------------------------------------------------------------------------------- secrets

def redact_config(config, extra_keys=()):
    """A ModuleConfig for results and diffs: managedFields dropped, secrets redacted by the collection's one
    rule (dkp_resource.SECRET_KEY_RULE: nested keys and list values included) plus the user's `redact_keys`."""
    if not config:
        return config
    return dkp_resource.redact(strip_server_fields(config), tuple(extra_keys or ()))


def config_secret_values(settings, extra_keys=()):
    """The secret strings of `settings` (with their base64 forms), to register as no_log values."""
    return dkp_resource.secret_values(settings or {}, tuple(extra_keys or ()))


def config_summary(config, extra_keys=()):
    """A ModuleConfig for results: no managedFields, secrets redacted."""
    return redact_config(config, extra_keys)


# ---------------------------------------------------------------------------------------------- summaries

def module_summary(module):
    """The facts an operator reads from `kubectl get module NAME` (and a little more)."""
    props = module.get("properties") or {}
    status = module.get("status") or {}
    ready_cond = condition(module, "IsReady")
    return {
        "name": module["metadata"]["name"],
        "phase": status.get("phase"),
        "enabled": is_true(condition(module, "EnabledByModuleManager")),
        "enabled_by_config": is_true(condition(module, "EnabledByModuleConfig")),
        "ready": status.get("phase") == "Ready" and is_true(ready_cond),
        "overridden": is_true(condition(module, "IsOverridden")),
        "critical": bool(props.get("critical")),
        "source": props.get("source"),
        "version": props.get("version"),
        "weight": props.get("weight"),
        "stage": props.get("stage"),
        "release_channel": props.get("releaseChannel"),
        "update_policy": props.get("updatePolicy"),
        "available_sources": props.get("availableSources") or [],
        "disable_confirmation": bool((props.get("disableOptions") or {}).get("confirmation")),
        "disable_message": (props.get("disableOptions") or {}).get("message"),
        "hooks_state": status.get("hooksState"),
        "hook_error": hook_error(module),
        "conditions": status.get("conditions") or [],
        "message": ready_cond.get("message") or condition(module, "EnabledByModuleManager").get("message"),
    }


def hook_error(module):
    """The last hook/module error Deckhouse reports (IsReady=False reason HookError/ModuleError), or None."""
    cond = condition(module, "IsReady")
    phase = ((module or {}).get("status") or {}).get("phase")
    if cond.get("status") != "True" and (cond.get("reason") in ("HookError", "ModuleError")
                                         or (phase == "Error" and cond.get("message"))):
        return "%s: %s" % (cond.get("reason") or "Error", cond.get("message") or "(no message)")
    return None


def describe_module(module):
    """One line for messages: phase and the conditions that are not True."""
    if module is None:
        return "Module does not exist"
    s = module_summary(module)
    bad = ["%s=%s%s" % (c.get("type"), c.get("status"), " (%s)" % c["message"] if c.get("message") else "")
           for c in s["conditions"] if c.get("status") != "True"]
    return "phase %s%s" % (s["phase"] or "<none>", "; " + ", ".join(bad) if bad else "")


def config_error(config):
    """The ModuleConfig's own complaint (status.message `Error: ...` or the unknown-module notice)."""
    message = ((config or {}).get("status") or {}).get("message") or ""
    if message.startswith("Error") or message == UNKNOWN_MODULE_MESSAGE:
        return message
    return None


# ---------------------------------------------------------------------------------------------- refusals

def disabling_refusal(name, module, live_config, state, enabled, allow_disabling):
    """Why the task may not disable (or delete the ModuleConfig of) this module without `allow_disabling`, or None.

    Two rules, both checked before any write: DKP's own confirmation (`properties.disableOptions.confirmation`,
    which its webhook enforces with the allow-disabling annotation), and ours for critical modules
    (`properties.critical: true`, for example `deckhouse` and `registry`), whose loss stops the platform.
    """
    live_spec = (live_config or {}).get("spec") or {}
    if state == "absent":
        disabling = live_config is not None
    else:
        disabling = enabled is False and live_spec.get("enabled") is not False
    if not disabling or allow_disabling:
        return None
    props = (module or {}).get("properties") or {}
    opts = props.get("disableOptions") or {}
    what = "Deleting the ModuleConfig of" if state == "absent" else "Disabling"
    if props.get("critical"):
        return ("%s module %s needs `allow_disabling: true`: it is a critical module (properties.critical)%s"
                % (what, name, ": %s" % opts["message"] if opts.get("message") else ", Deckhouse depends on it"))
    annotations = ((live_config or {}).get("metadata") or {}).get("annotations") or {}
    if opts.get("confirmation") and annotations.get(ALLOW_DISABLING_ANNOTATION) != "true":
        reason = opts.get("message") or "DKP asks for confirmation"
        return ("%s module %s must be confirmed: %s. Set `allow_disabling: true` to add the %s=true annotation if "
                "you are sure." % (what, name, reason, ALLOW_DISABLING_ANNOTATION))
    return None


def request_size_refusal(kind, name, body):
    """The 413 message before sending a body kube-apiserver would refuse (over 3 MiB), else None."""
    size = len(json.dumps(body, separators=(",", ":")).encode())
    if size > MAX_REQUEST_BYTES:
        return ("%s %s: request too large (413): the object would be %.1f MB and kube-apiserver accepts at most "
                "3 MiB per request (etcd stores at most 1.5 MiB per object); keep large data out of settings"
                % (kind, name, size / 1e6))
    return None


# ---------------------------------------------------------------------------------------------- wait rules

def _cond_key(module, ctype):
    cond = condition(module, ctype)
    return (cond.get("status"), cond.get("lastTransitionTime"), cond.get("reason"), cond.get("message"))


def status_fingerprint(module):
    """What Deckhouse changes on the Module when it processes a ModuleConfig change (see module docstring)."""
    if module is None:
        return None
    status = module.get("status") or {}
    return (status.get("phase"), status.get("hooksState"),
            _cond_key(module, "EnabledByModuleConfig"), _cond_key(module, "EnabledByModuleManager"),
            _cond_key(module, "IsReady"))


def change_evidence(before, module):
    """A sentence naming what shows that Deckhouse handled our write, or None (nothing changed yet)."""
    if module is None:
        return "the Module disappeared" if before is not None else None
    if before is None:
        return "the Module appeared"
    if status_fingerprint(module) == status_fingerprint(before):
        return None
    b, a = module_summary(before), module_summary(module)
    for ctype, key in (("EnabledByModuleConfig", "enabled_by_config"), ("EnabledByModuleManager", "enabled")):
        if _cond_key(before, ctype) != _cond_key(module, ctype):
            return "condition %s changed to %s" % (ctype, condition(module, ctype).get("status"))
    if b["phase"] != a["phase"]:
        return "phase changed from %s to %s" % (b["phase"], a["phase"])
    return "condition IsReady or the hooks state changed after the write"


def expects_evidence(before, target, live_spec, new_spec):
    """Whether DKP is bound to show evidence for this write (else only a settle window is watched)."""
    was = (live_spec or {}).get("enabled") is True
    now = (new_spec or {}).get("enabled") is True
    if was != now:
        return True  # EnabledByModuleConfig always flips
    if before is None:
        return False
    enabled_now = is_true(condition(before, "EnabledByModuleManager"))
    return (target == "enabled" and not enabled_now) or (target == "disabled" and enabled_now)


def target_reached(target, module):
    """Predicate of a ModuleConfig wait: `enabled` (Ready), `disabled`, or `bundle` (whatever Deckhouse decided)."""
    if module is None:
        return target != "enabled"
    s = module_summary(module)
    if target == "enabled":
        return s["ready"]
    if target == "disabled":
        return not s["enabled"] and not is_true(condition(module, "IsReady"))
    # bundle: an enabled module must become Ready; a module the manager keeps off is done
    if s["enabled"]:
        return s["ready"]
    return condition(module, "EnabledByModuleManager").get("status") == "False"


def stuck_failure(name, module):
    """Fails a wait for Ready at once: states that need an operator."""
    if module is None:
        return None
    s = module_summary(module)
    if s["phase"] == "Conflict":
        return ("Module %s is offered by several sources and none is chosen: set `source` to one of %s"
                % (name, ", ".join(s["available_sources"]) or "the available sources"))
    if s["phase"] in MODULE_STUCK_PHASES:
        return "Module %s cannot become Ready: %s" % (name, describe_module(module))
    return None


def transient_failure(name, module):
    """An error Deckhouse may clear by retrying (hook error, failed pull): fails after the grace window."""
    if module is None:
        return None
    s = module_summary(module)
    if s["phase"] in MODULE_TRANSIENT_PHASES or s["hook_error"]:
        return "Module %s reports %s" % (name, s["hook_error"] or describe_module(module))
    return None


def same_version(a, b):
    """Module versions compared without the leading `v` Module properties carry (v1.2.3 == 1.2.3)."""
    return a is not None and b is not None and str(a).lstrip("vV") == str(b).lstrip("vV")


def parse_time(value):
    """An RFC 3339 time (as Kubernetes writes it: 2026-12-01T10:00:00Z, optional fraction/offset) as epoch
    seconds, or None when missing or unreadable."""
    import datetime

    if not value or not isinstance(value, str):
        return None
    text = value.strip().replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?([+-]\d\d:\d\d)$", text)
    if not match:
        return None
    base = datetime.datetime.strptime(match.group(1) + match.group(3).replace(":", ""), "%Y-%m-%dT%H:%M:%S%z")
    return base.timestamp() + float(match.group(2) or 0)


def ready_since(summary):
    """When IsReady last turned True (epoch seconds), None when it is not True or carries no time."""
    for cond in summary.get("conditions") or []:
        if cond.get("type") == "IsReady" and cond.get("status") == "True":
            return parse_time(cond.get("lastTransitionTime"))
    return None


def summary_matches(summary, filters):
    """module_info's filters (phase, enabled, source, version, overridden, ready_after; None = any) on one
    module_summary(). `ready_after` (RFC 3339) keeps a Module only when IsReady turned True at or after that
    time: evidence that Deckhouse ran it again after a change with that timestamp (a ModulePullOverride's
    updatedAt), so a Ready from before the change is not taken for the answer."""
    filters = filters or {}
    if filters.get("ready_after"):
        since, after = ready_since(summary), parse_time(filters["ready_after"])
        if since is None or after is None or since < after:
            return False
    if filters.get("phase") and summary["phase"] not in filters["phase"]:
        return False
    for key in ("enabled", "overridden"):
        if filters.get(key) is not None and summary[key] != filters[key]:
            return False
    if filters.get("source") and summary["source"] != filters["source"]:
        return False
    if filters.get("version") and not same_version(summary["version"], filters["version"]):
        return False
    return True


def info_predicate(target, filters=None):
    """Predicate for module_info `wait_for`; a Module must also pass the task's `filters` (see summary_matches),
    so `wait_for: ready` with `source: X` waits for Ready on source X, with `overridden: false` for Ready without
    a ModulePullOverride. `absent` ignores the filters (there is nothing to filter)."""
    if target not in INFO_WAIT_TARGETS:
        raise DkpError("wait_for must be one of %s, got %r" % (", ".join(INFO_WAIT_TARGETS), target))
    if target == "absent":
        return lambda m: m is None

    def state(m):
        if target == "ready":
            return module_summary(m)["ready"]
        if target == "disabled":
            return not module_summary(m)["enabled"] and not is_true(condition(m, "IsReady"))
        if target == "overridden":
            return module_summary(m)["overridden"]
        return (m.get("status") or {}).get("phase") == target

    return lambda m: m is not None and state(m) and summary_matches(module_summary(m), filters)


INFO_FILTERS = ("phase", "enabled", "source", "version", "overridden", "ready_after")


def info_filters(params):
    """module_info's filter options of a task (see summary_matches)."""
    return dict((key, params.get(key)) for key in INFO_FILTERS)


def validate_module_info(params):
    """Refuse a module_info task with bad input, before any request."""
    errors = []
    if params.get("name") is not None and check_name(params["name"]):
        errors.append(check_name(params["name"]))
    if params.get("ready_after") and parse_time(params["ready_after"]) is None:
        errors.append("ready_after must be an RFC 3339 time such as 2026-12-01T10:00:00Z, got %r"
                      % params["ready_after"])
    if params.get("wait_for") and not params.get("name"):
        errors.append("wait_for waits for one Module: set `name`")
    if errors:
        raise DkpError("; ".join(errors))


def info_wait_rules(name, target, filters):
    """wait_for keyword arguments for module_info `wait_for`: only `ready` judges the Module's errors (Conflict and
    Unavailable at once, hook errors after the grace window); any other target waits for that state alone."""
    judged = target == "ready"
    return dict(predicate=info_predicate(target, filters), describe=describe_module,
                failure=(lambda m: stuck_failure(name, m)) if judged else None,
                transient=(lambda m: transient_failure(name, m)) if judged else None)


def config_info_item(obj, extra_keys=()):
    """A ModuleConfig as module_config_info returns it: its spec in option names, status, the error it reports,
    and the object, secrets redacted."""
    status = obj.get("status") or {}
    obj = redact_config(obj, extra_keys)
    spec = obj.get("spec") or {}
    return {
        "name": obj["metadata"]["name"],
        "enabled": spec.get("enabled"),
        "version": spec.get("version"),
        "settings": spec.get("settings") or {},
        "source": spec.get("source"),
        "update_policy": spec.get("updatePolicy"),
        "maintenance": spec.get("maintenance"),
        "status_version": status.get("version"),
        "message": status.get("message"),
        "error": config_error(obj),
        "object": obj,
    }


def config_wait_target(enabled, spec_after):
    """What a ModuleConfig wait waits for: `enabled`, `disabled`, or `bundle` (spec.enabled left to Deckhouse)."""
    if enabled is None:
        enabled = (spec_after or {}).get("enabled")
    if enabled is True:
        return "enabled"
    if enabled is False:
        return "disabled"
    return "bundle"


def wait_config_applied(client, name, target, before_module, res, timeout, grace, wait_for, timeout_error,
                        clock=time.monotonic):
    """Wait on the one engine until Deckhouse applied the ModuleConfig write `res` (dkp_resource.EnsureResult).

    `wait_for`/`timeout_error` are dkp_wait.wait_for and dkp_wait.WaitTimeout, passed in so that the many modules
    importing this file for names and summaries do not ship the wait engine (AnsiballZ bundles every import).

    Returns {module, processed, evidence, ready}: `processed` is True with the `evidence` that Deckhouse handled
    the write (see the module docstring), False when DKP showed none within the settle window (then `ready` is
    None rather than a Ready that may predate the change). Raises WaitTimeout/WaitFailed with the last state.
    """
    start = clock()
    before_error = config_error(res.before)
    judged = target != "disabled"  # a module being switched off may show errors on its way down
    # A hook error that predates the write is a stale state the engine does not judge: when Deckhouse leaves
    # it exactly as it was for longer than the grace window, our change did not cure it.
    stale_hook_error = judged and res.changed and before_module is not None and transient_failure(name, before_module)

    def config_tick():
        error = config_error(client.get("ModuleConfig", name))
        if error and (error != before_error or clock() - start > STALE_CONFIG_ERROR_GRACE):
            return "ModuleConfig %s reports: %s" % (name, error)
        if stale_hook_error and clock() - start >= grace:
            mod = client.get("Module", name)
            if mod is not None and change_evidence(before_module, mod) is None:
                return ("%s, unchanged for %ds after this change (longer than the grace of %ds): Deckhouse has not "
                        "cleared it" % (stale_hook_error, int(clock() - start), int(grace)))
        return None

    kwargs = dict(describe=describe_module, tick=config_tick, grace=grace,
                  failure=(lambda m: stuck_failure(name, m)) if judged else None,
                  transient=(lambda m: transient_failure(name, m)) if judged else None)

    def reached(mod):
        return target_reached(target, mod)

    def fresh(mod):
        return change_evidence(before_module, mod) is not None

    def outcome(mod, processed, evidence):
        summary = module_summary(mod) if mod else None
        return {"module": summary, "processed": processed, "evidence": evidence,
                "ready": (bool(summary and summary["ready"]) if processed else None)}

    if not res.changed:
        mod = wait_for(client, "Module", name, reached, timeout, **kwargs)
        return outcome(mod, True, "no change was written, so the current state counts")
    before_spec = (res.before or {}).get("spec") or {}
    after_spec = (res.after or {}).get("spec") or {}
    if not expects_evidence(before_module, target, before_spec, after_spec) \
            and (before_module is not None and reached(before_module)):
        # Settings-only change of a module already in the target state: DKP may show nothing at all.
        try:
            wait_for(client, "Module", name, lambda m: True, min(SETTLE_SECONDS, timeout), fresh=fresh, **kwargs)
        except timeout_error:
            return outcome(client.get("Module", name), False, None)
        timeout = max(1.0, timeout - (clock() - start))
    mod = wait_for(client, "Module", name, reached, timeout, fresh=fresh, **kwargs)
    return outcome(mod, True, change_evidence(before_module, mod) or "Deckhouse changed the Module after the write")
