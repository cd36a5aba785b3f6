"""ModuleSource reconciler: registry scans, status.modules, releases of active modules.

A mixin of ``controller.Simulator`` (it uses the simulator's informers, writers and
state through ``self``)."""

from __future__ import annotations

import copy
import hashlib
import json
import time

from . import consts as c
from . import releases as rel
from .catalogue import Catalogue
from .common import anns, deleting, labels, md, now_rfc3339, parse_duration, set_module_condition
from .kube import MODULE, MODULE_RELEASE, MODULE_SOURCE
from .semver import Version


class SourcesMixin:
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
