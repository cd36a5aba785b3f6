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
import json
import logging
import os
import random
import threading
import time

from . import consts as c
from . import releases as rel
from .catalogue import Catalogue
from harness import versions
from .kube import (CLUSTER_ROLE_BINDING, CONFIG_MAP, MODULE, MODULE_CONFIG, MODULE_PULL_OVERRIDE,
                   MODULE_RELEASE, MODULE_SOURCE, MODULE_UPDATE_POLICY, NAMESPACE, NODE, POD, SECRET,
                   SERVICE, SERVICE_ACCOUNT, VALIDATING_WEBHOOK, ApiError, Informer, Kube)
from .taskqueue import QueueSet
from .server import DebugServer, WebhookServer
from .queue_restart import QueueRestartMixin
from .configs import ConfigsMixin
from .modules import ModulesMixin
from .sources import SourcesMixin
from .release_reconciler import ReleasesMixin
from .overrides import OverridesMixin
from .update_policies import UpdatePoliciesMixin
from .registry_reconciler import RegistryMixin
from .admission import AdmissionMixin
from .verbs import VerbsMixin
from .reset import ResetMixin
from .common import (DECKHOUSE_REPO, FAKE_LICENSE, INITIAL_DECKHOUSE_SETTINGS, INITIAL_GLOBAL_SETTINGS, MASTERS,
                     WORKERS, b64, deleting, labels, md, unb64)

log = logging.getLogger("simulator")


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


class Simulator(ConfigsMixin, ModulesMixin, SourcesMixin, ReleasesMixin, OverridesMixin, UpdatePoliciesMixin,
                RegistryMixin, QueueRestartMixin, AdmissionMixin, VerbsMixin, ResetMixin):
    """The simulator: lifecycle, plumbing, bootstrap and model helpers here; one mixin per
    reconciled kind or concern (see the imports)."""

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
        # MPO name -> (object key, monotonic time, digest): what its last registry check saw
        self.mpo_checks: dict[str, tuple] = {}
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

    # ---------------------------------------------------------------- module names
    def _all_module_names(self) -> list[str]:
        names = set(self.cat.embedded)
        names.update(md(m).get("name") for m in self.c(MODULE).list())
        return sorted(n for n in names if n)
