# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Deckhouse's task queue, read like `d8 system queue list -o json` does (dkp-spec.md §5).

The leader pod (d8-system, labels app=deckhouse,leader=true) serves shell-operator's debug API on
127.0.0.1:9652 inside the pod; we exec `curl` in its `deckhouse` container. Errors only show up as
`:failures N:` inside task descriptions, so those are parsed out.
"""

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import json
import re
import time

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import DkpError

NAMESPACE = "d8-system"
LEADER_SELECTOR = "app=deckhouse,leader=true"
CONTAINER = "deckhouse"
QUEUE_URL = "http://127.0.0.1:9652/queue/list.json"
CURL = ["curl", "-s", QUEUE_URL]

FAILURES_RE = re.compile(r":failures (\d+)(?::(.*))?$", re.DOTALL)


class QueueUnavailable(DkpError):
    """The queue could not be read right now (no Running leader, Deckhouse restarting)."""


def parse_task(queue, task):
    description = str(task.get("description") or "")
    match = FAILURES_RE.search(description)
    failures = int(match.group(1)) if match else 0
    return {"queue": queue, "index": task.get("index"), "description": description, "failures": failures,
            "error": (match.group(2) or "").strip() or None if match else None}


def parse_queue(text):
    """The JSON of /queue/list.json as a summary; raises ValueError on anything else."""
    doc = json.loads(text)
    if not isinstance(doc, dict) or not isinstance(doc.get("summary"), dict):
        raise ValueError("no `summary` in the queue dump")
    summary = doc["summary"]
    queues = []
    failing = []
    for q in doc.get("active") or []:
        name = q.get("name")
        tasks = [parse_task(name, t) for t in q.get("tasks") or []]
        failing.extend(t for t in tasks if t["failures"] > 0)
        queues.append({"name": name, "tasks_count": int(q.get("tasksCount") or len(tasks)),
                       "status": q.get("status") or "", "tasks": tasks})
    other = summary.get("otherQueues") or {}
    total = int(summary.get("totalTasks") or 0)
    return {
        "total_tasks": total,
        "main_queue_tasks": int(summary.get("mainQueueTasks") or 0),
        "other_queues": {"active": int(other.get("active") or 0), "empty": int(other.get("empty") or 0),
                         "tasks": int(other.get("tasks") or 0)},
        "active_queues": queues,
        "failing_tasks": failing,
        "empty": total == 0 and not queues,
    }


def describe_queue(queue, limit=5):
    """One line: what is in the queue (for messages)."""
    if queue["empty"]:
        return "the queue is empty"
    parts = ["%d task(s) in total (main: %d)" % (queue["total_tasks"], queue["main_queue_tasks"])]
    for q in queue["active_queues"][:limit]:
        first = q["tasks"][0]["description"] if q["tasks"] else ""
        parts.append("queue '%s': %d task(s)%s" % (q["name"], q["tasks_count"], ", first: %s" % first if first else ""))
    return "; ".join(parts)


def describe_failing(queue, limit=5):
    lines = ["%s (queue '%s', %d failure(s)%s)" % (t["description"].split(":failures")[0], t["queue"], t["failures"],
                                                   ": %s" % t["error"] if t["error"] else "")
             for t in queue["failing_tasks"][:limit]]
    more = len(queue["failing_tasks"]) - limit
    return "; ".join(lines) + ("; and %d more" % more if more > 0 else "")


def pod_summary(pod):
    status = pod.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    restarts = sum(int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or [])
    return {"name": pod["metadata"]["name"], "phase": status.get("phase"), "ready": ready,
            "node": (pod.get("spec") or {}).get("nodeName"), "restarts": restarts,
            "terminating": bool(pod["metadata"].get("deletionTimestamp")),
            "started": status.get("startTime")}


def find_leader(client):
    """(the Running leader pod or None, summaries of every pod labelled as leader)."""
    pods, _rv = client.list("Pod", namespace=NAMESPACE, label_selector=LEADER_SELECTOR)
    summaries = [pod_summary(p) for p in pods]
    running = [p for p, s in zip(pods, summaries) if s["phase"] == "Running" and not s["terminating"]]
    running.sort(key=lambda p: (not pod_summary(p)["ready"], p["metadata"]["name"]))
    return (running[0] if running else None), summaries


def impersonation_note(client):
    """kubernetes.stream forwards only the Authorization header on the exec websocket, so impersonation is
    not applied to pods/exec: say so rather than let it pass silently."""
    params = getattr(client, "params", {}) or {}
    if params.get("impersonate_user") or params.get("impersonate_groups"):
        return ("impersonate_user/impersonate_groups are not applied to pods/exec (the kubernetes client sends "
                "only the Authorization header on the exec websocket): the queue was read as the kubeconfig's own "
                "user")
    return None


def exec_refusal(error, pod=None):
    """A clear DkpError when `error` says the API server refused us (RBAC or credentials), else None.

    The websocket handshake of pods/exec reports its status only inside the exception text
    ("Handshake status 403 Forbidden ..."), so that text is looked at too."""
    msg = error.msg
    status = (error.details or {}).get("status")
    target = "pod %s/%s" % (NAMESPACE, pod) if pod else "the Deckhouse leader pod"
    if status == 403 or "Handshake status 403" in msg:
        return DkpError("Forbidden: cannot exec into %s to read the queue. Grant this user `create` (and `get`) on "
                        "`pods/exec` in namespace %s (RBAC)." % (target, NAMESPACE))
    if status == 401 or "Handshake status 401" in msg:
        return DkpError("Unauthorized: the API server rejected the credentials for the exec into %s (note: the "
                        "kubernetes client sends a bearer token on the exec websocket only under the header name "
                        "`authorization`)" % target)
    if msg.startswith(("Forbidden", "Unauthorized")):
        return error
    return None


def read_queue(client, timeout=120, interval=2.0, exec_timeout=30, sleep=time.sleep, clock=time.monotonic):
    """Read the queue through the leader pod, retrying while the leader is being replaced.

    Returns (queue summary, leader pod summary). RBAC refusals fail at once; everything else is retried
    until `timeout` and then reported with the last problem seen.
    """
    deadline = clock() + max(0, timeout)
    last_problem = None
    while True:
        name = None
        try:
            leader, pods = find_leader(client)
            if leader is None:
                if pods:
                    raise QueueUnavailable("no Running Deckhouse leader pod in %s (pods labelled %s: %s); Deckhouse "
                                           "is restarting or the leader is being replaced"
                                           % (NAMESPACE, LEADER_SELECTOR,
                                              ", ".join("%s %s%s" % (p["name"], p["phase"],
                                                                     " terminating" if p["terminating"] else "")
                                                        for p in pods)))
                raise QueueUnavailable("no Deckhouse leader pod in %s (no pod with labels %s): is Deckhouse running?"
                                       % (NAMESPACE, LEADER_SELECTOR))
            name = leader["metadata"]["name"]
            rc, out, err = client.exec_in_pod(NAMESPACE, name, CONTAINER, CURL, timeout=exec_timeout)
            if rc not in (0, None):
                detail = ": %s" % err.strip() if err.strip() else ""
                raise QueueUnavailable("`%s` in pod %s/%s exited with %s%s" % (" ".join(CURL), NAMESPACE, name, rc, detail))
            try:
                return parse_queue(out), pod_summary(leader)
            except ValueError as e:
                raise QueueUnavailable("unexpected answer from the queue API in pod %s/%s (%s): %r"
                                       % (NAMESPACE, name, e, out[:200]))
        except QueueUnavailable as e:
            last_problem = e.msg
        except DkpError as e:
            refused = exec_refusal(e, name)
            if refused:
                raise refused  # credentials or RBAC: retrying will not help
            last_problem = e.msg  # the pod went away mid-exec, the websocket broke: retry
        if clock() >= deadline:
            raise DkpError("Cannot read the Deckhouse queue: %s" % last_problem)
        sleep(min(interval, max(0.0, deadline - clock())))
