"""Module reconciler: properties, phases and conditions of embedded and source modules.

A mixin of ``controller.Simulator`` (it uses the simulator's informers, writers and
state through ``self``)."""

from __future__ import annotations

import copy
import time

from . import consts as c
from . import releases as rel
from .common import deleting, set_module_condition, strip_times
from .kube import MODULE
from .taskqueue import MAIN


class ModulesMixin:
    @staticmethod
    def _module_condition(mod: dict, ctype: str) -> str | None:
        for x in ((mod.get("status") or {}).get("conditions") or []):
            if x.get("type") == ctype:
                return x.get("status")
        return None

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
