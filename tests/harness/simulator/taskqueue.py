"""The fake addon-operator task queues and shell-operator's dump formats (dkp-spec.md §5)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

import yaml

MAIN = "main"


@dataclass
class QTask:
    type: str
    queue: str
    meta: str = ""
    failures: int = 0
    error: str = ""
    fail: bool = False   # keeps failing at the head of its queue until cleared
    hold: bool = False   # never drains (a "pending" task) until cleared

    @property
    def description(self) -> str:
        d = f"{self.type}:{self.queue}"
        if self.meta:
            d += ":" + self.meta
        if self.failures > 0:
            d += f":failures {self.failures}"
            if self.error:
                d += ":" + self.error
        return d


class QueueSet:
    def __init__(self, other_queues: list[str] | None = None):
        self.lock = threading.Lock()
        self.other_names = list(other_queues or [])
        self.queues: dict[str, list[QTask]] = {}
        self.clear()

    def clear(self) -> None:
        with self.lock:
            self.queues = {MAIN: []}
            for n in self.other_names:
                self.queues[n] = []

    def add(self, task_type: str, queue: str = MAIN, meta: str = "", *, fail: bool = False, error: str = "",
            failures: int = 0, hold: bool = False) -> QTask:
        t = QTask(task_type, queue, meta, failures=failures, error=error, fail=fail, hold=hold)
        with self.lock:
            self.queues.setdefault(queue, []).append(t)
        return t

    def total(self) -> int:
        with self.lock:
            return sum(len(q) for q in self.queues.values())

    def tick(self) -> bool:
        """Process the head task of every queue once. Returns True if anything is left."""
        with self.lock:
            for name, q in self.queues.items():
                if not q:
                    continue
                head = q[0]
                if head.fail:
                    head.failures += 1
                    continue
                if head.hold:
                    continue
                q.pop(0)
            return any(q for q in self.queues.values())

    @staticmethod
    def status_of(q: list[QTask]) -> str:
        if not q:
            return ""
        head = q[0]
        if head.fail and head.failures > 0:
            return "sleep after fail for 5s"
        return "run first task"

    # -- dumps (shell-operator pkg/task/dump) ----------------------------------------------------
    def _snapshot(self):
        with self.lock:
            return {n: [(i + 1, t.description) for i, t in enumerate(q)] for n, q in self.queues.items()}, \
                {n: self.status_of(q) for n, q in self.queues.items()}

    @staticmethod
    def _sorted(names):
        return sorted(names, key=lambda n: (n != MAIN, n))

    def list_dump(self, fmt: str, show_empty: bool) -> str:
        snap, statuses = self._snapshot()
        active, empty = [], []
        main_q = None
        other_count = active_n = empty_n = tasks_n = 0
        main_tasks = 0
        for name in snap:
            tasks = snap[name]
            if name == MAIN:
                main_tasks = len(tasks)
                if not tasks:
                    main_q = {"name": name, "tasksCount": 0}
                    empty.append(main_q)
                else:
                    main_q = {"name": name, "tasksCount": len(tasks), "status": statuses[name],
                              "tasks": [{"index": i, "description": d} for i, d in tasks]}
                    active.append(main_q)
                continue
            other_count += 1
            if not tasks:
                empty_n += 1
                empty.append({"name": name, "tasksCount": 0})
            else:
                active_n += 1
                tasks_n += len(tasks)
                active.append({"name": name, "tasksCount": len(tasks), "status": statuses[name],
                               "tasks": [{"index": i, "description": d} for i, d in tasks]})
        order = {n: i for i, n in enumerate(self._sorted(snap))}
        active.sort(key=lambda q: order[q["name"]])
        empty.sort(key=lambda q: order[q["name"]])
        summary = {"mainQueueTasks": main_tasks,
                   "otherQueues": {"active": active_n, "empty": empty_n, "tasks": tasks_n},
                   "totalTasks": main_tasks + tasks_n}
        if show_empty and empty and other_count == 0:
            show_empty = False
        if fmt == "text":
            return self._list_text(active, empty, main_q, summary, show_empty)
        doc = {"active": [self._clean(q) for q in active]}
        if show_empty and empty:
            doc["empty"] = [self._clean(q) for q in empty]
        doc["summary"] = summary
        return self._encode(doc, fmt)

    @staticmethod
    def _clean(q: dict) -> dict:
        out = {"name": q["name"], "tasksCount": q["tasksCount"]}
        if q.get("status"):
            out["status"] = q["status"]
        if q.get("tasks"):
            out["tasks"] = q["tasks"]
        return out

    @staticmethod
    def _encode(doc, fmt: str) -> str:
        if fmt == "yaml":
            return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False) + "\n"

    @staticmethod
    def _plural(n: int, zero: str, one: str, many: str) -> str:
        if n == 0 and zero:
            return zero
        return f"{n} {one if n == 1 else many}"

    def _list_text(self, active, empty, main_q, summary, show_empty) -> str:
        buf = []
        for i, q in enumerate(active):
            if i > 0:
                buf.append("\n")
            buf.append(f"Queue '{q['name']}': length {q['tasksCount']}, status: '{q.get('status', '')}'\n")
            buf.append("\n")
            for t in q.get("tasks", []):
                buf.append(f"{t['index']:2d}. {t['description']}\n")
        if show_empty:
            buf.append(f"\nEmpty queues ({len(empty)}):\n")
            for q in empty:
                buf.append(f"- {q['name']}\n")
        if not active and not empty:
            buf.append("Summary:\n  No queues.\n")
        else:
            others = len(active) + len(empty)
            if buf:
                buf.append("\n")
            buf.append("Summary:\n")
            if main_q is not None:
                others -= 1
                buf.append(f"- '{main_q['name']}' queue: "
                           f"{self._plural(len(main_q.get('tasks') or []), 'empty', 'task', 'tasks')}.\n")
            if others > 0:
                o = summary["otherQueues"]
                buf.append(f"- {self._plural(others, '', 'other queue', 'other queues')} "
                           f"({o['active']} active, {o['empty']} empty): "
                           f"{self._plural(o['tasks'], '', 'task', 'tasks')}.\n")
            if summary["totalTasks"] == 0:
                buf.append("- no tasks to handle.\n")
            else:
                buf.append(f"- total {self._plural(summary['totalTasks'], '', 'task', 'tasks')} to handle.\n")
        return "".join(buf)

    def main_dump(self, fmt: str) -> str:
        snap, statuses = self._snapshot()
        tasks = snap.get(MAIN)
        if tasks is None:
            dq = {"name": MAIN, "tasksCount": 0, "status": "Queue is not created"}
        else:
            dq = {"name": MAIN, "tasksCount": len(tasks)}
            if statuses[MAIN]:
                dq["status"] = statuses[MAIN]
            if tasks:
                dq["tasks"] = [{"index": i, "description": d} for i, d in tasks]
        if fmt == "text":
            out = [f"Queue '{dq['name']}': length {dq['tasksCount']}, status: '{dq.get('status', '')}'\n", "\n"]
            for t in dq.get("tasks", []):
                out.append(f"{t['index']:2d}. {t['description']}\n")
            return "".join(out)
        return self._encode(dq, fmt)
