# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ModulePullOverride semantics: input checks, the desired object, summaries, the sources that offer a
module, and the rules of the waits after a create, a new tag or `renew`.

What released DKP does (1.75, 1.76, override controller): a new image digest is deployed (and Deckhouse
restarts) and the `renew` annotation removed. When the tag still resolves to the digest that runs, the
controller changes nothing: `updatedAt`, the digest and `renew` stay. So "nothing moved" has no event of
its own; the writer waits SETTLE_SECONDS for a move and then reports that the newest digest already runs.
"""

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import re

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import KINDS, DkpError
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_modules import check_name
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_releases import duration_error
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_resource import deep_merge, strip_server_fields

RENEW_ANNOTATION = "renew"
READY_MESSAGE = "Ready"
# Messages that stay until an operator acts (DKP's override controller).
FAILURE_PREFIXES = ("The module is embedded", "The module disabled", "The module not found", "The source not found",
                    "The module does not have an active source", "Download error", "validation failed")
# How long DKP gets to react to our write before a state from before it is judged: the controller reconciles
# an annotation or spec change at once, so a digest that has not moved by then is the newest one, and a failure
# message that is still there is about the new spec too.
SETTLE_SECONDS = 10
_IMAGE_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def validate(params):
    errors = []
    if check_name(params["name"]):
        errors.append(check_name(params["name"]))
    if params["state"] == "absent":
        conflicting = [k for k in ("image_tag", "scan_interval") if params.get(k) is not None]
        if params["renew"]:
            conflicting.append("renew")
        if params.get("rollback") is False:
            conflicting.append("rollback=false")
        if conflicting:
            errors.append("state=absent deletes the override; remove %s from the task" % ", ".join(conflicting))
    if params.get("image_tag") is not None and not _IMAGE_TAG_RE.match(params["image_tag"]):
        errors.append("image_tag %r is not a valid image tag: up to 128 letters, digits, '_', '.' and '-', not "
                      "starting with '.' or '-'" % params["image_tag"])
    errors += [m for m in [duration_error(params.get("scan_interval"), "scan_interval")] if m]
    if errors:
        raise DkpError("; ".join(errors))


def desired_object(params, live, renew_value):
    name = params["name"]
    if live is None and not params.get("image_tag"):
        raise DkpError("ModulePullOverride %s does not exist: set image_tag to create it" % name)
    kind = KINDS["ModulePullOverride"]
    obj = live or {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": {"name": name}, "spec": {}}
    overlay = {"spec": {}}
    for option, field in (("image_tag", "imageTag"), ("scan_interval", "scanInterval"), ("rollback", "rollback")):
        if params.get(option) is not None:
            overlay["spec"][field] = params[option]
    if renew_value:
        overlay["metadata"] = {"annotations": {RENEW_ANNOTATION: renew_value}}
    return deep_merge(obj, overlay)


def status_of(obj):
    return (obj or {}).get("status") or {}


def override_summary(obj):
    """A ModulePullOverride for results (it holds no secrets)."""
    if not obj:
        return None
    spec = obj.get("spec") or {}
    status = status_of(obj)
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return {
        "name": obj["metadata"]["name"],
        "image_tag": spec.get("imageTag"),
        "scan_interval": spec.get("scanInterval"),
        "rollback": spec.get("rollback"),
        "image_digest": status.get("imageDigest"),
        "updated_at": status.get("updatedAt"),
        "message": status.get("message"),
        "ready": status.get("message") == READY_MESSAGE and bool(status.get("imageDigest")),
        "renew_pending": RENEW_ANNOTATION in annotations,
        "error": failure_message(status.get("message")),
        "object": strip_server_fields(obj),
    }


# -- sources ----------------------------------------------------------------------------------------

def offering_sources(client, module):
    """(names of the sources that list `module` in status.modules, {source: [modules it offers]})."""
    sources, _rv = client.list("ModuleSource")
    offered = {}
    for source in sources:
        offered[source["metadata"]["name"]] = sorted(
            m.get("name") for m in ((source.get("status") or {}).get("modules") or []) if m.get("name"))
    return sorted(n for n, mods in offered.items() if module in mods), offered


def not_offered_refusal(module, offered):
    if not offered:
        listing = "there is no ModuleSource in the cluster"
    else:
        listing = "; ".join("%s offers %s" % (name, ", ".join(mods) if mods else "nothing (not synced yet?)")
                            for name, mods in sorted(offered.items()))
        listing = "ModuleSources: " + listing
    return ("No ModuleSource offers module %s, so a ModulePullOverride for it cannot pull anything (%s). Create or "
            "fix the ModuleSource of the module first (module_source, wait: true), or check the module name"
            % (module, listing))


# -- waits ------------------------------------------------------------------------------------------

def failure_message(message):
    if not message or not message.startswith(FAILURE_PREFIXES):
        return None
    if message.startswith("The module disabled"):
        return message + ": enable the module in its ModuleConfig (enabled: true) for the override to take effect"
    return message


def describe_override(obj):
    if obj is None:
        return "the ModulePullOverride does not exist"
    status = status_of(obj)
    return "message %r, imageDigest %s, updatedAt %s" % (
        status.get("message") or "", status.get("imageDigest") or "<none>", status.get("updatedAt") or "<none>")


def moved(before, obj, must_change):
    """Evidence that DKP acted on our write: a new digest (after renew), or also a new updatedAt (new tag)."""
    old, new = status_of(before), status_of(obj)
    if must_change == "digest":
        return bool(new.get("imageDigest")) and new.get("imageDigest") != old.get("imageDigest")
    if must_change == "digest_or_time":
        return (new.get("imageDigest") != old.get("imageDigest")) or (new.get("updatedAt") != old.get("updatedAt"))
    return True


def override_wait_rules(name, before, must_change, settled, allow_missing=False):
    """wait_for keyword arguments for "the override runs an image".

    must_change: None (the current Ready counts), "digest" (after renew) or "digest_or_time" (after a new
    tag). settled() is True once DKP has had SETTLE_SECONDS to react: a failure message from before the
    write is judged only then, so the message of the previous spec does not fail the new one.
    allow_missing: a reader waits for an override that may still be created."""
    old = status_of(before)

    def ready(obj):
        status = status_of(obj)
        return (bool(status.get("imageDigest")) and status.get("message") == READY_MESSAGE
                and moved(before, obj, must_change))

    def failure(obj):
        if obj is None:
            return None if allow_missing else "ModulePullOverride %s was deleted while waiting" % name
        message = status_of(obj).get("message")
        if before is not None and message == old.get("message") and not settled():
            return None
        return failure_message(message)

    def describe(obj):
        text = describe_override(obj)
        if must_change and obj is not None and status_of(obj).get("imageDigest") == old.get("imageDigest"):
            text += " (the digest from before the task: no new image has been deployed)"
        return text

    return dict(predicate=ready, failure=failure, describe=describe)


def runs_newest(before, obj):
    """After SETTLE_SECONDS without a move: the override is Ready on the digest it ran before, so the tag
    resolves to the image that already runs."""
    status = status_of(obj)
    return (obj is not None and status.get("message") == READY_MESSAGE and bool(status.get("imageDigest"))
            and status.get("imageDigest") == status_of(before).get("imageDigest"))


def gone_rules():
    return dict(predicate=lambda o: o is None,
                describe=lambda o: describe_override(o) + (
                    "; finalizers %s" % o["metadata"].get("finalizers") if o else ""))


# -- the module_pull_override task ------------------------------------------------------------------

def renew_stamp(now=None):
    """A new value for the renew annotation (DKP reacts to the annotation changing)."""
    import datetime

    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def override_result(obj):
    """What module_pull_override returns about the override (it holds no secrets)."""
    status = status_of(obj)
    return {"override": strip_server_fields(obj), "image_digest": status.get("imageDigest"),
            "updated_at": status.get("updatedAt"), "message": status.get("message")}


def must_change_after(before, after, renew):
    """What has to move before the wait may count a Ready: the digest after renew, the digest or updatedAt after a
    new tag; None when the Ready of the current state counts (a create, or nothing asked to move)."""
    if before is None:
        return None
    if renew:
        return "digest"
    if ((before.get("spec") or {}).get("imageTag")) != ((after or {}).get("spec") or {}).get("imageTag"):
        return "digest_or_time"
    return None


def wait_running(client, name, before, must_change, written_at, timeout, grace, wait_for, timeout_error):
    """Wait for the image the task asked for. When DKP has to move (renew, new tag), give it SETTLE_SECONDS; a
    digest that has not moved by then, with the override Ready, is the newest one of the tag: nothing more
    can happen, so the wait ends there instead of at the timeout. Returns (obj, moved). `wait_for` and
    `timeout_error` are dkp_wait's (passed in: this file does not load the wait engine)."""
    import time

    deadline = time.monotonic() + timeout

    def settled():
        return time.monotonic() - written_at >= SETTLE_SECONDS

    rules = override_wait_rules(name, before, must_change, settled)
    if must_change:
        window = min(timeout, max(1, SETTLE_SECONDS - (time.monotonic() - written_at)))
        try:
            return wait_for(client, "ModulePullOverride", name, timeout=window, grace=grace, **rules), True
        except timeout_error:
            live = client.get("ModulePullOverride", name)
            if runs_newest(before, live):
                return live, False
            if time.monotonic() >= deadline:
                raise
    remaining = max(1, deadline - time.monotonic())
    return wait_for(client, "ModulePullOverride", name, timeout=remaining, grace=grace, **rules), True


def newest_digest_message(name, tag, obj):
    status = status_of(obj)
    return ("Module %s already runs the newest digest of tag %s (%s, deployed %s): DKP found no new image, so "
            "nothing was redeployed" % (name, tag, status.get("imageDigest"), status.get("updatedAt")))
