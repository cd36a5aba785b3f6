# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A desired DKP state (ModuleSource, ModuleUpdatePolicy, ModuleConfig, ModulePullOverride objects,
typically from git) converged in one module process.

Everything is validated before the first write (`load` + `validate`). Each kind is listed once
(one request instead of one GET per object); each object then goes through dkp_resource.ensure,
which sends a merge patch guarded by the listed resourceVersion and re-reads on 409, so the write
rules are those of the single-object modules. Kinds are converged in dependency order (sources,
then the policies that configs refer to, then configs, then pull overrides); objects of one kind
are written in parallel by a small thread pool sharing the client's connection pool.
"""

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import copy
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import (
    KINDS,
    ApiError,
    DkpError,
    NO_LOG_MARKER,
)
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_modules import (
    ALLOW_DISABLING_ANNOTATION,
    STALE_CONFIG_ERROR_GRACE,
    change_evidence,
    check_name,
    config_error,
    describe_module,
    disabling_refusal,
    expects_evidence,
    module_summary,
    stuck_failure,
    target_reached,
    transient_failure,
)
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_pull_overrides import (
    SETTLE_SECONDS as MPO_SETTLE_SECONDS,
    not_offered_refusal,
    offering_sources,
    override_wait_rules,
)
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_resource import (
    deep_merge,
    ensure,
    is_sensitive_key,
    managed_view,
    merge_patch_between,
    redact,
    redact_sensitive,
)
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_sources import (
    DOCKER_CFG_PATH,
    deckhouse_owned_violation,
    desired_docker_config,
    registry_host,
    source_wait_rules,
)
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_wait import (
    WaitFailed,
    WaitTimeout,
    wait_for_all,
)

try:
    import yaml
except ImportError:  # pragma: no cover - reported by DkpModule
    yaml = None

# Dependency order: a ModuleConfig may name a source and a policy; an override needs an enabled module.
ORDER = ("ModuleSource", "ModuleUpdatePolicy", "ModuleConfig", "ModulePullOverride")
OWNER_LABEL = "deckhouse.platform/owner"
_LABEL_VALUE_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
SECRET_PATHS = {"ModuleSource": [DOCKER_CFG_PATH]}
ACTIONS = ("created", "updated", "unchanged", "pruned")


class Doc:
    """One declared object and where it came from (for messages)."""

    def __init__(self, obj, origin, index):
        self.obj = obj
        self.origin = origin
        self.index = index

    @property
    def where(self):
        return "%s document %d" % (self.origin, self.index)

    @property
    def kind(self):
        return self.obj.get("kind")

    @property
    def name(self):
        return (self.obj.get("metadata") or {}).get("name")


def _yaml_files(src):
    if os.path.isdir(src):
        found = []
        for root, dirs, files in os.walk(src):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found += [os.path.join(root, f) for f in sorted(files)
                      if f.endswith((".yml", ".yaml")) and not f.startswith(".")]
        return found
    if os.path.isfile(src):
        return [src]
    raise DkpError("src %s is neither a file nor a directory" % src)


def load(src=None, resources=None):
    """Docs from `src` (file or directory of multi-document YAML) and `resources` (a list)."""
    docs = []
    errors = []
    for path in _yaml_files(src) if src else []:
        try:
            with open(path) as f:
                loaded = list(yaml.safe_load_all(f))
        except (OSError, yaml.YAMLError) as e:
            errors.append("%s: cannot read YAML: %s" % (path, str(e).replace("\n", " ")))
            continue
        index = 0
        for obj in loaded:
            if obj is None:  # empty document (a trailing ---)
                continue
            if isinstance(obj, dict) and obj.get("kind") == "List" and isinstance(obj.get("items"), list):
                for item in obj["items"]:
                    docs.append(Doc(item, path, index))
                    index += 1
                continue
            docs.append(Doc(obj, path, index))
            index += 1
    for index, obj in enumerate(resources or []):
        docs.append(Doc(obj, "resources", index))
    if errors:
        raise DkpError("; ".join(errors), errors=errors)
    return docs


def check_owner(owner):
    if not owner or not _LABEL_VALUE_RE.match(owner):
        raise DkpError("owner %r is not a valid label value: up to 63 letters, digits, '-', '_' and '.', starting "
                       "and ending with a letter or digit (for example 'gitops-prod')" % (owner,))


def _err(doc, message):
    return "%s (%s %s): %s" % (doc.where, doc.kind or "?", doc.name or "?", message)


def _validate_doc(doc):
    """Problems of one document on its own (no cluster needed)."""
    obj = doc.obj
    if not isinstance(obj, dict):
        return ["%s: is a %s, not a Kubernetes object" % (doc.where, type(obj).__name__)]
    kind = obj.get("kind")
    if kind not in ORDER:
        return ["%s: unknown kind %r: a desired state holds only %s" % (doc.where, kind, ", ".join(ORDER))]
    errors = []
    api_version = obj.get("apiVersion")
    if api_version is not None and not str(api_version).startswith("deckhouse.io/"):
        errors.append(_err(doc, "apiVersion %r is not deckhouse.io/..." % api_version))
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not meta.get("name"):
        return errors + ["%s: %s without metadata.name" % (doc.where, kind)]
    what = "module name" if kind in ("ModuleConfig", "ModulePullOverride") else "%s name" % kind
    if check_name(meta["name"], what) and not (kind == "ModuleConfig" and meta["name"] == "global"):
        errors.append(_err(doc, check_name(meta["name"], what)))
    for key in ("labels", "annotations"):
        if meta.get(key) is not None and not isinstance(meta[key], dict):
            errors.append(_err(doc, "metadata.%s must be a mapping" % key))
    spec = obj.get("spec")
    if spec is not None and not isinstance(spec, dict):
        return errors + [_err(doc, "spec must be a mapping")]
    spec = spec or {}
    if kind == "ModuleConfig":
        if spec.get("settings") and spec.get("version") is None:
            errors.append(_err(doc, "spec.settings without spec.version: DKP rejects that; set spec.version to the "
                                    "module's settings schema version (for example 1)"))
        if spec.get("version") is not None and (not isinstance(spec["version"], int) or isinstance(spec["version"], bool)
                                                or spec["version"] < 1):
            errors.append(_err(doc, "spec.version must be a positive integer, got %r" % (spec["version"],)))
        if "enabled" in spec and not isinstance(spec["enabled"], bool):
            errors.append(_err(doc, "spec.enabled must be true or false, got %r" % (spec["enabled"],)))
        if spec.get("settings") is not None and not isinstance(spec["settings"], dict):
            errors.append(_err(doc, "spec.settings must be a mapping"))
        if spec.get("maintenance") not in (None, "NoResourceReconciliation"):
            errors.append(_err(doc, "spec.maintenance must be NoResourceReconciliation or absent, got %r"
                                    % (spec["maintenance"],)))
    elif kind == "ModuleSource":
        registry = spec.get("registry") if isinstance(spec.get("registry"), dict) else {}
        if not registry.get("repo"):
            errors.append(_err(doc, "spec.registry.repo is required"))
        else:
            try:
                registry_host(registry["repo"])
            except DkpError as e:
                errors.append(_err(doc, e.msg))
        if registry.get("scheme") not in (None, "HTTP", "HTTPS"):
            errors.append(_err(doc, "spec.registry.scheme must be HTTP or HTTPS"))
    elif kind == "ModuleUpdatePolicy":
        update = spec.get("update") if isinstance(spec.get("update"), dict) else {}
        if update.get("mode") not in (None, "Auto", "Manual", "AutoPatch"):
            errors.append(_err(doc, "spec.update.mode must be Auto, Manual or AutoPatch, got %r" % (update["mode"],)))
    elif kind == "ModulePullOverride":
        tag = spec.get("imageTag")
        if not isinstance(tag, str) or not _TAG_RE.match(tag):
            errors.append(_err(doc, "spec.imageTag must be an image tag, got %r" % (tag,)))
    return errors


def validate(docs, client=None):
    """Refuse the whole state before any write; every problem is reported, each with file and document."""
    errors = []
    seen = {}
    for doc in docs:
        problems = _validate_doc(doc)
        errors += problems
        if problems:
            continue
        key = (doc.kind, doc.name)
        if key in seen:
            errors.append("%s: duplicate %s %s (first declared in %s)"
                          % (doc.where, doc.kind, doc.name, seen[key].where))
        else:
            seen[key] = doc
    if not errors and client is not None:
        errors += _check_references(docs, client)
    if errors:
        raise DkpError("The desired state is invalid; nothing was written:\n- " + "\n- ".join(errors), errors=errors)


def _check_references(docs, client):
    """A ModuleConfig's updatePolicy/source must be declared or exist in the cluster."""
    declared = {(d.kind, d.name) for d in docs}
    errors = []
    cache = {}
    for doc in docs:
        if doc.kind != "ModuleConfig":
            continue
        spec = doc.obj.get("spec") or {}
        for field, kind in (("updatePolicy", "ModuleUpdatePolicy"), ("source", "ModuleSource")):
            ref = spec.get(field)
            if not ref or (kind, ref) in declared:
                continue
            if (kind, ref) not in cache:
                cache[(kind, ref)] = client.get(kind, ref) is not None
            if not cache[(kind, ref)]:
                errors.append(_err(doc, "spec.%s names %s %s, which no document declares and the cluster does not "
                                        "have" % (field, kind, ref)))
    return errors


def secret_values(docs):
    """Values to register as no_log before anything is printed: dockerCfg and secret-looking settings."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if is_sensitive_key(key) and isinstance(value, (str, int, float)) and not isinstance(value, bool) \
                        and str(value):
                    found.append(str(value))
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for doc in docs:
        walk(doc.obj)
    return [v for v in found if len(v) > 3]


def _clean(obj):
    """The declared object without server-owned fields."""
    obj = copy.deepcopy(obj)
    obj.pop("status", None)
    meta = obj.setdefault("metadata", {})
    for key in list(meta):
        if key not in ("name", "labels", "annotations"):
            meta.pop(key)
    kind = KINDS[obj["kind"]]
    obj["apiVersion"] = kind.api_version  # the served version this collection speaks
    obj.setdefault("spec", {})
    return obj


class Planner:
    """Desired objects of the state, computed on top of the live ones with the per-kind rules."""

    def __init__(self, owner, allow_disabling=False):
        self.owner = owner
        self.allow_disabling = allow_disabling

    def desired(self, doc, live):
        declared = _clean(doc.obj)
        base = live or {"apiVersion": declared["apiVersion"], "kind": declared["kind"],
                        "metadata": {"name": declared["metadata"]["name"]}}
        meta = declared["metadata"]
        overlay_meta = {"labels": dict(meta.get("labels") or {}, **{OWNER_LABEL: self.owner})}
        if meta.get("annotations"):
            overlay_meta["annotations"] = meta["annotations"]
        spec = declared.get("spec") or {}
        kind = declared["kind"]
        if kind == "ModuleSource":
            spec = copy.deepcopy(spec)
            registry = spec.get("registry") or {}
            live_registry = ((live or {}).get("spec") or {}).get("registry") or {}
            if "dockerCfg" in registry:
                # Compared by value: the same credentials written differently are not a change.
                registry["dockerCfg"] = desired_docker_config(live_registry.get("dockerCfg"),
                                                              registry_host(registry["repo"]),
                                                              docker_config=registry["dockerCfg"] or "")
        wanted = deep_merge(base, {"metadata": overlay_meta, "spec": spec})
        if kind == "ModuleConfig" and spec.get("enabled") is False and self.allow_disabling:
            wanted = deep_merge(wanted, {"metadata": {"annotations": {ALLOW_DISABLING_ANNOTATION: "true"}}})
        if kind == "ModuleSource":
            violation = deckhouse_owned_violation(live, merge_patch_between(managed_view(live), managed_view(wanted)))
            if violation:
                raise DkpError("%s: %s" % (doc.where, violation))
        return wanted


def _paths(patch, prefix=""):
    """Dotted paths a merge patch touches (what the plan lists as changes)."""
    out = []
    for key, value in (patch or {}).items():
        path = prefix + str(key)
        if isinstance(value, dict) and value:
            out += _paths(value, path + ".")
        else:
            out.append(path)
    return out


def redacted_view(kind, obj):
    return redact_sensitive(redact(managed_view(obj), SECRET_PATHS.get(kind, ()))) if obj else {}


class _Prefetched:
    """A client whose first GET of one object is answered from the kind's LIST (saves a request per
    object); every later read (after a 409) and every write goes to the API."""

    def __init__(self, client, live):
        self._client = client
        self._live = live
        self._used = False

    def get(self, kind, name, namespace=None):
        if not self._used:
            self._used = True
            return copy.deepcopy(self._live)
        return self._client.get(kind, name, namespace)

    def __getattr__(self, attr):
        return getattr(self._client, attr)


class Converger:
    def __init__(self, client, docs, owner, check_mode=False, diff=False, prune=False, allow_disabling=False,
                 workers=4):
        self.client = client
        self.docs = docs
        self.owner = owner
        self.check_mode = check_mode
        self.diff = diff
        self.prune = prune
        self.allow_disabling = allow_disabling
        self.workers = max(1, int(workers))
        self.planner = Planner(owner, allow_disabling)
        self.live = {}
        self.source_timeout = 300  # how long a new source may take to offer its modules
        self.clock = time.monotonic
        self.sleep = time.sleep

    def _list(self, kind):
        try:
            items, _rv = self.client.list(kind)
        except ApiError as e:
            if e.reason == "NotServed" and not any(d.kind == kind for d in self.docs):
                return {}
            raise
        return {i["metadata"]["name"]: i for i in items}

    def read(self):
        """One LIST per kind that matters; also checks that every declared kind is served."""
        kinds = set(d.kind for d in self.docs)
        if self.prune:
            kinds |= set(ORDER)
        for kind in ORDER:
            if kind in kinds:
                self.live[kind] = self._list(kind)

    def prunable(self):
        declared = {(d.kind, d.name) for d in self.docs}
        out = []
        for kind in reversed(ORDER):  # dependants first: a policy in use cannot be deleted
            for name, obj in sorted(self.live.get(kind, {}).items()):
                meta = obj.get("metadata") or {}
                labels = meta.get("labels") or {}
                if meta.get("deletionTimestamp"):
                    continue  # already being deleted (a finalizer holds it): nothing left to prune
                if labels.get(OWNER_LABEL) == self.owner and (kind, name) not in declared:
                    out.append(obj)
        return out

    def preflight(self):
        """Refusals that need the live state, all before the first write."""
        errors = []
        for doc in self.docs:
            if doc.kind != "ModuleConfig":
                continue
            live = self.live.get("ModuleConfig", {}).get(doc.name)
            spec = doc.obj.get("spec") or {}
            problem = self._disabling_problem(doc.name, live, doc.obj, "present", spec.get("enabled"))
            if problem:
                errors.append(_err(doc, problem))
        if self.prune:
            for obj in self.prunable():
                if obj["kind"] == "ModuleConfig" and ((obj.get("spec") or {}).get("enabled") is not False):
                    # Deleting a config that already disables its module does not disable anything.
                    problem = self._disabling_problem(obj["metadata"]["name"], obj, None, "absent", None)
                    if problem:
                        errors.append("prune ModuleConfig %s: %s" % (obj["metadata"]["name"], problem))
        errors += self._offer_problems()
        if errors:
            raise DkpError("The desired state cannot be applied; nothing was written:\n- " + "\n- ".join(errors),
                           errors=errors)

    def _disabling_problem(self, name, live, declared, state, enabled):
        """dkp_modules.disabling_refusal (critical modules, DKP's confirmation), the Module read only when
        the write would disable it. An allow-disabling annotation the state itself declares counts as
        DKP's confirmation (the webhook sees it on the same write)."""
        if self.allow_disabling:
            return None
        if state == "absent":
            disabling = live is not None
        else:
            disabling = enabled is False and ((live or {}).get("spec") or {}).get("enabled") is not False
        if not disabling:
            return None  # no need to read the Module
        config = copy.deepcopy(live) if live else {}
        annotations = ((declared or {}).get("metadata") or {}).get("annotations") or {}
        if annotations.get(ALLOW_DISABLING_ANNOTATION):
            meta = config.setdefault("metadata", {})
            meta["annotations"] = dict(meta.get("annotations") or {}, **{
                ALLOW_DISABLING_ANNOTATION: annotations[ALLOW_DISABLING_ANNOTATION]})
        return disabling_refusal(name, self.client.get("Module", name), config, state, enabled, False)

    def _offer_problems(self):
        """module_pull_override's rule: a new override for a module no ModuleSource offers can never pull
        anything. A source the state creates has not synced yet, so its offer is unknown: then the rule waits
        for the next run."""
        new = [d for d in self.docs if d.kind == "ModulePullOverride"
               and d.name not in self.live.get("ModulePullOverride", {})]
        if not new or any(d.kind == "ModuleSource" and d.name not in self.live.get("ModuleSource", {})
                          for d in self.docs):
            return []
        _names, offered = offering_sources(self.client, new[0].name)
        return [_err(d, not_offered_refusal(d.name, offered)) for d in new
                if not any(d.name in mods for mods in offered.values())]

    def _plan_one(self, doc):
        live = self.live.get(doc.kind, {}).get(doc.name)
        wanted = self.planner.desired(doc, live)
        patch = merge_patch_between(managed_view(live), managed_view(wanted)) if live else None
        action = "created" if live is None else ("updated" if patch else "unchanged")
        changes = _paths(patch) if patch else ([] if live else ["(new object)"])
        entry = {"kind": doc.kind, "name": doc.name, "action": action, "source": doc.where,
                 "changes": [c for c in changes if c != "metadata.resourceVersion"]}
        if action == "updated":
            entry["changed_by"] = field_managers(live, entry["changes"])
        return entry

    def plan(self):
        entries = [self._plan_one(d) for kind in ORDER for d in self.docs if d.kind == kind]
        if self.prune:
            entries += [{"kind": o["kind"], "name": o["metadata"]["name"], "action": "pruned", "source": None,
                         "changes": ["(delete)"]} for o in self.prunable()]
        return entries

    def _apply_one(self, doc):
        live = self.live.get(doc.kind, {}).get(doc.name)
        res = ensure(_Prefetched(self.client, live), doc.kind, doc.name, lambda obj: self.planner.desired(doc, obj),
                     check_mode=self.check_mode)
        action = "created" if res.method == "create" else ("updated" if res.changed else "unchanged")
        entry = {"kind": doc.kind, "name": doc.name, "action": action, "source": doc.where}
        if self.diff and res.changed:
            entry["diff"] = {"before_header": "%s/%s" % (doc.kind, doc.name),
                             "after_header": "%s/%s" % (doc.kind, doc.name),
                             "before": redacted_view(doc.kind, res.before), "after": redacted_view(doc.kind, res.after)}
        return entry, res.after

    def _prune_one(self, obj):
        kind, name = obj["kind"], obj["metadata"]["name"]
        if kind == "ModuleConfig" and self.allow_disabling:
            annotations = (obj.get("metadata") or {}).get("annotations") or {}
            if annotations.get(ALLOW_DISABLING_ANNOTATION) != "true":
                ensure(self.client, kind, name,
                       lambda o: deep_merge(o, {"metadata": {"annotations": {ALLOW_DISABLING_ANNOTATION: "true"}}}),
                       check_mode=self.check_mode)
        self.client.delete(kind, name, dry_run=self.check_mode)
        entry = {"kind": kind, "name": name, "action": "pruned", "source": None}
        if self.diff:
            entry["diff"] = {"before_header": "%s/%s" % (kind, name), "after_header": "(deleted)",
                             "before": redacted_view(kind, obj), "after": {}}
        return entry

    def _pool_map(self, fn, items):
        if len(items) <= 1 or self.workers == 1:
            return [fn(i) for i in items]
        getattr(self.client, "pool", None)  # build the shared pool before the threads race to create it
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(fn, items))

    @staticmethod
    def _refs(doc):
        """(kind, name) of the objects a ModuleConfig depends on."""
        spec = doc.obj.get("spec") or {}
        refs = []
        if doc.kind == "ModuleConfig":
            if spec.get("updatePolicy"):
                refs.append(("ModuleUpdatePolicy", spec["updatePolicy"]))
            if spec.get("source"):
                refs.append(("ModuleSource", spec["source"]))
        return refs

    def _planned_only(self, doc, created):
        """Check mode: a dry run of an object that names one this state creates would be refused (the server
        does not know the dry-run object), so it is reported from the plan without a request."""
        entry = self._plan_one(doc)
        entry.pop("changed_by", None)
        entry["dry_run"] = False
        entry["depends_on"] = ["%s/%s" % r for r in self._refs(doc) if r in created]
        return entry, None

    def _await_offered(self, doc, timeout):
        """A ModuleConfig naming a source this run created or changed: DKP's webhook refuses it until the source
        has synced and the Module lists it in availableSources."""
        source = (doc.obj.get("spec") or {}).get("source")
        deadline = self.clock() + timeout
        last = "Module %s does not exist yet" % doc.name
        while self.clock() < deadline:
            try:
                mod = self.client.get("Module", doc.name)
            except DkpError as e:
                mod, last = None, e.msg
            if mod is not None:
                available = (mod.get("properties") or {}).get("availableSources") or []
                if source in available:
                    return
                last = "Module %s is offered by %s" % (doc.name, ", ".join(available) or "no source")
            self.sleep(1.0)
        raise DkpError("%s: ModuleSource %s does not offer module %s %ss after it was written (%s); the "
                       "ModuleConfig was not written" % (doc.where, source, doc.name, int(timeout), last))

    def apply(self):
        """Converge kind by kind in ORDER; returns (entries, {(kind, name): object after})."""
        entries, after = [], {}
        written = set()  # (kind, name) created or updated by this run
        for kind in ORDER:
            docs = [d for d in self.docs if d.kind == kind]
            created = {(e["kind"], e["name"]) for e in entries if e["action"] == "created"}
            if not self.check_mode and kind == "ModuleConfig":
                for doc in docs:
                    if any(r in written and r[0] == "ModuleSource" for r in self._refs(doc)):
                        self._await_offered(doc, self.source_timeout)

            def one(doc):
                if self.check_mode and any(r in created for r in self._refs(doc)):
                    return self._planned_only(doc, created)
                return self._apply_one(doc)

            try:
                done = self._pool_map(one, docs)
            except DkpError as e:
                raise DkpError("%s; objects before this one in dependency order were converged" % e.msg,
                               results=entries, **e.details)
            for (entry, obj), doc in zip(done, docs):
                entries.append(entry)
                after[(kind, doc.name)] = obj
                if entry["action"] in ("created", "updated"):
                    written.add((kind, doc.name))
        if self.prune:
            # Sequential and dependants first, so DKP never sees a policy deleted under a config.
            for obj in self.prunable():
                entries.append(self._prune_one(obj))
        return entries, after


def summarize(entries):
    summary = {a: 0 for a in ACTIONS}
    for e in entries:
        summary[e["action"]] = summary.get(e["action"], 0) + 1
    summary["total"] = len(entries)
    return summary


def plan_markdown(plan, summary, title="DKP desired state plan", commit=None):
    """The plan as Markdown fit for a merge-request comment (no secret values: only field paths)."""
    lines = ["### %s" % title, ""]
    if commit:
        lines += ["Commit: `%s`" % commit, ""]
    lines.append("%d to create, %d to update, %d unchanged, %d to prune." % (
        summary.get("created", 0), summary.get("updated", 0), summary.get("unchanged", 0), summary.get("pruned", 0)))
    changing = [p for p in plan if p["action"] != "unchanged"]
    if changing:
        lines += ["", "| Action | Kind | Name | Fields |", "|---|---|---|---|"]
        for p in changing:
            fields = ", ".join("`%s`" % c for c in p.get("changes") or []) or "-"
            lines.append("| %s | %s | %s | %s |" % (p["action"], p["kind"], p["name"], fields))
    else:
        lines += ["", "No changes: the cluster matches the desired state."]
    return "\n".join(lines) + "\n"


def field_managers(obj, paths, ignore=()):
    """Who owns each drifted field, from managedFields (the deepest recorded prefix of each path that goes at
    least as deep as `spec.<field>`), for drift reports."""
    managers = []
    for entry in ((obj or {}).get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") in ignore:
            continue
        fields = entry.get("fieldsV1") or {}
        touched = []
        for path in paths:
            parts = path.split(".")
            node, depth = fields, 0
            for part in parts:
                key = "f:" + part
                if isinstance(node, dict) and key in node:
                    node, depth = node[key], depth + 1
                else:
                    break
            if depth >= min(2, len(parts)):
                touched.append(path)
        if touched:
            managers.append({"manager": entry.get("manager"), "operation": entry.get("operation"),
                             "time": entry.get("time"), "fields": touched})
    return managers


def snapshot_modules(client, docs):
    """The Modules a wait will judge, listed once before the writes: the "before" of change evidence."""
    if not any(d.kind == "ModuleConfig" and isinstance((d.obj.get("spec") or {}).get("enabled"), bool)
               for d in docs):
        return {}
    items, _rv = client.list("Module")
    return {i["metadata"]["name"]: i for i in items}


def _obj_name(obj):
    return ((obj or {}).get("metadata") or {}).get("name")


class _Target:
    """The rules of one waited object, in dkp_wait terms (per-kind rules from the kind's module_utils)."""

    def __init__(self, kind, name, predicate, describe, failure=None, transient=None, fresh=None, group=""):
        self.kind, self.name = kind, name
        self.group = group  # one wait_for_all per (kind, group): their rules agree on an absent object
        self.predicate, self.describe = predicate, describe
        self.failure, self.transient, self.fresh = failure, transient, fresh


def _module_target(name, enabled, changed, before_mod, live_config, wanted_config):
    target = "enabled" if enabled else "disabled"
    if not enabled:
        # A module being switched off may show errors on its way down: only the end state is judged.
        return _Target("Module", name, lambda m: target_reached("disabled", m), describe_module, group="off")

    def ready(mod):
        return target_reached("enabled", mod) and module_summary(mod)["enabled_by_config"]

    def processed(mod):
        return change_evidence(before_mod, mod) is not None

    # When Deckhouse must show it processed the write (EnabledByModuleConfig flips), a Ready or a hook error
    # from before the write is not judged.
    fresh = processed if changed and expects_evidence(before_mod, target, (live_config or {}).get("spec"),
                                                      (wanted_config or {}).get("spec")) else None
    return _Target("Module", name, ready, describe_module, failure=lambda m: stuck_failure(name, m),
                   transient=lambda m: transient_failure(name, m), fresh=fresh)


def _wait_targets(docs, entries, before, after=None, modules_before=None, clock=time.monotonic):
    """A _Target for every declared object worth waiting for."""
    actions = {(e["kind"], e["name"]): e["action"] for e in entries}
    after = after or {}
    modules_before = modules_before or {}
    started = clock()
    targets = []
    for doc in docs:
        spec = doc.obj.get("spec") or {}
        changed = actions.get((doc.kind, doc.name)) in ("created", "updated")
        old = (before.get(doc.kind) or {}).get(doc.name)
        new = after.get((doc.kind, doc.name))
        if doc.kind == "ModuleConfig" and isinstance(spec.get("enabled"), bool) and doc.name != "global":
            targets.append(_module_target(doc.name, spec["enabled"], changed, modules_before.get(doc.name), old,
                                          new or doc.obj))
        elif doc.kind == "ModuleSource":
            rules = source_wait_rules(before=old, after=new, changed=changed)
            targets.append(_Target("ModuleSource", doc.name, rules["predicate"], rules["describe"],
                                   failure=rules["failure"], fresh=rules["fresh"]))
        elif doc.kind == "ModulePullOverride":
            old_tag = ((old or {}).get("spec") or {}).get("imageTag")
            must_change = "digest_or_time" if changed and old is not None and old_tag != spec.get("imageTag") \
                else None
            rules = override_wait_rules(doc.name, old, must_change,
                                        lambda: clock() - started >= MPO_SETTLE_SECONDS)
            targets.append(_Target("ModulePullOverride", doc.name, rules["predicate"], rules["describe"],
                                   failure=rules["failure"]))
    return targets


def _dispatch(targets, key):
    """One rule for wait_for_all from per-object rules. An absent object (None) carries no name: every
    kind's rule gives the same answer for it, so the first target's rule is asked."""
    rules = {t.name: getattr(t, key) for t in targets}
    if not any(rules.values()):
        return None
    first = rules[targets[0].name]

    def rule(obj):
        fn = rules.get(_obj_name(obj), first) if obj is not None else first
        if fn is None:
            return True if key == "fresh" else None
        if obj is None and key == "failure":
            return "%s was deleted while waiting" % targets[0].kind if fn(None) else None
        return fn(obj)
    return rule


class _Aborted(DkpError):
    """Another kind's wait failed: this one stops (raised through the engine's tick)."""


def _wait_kind(client, kind, targets, timeout, grace, abort, seen, configs_before, clock, sleep, heartbeat):
    """One dkp_wait.wait_for_all (one list + one watch) over every waited object of `kind`."""
    by_name = {t.name: t for t in targets}
    fresh_rule = _dispatch(targets, "fresh")

    def record(obj, fresh_ok=True):
        name = _obj_name(obj)
        if name in by_name:
            seen[(kind, name)] = (obj, fresh_ok)

    def fresh(obj):
        ok = fresh_rule(obj) if fresh_rule else True
        record(obj, ok)
        return ok

    failure_rule = _dispatch(targets, "failure")

    def failure(obj):
        record(obj)
        return failure_rule(obj) if failure_rule else None

    def describe(obj):
        target = by_name.get(_obj_name(obj)) or targets[0]
        return target.describe(obj)

    started = clock()

    def tick():
        if abort.is_set():
            raise _Aborted("stopped: another wait failed")
        if kind != "Module":
            return None
        # A ModuleConfig error Deckhouse reports after our write fails the wait; one that predates it gets
        # a short grace (Deckhouse may not have processed the write yet).
        items, _rv = client.list("ModuleConfig")
        for item in items:
            name = _obj_name(item)
            if name not in by_name or by_name[name].failure is None:
                continue  # a module being disabled may show errors on its way down
            error = config_error(item)
            if error and (error != configs_before.get(name) or clock() - started > STALE_CONFIG_ERROR_GRACE):
                return "ModuleConfig %s reports: %s" % (name, error)
        return None

    return wait_for_all(client, kind, list(by_name), _dispatch(targets, "predicate"), timeout, describe=describe,
                        failure=failure, transient=_dispatch(targets, "transient"), grace=grace,
                        fresh=fresh, tick=tick, heartbeat=heartbeat,
                        clock=clock, sleep=sleep)


def wait_all(client, docs, entries, before, timeout, grace=60, after=None, modules_before=None,
             clock=time.monotonic, sleep=time.sleep, heartbeat=2.0):
    """Wait for every declared object on the one wait engine (dkp_wait.wait_for_all): one list and one watch
    per kind, the kinds concurrently (a thread each). Per-kind rules come from the kind's module_utils
    (dkp_modules, dkp_sources, dkp_pull_overrides): stuck states fail at once, hook errors are ridden out for
    `grace` seconds, states from before our write are not judged. The first failure stops every wait; a
    timeout names the last state of every unfinished object."""
    targets = _wait_targets(docs, entries, before, after, modules_before, clock)
    if not targets:
        return []
    groups = sorted(set((t.kind, t.group) for t in targets))
    configs_before = {n: config_error(o) for n, o in (before.get("ModuleConfig") or {}).items()}
    abort = threading.Event()
    seen = {}
    outcome = {}

    def run(group):
        try:
            outcome[group] = _wait_kind(client, group[0], [t for t in targets if (t.kind, t.group) == group],
                                        timeout, grace, abort, seen, configs_before, clock, sleep, heartbeat)
        except WaitTimeout as e:
            outcome[group] = e
        except Exception as e:  # pylint: disable=broad-except
            outcome[group] = e  # re-raised below, in this thread
            if not isinstance(e, _Aborted):
                abort.set()

    if len(groups) == 1:
        run(groups[0])
    else:
        getattr(client, "pool", None)  # build the shared connection pool before the threads race to create it
        threads = [threading.Thread(target=run, args=(g,), name="desired-state-wait-%s" % g[0]) for g in groups]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    key = {id(t): (t.kind, t.group) for t in targets}
    done = [{"kind": t.kind, "name": t.name, "state": t.describe(outcome[key[id(t)]][t.name])}
            for t in targets if isinstance(outcome.get(key[id(t)]), dict)]
    for group in groups:
        error = outcome.get(group)
        if isinstance(error, Exception) and not isinstance(error, (WaitTimeout, _Aborted)):
            if isinstance(error, WaitFailed):
                msg = error.msg
                if error.details.get("object") and error.details["object"] not in msg:
                    msg = "%s (%s %s)" % (msg, group[0], error.details["object"])
                raise WaitFailed(msg, **dict(error.details, waited=done))
            raise error
    if all(isinstance(outcome.get(g), dict) for g in groups):
        return done
    pending = [t for t in targets if isinstance(outcome.get(key[id(t)]), WaitTimeout)
               and t.name in (outcome[key[id(t)]].details.get("pending") or [t.name])]
    states = []
    transient = {}
    last_error = None
    for t in pending:
        details = outcome[key[id(t)]].details
        if (t.kind, t.name) in seen:
            obj, fresh_ok = seen[(t.kind, t.name)]
            text = t.describe(obj) + ("" if fresh_ok else " (not yet updated after our change)")
        elif not details.get("pending"):  # a single-object wait: its last state is this object's
            text = details.get("last_state")
        else:
            text = "absent or never read"
        states.append("%s %s: %s" % (t.kind, t.name, text))
        last = details.get("last_transient")
        if isinstance(last, dict) and last.get(t.name):
            transient["%s %s" % (t.kind, t.name)] = last[t.name]
        elif isinstance(last, str):
            transient["%s %s" % (t.kind, t.name)] = last
        last_error = details.get("last_error") or last_error
    raise WaitTimeout("Timed out after %ss waiting for %d of %d objects; last observed: %s%s%s" % (
        int(timeout), len(pending), len(targets), "; ".join(states),
        "; last transient error: %s" % "; ".join("%s: %s" % kv for kv in sorted(transient.items()))
        if transient else "",
        "; last API problem: %s" % last_error if last_error else ""),
        last_state=states, waited=done, **({"last_transient": transient} if transient else {}))


__all__ = ["ORDER", "OWNER_LABEL", "NO_LOG_MARKER", "load", "validate", "Converger", "summarize", "plan_markdown",
           "field_managers", "secret_values", "check_owner", "wait_all",
           "snapshot_modules"]
