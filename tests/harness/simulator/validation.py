"""ModuleConfig validation: the configtools validator, the status it yields and the
admission webhook's decision (dkp-spec.md §1.1). Pure functions; lookups are injected."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import consts

GO_TYPE = {str: "string", bool: "boolean", int: "integer", float: "number", dict: "object", list: "array"}


def values_key(name: str) -> str:
    """cert-manager -> certManager (addon-operator's ModuleNameToValuesKey)."""
    if name == consts.GLOBAL:
        return name
    parts = re.split(r"[-_]", name)
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def _type_of(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return GO_TYPE.get(type(value), "null" if value is None else type(value).__name__)


def _go_value(value) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def check_schema(schema: dict | None, value, path: str) -> list[str]:
    """A small subset of OpenAPI validation with go-openapi style messages."""
    if not schema:
        return []
    errs: list[str] = []
    want = schema.get("type")
    got = _type_of(value)
    if want:
        ok = got == want or (want == "number" and got == "integer")
        if not ok:
            return [f"{path} in body must be of type {want}: {_go_value(value) if got != 'object' else got}"]
    if "enum" in schema and value not in schema["enum"]:
        errs.append(f"{path} in body should be one of [{' '.join(str(v) for v in schema['enum'])}]")
    if "minimum" in schema and isinstance(value, (int, float)) and not isinstance(value, bool) \
            and value < schema["minimum"]:
        errs.append(f"{path} in body should be greater than or equal to {schema['minimum']}")
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for k, v in value.items():
            if k in props:
                errs.extend(check_schema(props[k], v, f"{path}.{k}"))
            elif schema.get("additionalProperties") is False:
                errs.append(f"{path}.{k} is a forbidden property")
    if isinstance(value, list) and schema.get("items"):
        for i, item in enumerate(value):
            errs.extend(check_schema(schema["items"], item, f"{path}[{i}]"))
    return errs


def multierror(errs: list[str]) -> str:
    """hashicorp/go-multierror text after configtools' cleanupMultilineError (lines joined)."""
    n = len(errs)
    head = "1 error occurred:" if n == 1 else f"{n} errors occurred:"
    return " ".join([head] + [f"* {e}" for e in errs])


@dataclass
class Result:
    error: str = ""
    warning: str = ""


def _int_version(spec: dict) -> int:
    v = spec.get("version")
    if v is None or isinstance(v, bool):
        return 0
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def settings_of(spec: dict):
    """spec.settings, with `settings: {}` counting as no settings (released webhook)."""
    settings = spec.get("settings")
    return None if settings == {} else settings


def has_settings(spec: dict) -> bool:
    return settings_of(spec) is not None


def validate_config(name: str, spec: dict, versions: list[int], schema: dict | None) -> Result:
    """go_lib/configtools: validateCR + settings validation (skipped when enabled is false)."""
    res = Result()
    version = _int_version(spec)
    settings = settings_of(spec)
    if version == 0:
        if settings is not None:
            res.error = "spec.version is required when spec.settings are specified"
        return res
    if settings is None:
        res.warning = ("spec.version has no effect without spec.settings, "
                       "defaults from the latest version of settings schema will be applied")
    latest = max(versions) if versions else 1
    if version not in versions:
        prev = ", ".join(str(v) for v in sorted(versions) if v != latest)
        msg = f"spec.version={version} is unsupported. Use latest version {latest}"
        if prev:
            msg += f", or one of previous versions: {prev}"
        if settings is not None:
            res.error = msg
        else:
            res.warning = msg
        return res
    if version != latest:
        res.warning = f"spec.version={version} is obsolete. Please migrate spec.settings to the latest version {latest}"
    if spec.get("enabled") is False:
        return res
    errs = check_schema(schema, settings if isinstance(settings, dict) else (settings or {}), values_key(name))
    if errs:
        conv = f" converted to {latest}" if version != latest else ""
        # configtools: "...(version N[ converted to M]): " + " validate config values: " + multierror
        res.error = f"spec.settings are not valid (version {version}{conv}):  validate config values: {multierror(errs)}"
    return res


def config_status(name: str, spec: dict, versions: list[int], schema: dict | None,
                  module_known: bool) -> dict:
    """status.version / status.message of a ModuleConfig (config/status.go + controller.go)."""
    res = validate_config(name, spec, versions, schema) if module_known or name == consts.GLOBAL else Result()
    if res.error:
        return {"version": "", "message": f"Error: {res.error}"}
    latest = max(versions) if versions else 1
    version = _int_version(spec)
    message = ""
    if version == 0:
        shown = str(latest)
    else:
        shown = str(version)
        if version not in versions:
            message = f"Error: invalid spec.version, use version {latest}"
        elif version < latest:
            message = f"Update available, latest spec.settings schema version is {latest}"
    if not module_known and name != consts.GLOBAL:
        message = consts.MSG_UNKNOWN_MODULE
    return {"version": shown, "message": message}


# -- admission ----------------------------------------------------------------------------------
@dataclass
class Review:
    allowed: bool = True
    message: str = ""
    warnings: list[str] = field(default_factory=list)


def go_list(items) -> str:
    """fmt %v of a []string."""
    return "[" + " ".join(items or []) + "]"


def experimental_message(name: str) -> str:
    return (f"the '{name}' module is experimental, set param in 'deckhouse' ModuleConfig - "
            f"spec.settings.allowExperimentalModules: true to allow it")


def confirmation_message(reason: str) -> str:
    reason = reason or ""
    if not reason.endswith("."):
        reason += "."
    return (reason + " Please annotate ModuleConfig with `modules.deckhouse.io/allow-disabling=true` "
            "if you're sure that you want to disable the module.")


class Lookups:
    """What the webhook reads from the cluster and from the module manager."""

    def get_module(self, name: str) -> dict | None:
        """Module CR (live)."""

    def policy_exists(self, name: str) -> bool:
        """v1alpha2 ModuleUpdatePolicy (live)."""

    def mpo_exists(self, name: str) -> bool:
        """ModulePullOverride (live)."""

    def storage_module(self, name: str) -> dict | None:
        """Module known to the module manager."""

    def is_module_enabled(self, name: str) -> bool:
        """Whether the module manager runs it."""

    def allow_experimental(self) -> bool:
        """Whether experimental modules may be enabled."""

    def validate(self, name: str, spec: dict) -> Result:
        """Settings validation against the module's schema."""

    def exclusive_group_members(self, group: str) -> list[str]:
        """Modules of an exclusive group."""

    def bundle_enabled(self, name: str) -> bool:
        """Enabled by the bundle when spec.enabled is omitted."""

    def parent_of(self, name: str) -> str:
        """Parent module ("" = none)."""

    def module_deployed(self, name: str) -> bool:
        """Whether the module is deployed."""


def _is_enabled(spec: dict) -> bool:
    return spec.get("enabled") is True


def _effective(spec: dict, lk: Lookups, name: str) -> bool:
    """An omitted spec.enabled counts as the bundle default."""
    v = spec.get("enabled")
    return v if isinstance(v, bool) else bool(lk.bundle_enabled(name))


def _parent_check(lk: Lookups, name: str) -> Review | None:
    parent = lk.parent_of(name) if name != consts.GLOBAL else ""
    if parent and not lk.module_deployed(parent):
        return Review(False, f"'{parent}' is not deployed")
    return None


def _is_disabled(spec: dict) -> bool:
    return spec.get("enabled") is False


def _allow_disable(meta: dict) -> bool:
    return consts.ANN_ALLOW_DISABLING in ((meta or {}).get("annotations") or {})


def _confirmation(lk: Lookups, name: str) -> Review | None:
    mod = lk.storage_module(name)
    if not mod:
        return None
    opts = mod.get("disableOptions") or {}
    if opts.get("confirmation"):
        return Review(False, confirmation_message(opts.get("message", "")))
    return None


def _experimental_from_storage(lk: Lookups, name: str, allow: bool) -> Review | None:
    mod = lk.storage_module(name)
    if mod and mod.get("stage") == "Experimental" and not allow:
        return Review(False, experimental_message(name))
    return None


def _experimental_from_cr(lk: Lookups, name: str, allow: bool, reject_missing: bool) -> Review | None:
    if name == consts.GLOBAL:
        return None
    mod = lk.get_module(name)
    if mod is None:
        return Review(False, f"the '{name}' module not found") if reject_missing else None
    if (mod.get("properties") or {}).get("stage") == "Experimental" and not allow:
        return Review(False, experimental_message(name))
    return None


def review(operation: str, obj: dict | None, old: dict | None, lk: Lookups) -> Review:
    """moduleConfigValidationHandler."""
    cfg = obj if operation != "DELETE" else (old or obj)
    cfg = cfg or {}
    name = cfg.get("metadata", {}).get("name", "")
    spec = cfg.get("spec") or {}
    meta = cfg.get("metadata") or {}
    allow_exp = lk.allow_experimental()

    if operation == "DELETE":
        if not _allow_disable(meta) and _is_enabled(spec):
            r = _confirmation(lk, name)
            if r:
                return r
        if lk.mpo_exists(name):
            return Review(False, "delete the ModulePullOverride before deleting the module config")
        return Review(True)
    if operation not in ("CREATE", "UPDATE"):
        return Review(False, f"operation '{operation}' is not applicable")
    if operation == "UPDATE" and meta.get("deletionTimestamp"):
        return Review(True)  # only finalizers can change now; never block their removal

    if operation == "CREATE":
        if not _allow_disable(meta) and _is_disabled(spec) and lk.is_module_enabled(name):
            r = _confirmation(lk, name)
            if r:
                return r
        if _effective(spec, lk, name):
            r = _experimental_from_storage(lk, name, allow_exp) or _experimental_from_cr(lk, name, allow_exp, True)
            if r:
                return r
            r = _parent_check(lk, name)
            if r:
                return r
    else:
        old_spec = (old or {}).get("spec") or {}
        old_meta = (old or {}).get("metadata") or {}
        new_enabled = _effective(spec, lk, name)
        if not _effective(old_spec, lk, name) and new_enabled:
            r = _experimental_from_storage(lk, name, allow_exp) or _experimental_from_cr(lk, name, allow_exp, False)
            if r:
                return r
            r = _parent_check(lk, name)
            if r:
                return r
        disabling = not new_enabled and (_effective(old_spec, lk, name) or lk.is_module_enabled(name))
        if disabling and not _allow_disable(meta) and not _allow_disable(old_meta):
            r = _confirmation(lk, name)
            if r:
                return r

    # validateCommon
    if spec.get("source") == consts.EMBEDDED:
        return Review(False, "'Embedded' is a forbidden source")
    warnings: list[str] = []
    if name != consts.GLOBAL:
        mod = lk.get_module(name)
        if mod is None:
            return Review(True, warnings=[f"the '{name}' module not found"])
        available = (mod.get("properties") or {}).get("availableSources") or []
        src = spec.get("source") or ""
        if src and src not in available:
            return Review(False, f"the '{src}' module source is an unavailable source for the '{name}' module, "
                                 f"available sources: {go_list(available)}")
        if _is_enabled(spec) and not src and len(available) > 1:
            warnings.append(f"module '{name}' is enabled but didn\u2019t run because multiple sources were found "
                            f"({', '.join(available)}), please specify a source in ModuleConfig resource ")
    policy = spec.get("updatePolicy") or ""
    if policy and not lk.policy_exists(policy):
        return Review(False, f"the '{policy}' module policy does not exist")
    res = lk.validate(name, spec)
    if res.error:
        return Review(False, res.error)
    if res.warning:
        warnings.append(res.warning)
    mod = lk.storage_module(name)
    if mod and _effective(spec, lk, name) and mod.get("exclusiveGroup"):
        group = mod["exclusiveGroup"]
        for other in lk.exclusive_group_members(group):
            if other != name and lk.is_module_enabled(other):
                return Review(False, f'can\'t enable module "{name}" because different module "{other}" '
                                     f"with same exclusiveGroup {group} enabled")
    return Review(True, warnings=warnings)
