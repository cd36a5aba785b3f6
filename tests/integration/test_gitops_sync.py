"""Role deckhouse.platform.gitops_sync (playbooks/gitops_sync.yml) through ansible-playbook on the local cluster."""
from __future__ import annotations

import json
import threading

import pytest
import yaml

from ansible_run import ROOT, run_playbook
from dkp_audit import our_writes

PLAYBOOK = ROOT / "playbooks" / "gitops_sync.yml"
GROUP = "deckhouse.io"
OWNER_LABEL = "deckhouse.platform/owner"
LOCK_TASK = "Runbook | take the run lock"
CONVERGE_TASK = "GitOps sync | converge the cluster to git"

STATE = [
    {"apiVersion": "deckhouse.io/v1alpha2", "kind": "ModuleUpdatePolicy", "metadata": {"name": "gitops-role-policy"},
     "spec": {"releaseChannel": "Stable", "update": {"mode": "Manual"}}},
    {"apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleConfig", "metadata": {"name": "prometheus"},
     "spec": {"version": 1, "settings": {"retentionDays": 11}}},
    {"apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleConfig", "metadata": {"name": "ingress-nginx"},
     "spec": {"enabled": True}},
]
GITHUB_PUSH = {"ref": "refs/heads/main", "after": "3f786850e387550fdab836ed7e6dc881de23001b",
               "head_commit": {"id": "3f786850e387550fdab836ed7e6dc881de23001b", "message": "Raise retention"},
               "repository": {"full_name": "acme/dkp-state"}, "pusher": {"name": "alice"}}


def _delete(api, version, plural, name):
    from kubernetes.client.rest import ApiException
    try:
        api.delete_cluster_custom_object(GROUP, version, plural, name)
    except ApiException as e:
        if e.status != 404:
            raise


@pytest.fixture
def state(api, kube, tmp_path):
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    def clean():
        _delete(api, "v1alpha1", "moduleconfigs", "prometheus")
        _delete(api, "v1alpha1", "moduleconfigs", "ingress-nginx")
        _delete(api, "v1alpha2", "moduleupdatepolicies", "gitops-role-policy")
        try:
            client.CoordinationV1Api(kube).delete_namespaced_lease("deckhouse-platform-runbook", "d8-system")
        except ApiException as e:
            if e.status != 404:
                raise

    clean()
    d = tmp_path / "clusters" / "test"
    d.mkdir(parents=True)
    (d / "modules.yaml").write_text(yaml.safe_dump_all(STATE[1:], sort_keys=False))
    (d / "policies.yaml").write_text(yaml.safe_dump_all(STATE[:1], sort_keys=False))
    yield d
    clean()


def _records(run, title):
    """Records of a role task: the recorder names them `<role> : <title>`."""
    return [r for r in run.records if r["task"] == title or r["task"].endswith(" : " + title)]


def status(run, title):
    found = _records(run, title)
    assert found, "task %r not run; tasks: %s" % (title, [r["task"] for r in run.records])
    return found[-1]["status"]


def result(run, title):
    return _records(run, title)[-1]["result"]


def sync(kc, src, mode, report_dir, **extra):
    return run_playbook(kc, PLAYBOOK, extra_vars=dict({"gitops_sync_mode": mode, "gitops_sync_src": str(src),
                                                       "gitops_sync_report_dir": str(report_dir),
                                                       "gitops_sync_owner": "gitops-role"}, **extra))


def test_plan_writes_nothing_and_lists_exactly_the_changes(kc, api, dkp_cluster, state, tmp_path):
    out = tmp_path / "out"
    mark = dkp_cluster.audit_marker()
    # AWX survey answers arrive as strings.
    plan = sync(kc, state, "plan", out, gitops_sync_fail_on_drift="false", awx_webhook_payload=GITHUB_PUSH,
                awx_webhook_event_type="push")
    assert plan.rc == 0, plan.output
    assert [w for w in our_writes(dkp_cluster, mark) if not w.dry_run] == []
    report = json.loads((out / "gitops-plan.json").read_text())
    assert report["drift"] is True and report["status"] == "drift"
    assert sorted((p["kind"], p["name"], p["action"]) for p in report["plan"]) == [
        ("ModuleConfig", "ingress-nginx", "created"), ("ModuleConfig", "prometheus", "created"),
        ("ModuleUpdatePolicy", "gitops-role-policy", "created")]
    assert report["commit"]["sha"] == GITHUB_PUSH["after"] and report["commit"]["provider"] == "github"
    assert report["commit"]["repository"] == "acme/dkp-state" and report["commit"]["author"] == "alice"
    markdown = (out / "gitops-plan.md").read_text()
    assert "Commit `3f786850e387550fdab836ed7e6dc881de23001b` on `refs/heads/main`" in markdown
    assert "| created | ModuleConfig | prometheus |" in markdown

    failing = sync(kc, state, "plan", out, gitops_sync_fail_on_drift="true")
    assert failing.rc != 0 and status(failing, "GitOps sync | fail on drift when asked") == "failed"
    assert "differs from git" in result(failing, "GitOps sync | fail on drift when asked")["msg"]

    bad = sync(kc, state, "plan", out, gitops_sync_fail_on_drift="maybe")
    assert bad.rc != 0 and "gitops_sync_fail_on_drift" in bad.output


def test_apply_converges_then_unchanged_then_drift_names_who(kc, api, kube, dkp_cluster, state, tmp_path):
    out = tmp_path / "out"
    first = sync(kc, state, "apply", out, gitops_sync_wait_timeout="120", gitops_sync_commit="abc123")
    assert first.rc == 0, first.output
    report = json.loads((out / "gitops-report.json").read_text())
    assert report["status"] == "succeeded" and report["changed"] is True and report["verified"] is True
    assert report["commit"]["sha"] == "abc123" and report["commit"]["source"] == "gitops_sync_commit"
    assert {(w["kind"], w["name"]) for w in report["waited"]} >= {("Module", "ingress-nginx")}
    mc = api.get_cluster_custom_object(GROUP, "v1alpha1", "moduleconfigs", "prometheus")
    assert mc["spec"]["settings"]["retentionDays"] == 11 and mc["metadata"]["labels"][OWNER_LABEL] == "gitops-role"
    from kubernetes import client
    lease = client.CoordinationV1Api(kube).read_namespaced_lease("deckhouse-platform-runbook", "d8-system")
    assert not lease.spec.holder_identity, "the run lock is released after the apply"

    mark = dkp_cluster.audit_marker()
    second = sync(kc, state, "apply", out)
    assert second.rc == 0, second.output
    assert result(second, CONVERGE_TASK)["changed"] is False
    assert [w for w in our_writes(dkp_cluster, mark) if w.resource != "leases" and not w.dry_run] == []

    # Somebody edits the object by hand (kubectl edit's field manager).
    api.patch_cluster_custom_object(GROUP, "v1alpha1", "moduleconfigs", "prometheus",
                                    {"spec": {"settings": {"retentionDays": 3}}}, field_manager="kubectl-edit")
    drift = sync(kc, state, "drift", out, gitops_sync_fail_on_drift=True)
    assert drift.rc != 0
    report = json.loads((out / "gitops-plan.json").read_text())
    entry = [p for p in report["plan"] if p["action"] != "unchanged"]
    assert [(e["kind"], e["name"]) for e in entry] == [("ModuleConfig", "prometheus")]
    assert entry[0]["changes"] == ["spec.settings.retentionDays"]
    assert "kubectl-edit" in [m["manager"] for m in entry[0]["changed_by"]]
    assert "| updated | ModuleConfig | prometheus | `spec.settings.retentionDays` | kubectl-edit |" in \
        (out / "gitops-plan.md").read_text()


def test_two_concurrent_applies_never_both_write(kc, dkp_cluster, state, tmp_path):
    mark = dkp_cluster.audit_marker()
    runs = [None, None]

    def go(i):
        runs[i] = sync(kc, state, "apply", tmp_path / ("out%d" % i), gitops_sync_wait_timeout=120)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    locks = sorted(status(r, LOCK_TASK) for r in runs)
    assert locks == ["failed", "ok"], [r.output[-3000:] for r in runs]
    loser = [r for r in runs if status(r, LOCK_TASK) == "failed"][0]
    assert loser.rc != 0 and "held by" in result(loser, LOCK_TASK)["msg"]
    assert not _records(loser, CONVERGE_TASK), "the loser never converged"
    creates = [w for w in our_writes(dkp_cluster, mark) if w.verb == "create" and w.resource != "leases"
               and not w.dry_run and w.succeeded]
    assert sorted(w.name for w in creates) == ["gitops-role-policy", "ingress-nginx", "prometheus"]
