"""ModuleRelease reconciler: Pending decisions, deploy, reinstall, Superseded.

A mixin of ``controller.Simulator`` (it uses the simulator's informers, writers and
state through ``self``)."""

from __future__ import annotations

import time
import logging

from . import consts as c
from . import releases as rel
from .common import RELEASE_FINALIZERS, anns, deleting, labels, md, now_rfc3339, utcnow
from .kube import ApiError, MODULE, MODULE_RELEASE, MODULE_SOURCE
from .taskqueue import MAIN

log = logging.getLogger("simulator")


class ReleasesMixin:
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
