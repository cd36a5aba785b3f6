# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure logic of idempotent writes: merging, patch building, change detection, redaction.

Redaction follows one rule, SECRET_KEY_RULE below (also in docs via the modules' return docs): results,
diffs and no_log registration (secret_values) all use it.

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


def redact(obj, extra_keys=()):
    """A copy of `obj` with secrets replaced by the no_log marker, by the one rule of SECRET_KEY_RULE.

    `extra_keys` adds key names to the rule (the user's `redact_keys`); an entry with a dot is a path
    from the top of `obj` instead (`spec.registry.dockerCfg`; a `*` segment matches every key)."""
    extra = _normalised_keys(extra_keys)
    obj = _redact_walk(obj, extra)
    for path in extra_keys or ():
        if "." in str(path):
            _redact_path(obj, str(path).split("."))
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
        else:
            node[key] = _mask(node[key])


def diff_view(before, after, secret_paths=(), extra_keys=()):
    """Ansible diff of the managed fields, secrets redacted (SECRET_KEY_RULE, plus paths and extra keys)."""
    keys = tuple(secret_paths or ()) + tuple(extra_keys or ())

    def view(obj):
        return redact(managed_view(obj), keys) if obj else {}
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
    # A 409 that follows a retried request (the first try timed out after the server applied it) may be
    # our own write: when the re-read then needs no change, the task did change the object.
    landed = None
    for _attempt in range(attempts):
        live = client.get(kind, name, namespace)
        wanted = desired(live)
        if live is None:
            body = create_body(wanted) if create_body else wanted
            try:
                after = client.create(kind, body, namespace=namespace, dry_run=check_mode)
            except ConflictError as e:
                if e.details.get("after_retry"):
                    landed = landed or (None, "create")
                continue  # created concurrently: converge on the existing object
            return EnsureResult(True, None, after, "create")
        patch = merge_patch_between(managed_view(live), managed_view(wanted))
        if patch is None:
            if landed is not None:
                return EnsureResult(True, landed[0], live, landed[1])
            return EnsureResult(False, live, live, "none")
        patch.setdefault("metadata", {})["resourceVersion"] = live["metadata"]["resourceVersion"]
        try:
            after = client.merge_patch(kind, name, patch, namespace=namespace, dry_run=check_mode)
        except ConflictError as e:
            if e.details.get("after_retry"):
                landed = landed or (live, "patch")
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


SECRET_KEY_RULE = """\
A key is secret, wherever it appears (settings, specs, nested dicts, dicts inside lists), when its name,
compared case-insensitively with `_`, `-` and `.` removed, is `auth`, `basic`, `credentials` or
`dockerconfigjson`, or ends with one of: password(s), passwd, passphrase, secret, token(s), license,
licensekey, apikey(s), privatekey(s) (so sshprivatekeys), tlskey, keydata, dockercfg, accesskey,
secretkey, basicauth. Everything under a secret key is secret: a string or number is replaced by
VALUE_SPECIFIED_IN_NO_LOG_PARAMETER, a dict or list keeps its shape with every leaf replaced (list
items included). Booleans, nulls and empty strings are kept: they carry no secret. Users add key names
with `redact_keys`."""

_SECRET_EXACT = frozenset(("auth", "basic", "credentials", "dockerconfigjson"))
_SECRET_SUFFIXES = ("password", "passwords", "passwd", "passphrase", "secret", "token", "tokens", "license",
                    "licensekey", "apikey", "apikeys", "privatekey", "privatekeys", "tlskey", "keydata",
                    "dockercfg", "accesskey", "secretkey", "basicauth", "credentials")


def _normalise(key):
    return str(key).lower().replace("_", "").replace("-", "").replace(".", "")


def _normalised_keys(keys):
    return frozenset(_normalise(k) for k in keys or () if "." not in str(k))


def is_sensitive_key(key, extra_keys=()):
    """Whether values under `key` are secret (SECRET_KEY_RULE)."""
    k = _normalise(key)
    extra = extra_keys if isinstance(extra_keys, frozenset) else _normalised_keys(extra_keys)
    return k in _SECRET_EXACT or k.endswith(_SECRET_SUFFIXES) or k in extra


def _mask(value):
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    if value is None or isinstance(value, bool) or value == "":
        return value
    return NO_LOG_MARKER


def _redact_walk(obj, extra):
    if isinstance(obj, dict):
        return {k: (_mask(v) if is_sensitive_key(k, extra) else _redact_walk(v, extra)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_redact_walk(v, extra) for v in obj]
    return copy.deepcopy(obj)


def redact_sensitive(obj, extra_keys=()):
    """A copy of obj with every secret replaced by the no_log marker (SECRET_KEY_RULE)."""
    return redact(obj, extra_keys)


def secret_values(obj, extra_keys=()):
    """Every secret string in `obj` by SECRET_KEY_RULE (plus `extra_keys`), with its base64 form, to
    register as no_log values before anything is printed. Numbers count as their text. A base64
    dockerCfg is decoded and the credentials inside it are added too."""
    import base64

    extra = _normalised_keys(extra_keys)
    found = []

    def add(value):
        if isinstance(value, bool) or value is None:
            return
        text = value if isinstance(value, str) else str(value)
        if not text or text in found:
            return
        found.append(text)
        if len(text) >= 4:
            encoded = base64.b64encode(text.encode()).decode()
            if encoded not in found:
                found.append(encoded)

    def leaves(value, key=None):
        if isinstance(value, dict):
            for k, v in value.items():
                leaves(v, k)
        elif isinstance(value, list):
            for v in value:
                leaves(v, key)
        else:
            add(value)
            if isinstance(value, str) and key is not None and _normalise(key) in ("dockercfg", "dockerconfigjson"):
                inner_cfg(value)

    def inner_cfg(value):
        import json

        try:
            cfg = json.loads(base64.b64decode(value, validate=True))
        except (ValueError, TypeError):
            try:
                cfg = json.loads(value)
            except ValueError:
                return
        for entry in ((cfg.get("auths") if isinstance(cfg, dict) else None) or {}).values():
            if not isinstance(entry, dict):
                continue
            for k in ("auth", "password", "identitytoken", "registrytoken"):
                if isinstance(entry.get(k), str):
                    add(entry[k])
            if isinstance(entry.get("auth"), str):
                try:
                    decoded = base64.b64decode(entry["auth"]).decode("utf-8", "replace")
                except (ValueError, TypeError):
                    continue
                add(decoded)
                if ":" in decoded:
                    add(decoded.split(":", 1)[1])

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if is_sensitive_key(k, extra):
                    leaves(v, k)
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(obj)
    return found


def strip_server_fields(obj):
    """An object without managedFields, which only add noise to results."""
    if not obj:
        return obj
    obj = copy.deepcopy(obj)
    (obj.get("metadata") or {}).pop("managedFields", None)
    return obj
