"""The DKP simulator: one process, informer threads feeding one level-triggered reconciler.

Everything the reconciler writes goes through the API server impersonating Deckhouse's
service account; status goes to the /status subresource. Progress that takes time (module
phases, release downloads, registry switch steps, queue draining) is gated by per-step
timers of ``step_delay`` seconds, so the whole state can be re-derived from the cluster
after a simulator restart.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import json
import logging
import os
import random
import threading
import time

from . import consts as c
from . import registry as regmod
from . import releases as rel
from . import validation
from .catalogue import Catalogue
from harness import versions
from .kube import (CLUSTER_ROLE_BINDING, CONFIG_MAP, MODULE, MODULE_CONFIG, MODULE_PULL_OVERRIDE,
                   MODULE_RELEASE, MODULE_SOURCE, MODULE_UPDATE_POLICY, NAMESPACE, NODE, POD, SECRET,
                   SERVICE, SERVICE_ACCOUNT, VALIDATING_WEBHOOK, ApiError, Informer, Kube)
from .taskqueue import MAIN, QueueSet
from .semver import Version
from .server import DebugServer, WebhookServer

log = logging.getLogger("simulator")

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
    import re
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


class Options:
    def __init__(self, directory: str, kubeconfig: str, step_delay: float = 0.2, profile: str = "test",
                 cluster_type: str = "Static", restart_duration: float | None = None,
                 registry_enabled: bool = False, control_port: int = 0, webhook_port: int = 0,
                 dkp_version: str | None = None):
        self.dir = directory
        self.kubeconfig = kubeconfig
        self.step_delay = step_delay
        self.profile = profile
        self.cluster_type = cluster_type
        self.restart_duration = restart_duration
        self.registry_enabled = registry_enabled
        self.control_port = control_port
        self.webhook_port = webhook_port
        self.dkp_version = versions.normalise(dkp_version)
        self.features = versions.features(self.dkp_version)


class Simulator:
    def __init__(self, opts: Options):
        self.opts = opts
        self.cat = Catalogue()
        self.f = opts.features
        self.cat.deckhouse_version = self.f.deckhouse_version
        self.cat.deckhouse_image = self.cat.deckhouse_image.rsplit(":", 1)[0] + ":" + self.f.deckhouse_version
        self.kube = Kube(opts.kubeconfig, impersonate=True)
        self.admin = Kube(opts.kubeconfig, impersonate=False)
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.lock = threading.RLock()
        self.passes = 0
        self.pass_cond = threading.Condition()
        self.queue = QueueSet(self.cat.other_queues)
        self.inf: dict[str, Informer] = {}
        self._init_state()
        self.webhook: WebhookServer | None = None
        self.debug: DebugServer | None = None
        self.write_log: dict[str, list[float]] = {}

    def _init_state(self) -> None:
        self.paused = False
        self.step_delay = float(self.opts.step_delay)
        self.restart_duration = float(self.opts.restart_duration if self.opts.restart_duration is not None
                                      else 3.0)
        self.cluster_type = self.opts.cluster_type
        self.timers: dict[tuple, float] = {}
        self.next_wake: float | None = None
        self.holds: dict[str, str] = {}
        self.image_check_error: str | None = None
        self.local_pushed = False
        self.restart_until = 0.0
        self.leader_recreate_at = 0.0
        self.blip_until = 0.0
        self.restart_error = "drop"
        self.startup_fill_pending = False
        self.first_release_asked: dict[str, float] = {}
        self.module_rerun: dict[str, str] = {}
        self.mc_generations: dict[str, int] = {}
        self.source_state: dict[str, dict] = {}
        self.force_sync: set[str] = set()
        self.enabled_seen: dict[str, bool] = {}
        self.last_queue_tick = 0.0
        self.mpo_deployed: dict[str, tuple[str, str]] = {}
        # module -> (hook error message, monotonic deadline or None = until cleared)
        self.module_errors: dict[str, tuple[str, float | None]] = {}
        self.registry_salt = 0
        self.restarts = 0
        self.last_restart_reason = ""
        self.started = False

    # ================================================================ plumbing
    def c(self, res) -> Informer:
        return self.inf[res.plural]

    def kick(self) -> None:
        self.wake.set()

    def schedule(self, t: float) -> None:
        if self.next_wake is None or t < self.next_wake:
            self.next_wake = t

    def step_ready(self, key: tuple, delay: float | None = None) -> bool:
        """True once ``delay`` (default step_delay) has passed since the key was first asked for."""
        now = time.monotonic()
        t = self.timers.get(key)
        if t is None:
            t = now + (self.step_delay if delay is None else delay)
            self.timers[key] = t
        if now >= t:
            self.timers.pop(key, None)
            return True
        self.schedule(t)
        return False

    def _guard(self, key: str) -> bool:
        """Stop a write storm on one object (a desired state the API keeps normalising away)."""
        now = time.monotonic()
        hist = [t for t in self.write_log.get(key, []) if now - t < 2.0]
        hist.append(now)
        self.write_log[key] = hist
        if len(hist) > 25:
            log.warning("too many writes to %s; backing off", key)
            return False
        return True

    def w_create(self, res, obj: dict) -> dict | None:
        try:
            out = self.kube.create(res, obj)
        except ApiError as e:
            if e.status == 409:
                return None
            raise
        if res.plural in self.inf:
            self.c(res).upsert(out)
        return out

    def w_patch(self, res, name: str, patch: dict, ns: str | None = None, status: bool = False) -> dict | None:
        if not self._guard(f"{res.plural}/{ns}/{name}/{status}"):
            return None
        try:
            out = self.kube.patch(res, name, patch, ns, status=status)
        except ApiError as e:
            if e.status == 404:
                return None
            if e.status == 409:  # stale resourceVersion: recompute on the next pass
                log.debug("conflict writing %s/%s; retrying", res.plural, name)
                self.schedule(time.monotonic() + 0.1)
                return None
            raise
        if res.plural in self.inf:
            self.c(res).upsert(out)
        self.kick()
        return out

    def w_delete(self, res, name: str, ns: str | None = None, grace: int | None = None) -> None:
        self.kube.delete(res, name, ns, grace=grace)
        self.kick()

    def on_change(self, res, etype, obj) -> None:
        self.kick()

    # ================================================================ lifecycle
    def start(self) -> None:
        os.makedirs(self.opts.dir, exist_ok=True)
        self.webhook = WebhookServer(self, os.path.join(self.opts.dir, "simulator-tls"),
                                     self.opts.webhook_port).start()
        self.debug = DebugServer(self, self.opts.control_port).start()
        self._wait_apiserver()
        self._ensure_base()
        for res, ns in ((MODULE_CONFIG, None), (MODULE, None), (MODULE_RELEASE, None), (MODULE_SOURCE, None),
                        (MODULE_UPDATE_POLICY, None), (MODULE_PULL_OVERRIDE, None), (NODE, None),
                        (POD, c.NS), (SECRET, c.NS), (CONFIG_MAP, c.NS)):
            self.inf[res.plural] = Informer(self.kube, res, ns, self.on_change, self.stop).start()
        for i in self.inf.values():
            if not i.synced.wait(60):
                raise RuntimeError(f"informer {i.res.plural} did not sync")
        with self.lock:
            self._register_webhook()
            self._bootstrap_once()
            for _attempt in range(3):
                self.reconcile()
            self.started = True
        threading.Thread(target=self._loop, name="reconciler", daemon=True).start()
        threading.Thread(target=self._webhook_keeper, name="webhook-keeper", daemon=True).start()
        self._write_state_file()
        log.info("simulator ready: control %s, webhook %s", self.debug.url, self.webhook.url)

    def _wait_apiserver(self) -> None:
        deadline = time.monotonic() + 120
        while True:
            try:
                self.admin.request("GET", "/readyz", timeout=5)
                return
            except Exception as e:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"kube-apiserver not ready: {e}")
                time.sleep(0.5)

    def _write_state_file(self) -> None:
        path = os.path.join(self.opts.dir, "simulator.json")
        data = {
            "control_url": self.debug.url,
            "debug_url": self.debug.url,
            "debug_port": self.debug.port,
            "webhook_url": self.webhook.url,
            "webhook_port": self.webhook.port,
            "webhook_ca": os.path.join(self.opts.dir, "simulator-tls", "ca.crt"),
            "pid": os.getpid(),
            "step_delay": self.step_delay,
            "profile": self.opts.profile,
            "dkp_version": self.opts.dkp_version,
            "restart_seconds": self.restart_duration,
        }
        tmp = path + f".tmp.{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)

    def shutdown(self) -> None:
        self.stop.set()
        self.kick()

    def _loop(self) -> None:
        while not self.stop.is_set():
            timeout = 1.0
            if self.next_wake is not None:
                timeout = max(0.0, min(timeout, self.next_wake - time.monotonic()))
            self.wake.wait(timeout)
            self.wake.clear()
            if self.stop.is_set():
                return
            time.sleep(0.02)  # batch bursts of watch events
            if not self.paused:
                with self.lock:
                    try:
                        self.reconcile()
                    except Exception:
                        log.exception("reconcile failed")
            with self.pass_cond:
                self.passes += 1
                self.pass_cond.notify_all()

    def wait_passes(self, n: int = 2, timeout: float = 10.0) -> None:
        with self.pass_cond:
            target = self.passes + n
            end = time.monotonic() + timeout
            while self.passes < target:
                self.kick()
                left = end - time.monotonic()
                if left <= 0:
                    return
                self.pass_cond.wait(min(left, 0.5))

    def _webhook_keeper(self) -> None:
        """Re-register the webhook if someone (or an apiserver wipe) removed or changed it."""
        while not self.stop.wait(5.0):
            try:
                cur = self.admin.get(VALIDATING_WEBHOOK, c.WEBHOOK_NAME)
                want = self._webhook_manifest()
                have = [w.get("clientConfig") for w in (cur or {}).get("webhooks") or []]
                if cur is None or have != [w["clientConfig"] for w in want["webhooks"]]:
                    self._register_webhook()
            except Exception as e:
                log.debug("webhook keeper: %s", e)

    # ================================================================ bootstrap
    def _ensure_base(self) -> None:
        """Namespace, service account and its cluster-admin binding (created as the admin)."""
        if self.admin.get(NAMESPACE, c.NS) is None:
            try:
                self.admin.create(NAMESPACE, {"metadata": {"name": c.NS, "labels": {"heritage": "deckhouse",
                                                                                    "module": "deckhouse"}}})
            except ApiError as e:
                if e.status != 409:
                    raise
        if self.admin.get(SERVICE_ACCOUNT, "deckhouse", c.NS) is None:
            try:
                self.admin.create(SERVICE_ACCOUNT, {"metadata": {"name": "deckhouse", "namespace": c.NS,
                                                                 "labels": {"heritage": "deckhouse"}}})
            except ApiError as e:
                if e.status != 409:
                    raise
        crbs = self.admin.list(CLUSTER_ROLE_BINDING)[0]
        bound = any(s.get("kind") == "ServiceAccount" and s.get("name") == "deckhouse" and s.get("namespace") == c.NS
                    and (b.get("roleRef") or {}).get("name") == "cluster-admin"
                    for b in crbs for s in (b.get("subjects") or []))
        if not bound:
            try:
                self.admin.create(CLUSTER_ROLE_BINDING, {
                    "metadata": {"name": "d8:deckhouse", "labels": {"heritage": "deckhouse"}},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                "name": "cluster-admin"},
                    "subjects": [{"kind": "ServiceAccount", "name": "deckhouse", "namespace": c.NS}]})
            except ApiError as e:
                if e.status != 409:
                    raise
        # impersonated requests work once RBAC caches have the binding
        deadline = time.monotonic() + 30
        while True:
            try:
                self.kube.list(MODULE_CONFIG)
                return
            except ApiError as e:
                if e.status != 403 or time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def _bootstrap_once(self) -> None:
        for name in self.cat.embedded:
            if self.c(MODULE).get(name) is None:
                self._create_embedded_module(name)
        for name, spec in ((c.GLOBAL, {"version": 2, "settings": copy.deepcopy(INITIAL_GLOBAL_SETTINGS)}),
                           (c.DECKHOUSE, {"enabled": True, "version": 1,
                                          "settings": copy.deepcopy(INITIAL_DECKHOUSE_SETTINGS)})):
            if self.c(MODULE_CONFIG).get(name) is None:
                self._create_retrying(MODULE_CONFIG, {"metadata": {"name": name}, "spec": spec})
        if self.opts.registry_enabled and self.c(MODULE_CONFIG).get(c.REGISTRY) is None:
            self._create_retrying(MODULE_CONFIG, {"metadata": {"name": c.REGISTRY}, "spec": {"enabled": True}})
        if self.kube.get(SERVICE, "deckhouse-leader", c.NS) is None:
            self.w_create(SERVICE, {
                "metadata": {"name": "deckhouse-leader", "namespace": c.NS,
                             "labels": {"heritage": "deckhouse", "module": "deckhouse"}},
                "spec": {"selector": {"app": "deckhouse", "leader": "true"}, "publishNotReadyAddresses": True,
                         "ports": [{"name": "self", "port": 8080, "targetPort": "self"},
                                   {"name": "webhook", "port": 4223, "targetPort": "webhook"}]}})
        if self.c(SECRET).get("deckhouse-registry", c.NS) is None:
            self.w_create(SECRET, self._deckhouse_registry_secret("registry.deckhouse.io", "/deckhouse/ce",
                                                                  "https"))
        for name in self.cat.embedded:
            if self.c(MODULE).get(name) is None:
                self._create_embedded_module(name)
        self.r_bootstrap()

    def _create_retrying(self, res, obj: dict, timeout: float = 15.0) -> dict | None:
        """Create through our webhook, which the apiserver may not have picked up yet."""
        end = time.monotonic() + timeout
        while True:
            try:
                return self.w_create(res, obj)
            except Exception as e:
                if time.monotonic() > end:
                    raise
                log.debug("create %s %s: %s; retrying", res.kind, md(obj).get("name"), e)
                time.sleep(0.3)

    def _deckhouse_registry_secret(self, address: str, path: str, scheme: str) -> dict:
        cfg = json.dumps({"auths": {address: {"auth": b64("license-token:" + FAKE_LICENSE)}}})
        return {"metadata": {"name": "deckhouse-registry", "namespace": c.NS,
                             "labels": {"heritage": "deckhouse", "module": "deckhouse"}},
                "type": "kubernetes.io/dockerconfigjson",
                "data": {".dockerconfigjson": b64(cfg), "address": b64(address), "path": b64(path),
                         "scheme": b64(scheme), "imagesRegistry": b64(address + path)}}

    def _webhook_manifest(self) -> dict:
        return {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": c.WEBHOOK_NAME, "labels": {"heritage": "deckhouse", "module": "deckhouse"}},
            "webhooks": [{
                "name": c.WEBHOOK_NAME,
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "timeoutSeconds": 10,
                "clientConfig": {"url": self.webhook.url, "caBundle": base64.b64encode(self.webhook.ca_pem).decode()},
                "rules": [{"apiGroups": ["deckhouse.io"], "apiVersions": ["*"],
                           "operations": ["CREATE", "UPDATE", "DELETE"], "resources": ["moduleconfigs"],
                           "scope": "Cluster"}],
            }, {
                "name": c.UP_WEBHOOK_NAME,
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "timeoutSeconds": 10,
                "clientConfig": {"url": self.webhook.up_url,
                                 "caBundle": base64.b64encode(self.webhook.ca_pem).decode()},
                "rules": [{"apiGroups": ["deckhouse.io"], "apiVersions": ["*"],
                           "operations": ["DELETE"], "resources": ["moduleupdatepolicies"],
                           "scope": "Cluster"}],
            }],
        }

    def _register_webhook(self) -> None:
        want = self._webhook_manifest()
        cur = self.admin.get(VALIDATING_WEBHOOK, c.WEBHOOK_NAME)
        if cur is None:
            self.admin.create(VALIDATING_WEBHOOK, want)
        else:
            want["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
            self.admin.replace(VALIDATING_WEBHOOK, want)
        # the apiserver picks webhook configurations up asynchronously; give it a moment
        time.sleep(0.5)

    # ---------------------------------------------------------------- nodes / pod / facts
    def _node_manifest(self, name: str) -> dict:
        master = name.startswith("master")
        lbl = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
               "node.deckhouse.io/group": "master" if master else "worker", "node.deckhouse.io/type": "Static",
               "type": "kwok"}
        if master:
            lbl["node-role.kubernetes.io/control-plane"] = ""
            lbl["node-role.kubernetes.io/master"] = ""
        return {"metadata": {"name": name, "labels": lbl,
                             "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"}},
                "spec": {}}

    def leader_pods(self) -> list[dict]:
        return [p for p in self.c(POD).list()
                if labels(p).get("app") == "deckhouse" and labels(p).get("leader") == "true" and not deleting(p)]

    def _leader_manifest(self) -> dict:
        rs = "".join(random.choices("bcdfghjklmnpqrstvwxz2456789", k=10))
        suffix = "".join(random.choices("bcdfghjklmnpqrstvwxz2456789", k=5))
        return {
            "metadata": {"name": f"deckhouse-{rs}-{suffix}", "namespace": c.NS,
                         "labels": {"app": "deckhouse", "leader": "true", "heritage": "deckhouse",
                                    "module": "deckhouse", "pod-template-hash": rs},
                         "annotations": {"kwok.x-k8s.io/simulated": "deckhouse"}},
            "spec": {
                "nodeName": MASTERS[0],
                "serviceAccountName": "deckhouse",
                "automountServiceAccountToken": False,
                "tolerations": [{"operator": "Exists"}],
                "containers": [{"name": "deckhouse", "image": self.cat.deckhouse_image,
                                "command": ["/usr/bin/deckhouse-controller", "start"],
                                "ports": [{"name": "self", "containerPort": 4222},
                                          {"name": "webhook", "containerPort": 4223},
                                          {"name": "debug", "containerPort": 9652}]}],
            },
        }

    def r_bootstrap(self) -> None:
        for name in MASTERS + WORKERS:
            if self.c(NODE).get(name) is None:
                self.w_create(NODE, self._node_manifest(name))
        now = time.monotonic()
        if not self.leader_pods() and now >= self.leader_recreate_at:
            self.w_create(POD, self._leader_manifest())
        elif not self.leader_pods():
            self.schedule(self.leader_recreate_at)
        ms = self.c(MODULE_SOURCE).get(c.DECKHOUSE_SOURCE)
        if ms is None:
            self.w_create(MODULE_SOURCE, {
                "metadata": {"name": c.DECKHOUSE_SOURCE, "labels": {"heritage": "deckhouse", "module": "deckhouse"}},
                "spec": {"registry": {"repo": DECKHOUSE_REPO, "scheme": "HTTPS",
                                      "dockerCfg": b64(json.dumps({"auths": {"registry.deckhouse.io": {
                                          "auth": b64("license-token:" + FAKE_LICENSE)}}}))}}})
        for name in self.cat.embedded:
            if self.c(MODULE).get(name) is None:
                self._create_embedded_module(name)

    def r_facts(self) -> None:
        want = {"registryModuleEnabled": "true" if self.module_enabled(c.REGISTRY) else "false",
                "clusterBootstrapped": "true", "clusterType": self.cluster_type}
        sec = self.c(SECRET).get("registry-state", c.NS)
        if sec is not None:
            # the completed mode: the 1.75+ VAP is rendered with extra rules keyed on it
            want["registryMode"] = unb64((sec.get("data") or {}).get("mode")) or "Unmanaged"
        cm = self.c(CONFIG_MAP).get(c.CLUSTER_FACTS, c.NS)
        if cm is None:
            self.w_create(CONFIG_MAP, {"metadata": {"name": c.CLUSTER_FACTS, "namespace": c.NS,
                                                    "labels": {"heritage": "deckhouse", "module": "deckhouse"}},
                                       "data": want})
        elif (cm.get("data") or {}) != want:
            self.w_patch(CONFIG_MAP, c.CLUSTER_FACTS, {"data": want}, c.NS)

    # ================================================================ model helpers
    def mc(self, name: str) -> dict | None:
        obj = self.c(MODULE_CONFIG).get(name)
        return None if obj is None or deleting(obj) else obj

    def mc_enabled(self, name: str):
        obj = self.mc(name)
        v = ((obj or {}).get("spec") or {}).get("enabled")
        return v if isinstance(v, bool) else None

    def module_enabled(self, name: str) -> bool:
        v = self.mc_enabled(name)
        if v is not None:
            return v
        if name in self.cat.embedded:
            return bool(self.cat.embedded[name].get("enabledByDefault"))
        if name == c.REGISTRY:
            return False
        return False

    def deckhouse_settings(self) -> dict:
        return ((self.mc(c.DECKHOUSE) or {}).get("spec") or {}).get("settings") or {}

    def embedded_policy(self) -> rel.Policy:
        s = self.deckhouse_settings()
        upd = s.get("update") or {}
        return rel.Policy("", upd.get("mode") or "AutoPatch", s.get("releaseChannel") or "Stable",
                          list(upd.get("windows") or []))

    def policy_by_name(self, name: str) -> rel.Policy | None:
        if not name:
            return self.embedded_policy()
        mup = self.c(MODULE_UPDATE_POLICY).get(name)
        if mup is None:
            return None
        spec = mup.get("spec") or {}
        upd = spec.get("update") or {}
        return rel.Policy(name, upd.get("mode") or "Auto", spec.get("releaseChannel") or "Stable",
                          list(upd.get("windows") or []))

    def module_policy(self, module: str) -> rel.Policy | None:
        name = ((self.mc(module) or {}).get("spec") or {}).get("updatePolicy") or ""
        return self.policy_by_name(name)

    def source_repo(self, source: str) -> str | None:
        ms = self.c(MODULE_SOURCE).get(source)
        if ms is None or deleting(ms):
            return None
        return ((ms.get("spec") or {}).get("registry") or {}).get("repo")

    def module_releases(self, module: str) -> list[dict]:
        return [r for r in self.c(MODULE_RELEASE).list()
                if ((r.get("spec") or {}).get("moduleName") or labels(r).get(c.L_MODULE)) == module]

    def deployed_release(self, module: str) -> dict | None:
        dep = [r for r in self.module_releases(module) if rel.release_phase(r) == "Deployed" and not deleting(r)]
        return max(dep, key=rel.release_version) if dep else None

    def mpo(self, module: str) -> dict | None:
        return self.c(MODULE_PULL_OVERRIDE).get(module)

    def chosen_source(self, module: str, mod_obj: dict | None) -> str:
        props = (mod_obj or {}).get("properties") or {}
        available = props.get("availableSources") or []
        src = ((self.mc(module) or {}).get("spec") or {}).get("source") or ""
        if src:
            return src
        if props.get("source"):
            return props["source"]
        return available[0] if len(available) == 1 else ""

    def registry_meta(self, module: str, source: str | None = None) -> dict:
        if source:
            repo = self.source_repo(source)
            mods = self.cat.repo_modules(repo) if repo else None
            if mods and module in mods:
                return mods[module]
        return self.cat.any_registry_meta(module) or {}

    def storage_module(self, name: str) -> dict | None:
        """A module the module manager knows: embedded, or downloaded (deployed release / override)."""
        if name in self.cat.embedded:
            return self.cat.embedded[name]
        if self.deployed_release(name) is not None or self.mpo(name) is not None:
            mod = self.c(MODULE).get(name)
            return self.registry_meta(name, ((mod or {}).get("properties") or {}).get("source"))
        return None

    def nodes_not_ready(self, only_masters: bool = False) -> list[str]:
        out = []
        for n in self.c(NODE).list():
            name = md(n).get("name")
            if only_masters and "node-role.kubernetes.io/control-plane" not in labels(n):
                continue
            conds = (n.get("status") or {}).get("conditions") or []
            ready = next((x for x in conds if x.get("type") == "Ready"), None)
            if ready is None or ready.get("status") != "True":
                out.append(name)
        return sorted(out)

    # ================================================================ reconcile
    def reconcile(self) -> None:
        self.next_wake = None
        steps = (self.r_bootstrap, self.r_sources, self.r_module_configs, self.r_modules, self.r_releases,
                 self.r_mpos, self.r_registry, self.r_facts, self.r_queue)
        if self.deckhouse_down():
            # Deckhouse is re-executing: its controllers and hooks do nothing until it is back
            steps = (self.r_bootstrap, self.r_facts, self.r_queue)
            self.schedule(self.restart_until)
        for step in steps:
            try:
                step()
            except ApiError as e:
                log.warning("%s: %s", step.__name__, e)
                self.schedule(time.monotonic() + 0.5)
            except Exception as e:
                if "Connection refused" in str(e) or "Max retries" in str(e) or "timed out" in str(e):
                    log.debug("%s: API unavailable: %s", step.__name__, e)
                else:
                    log.exception("%s failed", step.__name__)
                self.schedule(time.monotonic() + 0.5)

    # ---------------------------------------------------------------- queue
    def enqueue(self, task_type: str, queue: str = MAIN, meta: str = "") -> None:
        self.queue.add(task_type, queue, meta)
        self.kick()

    def enqueue_config_change(self, name: str) -> None:
        self.enqueue("ApplyKubeConfigValues", MAIN, name)
        if name == c.GLOBAL:
            self.enqueue("ConvergeModules", MAIN)
            return
        if self.module_enabled(name):
            self.enqueue("ModuleRun", MAIN, name)
        else:
            self.enqueue("ModuleDelete", MAIN, name)
        self.enqueue("ConvergeModules", MAIN)

    def enqueue_startup(self) -> None:
        """The main queue of a Deckhouse that just started: a converge, then one ModuleRun with
        doStartup per enabled module (addon-operator HookMetadata description format:
        `ModuleRun:main:<module>:doStartup:<EventDescription>`)."""
        self.enqueue("ConvergeModules", MAIN, "OperatorStartup")
        mods = sorted((m for m in self._all_module_names() if self.module_enabled(m)),
                      key=lambda m: (self.cat.embedded.get(m) or self.registry_meta(m)).get("weight", 900))
        for m in mods:
            self.enqueue("ModuleRun", MAIN, f"{m}:doStartup:{STARTUP_EVENT}")
        for q in self.cat.other_queues[:4]:
            mod = q.split("/")[2] if q.count("/") >= 3 else "deckhouse"
            self.enqueue("ModuleHookRun", q, f"{mod}:{q.rsplit('/', 1)[-1]}")

    def r_queue(self) -> None:
        now = time.monotonic()
        if now < self.restart_until:
            self.schedule(self.restart_until)
            return
        if self.startup_fill_pending:
            self.startup_fill_pending = False
            self.enqueue_startup()
        if self.queue.total() == 0:
            return
        interval = max(0.05, self.step_delay)
        if now - self.last_queue_tick >= interval:
            self.last_queue_tick = now
            self.queue.tick()
        self.schedule(self.last_queue_tick + interval)

    def _all_module_names(self) -> list[str]:
        names = set(self.cat.embedded)
        names.update(md(m).get("name") for m in self.c(MODULE).list())
        return sorted(n for n in names if n)

    # ---------------------------------------------------------------- module configs
    def r_module_configs(self) -> None:
        for obj in self.c(MODULE_CONFIG).list():
            name = md(obj).get("name")
            if deleting(obj):
                fins = md(obj).get("finalizers") or []
                if c.MC_FINALIZER in fins or c.MC_FINALIZER_OLD in fins:
                    self._delete_pending_releases(name)
                    self.w_patch(MODULE_CONFIG, name, {"metadata": {
                        "finalizers": [f for f in fins if f not in (c.MC_FINALIZER, c.MC_FINALIZER_OLD)] or None,
                        "annotations": {c.ANN_ALLOW_DISABLING: None},
                        "resourceVersion": md(obj).get("resourceVersion")}})
                    self.enqueue_config_change(name)
                self.mc_generations.pop(name, None)
                continue
            spec = obj.get("spec") or {}
            module_exists = self.c(MODULE).get(name) is not None or name in self.cat.embedded
            want = validation.config_status(name, spec, self.cat.config_versions(name),
                                            self.cat.settings_schema(name), module_exists)
            st = obj.get("status") or {}
            if st.get("version") != want["version"] or st.get("message") != want["message"]:
                self.w_patch(MODULE_CONFIG, name, {"status": want}, status=True)
            gen = md(obj).get("generation") or 0
            prev = self.mc_generations.get(name)
            if prev is not None and prev != gen:
                self.enqueue_config_change(name)
            elif prev is None and self.started:
                self.enqueue_config_change(name)  # a ModuleConfig created while we run
            self.mc_generations[name] = gen
            if name != c.GLOBAL and module_exists:
                fins = md(obj).get("finalizers") or []
                if c.MC_FINALIZER not in fins:
                    self.w_patch(MODULE_CONFIG, name, {"metadata": {
                        "finalizers": [f for f in fins if f != c.MC_FINALIZER_OLD] + [c.MC_FINALIZER],
                        "resourceVersion": md(obj).get("resourceVersion")}})
            if spec.get("enabled") is False and module_exists:
                self._delete_pending_releases(name)
                if c.ANN_ALLOW_DISABLING in anns(obj):
                    mod = self.c(MODULE).get(name)
                    if mod is not None and self._module_condition(mod, c.C_ENABLED_BY_MC) == "False":
                        self.w_patch(MODULE_CONFIG, name, {"metadata": {"annotations": {c.ANN_ALLOW_DISABLING: None}}})

    def _delete_pending_releases(self, module: str) -> None:
        for r in self.module_releases(module):
            if rel.release_phase(r) == "Pending" and not deleting(r):
                self.w_delete(MODULE_RELEASE, md(r)["name"])

    @staticmethod
    def _module_condition(mod: dict, ctype: str) -> str | None:
        for x in ((mod.get("status") or {}).get("conditions") or []):
            if x.get("type") == ctype:
                return x.get("status")
        return None

    # ---------------------------------------------------------------- modules
    def _embedded_properties(self, name: str) -> dict:
        d = self.cat.embedded[name]
        props = {"weight": d.get("weight", 900), "source": c.EMBEDDED, "stage": d.get("stage", "General Availability"),
                 "namespace": d.get("namespace", f"d8-{name}")}
        for k in ("critical", "subsystems", "disableOptions", "exclusiveGroup", "requirements"):
            if d.get(k) is not None:
                props[k] = copy.deepcopy(d[k])
        if self.cat.edition:
            bundles = ["Default", "Managed"] if d.get("enabledByDefault") else []
            props["accessibility"] = {"editions": {"_default": {"available": True, "enabledInBundles": bundles}}}
        return props

    def _initial_embedded_status(self, name: str) -> dict:
        conds: list[dict] = []
        if self.mc_enabled(name) is True:
            set_module_condition(conds, c.C_ENABLED_BY_MC, "True")
        if self.module_enabled(name):
            set_module_condition(conds, c.C_ENABLED_BY_MM, "True")
            set_module_condition(conds, c.C_IS_READY, "True")
            return {"phase": "Ready", "conditions": conds}
        set_module_condition(conds, c.C_ENABLED_BY_MM, "False", c.R_BUNDLE, c.M_BUNDLE)
        set_module_condition(conds, c.C_IS_READY, "False", c.R_DISABLED, c.M_DISABLED)
        return {"phase": "Downloaded", "conditions": conds}  # embedded modules are always on disk

    def _create_embedded_module(self, name: str) -> None:
        out = self.w_create(MODULE, {"metadata": {"name": name, "labels": {"heritage": "deckhouse"}},
                                     "properties": self._embedded_properties(name)})
        if out is not None:
            self.w_patch(MODULE, name, {"status": self._initial_embedded_status(name)}, status=True)

    def _external_properties(self, name: str, mod: dict) -> dict:
        props = copy.deepcopy(mod.get("properties") or {})
        enabled = self.module_enabled(name)
        mc = self.mc(name)
        src = self.chosen_source(name, mod) if enabled else props.get("source", "")
        if mc is None and not enabled:
            src = ""
        available = props.get("availableSources") or []
        if enabled and not ((mc or {}).get("spec") or {}).get("source") and len(available) > 1 \
                and not props.get("source"):
            src = ""
        meta = self.registry_meta(name, src or (available[0] if available else None))
        props["source"] = src
        if not src:
            props.pop("source", None)
        policy_name = ((mc or {}).get("spec") or {}).get("updatePolicy") or ""
        if policy_name and enabled:
            props["updatePolicy"] = policy_name
        else:
            props.pop("updatePolicy", None)
        pol = self.module_policy(name) or self.embedded_policy()
        props["releaseChannel"] = pol.channel
        for k in ("weight", "stage", "namespace", "exclusiveGroup", "disableOptions", "subsystems", "critical"):
            if meta.get(k) is not None:
                props[k] = copy.deepcopy(meta[k])
        over = self.mpo(name)
        dep = self.deployed_release(name)
        if over is not None and (over.get("status") or {}).get("message") == c.MPO_READY:
            props["version"] = (over.get("spec") or {}).get("imageTag", "")
        elif dep is not None:
            props["version"] = "v" + str(rel.release_version(dep))
        return props

    def r_modules(self) -> None:
        for name in self._all_module_names():
            mod = self.c(MODULE).get(name)
            if mod is None or deleting(mod):
                continue
            embedded = name in self.cat.embedded
            # properties (main resource)
            props = self._embedded_properties(name) if embedded else self._external_properties(name, mod)
            cur_props = mod.get("properties") or {}
            if embedded:
                merged = dict(cur_props)
                merged.update(props)
                props = merged
            if props != cur_props:
                patch_props = {k: props.get(k) for k in set(props) | set(cur_props)}
                mod = self.w_patch(MODULE, name, {"properties": patch_props}) or mod
            enabled = self.module_enabled(name)
            was = self.enabled_seen.get(name)
            self.enabled_seen[name] = enabled
            if not embedded and enabled and (was is False or self._needs_first_release(name, mod)):
                for s in (mod.get("properties") or {}).get("availableSources") or []:
                    self.force_sync.add(s)
                self.kick()
            status = self._desired_module_status(name, mod, embedded, enabled)
            cur = mod.get("status") or {}
            if status.get("phase") != cur.get("phase") or \
                    strip_times(status.get("conditions")) != strip_times(cur.get("conditions")):
                self.w_patch(MODULE, name, {"status": status}, status=True)

    def _needs_first_release(self, name: str, mod: dict) -> bool:
        """An enabled source module without any release: its source must be (re)scanned."""
        if self.mc_enabled(name) is not True or self.mpo(name) is not None or self.module_releases(name):
            return False
        if not self.chosen_source(name, mod):
            return False
        now = time.monotonic()
        if now - self.first_release_asked.get(name, 0.0) < 2.0:
            return False
        self.first_release_asked[name] = now
        return True

    def _desired_module_status(self, name: str, mod: dict, embedded: bool, enabled: bool) -> dict:
        cur = copy.deepcopy(mod.get("status") or {})
        conds = cur.get("conditions") or []
        phase = cur.get("phase") or ""
        props = mod.get("properties") or {}
        mc_en = self.mc_enabled(name)
        has = {x.get("type") for x in conds}
        if mc_en is True:
            set_module_condition(conds, c.C_ENABLED_BY_MC, "True")
        elif mc_en is False or self.mc(name) is not None or c.C_ENABLED_BY_MC in has:
            # released: an omitted spec.enabled reads as False (not Unknown)
            set_module_condition(conds, c.C_ENABLED_BY_MC, "False")
        over = self.mpo(name)
        over_ready = over is not None and not deleting(over) and (over.get("status") or {}).get("message") == c.MPO_READY
        if over is not None and not deleting(over) and props.get("source") and not embedded:
            # IsOverridden as soon as the MPO exists and the module has a source (before any pull)
            set_module_condition(conds, c.C_IS_OVERRIDDEN, "True", c.R_OVERRIDDEN)
        elif c.C_IS_OVERRIDDEN in has:
            set_module_condition(conds, c.C_IS_OVERRIDDEN, "False")

        if not enabled:
            self.module_rerun.pop(name, None)
            if mc_en is False:
                reason, msg = c.R_MODULE_CONFIG, c.M_MODULE_CONFIG
            elif embedded:
                reason, msg = c.R_BUNDLE, c.M_BUNDLE
            else:
                reason, msg = c.R_DISABLED, c.M_DISABLED
            if embedded:
                phase = "Downloaded"  # embedded modules are always on disk
                ready = (c.R_DISABLED, c.M_DISABLED)
            elif phase in ("", "Available", "Conflict", "Downloading", "DownloadingError"):
                phase = "Available"
                ready = (c.R_NOT_INSTALLED, c.M_NOT_INSTALLED)
            elif phase == "Unavailable":
                ready = (reason, msg)
            else:
                phase = "Downloaded"
                ready = (c.R_DISABLED, c.M_DISABLED)
            if phase == "Available" and not embedded and mc_en is not False:
                set_module_condition(conds, c.C_ENABLED_BY_MM, "False")
            else:
                set_module_condition(conds, c.C_ENABLED_BY_MM, "False", reason, msg)
            set_module_condition(conds, c.C_IS_READY, "False", *ready)
            if (mc_en is False and not embedded) or c.C_LAST_RELEASE in has:
                set_module_condition(conds, c.C_LAST_RELEASE, "Unknown")
            return {"phase": phase, "conditions": conds}

        # enabled
        installable = True
        if not embedded:
            src = props.get("source") or ""
            available = props.get("availableSources") or []
            if not src and len(available) > 1:
                set_module_condition(conds, c.C_ENABLED_BY_MM, "False")
                set_module_condition(conds, c.C_IS_READY, "False", c.R_CONFLICT, c.M_CONFLICT)
                return {"phase": "Conflict", "conditions": conds}
            dep = self.deployed_release(name)
            installable = dep is not None or over_ready
            if dep is not None:
                set_module_condition(conds, c.C_LAST_RELEASE, "True")
            if not src and not installable:
                # no source offers the module any more
                return {"phase": phase or "Available", "conditions": conds}
            pend = self._blocked_pending(name)
            if pend is not None and dep is not None:
                set_module_condition(conds, c.C_LAST_RELEASE, "False", c.R_RELEASE_DEPLOY_TIME,
                                     f"{c.M_RELEASE_POSTPONED}: see details in the module release v{pend[0]}")
        err = self.module_errors.get(name)
        if err is not None and err[1] is not None and time.monotonic() >= err[1]:
            self.c_module_error_clear(name)  # the hook succeeds on a retry: a transient error
            err = None
        if err is not None:
            # addon-operator holds a last hook error: phase Error, IsReady=False HookError
            if err[1] is not None:
                self.schedule(err[1])
            set_module_condition(conds, c.C_ENABLED_BY_MM, "True")
            set_module_condition(conds, c.C_IS_READY, "False", c.R_HOOK_ERROR, err[0])
            return {"phase": "Error", "conditions": conds}
        rerun = self.module_rerun.get(name)
        nxt = None
        if embedded and phase in ("", "Available", "Conflict", "Unavailable", "Downloading", "Installing",
                                  "Downloaded"):
            nxt = "Reconciling"  # embedded modules enable through Reconciling
        elif phase in ("", "Available", "Conflict", "Unavailable"):
            if not embedded and not installable and phase in ("Available", "Conflict", ""):
                # the source controller marks the module Downloading once its release is ensured
                if self.module_releases(name):
                    nxt = "Downloading"
            else:
                nxt = "Downloading"
        elif phase == "Downloading":
            nxt = "Installing" if installable else None
        elif phase in ("Installing", "Reconciling"):
            nxt = "Ready"
        elif phase in ("Downloaded", "Error", "DownloadingError", "HooksDisabled", "WaitSyncTasks"):
            nxt = "Reconciling"
        elif phase == "Ready" and rerun:
            nxt = rerun
        if nxt is not None:
            key = ("module", name, phase, rerun or "")
            immediate = (phase in ("", "Available", "Conflict") and nxt == "Downloading" and not embedded) or \
                (embedded and phase != "Reconciling" and nxt == "Reconciling")
            if immediate or self.step_ready(key):
                if phase == "Ready" and rerun:
                    self.module_rerun.pop(name, None)
                if nxt in ("Installing", "Reconciling") and phase != nxt:
                    self.enqueue("ModuleRun", MAIN, name)
                phase = nxt
        if phase == "Downloading":
            set_module_condition(conds, c.C_IS_READY, "False", c.R_DOWNLOADING, c.M_DOWNLOADING)
            if c.C_ENABLED_BY_MM not in {x.get("type") for x in conds}:
                set_module_condition(conds, c.C_ENABLED_BY_MM, "False")
        elif phase == "Installing":
            set_module_condition(conds, c.C_ENABLED_BY_MM, "True")
            set_module_condition(conds, c.C_IS_READY, "False", c.R_INSTALLING, c.M_INSTALLING)
        elif phase == "Reconciling":
            set_module_condition(conds, c.C_ENABLED_BY_MM, "True")
            set_module_condition(conds, c.C_IS_READY, "False", c.R_RECONCILING, c.M_RECONCILING)
        elif phase == "Ready":
            set_module_condition(conds, c.C_ENABLED_BY_MM, "True")
            set_module_condition(conds, c.C_IS_READY, "True")
        elif phase in ("Available", ""):
            phase = "Available"
            set_module_condition(conds, c.C_ENABLED_BY_MM, "False")
            set_module_condition(conds, c.C_IS_READY, "False", c.R_NOT_INSTALLED, c.M_NOT_INSTALLED)
        return {"phase": phase, "conditions": conds}

    def _blocked_pending(self, module: str):
        for r in sorted(self.module_releases(module), key=rel.release_version):
            if rel.release_phase(r) == "Pending":
                msg = (r.get("status") or {}).get("message") or ""
                if msg.startswith("Release is"):
                    return str(rel.release_version(r)), msg
        return None

    def _ensure_external_module(self, name: str, source: str, channel: str) -> dict | None:
        mod = self.c(MODULE).get(name)
        if mod is None:
            mod = self.w_create(MODULE, {"metadata": {"name": name},
                                         "properties": {"availableSources": [source], "releaseChannel": channel}})
            if mod is None:
                return self.c(MODULE).get(name)
            conds: list[dict] = []
            set_module_condition(conds, c.C_ENABLED_BY_MM, "False")
            set_module_condition(conds, c.C_IS_READY, "False", c.R_NOT_INSTALLED, c.M_NOT_INSTALLED)
            mod = self.w_patch(MODULE, name, {"status": {"phase": "Available", "conditions": conds}}, status=True) or mod
            return mod
        props = mod.get("properties") or {}
        avail = list(props.get("availableSources") or [])
        if source not in avail:
            avail.append(source)
            mod = self.w_patch(MODULE, name, {"properties": {"availableSources": avail}}) or mod
        return mod

    def _clean_source_in_module(self, source: str, name: str) -> None:
        mod = self.c(MODULE).get(name)
        if mod is None or name in self.cat.embedded:
            return
        props = mod.get("properties") or {}
        avail = list(props.get("availableSources") or [])
        enabled_mm = self._module_condition(mod, c.C_ENABLED_BY_MM) == "True"
        if not avail or avail == [source]:
            if not enabled_mm:
                self.w_delete(MODULE, name)
                return
            avail = []
        elif source in avail:
            avail.remove(source)
        else:
            return
        patch = {"availableSources": avail}
        if props.get("source") == source:
            patch["source"] = None
        self.w_patch(MODULE, name, {"properties": patch})

    # ---------------------------------------------------------------- module sources
    def r_sources(self) -> None:
        now = time.monotonic()
        for ms in self.c(MODULE_SOURCE).list():
            name = md(ms)["name"]
            if deleting(ms):
                self._delete_source(ms)
                continue
            st = self.source_state.setdefault(name, {"gen": None, "last": 0.0})
            # released: spec.scanInterval is used only when it is longer than 3 minutes
            interval = max(180.0, parse_duration((ms.get("spec") or {}).get("scanInterval"), 180.0))
            gen = md(ms).get("generation")
            due = (st["gen"] != gen or name in self.force_sync or now - st["last"] >= interval
                   or not (ms.get("status") or {}).get("syncTime"))
            if not due:
                self.schedule(st["last"] + interval)
                continue
            self.force_sync.discard(name)
            st["gen"] = gen
            st["last"] = now
            self._sync_source(ms)
            self.schedule(now + interval)

    def _delete_source(self, ms: dict) -> None:
        name = md(ms)["name"]
        fins = list(md(ms).get("finalizers") or [])
        st = ms.get("status") or {}
        if st.get("phase") != "Terminating":
            self.w_patch(MODULE_SOURCE, name, {"status": {"phase": "Terminating"}}, status=True)
        force = anns(ms).get(c.ANN_FORCE_DELETE) == "true"
        if c.MS_FINALIZER_RELEASE in fins:
            deployed = [r for r in self.c(MODULE_RELEASE).list()
                        if labels(r).get(c.L_SOURCE) == name and labels(r).get(c.L_STATUS) == "deployed"]
            if deployed and not force:
                if st.get("message") != c.MSG_SOURCE_HAS_DEPLOYED:
                    self.w_patch(MODULE_SOURCE, name, {"status": {"message": c.MSG_SOURCE_HAS_DEPLOYED}}, status=True)
                self.schedule(time.monotonic() + 1.0)
                return
            fins.remove(c.MS_FINALIZER_RELEASE)
        if c.MS_FINALIZER_MODULE in fins:
            if not force:
                for m in st.get("modules") or []:
                    self._clean_source_in_module(name, m.get("name"))
            fins.remove(c.MS_FINALIZER_MODULE)
        if fins != list(md(ms).get("finalizers") or []):
            self.w_patch(MODULE_SOURCE, name, {"metadata": {"finalizers": fins or None}})
        self.source_state.pop(name, None)

    def _sync_source(self, ms: dict) -> None:
        name = md(ms)["name"]
        spec = ms.get("spec") or {}
        repo = (spec.get("registry") or {}).get("repo") or ""
        checksum = json.dumps(spec.get("registry") or {}, sort_keys=True)
        reg_sum = hashlib.md5(checksum.encode()).hexdigest()
        old_sum = anns(ms).get(c.ANN_REGISTRY_CHECKSUM)
        if old_sum != reg_sum:
            self.w_patch(MODULE_SOURCE, name, {"metadata": {"annotations": {c.ANN_REGISTRY_CHECKSUM: reg_sum}}})
            if old_sum:
                # the registry changed: Deployed releases of this source are pulled again
                for r in self.c(MODULE_RELEASE).list():
                    if labels(r).get(c.L_SOURCE) == name and rel.release_phase(r) == "Deployed":
                        self.w_patch(MODULE_RELEASE, md(r)["name"], {"metadata": {"annotations": {
                            c.ANN_REGISTRY_SPEC_CHANGED: now_rfc3339()}}})
        mods = self.cat.repo_modules(repo)
        st = ms.get("status") or {}
        if mods is None:
            host = Catalogue.norm_repo(repo).split("/", 1)[0] or repo
            path = Catalogue.norm_repo(repo)[len(host):].lstrip("/")
            msg = (f"list tags: GET https://{host}/v2/{path}/tags/list?n=1000: NAME_UNKNOWN: "
                   f"repository name not known to registry; map[name:{path}]")
            self.w_patch(MODULE_SOURCE, name, {"status": {"syncTime": now_rfc3339(), "message": msg,
                                                          "phase": "Active"}}, status=True)
            return
        # modules that disappeared from the registry lose this source
        for old in st.get("modules") or []:
            if old.get("name") not in mods:
                self._clean_source_in_module(name, old.get("name"))
        entries = []
        errors = False
        for mname in sorted(mods):
            meta = mods[mname]
            if mname == "modules" or len(mname) > 64:
                continue
            policy = self.module_policy(mname) or self.embedded_policy()
            entry = {"name": mname}
            if policy.name:  # omitted for the embedded policy (deckhouse ModuleConfig's update settings)
                entry["policy"] = policy.name
            mod = self._ensure_external_module(mname, name, policy.channel)
            if self.mpo(mname) is not None:
                entry["overridden"] = True
                prev = next((x for x in st.get("modules") or [] if x.get("name") == mname), {})
                for k in ("version", "checksum"):
                    if prev.get(k):
                        entry[k] = prev[k]
                entries.append(entry)
                continue
            active = (self.module_enabled(mname) and self.mc_enabled(mname) is True
                      and self.chosen_source(mname, mod) == name)
            if meta.get("error"):
                entry["version"] = "unknown"
                if active:
                    entry["error"] = meta["error"]
                    errors = True
                entries.append(entry)
                continue
            target = self.cat.channel_version(repo, mname, policy.channel)
            if target:
                entry["version"] = "v" + target
                entry["checksum"] = Catalogue.digest(repo, mname, target)
            if active and target:
                self._ensure_releases(mname, name, ms, repo, Version.parse(target), policy, meta)
            entries.append(entry)
        status = {"phase": "Active", "syncTime": now_rfc3339(), "modules": entries, "modulesCount": len(entries),
                  "message": c.MSG_PULL_ERRORS if errors else ""}
        self.w_patch(MODULE_SOURCE, name, {"status": status}, status=True)
        fins = md(ms).get("finalizers") or []
        if c.MS_FINALIZER_MODULE not in fins:
            self.w_patch(MODULE_SOURCE, name, {"metadata": {"finalizers": fins + [c.MS_FINALIZER_MODULE],
                                                            "resourceVersion": md(ms).get("resourceVersion")}})

    def _ensure_releases(self, module: str, source: str, ms: dict, repo: str, target: Version,
                         policy: rel.Policy, meta: dict) -> None:
        mod = self.c(MODULE).get(module) or {}
        existing = {md(r)["name"]: r for r in self.module_releases(module)}
        cur = (mod.get("properties") or {}).get("version")
        dep = self.deployed_release(module)
        current = rel.release_version(dep) if dep is not None else Version.try_parse(cur) if cur else None
        if current is not None and not target > current:
            return
        created = False
        for v in rel.new_versions(self.cat.versions(repo, module), current, target):
            rname = f"{module}-v{v}"
            if rname in existing:
                continue
            digest = Catalogue.digest(repo, module, str(v))
            obj = {
                "metadata": {
                    "name": rname,
                    "annotations": {c.ANN_CHANGE_CAUSE: "check release"},
                    "labels": {c.L_MODULE: module, c.L_SOURCE: source,
                               c.L_CHECKSUM: hashlib.md5(digest.encode()).hexdigest(),
                               c.L_UPDATE_POLICY: policy.name},
                    "ownerReferences": [{"apiVersion": MODULE_SOURCE.api_version, "kind": "ModuleSource",
                                         "name": source, "uid": md(ms).get("uid"), "controller": True}],
                },
                "spec": {"moduleName": module, "version": str(v), "weight": meta.get("weight", 900)},
            }
            if not existing and not created:
                # the first release of a module is installed at once (module_release_fetcher.go)
                obj["metadata"]["annotations"][c.ANN_APPLY_NOW] = "true"
            if self.w_create(MODULE_RELEASE, obj) is not None:
                created = True
        if created and (mod.get("status") or {}).get("phase") in ("Available", "Conflict"):
            st = copy.deepcopy(mod.get("status") or {})
            conds = st.get("conditions") or []
            set_module_condition(conds, c.C_IS_READY, "False", c.R_DOWNLOADING, c.M_DOWNLOADING)
            self.w_patch(MODULE, module, {"status": {"phase": "Downloading", "conditions": conds}}, status=True)

    # ---------------------------------------------------------------- releases
    def r_releases(self) -> None:
        by_module: dict[str, list[dict]] = {}
        for r in self.c(MODULE_RELEASE).list():
            by_module.setdefault((r.get("spec") or {}).get("moduleName") or labels(r).get(c.L_MODULE) or "",
                                 []).append(r)
        for module, rels in by_module.items():
            for r in sorted(rels, key=rel.release_version):
                r = self.c(MODULE_RELEASE).get(md(r)["name"]) or r
                try:
                    self._reconcile_release(module, r)
                except ApiError as e:
                    log.warning("release %s: %s", md(r).get("name"), e)

    def _reconcile_release(self, module: str, r: dict) -> None:
        name = md(r)["name"]
        if deleting(r):
            if rel.release_phase(r) != "Terminating":
                self.w_patch(MODULE_RELEASE, name, {"status": {"phase": "Terminating"}}, status=True)
            fins = md(r).get("finalizers") or []
            if any(f in fins for f in RELEASE_FINALIZERS):
                if rel.release_phase(r) == "Deployed":
                    self.module_rerun[module] = "Reconciling"
                self.w_patch(MODULE_RELEASE, name, {"metadata": {
                    "finalizers": [f for f in fins if f not in RELEASE_FINALIZERS] or None}})
            return
        if c.L_MODULE not in labels(r):
            self.w_patch(MODULE_RELEASE, name, {"metadata": {"labels": {c.L_MODULE: module}}})
            return
        phase = rel.release_phase(r)
        if phase == "":
            self.w_patch(MODULE_RELEASE, name, {"status": {"phase": "Pending", "transitionTime": now_rfc3339()}},
                         status=True)
            return
        if phase in ("Superseded", "Suspended", "Skipped"):
            if labels(r).get(c.L_STATUS) != phase.lower():
                self.w_patch(MODULE_RELEASE, name, {"metadata": {"labels": {c.L_STATUS: phase.lower()}}})
            return
        if phase == "Deployed":
            self._handle_deployed(module, r)
            return
        if phase == "Pending":
            self._handle_pending(module, r)

    def _handle_deployed(self, module: str, r: dict) -> None:
        name = md(r)["name"]
        a = anns(r)
        if rel.is_true(a.get(c.ANN_REINSTALL)):
            if not self.step_ready(("reinstall", name)):
                return
            self.w_patch(MODULE_RELEASE, name, {"metadata": {"annotations": {
                c.ANN_REINSTALL: None, c.ANN_APPLY_NOW: None, c.ANN_FORCE: None,
                c.ANN_IS_UPDATING: "true", c.ANN_NOTIFIED: "true"}}})
            self.module_rerun[module] = "Installing"
            self.enqueue("ModuleRun", MAIN, module)
            self.self_restart(f"reinstall of {name}")
            return
        meta_patch: dict = {}
        if c.ANN_REGISTRY_SPEC_CHANGED in a and self.step_ready(("registry-spec-changed", name)):
            # the module is pulled again from the new registry, then the mark goes
            meta_patch.setdefault("annotations", {})[c.ANN_REGISTRY_SPEC_CHANGED] = None
            self.module_rerun[module] = "Reconciling"
        fins = md(r).get("finalizers") or []
        missing = [f for f in RELEASE_FINALIZERS if f not in fins]
        if missing:
            meta_patch["finalizers"] = fins + missing
            meta_patch["resourceVersion"] = md(r).get("resourceVersion")
        if labels(r).get(c.L_STATUS) != "deployed":
            meta_patch.setdefault("labels", {})[c.L_STATUS] = "deployed"
        mod = self.c(MODULE).get(module) or {}
        if a.get(c.ANN_IS_UPDATING) == "true" and (mod.get("status") or {}).get("phase") == "Ready" \
                and module not in self.module_rerun:
            meta_patch.setdefault("annotations", {})[c.ANN_IS_UPDATING] = "false"
        if meta_patch:
            self.w_patch(MODULE_RELEASE, name, {"metadata": meta_patch})
            return
        source = labels(r).get(c.L_SOURCE) or next((o.get("name") for o in md(r).get("ownerReferences") or []), "")
        ms = self.c(MODULE_SOURCE).get(source) if source else None
        if ms is not None and not deleting(ms) and c.MS_FINALIZER_RELEASE not in (md(ms).get("finalizers") or []):
            self.w_patch(MODULE_SOURCE, source, {"metadata": {
                "finalizers": (md(ms).get("finalizers") or []) + [c.MS_FINALIZER_RELEASE],
                "resourceVersion": md(ms).get("resourceVersion")}})
        outdated = sorted((x for x in self.module_releases(module)
                           if rel.release_phase(x) in ("Superseded", "Suspended", "Skipped") and not deleting(x)),
                          key=rel.release_version, reverse=True)
        for x in outdated[3:]:
            self.w_delete(MODULE_RELEASE, md(x)["name"])

    def _set_release_status(self, r: dict, phase: str, message: str, extra: dict | None = None) -> None:
        st = r.get("status") or {}
        want = {"phase": phase, "message": message}
        if extra:
            want.update(extra)
        if all(st.get(k) == v for k, v in want.items()):
            return
        if st.get("phase") != phase:
            want["transitionTime"] = now_rfc3339()
        self.w_patch(MODULE_RELEASE, md(r)["name"], {"status": want}, status=True)

    def _handle_pending(self, module: str, r: dict) -> None:
        name = md(r)["name"]
        over = self.mpo(module)
        if over is not None:
            return  # "module is overridden, skip release processing"
        if not self.module_enabled(module):
            return
        lbl = labels(r)
        if c.L_UPDATE_POLICY in lbl:
            policy = self.policy_by_name(lbl[c.L_UPDATE_POLICY])
            if policy is None:
                self._set_release_status(r, "Pending", f"Update policy {lbl[c.L_UPDATE_POLICY]} not found")
                self.schedule(time.monotonic() + 2)
                return
        else:
            policy = self.module_policy(module)
            if policy is None:
                self._set_release_status(r, "Pending", "Update policy not set. Create a suitable ModuleUpdatePolicy object")
                return
            self.w_patch(MODULE_RELEASE, name, {"metadata": {"labels": {c.L_UPDATE_POLICY: policy.name}}})
            self.w_patch(MODULE_RELEASE, name, {"status": {"message": ""}}, status=True)
            return
        a = anns(r)
        if policy.mode == "Manual":
            approved = rel.parse_bool(a.get(c.ANN_APPROVED, "false"))
            if (r.get("status") or {}).get("approved") != approved:
                r = self.w_patch(MODULE_RELEASE, name, {"status": {"approved": approved}}, status=True) or r
        releases = [x for x in self.module_releases(module) if not deleting(x)]
        task = rel.calculate_task(r, releases)
        if not rel.is_forced(r):
            if task.kind == "skip":
                self._set_release_status(r, "Skipped", task.message)
                return
            if task.kind == "await":
                self._set_release_status(r, "Pending", task.message)
                return
            delay = rel.deploy_delay(r, task, policy, utcnow())
            if delay is not None:
                self._set_release_status(r, "Pending", delay)
                want = {c.ANN_IS_UPDATING: "false", c.ANN_NOTIFIED: "true"}
                if any(a.get(k) != v for k, v in want.items()):
                    self.w_patch(MODULE_RELEASE, name, {"metadata": {"annotations": want}})
                self.schedule(time.monotonic() + 15)  # update windows open over time
                return
        # download, then deploy
        if not self.step_ready(("deploy", name)):
            return
        self._deploy_release(module, r, task)

    def _deploy_release(self, module: str, r: dict, task) -> None:
        name = md(r)["name"]
        dep = self.deployed_release(module)
        if dep is not None and md(dep)["name"] != name:
            self._set_release_status(dep, "Superseded", "")
            self.w_patch(MODULE_RELEASE, md(dep)["name"], {"metadata": {"labels": {c.L_STATUS: "superseded"}}})
        fins = md(r).get("finalizers") or []
        # released 1.74-1.76: notified "true"; of the two force keys only modules.deckhouse.io/force goes
        meta = {"annotations": {c.ANN_IS_UPDATING: "true", c.ANN_NOTIFIED: "true", c.ANN_APPLY_NOW: None,
                                c.ANN_FORCE: None, c.ANN_REINSTALL: None},
                "labels": {c.L_STATUS: "deployed"}}
        missing = [f for f in RELEASE_FINALIZERS if f not in fins]
        if missing:
            meta["finalizers"] = fins + missing
        self.w_patch(MODULE_RELEASE, name, {"metadata": meta})
        extra = None
        if self.f.release_size_and_duration:  # not written any more in 1.76
            extra = {"size": 1024 * (500 + hash(name) % 4000), "pullDuration": f"{self.step_delay:.3f}s"}
        self._set_release_status(r, "Deployed", "", extra)
        mod = self.c(MODULE).get(module) or {}
        if (mod.get("status") or {}).get("phase") == "Ready":
            self.module_rerun[module] = "Reconciling"
        self.enqueue("ModuleRun", MAIN, module)
        log.info("deployed %s", name)
        self.self_restart(f"deploy of {name}")

    # ---------------------------------------------------------------- module pull overrides
    def r_mpos(self) -> None:
        for o in self.c(MODULE_PULL_OVERRIDE).list():
            name = md(o)["name"]
            fins = md(o).get("finalizers") or []
            if deleting(o):
                if c.MPO_FINALIZER in fins:
                    spec = o.get("spec") or {}
                    if spec.get("rollback"):
                        self.module_rerun[name] = "Reconciling"
                    self.mpo_deployed.pop(name, None)
                    self._resync_module_sources(name)
                    self.w_patch(MODULE_PULL_OVERRIDE, name, {"metadata": {
                        "finalizers": [f for f in fins if f != c.MPO_FINALIZER] or None}})
                    mod = self.c(MODULE).get(name)
                    if mod is not None and not spec.get("rollback"):
                        # without rollback the overridden build stays until a release is deployed
                        pass
                continue
            if c.MPO_FINALIZER not in fins:
                self._resync_module_sources(name)
                self.w_patch(MODULE_PULL_OVERRIDE, name, {"metadata": {
                    "finalizers": fins + [c.MPO_FINALIZER], "resourceVersion": md(o).get("resourceVersion")}})
                continue
            self._reconcile_mpo(o)

    def _resync_module_sources(self, module: str) -> None:
        mod = self.c(MODULE).get(module)
        for src in ((mod or {}).get("properties") or {}).get("availableSources") or []:
            self.force_sync.add(src)

    def _mpo_status(self, o: dict, message: str, extra: dict | None = None) -> None:
        st = o.get("status") or {}
        want = {"message": message}
        if extra:
            want.update(extra)
        if all(st.get(k) == v for k, v in want.items()):
            return
        want.setdefault("updatedAt", now_rfc3339())
        self.w_patch(MODULE_PULL_OVERRIDE, md(o)["name"], {"status": want}, status=True)

    def _reconcile_mpo(self, o: dict) -> None:
        name = md(o)["name"]
        spec = o.get("spec") or {}
        mod = self.c(MODULE).get(name)
        if mod is None:
            self._mpo_status(o, c.MPO_NOT_FOUND)
            return
        props = mod.get("properties") or {}
        if props.get("source") == c.EMBEDDED or name in self.cat.embedded:
            self._mpo_status(o, c.MPO_EMBEDDED)
            return
        if not self.module_enabled(name):
            self._mpo_status(o, c.MPO_DISABLED)
            return
        source = props.get("source") or self.chosen_source(name, mod)
        if not source:
            self._mpo_status(o, c.MPO_NO_SOURCE)
            return
        repo = self.source_repo(source)
        if repo is None:
            self._mpo_status(o, c.MPO_SOURCE_NOT_FOUND)
            return
        tag = spec.get("imageTag") or ""
        st = o.get("status") or {}
        digest = self.cat.tag_digest(repo, name, tag)
        if st.get("imageDigest") == digest:
            # override/controller.go: the registry digest equals status.imageDigest -> message
            # Ready and return: no redeploy, updatedAt unchanged, a `renew` annotation stays
            self.mpo_deployed[name] = (tag, digest)
            if st.get("message") != c.MPO_READY:
                self.w_patch(MODULE_PULL_OVERRIDE, name, {"status": {"message": c.MPO_READY}}, status=True)
            self.schedule(time.monotonic() + max(1.0, parse_duration(spec.get("scanInterval"), 15.0)))
            return
        # a new digest (first pull, a new imageTag, or the tag moved): pull, deploy, restart
        if not self.step_ready(("mpo", name, tag, digest)):
            return
        status = {"message": c.MPO_READY, "imageDigest": digest, "updatedAt": now_rfc3339()}
        ann = {c.ANN_RENEW: None}
        if self.f.mpo_weight_and_deployed_on:  # 1.75; 1.76 writes neither
            status["weight"] = (self.registry_meta(name, source) or {}).get("weight", 900)
            ann[c.ANN_DEPLOYED_ON] = MASTERS[0]
        self.w_patch(MODULE_PULL_OVERRIDE, name, {"status": status}, status=True)
        self.w_patch(MODULE_PULL_OVERRIDE, name, {"metadata": {"annotations": ann}})
        self.mpo_deployed[name] = (tag, digest)
        if (mod.get("status") or {}).get("phase") == "Ready":
            self.module_rerun[name] = "Reconciling"
        self.enqueue("ModuleRun", MAIN, name)
        self.self_restart(f"ModulePullOverride {name} deployed {digest[:19]}")

    # ---------------------------------------------------------------- registry
    def _registry_secret_manifest(self, mode: str, target: str, h: str, conds: list[dict], p: dict) -> dict:
        return {
            "metadata": {"name": "registry-state", "namespace": c.NS,
                         "labels": {"app": "registry", "type": "registry-state", "heritage": "deckhouse",
                                    "module": "registry"},
                         "annotations": {c.ANN_REGISTRY_CONFIG_HASH: h}},
            "type": "registry/state",
            "data": self._registry_data(mode, target, h, conds, p),
        }

    def _registry_data(self, mode: str, target: str, h: str, conds: list[dict], p: dict) -> dict:
        return {"hash": b64(h), "mode": b64(mode), "target_mode": b64(target),
                "conditions": b64(regmod.dump_conditions(conds)),
                "state": b64(regmod.fake_state(mode, target, p, conds))}

    def _registry_config(self, settings: dict | None) -> int:
        """Render Secret d8-system/registry-config from ModuleConfig deckhouse and return its
        generation (bumped on every change of the rendered config)."""
        want = b64(json.dumps(settings or {}, sort_keys=True))
        sec = self.c(SECRET).get(c.REGISTRY_CONFIG_SECRET, c.NS)
        if sec is None:
            out = self.w_create(SECRET, {
                "metadata": {"name": c.REGISTRY_CONFIG_SECRET, "namespace": c.NS,
                             "labels": {"heritage": "deckhouse", "module": "registry"},
                             "annotations": {c.ANN_REGISTRY_CONFIG_GENERATION: "1"}},
                "data": {"config": want}})
            return 1 if out is not None else 0
        gen = self._secret_generation(sec)
        if (sec.get("data") or {}).get("config") != want:
            gen += 1
            self.w_patch(SECRET, c.REGISTRY_CONFIG_SECRET, {
                "metadata": {"annotations": {c.ANN_REGISTRY_CONFIG_GENERATION: str(gen)}},
                "data": {"config": want}}, c.NS)
        return gen

    @staticmethod
    def _secret_generation(sec: dict) -> int:
        try:
            return int(anns(sec).get(c.ANN_REGISTRY_CONFIG_GENERATION) or md(sec).get("generation") or 0)
        except ValueError:
            return 0

    def _registry_hash(self, p: dict) -> str:
        """registry-state hash: all orchestrator inputs (nodes, pods, ...), not only the settings,
        so it also moves on unrelated events (and on `registry-hash-bump`)."""
        nodes = sorted((md(n).get("name"), bool((n.get("spec") or {}).get("unschedulable")))
                       for n in self.c(NODE).list())
        nodes.append(("not-ready", tuple(self.nodes_not_ready())))
        pods = sorted(md(x).get("name") for x in self.leader_pods())
        return regmod.config_hash({"params": p, "nodes": nodes, "pods": pods, "salt": self.registry_salt})

    def r_registry(self) -> None:
        sec = self.c(SECRET).get("registry-state", c.NS)
        if not self.module_enabled(c.REGISTRY):
            if sec is not None and not deleting(sec):
                self.w_delete(SECRET, "registry-state", c.NS)
                self.c(SECRET).forget("registry-state", c.NS)
            return
        dmc = self.mc(c.DECKHOUSE) or {}
        settings = ((dmc.get("spec") or {}).get("settings") or {}).get("registry")
        p = regmod.params(settings)
        gen = self._registry_config(settings)
        h = self._registry_hash(p)
        if sec is None:
            p0 = regmod.params(None)
            conds = regmod.set_condition([], c.RC_READY, "True", "", "", gen)
            self.w_create(SECRET, self._registry_secret_manifest("Unmanaged", "Unmanaged", h, conds, p0))
            return
        data = sec.get("data") or {}
        mode = unb64(data.get("mode")) or "Unmanaged"
        target = unb64(data.get("target_mode")) or mode
        conds = regmod.load_conditions(unb64(data.get("conditions")))
        if p["mode"] != target:
            # a new target mode: the only event that clears the conditions
            target = p["mode"]
            self.enqueue("ModuleHookRun", "/modules/registry/orchestrator", "registry:orchestrator")
            err = regmod.transition_error(mode, target, p["configurable"])
            conds = []
            if err:
                conds = regmod.set_condition(conds, c.RC_ERR_TRANSITION, "True", c.RR_ERROR, err, gen)
                conds = regmod.set_condition(conds, c.RC_READY, "False", c.RR_PROCESSING,
                                             f"Transitioning to {target}", gen)
            self._write_registry(sec, mode, target, h, conds, p)
            return
        if regmod.condition(conds, c.RC_ERR_TRANSITION):
            return

        def done(ctype: str) -> bool:
            x = regmod.condition(conds, ctype) or {}
            return x.get("status") == "True" and int(x.get("observedGeneration") or 0) >= gen

        if mode == target and conds and all(done(x["type"]) or x.get("type") in self.holds for x in conds):
            # steady: a hold forces an existing condition False until it is released
            new = conds
            for x in conds:
                if x.get("type") in self.holds:
                    new = regmod.set_condition(new, x["type"], "False", c.RR_PROCESSING, self.holds[x["type"]], gen)
            if new != conds or anns(sec).get(c.ANN_REGISTRY_CONFIG_HASH) != h:
                self._write_registry(sec, mode, target, h, new, p)
            return
        seq = regmod.sequence(mode, target, p["configurable"])
        step = next((s for s in seq if not done(s)), None)
        masters = sorted(n for n in MASTERS)
        nodes = len(self.c(NODE).list()) or 5
        if step is None:
            held = self.holds.get(c.RC_READY)
            if held is not None:
                new = regmod.set_condition(conds, c.RC_READY, "False", c.RR_PROCESSING, held, gen)
                if new != conds:
                    self._write_registry(sec, mode, target, h, new, p)
                return
            if not self.step_ready(("registry", gen, target, "Ready")):
                return
            conds = regmod.set_condition(conds, c.RC_READY, "True", "", "", gen)
            self._write_registry(sec, target, target, h, conds, p)
            self.enqueue("ModuleRun", MAIN, "registry")
            return
        cur = regmod.condition(conds, step)
        if cur is None or cur.get("status") == "True":
            # start this step; one left True by an earlier generation (a same-mode parameter
            # change) stays stale for one more step first, as the orchestrator is that slow
            if cur is not None and not self.step_ready(("registry-stale", gen, target, step)):
                return
            conds = regmod.set_condition(conds, step, "False", c.RR_PROCESSING,
                                         regmod.processing_message(step, p, nodes, masters), gen)
            conds = regmod.set_condition(conds, c.RC_READY, "False", c.RR_PROCESSING, f"Transitioning to {target}", gen)
            self._write_registry(sec, mode, target, h, conds, p)
            return
        blocked = self._registry_blocked(step, p, nodes)
        if blocked is not None:
            new = regmod.set_condition(conds, step, "False", c.RR_PROCESSING, blocked, gen)
            if new != conds:
                self._write_registry(sec, mode, target, h, new, p)
            self.schedule(time.monotonic() + 1.0)
            return
        if not self.step_ready(("registry", gen, target, step)):
            return
        if step == c.RC_SWITCH:
            if self._deckhouse_registry_switch(p, target):
                self.self_restart(f"registry switch to {target}")
            else:
                self.blip_until = time.monotonic() + self.restart_duration / 2
        if step == c.RC_IMAGES:
            conds = regmod.set_condition(conds, step, "True", c.RR_READY,
                                         regmod.images_checked_message(p, masters), gen)
        else:
            conds = regmod.set_condition(conds, step, "True", "", "", gen)
        conds = regmod.set_condition(conds, c.RC_READY, "False", c.RR_PROCESSING, f"Transitioning to {target}", gen)
        self._write_registry(sec, mode, target, h, conds, p)

    def _registry_blocked(self, step: str, p: dict, nodes: int) -> str | None:
        if step in self.holds:
            return self.holds[step]
        if step == c.RC_IMAGES:
            if self.image_check_error == DEFAULT_IMAGE_ERROR:
                return regmod.images_error_message(p, sorted(MASTERS))
            if self.image_check_error:
                return self.image_check_error
            if p["mode"] == "Local" and not self.local_pushed:
                return regmod.local_waiting_message(sorted(MASTERS))
        if step in (c.RC_TRANSITION, c.RC_FINAL):
            bad = self.nodes_not_ready()
            if bad:
                stage = "transition" if step == c.RC_TRANSITION else "final"
                return (f"Waiting for nodes to apply the {stage} containerd configuration: "
                        f"{nodes - len(bad)}/{nodes} ready, not ready: {', '.join(bad)}")
        if step == c.RC_NODE_SERVICES:
            bad = self.nodes_not_ready(only_masters=True)
            if bad:
                return "Waiting for registry node services on master nodes: " + ", ".join(bad)
        return None

    def _write_registry(self, sec: dict, mode: str, target: str, h: str, conds: list[dict], p: dict) -> None:
        self.w_patch(SECRET, "registry-state", {
            "metadata": {"annotations": {c.ANN_REGISTRY_CONFIG_HASH: h}},
            "data": self._registry_data(mode, target, h, conds, p)}, c.NS)

    def _deckhouse_registry_switch(self, p: dict, target: str) -> bool:
        """Point Secret deckhouse-registry at the new registry; True when its data changed."""
        if target in ("Direct", "Proxy", "Local"):
            address, path = regmod.IN_CLUSTER_ADDRESS, "/system/deckhouse"
            scheme = "https"
        else:
            repo = p.get("imagesRepo") or regmod.DEFAULT_REPO
            address, _sep, rest = repo.partition("/")
            path = "/" + rest if rest else ""
            scheme = (p.get("scheme") or "HTTPS").lower()
        want = self._deckhouse_registry_secret(address, path, scheme)
        cur = self.c(SECRET).get("deckhouse-registry", c.NS)
        if cur is not None and (cur.get("data") or {}) == want["data"]:
            return False
        self.w_patch(SECRET, "deckhouse-registry", {"data": want["data"]}, c.NS)
        return True  # the deckhouse pod rolls: Deckhouse restarts

    # ================================================================ deckhouse restarts / debug API
    def deckhouse_down(self) -> bool:
        """True while Deckhouse restarts: webhooks refuse, debug API silent, controllers idle."""
        return time.monotonic() < self.restart_until

    def self_restart(self, reason: str) -> None:
        """deckhouse-controller re-execs after a release/override deploy or a registry switch
        (releaseWasProcessed -> SIGUSR2). restart_duration <= 0 turns this off."""
        if self.restart_duration <= 0:
            return
        log.info("Deckhouse restarts itself (%s) for %.1f s", reason, self.restart_duration)
        self.last_restart_reason = reason
        self.restart_deckhouse(self.restart_duration)

    def restart_deckhouse(self, duration: float | None = None, error: str = "drop") -> dict:
        """Replace the leader pod; meanwhile the debug API drops connections (or answers 503)."""
        if error not in ("drop", "503"):
            raise ValueError("error must be 'drop' or '503'")
        duration = self.restart_duration if duration is None else float(duration)
        self.restart_error = error
        now = time.monotonic()
        self.restart_until = now + duration
        self.leader_recreate_at = now + duration / 2
        old = [md(p)["name"] for p in self.leader_pods()]
        for name in old:
            try:
                self.kube.delete(POD, name, c.NS, grace=0)
            except ApiError as e:
                log.warning("delete leader pod %s: %s", name, e)
            self.c(POD).forget(name, c.NS)
        self.queue.clear()
        self.startup_fill_pending = True  # the new Deckhouse fills its queue when it starts
        self.restarts += 1
        self.schedule(self.leader_recreate_at)
        self.kick()
        return {"deleted": old, "restart_seconds": duration, "error": error}

    def debug_availability(self) -> str:
        now = time.monotonic()
        if now < self.restart_until:
            return self.restart_error
        if now < self.blip_until:
            return "drop"
        return "ok"

    def queue_dump(self, what: str, fmt: str, show_empty: bool) -> str:
        if what == "main":
            return self.queue.main_dump(fmt)
        return self.queue.list_dump(fmt, show_empty)

    def module_list_dump(self, fmt: str) -> str:
        enabled = sorted(m for m in self._all_module_names() if self.module_enabled(m)) + [c.GLOBAL]
        doc = {"enabledModules": sorted(set(enabled))}
        if fmt == "yaml":
            import yaml
            return yaml.safe_dump(doc, sort_keys=False)
        if fmt == "text":
            return "\n".join(doc["enabledModules"]) + "\n"
        return json.dumps(doc) + "\n"

    # ================================================================ admission
    def handle_admission(self, review: dict) -> dict:
        req = review.get("request") or {}
        op = req.get("operation", "")
        r = validation.review(op, req.get("object"), req.get("oldObject"), _Lookups(self))
        resp = {"uid": req.get("uid", ""), "allowed": r.allowed}
        if not r.allowed:
            resp["status"] = self._denial_status(r.message)
        if r.warnings:
            resp["warnings"] = r.warnings
        return {"apiVersion": review.get("apiVersion", "admission.k8s.io/v1"), "kind": "AdmissionReview",
                "response": resp}

    def _denial_status(self, message: str) -> dict:
        """1.76 remaps every ModuleConfig denial to 422 Invalid with one cause per line
        (response_remapper.go); 1.75 sends the plain denial (the apiserver makes it 403)."""
        if not self.f.webhook_422:
            return {"status": "Failure", "message": message}
        causes = [{"message": ln} for ln in message.splitlines() if ln.strip()] or [{"message": message}]
        return {"status": "Failure", "message": message, "reason": "Invalid", "code": 422,
                "details": {"causes": causes}}

    def handle_update_policy_admission(self, review: dict) -> dict:
        """update-policies webhook: a policy that a ModuleConfig names cannot be deleted."""
        req = review.get("request") or {}
        resp = {"uid": req.get("uid", ""), "allowed": True}
        if req.get("operation") == "DELETE":
            name = ((req.get("oldObject") or {}).get("metadata") or {}).get("name") or req.get("name", "")
            try:
                mcs = self.kube.list(MODULE_CONFIG, timeout=5)[0]
            except Exception:
                mcs = self.c(MODULE_CONFIG).list()
            users = sorted(md(m)["name"] for m in mcs if ((m.get("spec") or {}).get("updatePolicy") or "") == name)
            if users:
                resp["allowed"] = False
                resp["status"] = {"status": "Failure",
                                  "message": f"the '{name}' update policy is used by the '{users[0]}' module config"}
        return {"apiVersion": review.get("apiVersion", "admission.k8s.io/v1"), "kind": "AdmissionReview",
                "response": resp}

    # ================================================================ control API
    def control_state(self) -> dict:
        sec = self.c(SECRET).get("registry-state", c.NS) if self.inf else None
        return {
            "paused": self.paused,
            "step_delay": self.step_delay,
            "restart_duration": self.restart_duration,
            "cluster_type": self.cluster_type,
            "holds": dict(self.holds),
            "image_check_error": self.image_check_error,
            "local_images_pushed": self.local_pushed,
            "restarting": self.debug_availability() != "ok",
            "deckhouse_down": self.deckhouse_down(),
            "restarts": self.restarts,
            "last_restart_reason": self.last_restart_reason,
            "restart_seconds": self.restart_duration,
            "dkp_version": self.opts.dkp_version,
            "module_errors": {k: v[0] for k, v in self.module_errors.items()},
            "leader_pods": [md(p)["name"] for p in self.leader_pods()] if self.inf else [],
            "queue_tasks": self.queue.total(),
            "registry_mode": unb64(((sec or {}).get("data") or {}).get("mode")) if sec else None,
            "registry_target_mode": unb64(((sec or {}).get("data") or {}).get("target_mode")) if sec else None,
            "passes": self.passes,
            "pid": os.getpid(),
        }

    def control(self, verb: str, args: dict) -> dict:
        fn = getattr(self, "c_" + verb.replace("-", "_"), None)
        if fn is None:
            raise KeyError(verb)
        if verb in ("reset", "wait-idle", "state"):
            result = fn(**(args or {}))  # these manage the lock themselves
        else:
            with self.lock:  # never change what a reconcile pass is reading
                result = fn(**(args or {}))
        self.kick()
        return result if result is not None else {}

    def c_state(self) -> dict:
        return self.control_state()

    def c_pause(self) -> dict:
        with self.lock:
            self.paused = True
        return {"paused": True}

    def c_resume(self) -> dict:
        self.paused = False
        self.kick()
        return {"paused": False}

    def c_set_delay(self, step_delay: float | None = None, restart_duration: float | None = None) -> dict:
        if step_delay is not None:
            self.step_delay = float(step_delay)
        if restart_duration is not None:
            self.restart_duration = float(restart_duration)
        return {"step_delay": self.step_delay, "restart_duration": self.restart_duration}

    def c_hold_condition(self, type: str, message: str = "Held by the test harness") -> dict:  # noqa: A002
        if type not in c.REGISTRY_CONDITION_TYPES:
            raise ValueError(f"unknown registry condition type {type!r}")
        self.holds[type] = message
        return {"holds": dict(self.holds)}

    def c_release_condition(self, type: str | None = None) -> dict:  # noqa: A002
        if type is None:
            self.holds.clear()
        else:
            self.holds.pop(type, None)
        return {"holds": dict(self.holds)}

    def c_queue_add(self, description: str | None = None, type: str = "ModuleRun", queue: str = MAIN,  # noqa: A002
                    meta: str = "", fail: bool = False, error: str = "", failures: int = 0, hold: bool = False,
                    count: int = 1) -> dict:
        if description:
            parts = description.split(":", 2)
            type = parts[0]
            if len(parts) > 1:
                queue = parts[1]
            if len(parts) > 2:
                meta = parts[2]
        if error and not fail and not failures:
            fail = True
        if fail and failures == 0:
            failures = 1
        added = [self.queue.add(type, queue, meta, fail=fail, error=error, failures=failures, hold=hold).description
                 for _attempt in range(int(count))]
        return {"added": added, "total": self.queue.total()}

    def c_queue_clear(self) -> dict:
        self.queue.clear()
        return {"total": 0}

    def c_node_not_ready(self, name: str) -> dict:
        node = self.admin.get(NODE, name)
        if node is None:
            raise ValueError(f"node {name} not found")
        self.kube.patch(NODE, name, {"metadata": {"annotations": {"kwok.x-k8s.io/node": None}}})
        now = now_rfc3339()
        conds = [x for x in ((node.get("status") or {}).get("conditions") or []) if x.get("type") != "Ready"]
        conds.append({"type": "Ready", "status": "False", "reason": "KubeletNotReady",
                      "message": "container runtime network not ready (set by the DKP simulator)",
                      "lastHeartbeatTime": now, "lastTransitionTime": now})
        out = self.kube.patch(NODE, name, {"status": {"conditions": conds}}, status=True)
        self.c(NODE).upsert(out)
        return {"node": name, "ready": False}

    def c_node_cordon(self, name: str, unschedulable: bool = True) -> dict:
        out = self.kube.patch(NODE, name, {"spec": {"unschedulable": True if unschedulable else None}})
        self.c(NODE).upsert(out)
        return {"node": name, "unschedulable": bool(unschedulable)}

    def c_node_restore(self, name: str | None = None) -> dict:
        names = [name] if name else MASTERS + WORKERS
        for n in names:
            node = self.admin.get(NODE, n)
            if node is None:
                self.w_create(NODE, self._node_manifest(n))
                continue
            out = self.kube.patch(NODE, n, {"metadata": {"annotations": {"kwok.x-k8s.io/node": "fake"}},
                                            "spec": {"unschedulable": None}})
            self.c(NODE).upsert(out)
        return {"restored": names}

    def c_image_check_fail(self, message: str | None = None) -> dict:
        """The images check reports missing images: `message` as given, or by default the
        checker's own format (`Mode:` line, per-registry counts, `- source/image/error` items)."""
        self.image_check_error = message or DEFAULT_IMAGE_ERROR
        return {"image_check_error": self.image_check_error}

    def c_image_check_ok(self) -> dict:
        self.image_check_error = None
        return {"image_check_error": None}

    def c_local_images_pushed(self, pushed: bool = True) -> dict:
        self.local_pushed = bool(pushed)
        return {"local_images_pushed": self.local_pushed}

    def c_restart_deckhouse(self, duration: float | None = None, error: str = "drop") -> dict:
        with self.lock:
            return self.restart_deckhouse(duration, error)

    def c_cluster_type(self, type: str) -> dict:  # noqa: A002
        if type not in ("Static", "Cloud"):
            raise ValueError("cluster type must be Static or Cloud")
        self.cluster_type = type
        with self.lock:
            self.r_facts()
        return {"cluster_type": type}

    def c_add_release(self, module: str, version: str, source: str | None = None, repo: str | None = None,
                      channels: list[str] | None = None, channel: str | None = None) -> dict:
        if repo is None:
            src = source or c.DECKHOUSE_SOURCE
            repo = self.source_repo(src)
            if repo is None:
                raise ValueError(f"ModuleSource {src} not found")
        if channel and not channels:
            channels = [channel]
        self.cat.add_version(repo, module, version, channels)
        for ms in self.c(MODULE_SOURCE).list():
            if Catalogue.norm_repo(((ms.get("spec") or {}).get("registry") or {}).get("repo") or "") == \
                    Catalogue.norm_repo(repo):
                self.force_sync.add(md(ms)["name"])
        return {"repo": Catalogue.norm_repo(repo), "module": module, "version": str(Version.parse(version)),
                "channels": channels or list(c.RELEASE_CHANNELS)}

    def c_module_error(self, module: str, message: str = "hook failed", duration: float = 0,
                       clear: bool = False) -> dict:
        """Module `module` holds a last hook error: phase Error, IsReady=False reason HookError
        with `message`, for `duration` seconds (0 = until cleared with clear=true or
        module-error-clear). A failing ModuleRun task sits in the main queue meanwhile."""
        if clear:
            return self.c_module_error_clear(module)
        if self.c(MODULE).get(module) is None and module not in self.cat.embedded:
            raise ValueError(f"module {module} not found")
        duration = float(duration or 0)
        until = time.monotonic() + duration if duration > 0 else None
        self.module_errors[module] = (str(message), until)
        self.queue.add("ModuleRun", MAIN, module, fail=True, error=str(message), failures=1)
        return {"module": module, "message": message, "duration": duration}

    def c_module_error_clear(self, module: str | None = None) -> dict:
        names = [module] if module else list(self.module_errors)
        for n in names:
            self.module_errors.pop(n, None)
        # the failing task succeeds on its next try
        with self.queue.lock:
            for q in self.queue.queues.values():
                for t in q:
                    if t.fail and t.type == "ModuleRun" and (t.meta == module or (module is None and t.error)):
                        t.fail = False
        return {"cleared": names}

    def c_publish_digest(self, module: str, source: str | None = None, tag: str | None = None) -> dict:
        """Push a new image under `tag` of `module` in ModuleSource `source`'s registry: the tag
        moves to a new digest (a ModulePullOverride of that tag redeploys on its next check)."""
        src = source or (((self.c(MODULE).get(module) or {}).get("properties") or {}).get("source")) \
            or c.DECKHOUSE_SOURCE
        repo = self.source_repo(src)
        if repo is None:
            raise ValueError(f"ModuleSource {src} not found")
        if tag is None:
            tag = ((self.mpo(module) or {}).get("spec") or {}).get("imageTag")
        if not tag:
            raise ValueError("tag is required (no ModulePullOverride names one)")
        old = self.cat.tag_digest(repo, module, tag)
        new = self.cat.publish_digest(repo, module, tag, str(time.time_ns()))
        return {"module": module, "source": src, "tag": tag, "old_digest": old, "digest": new}

    def c_registry_hash_bump(self) -> dict:
        """An unrelated orchestrator input changed (a pod, a node): registry-state `hash` moves
        although nothing about the registry did."""
        self.registry_salt += 1
        return {"salt": self.registry_salt}

    def c_restart_seconds(self, seconds: float) -> dict:
        """How long each Deckhouse self-restart lasts from now on (0 = no restarts); kept by reset."""
        self.restart_duration = float(seconds)
        self.opts.restart_duration = self.restart_duration
        return {"restart_seconds": self.restart_duration}

    def c_sync_sources(self) -> dict:
        names = [md(ms)["name"] for ms in self.c(MODULE_SOURCE).list()]
        self.force_sync.update(names)
        return {"sources": names}

    def c_wait_idle(self, timeout: float = 10.0) -> dict:
        self.wait_passes(2, timeout)
        return {"passes": self.passes}

    # ---------------------------------------------------------------- reset
    def c_reset(self, timeout: float = 60.0) -> dict:
        """Back to the state of a fresh simulator (test isolation)."""
        with self.lock:
            self.paused = True
            self.restart_until = 0.0  # Deckhouse is up: its webhooks answer the reset's writes
            self.blip_until = 0.0
            try:
                old_state = self.c(SECRET).get("registry-state", c.NS)
                self._reset_cluster(timeout)
                self._init_state()
                self.paused = True
                self.cat.reset()
                self._wait_caches(timeout, md(old_state).get("uid") if old_state else None)
                for obj in self.c(MODULE_CONFIG).list():
                    self.mc_generations[md(obj)["name"]] = md(obj).get("generation") or 0
                self.started = True
                for _attempt in range(3):
                    self.reconcile()
            finally:
                self.paused = False
        self.wait_passes(2, 10)
        self.queue.clear()
        return {"reset": True}

    def _clear_finalizers(self, res, name: str, ns: str | None = None) -> None:
        try:
            self.kube.patch(res, name, {"metadata": {"finalizers": None}}, ns)
        except ApiError as e:
            if e.status not in (404, 409, 422):
                raise

    def _delete_all(self, res, keep=()) -> list[str]:
        items = self.kube.list(res)[0]
        names = []
        for it in items:
            name = md(it)["name"]
            if name in keep:
                continue
            names.append(name)
            try:
                self.kube.delete(res, name)
            except ApiError as e:
                log.warning("reset: delete %s/%s: %s", res.plural, name, e)
            self._clear_finalizers(res, name)
        return names

    def _reset_cluster(self, timeout: float) -> None:
        self._delete_all(MODULE_PULL_OVERRIDE)
        self._wait_gone(MODULE_PULL_OVERRIDE, timeout)
        self._delete_all(MODULE_RELEASE)
        # ModuleConfigs: restore global and deckhouse first. The registry VAP reads the cluster
        # facts, so make them permissive while spec.settings.registry is put back.
        try:
            self.kube.patch(CONFIG_MAP, c.CLUSTER_FACTS, {"data": {
                "registryModuleEnabled": "true", "clusterBootstrapped": "true", "clusterType": "Static",
                "registryMode": None}}, c.NS)
        except ApiError as e:
            log.warning("reset: cluster facts: %s", e)
        for name, spec in ((c.GLOBAL, {"version": 2, "settings": copy.deepcopy(INITIAL_GLOBAL_SETTINGS)}),
                           (c.DECKHOUSE, {"enabled": True, "version": 1,
                                          "settings": copy.deepcopy(INITIAL_DECKHOUSE_SETTINGS)})):
            end = time.monotonic() + 15
            while True:
                cur = self.kube.get(MODULE_CONFIG, name)
                try:
                    if cur is None:
                        self.kube.create(MODULE_CONFIG, {"metadata": {"name": name}, "spec": spec})
                    elif cur.get("spec") != spec or c.ANN_ALLOW_DISABLING in anns(cur):
                        cur["spec"] = spec
                        a = md(cur).get("annotations") or {}
                        a.pop(c.ANN_ALLOW_DISABLING, None)
                        cur["metadata"]["annotations"] = a
                        self.kube.replace(MODULE_CONFIG, cur)
                    break
                except ApiError as e:
                    if time.monotonic() > end:
                        log.warning("reset: restore ModuleConfig %s: %s", name, e)
                        break
                    time.sleep(0.2)
        keep_mcs = {c.GLOBAL, c.DECKHOUSE} | ({c.REGISTRY} if self.opts.registry_enabled else set())
        mcs = self.kube.list(MODULE_CONFIG)[0]
        for mc in mcs:
            name = md(mc)["name"]
            if name in keep_mcs:
                if name == c.REGISTRY:
                    mc["spec"] = {"enabled": True}
                    try:
                        self.kube.replace(MODULE_CONFIG, mc)
                    except ApiError as e:
                        log.warning("reset: restore ModuleConfig registry: %s", e)
                continue
            if c.ANN_ALLOW_DISABLING not in anns(mc):
                try:
                    self.kube.patch(MODULE_CONFIG, name, {"metadata": {"annotations": {c.ANN_ALLOW_DISABLING: "true"}}})
                except ApiError as e:
                    log.warning("reset: annotate ModuleConfig %s: %s", name, e)
            try:
                self.kube.delete(MODULE_CONFIG, name)
            except ApiError as e:
                log.warning("reset: delete ModuleConfig %s: %s", name, e)
            self._clear_finalizers(MODULE_CONFIG, name)
        # the update-policies webhook refuses deleting a policy that a ModuleConfig still names
        self._wait_gone(MODULE_CONFIG, timeout, keep=tuple(keep_mcs))
        self._delete_all(MODULE_UPDATE_POLICY)
        self._delete_all(MODULE_SOURCE, keep=(c.DECKHOUSE_SOURCE,))
        ms = self.kube.get(MODULE_SOURCE, c.DECKHOUSE_SOURCE)
        if ms is not None:
            ms["spec"] = {"registry": {"repo": DECKHOUSE_REPO, "scheme": "HTTPS",
                                       "dockerCfg": b64(json.dumps({"auths": {"registry.deckhouse.io": {
                                           "auth": b64("license-token:" + FAKE_LICENSE)}}}))}}
            try:
                self.kube.replace(MODULE_SOURCE, ms)
            except ApiError as e:
                log.warning("reset: restore ModuleSource deckhouse: %s", e)
        mods = self.kube.list(MODULE)[0]
        for m in mods:
            name = md(m)["name"]
            if name in self.cat.embedded:
                continue
            self.kube.delete(MODULE, name)
            self._clear_finalizers(MODULE, name)
        self.kube.delete(SECRET, "registry-state", c.NS)
        want = self._deckhouse_registry_secret("registry.deckhouse.io", "/deckhouse/ce", "https")
        try:
            self.kube.patch(SECRET, "deckhouse-registry", {"data": want["data"]}, c.NS)
        except ApiError:
            pass
        for n in MASTERS + WORKERS:
            node = self.admin.get(NODE, n)
            if node is None:
                self.kube.create(NODE, self._node_manifest(n))
            else:
                self.kube.patch(NODE, n, {"metadata": {"annotations": {"kwok.x-k8s.io/node": "fake"}},
                                          "spec": {"unschedulable": None}})
        if self.opts.registry_enabled and self.kube.get(MODULE_CONFIG, c.REGISTRY) is None:
            self.kube.create(MODULE_CONFIG, {"metadata": {"name": c.REGISTRY}, "spec": {"enabled": True}})
        self._wait_gone(MODULE_CONFIG, timeout, keep=tuple(keep_mcs))
        for name in self.cat.embedded:
            self.mc_generations.pop(name, None)
        self.cluster_type = self.opts.cluster_type
        # embedded modules back to their bundle state (written after the ModuleConfigs are gone)
        for name in self.cat.embedded:
            try:
                self.kube.patch(MODULE, name, {"properties": self._embedded_properties(name)})
                st = self._initial_embedded_status(name)
                self.kube.patch(MODULE, name, {"status": st}, status=True)
            except ApiError as e:
                if e.status == 404:
                    self._create_embedded_module(name)

    def _wait_gone(self, res, timeout: float, keep=()) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            items = self.kube.list(res)[0]
            left = [md(i)["name"] for i in items if md(i)["name"] not in keep]
            if not left:
                return
            for n in left:
                self._clear_finalizers(res, n)
            time.sleep(0.1)
        log.warning("reset: %s still present after %.0fs", res.plural, timeout)

    def _wait_caches(self, timeout: float, old_state_uid: str | None) -> None:
        keep_mcs = {c.GLOBAL, c.DECKHOUSE} | ({c.REGISTRY} if self.opts.registry_enabled else set())
        end = time.monotonic() + min(timeout, 15)
        while time.monotonic() < end:
            sec = self.c(SECRET).get("registry-state", c.NS)
            ok = (not self.c(MODULE_PULL_OVERRIDE).list() and not self.c(MODULE_RELEASE).list()
                  and not self.c(MODULE_UPDATE_POLICY).list()
                  and all(md(m)["name"] in keep_mcs for m in self.c(MODULE_CONFIG).list())
                  and all(md(s)["name"] == c.DECKHOUSE_SOURCE for s in self.c(MODULE_SOURCE).list())
                  and all(md(m)["name"] in self.cat.embedded for m in self.c(MODULE).list())
                  and (sec is None or (old_state_uid is not None and md(sec).get("uid") != old_state_uid)))
            if ok:
                return
            time.sleep(0.05)
        log.warning("reset: caches did not settle: mpo=%s mr=%s mup=%s mc=%s ms=%s mod=%s sec=%s",
                    [md(x)["name"] for x in self.c(MODULE_PULL_OVERRIDE).list()],
                    [md(x)["name"] for x in self.c(MODULE_RELEASE).list()],
                    [md(x)["name"] for x in self.c(MODULE_UPDATE_POLICY).list()],
                    [md(x)["name"] for x in self.c(MODULE_CONFIG).list()],
                    [md(x)["name"] for x in self.c(MODULE_SOURCE).list()],
                    [md(x)["name"] for x in self.c(MODULE).list()], sec is not None)


class _Lookups(validation.Lookups):
    def __init__(self, sim: Simulator):
        self.sim = sim

    def get_module(self, name):
        try:
            return self.sim.kube.get(MODULE, name, timeout=5)
        except Exception:
            return self.sim.c(MODULE).get(name)

    def policy_exists(self, name):
        try:
            return self.sim.kube.get(MODULE_UPDATE_POLICY, name, timeout=5) is not None
        except Exception:
            return self.sim.c(MODULE_UPDATE_POLICY).get(name) is not None

    def mpo_exists(self, name):
        try:
            return self.sim.kube.get(MODULE_PULL_OVERRIDE, name, timeout=5) is not None
        except Exception:
            return self.sim.c(MODULE_PULL_OVERRIDE).get(name) is not None

    def storage_module(self, name):
        return self.sim.storage_module(name)

    def is_module_enabled(self, name):
        return self.sim.module_enabled(name)

    def allow_experimental(self):
        try:
            dmc = self.sim.kube.get(MODULE_CONFIG, c.DECKHOUSE, timeout=5)
        except Exception:
            dmc = self.sim.mc(c.DECKHOUSE)
        return (((dmc or {}).get("spec") or {}).get("settings") or {}).get("allowExperimentalModules") is True

    def validate(self, name, spec):
        known = name == c.GLOBAL or name in self.sim.cat.embedded or self.sim.c(MODULE).get(name) is not None
        if not known:
            return validation.Result()
        return validation.validate_config(name, spec, self.sim.cat.config_versions(name),
                                          self.sim.cat.settings_schema(name))

    def exclusive_group_members(self, group):
        out = [n for n, d in self.sim.cat.embedded.items() if d.get("exclusiveGroup") == group]
        return out

    def bundle_enabled(self, name):
        return bool((self.sim.cat.embedded.get(name) or {}).get("enabledByDefault"))

    def parent_of(self, name):
        meta = self.sim.cat.embedded.get(name) or self.sim.cat.any_registry_meta(name) or {}
        return meta.get("parent") or ""

    def module_deployed(self, name):
        if not self.sim.module_enabled(name):
            return False
        if name in self.sim.cat.embedded:
            return True
        return self.sim.deployed_release(name) is not None or self.sim.mpo(name) is not None
