"""The cluster's processes: start them in their own sessions, record them in pids.json
(PID plus start time, so a reused PID is never signalled), stop them by process group."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from . import ClusterError

STOP_TIMEOUT = 10.0

# Processes started by this Python process, so that `down` can reap them (no zombies).
_CHILDREN: dict[int, subprocess.Popen] = {}


def _proc_start_time(pid: int) -> str | None:
    """Start time of a process in clock ticks since boot (guards against PID reuse)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return None
    # comm may contain spaces and parentheses: split after the last ')'.
    rest = data[data.rfind(")") + 2:].split()
    if len(rest) < 20 or rest[0] == "Z":
        return None
    return rest[19]


def _alive(entry: dict) -> bool:
    st = _proc_start_time(entry["pid"])
    return st is not None and st == entry.get("start_time")


def _state_path(d: Path) -> Path:
    return d / "pids.json"


def read_state(d: str | os.PathLike | None = None) -> dict | None:
    p = _state_path(Path(d))
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def _write_state(d: Path, state: dict) -> None:
    tmp = _state_path(d).with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(_state_path(d))


def _start(d: Path, state: dict, name: str, cmd: list[str], env: dict | None = None,
           cwd: Path | None = None) -> subprocess.Popen:
    logf = open(d / "logs" / f"{name}.log", "ab")
    try:
        proc = subprocess.Popen(
            [str(c) for c in cmd],
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=str(cwd) if cwd else None,
        )
    finally:
        logf.close()
    _CHILDREN[proc.pid] = proc
    st = _proc_start_time(proc.pid)
    for dummy in range(50):  # /proc entry appears at once, but be safe
        if st:
            break
        time.sleep(0.01)
        st = _proc_start_time(proc.pid)
    entry = {"name": name, "pid": proc.pid, "pgid": proc.pid, "start_time": st,
             "cmd": [str(c) for c in cmd[:1]], "argv": [str(c) for c in cmd]}
    procs = state["processes"]
    old = next((i for i, e in enumerate(procs) if e["name"] == name), None)
    if old is None:
        procs.append(entry)
    else:  # a restart (restart-apiserver): the entry keeps its place in the stop order
        procs[old] = entry
    _write_state(d, state)
    return proc


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _check_alive(d: Path, procs: dict[str, subprocess.Popen]) -> None:
    for name, p in procs.items():
        rc = p.poll()
        if rc is not None:
            raise ClusterError(
                f"{name} exited with code {rc}; last lines of {d / 'logs' / (name + '.log')}:\n"
                + _tail(d / "logs" / f"{name}.log")
            )


def _stop_processes(state: dict, timeout: float = STOP_TIMEOUT) -> None:
    try:
        _signal_and_wait(state, timeout)
    finally:
        for e in state.get("processes", []):
            child = _CHILDREN.pop(e["pid"], None)
            if child is not None:
                try:
                    child.wait(timeout=1)
                except subprocess.TimeoutExpired:
                    pass


def _signal_and_wait(state: dict, timeout: float) -> None:
    """Stop the recorded processes one by one in reverse start order.

    Each leads its own session (process group): SIGTERM the group, wait up to `timeout`,
    then SIGKILL it. Stopping kube-apiserver before etcd keeps both shutdowns short.
    """
    for e in reversed(state.get("processes", [])):
        st = _proc_start_time(e["pid"])
        if st is not None and st != e.get("start_time"):
            continue  # the PID now belongs to another process: never touch it
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 3.0)):
            try:
                os.killpg(e["pgid"], sig)
            except (ProcessLookupError, PermissionError):
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                _reap()
                if not (_alive(e) or _group_alive(e["pgid"])):
                    break
                time.sleep(0.02)
            else:
                continue  # still there: escalate
            break


def _group_alive(pgid: int) -> bool:
    """True while a live (non-zombie) process belongs to process group `pgid`."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                data = f.read().decode(errors="replace")
        except OSError:
            continue
        rest = data[data.rfind(")") + 2:].split()
        if len(rest) > 2 and rest[2] == str(pgid) and rest[0] not in ("Z", "X"):
            return True
    return False


def _reap() -> None:
    for pid, child in list(_CHILDREN.items()):
        if child.poll() is not None:
            _CHILDREN.pop(pid, None)
