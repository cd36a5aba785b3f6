"""deckhouse.platform.desired_state through ansible-playbook against the local DKP cluster and simulator."""
from __future__ import annotations

import base64
import json

import pytest
import yaml

from ansible_run import run_tasks
from ansible_run import task_status as status
from dkp_audit import our_writes

DS = "deckhouse.platform.desired_state"
OWNER_LABEL = "deckhouse.platform/owner"
GROUP = "deckhouse.io"
PLURALS = {"ModuleConfig": ("v1alpha1", "moduleconfigs"), "ModuleSource": ("v1alpha1", "modulesources"),
           "ModuleUpdatePolicy": ("v1alpha2", "moduleupdatepolicies"),
           "ModulePullOverride": ("v1alpha2", "modulepulloverrides")}
REPO = "registry.example.com/deckhouse/modules"
SECRET_PASSWORD = "s3cr3t-Pa55-gitops"


def docker_cfg(user, password):
    auth = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
    return base64.b64encode(json.dumps({"auths": {"registry.example.com": {"auth": auth}}}).encode()).decode()


def get(api, kind, name):
    from kubernetes.client.rest import ApiException
    version, plural = PLURALS[kind]
    try:
        return api.get_cluster_custom_object(GROUP, version, plural, name)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def delete(api, kind, name, attempts=20):
    """Delete, retrying while DKP's webhooks refuse (a config still uses a policy) or are down (a restart)."""
    import time
    from kubernetes.client.rest import ApiException
    version, plural = PLURALS[kind]
    for attempt in range(attempts):
        try:
            if kind == "ModuleConfig":
                api.patch_cluster_custom_object(GROUP, version, plural, name, {
                    "metadata": {"annotations": {"modules.deckhouse.io/allow-disabling": "true"}}})
            api.delete_cluster_custom_object(GROUP, version, plural, name)
            return
        except ApiException as e:
            if e.status == 404:
                return
            if e.status not in (400, 500) or attempt == attempts - 1:
                raise
            time.sleep(1)


def mc(name, **spec):
    return {"apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleConfig", "metadata": {"name": name}, "spec": spec}


STATE = [
    {"apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleSource", "metadata": {"name": "gitops-src"},
     "spec": {"registry": {"repo": REPO, "dockerCfg": docker_cfg("ci", SECRET_PASSWORD)}}},
    {"apiVersion": "deckhouse.io/v1alpha2", "kind": "ModuleUpdatePolicy", "metadata": {"name": "gitops-policy"},
     "spec": {"releaseChannel": "Stable", "update": {"mode": "Manual"}}},
    mc("prometheus", version=1, settings={"retentionDays": 9}),
    mc("ingress-nginx", enabled=True),
]
NAMES = [("ModuleSource", "gitops-src"), ("ModuleUpdatePolicy", "gitops-policy"), ("ModuleConfig", "prometheus"),
         ("ModuleConfig", "ingress-nginx"), ("ModuleConfig", "cert-manager"), ("ModuleConfig", "cni-cilium"),
         ("ModuleUpdatePolicy", "gitops-extra"), ("ModuleUpdatePolicy", "unowned"), ("ModuleConfig", "commander")]


@pytest.fixture
def clean(api):
    for kind, name in reversed(NAMES):
        delete(api, kind, name)
    yield
    for kind, name in reversed(NAMES):
        delete(api, kind, name)


def write_state(tmp_path, docs, name="state.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def ds_task(title="ds", **params):
    return {"name": title, DS: dict({"owner": "gitops-test"}, **params), "register": "out", "ignore_errors": True}


def test_plan_apply_unchanged(kc, api, dkp_cluster, clean, tmp_path):
    # A foreign setting on prometheus must survive (settings are merged, not replaced).
    api.create_cluster_custom_object(GROUP, "v1alpha1", "moduleconfigs",
                                     mc("prometheus", version=1, settings={"scrapeInterval": "30s"}))
    src = write_state(tmp_path / "", STATE)

    mark = dkp_cluster.audit_marker()
    plan = run_tasks(kc, [ds_task(src=str(src))], check=True, diff=True, verbosity=3)
    assert status(plan, "ds") == "ok", plan.output
    result = plan.task("ds")
    assert [(p["kind"], p["name"], p["action"]) for p in result["plan"]] == [
        ("ModuleSource", "gitops-src", "created"), ("ModuleUpdatePolicy", "gitops-policy", "created"),
        ("ModuleConfig", "prometheus", "updated"), ("ModuleConfig", "ingress-nginx", "created")]
    assert result["drift"] is True and result["changed"] is True
    assert "spec.settings.retentionDays" in result["plan"][2]["changes"]
    assert "| updated | ModuleConfig | prometheus |" in result["plan_markdown"]
    writes = our_writes(dkp_cluster, mark)
    assert writes and all(w.dry_run for w in writes), writes  # check mode = server dry-run only
    assert get(api, "ModuleSource", "gitops-src") is None
    assert SECRET_PASSWORD not in plan.output and STATE[0]["spec"]["registry"]["dockerCfg"] not in plan.output

    applied = run_tasks(kc, [ds_task(src=str(src))])
    assert status(applied, "ds") == "ok", applied.output
    result = applied.task("ds")
    assert result["changed"] is True
    assert result["summary"] == {"created": 3, "updated": 1, "unchanged": 0, "pruned": 0, "total": 4}
    prom = get(api, "ModuleConfig", "prometheus")
    assert prom["spec"]["settings"] == {"scrapeInterval": "30s", "retentionDays": 9}
    assert prom["metadata"]["labels"][OWNER_LABEL] == "gitops-test"
    assert get(api, "ModuleSource", "gitops-src")["metadata"]["labels"][OWNER_LABEL] == "gitops-test"

    mark = dkp_cluster.audit_marker()
    again = run_tasks(kc, [ds_task(src=str(src))])
    assert status(again, "ds") == "ok", again.output
    assert again.task("ds")["changed"] is False and again.task("ds")["drift"] is False
    assert {r["action"] for r in again.task("ds")["results"]} == {"unchanged"}
    assert our_writes(dkp_cluster, mark) == []

    # The same credentials encoded differently are not a change (compared by value).
    other = dict(STATE[0], spec={"registry": {"repo": REPO, "dockerCfg": base64.b64encode(json.dumps(
        {"auths": {"registry.example.com": {"username": "ci", "password": SECRET_PASSWORD}}}).encode()).decode()}})
    same = run_tasks(kc, [ds_task(resources=[other])])
    assert status(same, "ds") == "ok" and same.task("ds")["changed"] is False, same.output


def test_prune_removes_only_owned(kc, api, dkp_cluster, clean, tmp_path):
    policy = {"apiVersion": "deckhouse.io/v1alpha2", "kind": "ModuleUpdatePolicy",
              "metadata": {"name": "gitops-extra"}, "spec": {"update": {"mode": "Auto"}}}
    first = run_tasks(kc, [ds_task(resources=STATE[1:3] + [policy])])
    assert status(first, "ds") == "ok", first.output
    api.create_cluster_custom_object(GROUP, "v1alpha2", "moduleupdatepolicies", {
        "apiVersion": "deckhouse.io/v1alpha2", "kind": "ModuleUpdatePolicy", "metadata": {"name": "unowned"},
        "spec": {"update": {"mode": "Auto"}}})

    plan = run_tasks(kc, [ds_task(resources=STATE[1:3], prune=True)], check=True)
    assert status(plan, "ds") == "ok", plan.output
    assert [(p["kind"], p["name"]) for p in plan.task("ds")["plan"] if p["action"] == "pruned"] == [
        ("ModuleUpdatePolicy", "gitops-extra")]
    assert get(api, "ModuleUpdatePolicy", "gitops-extra") is not None

    mark = dkp_cluster.audit_marker()
    pruned = run_tasks(kc, [ds_task(resources=STATE[1:3], prune=True)])
    assert status(pruned, "ds") == "ok", pruned.output
    assert pruned.task("ds")["summary"]["pruned"] == 1 and pruned.task("ds")["summary"]["unchanged"] == 2
    assert get(api, "ModuleUpdatePolicy", "gitops-extra") is None
    assert get(api, "ModuleUpdatePolicy", "unowned") is not None, "unlabelled objects are never pruned"
    deletes = [w for w in our_writes(dkp_cluster, mark) if w.verb == "delete"]
    assert [w.name for w in deletes] == ["gitops-extra"]


def test_prune_or_disable_needing_confirmation_is_refused(kc, api, dkp_cluster, clean):
    first = run_tasks(kc, [ds_task(resources=[mc("cni-cilium", enabled=True)])])
    assert status(first, "ds") == "ok", first.output
    mark = dkp_cluster.audit_marker()
    refused = run_tasks(kc, [ds_task(resources=[mc("prometheus", version=1)], prune=True)])
    assert status(refused, "ds") == "failed"
    assert "prune ModuleConfig cni-cilium" in refused.task("ds")["msg"] and "allow_disabling" in refused.task("ds")["msg"]
    disable = run_tasks(kc, [ds_task(resources=[mc("cni-cilium", enabled=False)])])
    assert status(disable, "ds") == "failed" and "allow_disabling" in disable.task("ds")["msg"]
    assert our_writes(dkp_cluster, mark, sync=True) == [], "refused before any write (not even a dry run)"
    allowed = run_tasks(kc, [ds_task(resources=[mc("prometheus", version=1)], prune=True, allow_disabling=True)])
    assert status(allowed, "ds") == "ok", allowed.output
    assert get(api, "ModuleConfig", "cni-cilium") is None


def test_bad_input_fails_before_any_write_naming_file_and_document(kc, api, dkp_cluster, clean, tmp_path):
    d = tmp_path / "state"
    d.mkdir()
    write_state(d, [mc("prometheus", version=1), {"kind": "Deployment", "metadata": {"name": "x"}}], "a.yaml")
    write_state(d, [mc("cert-manager", settings={"email": "a@b.c"}), mc("prometheus", enabled=True),
                    mc("ingress-nginx", enabled=True, updatePolicy="nobody-defines-this")], "b.yaml")
    mark = dkp_cluster.audit_marker()
    run = run_tasks(kc, [ds_task(src=str(d))])
    assert status(run, "ds") == "failed"
    msg = run.task("ds")["msg"]
    assert "%s document 1: unknown kind 'Deployment'" % (d / "a.yaml") in msg
    assert "%s document 0 (ModuleConfig cert-manager): spec.settings without spec.version" % (d / "b.yaml") in msg
    assert "%s document 1: duplicate ModuleConfig prometheus (first declared in %s document 0)" % (
        d / "b.yaml", d / "a.yaml") in msg
    assert our_writes(dkp_cluster, mark) == []
    # A policy nobody defines and the cluster lacks (checked once the documents themselves are valid).
    run = run_tasks(kc, [ds_task(resources=[mc("ingress-nginx", enabled=True, updatePolicy="nobody-defines-this")])])
    assert status(run, "ds") == "failed"
    assert "resources document 0 (ModuleConfig ingress-nginx): spec.updatePolicy names ModuleUpdatePolicy " \
           "nobody-defines-this" in run.task("ds")["msg"]
    for bad in ({"owner": "not a label"}, {"wait_timeout": 0}, {"workers": -1}):
        run = run_tasks(kc, [ds_task(resources=[mc("prometheus", version=1)], **bad)])
        assert status(run, "ds") == "failed", bad
    assert our_writes(dkp_cluster, mark) == []
    assert get(api, "ModuleConfig", "cert-manager") is None


def test_wait_for_all(kc, api, clean):
    run = run_tasks(kc, [ds_task(resources=[STATE[0], mc("ingress-nginx", enabled=True)], wait=True,
                                 wait_timeout=90)])
    assert status(run, "ds") == "ok", run.output
    waited = {(w["kind"], w["name"]): w["state"] for w in run.task("ds")["waited"]}
    assert waited[("Module", "ingress-nginx")].startswith("phase Ready")
    assert waited[("ModuleSource", "gitops-src")].startswith("syncTime ")


def test_config_naming_a_new_policy_and_source_plans_and_applies(kc, api, clean):
    import uuid

    src_name = "gitops-new-%s" % uuid.uuid4().hex[:6]
    owner = "gitops-new-test"  # the source keeps a finalizer for a while: other tests' prunes must not see it
    state = [
        {"apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleSource", "metadata": {"name": src_name},
         "spec": {"registry": {"repo": REPO}}},
        {"apiVersion": "deckhouse.io/v1alpha2", "kind": "ModuleUpdatePolicy", "metadata": {"name": "gitops-policy"},
         "spec": {"releaseChannel": "Stable", "update": {"mode": "Auto"}}},
        mc("commander", enabled=True, source=src_name, updatePolicy="gitops-policy"),
    ]
    try:
        plan = run_tasks(kc, [ds_task(resources=state, owner=owner)], check=True)
        assert status(plan, "ds") == "ok", plan.output
        entry = plan.task("ds")["results"][2]
        assert entry["action"] == "created" and entry["dry_run"] is False
        assert sorted(entry["depends_on"]) == ["ModuleSource/%s" % src_name, "ModuleUpdatePolicy/gitops-policy"]
        assert get(api, "ModuleUpdatePolicy", "gitops-policy") is None

        applied = run_tasks(kc, [ds_task(resources=state, wait_timeout=120, owner=owner)])
        assert status(applied, "ds") == "ok", applied.output
        assert [r["action"] for r in applied.task("ds")["results"]] == ["created", "created", "created"]
        assert get(api, "ModuleConfig", "commander")["spec"]["source"] == src_name
    finally:
        delete(api, "ModuleConfig", "commander")
        delete(api, "ModuleSource", src_name)


@pytest.fixture
def ingress_error(api, simulator, clean):
    yield "ingress-nginx"
    simulator.module_error_clear("ingress-nginx")


def test_wait_rides_out_a_transient_hook_error_within_the_grace(kc, simulator, ingress_error):
    import time

    first = run_tasks(kc, [ds_task(resources=[mc("ingress-nginx", enabled=True)], wait=True, wait_timeout=90)])
    assert status(first, "ds") == "ok", first.output
    # Longer than the old fixed 10 s grace, shorter than the task's wait_grace: DKP clears it by itself.
    simulator.module_error("ingress-nginx", message="hook validation failed: gitops-transient-boom", duration=14)
    start = time.monotonic()
    run = run_tasks(kc, [ds_task(resources=[mc("ingress-nginx", enabled=True)], wait=True, wait_grace=40,
                                 wait_timeout=90)])
    took = time.monotonic() - start
    assert status(run, "ds") == "ok", run.output
    waited = {(w["kind"], w["name"]): w["state"] for w in run.task("ds")["waited"]}
    assert waited[("Module", "ingress-nginx")].startswith("phase Ready"), waited
    assert took >= 10, "returned while the module still reported the hook error"


def test_persistent_hook_error_fails_after_the_grace_naming_it(kc, simulator, ingress_error):
    import time

    first = run_tasks(kc, [ds_task(resources=[mc("ingress-nginx", enabled=True)], wait=True, wait_timeout=90)])
    assert status(first, "ds") == "ok", first.output
    simulator.module_error("ingress-nginx", message="hook validation failed: gitops-persistent-boom", duration=0)
    start = time.monotonic()
    run = run_tasks(kc, [ds_task(resources=[mc("ingress-nginx", enabled=True, version=1,
                                               settings={"enableIstioSidecar": True})],
                                 wait=True, wait_grace=4, wait_timeout=90)])
    took = time.monotonic() - start
    assert status(run, "ds") == "failed"
    res = run.task("ds")
    assert "gitops-persistent-boom" in res["msg"] and "grace of 4s" in res["msg"], res["msg"]
    assert res["changed"] is True and res["results"][0]["action"] == "updated", "the partial result survives"
    assert took < 60, "failed at the grace window, not at the timeout"


def test_unoffered_pull_override_and_critical_disable_are_refused_before_any_write(kc, api, dkp_cluster, clean):
    mark = dkp_cluster.audit_marker()
    mpo = {"apiVersion": "deckhouse.io/v1alpha2", "kind": "ModulePullOverride",
           "metadata": {"name": "gitops-unoffered"}, "spec": {"imageTag": "pr-1"}}
    run = run_tasks(kc, [ds_task(resources=[mc("prometheus", version=1, settings={"retentionDays": 9}), mpo])])
    assert status(run, "ds") == "failed"
    msg = run.task("ds")["msg"]
    assert "resources document 1 (ModulePullOverride gitops-unoffered): No ModuleSource offers module " \
           "gitops-unoffered" in msg, msg
    run = run_tasks(kc, [ds_task(resources=[mc("registry", enabled=False)])])
    assert status(run, "ds") == "failed"
    msg = run.task("ds")["msg"]
    assert "critical module" in msg and "allow_disabling" in msg, msg
    assert our_writes(dkp_cluster, mark, sync=True) == [], "refused before any write (not even a dry run)"
    assert get(api, "ModuleConfig", "prometheus") is None
