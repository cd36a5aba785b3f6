"""ModuleUpdatePolicy lookups: the policy of a module (embedded policy or a named one).

A mixin of ``controller.Simulator`` (it uses the simulator's informers, writers and
state through ``self``)."""

from __future__ import annotations


from . import releases as rel
from .kube import MODULE_UPDATE_POLICY


class UpdatePoliciesMixin:
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
