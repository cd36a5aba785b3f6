# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Module delivery semantics: ModuleRelease versions, selection, blocking reasons and actions,
update windows and duration strings, and the rules of the module_release task and its reader. Pure logic,
except the functions that take a DkpClient (listing, finding and selecting releases, waits).
"""

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import re
import time

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import DkpError
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_modules import (
    check_name,
    describe_module,
    is_true,
    module_summary,
    stuck_failure,
    transient_failure,
)
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_resource import condition

APPROVED_ANNOTATION = "modules.deckhouse.io/approved"
APPLY_NOW_ANNOTATION = "modules.deckhouse.io/apply-now"
REINSTALL_ANNOTATION = "modules.deckhouse.io/reinstall"
FORCE_ANNOTATION = "modules.deckhouse.io/force"
IS_UPDATING_ANNOTATION = "modules.deckhouse.io/isUpdating"
NOTIFIED_ANNOTATION = "modules.deckhouse.io/notified"
CHANGE_CAUSE_ANNOTATION = "modules.deckhouse.io/change-cause"
UPDATE_POLICY_LABEL = "modules.deckhouse.io/update-policy"
# The release annotations an operator acts on or reads progress from (returned as `annotations`).
RELEASE_ANNOTATIONS = (APPROVED_ANNOTATION, APPLY_NOW_ANNOTATION, REINSTALL_ANNOTATION, FORCE_ANNOTATION,
                       IS_UPDATING_ANNOTATION, NOTIFIED_ANNOTATION, CHANGE_CAUSE_ANNOTATION)

PHASE_PENDING = "Pending"
PHASE_DEPLOYED = "Deployed"
RELEASE_PHASES = ("Pending", "Deployed", "Superseded", "Suspended", "Skipped", "Terminating")
# Phases a release never leaves: approving or applying them has no effect.
FINAL_PHASES = ("Superseded", "Suspended", "Skipped", "Terminating")

_SEMVER_RE = re.compile(r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
                        r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$")
_RELEASE_NAME_RE = re.compile(r"^(?P<module>[a-z0-9]([a-z0-9-]*[a-z0-9])?)-v(?P<version>\d.*)$")


# -- versions ---------------------------------------------------------------------------------------

def normalize_version(version):
    """`v1.2.3` or `1.2.3` -> `1.2.3`; DkpError when it is not a semantic version."""
    text = str(version).strip()
    if not _SEMVER_RE.match(text):
        raise DkpError("%r is not a semantic version: use MAJOR.MINOR.PATCH with or without a leading 'v' "
                       "(for example 1.2.3 or v1.2.3)" % (version,))
    return text[1:] if text.startswith("v") else text


def version_key(version):
    """Sort key in semantic-version precedence; versions that are not semver sort after all others."""
    match = _SEMVER_RE.match(str(version or ""))
    if not match:
        return (1, str(version or ""))
    major, minor, patch, pre = match.groups()
    # A pre-release sorts before its release; numeric identifiers before alphanumeric ones.
    if pre is None:
        pre_key = (1,)
    else:
        pre_key = (0, tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")))
    return (0, (int(major), int(minor), int(patch)), pre_key)


_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def check_release_name(name):
    """A clear message when `name` cannot be a ModuleRelease name, else None."""
    if not isinstance(name, str) or not _DNS_SUBDOMAIN_RE.match(name):
        return ("%r is not a valid ModuleRelease name: use <module>-v<version>, for example console-v1.2.3"
                % (name,))
    return None


def release_name(module, version):
    """The object name DKP gives a release: `<module>-v<version>`."""
    return "%s-v%s" % (module, normalize_version(version))


def parse_release_name(name):
    """(module, version) from `<module>-v<version>`, or (None, None)."""
    match = _RELEASE_NAME_RE.match(name or "")
    return (match.group("module"), match.group("version")) if match else (None, None)


# -- reading releases -------------------------------------------------------------------------------

def release_module(release):
    spec = release.get("spec") or {}
    return spec.get("moduleName") or ((release.get("metadata") or {}).get("labels") or {}).get("module")


def release_version(release):
    version = str((release.get("spec") or {}).get("version") or "")
    return version[1:] if version.startswith("v") else version


def release_phase(release):
    # The controller turns an empty phase into Pending on its first reconcile.
    return ((release or {}).get("status") or {}).get("phase") or PHASE_PENDING


def annotations_of(obj):
    return ((obj or {}).get("metadata") or {}).get("annotations") or {}


# Go's strconv.ParseBool: exactly these spellings are true (not `TrUe`, not ` true `).
GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def parse_go_bool(text):
    """True/False as Go's strconv.ParseBool reads `text`, None when Go would return an error."""
    if text in GO_TRUE:
        return True
    if text in GO_FALSE:
        return False
    return None


def is_approved(release):
    """DKP honours only `modules.deckhouse.io/approved`, parsed with strconv.ParseBool (an unparsable
    value counts as not approved)."""
    return parse_go_bool(annotations_of(release).get(APPROVED_ANNOTATION)) is True


def sort_releases(releases):
    return sorted(releases, key=lambda r: (release_module(r) or "", version_key(release_version(r)),
                                           r["metadata"]["name"]))


# Ordered: the first pattern that matches a part of the message names that part's reason.
_BLOCKING_PATTERNS = (
    ("disruption_approval", re.compile(r"disruption approval", re.I)),
    ("approval", re.compile(r"waiting for the '[^']*approved[^']*' annotation", re.I)),
    ("update_window", re.compile(r"update window", re.I)),
    ("cooldown", re.compile(r"cooldown", re.I)),
    ("notification", re.compile(r"notification", re.I)),
    ("postponed", re.compile(r"postponed", re.I)),
    ("awaiting_release", re.compile(r"awaiting for v?\S+ release", re.I)),
    ("version_gap", re.compile(r"(minor|major) version is greater than deployed", re.I)),
    ("module_not_ready", re.compile(r"awaiting for module.*to be ready", re.I)),
    ("config_validation", re.compile(r"config validation failed", re.I)),
    ("update_policy", re.compile(r"update policy|update disabled", re.I)),
    ("requirements", re.compile(r"requirement|is not suitable", re.I)),
)


def blocking_reasons(message):
    """Machine-readable reasons a Pending release is not deployed, in the order its message names them.

    DKP joins deploy-time reasons with commas after `Release is ` (for example `Release is waiting for
    the update window, waiting for the 'modules.deckhouse.io/approved: "true"' annotation`) and failed
    requirements with `;`. A message nothing here recognises gives `unknown`; an empty one gives [].
    """
    text = (message or "").strip()
    if not text:
        return []
    body = re.sub(r"^release is\s+", "", text, flags=re.I)
    # The time suffix of a delay (`... until 02 Jan 2006 15:04 MST`) and the approval note belong to the
    # reason before them, not to a reason of their own.
    body = re.sub(r"\. After approval the release will be delayed.*$", "", body, flags=re.I | re.S)
    found = []
    for part in re.split(r"[;,]\s*(?=[a-zA-Z])", body):
        for reason, pattern in _BLOCKING_PATTERNS:
            if pattern.search(part):
                if reason not in found:
                    found.append(reason)
                break
    return found or ["unknown"]


def release_summary(release):
    """What an operator reads from `kubectl get mr NAME`, plus the annotations that steer it."""
    meta = release.get("metadata") or {}
    labels = meta.get("labels") or {}
    status = release.get("status") or {}
    annotations = annotations_of(release)
    phase = release_phase(release)
    return {
        "name": meta.get("name"),
        "module": release_module(release),
        "version": release_version(release),
        "phase": phase,
        "message": status.get("message") or "",
        "transition_time": status.get("transitionTime"),
        "approved": is_approved(release),
        "apply_now": annotations.get(APPLY_NOW_ANNOTATION) == "true",
        "reinstall": annotations.get(REINSTALL_ANNOTATION) == "true",
        "annotations": {k: annotations[k] for k in RELEASE_ANNOTATIONS if k in annotations},
        "update_policy": labels.get(UPDATE_POLICY_LABEL),
        "source": labels.get("source"),
        "apply_after": (release.get("spec") or {}).get("applyAfter"),
        # Released DKP (1.75, 1.76) keeps the version jumps a release allows in spec.update.versions.
        "update_versions": list((((release.get("spec") or {}).get("update") or {}).get("versions")) or []),
        "blocked_by": blocking_reasons(status.get("message")) if phase == PHASE_PENDING else [],
    }


def deployed_release(releases):
    """The Deployed release (the highest, should the controller ever leave two)."""
    deployed = [r for r in sort_releases(releases) if release_phase(r) == PHASE_DEPLOYED]
    return deployed[-1] if deployed else None


def next_pending_release(releases):
    """The Pending release DKP deploys next: the lowest by semantic version."""
    pending = [r for r in sort_releases(releases) if release_phase(r) == PHASE_PENDING]
    return pending[0] if pending else None


def module_release_state(releases):
    """{module: {"deployed": summary|None, "pending": [summaries, lowest first]}}."""
    by_module = {}
    for release in sort_releases(releases):
        by_module.setdefault(release_module(release) or "", []).append(release)
    state = {}
    for module, items in by_module.items():
        deployed = deployed_release(items)
        state[module] = {
            "deployed": release_summary(deployed) if deployed else None,
            "pending": [release_summary(r) for r in items if release_phase(r) == PHASE_PENDING],
        }
    return state


def list_module_releases(client, module=None):
    """Releases of one module (label `module=<name>`, as DKP selects them) or of all modules."""
    if module is None:
        items, _rv = client.list("ModuleRelease")
        return items
    items, _rv = client.list("ModuleRelease", label_selector="module=%s" % module)
    return [r for r in items if release_module(r) == module]


def describe_candidates(releases):
    if not releases:
        return "none"
    return ", ".join("%s (%s)" % (release_version(r), release_phase(r)) for r in sort_releases(releases))


def find_release(client, name=None, module=None, version=None, which=None):
    """The release a task names: by `name`, by `module` + `version`, or by `module` + `which`
    (`deployed` or `pending`). Returns (release, releases of its module); release is None only when
    `which` finds no release in that phase. A release that does not exist is a DkpError that lists
    the module's releases."""
    if name:
        release = client.get("ModuleRelease", name)
        module = release_module(release) if release else parse_release_name(name)[0]
        siblings = list_module_releases(client, module) if module else []
        if release is None:
            raise DkpError("ModuleRelease %s does not exist. Releases of module %s: %s"
                           % (name, module or "?", describe_candidates(siblings)))
        return release, siblings or [release]
    releases = list_module_releases(client, module)
    if version is not None:
        wanted = normalize_version(version)
        release = client.get("ModuleRelease", release_name(module, wanted))
        if release is None:
            matching = [r for r in releases if release_version(r) == wanted]
            release = matching[0] if matching else None
        if release is None:
            raise DkpError("Module %s has no release %s. Its releases: %s%s"
                           % (module, wanted, describe_candidates(releases),
                              "" if releases else " (is the module installed from a ModuleSource?)"))
        return release, releases
    if which == "deployed":
        return deployed_release(releases), releases
    return next_pending_release(releases), releases


# -- actions ----------------------------------------------------------------------------------------

def deployed_hint(release, releases):
    module = release_module(release)
    deployed = deployed_release([r for r in releases if release_module(r) == module])
    if deployed is None:
        return "the module has no Deployed release"
    return "the Deployed release is %s (%s)" % (deployed["metadata"]["name"], release_version(deployed))


def plan_action(action, release, releases):
    """The annotations `action` adds to `release`, {} when the release's state makes it a no-op.

    Idempotency follows the release's state, not the annotations: the controller deletes apply-now and
    reinstall once it has acted on them, so a second run must not add them again.
    """
    name = release["metadata"]["name"]
    phase = release_phase(release)
    annotations = annotations_of(release)
    message = ((release.get("status") or {}).get("message") or "").strip()
    why = " (%s)" % message if message else ""
    if action == "reinstall":
        if phase != PHASE_DEPLOYED:
            raise DkpError("ModuleRelease %s is %s%s: only the Deployed release of a module can be reinstalled; %s"
                           % (name, phase, why, deployed_hint(release, releases)))
        if annotations.get(REINSTALL_ANNOTATION) == "true":
            return {}  # requested already; the controller has not picked it up yet
        return {REINSTALL_ANNOTATION: "true"}
    if phase == PHASE_DEPLOYED:
        return {}
    if phase in FINAL_PHASES:
        verb = "approving" if action == "approve" else "applying"
        raise DkpError("ModuleRelease %s is %s%s: %s it has no effect; %s"
                       % (name, phase, why, verb, deployed_hint(release, releases)))
    if action == "approve":
        return {} if is_approved(release) else {APPROVED_ANNOTATION: "true"}
    return {} if annotations.get(APPLY_NOW_ANNOTATION) == "true" else {APPLY_NOW_ANNOTATION: "true"}


# -- update windows and durations -------------------------------------------------------------------

WINDOW_TIME_PATTERN = r"^(?:\d|[01]\d|2[0-3]):[0-5]\d$"
WINDOW_ORDER_MESSAGE = ("Invalid update windows. Start time (windows.from) should be less than the end time of "
                        "the update window (windows.to)")
DURATION_PATTERN = r"^(\d+h)?(\d+m)?(\d+s)?$"


def _minutes(hhmm):
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def window_errors(windows):
    """Messages (worded like DKP's schema and admission policy) for every invalid window time; days are
    checked by the modules' argument specs."""
    errors = []
    for index, window in enumerate(windows or []):
        where = "spec.update.windows[%d]" % index
        times_ok = True
        for key in ("from", "to"):
            value = window.get(key)
            if value in (None, ""):
                errors.append("%s.%s: Required value" % (where, key))
                times_ok = False
            elif not re.match(WINDOW_TIME_PATTERN, str(value)):
                # YAML 1.1 reads an unquoted 10:30 as the base-60 number 630.
                hint = (" (an unquoted H:MM in YAML is read as a base-60 number: quote the time, "
                        "for example from: \"10:30\")" if str(value).isdigit() else "")
                errors.append("%s.%s in body should match '%s' (UTC time as H:MM or HH:MM), got %r%s"
                              % (where, key, WINDOW_TIME_PATTERN, value, hint))
                times_ok = False
        if times_ok and _minutes(str(window["from"])) >= _minutes(str(window["to"])):
            errors.append("%s: %s (from %s, to %s)" % (where, WINDOW_ORDER_MESSAGE, window["from"], window["to"]))
    return errors


def windows_spec(windows):
    """Windows as the CRD stores them: `days` only when given."""
    out = []
    for window in windows or []:
        item = {"from": str(window["from"]), "to": str(window["to"])}
        if window.get("days"):
            item["days"] = list(window["days"])
        out.append(item)
    return out


def duration_error(value, option):
    """A message when `value` is not a Go-style duration DKP accepts (`30s`, `3m`, `1h30m`), else None."""
    if value is None:
        return None
    if not value or not re.match(DURATION_PATTERN, value):
        return ("%s must be a duration like 30s, 3m or 1h30m (pattern %s), got %r"
                % (option, DURATION_PATTERN, value))
    return None


# -- waits ------------------------------------------------------------------------------------------
# The rules the one wait engine (dkp_wait.wait_for) applies to releases: what "done" means, what fails at
# once, and how the last state reads on timeout. Writers and module_release_info share them.

WAIT_TARGETS = ("deployed", "pending", "reinstalled")


def describe_release(client, module_name):
    """describe(release) for timeouts: the release's phase and message, and the Module's phase."""
    def describe(release):
        if release is None:
            text = "the ModuleRelease does not exist"
        else:
            summary = release_summary(release)
            text = "release %s is %s%s" % (summary["name"], summary["phase"],
                                           ": %s" % summary["message"] if summary["message"] else "")
            pending = [k for k in (REINSTALL_ANNOTATION, IS_UPDATING_ANNOTATION)
                       if annotations_of(release).get(k) == "true"]
            if pending:
                text += " (annotations %s still \"true\")" % ", ".join(pending)
        if not module_name:
            return text
        try:
            module = client.get("Module", module_name)
        except DkpError as e:  # the description must not hide the timeout behind another error
            return text + "; Module %s: not read (%s)" % (module_name, e.msg)
        text += "; Module %s: %s" % (module_name, describe_module(module))
        if module is not None and is_true(condition(module, "IsOverridden")):
            text += " (overridden by a ModulePullOverride: DKP does not process its Pending releases)"
        return text
    return describe


def release_final(release):
    """A message when the release can no longer become Deployed (deleted or in a final phase), else None."""
    if release is None:
        return "The ModuleRelease was deleted while waiting"
    phase = release_phase(release)
    if phase in FINAL_PHASES:
        message = (release.get("status") or {}).get("message")
        return "ModuleRelease %s became %s%s" % (release["metadata"]["name"], phase,
                                                 ": %s" % message if message else "")
    return None


def is_deployed(release):
    return release is not None and release_phase(release) == PHASE_DEPLOYED


def is_pending(release):
    return release is not None and release_phase(release) == PHASE_PENDING


def reinstall_settled(release):
    """DKP took the reinstall request off the release and finished the deploy (isUpdating not "true")."""
    annotations = annotations_of(release)
    return (release is not None and annotations.get(REINSTALL_ANNOTATION) != "true"
            and annotations.get(IS_UPDATING_ANNOTATION) != "true")


def left_deployed(release):
    """Failure rule while reinstalling: the release must stay Deployed."""
    if release is not None and release_phase(release) != PHASE_DEPLOYED and release_phase(release) not in FINAL_PHASES:
        return "ModuleRelease %s is no longer Deployed (%s) while reinstalling" % (
            release["metadata"]["name"], release_phase(release))
    return release_final(release)


def pending_failure(release):
    """Waiting for a release to be Pending: a Deployed or final release will never be Pending again."""
    if release is None:
        return None  # it may still be created by the next registry scan
    phase = release_phase(release)
    if phase != PHASE_PENDING:
        return "ModuleRelease %s is %s, not Pending: it will not become Pending again" % (
            release["metadata"]["name"], phase)
    return None


def release_wait_rules(client, module_name, target):
    """Keyword arguments of dkp_wait.wait_for for a wait on one ModuleRelease until `target`
    (deployed, pending or reinstalled; the Module's own readiness after a reinstall is a second wait)."""
    describe = describe_release(client, module_name)
    if target == "deployed":
        return dict(predicate=is_deployed, failure=release_final, describe=describe)
    if target == "pending":
        return dict(predicate=is_pending, failure=pending_failure, describe=describe)
    if target == "reinstalled":
        return dict(predicate=reinstall_settled, failure=left_deployed, describe=describe)
    raise ValueError("unknown release wait target %r" % (target,))


def module_error_tick(client, module_name, grace, clock=None):
    """tick() for the wait on a reinstalled release: DKP keeps isUpdating "true" until the Module is Ready again, so
    a Module that cannot get there would hold that wait until its timeout. The tick reads the Module and applies the
    Module kind's rules: a stuck phase fails at once, a hook error once it has persisted `grace` seconds."""
    clock = clock or time.monotonic
    since = [None]

    def tick():
        module = client.get("Module", module_name)
        stuck = stuck_failure(module_name, module)
        if stuck:
            return stuck
        error = transient_failure(module_name, module)
        if not error:
            since[0] = None
            return None
        if since[0] is None:
            since[0] = clock()
        if clock() - since[0] >= grace:
            return "%s (for more than %ss, the wait_grace)" % (error, grace)
        return None
    return tick


def module_ready_rules(client, module_name, release_name):
    """wait_for keyword arguments for the Module of a reinstalled release: Ready with IsReady=True."""
    describe_mr = describe_release(client, None)

    def describe(module):
        try:
            release = client.get("ModuleRelease", release_name)
        except DkpError:
            release = None
        return "%s; Module %s: %s" % (describe_mr(release), module_name, describe_module(module))

    # The Module rules are the Module kind's (dkp_modules): Conflict/Unavailable fail at once, hook errors and
    # failed pulls only after the grace window.
    return dict(predicate=lambda m: m is not None and module_summary(m)["ready"],
                failure=lambda m: stuck_failure(module_name, m), transient=lambda m: transient_failure(module_name, m),
                describe=describe)


# -- the module_release task and the module_release_info reader --------------------------------------

def validate_release_action(params):
    """Refuse a module_release task that cannot name one release, before anything is read or written."""
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


def release_selection(params):
    """(name, module, version, which) of a module_release task, for find_release."""
    which = params.get("release")
    if params.get("module") and params.get("version") is None and not which:
        which = "deployed"  # reinstall of the module's release
    return params.get("name"), params.get("module"), params.get("version"), which


def select_for_action(client, params):
    """(release, releases of its module, result) for a module_release task: result is the task's whole result
    when `release` found no release in that phase (nothing to act on), else None."""
    action = params["action"]
    name, module_name, version, which = release_selection(params)
    release, releases = find_release(client, name=name, module=module_name, version=version, which=which)
    if release is None and action == "reinstall":
        raise DkpError("Module %s has no Deployed release to reinstall. Its releases: %s"
                       % (module_name, describe_candidates(releases)))
    if release is None:
        return None, releases, {"changed": False, "method": "none", "release": None,
                                "msg": "Module %s has no %s release; nothing to %s"
                                       % (module_name, which.capitalize(), action.replace("_", " "))}
    return release, releases, None


def wait_action_done(client, action, name, module_name, timeout, grace, wait_for):
    """(release, Module) once `action` is done. approve/apply_now: the release is Deployed. reinstall: DKP settled
    the request on the release, and only after that the Module is Ready (so the Ready from before the reinstall
    does not count). `wait_for` is dkp_wait.wait_for (passed in: this file does not load the wait engine)."""
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


def validate_release_query(params):
    """Refuse a module_release_info task with bad input, before any request."""
    errors = []
    if params.get("name"):
        if params.get("module") or params.get("version"):
            errors.append("name selects one release on its own; remove module and version from the task")
        elif check_release_name(params["name"]):
            errors.append(check_release_name(params["name"]))
    if params.get("module") and check_name(params["module"]):
        errors.append(check_name(params["module"]))
    if params.get("version") is not None:
        if not params.get("module"):
            errors.append("version selects a release of module: set module too")
        try:
            normalize_version(params["version"])
        except DkpError as e:
            errors.append(e.msg)
    if params.get("wait_for") and not (params.get("name") or (params.get("module") and params.get("version"))):
        errors.append("wait_for waits on one release: set name, or module and version")
    if errors:
        raise DkpError("; ".join(errors))


def selected_release(client, params, wait_for):
    """The one release a module_release_info task names (by name, or module and version), once its `wait_for`
    phase holds when set; None when the task lists releases only."""
    if not (params.get("name") or params.get("version") is not None):
        return None
    name = params.get("name") or release_name(params["module"], params["version"])
    if not params.get("wait_for"):
        selected, _siblings = find_release(client, name=params.get("name"), module=params.get("module"),
                                           version=params.get("version"))
        return selected
    module_name = params.get("module")
    if not module_name:
        release = client.get("ModuleRelease", name)
        module_name = release_module(release) if release else parse_release_name(name)[0]
    return wait_for(client, "ModuleRelease", name, timeout=params["wait_timeout"],
                    **release_wait_rules(client, module_name, params["wait_for"]))
