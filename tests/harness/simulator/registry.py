"""The registry module's switch orchestration (dkp-spec.md §4.2, §4.3). Pure helpers."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import yaml

from . import consts as c

MODES = ("Unmanaged", "Direct", "Proxy", "Local")
DEFAULT_REPO = "registry.deckhouse.io/deckhouse/ce"
IN_CLUSTER_ADDRESS = "registry.d8-system.svc:5001"


def params(registry_settings: dict | None) -> dict:
    """Normalised parameters of ModuleConfig deckhouse spec.settings.registry."""
    reg = registry_settings or {}
    mode = reg.get("mode") or "Unmanaged"
    block = {"Direct": "direct", "Proxy": "proxy", "Unmanaged": "unmanaged"}.get(mode)
    sub = (reg.get(block) or {}) if block else {}
    out = {"mode": mode, "configurable": bool(sub) if mode == "Unmanaged" else True}
    for k in ("imagesRepo", "scheme", "username", "password", "license", "ca", "checkMode", "ttl"):
        if k in sub:
            out[k] = sub[k]
    return out


def config_hash(p: dict) -> str:
    return hashlib.sha256(json.dumps(p, sort_keys=True).encode()).hexdigest()


def transition_error(mode: str, target: str, configurable: bool) -> str | None:
    """state.go: Local<->Proxy and Local -> non-configurable Unmanaged are not supported."""
    mode = mode or "Unmanaged"
    if target == "Local" and mode == "Proxy":
        return f"mode transition from {mode} to {target} not supported"
    if target == "Proxy" and mode == "Local":
        return f"mode transition from {mode} to {target} not supported"
    if target == "Unmanaged" and not configurable and mode not in ("Unmanaged", "Proxy", "Direct"):
        return f"mode transition from {mode} to {target} not supported"
    return None


def sequence(mode: str, target: str, configurable: bool) -> list[str]:
    """Condition types the orchestrator walks, in order, before Ready (released step orders,
    modules/038-registry/hooks/orchestrator)."""
    if target == "Direct":
        return [c.RC_IMAGES, c.RC_PREFLIGHT, c.RC_TRANSITION, c.RC_INCLUSTER_PROXY, c.RC_SWITCH, c.RC_FINAL,
                c.RC_CLEANUP_NODE_SERVICES]
    if target == "Proxy":
        return [c.RC_IMAGES, c.RC_PREFLIGHT, c.RC_NODE_SERVICES, c.RC_TRANSITION, c.RC_SWITCH, c.RC_FINAL,
                c.RC_CLEANUP_INCLUSTER_PROXY]
    if target == "Local":
        # the images are checked only once the node services run, against the per-node registries
        return [c.RC_PREFLIGHT, c.RC_NODE_SERVICES, c.RC_IMAGES, c.RC_TRANSITION, c.RC_SWITCH, c.RC_FINAL,
                c.RC_CLEANUP_INCLUSTER_PROXY]
    if configurable:
        return [c.RC_IMAGES, c.RC_PREFLIGHT, c.RC_TRANSITION, c.RC_SWITCH, c.RC_FINAL,
                c.RC_CLEANUP_NODE_SERVICES, c.RC_CLEANUP_INCLUSTER_PROXY]
    if mode in ("Direct", "Proxy"):
        return [c.RC_IMAGES, c.RC_TRANSITION, c.RC_SWITCH, c.RC_FINAL, c.RC_CLEANUP_NODE_SERVICES,
                c.RC_CLEANUP_INCLUSTER_PROXY]
    return [c.RC_FINAL, c.RC_CLEANUP_NODE_SERVICES, c.RC_CLEANUP_INCLUSTER_PROXY]


def registry_host(p: dict) -> str:
    repo = p.get("imagesRepo") or DEFAULT_REPO
    return repo.split("/", 1)[0]


def checker_registries(p: dict, nodes: list[str] | None = None) -> list[str]:
    """What the checker reports on: the upstream registry, or in Local mode each node's registry
    (named by the node)."""
    if p["mode"] == "Local":
        return list(nodes or ["master-0"])
    return [registry_host(p)]


def images_checked_message(p: dict, nodes: list[str] | None = None, items: int = 157) -> str:
    """checker/models.go: a `Mode:` line, then one line per registry."""
    lines = [f"Mode: {p.get('checkMode') or 'Default'}"]
    lines += [f"{name}: all {items} items are checked" for name in checker_registries(p, nodes)]
    return "\n".join(lines)


def images_error_message(p: dict, nodes: list[str] | None = None, items: int = 157, errors: int = 3,
                         error: str = "MANIFEST_UNKNOWN: manifest unknown") -> str:
    lines = [f"Mode: {p.get('checkMode') or 'Default'}"]
    for name in checker_registries(p, nodes):
        lines.append(f"{name}: {items} of {items} items processed, {errors} items with errors:")
        lines += [f"- deckhouse/{img}/{error}" for img in ("controller", "install", "dhctl")[:errors]]
    return "\n".join(lines)


def local_waiting_message(nodes: list[str] | None = None, items: int = 157) -> str:
    """Local mode before `d8 mirror push`: every node registry lacks every image."""
    lines = ["Mode: Default"]
    for name in nodes or ["master-0"]:
        lines.append(f"{name}: {items} of {items} items processed, {items} items with errors:")
        lines.append(f"- deckhouse/controller/MANIFEST_UNKNOWN: manifest unknown (push the platform images "
                     f"with `d8 mirror push` to {name})")
    return "\n".join(lines)


def processing_message(step: str, p: dict, nodes: int, masters: list[str]) -> str:
    return {
        c.RC_IMAGES: "Initializing",
        c.RC_PREFLIGHT: f"Checking containerd registry configuration on {nodes} nodes",
        c.RC_TRANSITION: f"Waiting for nodes to apply the transition containerd configuration: 0/{nodes} ready",
        c.RC_INCLUSTER_PROXY: "Waiting for Deployment d8-system/registry-incluster-proxy to become ready",
        c.RC_NODE_SERVICES: "Waiting for registry node services on master nodes: " + ", ".join(masters),
        c.RC_SWITCH: "Waiting for Deckhouse to use the new registry settings",
        c.RC_FINAL: f"Waiting for nodes to apply the final containerd configuration: 0/{nodes} ready",
        c.RC_CLEANUP_INCLUSTER_PROXY: "Removing the in-cluster proxy of the previous mode",
        c.RC_CLEANUP_NODE_SERVICES: "Removing the node services of the previous mode",
    }.get(step, "Processing")


def now_rfc3339() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(conds: list[dict], ctype: str, status: str, reason: str = "", message: str = "",
                  generation: int = 0) -> list[dict]:
    """orchestrator State.setCondition: an updated condition moves to the end of the list."""
    existing = next((x for x in conds if x.get("type") == ctype), None)
    rest = [x for x in conds if x.get("type") != ctype]
    new = {"type": ctype, "status": status, "reason": reason, "message": message,
           "lastTransitionTime": now_rfc3339(), "observedGeneration": generation}
    if existing is not None:
        same = (existing.get("status") == status and existing.get("reason", "") == reason
                and existing.get("message", "") == message
                and existing.get("observedGeneration", 0) == generation)
        if same:
            return conds
        if existing.get("status") == status:
            new["lastTransitionTime"] = existing.get("lastTransitionTime") or new["lastTransitionTime"]
    return rest + [new]


def condition(conds: list[dict], ctype: str) -> dict | None:
    return next((x for x in conds if x.get("type") == ctype), None)


def dump_conditions(conds: list[dict]) -> str:
    return yaml.safe_dump(conds, sort_keys=False, default_flow_style=False) if conds else "[]\n"


def load_conditions(text: str | None) -> list[dict]:
    try:
        data = yaml.safe_load(text or "") or []
        return [x for x in data if isinstance(x, dict)] if isinstance(data, list) else []
    except yaml.YAMLError:
        return []


def fake_state(mode: str, target: str, p: dict, conds: list[dict]) -> str:
    """data.state: the orchestrator's full state, with (fake) key material and passwords."""
    state = {
        "mode": mode,
        "target_mode": target,
        "pki": {
            "ca": {
                "cert": "-----BEGIN CERTIFICATE-----\nMIIBfakeCERTIFICATEregistryCA\n-----END CERTIFICATE-----\n",
                "key": ("-----BEGIN PRIVATE KEY-----\n" + c.FAKE_SECRET_MARKER +
                        "-MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"),
            },
            "token": {"key": "-----BEGIN EC PRIVATE KEY-----\n" + c.FAKE_SECRET_MARKER +
                      "-token\n-----END EC PRIVATE KEY-----\n"},
        },
        "secrets": {"http": c.FAKE_SECRET_MARKER + "-http-secret"},
        "users": {"ro": {"name": "ro", "password": c.FAKE_SECRET_MARKER + "-ro-password"},
                  "rw": {"name": "rw", "password": c.FAKE_SECRET_MARKER + "-rw-password"}},
        "bashible": {"unmanaged_params": {k: v for k, v in p.items()
                                          if k in ("imagesRepo", "scheme", "username", "password")}},
        "conditions": conds,
    }
    return yaml.safe_dump(state, sort_keys=False)
