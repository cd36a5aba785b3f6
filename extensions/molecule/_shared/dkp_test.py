"""Test helper for the Molecule scenarios of the deckhouse.platform roles (not shipped, not a module).

    dkp_test.py audit-mark   --dir CLUSTER_DIR                 print the audit log's size (a marker)
    dkp_test.py audit-writes --dir CLUSTER_DIR --since MARKER  print, as JSON, the writes the collection made
                                                                since the marker (user agent deckhouse.platform),
                                                                dry runs, pods/exec and the run lock Lease
                                                                excluded
    dkp_test.py sim --dir CLUSTER_DIR VERB [key=value ...]      call a simulator control verb, print its result
    dkp_test.py lock-clear --dir CLUSTER_DIR                    delete the run lock Lease (a killed earlier run's
                                                                lock would otherwise block the scenario until it expires)
    dkp_test.py module-error --dir CLUSTER_DIR NAME MESSAGE     put Module NAME in phase Error with MESSAGE on its
                                                                IsReady condition (what a failed image pull shows)

The audit log is flushed asynchronously: audit-writes first sends a dry-run request with a unique name and
waits until that request is in the log, so every request made before it is in the log too.
"""
from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import argparse
import json
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
SYNC_PREFIX = "dkp-molecule-audit-sync-"
USER_AGENT = "deckhouse.platform"


def audit_path(cluster_dir: Path) -> Path:
    path = cluster_dir / "audit.log"
    if not path.exists():
        sys.exit(f"{path} does not exist: DKP_CLUSTER_DIR must name a harness cluster folder (tests/harness/cluster.py)")
    return path


def events(path: Path, since: int):
    with open(path, "rb") as f:
        f.seek(since)
        data = f.read()
    for line in data.split(b"\n"):
        if line.strip():
            try:
                yield json.loads(line)
            except ValueError:
                continue  # a line still being written


def sync(cluster_dir: Path, path: Path, timeout: float = 15.0) -> None:
    from kubernetes import client, config

    name = SYNC_PREFIX + uuid.uuid4().hex[:12]
    start = path.stat().st_size
    api = config.new_client_from_config(config_file=str(cluster_dir / "kubeconfig"))
    try:
        client.CoreV1Api(api).create_namespaced_config_map("default", {"metadata": {"name": name}}, dry_run="All")
    finally:
        api.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any((e.get("objectRef") or {}).get("name") == name for e in events(path, start)):
            return
        time.sleep(0.05)
    sys.exit(f"the audit log did not record the sync request within {timeout} s")


def writes(cluster_dir: Path, since: int) -> list[dict]:
    path = audit_path(cluster_dir)
    sync(cluster_dir, path)
    out = []
    for e in events(path, since):
        ref = e.get("objectRef") or {}
        if e.get("verb") not in WRITE_VERBS or ref.get("name", "").startswith(SYNC_PREFIX):
            continue
        # the collection's requests (its client's user agent); pods/exec is how a read-only module runs curl
        if not e.get("userAgent", "").startswith(USER_AGENT) or ref.get("subresource") == "exec":
            continue
        if "All" in parse_qs(urlsplit(e.get("requestURI", "")).query).get("dryRun", []):
            continue
        if e.get("stage") not in (None, "ResponseComplete"):
            continue
        # the run lock (deckhouse.platform.run_lock, a Lease every runbook role takes outside check mode) is the
        # runbook's own bookkeeping, not a change of the cluster it reports on
        if ref.get("resource") == "leases" and ref.get("apiGroup") == "coordination.k8s.io":
            continue
        out.append({"verb": e["verb"], "resource": ref.get("resource"), "subresource": ref.get("subresource"),
                    "namespace": ref.get("namespace"), "name": ref.get("name"),
                    "code": (e.get("responseStatus") or {}).get("code"), "uri": e.get("requestURI")})
    return out


def sim(cluster_dir: Path, verb: str, pairs: list[str]) -> dict:
    info = json.loads((cluster_dir / "simulator.json").read_text())
    args = {}
    for pair in pairs:
        key, _sep, value = pair.partition("=")
        try:
            args[key] = json.loads(value)
        except ValueError:
            args[key] = value
    req = urllib.request.Request(f"{info['control_url']}/control/{verb}", data=json.dumps(args).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        data = json.loads(r.read() or b"{}")
    if not data.get("ok"):
        sys.exit(f"simulator verb {verb} failed: {data.get('error')}")
    return data.get("result") or {}


def module_error(cluster_dir: Path, name: str, message: str) -> dict:
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(cluster_dir / "kubeconfig"))
    try:
        co = client.CustomObjectsApi(api)
        mod = co.get_cluster_custom_object("deckhouse.io", "v1alpha1", "modules", name)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        conds = [c for c in (mod.get("status") or {}).get("conditions") or [] if c.get("type") != "IsReady"]
        conds.append({"type": "IsReady", "status": "False", "reason": "ModuleError", "message": message,
                      "lastProbeTime": now, "lastTransitionTime": now})
        out = co.patch_cluster_custom_object_status("deckhouse.io", "v1alpha1", "modules", name,
                                                    {"status": {"phase": "Error", "conditions": conds}})
    finally:
        api.close()
    return {"name": name, "phase": out["status"]["phase"]}


def lock_clear(cluster_dir: Path) -> dict:
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    api = config.new_client_from_config(config_file=str(cluster_dir / "kubeconfig"))
    try:
        client.CoordinationV1Api(api).delete_namespaced_lease("deckhouse-platform-runbook", "d8-system")
        return {"deleted": True}
    except ApiException as e:
        if e.status != 404:
            raise
        return {"deleted": False}
    finally:
        api.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["audit-mark", "audit-writes", "sim", "module-error", "lock-clear"])
    ap.add_argument("--dir", required=True, type=Path)
    ap.add_argument("--since", type=int, default=0)
    ap.add_argument("rest", nargs="*")
    args = ap.parse_intermixed_args(argv)
    if args.command == "audit-mark":
        print(audit_path(args.dir).stat().st_size)
    elif args.command == "audit-writes":
        print(json.dumps(writes(args.dir, args.since)))
    elif args.command == "lock-clear":
        print(json.dumps(lock_clear(args.dir)))
    elif args.command == "module-error":
        if len(args.rest) != 2:
            ap.error("module-error needs NAME and MESSAGE")
        print(json.dumps(module_error(args.dir, *args.rest)))
    else:
        if not args.rest:
            ap.error("sim needs a verb")
        print(json.dumps(sim(args.dir, args.rest[0], args.rest[1:])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
