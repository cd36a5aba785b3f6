"""ModuleConfig reconciler: status, finalizers, queue tasks on changes.

A mixin of ``controller.Simulator`` (it uses the simulator's informers, writers and
state through ``self``)."""

from __future__ import annotations


from . import consts as c
from . import releases as rel
from . import validation
from .common import anns, deleting, md
from .kube import MODULE, MODULE_CONFIG, MODULE_RELEASE


class ConfigsMixin:
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
