"""Constants and small helpers shared by the simulator's reconcilers."""

from __future__ import annotations

import base64
import datetime as dt
import re

from . import consts as c

MASTERS = ["master-0", "master-1", "master-2"]
WORKERS = ["worker-0", "worker-1"]
DECKHOUSE_REPO = "registry.deckhouse.io/deckhouse/ce/modules"
INITIAL_DECKHOUSE_SETTINGS = {"bundle": "Default", "releaseChannel": "Stable", "logLevel": "Info",
                              "update": {"mode": "Auto"}}
# credentials of the fake registries (not the registry-state marker: that one is for leak tests)
FAKE_LICENSE = "fake-license-token-of-the-dkp-simulator"
INITIAL_GLOBAL_SETTINGS = {"modules": {"publicDomainTemplate": "%s.dkp.example.com"}}
# finalizers of every deployed ModuleRelease (1.75+ adds metrics-registered)
RELEASE_FINALIZERS = (c.MR_FINALIZER, c.MR_FINALIZER_METRICS)
DEFAULT_IMAGE_ERROR = "<checker format>"
# EventDescription of the tasks a starting addon-operator queues (the last `:`-part)
STARTUP_EVENT = "Operator-Startup"


def now_rfc3339() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def parse_duration(text: str | None, default: float) -> float:
    if not text:
        return default
    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", str(text).strip())
    if not m or not any(m.groups()):
        return default
    h, mi, s = (int(x or 0) for x in m.groups())
    return float(h * 3600 + mi * 60 + s)


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def unb64(s: str | None) -> str:
    try:
        return base64.b64decode(s or "").decode()
    except (ValueError, UnicodeDecodeError):
        return ""


def md(obj: dict | None) -> dict:
    return (obj or {}).get("metadata") or {}


def labels(obj) -> dict:
    return md(obj).get("labels") or {}


def anns(obj) -> dict:
    return md(obj).get("annotations") or {}


def deleting(obj) -> bool:
    return bool(md(obj).get("deletionTimestamp"))


def strip_times(conds: list[dict]) -> list[tuple]:
    return sorted((x.get("type"), x.get("status"), x.get("reason", ""), x.get("message", "")) for x in conds or [])


def set_module_condition(conds: list[dict], ctype: str, status: str, reason: str = "", message: str = "") -> None:
    """Module.SetConditionTrue/False/Unknown: True clears reason and message."""
    if status == "True":
        reason, message = "", ""
    now = now_rfc3339()
    for x in conds:
        if x.get("type") == ctype:
            if x.get("status") != status:
                x["lastTransitionTime"] = now
                x["status"] = status
            if x.get("reason", "") != reason or x.get("message", "") != message:
                x["reason"] = reason
                x["message"] = message
            x["lastProbeTime"] = now
            return
    conds.append({"type": ctype, "status": status, "reason": reason, "message": message,
                  "lastProbeTime": now, "lastTransitionTime": now})
