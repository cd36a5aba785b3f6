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


def test_wait_all_polls_once_per_kind_and_times_out_with_states():
    class Lister:
        calls = 0

        def list(self, kind):
            Lister.calls += 1
            if kind == "Module":
                return [{"metadata": {"name": "a"}, "status": {"phase": "Ready", "conditions": [
                    {"type": "EnabledByModuleConfig", "status": "True"}, {"type": "IsReady", "status": "True"}]}},
                    {"metadata": {"name": "b"}, "status": {"phase": "Reconciling"}}], "1"
            return [], "1"

    t = [0.0]
    docs = ds.load(resources=[mc("a", enabled=True), mc("b", enabled=True)])
    entries = [{"kind": "ModuleConfig", "name": n, "action": "created"} for n in ("a", "b")]
    with pytest.raises(DkpError) as e:
        ds.wait_all(Lister(), docs, entries, {}, 10, clock=lambda: t[0], sleep=lambda s: t.__setitem__(0, t[0] + s))
    assert "1 of 2 objects" in e.value.msg and "Module b: phase Reconciling" in e.value.msg
    assert e.value.details["waited"][0]["name"] == "a"
