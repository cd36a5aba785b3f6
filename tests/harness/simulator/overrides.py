"""ModulePullOverride reconciler: digests, renew, deploy.

A mixin of ``controller.Simulator`` (it uses the simulator's informers, writers and
state through ``self``)."""

from __future__ import annotations

import time

from . import consts as c
from .common import MASTERS, anns, deleting, md, now_rfc3339, parse_duration
from .kube import MODULE, MODULE_PULL_OVERRIDE
from .taskqueue import MAIN


class OverridesMixin:
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

    def _mpo_registry_digest(self, o: dict, repo: str, tag: str) -> str:
        """The digest of `tag` as the controller last read it. It reads the registry only when
        it reconciles: on a change of the object (spec, `renew`, status) or every scanInterval
        (default 15 s); a tag moved in between goes unseen until then."""
        name = md(o)["name"]
        key = (md(o).get("generation"), anns(o).get(c.ANN_RENEW), (o.get("status") or {}).get("imageDigest"), tag)
        interval = max(1.0, parse_duration((o.get("spec") or {}).get("scanInterval"), 15.0))
        now = time.monotonic()
        seen = self.mpo_checks.get(name)
        if seen is None or seen[0] != key or now - seen[1] >= interval:
            seen = self.mpo_checks[name] = (key, now, self.cat.tag_digest(repo, name, tag))
        self.schedule(seen[1] + interval)
        return seen[2]

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
        digest = self._mpo_registry_digest(o, repo, tag)
        if st.get("imageDigest") == digest:
            # override/controller.go: the registry digest equals status.imageDigest -> message
            # Ready and return: no redeploy, updatedAt unchanged, a `renew` annotation stays
            self.mpo_deployed[name] = (tag, digest)
            if st.get("message") != c.MPO_READY:
                self.w_patch(MODULE_PULL_OVERRIDE, name, {"status": {"message": c.MPO_READY}}, status=True)
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
