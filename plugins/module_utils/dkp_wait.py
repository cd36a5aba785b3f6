# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one wait engine: watch objects until a predicate holds, riding through what a live cluster does.

A wait lists its objects to get a resourceVersion, then watches from there, so no change is missed
between the read and the watch. Within its own timeout it rides through:
  - a watch that ends or is cut (reconnect from the last resourceVersion),
  - 410 Gone (history compacted: re-list),
  - 429/5xx answers, webhook failures and connection errors, an API server down for minutes
    (back off and re-list; the client's own retries are bounded by the wait's deadline),
  - an API that keeps dropping watches (falls back to polling with lists).
Rules the caller gives:
  - predicate(obj) -> bool: done (obj is None when the object does not exist);
  - fresh(obj) -> bool: only fresh states are judged (evidence that Deckhouse processed our change);
  - failure(obj) -> str|None: fail at once with that message;
  - transient(obj) -> str|None: an error Deckhouse may clear by itself (a hook error): fail only when it
    persists `grace` seconds (the timer restarts when it clears), or at the timeout, naming it;
  - tick() -> str|None: checks on other objects, run at least every `heartbeat` seconds (its transient
    API errors are ridden through like the wait's own);
  - describe(obj) -> str: the state for messages (the last one seen goes into the timeout message).
`clock` and `sleep` are injectable for unit tests.
"""

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import time

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import (
    ApiError,
    AuthError,
    DkpError,
    ForbiddenError,
    NotServedError,
    UnreachableError,
    WebhookUnavailableError,
    check_positive,
)

# The shared options of every module (and reader) that can wait; documented by deckhouse.platform.wait.
WAIT_ARG_SPEC = dict(
    wait=dict(type="bool", default=False),
    wait_timeout=dict(type="int", default=600),
    wait_grace=dict(type="int", default=60),
)

DEFAULT_GRACE = 60
_POLL_INTERVAL = 2.0
_WATCH_FAILURES_BEFORE_POLLING = 3
_BACKOFF_MAX = 5.0

__all__ = ["WAIT_ARG_SPEC", "WaitTimeout", "WaitFailed", "wait_for", "wait_for_all", "check_positive",
           "is_retryable"]


class WaitTimeout(DkpError):
    """The condition did not hold within the timeout; details: last_state (and last_transient, last_error)."""


class WaitFailed(DkpError):
    """The object reported a failure (or a transient error outlasted its grace); details: last_state."""


def is_retryable(error):
    """Whether a wait (or any loop with its own deadline) should ride through `error`."""
    if isinstance(error, (AuthError, ForbiddenError, NotServedError)):
        return False
    if isinstance(error, (UnreachableError, WebhookUnavailableError)):
        return not (error.details or {}).get("tls")
    if isinstance(error, ApiError):
        return error.status in (410, 429) or (error.status or 0) >= 500
    return False


def _default_describe(obj):
    return "not found" if obj is None else str((obj or {}).get("status"))


def _rv(obj):
    return ((obj or {}).get("metadata") or {}).get("resourceVersion")


def _name(obj):
    return ((obj or {}).get("metadata") or {}).get("name")


def _close(events):
    close = getattr(events, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # closing a cut stream may fail again; nothing to do about it
            pass


class _Waiter:
    """The state of one wait over one or more objects of one kind."""

    def __init__(self, client, kind, names, predicate, timeout, namespace, describe, failure, transient, grace,
                 fresh, tick, heartbeat, clock, sleep, label_selector=None):
        self.client = client
        self.kind = kind
        self.names = list(names)
        self.single = len(self.names) == 1
        self.predicate = predicate
        self.timeout = float(timeout)
        self.namespace = namespace
        self.describe = describe or _default_describe
        self.failure = failure
        self.transient = transient
        self.grace = float(DEFAULT_GRACE if grace is None else grace)
        self.fresh = fresh
        self.tick = tick
        self.heartbeat = max(0.5, float(heartbeat or 5.0))
        self.clock = clock or time.monotonic
        self.sleep = sleep or time.sleep
        self.label_selector = label_selector
        self.deadline = self.clock() + self.timeout
        self.objs = {}  # name -> last object seen (None: absent); only names read at least once
        self.done = {}  # name -> object that satisfied the predicate
        self.stale = set()  # names whose last state was not fresh
        self.transient_since = {}  # name -> clock when the current transient error was first seen
        self.transient_msg = {}  # name -> last transient message (kept after it clears, for the report)
        self.last_error = None  # the last API problem ridden through
        self.next_tick = self.clock()

    # -- judging ---------------------------------------------------------------------------------

    def label(self, name):
        return "%s %s%s" % (self.kind, self.namespace + "/" if self.namespace else "", name)

    def state(self, name):
        if name not in self.objs:
            return "never read" if self.last_error else "never read (API unreachable)"
        text = self.describe(self.objs[name])
        if name in self.stale:
            text += " (not yet updated after our change)"
        return text

    def judge(self, name, obj):
        """Record a state and decide; True when `name` is done. Raises WaitFailed."""
        if name not in self.names:
            return False
        self.objs[name] = obj
        if obj is not None and self.fresh is not None and not self.fresh(obj):
            self.stale.add(name)
            return False  # predates our change: not evidence of anything
        self.stale.discard(name)
        if self.failure is not None:
            message = self.failure(obj)
            if message:
                raise WaitFailed(message, last_state=self.describe(obj), object=name)
        if self.predicate(obj):
            self.done[name] = obj
            self.transient_since.pop(name, None)
            return True
        self.done.pop(name, None)
        if self.transient is not None:
            message = self.transient(obj)
            if message:
                self.transient_msg[name] = message
                self.transient_since.setdefault(name, self.clock())
                self.check_grace(name)
            else:
                self.transient_since.pop(name, None)
        return False

    def check_grace(self, name):
        since = self.transient_since.get(name)
        if since is not None and self.clock() - since >= self.grace:
            raise WaitFailed("%s has reported an error for %ds (longer than the grace of %ds): %s"
                             % (self.label(name), int(self.clock() - since), int(self.grace),
                                self.transient_msg.get(name)),
                             last_state=self.state(name), last_transient=self.transient_msg.get(name), object=name)

    def all_done(self):
        return all(n in self.done for n in self.names)

    def wake_at(self):
        """The clock at which the loop must wake up even without events (grace expiry, tick, deadline)."""
        points = [self.deadline]
        points.extend(since + self.grace for since in self.transient_since.values())
        if self.tick is not None:
            points.append(self.next_tick)
        return min(points)

    # -- the API -------------------------------------------------------------------------------------

    def bounded(self):
        """The client's own retries must end by our deadline (we retry after that ourselves)."""
        window = getattr(self.client, "retry_window", None)
        if window is None:
            return _Null()
        return window(max(0.0, min(self.deadline - self.clock(), self.heartbeat * 6)))

    def relist(self):
        """List the objects, judge each; returns the list's resourceVersion."""
        selector = "metadata.name=%s" % self.names[0] if self.single else None
        with self.bounded():
            items, rv = self.client.list(self.kind, namespace=self.namespace, field_selector=selector,
                                         **({"label_selector": self.label_selector} if self.label_selector else {}))
        present = {}
        for item in items:
            present[_name(item)] = item
        for name in self.names:
            self.judge(name, present.get(name))
        return rv

    def run_tick(self):
        if self.tick is None or self.clock() < self.next_tick:
            return
        self.next_tick = self.clock() + self.heartbeat
        with self.bounded():
            message = self.tick()
        if message:
            raise WaitFailed(message, last_state=self.report_state())

    def report_state(self):
        if self.single:
            return self.state(self.names[0])
        return "; ".join("%s: %s" % (n, self.state(n)) for n in self.names if n not in self.done) or "all done"

    def timeout_error(self):
        pending = [n for n in self.names if n not in self.done]
        what = self.label(pending[0]) if len(pending) == 1 else "%s %s" % (self.kind, ", ".join(pending))
        message = "Timed out after %ss waiting for %s; last observed state: %s" % (
            int(self.timeout), what, self.report_state())
        details = dict(last_state=self.report_state())
        transient = [(n, self.transient_msg[n]) for n in pending if n in self.transient_msg]
        if transient:
            message += "; last transient error: %s" % "; ".join(
                m if self.single else "%s: %s" % (n, m) for n, m in transient)
            details["last_transient"] = transient[0][1] if self.single else dict(transient)
        if self.last_error:
            message += "; last API problem: %s" % self.last_error
            details["last_error"] = self.last_error
        if not self.single:
            details["pending"] = pending
        return WaitTimeout(message, **details)

    # -- the loop -------------------------------------------------------------------------------------

    def run(self):
        rv = None
        watch_failures = 0
        polling = False
        backoff = 0.5
        gone = 0
        while True:
            if self.all_done():
                return
            now = self.clock()
            if now >= self.deadline and (self.objs or rv is not None or self.last_error):
                raise self.timeout_error()  # (a zero timeout still reads once)
            for name in list(self.transient_since):
                self.check_grace(name)
            phase = "tick"
            try:
                self.run_tick()
                if rv is None or polling:
                    phase = "list"
                    rv = self.relist()
                    self.last_error = None
                    backoff = 0.5
                    if self.all_done():
                        return
                if polling:
                    self.sleep(max(0.0, min(_POLL_INTERVAL, self.wake_at() - self.clock())))
                    continue
                phase = "watch"
                window = max(1.0, min(self.heartbeat, self.wake_at() - self.clock()))
                started = self.clock()
                got_event = False
                with self.bounded():
                    events = self.client.watch(self.kind, rv, namespace=self.namespace,
                                               name=self.names[0] if self.single else None, timeout=window,
                                               **({"label_selector": self.label_selector}
                                                  if self.label_selector else {}))
                try:
                    for etype, obj in events:
                        rv = _rv(obj) or rv
                        if etype == "BOOKMARK":
                            continue
                        got_event = True
                        name = _name(obj)
                        self.judge(name, None if etype == "DELETED" else obj)
                        if self.all_done():
                            return
                        if self.clock() >= self.wake_at():
                            break  # a grace deadline or tick is due: resume from rv afterwards
                finally:
                    _close(events)
                if got_event:
                    gone = 0
                if not got_event and self.clock() - started < min(0.5, window / 2):
                    # a watch that ends at once without events: a proxy or server that cannot stream
                    watch_failures += 1
                else:
                    watch_failures = 0
            except (WaitFailed, WaitTimeout):
                raise
            except ApiError as e:
                if e.status == 410:
                    rv = None  # history compacted: re-list and resume
                    gone += 1
                    if gone > 1:  # 410 again right after a list: do not spin
                        self.pause(min(_BACKOFF_MAX, 0.5 * 2 ** (gone - 2)))
                    continue
                if not is_retryable(e):
                    raise
                self.last_error = e.msg
                rv, backoff = None, self.pause(backoff)
                if phase == "watch":
                    watch_failures += 1
            except DkpError as e:
                if not is_retryable(e):
                    raise
                self.last_error = e.msg
                rv, backoff = None, self.pause(backoff)
            except Exception as e:  # a stream cut mid-chunk surfaces as a urllib3, socket or JSON error
                self.last_error = "watch stream broke: %s" % (str(e)[:200] or type(e).__name__)
                rv, backoff = None, self.pause(min(backoff, 0.5))
                if phase == "watch":
                    watch_failures += 1
            if watch_failures >= _WATCH_FAILURES_BEFORE_POLLING and not polling:
                polling = True

    def pause(self, backoff):
        """Sleep `backoff` seconds (never past a wake-up point); the next, longer backoff."""
        self.sleep(max(0.0, min(backoff, self.wake_at() - self.clock())))
        return min(_BACKOFF_MAX, backoff * 2)


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def wait_for(client, kind, name, predicate, timeout, namespace=None, describe=None, failure=None, transient=None,
             grace=DEFAULT_GRACE, fresh=None, tick=None, heartbeat=5.0, clock=None, sleep=None):
    """Block until `predicate(obj)` is true for one object and return it (None stands for "does not exist").

    Raises WaitFailed (failure, a transient error past `grace`, tick) or WaitTimeout (last state, last
    transient error and last API problem in the message and in `.details`). See the module docstring."""
    waiter = _Waiter(client, kind, [name], predicate, timeout, namespace, describe, failure, transient, grace,
                     fresh, tick, heartbeat, clock, sleep)
    waiter.run()
    return waiter.done[name]


def wait_for_all(client, kind, names, predicate, timeout, namespace=None, describe=None, failure=None,
                 transient=None, grace=DEFAULT_GRACE, fresh=None, tick=None, heartbeat=5.0, clock=None, sleep=None,
                 label_selector=None):
    """wait_for over several objects of one kind with one list and one watch; returns {name: obj}.

    Done when the predicate holds for every name at the same time (an object that stops satisfying it
    is waited for again); the first failure fails the whole wait."""
    names = list(dict.fromkeys(names))
    if not names:
        return {}
    waiter = _Waiter(client, kind, names, predicate, timeout, namespace, describe, failure, transient, grace,
                     fresh, tick, heartbeat, clock, sleep, label_selector=label_selector)
    waiter.single = False
    waiter.run()
    return {n: waiter.done[n] for n in names}
