# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure logic of idempotent writes: merging, patch building, change detection, redaction.

Nothing here talks to the network except `ensure`, which drives a DkpClient through the
read -> compute -> guarded patch -> (409: re-read) loop.
"""

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import copy

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import (
    ConflictError,
    DkpError,
    NO_LOG_MARKER,
)

MANAGED_METADATA = ("labels", "annotations")


def deep_merge(base, overlay):
    """Merge `overlay` into a copy of `base`; a None value in `overlay` removes that key."""
    result = copy.deepcopy(base) if isinstance(base, dict) else {}
    for key, value in (overlay or {}).items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
            if isinstance(value, dict):
                result[key] = _drop_nones(result[key])
    return result


def _drop_nones(value):
    if isinstance(value, dict):
        return {k: _drop_nones(v) for k, v in value.items() if v is not None}
    return value


def merge_patch_between(before, after):
    """The RFC 7386 merge patch that turns `before` into `after` (None when they are equal)."""
    if before == after:
        return None
    if not isinstance(before, dict) or not isinstance(after, dict):
        return copy.deepcopy(after)
    patch = {}
    for key in before:
        if key not in after:
            patch[key] = None
    for key, value in after.items():
        if key not in before:
            patch[key] = copy.deepcopy(value)
        else:
            sub = merge_patch_between(before[key], value)
            if sub is not None or (before[key] is not None and value is None):
                patch[key] = sub
    return patch or None


def managed_view(obj):
    """What `changed` is decided on: spec (or Module-like top-level fields), labels and annotations."""
    if not obj:
        return {}
    meta = obj.get("metadata") or {}
    view = {"metadata": {k: meta.get(k) or {} for k in MANAGED_METADATA}}
    for key, value in obj.items():
        if key not in ("apiVersion", "kind", "metadata", "status"):
            view[key] = copy.deepcopy(value)
    return view


def redact(obj, secret_paths):
    """A copy of `obj` with each dotted path in `secret_paths` replaced by the no_log marker.

    A path segment `*` matches every key of a dict."""
    obj = copy.deepcopy(obj)
    for path in secret_paths:
        _redact_path(obj, path.split("."))
    return obj


def _redact_path(node, parts):
    if not isinstance(node, dict) or not parts:
        return
    head, rest = parts[0], parts[1:]
    keys = list(node) if head == "*" else [head]
    for key in keys:
        if key not in node:
            continue
        if rest:
            _redact_path(node[key], rest)
        elif node[key] not in (None, ""):
            node[key] = NO_LOG_MARKER


def diff_view(before, after, secret_paths=()):
    """Ansible diff of the managed fields, secrets redacted."""
    def view(obj):
        return redact_sensitive(redact(managed_view(obj), secret_paths)) if obj else {}
    return {"before": view(before), "after": view(after)}


class EnsureResult:
    def __init__(self, changed, before, after, method):
        self.changed = changed
        self.before = before
        self.after = after
        self.method = method


def ensure(client, kind, name, desired, namespace=None, check_mode=False, create_body=None, attempts=5):
    """Make the managed fields of one object match `desired(live)`.

    `desired` gets the live object (or None) and returns the full desired object; only the fields it
    changes are sent, as a merge patch guarded by the live resourceVersion. A 409 (somebody wrote in
    between) re-reads and recomputes, so a concurrent writer's fields are never overwritten with a
    stale copy. Returns EnsureResult; in check mode the server runs a dry-run and stores nothing.
    """
    for _attempt in range(attempts):
        live = client.get(kind, name, namespace)
        wanted = desired(live)
        if live is None:
            body = create_body(wanted) if create_body else wanted
            try:
                after = client.create(kind, body, namespace=namespace, dry_run=check_mode)
            except ConflictError:
                continue  # created concurrently: converge on the existing object
            return EnsureResult(True, None, after, "create")
        patch = merge_patch_between(managed_view(live), managed_view(wanted))
        if patch is None:
            return EnsureResult(False, live, live, "none")
        patch.setdefault("metadata", {})["resourceVersion"] = live["metadata"]["resourceVersion"]
        try:
            after = client.merge_patch(kind, name, patch, namespace=namespace, dry_run=check_mode)
        except ConflictError:
            continue
        changed = managed_view(after) != managed_view(live)
        return EnsureResult(changed, live, after, "patch")
    raise DkpError("%s %s kept changing while we tried to update it (%d attempts); another writer is "
                   "updating it in a loop" % (kind, name, attempts))


def ensure_absent(client, kind, name, namespace=None, check_mode=False):
    live = client.get(kind, name, namespace)
    if live is None:
        return EnsureResult(False, None, None, "none")
    client.delete(kind, name, namespace=namespace, dry_run=check_mode)
    return EnsureResult(True, live, None, "delete")


def condition(obj, ctype):
    """The condition of type `ctype` from obj.status.conditions, or {}."""
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return cond
    return {}


# Keys whose values are secret wherever they appear in settings or specs.
_SENSITIVE_SUFFIXES = ("password", "passwd", "token", "secret", "license", "dockercfg", "privatekey",
                       "accesskey", "secretkey", "apikey", "credentials")


def is_sensitive_key(key):
    k = str(key).lower().replace("_", "").replace("-", "")
    return k.endswith(_SENSITIVE_SUFFIXES)


def redact_sensitive(obj):
    """A copy of obj with the value of every secret-looking key replaced by the no_log marker."""
    if isinstance(obj, dict):
        return {k: (NO_LOG_MARKER if is_sensitive_key(k) and v not in (None, "", {}) and not isinstance(v, (dict, list))
                    else redact_sensitive(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact_sensitive(v) for v in obj]
    return obj


def strip_server_fields(obj):
    """An object without managedFields, which only add noise to results."""
    if not obj:
        return obj
    obj = copy.deepcopy(obj)
    (obj.get("metadata") or {}).pop("managedFields", None)
    return obj
