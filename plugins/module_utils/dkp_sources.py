# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ModuleSource semantics: registry credentials (dockerCfg) built and compared by value, the
Deckhouse-owned source guard, and status summaries. Pure logic."""

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import base64
import binascii
import json
import re

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import DkpError, NO_LOG_MARKER

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
