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

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import AuthError, DkpError, ForbiddenError

NAMESPACE = "d8-system"
LEADER_SELECTOR = "app=deckhouse,leader=true"
CONTAINER = "deckhouse"
QUEUE_URL = "http://127.0.0.1:9652/queue/list.json"
CURL = ["curl", "-s", QUEUE_URL]
CURL_REFUSED = (7, 52, 56)  # curl: connection refused / empty reply / reset: the debug API is not up yet

FAILURES_RE = re.compile(r":failures (\d+)(?::(.*))?$", re.DOTALL)
BACKOFF_RE = re.compile(r"sleep after fail for (\d+(?:\.\d+)?)(ms|s|m)")
# Task types whose metadata starts with the module name (addon-operator pkg/task/hook_metadata.go).
MODULE_TASKS = ("ModuleRun", "ModuleDelete", "ModulePurge", "ModuleHookRun", "ModuleEnsureCRDs", "ParallelModuleRun",
                "ConvergeModules")


class QueueUnavailable(DkpError):
    """The queue could not be read right now (no Running leader, Deckhouse restarting)."""


class DeckhouseRestarting(QueueUnavailable):
    """The leader pod is there but its debug API refuses connections: Deckhouse is (re)starting."""


def parse_task(queue, task):
    """One task of the dump. The description is `<Type>:<queue>[:<metadata>][:failures N[:<last error>]]`;
    for module tasks the metadata is `<module>:<event>...` (e.g. `ModuleRun:main:cert-manager:doStartup:...`)."""
    description = str(task.get("description") or "")
    match = FAILURES_RE.search(description)
    failures = int(match.group(1)) if match else 0
    head = description[:match.start()] if match else description
    parts = head.split(":")
    task_type = parts[0] or None
    module = parts[2] if task_type in MODULE_TASKS and len(parts) > 2 and parts[2] else None
    return {"queue": queue, "index": task.get("index"), "description": description, "type": task_type,
            "module": module, "event": ":".join(parts[3:]) or None if module else ":".join(parts[2:]) or None,
            "failures": failures,
            "error": (match.group(2) or "").strip() or None if match else None}


def backoff_seconds(status):
    """`sleep after fail for 5s` (shell-operator's queue status while it backs off a failing task) in seconds."""
    match = BACKOFF_RE.search(str(status or ""))
    if not match:
        return None
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000.0 if unit == "ms" else value * 60 if unit == "m" else value


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
        backoff = backoff_seconds(q.get("status"))
        if backoff is not None and tasks and tasks[0]["failures"] == 0:
            # the head task failed and is being retried, even if its description does not say so yet
            tasks[0]["failures"] = 1
        failing.extend(dict(t, backoff_seconds=backoff if t is tasks[0] else None) for t in tasks if t["failures"] > 0)
        queues.append({"name": name, "tasks_count": int(q.get("tasksCount") or len(tasks)),
                       "status": q.get("status") or "", "backoff_seconds": backoff, "tasks": tasks})
    other = summary.get("otherQueues") or {}
    total = int(summary.get("totalTasks") or 0)
    return {
        "total_tasks": total,
        "main_queue_tasks": int(summary.get("mainQueueTasks") or 0),
        "other_queues": {"active": int(other.get("active") or 0), "empty": int(other.get("empty") or 0),
                         "tasks": int(other.get("tasks") or 0)},
        "active_queues": queues,
        "failing_tasks": failing,
        "startup_tasks": sum(1 for q in queues for t in q["tasks"] if t["event"] and "doStartup" in t["event"]),
        "empty": total == 0 and not queues,
    }


def describe_queue(queue, limit=5):
    """One line: what is in the queue (for messages)."""
    if queue["empty"]:
        return "the queue is empty"
    parts = ["%d task(s) in total (main: %d)" % (queue["total_tasks"], queue["main_queue_tasks"])]
    if queue.get("startup_tasks"):
        parts.append("%d startup task(s): Deckhouse has just (re)started" % queue["startup_tasks"])
    for q in queue["active_queues"][:limit]:
        first = q["tasks"][0]["description"] if q["tasks"] else ""
        parts.append("queue '%s': %d task(s)%s" % (q["name"], q["tasks_count"], ", first: %s" % first if first else ""))
    return "; ".join(parts)


def describe_failing(queue, limit=5):
    lines = []
    for t in queue["failing_tasks"][:limit]:
        what = t["description"].split(":failures")[0]
        extra = ": %s" % t["error"] if t["error"] else ""
        if t.get("backoff_seconds"):
            extra += " (retried every %ss)" % t["backoff_seconds"]
        lines.append("%s (queue '%s', %d failure(s)%s)" % (what, t["queue"], t["failures"], extra))
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


def is_refusal(error):
    """The API server refused us (credentials or RBAC): retrying will not help. Decided by the error's type
    (dkp_client's AuthError/ForbiddenError) or HTTP status, never by its text."""
    return isinstance(error, (AuthError, ForbiddenError))


def exec_refusal(error, pod=None):
    """A clear DkpError of the same type when `error` is a refusal of the exec, else None."""
    if not is_refusal(error):
        return None
    target = "pod %s/%s" % (NAMESPACE, pod) if pod else "the Deckhouse leader pod"
    if isinstance(error, AuthError):
        msg = ("Unauthorized: the API server rejected the credentials for the exec into %s (note: the kubernetes "
               "client sends a bearer token on the exec websocket only under the header name `authorization`)"
               % target)
    else:
        msg = ("Forbidden: cannot exec into %s to read the queue. Grant this user `create` (and `get`) on "
               "`pods/exec` in namespace %s (RBAC)." % (target, NAMESPACE))
    return type(error)(error.status, error.reason, msg, error.body)


def read_queue(client, timeout=120, interval=1.0, max_interval=10.0, exec_timeout=30, sleep=time.sleep,
               clock=time.monotonic):
    """Read the queue through the leader pod, retrying while the leader is being replaced.

    Returns (queue summary, leader pod summary). RBAC refusals fail at once; a refused debug API (Deckhouse
    restarting), a missing leader and broken execs are retried with a growing pause until `timeout`, then
    reported with the last problem seen.
    """
    deadline = clock() + max(0, timeout)
    last_problem = None
    restarting = False
    pause = interval
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
            if rc in CURL_REFUSED or (rc in (0, None) and not out.strip()):
                raise DeckhouseRestarting("Deckhouse is restarting: its debug API (%s) in pod %s/%s does not answer "
                                          "(curl exit %s)" % (QUEUE_URL, NAMESPACE, name, rc))
            if rc not in (0, None):
                detail = ": %s" % err.strip() if err.strip() else ""
                raise QueueUnavailable("`%s` in pod %s/%s exited with %s%s" % (" ".join(CURL), NAMESPACE, name, rc, detail))
            try:
                return parse_queue(out), pod_summary(leader)
            except ValueError as e:
                raise QueueUnavailable("unexpected answer from the queue API in pod %s/%s (%s): %r"
                                       % (NAMESPACE, name, e, out[:200]))
        except QueueUnavailable as e:
            restarting = isinstance(e, DeckhouseRestarting)
            last_problem = e.msg
        except DkpError as e:
            refused = exec_refusal(e, name)
            if refused:
                raise refused  # credentials or RBAC: retrying will not help
            restarting = False
            last_problem = e.msg  # the pod went away mid-exec, the websocket broke: retry
        if clock() >= deadline:
            cls = DeckhouseRestarting if restarting else QueueUnavailable
            raise cls("Cannot read the Deckhouse queue within %ss: %s%s"
                      % (int(timeout), last_problem,
                         ". Deckhouse restarts after registry switches, release deploys and module reinstalls; "
                         "try again in a minute or raise leader_wait_timeout" if restarting else ""),
                      restarting=restarting)
        sleep(min(pause, max(0.0, deadline - clock())))
        pause = min(max_interval, pause * 2)


def wait_queue_empty(client, timeout, leader_timeout=120, poll=2.0, sleep=time.sleep, clock=time.monotonic):
    """(queue, leader) once the queue is empty. The queue is only reachable by exec (no watch), so it is
    polled. A failing task fails at once (it does not drain by itself, the wait could only time out); on
    timeout the error describes the last queue seen."""
    from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_wait import WaitFailed, WaitTimeout

    deadline = clock() + timeout
    while True:
        queue, leader = read_queue(client, timeout=max(leader_timeout, 0))
        if queue["failing_tasks"]:
            raise WaitFailed("Deckhouse's queue has %d failing task(s): %s. They do not drain by themselves: fix the "
                             "cause (d8 system queue list; the module's logs)"
                             % (len(queue["failing_tasks"]), describe_failing(queue)), leader=leader, **queue)
        if queue["empty"]:
            return queue, leader
        if clock() >= deadline:
            raise WaitTimeout("Timed out after %ss waiting for Deckhouse's queue to drain; last seen: %s"
                              % (timeout, describe_queue(queue)), leader=leader, **queue)
        sleep(min(poll, max(0.0, deadline - clock())))
