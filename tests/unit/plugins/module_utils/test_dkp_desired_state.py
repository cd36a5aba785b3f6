# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure logic of dkp_desired_state: loading, validation, per-kind desired objects, plan, drift managers."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.deckhouse.platform.plugins.module_utils import dkp_desired_state as ds
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import DkpError
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_sources import build_docker_config
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_wait import WaitFailed, WaitTimeout


def mc(name, **spec):
    return {"apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleConfig", "metadata": {"name": name}, "spec": spec}


def test_load_dir_multi_doc_and_list(tmp_path):
    (tmp_path / "a.yaml").write_text("kind: ModuleConfig\nmetadata: {name: a}\n---\n---\nkind: ModuleConfig\n"
                                     "metadata: {name: b}\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "c.yml").write_text("kind: List\nitems:\n- kind: ModuleConfig\n  metadata: {name: c}\n")
    (tmp_path / "README.md").write_text("not yaml: [")
    docs = ds.load(str(tmp_path), [mc("d")])
    assert [(d.name, d.index) for d in docs] == [("a", 0), ("b", 1), ("c", 0), ("d", 0)]
    assert docs[2].origin.endswith("sub/c.yml") and docs[3].where == "resources document 0"


def test_load_bad_yaml_names_file(tmp_path):
    bad = tmp_path / "x.yaml"
    bad.write_text("a: [\n")
    with pytest.raises(DkpError) as e:
        ds.load(str(bad))
    assert str(bad) in e.value.msg


def test_validate_reports_every_problem_with_file_and_document():
    docs = ds.load(resources=[
        {"kind": "Deployment", "metadata": {"name": "x"}},
        mc("a", settings={"x": 1}),
        mc("b", enabled=True),
        mc("b", enabled=False),
        mc("Bad_Name"),
        {"kind": "ModuleSource", "metadata": {"name": "s"}, "spec": {"registry": {"repo": "https://x/y"}}},
        {"kind": "ModulePullOverride", "metadata": {"name": "m"}, "spec": {}},
        mc("c", enabled="false"),
    ])
    with pytest.raises(DkpError) as e:
        ds.validate(docs)
    errors = e.value.details["errors"]
    text = "\n".join(errors)
    assert "resources document 0: unknown kind 'Deployment'" in text
    assert "resources document 1 (ModuleConfig a): spec.settings without spec.version" in text
    assert "resources document 3: duplicate ModuleConfig b (first declared in resources document 2)" in text
    assert "document 4" in text and "document 5" in text and "imageTag" in text
    assert "spec.enabled must be true or false" in text
    assert len(errors) == 7


class FakeClient:
    def __init__(self, objects=()):
        self.objects = {(o["kind"], o["metadata"]["name"]): o for o in objects}

    def get(self, kind, name, namespace=None):
        return self.objects.get((kind, name))


def test_references_need_a_declared_or_live_policy():
    docs = ds.load(resources=[mc("a", updatePolicy="nightly"), mc("b", updatePolicy="declared"),
                              mc("c", source="live-src"),
                              {"kind": "ModuleUpdatePolicy", "metadata": {"name": "declared"}, "spec": {}}])
    live = {"kind": "ModuleSource", "metadata": {"name": "live-src"}}
    with pytest.raises(DkpError) as e:
        ds.validate(docs, FakeClient([live]))
    assert e.value.details["errors"] == [
        "resources document 0 (ModuleConfig a): spec.updatePolicy names ModuleUpdatePolicy nightly, which no "
        "document declares and the cluster does not have"]


def test_desired_merges_settings_and_labels_owner():
    planner = ds.Planner("gitops")
    live = mc("a", enabled=True, version=1, settings={"keep": 1, "change": 1})
    live["metadata"].update(resourceVersion="5", labels={"other": "x"})
    doc = ds.load(resources=[mc("a", version=1, settings={"change": 2, "keep": None})])[0]
    wanted = planner.desired(doc, live)
    assert wanted["spec"] == {"enabled": True, "version": 1, "settings": {"change": 2}}
    assert wanted["metadata"]["labels"] == {"other": "x", ds.OWNER_LABEL: "gitops"}


def test_docker_cfg_compared_by_value():
    host = "registry.example.com"
    live_cfg = build_docker_config(host, "u", "p")
    live = {"kind": "ModuleSource", "metadata": {"name": "s", "labels": {ds.OWNER_LABEL: "o"}},
            "spec": {"registry": {"repo": host + "/m", "dockerCfg": live_cfg}}}
    # Same credentials, other encoding (key order, extra host): not a change.
    import base64
    import json
    other = base64.b64encode(json.dumps({"auths": {"other.io": {}, host: {"auth": base64.b64encode(b"u:p").decode()}}})
                             .encode()).decode()
    doc = ds.load(resources=[{"kind": "ModuleSource", "metadata": {"name": "s"},
                              "spec": {"registry": {"repo": host + "/m", "dockerCfg": other}}}])[0]
    wanted = ds.Planner("o").desired(doc, live)
    assert wanted["spec"]["registry"]["dockerCfg"] == live_cfg
    assert other in ds.secret_values([doc])


def test_plan_markdown_and_field_managers():
    plan = [{"kind": "ModuleConfig", "name": "a", "action": "updated", "changes": ["spec.settings.x"]},
            {"kind": "ModuleConfig", "name": "b", "action": "unchanged", "changes": []}]
    md = ds.plan_markdown(plan, ds.summarize(plan), commit="abc123")
    assert "| updated | ModuleConfig | a | `spec.settings.x` |" in md and "`abc123`" in md and "| b |" not in md
    obj = {"metadata": {"managedFields": [
        {"manager": "deckhouse.platform", "operation": "Update", "time": "t1",
         "fieldsV1": {"f:spec": {"f:version": {}}}},
        {"manager": "kubectl-edit", "operation": "Update", "time": "t2",
         "fieldsV1": {"f:spec": {"f:settings": {"f:x": {}}}}}]}}
    assert ds.field_managers(obj, ["spec.settings.x"]) == [
        {"manager": "kubectl-edit", "operation": "Update", "time": "t2", "fields": ["spec.settings.x"]}]


def test_owner_must_be_a_label_value():
    ds.check_owner("gitops-prod")
    with pytest.raises(DkpError):
        ds.check_owner("has space")


class FakeApi:
    """A client for the wait engine: list() answers from `objects` (kind -> [obj] or a callable of the clock),
    watch() yields nothing (the engine falls back to polling lists); every list is counted per kind."""

    def __init__(self, objects, clock):
        self.objects = objects
        self.clock = clock
        self.lists = {}

    def list(self, kind, namespace=None, field_selector=None, **kw):
        self.lists[kind] = self.lists.get(kind, 0) + 1
        items = self.objects.get(kind, [])
        items = items(self.clock()) if callable(items) else items
        if field_selector:
            items = [i for i in items if "metadata.name=%s" % i["metadata"]["name"] == field_selector]
        return [dict(i) for i in items], "1"

    def watch(self, kind, rv, namespace=None, name=None, timeout=None, **kw):
        return iter(())


def module(name, phase, ready, by_config=True, hook=None):
    conds = [{"type": "EnabledByModuleConfig", "status": "True" if by_config else "False"},
             {"type": "EnabledByModuleManager", "status": "True" if by_config else "False"},
             {"type": "IsReady", "status": "True" if ready else "False",
              "reason": "HookError" if hook else "", "message": hook or ""}]
    return {"metadata": {"name": name}, "properties": {}, "status": {"phase": phase, "conditions": conds}}


def fake_time():
    t = [0.0]
    return t, (lambda: t[0]), (lambda s: t.__setitem__(0, t[0] + max(s, 0.01)))


def test_wait_all_uses_the_engine_and_times_out_with_every_state():
    t, clock, sleep = fake_time()
    api = FakeApi({"Module": [module("a", "Ready", True), module("b", "Reconciling", False)]}, clock)
    docs = ds.load(resources=[mc("a", enabled=True), mc("b", enabled=True)])
    entries = [{"kind": "ModuleConfig", "name": n, "action": "unchanged"} for n in ("a", "b")]
    with pytest.raises(WaitTimeout) as e:
        ds.wait_all(api, docs, entries, {}, 10, clock=clock, sleep=sleep)
    assert "1 of 2 objects" in e.value.msg and "Module b: phase Reconciling" in e.value.msg
    assert e.value.details["last_state"][0].startswith("Module b: phase Reconciling")
    assert t[0] < 15, "the timeout is kept"


def test_wait_all_rides_out_a_transient_hook_error_within_the_grace():
    t, clock, sleep = fake_time()

    def modules(now):
        if now < 8:
            return [module("a", "Error", False, hook="ModuleRun failed: hook exploded")]
        return [module("a", "Ready", True)]
    api = FakeApi({"Module": modules}, clock)
    docs = ds.load(resources=[mc("a", enabled=True)])
    entries = [{"kind": "ModuleConfig", "name": "a", "action": "unchanged"}]
    waited = ds.wait_all(api, docs, entries, {}, 60, grace=20, clock=clock, sleep=sleep)
    assert waited[0]["name"] == "a" and waited[0]["state"].startswith("phase Ready")
    assert t[0] >= 8


def test_wait_all_fails_a_persistent_hook_error_after_the_grace_naming_it():
    t, clock, sleep = fake_time()
    api = FakeApi({"Module": [module("a", "Error", False, hook="ModuleRun failed: hook exploded")]}, clock)
    docs = ds.load(resources=[mc("a", enabled=True)])
    entries = [{"kind": "ModuleConfig", "name": "a", "action": "unchanged"}]
    with pytest.raises(WaitFailed) as e:
        ds.wait_all(api, docs, entries, {}, 600, grace=5, clock=clock, sleep=sleep)
    assert "hook exploded" in e.value.msg and "grace of 5s" in e.value.msg
    assert 5 <= t[0] < 30


def test_wait_all_does_not_accept_a_ready_from_before_enabling():
    t, clock, sleep = fake_time()
    before = module("a", "Ready", True, by_config=False)
    api = FakeApi({"Module": lambda now: [before if now < 6 else module("a", "Ready", True)]}, clock)
    docs = ds.load(resources=[mc("a", enabled=True)])
    entries = [{"kind": "ModuleConfig", "name": "a", "action": "updated"}]
    live = {"ModuleConfig": {"a": mc("a", enabled=False)}}
    waited = ds.wait_all(api, docs, entries, live, 60, clock=clock, sleep=sleep, modules_before={"a": before})
    assert waited[0]["name"] == "a" and t[0] >= 6


def test_wait_all_fails_a_source_sync_error_at_once_and_stops_the_other_kinds():
    t, clock, sleep = fake_time()
    src = {"metadata": {"name": "s"}, "status": {"syncTime": "2026-12-01T10:00:00Z",
                                                 "message": "list tags: NAME_UNKNOWN: repository not known"}}
    api = FakeApi({"ModuleSource": [src], "Module": [module("a", "Reconciling", False)]}, clock)
    docs = ds.load(resources=[{"kind": "ModuleSource", "metadata": {"name": "s"},
                               "spec": {"registry": {"repo": "r.example.com/m"}}}, mc("a", enabled=True)])
    entries = [{"kind": "ModuleSource", "name": "s", "action": "unchanged"},
               {"kind": "ModuleConfig", "name": "a", "action": "unchanged"}]
    with pytest.raises(WaitFailed) as e:
        ds.wait_all(api, docs, entries, {}, 600, clock=clock, sleep=sleep)
    assert "NAME_UNKNOWN" in e.value.msg


class Preflight:
    def __init__(self, modules=(), sources=()):
        self.modules = {m["metadata"]["name"]: m for m in modules}
        self.sources = list(sources)
        self.requests = []

    def get(self, kind, name, namespace=None):
        self.requests.append(("get", kind, name))
        return self.modules.get(name) if kind == "Module" else None

    def list(self, kind, **kw):
        self.requests.append(("list", kind))
        return (self.sources if kind == "ModuleSource" else []), "1"


def converger(client, resources, **kw):
    conv = ds.Converger(client, ds.load(resources=resources), "gitops-test", **kw)
    conv.read()
    return conv


def test_disabling_a_critical_module_is_refused_by_the_shared_rule():
    crit = {"metadata": {"name": "registry"}, "properties": {"critical": True}}
    client = Preflight(modules=[crit])
    conv = converger(client, [mc("registry", enabled=False)])
    with pytest.raises(DkpError) as e:
        conv.preflight()
    assert "critical module" in e.value.msg and "allow_disabling" in e.value.msg
    converger(client, [mc("registry", enabled=False)], allow_disabling=True).preflight()
    reads = len(client.requests)
    converger(client, [mc("registry", enabled=True)]).preflight()
    assert ("get", "Module", "registry") not in client.requests[reads:], "the Module is read only when disabling"


def test_pull_override_for_a_module_no_source_offers_is_refused():
    mpo = {"kind": "ModulePullOverride", "metadata": {"name": "commander"}, "spec": {"imageTag": "pr-1"}}
    src = {"metadata": {"name": "s"}, "status": {"modules": [{"name": "other"}]}}
    with pytest.raises(DkpError) as e:
        converger(Preflight(sources=[src]), [mpo]).preflight()
    assert "No ModuleSource offers module commander" in e.value.msg and "s offers other" in e.value.msg
    src["status"]["modules"].append({"name": "commander"})
    converger(Preflight(sources=[src]), [mpo]).preflight()
    new_src = {"kind": "ModuleSource", "metadata": {"name": "n"}, "spec": {"registry": {"repo": "r.example.com/m"}}}
    converger(Preflight(sources=[]), [new_src, mpo]).preflight()  # a new source: its offer is not known yet
