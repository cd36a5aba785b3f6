"""ModuleRelease decisions (dkp-spec.md §2): task calculation and deploy-time checks. Pure."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from . import consts
from .semver import Version, is_patch_release

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def parse_bool(value) -> bool:
    """Go strconv.ParseBool (errors count as false)."""
    return str(value) in ("1", "t", "T", "TRUE", "true", "True")


def is_true(value) -> bool:
    """Deckhouse compares most release annotations to the exact string "true"."""
    return value == "true"


@dataclass
class Policy:
    name: str = ""
    mode: str = "Auto"
    channel: str = "Stable"
    windows: list = field(default_factory=list)


def _hm(text: str) -> tuple[int, int]:
    h, m = str(text).split(":", 1)
    return int(h), int(m)


def _window_applies(w: dict, day: dt.date) -> bool:
    days = w.get("days") or []
    return not days or DAYS[day.weekday()] in days


def window_allowed(windows: list, now: dt.datetime) -> bool:
    if not windows:
        return True
    cur = (now.hour, now.minute)
    for w in windows:
        try:
            if _window_applies(w, now.date()) and _hm(w["from"]) <= cur < _hm(w["to"]):
                return True
        except (KeyError, ValueError):
            continue
    return False


def next_window_start(windows: list, now: dt.datetime) -> dt.datetime | None:
    best = None
    for delta in range(0, 8):
        day = (now + dt.timedelta(days=delta)).date()
        for w in windows:
            try:
                if not _window_applies(w, day):
                    continue
                h, m = _hm(w["from"])
            except (KeyError, ValueError):
                continue
            start = dt.datetime(day.year, day.month, day.day, h, m, tzinfo=dt.timezone.utc)
            if start > now and (best is None or start < best):
                best = start
        if best is not None:
            return best
    return best


def rfc822(t: dt.datetime) -> str:
    """Go time.RFC822 "02 Jan 06 15:04 MST" in UTC."""
    return t.astimezone(dt.timezone.utc).strftime("%d %b %y %H:%M UTC")


@dataclass
class Task:
    kind: str  # process | await | skip
    message: str = ""
    is_patch: bool = False
    deployed: tuple | None = None  # (name, Version)


def release_version(rel: dict) -> Version:
    return Version.parse((rel.get("spec") or {}).get("version") or "0.0.0")


def release_phase(rel: dict) -> str:
    return (rel.get("status") or {}).get("phase") or ""


def annotations(rel: dict) -> dict:
    return (rel.get("metadata") or {}).get("annotations") or {}


def is_forced(rel: dict) -> bool:
    ann = annotations(rel)
    return is_true(ann.get(consts.ANN_FORCE)) or is_true(ann.get(consts.ANN_FORCE_OLD))


def calculate_task(release: dict, releases: list[dict]) -> Task:
    """releaseupdater.TaskCalculator.CalculatePendingReleaseTask (without update constraints)."""
    if len(releases) <= 1:
        return Task("process", is_patch=False)
    rels = sorted(releases, key=release_version)
    ver = release_version(release)
    forced = [r for r in rels if is_forced(r)]
    if forced and release_version(forced[-1]) > ver:
        return Task("skip")
    deployed = next((r for r in rels if release_phase(r) == "Deployed"), None)
    dinfo = None
    if deployed is not None:
        dver = release_version(deployed)
        dinfo = (deployed["metadata"]["name"], dver)
        if dver > ver:
            return Task("skip")
        if dver == ver:
            return Task("skip", message="")
    idx = next(i for i, r in enumerate(rels) if r["metadata"]["name"] == release["metadata"]["name"])
    is_patch = True
    if idx > 0:
        prev = rels[idx - 1]
        pver = release_version(prev)
        if not is_patch_release(pver, ver) or (dinfo is not None and not is_patch_release(dinfo[1], ver)):
            is_patch = False
            if release_phase(prev) == "Pending":
                msg = (prev.get("status") or {}).get("message") or ""
                if "awaiting" not in msg:
                    msg = f"awaiting for v{pver} release to be deployed"
                return Task("await", msg, deployed=dinfo)
            if ver.major == pver.major and ver.minor - 1 > pver.minor:
                return Task("await", f"minor version is greater than deployed {pver} by one", deployed=dinfo)
            if ver.major > pver.major and (pver.major != 0 or ver.major != 1):
                return Task("await", f"major version is greater than deployed {pver}", deployed=dinfo)
    if idx < len(rels) - 1:
        nxt = release_version(rels[idx + 1])
        if ver.major < nxt.major or ver.minor < nxt.minor:
            return Task("process", is_patch=is_patch, deployed=dinfo)
        return Task("skip", is_patch=is_patch)
    return Task("process", is_patch=is_patch, deployed=dinfo)


def deploy_delay(release: dict, task: Task, policy: Policy, now: dt.datetime) -> str | None:
    """The Pending message that blocks the release, or None when it may be deployed now."""
    ann = annotations(release)
    if is_true(ann.get(consts.ANN_APPLY_NOW)):
        return None
    approved = parse_bool(ann.get(consts.ANN_APPROVED, "false"))
    mode = policy.mode or "Auto"
    out_of_window = False
    need_approval = False
    if task.is_patch:
        if mode != "Manual" and policy.windows and not window_allowed(policy.windows, now):
            out_of_window = True
        if mode == "Manual" and not approved:
            need_approval = True
    else:
        if mode == "Auto" and policy.windows and not window_allowed(policy.windows, now):
            out_of_window = True
        if mode != "Auto" and not approved:
            need_approval = True
    if not out_of_window and not need_approval:
        return None
    reasons = []
    if out_of_window:
        reasons.append("waiting for the update window")
    if need_approval:
        reasons.append(f"waiting for the '{consts.ANN_APPROVED}: \"true\"' annotation")
    msg = "Release is " + ", ".join(reasons)
    if out_of_window:
        start = next_window_start(policy.windows, now)
        if start is not None:
            if need_approval:
                msg += ". After approval the release will be delayed until " + rfc822(start)
            else:
                msg += " until " + rfc822(start)
    return msg


def new_versions(all_versions: list[str], deployed: Version | None, target: Version) -> list[Version]:
    """The highest patch of every minor between the deployed and the target version (inclusive)."""
    if deployed is None:
        return [target]
    vs = sorted({v for v in (Version.try_parse(x) for x in all_versions) if v is not None})
    result: list[Version] = []
    last = None
    for v in vs:
        if not v > deployed:
            continue
        if not (v.major < target.major or (v.major == target.major and v.minor <= target.minor)):
            continue
        if last is not None and (last.minor < v.minor or last.major < v.major):
            result.append(last)
        last = v
    if last is not None:
        result.append(target if last > target else last)
    return result
