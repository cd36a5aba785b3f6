"""The registry orchestrator: registry-config, registry-state, the switch steps.

A mixin of ``controller.Simulator`` (it uses the simulator's informers, writers and
state through ``self``)."""

from __future__ import annotations

import json
import time

from . import consts as c
from . import registry as regmod
from .common import DEFAULT_IMAGE_ERROR, MASTERS, anns, b64, deleting, md, unb64
from .kube import NODE, SECRET
from .taskqueue import MAIN


class RegistryMixin:
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
