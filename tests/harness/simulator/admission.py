"""The module-configs and update-policies admission webhooks.

A mixin of ``controller.Simulator`` (it uses the simulator's informers, writers and
state through ``self``)."""

from __future__ import annotations


from . import consts as c
from . import validation
from .common import md
from .kube import MODULE, MODULE_CONFIG, MODULE_PULL_OVERRIDE, MODULE_UPDATE_POLICY


class AdmissionMixin:
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


class _Lookups(validation.Lookups):
    def __init__(self, sim):
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
