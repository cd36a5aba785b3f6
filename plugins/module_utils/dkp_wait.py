# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Waiting on one object with a watch, not a polling loop.

The wait lists the object to get a resourceVersion, then watches from there, so no change is
missed between the read and the watch. A dropped stream, an apiserver restart or an expired
resourceVersion (410) re-lists and resumes; if watching keeps failing it degrades to polling.
Freshness is the caller's business: predicates must reject a state that predates the write (for
example by requiring a condition that the write itself resets).
"""

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import time

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import ApiError, DkpError


class WaitTimeout(DkpError):
    pass


class WaitFailed(DkpError):
    pass


def wait_for(client, kind, name, predicate, timeout, namespace=None, describe=None, failure=None,
             tick=None, heartbeat=5.0):
    """Block until `predicate(obj)` is true and return obj (None stands for "does not exist").

    failure(obj) -> str|None fails fast with that message (for example an Error status).
    tick() -> str|None runs at least every `heartbeat` seconds for checks on other objects.
    describe(obj) -> str goes into the timeout message: the last state we saw.
    """
    describe = describe or (lambda o: "not found" if o is None else str((o or {}).get("status")))
    deadline = time.monotonic() + timeout
    last = None
    seen = False
    rv = None
    watch_failures = 0

    def settle(obj):
        message = failure(obj) if failure else None
        if message:
            raise WaitFailed(message, last_state=describe(obj))
        return predicate(obj)

    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            state = describe(last) if seen else "never read (API unreachable)"
            raise WaitTimeout("Timed out after %ss waiting for %s %s%s; last observed state: %s"
                              % (int(timeout), kind, namespace + "/" if namespace else "", name, state),
                              last_state=state)
        if tick:
            message = tick()
            if message:
                raise WaitFailed(message, last_state=describe(last))
        try:
            if rv is None:
                items, rv = client.list(kind, namespace=namespace, field_selector="metadata.name=%s" % name)
                last, seen = (items[0] if items else None), True
                if settle(last):
                    return last
            if watch_failures >= 3:  # the API keeps dropping watches: poll instead
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                rv = None
                continue
            window = max(1.0, min(heartbeat, deadline - time.monotonic()))
            for etype, obj in client.watch(kind, rv, namespace=namespace, name=name, timeout=window):
                rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                if etype == "BOOKMARK":
                    continue
                last = None if etype == "DELETED" else obj
                if settle(last):
                    return last
            watch_failures = 0
        except ApiError as e:
            if e.status == 410:
                rv = None  # history compacted: re-list
                continue
            if e.status in (401, 403) or e.reason == "NotServed":
                raise
            watch_failures += 1
            rv = None
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        except (WaitFailed, WaitTimeout):
            raise
        except DkpError:
            # Connection refused or reset (apiserver restart): back off briefly and re-list.
            watch_failures += 1
            rv = None
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        except Exception:  # a stream cut mid-chunk surfaces as a urllib3/JSON error
            watch_failures += 1
            rv = None
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
