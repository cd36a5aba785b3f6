# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ModuleSource semantics: registry credentials (dockerCfg) built and compared by value, the
Deckhouse-owned source guard, input checks, status summaries and the rules of a wait for a sync.
Pure logic."""

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import base64
import binascii
import datetime
import json
import re

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import FIELD_MANAGER, DkpError, NO_LOG_MARKER
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_modules import check_name
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_releases import duration_error
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_resource import (
    deep_merge,
    managed_view,
    merge_patch_between,
)

DOCKER_CFG_PATH = "spec.registry.dockerCfg"
HERITAGE_LABEL = "heritage"
DECKHOUSE_SOURCE = "deckhouse"
# What DKP lets a user change on its own `deckhouse` ModuleSource (heritage admission policy).
DECKHOUSE_SOURCE_WRITABLE = frozenset(["scanInterval"])

_REPO_RE = re.compile(r"^[0-9A-Za-z.\-]+(:[0-9]{1,5})?(/[0-9A-Za-z.\-_]+)*/?$")


def registry_host(repo):
    """The registry host (with port) of a repository path such as `registry.example.com:5000/modules`."""
    if not repo or not _REPO_RE.match(repo):
        hint = " without the scheme (set `scheme` instead)" if repo and "://" in repo else ""
        raise DkpError("repo %r is not a registry repository path%s: use HOST[:PORT]/PATH, for example "
                       "registry.example.com/deckhouse/modules" % (repo, hint))
    return repo.split("/", 1)[0]


def _b64(text):
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def build_docker_config(host, username, password):
    """The base64 dockerCfg DKP expects, with credentials for one registry host."""
    auth = {"username": username, "password": password, "auth": _b64("%s:%s" % (username, password))}
    return _b64(json.dumps({"auths": {host: auth}}, sort_keys=True, separators=(",", ":")))


def decode_docker_config(value):
    """The docker config dict of a base64 dockerCfg, or None when it is not one."""
    if not value:
        return None
    try:
        decoded = json.loads(base64.b64decode(value, validate=True).decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(decoded, dict) or not isinstance(decoded.get("auths"), dict):
        return None
    return decoded


def _bare_host(key):
    return re.sub(r"^[a-z]+://", "", str(key)).split("/", 1)[0]


def host_credentials(docker_config, host):
    """(username, password) stored for `host` in a decoded docker config, or None."""
    for key, entry in ((docker_config or {}).get("auths") or {}).items():
        if _bare_host(key) != host or not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            try:
                user, _sep, password = base64.b64decode(entry["auth"]).decode("utf-8").partition(":")
            except (binascii.Error, ValueError, UnicodeDecodeError):
                return None
            return user, password
        if entry.get("username") is not None:
            return entry.get("username"), entry.get("password") or ""
    return None


def desired_docker_config(live_value, host, docker_config=None, username=None, password=None):
    """The dockerCfg the task wants, reusing the live string whenever it already says the same thing,
    so the same credentials never cause a write. What counts is what DKP uses: the credentials for the
    repository's host (entries for other hosts are ignored). `docker_config=""` removes the credentials (None)."""
    if docker_config is not None:
        if docker_config == "":
            return None
        wanted = decode_docker_config(docker_config)
        if wanted is None:
            raise DkpError("docker_config is not a base64-encoded docker config JSON with an `auths` object "
                           "(for example the output of `base64 -w0 ~/.docker/config.json`)")
        live = decode_docker_config(live_value)
        wanted_credentials = host_credentials(wanted, host)
        same_for_host = wanted_credentials is not None and wanted_credentials == host_credentials(live, host)
        return live_value if live == wanted or same_for_host else docker_config
    if username is not None:
        if host_credentials(decode_docker_config(live_value), host) == (username, password):
            return live_value
        return build_docker_config(host, username, password)
    return live_value


def is_deckhouse_owned(source):
    return (((source or {}).get("metadata") or {}).get("labels") or {}).get(HERITAGE_LABEL) == "deckhouse"


def deckhouse_owned_violation(live, patch):
    """A message when `patch` changes a Deckhouse-owned ModuleSource beyond what DKP allows, else None."""
    if not is_deckhouse_owned(live):
        return None
    name = live["metadata"]["name"]
    changed = []
    for key, value in (patch or {}).items():
        if key == "metadata":
            changed += ["metadata.%s" % k for k in value if k != "resourceVersion"]
        elif key == "spec" and isinstance(value, dict):
            changed += ["spec.%s" % k for k in value
                        if not (name == DECKHOUSE_SOURCE and k in DECKHOUSE_SOURCE_WRITABLE)]
        else:
            changed.append(key)
    if not changed:
        return None
    allowed = ("only scan_interval (spec.scanInterval) may be changed" if name == DECKHOUSE_SOURCE
               else "it may not be changed")
    return ("ModuleSource %s is managed by Deckhouse (label heritage: deckhouse): %s. The task would change %s; "
            "remove those options from the task." % (name, allowed, ", ".join(sorted(changed))))


def source_modules(source):
    """The modules a source offers, each with its pull error (newer `error`, older `pullError` or
    `status.moduleErrors`)."""
    status = (source or {}).get("status") or {}
    old_errors = {e.get("name"): e.get("error") for e in status.get("moduleErrors") or [] if isinstance(e, dict)}
    modules = []
    for item in status.get("modules") or []:
        name = item.get("name")
        modules.append({
            "name": name,
            "version": item.get("version"),
            "policy": item.get("policy"),
            "checksum": item.get("checksum"),
            "overridden": bool(item.get("overridden")),
            "error": item.get("error") or item.get("pullError") or old_errors.get(name) or None,
        })
    return sorted(modules, key=lambda m: m["name"] or "")


def source_summary(source):
    """A ModuleSource for results: registry settings without the credentials, and its sync status."""
    if not source:
        return None
    spec = source.get("spec") or {}
    registry = spec.get("registry") or {}
    status = source.get("status") or {}
    return {
        "name": source["metadata"]["name"],
        "repo": registry.get("repo"),
        "scheme": registry.get("scheme"),
        "ca": registry.get("ca"),
        "docker_config": NO_LOG_MARKER if registry.get("dockerCfg") else None,
        "scan_interval": spec.get("scanInterval"),
        "deckhouse_owned": is_deckhouse_owned(source),
        "phase": status.get("phase"),
        "message": status.get("message") or "",
        "sync_time": status.get("syncTime"),
        "modules_count": status.get("modulesCount"),
    }


def source_secret_values(source):
    """The secret strings of a ModuleSource (its dockerCfg and the credentials inside), to register as no_log
    before anything is printed."""
    value = (((source or {}).get("spec") or {}).get("registry") or {}).get("dockerCfg")
    if not value:
        return []
    secrets = [value]
    for entry in ((decode_docker_config(value) or {}).get("auths") or {}).values():
        if isinstance(entry, dict):
            secrets += [entry[k] for k in ("auth", "password", "identitytoken", "registrytoken")
                        if isinstance(entry.get(k), str) and entry.get(k)]
    return secrets


# -- input checks -----------------------------------------------------------------------------------

_PEM_RE = re.compile(r"-----BEGIN CERTIFICATE-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END CERTIFICATE-----")


def ca_error(ca, option="ca"):
    """A message when `ca` is not one or more PEM certificates, else None; V("") (remove the CA) is fine.
    The same rule registry_mode applies to its CA, checked deeper: every block must decode to DER."""
    if ca is None or ca == "":
        return None
    text = str(ca)
    blocks = _PEM_RE.findall(text)
    leftover = _PEM_RE.sub("", text).strip()
    valid = bool(blocks) and not leftover
    for body in blocks:
        try:
            der = base64.b64decode("".join(body.split()), validate=True)
        except (binascii.Error, ValueError):
            valid = False
            break
        valid = valid and der[:1] == b"\x30"  # an X.509 certificate is a DER SEQUENCE
    if valid:
        return None
    return ("%s must be a PEM certificate (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----, base64 "
            "DER in between), for example the content of the registry's ca.crt" % option)


# DKP 1.75/1.76 use spec.scanInterval only when it is longer than this (shorter values fall back to it).
MIN_SCAN_SECONDS = 180
_DURATION_PART_RE = re.compile(r"(\d+)([hms])")


def duration_seconds(value):
    """Seconds of a Go-style duration as DKP's schema allows it (`1h30m`, `45s`), None when not one."""
    if not value or not re.match(r"^(\d+h)?(\d+m)?(\d+s)?$", value):
        return None
    return sum(int(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in _DURATION_PART_RE.findall(value))


def scan_interval_warning(value):
    """A warning when DKP will ignore `scan_interval`, else None."""
    seconds = duration_seconds(value)
    if seconds is None or seconds > MIN_SCAN_SECONDS:
        return None
    return ("scan_interval %s is not longer than 3m: DKP (1.75, 1.76) uses spec.scanInterval only when it is longer "
            "than 3 minutes and scans the registry every 3m otherwise" % value)


# -- sync status and the wait for a sync ------------------------------------------------------------

MODULE_ERRORS_MESSAGE = "Some errors occurred. Inspect status for details"
# status.message values that are not a failed sync ("" in released DKP, "Ready" in its docs).
_SYNC_OK_MESSAGES = ("", "Ready", MODULE_ERRORS_MESSAGE)


def sync_error(source):
    """The source's own sync failure (for example `list tags: ... NAME_UNKNOWN: ...`), else None. Pull errors of
    single modules (`Some errors occurred...`) are reported per module, not as a failed sync."""
    message = (((source or {}).get("status") or {}).get("message") or "").strip()
    if message in _SYNC_OK_MESSAGES:
        return None
    return message


def describe_source(source):
    if source is None:
        return "the ModuleSource does not exist"
    summary = source_summary(source)
    errors = ["%s: %s" % (m["name"], m["error"]) for m in source_modules(source) if m["error"]]
    return "syncTime %s, %s modules%s%s%s" % (
        summary["sync_time"] or "never", summary["modules_count"] if summary["modules_count"] is not None else "no",
        ", phase %s" % summary["phase"] if summary["phase"] else "",
        ", message %r" % summary["message"] if summary["message"] else "",
        "; pull errors: " + "; ".join(errors) if errors else "")


def write_time(obj):
    """Server time of our last write to `obj`, from its managedFields (None when unknown)."""
    times = [f.get("time") for f in ((obj or {}).get("metadata") or {}).get("managedFields") or []
             if f.get("manager") == FIELD_MANAGER and f.get("time")]
    return max(times) if times else None


def parse_time(value):
    """An RFC 3339 UTC timestamp to whole seconds (fractions dropped), or None."""
    try:
        return datetime.datetime.strptime(value[:19], "%Y-%m-%dT%H:%M:%S")
    except (TypeError, ValueError):
        return None


def source_wait_rules(before=None, after=None, changed=False):
    """wait_for keyword arguments for "the source is synced".

    After a change only a sync newer than the write counts: syncTime later than the write's server time, or
    different from the syncTime before the write (should the clocks disagree). Without a change (or for a
    reader) any sync counts. A fresh sync that reports a sync error fails at once."""
    before_sync = ((before or {}).get("status") or {}).get("syncTime")
    written_at = parse_time(write_time(after)) if changed else None

    def fresh(source):
        sync = ((source or {}).get("status") or {}).get("syncTime")
        if not sync:
            return False
        if not changed:
            return True
        synced_at = parse_time(sync)
        return sync != before_sync or (written_at is not None and synced_at is not None and synced_at > written_at)

    def failure(source):
        if source is None:
            return "The ModuleSource was deleted while waiting"
        error = sync_error(source) if fresh(source) else None
        if error:
            return "ModuleSource %s failed to sync its registry: %s" % (source["metadata"]["name"], error)
        return None

    return dict(predicate=lambda s: fresh(s) and sync_error(s) is None, failure=failure, fresh=fresh,
                describe=describe_source)


def source_gone_rules():
    return dict(predicate=lambda s: s is None,
                describe=lambda s: describe_source(s) + (
                    "; finalizers %s" % s["metadata"].get("finalizers") if s else ""))


def source_info_summary(source):
    """source_summary plus the sync error and the offered modules (what module_source_info returns)."""
    summary = source_summary(source)
    summary["sync_error"] = sync_error(source)
    summary["modules"] = source_modules(source)
    return summary


# -- the module_source task -------------------------------------------------------------------------

SPEC_OPTIONS = ("repo", "scheme", "ca", "docker_config", "registry_username", "registry_password", "scan_interval")


def validate(params):
    """Refuse a module_source task with bad input, before anything is read or written."""
    errors = []
    if check_name(params["name"], "ModuleSource name"):
        errors.append(check_name(params["name"], "ModuleSource name"))
    if params["state"] == "absent":
        conflicting = [k for k in SPEC_OPTIONS if params.get(k) is not None]
        if conflicting:
            errors.append("state=absent deletes the source; remove %s from the task" % ", ".join(conflicting))
    if params.get("repo") is not None:
        try:
            registry_host(params["repo"])
        except DkpError as e:
            errors.append(e.msg)
    errors += [m for m in [duration_error(params.get("scan_interval"), "scan_interval"), ca_error(params.get("ca"))]
               if m]
    if errors:
        raise DkpError("; ".join(errors))


def desired_object(params, live):
    """The ModuleSource the task wants (credentials reused by value, the Deckhouse-owned guard applied)."""
    name = params["name"]
    obj = live or {"apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleSource", "metadata": {"name": name},
                   "spec": {"registry": {}}}
    registry = (obj.get("spec") or {}).get("registry") or {}
    repo = params.get("repo") or registry.get("repo")
    if not repo:
        raise DkpError("ModuleSource %s does not exist: set repo (the registry repository of the modules) to "
                       "create it" % name)
    overlay = {"registry": {"repo": repo}}
    if params.get("scheme") is not None:
        overlay["registry"]["scheme"] = params["scheme"]
    if params.get("ca") is not None:
        overlay["registry"]["ca"] = params["ca"] or None
    if params.get("scan_interval") is not None:
        overlay["scanInterval"] = params["scan_interval"]
    spec = deep_merge(obj.get("spec") or {}, overlay)
    docker_cfg = desired_docker_config(registry.get("dockerCfg"), registry_host(repo),
                                       docker_config=params.get("docker_config"),
                                       username=params.get("registry_username"),
                                       password=params.get("registry_password"))
    if docker_cfg:
        spec["registry"]["dockerCfg"] = docker_cfg
    else:
        spec["registry"].pop("dockerCfg", None)
    wanted = dict(obj, spec=spec)
    violation = deckhouse_owned_violation(live, merge_patch_between(managed_view(live), managed_view(wanted)))
    if violation:
        raise DkpError(violation)
    return wanted


def derived_secret_values(params, *sources):
    """Values derived from a task's no_log credentials (the dockerCfg built from them) and the secrets of
    `sources` (their dockerCfg and the credentials inside), to register as no_log so Ansible masks them should
    any message carry them."""
    secrets = [value for source in sources for value in source_secret_values(source)]
    if params.get("registry_username") is not None and params.get("repo"):
        secrets.append(build_docker_config(registry_host(params["repo"]), params["registry_username"],
                                           params["registry_password"]))
    return secrets


def owned_deletion_refusal(live):
    """A message when `live` is a Deckhouse-owned ModuleSource (DKP renders it again), else None."""
    if not is_deckhouse_owned(live):
        return None
    return ("ModuleSource %s is managed by Deckhouse (label heritage: deckhouse) and cannot be deleted"
            % live["metadata"]["name"])
