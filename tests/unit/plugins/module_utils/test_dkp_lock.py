# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""dkp_lock against an in-memory Lease store that enforces create/resourceVersion semantics."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import datetime

import pytest

from ansible_collections.deckhouse.platform.plugins.module_utils import dkp_lock
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import ConflictError
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_resource import deep_merge


class FakeLeases:
    def __init__(self):
        self.objects = {}
        self.rv = 1
        self.writes = []
        self.before_write = None  # hook: lets a test slip a racing write in between read and write

    def get(self, kind, name, namespace=None):
        obj = self.objects.get((namespace, name))
        return copy.deepcopy(obj)

    def create(self, kind, body, namespace=None, dry_run=False):
        if self.before_write:
            hook, self.before_write = self.before_write, None
            hook()
        self.writes.append(("create", body["metadata"]["name"]))
        key = (namespace, body["metadata"]["name"])
        if key in self.objects:
            raise ConflictError(409, "AlreadyExists", "already exists")
        self.rv += 1
        obj = copy.deepcopy(body)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.objects[key] = obj
        return copy.deepcopy(obj)

    def merge_patch(self, kind, name, patch, namespace=None, dry_run=False):
        if self.before_write:
            hook, self.before_write = self.before_write, None
            hook()
        self.writes.append(("patch", name))
        obj = self.objects[(namespace, name)]
        want = (patch.get("metadata") or {}).get("resourceVersion")
        if want and want != obj["metadata"]["resourceVersion"]:
            raise ConflictError(409, "Conflict", "the object has been modified")
        patch = copy.deepcopy(patch)
        patch["metadata"].pop("resourceVersion", None)
        self.rv += 1
        obj = deep_merge(obj, patch)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.objects[(namespace, name)] = obj
        return copy.deepcopy(obj)


class Clock:
    def __init__(self):
        self.t = 0.0
        self.wall = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.timezone.utc)

    def mono(self):
        return self.t

    def now(self):
        return self.wall + datetime.timedelta(seconds=self.t)

    def sleep(self, s):
        self.t += s


def take(client, clock, holder, ttl=60, wait=0, **kw):
    return dkp_lock.acquire(client, "l", holder, ttl, wait, namespace="ns", clock=clock.mono, sleep=clock.sleep,
                            now=clock.now, **kw)


def test_acquire_create_then_second_holder_fails_naming_holder():
    c, clock = FakeLeases(), Clock()
    first = take(c, clock, "a")
    assert first["acquired"] and first["action"] == "acquired"
    with pytest.raises(dkp_lock.LockHeld) as e:
        take(c, clock, "b")
    assert "held by a since 2026-12-01T12:00:00" in e.value.msg and "max_wait is 0" in e.value.msg


def test_same_holder_renews():
    c, clock = FakeLeases(), Clock()
    take(c, clock, "a")
    clock.t = 30
    again = take(c, clock, "a")
    assert again["action"] == "renewed" and again["lease"]["renewed"].startswith("2026-12-01T12:00:30")


def test_expired_lease_is_taken_over_and_transitions_counted():
    c, clock = FakeLeases(), Clock()
    take(c, clock, "crashed", ttl=10)
    clock.t = 11
    result = take(c, clock, "b")
    assert result["took_over_from"]["holder"] == "crashed" and result["lease"]["transitions"] == 1


def test_wait_until_released():
    c, clock = FakeLeases(), Clock()
    take(c, clock, "a", ttl=600)
    orig = clock.sleep

    def sleep(s):
        orig(s)
        if clock.t >= 5 and c.get("Lease", "l", "ns")["spec"].get("holderIdentity"):
            dkp_lock.release(c, "l", "a", namespace="ns", now=clock.now)

    result = dkp_lock.acquire(c, "l", "b", 60, 30, namespace="ns", clock=clock.mono, sleep=sleep, now=clock.now)
    assert result["acquired"] and 5 <= result["waited"] <= 8


def test_wait_times_out_with_holder():
    c, clock = FakeLeases(), Clock()
    take(c, clock, "a", ttl=600)
    with pytest.raises(dkp_lock.LockHeld) as e:
        take(c, clock, "b", wait=20)
    assert "after waiting 20s" in e.value.msg and clock.t >= 20


def test_race_on_create_exactly_one_wins():
    c, clock = FakeLeases(), Clock()
    c.before_write = lambda: take(c, clock, "racer")
    with pytest.raises(dkp_lock.LockHeld):
        take(c, clock, "me")
    assert c.objects[("ns", "l")]["spec"]["holderIdentity"] == "racer"


def test_race_on_expired_takeover_exactly_one_wins():
    c, clock = FakeLeases(), Clock()
    take(c, clock, "dead", ttl=5)
    clock.t = 6
    c.before_write = lambda: take(c, clock, "racer")
    with pytest.raises(dkp_lock.LockHeld):
        take(c, clock, "me")
    assert c.objects[("ns", "l")]["spec"]["holderIdentity"] == "racer"


def test_check_mode_writes_nothing():
    c, clock = FakeLeases(), Clock()
    assert take(c, clock, "a", check_mode=True)["would"] == "acquire"
    assert c.writes == []
    take(c, clock, "a")
    c.writes = []
    assert take(c, clock, "b", check_mode=True)["would"] == "fail"
    assert take(c, clock, "b", wait=5, check_mode=True)["would"] == "wait"
    assert dkp_lock.release(c, "l", "a", namespace="ns", check_mode=True)["would"] == "release"
    assert c.writes == []


def test_release_only_by_holder():
    c, clock = FakeLeases(), Clock()
    take(c, clock, "a")
    other = dkp_lock.release(c, "l", "b", namespace="ns", now=clock.now)
    assert other["released"] is False and "held by a" in other["reason"]
    mine = dkp_lock.release(c, "l", "a", namespace="ns", now=clock.now)
    assert mine["released"] is True and mine["lease"]["free"]
    assert take(c, clock, "b")["lease"]["transitions"] == 1


def test_renew_lost_lock_fails():
    c, clock = FakeLeases(), Clock()
    take(c, clock, "a", ttl=5)
    clock.t = 6
    take(c, clock, "b")
    with pytest.raises(dkp_lock.LockLost):
        dkp_lock.renew(c, "l", "a", 5, namespace="ns", now=clock.now)


def test_bad_numbers_refused():
    with pytest.raises(dkp_lock.DkpError):
        dkp_lock.check_ttl(0)
    with pytest.raises(dkp_lock.DkpError):
        dkp_lock.check_ttl(10, -1)


def test_default_holder():
    assert dkp_lock.default_holder(environ={"JOB_ID": "42"}) == "awx-job-42"
    assert dkp_lock.default_holder("7", environ={}) == "awx-job-7"
    assert "@" in dkp_lock.default_holder(environ={})


def test_parse_time_variants():
    for text in ("2026-12-01T12:00:00Z", "2026-12-01T12:00:00.123456Z", "2026-12-01T12:00:00.1Z"):
        assert dkp_lock.parse_time(text).year == 2026
