"""`reset`: back to a fresh simulator and cluster (test isolation).

A mixin of ``controller.Simulator`` (it uses the simulator's informers, writers and
state through ``self``)."""

from __future__ import annotations

import copy
import json
import time
import logging

from . import consts as c
from .common import (DECKHOUSE_REPO, FAKE_LICENSE, INITIAL_DECKHOUSE_SETTINGS, INITIAL_GLOBAL_SETTINGS,
                     MASTERS, WORKERS, anns, b64, md)
from .kube import (LEASE, ApiError, CONFIG_MAP, MODULE, MODULE_CONFIG, MODULE_PULL_OVERRIDE, MODULE_RELEASE,
                   MODULE_SOURCE, MODULE_UPDATE_POLICY, NODE, SECRET)

log = logging.getLogger("simulator")


class ResetMixin:
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
        # a fresh cluster holds no runbook run lock (deckhouse.platform.run_lock Leases)
        try:
            for lease in self.admin.list(LEASE, c.NS)[0]:
                if md(lease)["name"].startswith("deckhouse-platform-"):
                    self.admin.delete(LEASE, md(lease)["name"], c.NS)
        except ApiError as e:
            log.warning("reset: run lock leases: %s", e)
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
