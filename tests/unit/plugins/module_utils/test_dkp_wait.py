# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The wait engine against a fake API server with a fake clock: no real time passes."""

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import copy

import pytest

from ansible_collections.deckhouse.platform.plugins.module_utils import dkp_wait as w
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import (
    ApiError,
    ForbiddenError,
    UnreachableError,
    WebhookUnavailableError,
)


class Clock:
    def __init__(self):
        self.t = 0.0
        self.sleeps = []

    def __call__(self):
        return self.t

    def sleep(self, seconds):
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.t += seconds


class FakeApi:
    """Objects with resourceVersions, a change history for watches, scheduled changes and outages.

    `at(t, fn)` runs fn(self) when the fake clock reaches t (inside a watch, or before a list).
    `down(start, end)`: every call in that span fails like a refused connection, costing 1 s.
    `compact()`: watches from older resourceVersions get 410.
    `drop_at`: times at which an open watch stream is cut.
    `no_stream`: every watch ends at once without events (a proxy that cannot stream)."""

    def __init__(self, clock):
        self.clock = clock
        self.rv = 1
        self.objs = {}
        self.history = []
        self.schedule = []
        self.outages = []
        self.compacted_below = 0
        self.drop_at = []
        self.no_stream = False
        self.calls = []
        self.windows = []

    # -- test steering --
    def put(self, name, **status):
        self.rv += 1
        obj = self.objs.get(name) or {"metadata": {"name": name, "generation": 1}, "status": {}}
        obj = copy.deepcopy(obj)
        if "generation" in status:
            obj["metadata"]["generation"] = status.pop("generation")
        obj["status"] = status
        obj["metadata"]["resourceVersion"] = str(self.rv)
        etype = "MODIFIED" if name in self.objs else "ADDED"
        self.objs[name] = obj
        self.history.append((self.rv, etype, copy.deepcopy(obj)))

    def remove(self, name):
        self.rv += 1
        obj = copy.deepcopy(self.objs.pop(name))
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.history.append((self.rv, "DELETED", obj))

    def at(self, t, fn):
        self.schedule.append((t, fn))
        self.schedule.sort(key=lambda x: x[0])

    def down(self, start, end):
        self.outages.append((start, end))

    def compact(self):
        self.compacted_below = self.rv

    # -- internals --
    def _is_down(self):
        return any(s <= self.clock.t < e for s, e in self.outages)

    def _apply_due(self):
        while self.schedule and self.schedule[0][0] <= self.clock.t:
            _t, fn = self.schedule.pop(0)
            fn(self)

    def _fail_if_down(self):
        if self._is_down():
            self.clock.t += 1
            raise UnreachableError("Cannot reach the Kubernetes API at https://fake: connection refused")

    # -- the DkpClient surface --
    def retry_window(self, seconds):
        self.windows.append(seconds)
        return w._Null()

    def list(self, kind, namespace=None, label_selector=None, field_selector=None):
        self.calls.append("list")
        self._apply_due()
        self._fail_if_down()
        items = list(self.objs.values())
        if field_selector:
            name = field_selector.split("=", 1)[1]
            items = [o for o in items if o["metadata"]["name"] == name]
        return copy.deepcopy(items), str(self.rv)

    def watch(self, kind, resource_version, namespace=None, name=None, label_selector=None, timeout=30):
        self.calls.append("watch")
        self._apply_due()
        self._fail_if_down()
        if int(resource_version) < self.compacted_below:
            raise ApiError(410, "Expired", "too old resource version")
        if self.no_stream:
            return
        end = self.clock.t + timeout
        pos = int(resource_version)
        while True:
            for hrv, etype, obj in list(self.history):
                if hrv > pos:
                    pos = hrv
                    if name is None or obj["metadata"]["name"] == name:
                        yield etype, copy.deepcopy(obj)
            points = [t for t, _fn in self.schedule] + [t for t in self.drop_at if t > self.clock.t] \
                + [s for s, _e in self.outages if s > self.clock.t]
            nxt = min(points) if points else None
            if nxt is None or nxt > end:
                self.clock.t = end
                return
            self.clock.t = nxt
            if nxt in self.drop_at or self._is_down():
                raise ConnectionResetError("connection reset by peer")
            self._apply_due()


def phase(o):
    return None if o is None else (o.get("status") or {}).get("phase")


def ready(o):
    return phase(o) == "Ready"


def hook_error(o):
    st = (o or {}).get("status") or {}
    return st.get("message") if st.get("phase") == "Error" else None


def describe(o):
    return "absent" if o is None else "phase=%s" % phase(o)


@pytest.fixture
def env():
    clock = Clock()
    return clock, FakeApi(clock)


def test_returns_at_once_when_already_true(env):
    clock, api = env
    api.put("m", phase="Ready")
    assert w.wait_for(api, "Module", "m", ready, 60, clock=clock, sleep=clock.sleep)["status"]["phase"] == "Ready"
    assert clock.t == 0 and api.calls == ["list"]


def test_watch_sees_a_later_change(env):
    clock, api = env
    api.put("m", phase="Reconciling")
    api.at(7, lambda a: a.put("m", phase="Ready"))
    obj = w.wait_for(api, "Module", "m", ready, 60, clock=clock, sleep=clock.sleep)
    assert phase(obj) == "Ready" and clock.t == 7
    assert api.calls.count("list") == 1, "one list, then watches resume from the resourceVersion"


def test_only_fresh_states_are_judged(env):
    clock, api = env
    # Ready from before our change (observedGeneration 1 < generation 2): not evidence
    api.put("m", phase="Ready", generation=2, observedGeneration=1)
    api.at(4, lambda a: a.put("m", phase="Reconciling", observedGeneration=2))
    api.at(9, lambda a: a.put("m", phase="Ready", observedGeneration=2))

    def fresh(o):
        return o["status"].get("observedGeneration") == o["metadata"]["generation"]

    obj = w.wait_for(api, "Module", "m", ready, 60, fresh=fresh, clock=clock, sleep=clock.sleep)
    assert clock.t == 9 and obj["status"]["observedGeneration"] == 2


def test_stale_state_is_named_on_timeout(env):
    clock, api = env
    api.put("m", phase="Ready", generation=2, observedGeneration=1)
    with pytest.raises(w.WaitTimeout) as e:
        w.wait_for(api, "Module", "m", ready, 20, fresh=lambda o: False, describe=describe, clock=clock,
                   sleep=clock.sleep)
    assert "phase=Ready (not yet updated after our change)" in e.value.msg


def test_failure_fails_at_once(env):
    clock, api = env
    api.put("m", phase="Reconciling")
    api.at(3, lambda a: a.put("m", phase="Failed", message="bad settings"))
    with pytest.raises(w.WaitFailed, match="bad settings") as e:
        w.wait_for(api, "Module", "m", ready, 60, describe=describe,
                   failure=lambda o: o["status"].get("message") if phase(o) == "Failed" else None,
                   clock=clock, sleep=clock.sleep)
    assert clock.t == 3 and e.value.details["last_state"] == "phase=Failed"


def test_transient_error_that_clears_is_tolerated(env):
    clock, api = env
    api.put("m", phase="Error", message="hook failed: timeout")
    api.at(30, lambda a: a.put("m", phase="Ready"))
    obj = w.wait_for(api, "Module", "m", ready, 120, transient=hook_error, grace=60, clock=clock, sleep=clock.sleep)
    assert phase(obj) == "Ready" and clock.t == 30


def test_transient_error_that_persists_fails_at_the_grace_deadline_without_events(env):
    clock, api = env
    api.put("m", phase="Error", message="hook failed: permission denied")
    with pytest.raises(w.WaitFailed) as e:
        w.wait_for(api, "Module", "m", ready, 600, transient=hook_error, grace=20, describe=describe,
                   clock=clock, sleep=clock.sleep)
    assert 20 <= clock.t < 22, "woken at the grace deadline, not at the timeout"
    assert "permission denied" in e.value.msg and "grace of 20s" in e.value.msg
    assert e.value.details["last_transient"] == "hook failed: permission denied"


def test_grace_timer_restarts_when_the_error_clears(env):
    clock, api = env
    api.put("m", phase="Error", message="first")
    api.at(15, lambda a: a.put("m", phase="Reconciling"))
    api.at(20, lambda a: a.put("m", phase="Error", message="second"))
    with pytest.raises(w.WaitFailed, match="second"):
        w.wait_for(api, "Module", "m", ready, 600, transient=hook_error, grace=20, clock=clock, sleep=clock.sleep)
    assert 40 <= clock.t < 42


def test_transient_error_at_timeout_is_named(env):
    clock, api = env
    api.put("m", phase="Error", message="hook failed: still starting")
    with pytest.raises(w.WaitTimeout) as e:
        w.wait_for(api, "Module", "m", ready, 30, transient=hook_error, grace=60, describe=describe,
                   clock=clock, sleep=clock.sleep)
    assert "Timed out after 30s waiting for Module m" in e.value.msg
    assert "last observed state: phase=Error" in e.value.msg
    assert "last transient error: hook failed: still starting" in e.value.msg
    assert e.value.details["last_state"] == "phase=Error"


def test_410_relists_and_resumes(env):
    clock, api = env
    api.put("m", phase="Reconciling")
    api.at(2, lambda a: (a.put("x", phase="Other"), a.compact()))
    api.at(8, lambda a: a.put("m", phase="Ready"))
    orig_watch = api.watch
    state = {"n": 0}

    def watch(*a, **kw):  # the first watch ends at t=2; the next one starts from a compacted rv
        state["n"] += 1
        if state["n"] == 1:
            kw["timeout"] = 2
        return orig_watch(*a, **kw)
    api.watch = watch
    obj = w.wait_for(api, "Module", "m", ready, 60, clock=clock, sleep=clock.sleep)
    assert phase(obj) == "Ready" and clock.t == 8
    assert api.calls.count("list") == 2, "a 410 re-lists"


def test_410_again_and_again_backs_off_instead_of_spinning(env):
    clock, api = env
    api.put("m", phase="Reconciling")
    api.compacted_below = 10 ** 9  # every watch is refused with 410
    with pytest.raises(w.WaitTimeout):
        w.wait_for(api, "Module", "m", ready, 30, clock=clock, sleep=clock.sleep)
    assert api.calls.count("list") < 40


def test_dropped_stream_reconnects(env):
    clock, api = env
    api.put("m", phase="Reconciling")
    api.drop_at = [3.0]
    api.at(10, lambda a: a.put("m", phase="Ready"))
    obj = w.wait_for(api, "Module", "m", ready, 60, clock=clock, sleep=clock.sleep)
    assert phase(obj) == "Ready" and 10 <= clock.t < 11


def test_apiserver_down_40s_then_back(env):
    clock, api = env
    api.put("m", phase="Reconciling")
    api.down(2, 42)
    api.at(30, lambda a: a.put("m", phase="Ready"))  # happened while we could not see it
    obj = w.wait_for(api, "Module", "m", ready, 120, describe=describe, clock=clock, sleep=clock.sleep)
    assert phase(obj) == "Ready" and 42 <= clock.t < 48
    assert all(s <= 5 for s in clock.sleeps), "backoff stays short so the return is quick"


def test_apiserver_down_past_the_timeout_names_the_last_state_and_problem(env):
    clock, api = env
    api.put("m", phase="Reconciling")
    api.down(2, 1000)
    with pytest.raises(w.WaitTimeout) as e:
        w.wait_for(api, "Module", "m", ready, 60, describe=describe, clock=clock, sleep=clock.sleep)
    assert 60 <= clock.t < 62, "the wait does not overrun its timeout"
    assert "last observed state: phase=Reconciling" in e.value.msg
    assert "connection refused" in e.value.msg and e.value.details["last_error"]
    assert all(0 < s <= 60 for s in api.windows), "the client's own retries are bounded by the wait"


def test_never_read_names_the_api_problem(env):
    clock, api = env
    api.down(0, 1000)
    with pytest.raises(w.WaitTimeout, match="never read; last API problem: .*connection refused"):
        w.wait_for(api, "Module", "m", ready, 10, clock=clock, sleep=clock.sleep)


@pytest.mark.parametrize("error", [
    ApiError(503, "ServiceUnavailable", "before all known HTTP paths have been installed"),
    ApiError(500, "InternalError", "etcdserver: leader changed"),
    WebhookUnavailableError(500, "InternalError", "failed calling webhook"),
    ApiError(429, "TooManyRequests", "slow down"),
])
def test_5xx_and_webhook_errors_are_ridden_through(env, error):
    clock, api = env
    api.put("m", phase="Ready")
    orig = api.list
    state = {"n": 0}

    def flaky_list(*a, **kw):
        state["n"] += 1
        if state["n"] <= 3:
            clock.t += 1
            raise error
        return orig(*a, **kw)
    api.list = flaky_list
    assert ready(w.wait_for(api, "Module", "m", ready, 60, clock=clock, sleep=clock.sleep))


def test_permission_errors_are_not_retried(env):
    clock, api = env

    def forbidden(*a, **kw):
        raise ForbiddenError(403, "Forbidden", "Forbidden: list modules")
    api.list = forbidden
    with pytest.raises(ForbiddenError):
        w.wait_for(api, "Module", "m", ready, 60, clock=clock, sleep=clock.sleep)
    assert clock.t == 0


def test_falls_back_to_polling_when_watches_cannot_stream(env):
    clock, api = env
    api.put("m", phase="Reconciling")
    api.no_stream = True
    api.at(15, lambda a: a.put("m", phase="Ready"))
    obj = w.wait_for(api, "Module", "m", ready, 60, clock=clock, sleep=clock.sleep)
    assert phase(obj) == "Ready" and 15 <= clock.t <= 17
    assert api.calls.count("watch") == 3, "three failed watches, then lists"


def test_absence(env):
    clock, api = env
    api.put("m", phase="Terminating")
    api.at(5, lambda a: a.remove("m"))
    assert w.wait_for(api, "Module", "m", lambda o: o is None, 60, clock=clock, sleep=clock.sleep) is None
    assert clock.t == 5


def test_tick_runs_every_heartbeat_and_can_fail(env):
    clock, api = env
    api.put("m", phase="Reconciling")
    ticks = []

    def tick():
        ticks.append(clock.t)
        return "the release was superseded" if clock.t >= 12 else None
    with pytest.raises(w.WaitFailed, match="superseded"):
        w.wait_for(api, "Module", "m", ready, 60, tick=tick, heartbeat=5, clock=clock, sleep=clock.sleep)
    assert ticks[:4] == [0, 5, 10, 15]


def test_tick_api_errors_are_ridden_through(env):
    clock, api = env
    api.put("m", phase="Reconciling")
    api.at(20, lambda a: a.put("m", phase="Ready"))
    calls = []

    def tick():
        calls.append(clock.t)
        if clock.t < 10:
            raise UnreachableError("Cannot reach the Kubernetes API at https://fake: connection refused")
        return None
    assert ready(w.wait_for(api, "Module", "m", ready, 60, tick=tick, heartbeat=5, clock=clock, sleep=clock.sleep))
    assert len(calls) >= 3


def test_wait_for_all_uses_one_watch(env):
    clock, api = env
    api.put("a", phase="Reconciling")
    api.put("b", phase="Reconciling")
    api.put("other", phase="Error", message="not ours")
    api.at(3, lambda x: x.put("a", phase="Ready"))
    api.at(5, lambda x: x.put("a", phase="Reconciling"))
    api.at(6, lambda x: x.put("b", phase="Ready"))
    api.at(9, lambda x: x.put("a", phase="Ready"))
    got = w.wait_for_all(api, "Module", ["a", "b"], ready, 60, transient=hook_error, grace=1,
                         clock=clock, sleep=clock.sleep)
    assert sorted(got) == ["a", "b"] and all(ready(o) for o in got.values())
    assert clock.t == 9, "done when every object holds at the same time"
    assert api.calls.count("list") == 1, "one list for all names"


def test_wait_for_all_timeout_names_the_pending_ones(env):
    clock, api = env
    api.put("a", phase="Ready")
    api.put("b", phase="Error", message="hook")
    with pytest.raises(w.WaitTimeout) as e:
        w.wait_for_all(api, "Module", ["a", "b", "c"], ready, 10, describe=describe, transient=hook_error,
                       grace=60, clock=clock, sleep=clock.sleep)
    assert "b: phase=Error" in e.value.msg and "c: absent" in e.value.msg and "a:" not in e.value.msg
    assert e.value.details["pending"] == ["b", "c"]


def test_wait_arg_spec_and_check_positive():
    assert w.WAIT_ARG_SPEC["wait"] == {"type": "bool", "default": False}
    assert w.WAIT_ARG_SPEC["wait_grace"]["default"] == 60
    with pytest.raises(w.DkpError, match="wait_timeout must be greater than 0, got -1"):
        w.check_positive({"wait_timeout": -1}, ["wait_timeout"])
    with pytest.raises(w.DkpError, match="wait_grace must be 0 or more"):
        w.check_positive({"wait_grace": -1}, ["wait_grace"], allow_zero=["wait_grace"])
    w.check_positive({"wait_grace": 0, "wait_timeout": None}, ["wait_grace", "wait_timeout"], allow_zero=["wait_grace"])


def test_is_retryable():
    assert w.is_retryable(UnreachableError("x"))
    assert not w.is_retryable(UnreachableError("tls", tls=True))
    assert w.is_retryable(ApiError(503, "", "x")) and w.is_retryable(ApiError(410, "", "x"))
    assert not w.is_retryable(ApiError(422, "", "x")) and not w.is_retryable(ForbiddenError(403, "", "x"))


def test_a_zero_timeout_still_reads_once(env):
    clock, api = env
    api.put("m", phase="Ready")
    assert ready(w.wait_for(api, "Module", "m", ready, 0, clock=clock, sleep=clock.sleep))
    api.put("m", phase="Reconciling")
    with pytest.raises(w.WaitTimeout, match="phase=Reconciling"):
        w.wait_for(api, "Module", "m", ready, 0, describe=describe, clock=clock, sleep=clock.sleep)
