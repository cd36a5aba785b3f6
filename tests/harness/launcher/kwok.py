"""kwok for the local cluster: stages and ClusterExec config, the Node, and the curl shim
that sends Deckhouse's debug port to the simulator."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# The kwok node every Deckhouse pod of the simulator runs on.
NODE_NAME = "master-0"
# Namespaces whose pods accept `exec` (run on this host, in <dir>/exec, by kwok).
EXEC_NAMESPACES = ("d8-system", "dkp-exec")
# Deckhouse's debug API port inside the real deckhouse container.
DECKHOUSE_DEBUG_ADDR = "127.0.0.1:9652"


def _kwok_config(d: Path, version: str) -> str:
    import yaml

    node_ready = {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": "harness-node-ready"},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Node"},
            "selector": {
                "matchExpressions": [
                    {
                        "key": '.status.conditions.[] | select( .type == "Ready" ) | .status',
                        "operator": "NotIn",
                        "values": ["True"],
                    }
                ]
            },
            "next": {
                "patches": [
                    {
                        "subresource": "status",
                        "root": "status",
                        "template": _NODE_STATUS_TEMPLATE.replace("@VERSION@", version),
                    }
                ]
            },
        },
    }
    pod_ready = {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": "harness-pod-ready"},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            "selector": {
                "matchExpressions": [
                    {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                    {"key": ".status.phase", "operator": "In", "values": ["Pending"]},
                ]
            },
            "next": {
                "patches": [
                    {"subresource": "status", "root": "status", "template": _POD_STATUS_TEMPLATE}
                ]
            },
        },
    }
    pod_delete = {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": "harness-pod-delete"},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            "selector": {"matchExpressions": [{"key": ".metadata.deletionTimestamp", "operator": "Exists"}]},
            "next": {"delete": True},
        },
    }
    cluster_exec = {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "ClusterExec",
        "metadata": {"name": "harness-exec"},
        "spec": {
            "selector": {"matchNamespaces": list(EXEC_NAMESPACES)},
            "execs": [{"local": {"workDir": str(d / "exec")}}],
        },
    }
    return yaml.safe_dump_all([node_ready, pod_ready, pod_delete, cluster_exec], sort_keys=False)


_NODE_STATUS_TEMPLATE = """\
{{ $now := Now }}
conditions:
{{ range NodeConditions }}
- lastHeartbeatTime: {{ $now | Quote }}
  lastTransitionTime: {{ $now | Quote }}
  message: {{ .message | Quote }}
  reason: {{ .reason | Quote }}
  status: {{ .status | Quote }}
  type: {{ .type | Quote }}
{{ end }}
addresses:
- address: {{ NodeIP | Quote }}
  type: InternalIP
- address: {{ .metadata.name | Quote }}
  type: Hostname
daemonEndpoints:
  kubeletEndpoint:
    Port: {{ NodePort }}
allocatable:
  cpu: "4"
  ephemeral-storage: 100Gi
  memory: 8Gi
  pods: "110"
capacity:
  cpu: "4"
  ephemeral-storage: 100Gi
  memory: 8Gi
  pods: "110"
nodeInfo:
  architecture: amd64
  bootID: ""
  containerRuntimeVersion: containerd://1.7.27
  kernelVersion: 6.1.0
  kubeProxyVersion: @VERSION@
  kubeletVersion: @VERSION@
  machineID: ""
  operatingSystem: linux
  osImage: kwok
  systemUUID: ""
phase: Running
"""

_POD_STATUS_TEMPLATE = """\
{{ $now := Now }}
conditions:
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: PodScheduled
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Initialized
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: ContainersReady
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Ready
{{ range .spec.readinessGates }}
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: {{ .conditionType | Quote }}
{{ end }}
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  imageID: ""
  name: {{ .name | Quote }}
  ready: true
  restartCount: 0
  started: true
  state:
    running:
      startedAt: {{ $now | Quote }}
{{ end }}
{{ with .spec.initContainers }}
initContainerStatuses:
{{ range . }}
- image: {{ .image | Quote }}
  imageID: ""
  name: {{ .name | Quote }}
  ready: true
  restartCount: 0
  state:
    terminated:
      exitCode: 0
      finishedAt: {{ $now | Quote }}
      reason: Completed
      startedAt: {{ $now | Quote }}
{{ end }}
{{ end }}
hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
hostIPs:
- ip: {{ NodeIPWith .spec.nodeName | Quote }}
{{ $podIP := PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) }}
podIP: {{ $podIP | Quote }}
podIPs:
- ip: {{ $podIP | Quote }}
phase: Running
startTime: {{ $now | Quote }}
"""


_SHIM_CURL = '''\
#!{python}
"""curl shim of the DKP test cluster (written by tests/harness/cluster.py).

Deckhouse's debug API listens on {debug} inside the real deckhouse container; here
kwok runs `exec` commands on the host, so that address is replaced by the simulator's
control address from simulator.json before the real curl runs.
"""
import json, os, sys, urllib.error, urllib.parse, urllib.request

SIM_JSON = {sim_json!r}
REAL_CURL = {real_curl!r}
DEBUG = {debug!r}


def target():
    try:
        with open(SIM_JSON) as f:
            url = json.load(f)["control_url"]
    except (OSError, ValueError, KeyError):
        return None
    return urllib.parse.urlsplit(url).netloc


def rewrite(args):
    t = target()
    if not t:
        return args
    return [a.replace(DEBUG, t).replace("localhost:9652", t) for a in args]


def fallback(args):
    """A tiny GET-only curl for machines without one: prints the body, curl exit codes."""
    fail = any(a in ("-f", "--fail") or (a.startswith("-") and not a.startswith("--") and "f" in a)
               for a in args)
    urls = [a for a in args if a.startswith(("http://", "https://"))]
    if not urls:
        print("curl: no URL specified", file=sys.stderr)
        return 2
    try:
        with urllib.request.urlopen(urls[0], timeout=30) as r:
            sys.stdout.buffer.write(r.read())
        return 0
    except urllib.error.HTTPError as e:
        if fail:
            print(f"curl: (22) The requested URL returned error: {{e.code}}", file=sys.stderr)
            return 22
        sys.stdout.buffer.write(e.read())
        return 0
    except (urllib.error.URLError, OSError) as e:
        print(f"curl: (7) Failed to connect: {{e}}", file=sys.stderr)
        return 7


if __name__ == "__main__":
    args = rewrite(sys.argv[1:])
    if REAL_CURL and os.access(REAL_CURL, os.X_OK):
        os.execv(REAL_CURL, [REAL_CURL] + args)
    sys.stdout.flush()
    sys.exit(fallback(args))
'''


def _write_shim(d: Path) -> Path:
    shim = d / "shim"
    shim.mkdir(parents=True, exist_ok=True)
    real = None
    for p in os.environ.get("PATH", "").split(os.pathsep):
        if p and Path(p).resolve() != shim.resolve():
            c = Path(p) / "curl"
            if c.is_file() and os.access(c, os.X_OK):
                real = str(c)
                break
    if real is None and os.access("/usr/bin/curl", os.X_OK):
        real = "/usr/bin/curl"
    (shim / "curl").write_text(
        _SHIM_CURL.format(
            python=sys.executable, debug=DECKHOUSE_DEBUG_ADDR,
            sim_json=str(d / "simulator.json"), real_curl=real or "",
        )
    )
    os.chmod(shim / "curl", 0o755)
    return shim


def _node_manifest() -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": NODE_NAME,
            "labels": {
                "kubernetes.io/hostname": NODE_NAME,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node-role.kubernetes.io/control-plane": "",
                "node-role.kubernetes.io/master": "",
                "node.deckhouse.io/group": "master",
                "node.deckhouse.io/type": "Static",
                "type": "kwok",
            },
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {},
    }
