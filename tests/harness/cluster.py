"""The local DKP test cluster: etcd, kube-apiserver, kube-controller-manager, kwok and
the Deckhouse simulator, all on 127.0.0.1 with free ports.

    python tests/harness/cluster.py up|down|status [--dir .local/cluster] [--bin-dir DIR]
        [--dkp-version 1.75|1.76] [--restart-seconds S]
    python tests/harness/cluster.py restart-apiserver --dir DIR --down SECONDS
    python tests/harness/cluster.py drop-connections --dir DIR [--refuse SECONDS]

`--dkp-version` (default env DKP_VERSION, else 1.76) picks the CRDs, admission and simulator
behaviour of that DKP release (tests/harness/versions.py). `--restart-seconds` (default env
DKP_SIM_RESTART_SECONDS, else 3) is how long Deckhouse stays down when it restarts itself.
`restart-apiserver` stops kube-apiserver by its recorded PID and starts it again with the same
flags after SECONDS; pids.json is updated with the new PID. `drop-connections` resets every
connection that goes through the apiserver proxy (`<dir>/kubeconfig-proxy`, tcpproxy.py).

Python API (for tests): ``up(dir) -> ClusterInfo``, ``down(dir)``, ``running(dir)``,
``info(dir)``.

Layout of the cluster folder (default ``<repo>/.local/cluster``):

    pids.json       processes started (written as each one starts, read by ``down``)
    kubeconfig      admin (O=system:masters) client certificate, embedded data
    kubeconfig-proxy  the same admin, through the TCP proxy that drop-connections cuts
    *.kubeconfig    kube-controller-manager's and kwok's own identities (for the audit log)
    audit.log       API audit log: one JSON line per write request (Metadata level)
    logs/<name>.log output of each process
    pki/            throwaway CA, serving and client certificates, service account keys
    kwok.yaml       kwok stages and the ClusterExec configuration
    shim/curl       first on kwok's PATH: sends 127.0.0.1:9652 to the simulator
    exec/           working directory of commands run by ``kubectl exec`` in kwok pods
    simulator.json  written by the simulator when it is ready

Parts: ``launcher/pki.py`` (certificates, kubeconfigs), ``launcher/processes.py`` (start,
stop, pids.json), ``launcher/kwok.py`` (kwok stages, Node, curl shim), ``tcpproxy.py`` (the
apiserver proxy), ``versions.py`` (DKP 1.75/1.76 differences). This file: binaries, setup
requests, ``up``/``down``/``restart_apiserver`` and the CLI.

Binaries: ``--bin-dir`` if given; otherwise the folder printed by
``tests/k8s/build_bins.sh`` (fast when its cache is warm), except that kube-apiserver
and etcd come from ``$KUBEBUILDER_ASSETS`` when that folder holds both.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as tests/harness/cluster.py: make `harness` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import versions as dkp_versions  # noqa: E402
from harness.launcher import ClusterError  # noqa: E402
from harness.launcher.kwok import (  # noqa: E402,F401 - re-exported names  pylint: disable=unused-import
    DECKHOUSE_DEBUG_ADDR, EXEC_NAMESPACES, NODE_NAME,
    _kwok_config, _node_manifest, _write_shim)
from harness.launcher.pki import SERVICE_IP, make_pki, write_kubeconfig  # noqa: E402,F401  pylint: disable=unused-import
from harness.launcher.processes import (  # noqa: E402,F401 - _alive, read_state: used by tests
    _CHILDREN, STOP_TIMEOUT, _alive, _check_alive, _reap, _signal_and_wait, _start, _stop_processes, _tail,
    _write_state)
from harness.launcher.processes import read_state as _read_state  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
HARNESS = REPO / "tests" / "harness"
DEFAULT_DIR = REPO / ".local" / "cluster"
CRD_DIR = HARNESS / "crds"
ADMISSION_DIR = HARNESS / "admission"
AUDIT_POLICY = HARNESS / "audit-policy.yaml"
BUILD_SCRIPT = REPO / "tests" / "k8s" / "build_bins.sh"

FACTS_CONFIGMAP = ("d8-system", "d8-cluster-facts")
SERVICE_CIDR = "10.222.0.0/16"  # SERVICE_IP (launcher.pki) is its first address

READY_TIMEOUT = 60.0
SIMULATOR_TIMEOUT = 30.0


@dataclass
class ClusterInfo:
    dir: Path
    kubeconfig: Path
    server: str
    audit_log: Path
    bin_dir: Path | None = None
    startup_seconds: float | None = None
    simulator: dict | None = None
    ports: dict = field(default_factory=dict)
    dkp_version: str = dkp_versions.DEFAULT

    @property
    def audit_log_path(self) -> Path:
        return self.audit_log


# --------------------------------------------------------------------------- utilities


def _dir(d: str | os.PathLike | None) -> Path:
    return Path(d).resolve() if d else DEFAULT_DIR


def _log(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _free_ports(n: int) -> list[int]:
    ports: list[int] = []
    socks = []
    try:
        while len(ports) < n:  # hold them open together so they differ
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


# --------------------------------------------------------------------------- binaries


def find_binaries(bin_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """Paths of etcd, kube-apiserver, kube-controller-manager, kwok and kubectl."""
    names = ("etcd", "kube-apiserver", "kube-controller-manager", "kwok")
    if bin_dir:
        base = Path(bin_dir).resolve()
    else:
        base = Path(build_bins())
    bins = {n: base / n for n in names}
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and not bin_dir:
        a = Path(assets)
        if (a / "kube-apiserver").is_file() and (a / "etcd").is_file():
            bins["kube-apiserver"] = a / "kube-apiserver"
            bins["etcd"] = a / "etcd"
    missing = [str(p) for p in bins.values() if not os.access(p, os.X_OK)]
    if missing:
        raise ClusterError("missing binaries: " + ", ".join(missing))
    kubectl = shutil.which("kubectl") or str(base / "kubectl")
    bins["kubectl"] = Path(kubectl)
    bins["_dir"] = base
    return bins


def build_bins() -> str:
    """Run tests/k8s/build_bins.sh (exits at once with a warm cache) and return its folder."""
    proc = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, cwd=REPO, check=False)
    if proc.returncode != 0:
        raise ClusterError(f"{BUILD_SCRIPT} failed with exit code {proc.returncode}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if not lines:
        raise ClusterError(f"{BUILD_SCRIPT} printed no folder")
    return lines[-1].strip()


def k8s_version() -> str:
    gomod = REPO / "tests" / "k8s" / "tools" / "go.mod"
    try:
        for line in gomod.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "k8s.io/kubernetes":
                return parts[1]
            if len(parts) >= 3 and parts[0] == "require" and parts[1] == "k8s.io/kubernetes":
                return parts[2]
    except OSError:
        pass
    return "v1.36.0"


# --------------------------------------------------------------------------- REST


class Api:
    """A minimal HTTPS client for the harness's own setup requests (stdlib only)."""

    def __init__(self, host: str, port: int, pki: Path):
        self.host, self.port = host, port
        self.ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        self.ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))

    def request(self, method: str, path: str, body=None, content_type: str = "application/json",
                timeout: float = 10.0) -> tuple[int, dict | str]:
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=timeout)
        try:
            data = None
            headers = {"Accept": "application/json"}
            if body is not None:
                data = body if isinstance(body, (bytes, str)) else json.dumps(body)
                headers["Content-Type"] = content_type
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read().decode(errors="replace")
            try:
                return resp.status, json.loads(raw)
            except ValueError:
                return resp.status, raw
        finally:
            conn.close()


# kind -> (api prefix, plural, namespaced)
_RESOURCES = {
    "CustomResourceDefinition": ("/apis/apiextensions.k8s.io/v1", "customresourcedefinitions", False),
    "ValidatingAdmissionPolicy": ("/apis/admissionregistration.k8s.io/v1", "validatingadmissionpolicies", False),
    "ValidatingAdmissionPolicyBinding": (
        "/apis/admissionregistration.k8s.io/v1", "validatingadmissionpolicybindings", False),
    "Namespace": ("/api/v1", "namespaces", False),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "Node": ("/api/v1", "nodes", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
}


def _object_path(obj: dict) -> str:
    kind = obj["kind"]
    if kind not in _RESOURCES:
        raise ClusterError(f"cluster.py cannot apply kind {kind}; add it to _RESOURCES")
    prefix, plural, namespaced = _RESOURCES[kind]
    md = obj["metadata"]
    ns = f"/namespaces/{md['namespace']}" if namespaced else ""
    return f"{prefix}{ns}/{plural}/{urllib.parse.quote(md['name'])}"


def apply(api: Api, obj: dict) -> dict:
    """Server-side apply (field manager dkp-harness, forced)."""
    path = _object_path(obj) + "?fieldManager=dkp-harness&force=true"
    status, body = api.request("PATCH", path, obj, content_type="application/apply-patch+yaml")
    if status >= 300:
        msg = body.get("message") if isinstance(body, dict) else body
        raise ClusterError(f"applying {obj['kind']} {obj['metadata']['name']}: HTTP {status}: {msg}")
    return body


def load_manifests(folder: Path) -> list[dict]:
    import yaml

    docs: list[dict] = []
    for f in sorted(folder.glob("*.yaml")):
        for d in yaml.safe_load_all(f.read_text()):
            # one document per file (ansible-test's yamllint); a `kind: List` carries several objects
            docs.extend(d.get("items") or [] if d and d.get("kind") == "List" else [d] if d else [])
    return docs


# --------------------------------------------------------------------------- state


def read_state(d: str | os.PathLike | None = None) -> dict | None:
    """pids.json of the cluster in `d` (default .local/cluster), or None."""
    return _read_state(_dir(d))


def running(d: str | os.PathLike | None = None) -> bool:
    """True when every process recorded for the cluster in `d` is still alive."""
    state = read_state(d)
    if not state or not state.get("complete"):
        return False
    procs = state.get("processes", [])
    return bool(procs) and all(_alive(p) for p in procs)


def info(d: str | os.PathLike | None = None) -> ClusterInfo:
    dd = _dir(d)
    state = read_state(dd) or {}
    sim = None
    try:
        sim = json.loads((dd / "simulator.json").read_text())
    except (OSError, ValueError):
        pass
    return ClusterInfo(
        dir=dd,
        kubeconfig=dd / "kubeconfig",
        server=state.get("server", ""),
        audit_log=dd / "audit.log",
        bin_dir=Path(state["bin_dir"]) if state.get("bin_dir") else None,
        startup_seconds=state.get("startup_seconds"),
        simulator=sim,
        ports=state.get("ports", {}),
        dkp_version=state.get("dkp_version", dkp_versions.DEFAULT),
    )


# --------------------------------------------------------------------------- up / down


def _simulator_available() -> bool:
    pkg = HARNESS / "simulator"
    return (pkg / "__main__.py").is_file()


def up(d: str | os.PathLike | None = None, bin_dir: str | os.PathLike | None = None,
       quiet: bool = False, simulator: bool = True, dkp_version: str | None = None,
       restart_seconds: float | None = None) -> ClusterInfo:
    """Start the cluster in `d` (or return the one running there) and return its info.

    `dkp_version`: "1.75" or "1.76" (default env DKP_VERSION, else 1.76).
    `restart_seconds`: how long a Deckhouse self-restart lasts (default env
    DKP_SIM_RESTART_SECONDS, else the simulator's 3 s).
    """
    dd = _dir(d)
    version = dkp_versions.normalise(dkp_version)
    if running(dd):
        have = (read_state(dd) or {}).get("dkp_version", dkp_versions.DEFAULT)
        if have != version:
            raise ClusterError(f"the cluster in {dd} runs DKP {have}, not {version}; run `down` first")
        _log(f"cluster already running (DKP {have}, kubeconfig: {dd / 'kubeconfig'})", quiet)
        return info(dd)
    if read_state(dd) is not None or dd.exists():
        # A stale or half-started cluster: stop whatever it recorded, then start afresh.
        down(dd, quiet=True)

    bins = find_binaries(bin_dir)
    t0 = time.monotonic()
    dd.mkdir(parents=True, exist_ok=True)
    (dd / "logs").mkdir(exist_ok=True)
    (dd / "exec").mkdir(exist_ok=True)
    pki = dd / "pki"
    etcd_client, etcd_peer, apiserver_port, kwok_port, proxy_port, proxy_control = _free_ports(6)
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        etcd_data = Path(tempfile.mkdtemp(prefix="dkp-harness-etcd-", dir=shm))
    else:
        etcd_data = dd / "etcd"
        etcd_data.mkdir(exist_ok=True)
    server = f"https://127.0.0.1:{apiserver_port}"
    state = {
        "dir": str(dd),
        "server": server,
        "bin_dir": str(bins["_dir"]),
        "etcd_data_dir": str(etcd_data),
        "ports": {"etcd": etcd_client, "etcd_peer": etcd_peer, "apiserver": apiserver_port, "kwok": kwok_port,
                  "apiserver_proxy": proxy_port, "apiserver_proxy_control": proxy_control},
        "dkp_version": version,
        "processes": [],
        "complete": False,
    }
    _write_state(dd, state)
    procs: dict[str, subprocess.Popen] = {}
    try:
        make_pki(pki)
        write_kubeconfig(dd / "kubeconfig", server, pki, "admin", "kubernetes-admin")
        write_kubeconfig(dd / "controller-manager.kubeconfig", server, pki, "controller-manager",
                         "system:kube-controller-manager")
        write_kubeconfig(dd / "kwok.kubeconfig", server, pki, "kwok", "system:kwok-controller")

        procs["etcd"] = _start(dd, state, "etcd", [
            bins["etcd"],
            "--name=harness",
            f"--data-dir={etcd_data}",
            f"--listen-client-urls=http://127.0.0.1:{etcd_client}",
            f"--advertise-client-urls=http://127.0.0.1:{etcd_client}",
            f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-cluster=harness=http://127.0.0.1:{etcd_peer}",
            "--initial-cluster-state=new",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ])
        procs["kube-apiserver"] = _start(dd, state, "kube-apiserver", [
            bins["kube-apiserver"],
            f"--etcd-servers=http://127.0.0.1:{etcd_client}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={apiserver_port}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--authorization-mode=RBAC",
            "--anonymous-auth=false",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            "--enable-priority-and-fairness=false",
            "--endpoint-reconciler-type=none",
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            f"--audit-log-path={dd / 'audit.log'}",
            f"--audit-policy-file={AUDIT_POLICY}",
            "--audit-log-format=json",
            "--audit-log-mode=blocking",
            "--audit-log-maxsize=0",  # never rotate: byte offsets stay valid markers
            "--profiling=false",
            "--v=1",
        ])
        api = Api("127.0.0.1", apiserver_port, pki)
        _wait_ready(dd, api, procs, quiet)
        t_ready = time.monotonic() - t0
        # a TCP proxy in front of the apiserver: kubeconfig-proxy goes through it, and
        # drop_connections() resets every connection it carries
        procs["apiserver-proxy"] = _start(dd, state, "apiserver-proxy", [
            sys.executable, HARNESS / "tcpproxy.py", f"--listen={proxy_port}", f"--target={apiserver_port}",
            f"--control={proxy_control}"])
        write_kubeconfig(dd / "kubeconfig-proxy", f"https://127.0.0.1:{proxy_port}", pki, "admin",
                         "kubernetes-admin")

        procs["kube-controller-manager"] = _start(dd, state, "kube-controller-manager", [
            bins["kube-controller-manager"],
            f"--kubeconfig={dd / 'controller-manager.kubeconfig'}",
            f"--authentication-kubeconfig={dd / 'controller-manager.kubeconfig'}",
            f"--authorization-kubeconfig={dd / 'controller-manager.kubeconfig'}",
            "--controllers=namespace-controller,garbage-collector-controller,serviceaccount-controller,"
            "serviceaccount-token-controller,root-ca-certificate-publisher-controller,"
            "validatingadmissionpolicy-status-controller",
            "--leader-elect=false",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            "--v=1",
        ])
        (dd / "kwok.yaml").write_text(_kwok_config(dd, k8s_version()))
        shim = _write_shim(dd)
        kwok_env = dict(os.environ)
        kwok_env["PATH"] = f"{shim}{os.pathsep}{kwok_env.get('PATH', '/usr/bin:/bin')}"
        procs["kwok"] = _start(dd, state, "kwok", [
            bins["kwok"],
            f"--kubeconfig={dd / 'kwok.kubeconfig'}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--node-ip=127.0.0.1",
            "--node-name=localhost",
            f"--node-port={kwok_port}",
            f"--server-address=127.0.0.1:{kwok_port}",
            f"--config={dd / 'kwok.yaml'}",
        ], env=kwok_env, cwd=dd / "exec")

        # Cluster content: CRDs, Deckhouse identity and admission policies, the kwok node.
        crds = dkp_versions.crds_for(version, load_manifests(CRD_DIR))
        for obj in crds:
            apply(api, obj)
        for obj in load_manifests(ADMISSION_DIR):
            apply(api, obj)
        apply(api, _node_manifest())
        _wait_established(api, [c["metadata"]["name"] for c in crds], procs, dd)

        # The simulator starts while the admission policies become effective (about 2 s).
        sim_info = None
        if simulator and _simulator_available():
            env = dict(os.environ)
            env["PYTHONPATH"] = str(REPO / "tests") + (
                os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
            env["PYTHONUNBUFFERED"] = "1"
            sim_cmd = [sys.executable, "-m", "harness.simulator", "--dir", dd, "--kubeconfig", dd / "kubeconfig",
                       "--dkp-version", version]
            if restart_seconds is not None:
                sim_cmd += ["--restart-seconds", str(float(restart_seconds))]
            procs["simulator"] = _start(dd, state, "simulator", sim_cmd, env=env, cwd=REPO)
        elif simulator:
            _log("warning: tests/harness/simulator is not there yet; the cluster runs without it", quiet)
        _wait_admission(api, procs, dd)
        if "simulator" in procs:
            sim_info = _wait_simulator(dd, procs)
        _check_alive(dd, procs)

        state["complete"] = True
        state["startup_seconds"] = round(time.monotonic() - t0, 2)
        state["apiserver_ready_seconds"] = round(t_ready, 2)
        _write_state(dd, state)
    except BaseException:
        _log(f"cluster start failed; stopping what was started (logs in {dd / 'logs'})", quiet)
        _stop_processes(state)
        shutil.rmtree(etcd_data, ignore_errors=True)
        state["complete"] = False  # processes stay recorded: `down` re-checks them by PID and start time
        _write_state(dd, state)
        raise
    result = info(dd)
    result.simulator = sim_info
    _log(f"cluster (DKP {version}) up in {state['startup_seconds']:.1f} s "
         f"(apiserver ready after {t_ready:.1f} s)", quiet)
    _log(f"kubeconfig: {dd / 'kubeconfig'}", quiet)
    return result


def _wait_ready(d: Path, api: Api, procs: dict, quiet: bool) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    last = ""
    while time.monotonic() < deadline:
        _check_alive(d, procs)
        try:
            status, body = api.request("GET", "/readyz", timeout=2)
            if status == 200:
                return
            last = f"HTTP {status}"
        except (OSError, http.client.HTTPException) as e:
            last = str(e)
        time.sleep(0.1)
    raise ClusterError(f"kube-apiserver not ready after {READY_TIMEOUT:.0f} s ({last}); see {d / 'logs'}")


def _wait_established(api: Api, names: list[str], procs: dict, d: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending and time.monotonic() < deadline:
        for n in sorted(pending):
            status, body = api.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{n}")
            conds = (body.get("status", {}) or {}).get("conditions", []) if isinstance(body, dict) else []
            if any(c.get("type") == "Established" and c.get("status") == "True" for c in conds):
                pending.discard(n)
        if pending:
            _check_alive(d, procs)
            time.sleep(0.1)
    if pending:
        raise ClusterError(f"CRDs not Established after {timeout:.0f} s: {', '.join(sorted(pending))}")
    # Served: every served version lists (the watch cache of a new CRD answers
    # "429 storage is (re)initializing" for a moment after Established).
    paths = []
    for n in names:
        status, crd = api.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{n}")
        for v in crd["spec"]["versions"]:
            if v.get("served"):
                paths.append(f"/apis/{crd['spec']['group']}/{v['name']}/{crd['spec']['names']['plural']}")
    deadline = time.monotonic() + timeout
    last = ""
    while paths and time.monotonic() < deadline:
        for path in list(paths):
            status, body = api.request("GET", path)
            if status == 200:
                paths.remove(path)
            else:
                last = f"{path}: HTTP {status}"
        if paths:
            _check_alive(d, procs)
            time.sleep(0.05)
    if paths:
        raise ClusterError(f"custom resources not listable after {timeout:.0f} s ({last})")


def _wait_admission(api: Api, procs: dict, d: Path, timeout: float = 30) -> None:
    """Wait until the admission policies are enforced (probe with a dry-run create)."""
    probe = {
        "apiVersion": "deckhouse.io/v1alpha2",
        "kind": "ModuleUpdatePolicy",
        "metadata": {"name": "dkp-harness-admission-probe"},
        "spec": {"update": {"mode": "Auto", "windows": [{"from": "10:00", "to": "09:00"}]}},
    }
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        status, body = api.request("POST", "/apis/deckhouse.io/v1alpha2/moduleupdatepolicies?dryRun=All", probe)
        msg = body.get("message", "") if isinstance(body, dict) else str(body)
        if status >= 400 and "mup-update-windows.deckhouse.io" in msg:
            return
        last = f"HTTP {status}: {msg}"
        _check_alive(d, procs)
        time.sleep(0.1)
    raise ClusterError(f"admission policies not enforced after {timeout:.0f} s ({last})")


def _wait_simulator(d: Path, procs: dict) -> dict:
    path = d / "simulator.json"
    deadline = time.monotonic() + SIMULATOR_TIMEOUT
    while time.monotonic() < deadline:
        _check_alive(d, procs)
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            time.sleep(0.05)
    raise ClusterError(
        f"simulator did not write {path} within {SIMULATOR_TIMEOUT:.0f} s; last lines of its log:\n"
        + _tail(d / "logs" / "simulator.log")
    )


def down(d: str | os.PathLike | None = None, keep: bool = False, quiet: bool = False) -> None:
    """Stop every process recorded in `d`/pids.json and remove `d` (unless `keep`)."""
    dd = _dir(d)
    state = read_state(dd)
    if state:
        _stop_processes(state)
        etcd_data = state.get("etcd_data_dir")
        if etcd_data and (Path(etcd_data).name.startswith("dkp-harness-etcd-")
                          or Path(etcd_data) == dd / "etcd"):
            shutil.rmtree(etcd_data, ignore_errors=True)
    if keep:
        if state:
            state["complete"] = False
            _write_state(dd, state)
        _log(f"cluster stopped; files kept in {dd}", quiet)
        return
    if dd.exists():
        if dd == REPO or dd == Path("/") or dd == Path.home():
            raise ClusterError(f"refusing to remove {dd}")
        shutil.rmtree(dd, ignore_errors=True)
    _log("cluster stopped" if state else f"no cluster recorded in {dd}", quiet)


def restart_apiserver(d: str | os.PathLike | None = None, down_seconds: float = 5.0, wait: bool = True,
                      quiet: bool = False) -> dict:
    """Stop kube-apiserver by its recorded PID; after `down_seconds` (counted from the stop
    signal) start it again with the same flags. pids.json then names the new process.

    Returns {"old_pid", "new_pid", "down_seconds"} (seconds without an apiserver, measured).
    """
    dd = _dir(d)
    state = read_state(dd)
    if not state or not state.get("complete"):
        raise ClusterError(f"no running cluster recorded in {dd}")
    entry = next((e for e in state["processes"] if e["name"] == "kube-apiserver"), None)
    if entry is None or not entry.get("argv"):
        raise ClusterError(f"{dd / 'pids.json'} records no kube-apiserver command line (cluster started by an "
                           "older cluster.py: run down and up)")
    if not _alive(entry):
        raise ClusterError(f"kube-apiserver (pid {entry['pid']}) is not running")
    t0 = time.monotonic()
    _signal_and_wait({"processes": [entry]}, STOP_TIMEOUT)
    _reap()
    left = float(down_seconds) - (time.monotonic() - t0)
    if left > 0:
        time.sleep(left)
    proc = _start(dd, state, "kube-apiserver", entry["argv"])
    t_up = time.monotonic()
    _CHILDREN.pop(proc.pid, None)  # it outlives this process (own session); `down` stops it by PID
    if wait:
        api = Api("127.0.0.1", state["ports"]["apiserver"], dd / "pki")
        _wait_ready(dd, api, {"kube-apiserver": proc}, quiet=True)
    result = {"old_pid": entry["pid"], "new_pid": proc.pid, "down_seconds": round(t_up - t0, 2)}
    _log(f"kube-apiserver restarted: pid {entry['pid']} -> {proc.pid}, down {result['down_seconds']:.1f} s", quiet)
    return result


def drop_connections(d: str | os.PathLike | None = None, refuse_seconds: float = 0.0) -> dict:
    """Reset every connection through the apiserver proxy (clients of `<dir>/kubeconfig-proxy`);
    with `refuse_seconds`, new connections are reset too for that long."""
    dd = _dir(d)
    port = ((read_state(dd) or {}).get("ports") or {}).get("apiserver_proxy_control")
    if not port:
        raise ClusterError(f"the cluster in {dd} has no apiserver proxy (started by an older cluster.py)")
    path = f"/refuse?seconds={float(refuse_seconds)}" if refuse_seconds else "/drop"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path)
        return json.loads(conn.getresponse().read() or b"{}")
    finally:
        conn.close()


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("command", choices=["up", "down", "status", "restart-apiserver", "drop-connections"])
    ap.add_argument("--dir", default=None, help=f"cluster folder (default {DEFAULT_DIR})")
    ap.add_argument("--bin-dir", default=None, help="folder with etcd, kube-apiserver, "
                    "kube-controller-manager and kwok (default: tests/k8s/build_bins.sh)")
    ap.add_argument("--keep", action="store_true", help="down: keep the folder (logs, audit log)")
    ap.add_argument("--no-simulator", action="store_true", help="up: do not start the simulator")
    ap.add_argument("--dkp-version", default=None, choices=list(dkp_versions.SUPPORTED),
                    help=f"up: DKP release to model (default env {dkp_versions.ENV}, else {dkp_versions.DEFAULT})")
    ap.add_argument("--restart-seconds", type=float, default=None,
                    help="up: seconds a Deckhouse self-restart lasts (default env DKP_SIM_RESTART_SECONDS, else 3)")
    ap.add_argument("--down", type=float, default=5.0,
                    help="restart-apiserver: seconds without an apiserver (default 5)")
    ap.add_argument("--no-wait", action="store_true", help="restart-apiserver: do not wait for /readyz")
    ap.add_argument("--refuse", type=float, default=0.0,
                    help="drop-connections: also reset new connections for this many seconds")
    args = ap.parse_args(argv)
    d = _dir(args.dir)
    try:
        if args.command == "up":
            if running(d):
                have = (read_state(d) or {}).get("dkp_version", dkp_versions.DEFAULT)
                want = dkp_versions.normalise(args.dkp_version)
                if have != want:
                    raise ClusterError(f"the cluster in {d} runs DKP {have}, not {want}; run `down` first")
                print(f"cluster already running (DKP {have}, kubeconfig: {d / 'kubeconfig'})")
                return 0
            ci = up(d, bin_dir=args.bin_dir, quiet=True, simulator=not args.no_simulator,
                    dkp_version=args.dkp_version, restart_seconds=args.restart_seconds)
            print(f"cluster (DKP {ci.dkp_version}) up in {ci.startup_seconds:.1f} s")
            if ci.simulator is None and not args.no_simulator:
                print("warning: the simulator was not started (tests/harness/simulator/__main__.py missing)")
            print(f"kubeconfig: {ci.kubeconfig}")
            return 0
        if args.command == "down":
            down(d, keep=args.keep)
            return 0
        if args.command == "drop-connections":
            r = drop_connections(d, args.refuse)
            print(f"dropped {r.get('dropped', 0)} connections through the apiserver proxy")
            return 0
        if args.command == "restart-apiserver":
            r = restart_apiserver(d, args.down, wait=not args.no_wait, quiet=True)
            print(f"kube-apiserver restarted: pid {r['old_pid']} -> {r['new_pid']}, "
                  f"down {r['down_seconds']:.1f} s")
            return 0
        state = read_state(d)
        if running(d):
            print(f"running (DKP {state.get('dkp_version', dkp_versions.DEFAULT)}, kubeconfig: {d / 'kubeconfig'}, "
                  f"server: {state.get('server')})")
            for p in state.get("processes", []):
                print(f"  {p['name']:<24} pid {p['pid']}")
            return 0
        if state and any(_alive(p) for p in state.get("processes", [])):
            alive = [p["name"] for p in state["processes"] if _alive(p)]
            print(f"not running (partly: {', '.join(alive)} still alive; run down)")
            return 1
        print(f"not running (kubeconfig would be {d / 'kubeconfig'})")
        return 1
    except ClusterError as e:
        print(f"error: {e}", file=sys.stderr)
        if args.command == "up":
            print(f"logs: {d / 'logs'} (run `down` to remove them)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
