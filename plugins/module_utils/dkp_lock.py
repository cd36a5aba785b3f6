# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A cluster-wide run lock on a coordination.k8s.io/v1 Lease, so two runbooks never write at once.

The Lease is free when it does not exist, has no holder, or its holder stopped renewing it for
longer than leaseDurationSeconds (a crashed run). Taking it is a create (the apiserver lets exactly
one of two racing creates succeed) or a merge patch guarded by the resourceVersion we read (exactly
one of two racing take-overs succeeds; the other gets 409 and re-reads). Expiry is judged on this
host's clock against renewTime, which every holder writes from its own clock: hosts must keep time
(NTP) to within a small fraction of the lease duration.
"""

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import datetime
import getpass
import os
import re
import socket
import time

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import (
    KINDS,
    ConflictError,
    DkpError,
    Kind,
)

# dkp_client's table has no Lease (yet): register it once, without discovery.
LEASE_KIND = KINDS.setdefault("Lease", Kind("Lease", "coordination.k8s.io", "v1", "leases", namespaced=True,
                                            deckhouse=False))

DEFAULT_NAMESPACE = "d8-system"
DEFAULT_NAME = "deckhouse-platform-runbook"
DEFAULT_TTL = 900
# Who holds the lock and what for, readable with `kubectl get lease -o yaml`.
PURPOSE_ANNOTATION = "deckhouse.platform/purpose"
MANAGED_LABEL = "app.kubernetes.io/managed-by"


class LockHeld(DkpError):
    """Another holder has the lock (after waiting, if asked to wait)."""


class LockLost(DkpError):
    """We no longer hold a lock we expected to hold (it expired and someone else took it)."""


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc)


def format_time(value):
    """Kubernetes MicroTime: RFC 3339 with microseconds, UTC."""
    return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value):
    if not value:
        return None
    text = str(value).replace("Z", "+00:00")
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        try:  # fromisoformat before 3.11 wants exactly 3 or 6 fraction digits
            head, _sep, tail = text.partition(".")
            frac, _plus, _tz = tail.partition("+")
            parsed = datetime.datetime.fromisoformat("%s.%s+00:00" % (head, (frac + "000000")[:6]) if tail else head)
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed


def _playbook_pid():
    """The PID of the ansible-playbook (or ansible-runner) process running this module, so every task
    of one run computes the same holder; the module's own PID changes with every task."""
    pid = os.getppid()
    found = None
    for _depth in range(12):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmdline = f.read().replace(b"\0", b" ")
            with open("/proc/%d/stat" % pid) as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
        if b"ansible-playbook" in cmdline or b"ansible-runner" in cmdline:
            # the outermost one: each task runs in a worker forked from ansible-playbook, with the same
            # command line but a PID of its own
            found = pid
        elif found is not None:
            break
        if parent <= 1:
            break
        pid = parent
    return found or os.getppid()


def default_holder(job_id=None, environ=None):
    """`awx-job-<id>` inside an AWX/Controller job (JOB_ID is in the job's environment, or the
    caller passes tower_job_id/awx_job_id), else `<user>@<host>/<pid of ansible-playbook>`."""
    environ = os.environ if environ is None else environ
    job = job_id or environ.get("JOB_ID") or environ.get("AWX_JOB_ID")
    if job:
        return "awx-job-%s" % job
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry inside some containers
        user = str(os.getuid())
    return "%s@%s/%d" % (user, socket.gethostname(), _playbook_pid())


def lease_state(lease, now=None):
    """A summary of a Lease: holder, since, renewed, expires, expired, free."""
    now = now or now_utc()
    if lease is None:
        return {"exists": False, "holder": None, "since": None, "renewed": None, "expires": None,
                "expired": False, "free": True, "duration": None, "transitions": 0, "purpose": None}
    spec = lease.get("spec") or {}
    holder = spec.get("holderIdentity") or None
    duration = spec.get("leaseDurationSeconds")
    renewed = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
    expires = renewed + datetime.timedelta(seconds=duration) if renewed and duration else None
    expired = bool(holder) and (expires is None or now >= expires)
    annotations = (lease.get("metadata") or {}).get("annotations") or {}
    return {"exists": True, "holder": holder, "since": spec.get("acquireTime"), "renewed": spec.get("renewTime"),
            "expires": format_time(expires) if expires else None, "expired": expired,
            "free": not holder or expired, "duration": duration, "transitions": spec.get("leaseTransitions") or 0,
            "purpose": annotations.get(PURPOSE_ANNOTATION)}


def _describe_holder(state):
    text = "held by %s since %s" % (state["holder"], state["since"] or "an unknown time")
    if state["expires"]:
        text += " (expires %s unless renewed)" % state["expires"]
    if state["purpose"]:
        text += ", for %s" % state["purpose"]
    return text


def _owned_spec(holder, ttl, now, transitions, keep_since=None):
    return {"holderIdentity": holder, "leaseDurationSeconds": int(ttl),
            "acquireTime": keep_since or format_time(now), "renewTime": format_time(now),
            "leaseTransitions": int(transitions)}


# What the apiserver accepts as a Lease name (DNS-1123 subdomain) and a namespace (DNS-1123 label):
# checked here so a bad name is refused before any request, naming the option.
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def check_name(name, namespace=DEFAULT_NAMESPACE):
    """Refuse a Lease name / namespace the apiserver would reject (422), before any request."""
    if not isinstance(name, str) or not name or len(name) > 253 or not _SUBDOMAIN.match(name):
        raise DkpError("name must be a Lease name (DNS-1123 subdomain: lowercase letters, digits, '-' and '.', "
                       "starting and ending with a letter or digit, at most 253 characters), got %r" % (name,))
    if not isinstance(namespace, str) or not namespace or len(namespace) > 63 or not _LABEL.match(namespace):
        raise DkpError("namespace must be a DNS-1123 label (lowercase letters, digits and '-', at most 63 "
                       "characters), got %r" % (namespace,))


def check_ttl(ttl, wait_timeout=None):
    if ttl is None or int(ttl) < 1:
        raise DkpError("lease_duration must be a positive number of seconds, got %r" % (ttl,))
    if wait_timeout is not None and wait_timeout < 0:
        raise DkpError("max_wait (wait_timeout) must be 0 (fail at once when the lock is held) or a positive "
                       "number of seconds, got %r" % (wait_timeout,))


def acquire(client, name, holder, ttl, wait_timeout, namespace=DEFAULT_NAMESPACE, purpose=None,
            check_mode=False, poll=2.0, clock=time.monotonic, sleep=time.sleep, now=now_utc, break_lock=False):
    """Take the lock for `holder` for `ttl` seconds; returns a result dict.

    Held by us already: renewed. Held by someone else: wait up to `wait_timeout` seconds (0 = fail at
    once) with LockHeld naming the holder and since when. `break_lock`: take a lock held by someone else
    over at once (the operator knows that run is gone, e.g. a killed AWX job); the result names the
    previous holder in `broken_from`. Check mode reads only and reports what a real run would do
    (`would`: acquire, renew, break, wait or fail)."""
    check_name(name, namespace)
    check_ttl(ttl, wait_timeout)
    deadline = clock() + wait_timeout
    started = clock()
    waited_for = None
    while True:
        live = client.get("Lease", name, namespace)
        state = lease_state(live, now())
        mine = state["holder"] == holder and not state["expired"]
        if check_mode:
            if mine:
                would = "renew"
            elif state["free"]:
                would = "acquire"
            elif break_lock:
                would = "break"
            else:
                would = "wait" if wait_timeout > 0 else "fail"
            return {"changed": would in ("acquire", "renew", "break"), "acquired": False, "would": would, "holder": holder,
                    "lease": state, "namespace": namespace, "name": name}
        if mine:
            return dict(renew(client, name, holder, ttl, namespace=namespace, now=now), action="renewed")
        if state["free"] or break_lock:
            stamp = now()
            if live is None:
                body = {"apiVersion": LEASE_KIND.api_version, "kind": "Lease",
                        "metadata": {"name": name, "namespace": namespace,
                                     "labels": {MANAGED_LABEL: "deckhouse.platform"},
                                     "annotations": {PURPOSE_ANNOTATION: purpose} if purpose else {}},
                        "spec": _owned_spec(holder, ttl, stamp, 0)}
                try:
                    after = client.create("Lease", body, namespace=namespace)
                except ConflictError:
                    continue  # another run created it first: re-read and judge its holder
            else:
                patch = {"metadata": {"resourceVersion": live["metadata"]["resourceVersion"],
                                      "annotations": {PURPOSE_ANNOTATION: purpose}},
                         "spec": _owned_spec(holder, ttl, stamp, state["transitions"] + 1)}
                try:
                    after = client.merge_patch("Lease", name, patch, namespace=namespace)
                except ConflictError:
                    continue  # another run took it between our read and our write
            result = {"changed": True, "acquired": True, "action": "acquired", "holder": holder,
                      "lease": lease_state(after, stamp), "namespace": namespace, "name": name,
                      "waited": round(clock() - started, 1)}
            if not state["free"]:
                result["broken_from"] = {"holder": state["holder"], "since": state["since"],
                                         "expires": state["expires"], "purpose": state["purpose"]}
            elif state["expired"]:
                result["took_over_from"] = {"holder": state["holder"], "since": state["since"],
                                            "expired_at": state["expires"]}
            return result
        waited_for = state
        remaining = deadline - clock()
        if remaining <= 0:
            how = ("after waiting %ss" % int(wait_timeout)) if wait_timeout > 0 else (
                "and max_wait is 0 (set max_wait/wait_timeout to wait for it)")
            raise LockHeld("Run lock Lease %s/%s is %s; not acquired %s. If that run is gone (a killed job), "
                           "take the lock over with break_lock=true, or free it with `kubectl -n %s delete lease "
                           "%s`" % (namespace, name, _describe_holder(waited_for), how, namespace, name),
                           lease=waited_for, acquired=False)
        # Poll: waking up when the holder releases is enough; a crashed holder is noticed at expiry.
        until_expiry = None
        if state["expires"]:
            until_expiry = (parse_time(state["expires"]) - now()).total_seconds()
        pause = min(poll, remaining)
        if until_expiry is not None and until_expiry > 0:
            pause = min(pause, until_expiry + 0.05)
        sleep(max(0.05, pause))


def takeover_warning(result):
    """The warning for a lock taken over with break_lock (None when nothing was broken)."""
    broken = result.get("broken_from")
    if not broken:
        return None
    return "Run lock Lease %s/%s taken over (break_lock) from %s, which held it since %s" % (
        result["namespace"], result["name"], broken["holder"], broken["since"])


def renew(client, name, holder, ttl, namespace=DEFAULT_NAMESPACE, now=now_utc):
    """Push renewTime forward; LockLost when the lock is no longer ours."""
    check_name(name, namespace)
    check_ttl(ttl)
    for _attempt in range(5):
        live = client.get("Lease", name, namespace)
        state = lease_state(live, now())
        if state["holder"] != holder:
            raise LockLost("Run lock Lease %s/%s is not held by %s: %s" % (
                namespace, name, holder, "it does not exist" if live is None else (
                    "it is free" if not state["holder"] else _describe_holder(state))), lease=state)
        # Ours, even if expired: the guarded write fails if another run took it over in between.
        stamp = now()
        patch = {"metadata": {"resourceVersion": live["metadata"]["resourceVersion"]},
                 "spec": {"renewTime": format_time(stamp), "leaseDurationSeconds": int(ttl)}}
        try:
            after = client.merge_patch("Lease", name, patch, namespace=namespace)
        except ConflictError:
            continue
        return {"changed": True, "acquired": True, "action": "renewed", "holder": holder,
                "lease": lease_state(after, stamp), "namespace": namespace, "name": name}
    raise LockLost("Run lock Lease %s/%s kept changing while we renewed it" % (namespace, name))


def release(client, name, holder, namespace=DEFAULT_NAMESPACE, check_mode=False, now=now_utc):
    """Free the lock if `holder` has it (holderIdentity cleared, the Lease kept for its history);
    a lock held by someone else is left alone (released: false, with the reason)."""
    check_name(name, namespace)
    for _attempt in range(5):
        live = client.get("Lease", name, namespace)
        state = lease_state(live, now())
        if state["holder"] != holder:
            reason = ("the Lease does not exist" if live is None else "it is already free" if not state["holder"]
                      else _describe_holder(state))
            return {"changed": False, "released": False, "action": "none", "reason": reason, "holder": holder,
                    "lease": state, "namespace": namespace, "name": name}
        if check_mode:
            return {"changed": True, "released": False, "would": "release", "holder": holder, "lease": state,
                    "namespace": namespace, "name": name}
        patch = {"metadata": {"resourceVersion": live["metadata"]["resourceVersion"]},
                 "spec": {"holderIdentity": None, "renewTime": format_time(now())}}
        try:
            after = client.merge_patch("Lease", name, patch, namespace=namespace)
        except ConflictError:
            continue
        return {"changed": True, "released": True, "action": "released", "holder": holder,
                "lease": lease_state(after), "namespace": namespace, "name": name}
    raise DkpError("Run lock Lease %s/%s kept changing while we released it" % (namespace, name))
