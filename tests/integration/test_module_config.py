"""deckhouse.platform.module_config / module_config_info / module_info / lookups, through ansible-playbook,
against the local DKP cluster's real kube-apiserver and the Deckhouse simulator."""
from __future__ import annotations

import concurrent.futures
import json
import time

import pytest

from ansible_run import run_playbook, run_tasks, task_status
from dkp_audit import our_writes

MC = "deckhouse.platform.module_config"


def mc_task(task_name="set", /, **params):
    return {"name": task_name, MC: params, "register": "out"}


def get_mc(api, name):
    from kubernetes.client.rest import ApiException
    try:
        return api.get_cluster_custom_object("deckhouse.io", "v1alpha1", "moduleconfigs", name)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def delete_mc(api, name):
    from kubernetes.client.rest import ApiException
    try:
        api.delete_cluster_custom_object("deckhouse.io", "v1alpha1", "moduleconfigs", name)
    except ApiException as e:
        if e.status != 404:
            raise


@pytest.fixture
def prometheus_mc(api):
    delete_mc(api, "prometheus")
    yield "prometheus"
    delete_mc(api, "prometheus")


def test_create_then_second_run_is_unchanged(kc, api, prometheus_mc):
    task = mc_task(name=prometheus_mc, version=1, settings={"retentionDays": 15})
    first = run_tasks(kc, [task])
    assert first.rc == 0, first.output
    assert first.task("set")["changed"] is True
    assert first.task("set")["method"] == "create"
    assert get_mc(api, prometheus_mc)["spec"] == {"version": 1, "settings": {"retentionDays": 15}}
    second = run_tasks(kc, [task])
    assert second.rc == 0, second.output
    assert second.task("set")["changed"] is False
    assert second.task("set")["method"] == "none"


def test_merge_keeps_foreign_keys_and_null_removes(kc, api, prometheus_mc):
    api.create_cluster_custom_object("deckhouse.io", "v1alpha1", "moduleconfigs", {
        "apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleConfig", "metadata": {"name": prometheus_mc},
        "spec": {"version": 1, "settings": {"retentionDays": 7, "scrapeInterval": "30s",
                                            "auth": {"externalAuthentication": {"authURL": "https://a"}}}}})
    run = run_tasks(kc, [mc_task(name=prometheus_mc, settings={"longtermRetentionDays": 30, "scrapeInterval": None})])
    assert run.rc == 0, run.output
    assert run.task("set")["changed"] is True
    settings = get_mc(api, prometheus_mc)["spec"]["settings"]
    assert settings == {"retentionDays": 7, "longtermRetentionDays": 30,
                        "auth": {"externalAuthentication": {"authURL": "https://a"}}}


def test_replace_makes_settings_exact(kc, api, prometheus_mc):
    run_tasks(kc, [mc_task(name=prometheus_mc, version=1, settings={"retentionDays": 7, "scrapeInterval": "30s"})])
    run = run_tasks(kc, [mc_task(name=prometheus_mc, settings={"retentionDays": 9}, settings_mode="replace")])
    assert run.rc == 0, run.output
    assert get_mc(api, prometheus_mc)["spec"]["settings"] == {"retentionDays": 9}
    again = run_tasks(kc, [mc_task(name=prometheus_mc, settings={"retentionDays": 9}, settings_mode="replace")])
    assert again.task("set")["changed"] is False


def test_concurrent_writers_of_different_settings_both_survive(kc, api, prometheus_mc):
    run_tasks(kc, [mc_task(name=prometheus_mc, version=1, settings={"retentionDays": 7})])
    # Two ansible-playbook processes each write their own keys many times at once; every write is a
    # resourceVersion-guarded patch, so a lost update would show up as a missing key.

    def writer(prefix):
        tasks = [mc_task("%s-%d" % (prefix, i), name=prometheus_mc, settings={"auth": {"%s%d" % (prefix, i): i}})
                 for i in range(6)]
        return run_tasks(kc, tasks)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(writer, ["a", "b"]))
    for run in runs:
        assert run.rc == 0, run.output
    auth = get_mc(api, prometheus_mc)["spec"]["settings"]["auth"]
    assert auth == {**{"a%d" % i: i for i in range(6)}, **{"b%d" % i: i for i in range(6)}}
    assert get_mc(api, prometheus_mc)["spec"]["settings"]["retentionDays"] == 7


def test_check_mode_writes_nothing_and_runs_admission(kc, api, dkp_cluster, prometheus_mc):
    mark = dkp_cluster.audit_marker()
    run = run_tasks(kc, [mc_task(name=prometheus_mc, version=1, settings={"retentionDays": 3})], check=True, diff=True)
    assert run.rc == 0, run.output
    result = run.task("set")
    assert result["changed"] is True
    assert result["config"]["spec"]["settings"] == {"retentionDays": 3}, "check mode returns the dry-run object"
    assert get_mc(api, prometheus_mc) is None
    writes = our_writes(dkp_cluster, mark, resource="moduleconfigs")
    assert writes, "the dry-run request must reach the apiserver"
    assert all(w.dry_run for w in writes), writes
    # admission runs in check mode too: the webhook rejects settings the module's schema does not allow
    bad = run_tasks(kc, [mc_task(name="cert-manager", version=1, settings={"noSuchSetting": True})], check=True)
    assert bad.rc != 0 and task_status(bad, "set") == "failed"
    assert "noSuchSetting" in bad.task("set")["msg"] or "not valid" in bad.task("set")["msg"], bad.task("set")


def test_diff_shows_managed_fields_and_redacts_secrets(kc, prometheus_mc):
    run_tasks(kc, [mc_task(name=prometheus_mc, version=1, settings={"retentionDays": 7})])
    run = run_tasks(kc, [mc_task(name=prometheus_mc, settings={"auth": {"password": "s3cr3t-pr0m"}})], diff=True,
                    verbosity=3)
    assert run.rc == 0, run.output
    diff = run.task("set")["diff"]
    assert diff["before"]["spec"]["settings"] == {"retentionDays": 7}
    assert diff["after"]["spec"]["settings"]["auth"]["password"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    assert "status" not in diff["after"]
    assert "s3cr3t-pr0m" not in json.dumps(run.task("set")["config"])
    assert "s3cr3t-pr0m" not in json.dumps(diff)


def test_enable_and_wait_until_ready_then_disable(kc, api):
    delete_mc(api, "ingress-nginx")
    try:
        run = run_tasks(kc, [mc_task(name="ingress-nginx", enabled=True, wait=True, wait_timeout=60)])
        assert run.rc == 0, run.output
        module = run.task("set")["module"]
        assert module["ready"] and module["phase"] == "Ready" and module["enabled"]
        assert run.task("set")["processed"] is True and run.task("set")["ready"] is True
        assert "EnabledByModuleConfig" in run.task("set")["evidence"]
        again = run_tasks(kc, [mc_task(name="ingress-nginx", enabled=True, wait=True, wait_timeout=60)])
        assert again.rc == 0 and again.task("set")["changed"] is False and again.task("set")["ready"] is True
        run = run_tasks(kc, [mc_task(name="ingress-nginx", enabled=False, wait=True, wait_timeout=60)])
        assert run.rc == 0, run.output
        assert run.task("set")["module"]["ready"] is False
        assert run.task("set")["module"]["enabled"] is False
        assert run.task("set")["module"]["phase"] == "Downloaded", "released DKP: a disabled embedded module"
    finally:
        delete_mc(api, "ingress-nginx")


def test_disabling_a_confirmed_module_needs_allow_disabling(kc, api, dkp_cluster):
    mark = dkp_cluster.audit_marker()
    run = run_tasks(kc, [mc_task(name="cni-cilium", enabled=False)])
    assert run.rc != 0 and task_status(run, "set") == "failed"
    msg = run.task("set")["msg"]
    assert "allow_disabling" in msg and "cni-cilium" in msg
    assert not [w for w in our_writes(dkp_cluster, mark, resource="moduleconfigs") if not w.dry_run]
    try:
        run = run_tasks(kc, [mc_task(name="cni-cilium", enabled=False, allow_disabling=True)], check=True)
        assert run.rc == 0, run.output
        assert run.task("set")["changed"] is True
    finally:
        run_tasks(kc, [mc_task(name="cni-cilium", state="absent", allow_disabling=True)])


def test_absent_deletes_and_is_idempotent(kc, api, prometheus_mc):
    run_tasks(kc, [mc_task(name=prometheus_mc, version=1, settings={"retentionDays": 7})])
    run = run_tasks(kc, [mc_task(name=prometheus_mc, state="absent")])
    assert run.rc == 0 and run.task("set")["changed"] is True, run.output
    assert get_mc(api, prometheus_mc) is None
    again = run_tasks(kc, [mc_task(name=prometheus_mc, state="absent")])
    assert again.task("set")["changed"] is False


@pytest.mark.parametrize("params,needle", [
    ({"name": "Bad_Name", "enabled": True}, "not a valid module name"),
    ({"name": "prometheus", "settings": {"retentionDays": 1}}, "without a version"),
    ({"name": "prometheus", "enabled": {"yes": 1}}, "enabled"),
    ({"name": "prometheus", "state": "absent", "enabled": True}, "state=absent"),
])
def test_bad_input_fails_before_any_write(kc, dkp_cluster, api, prometheus_mc, params, needle):
    mark = dkp_cluster.audit_marker()
    run = run_tasks(kc, [mc_task(**params)])
    assert run.rc != 0 and task_status(run, "set") == "failed"
    assert needle in run.task("set")["msg"], run.task("set")
    assert our_writes(dkp_cluster, mark) == []


def test_unknown_module_wait_fails_with_the_status_message(kc, api):
    # Deckhouse's webhook refuses enabled: true for an unknown module at creation, so create it disabled
    # first: the controller then marks it `Ignored: unknown module name`.
    delete_mc(api, "no-such-module")
    try:
        run = run_tasks(kc, [mc_task(name="no-such-module", enabled=True, wait=True, wait_timeout=30)])
        assert run.rc != 0 and task_status(run, "set") == "failed"
        assert "no-such-module" in run.task("set")["msg"]
        assert "not found" in run.task("set")["msg"] or "unknown module" in run.task("set")["msg"]
    finally:
        delete_mc(api, "no-such-module")


def test_wait_timeout_reports_last_state(kc, api, simulator):
    delete_mc(api, "ingress-nginx")
    simulator.pause()
    try:
        run = run_tasks(kc, [mc_task(name="ingress-nginx", enabled=True, wait=True, wait_timeout=3)])
    finally:
        simulator.resume()
        delete_mc(api, "ingress-nginx")
    assert run.rc != 0 and task_status(run, "set") == "failed"
    msg = run.task("set")["msg"]
    assert "Timed out after 3s" in msg and "last observed state" in msg and "phase" in msg, msg
    assert run.task("set")["changed"] is True


def test_wait_without_enabled_on_a_bundle_enabled_module_returns(kc, api, prometheus_mc):
    # released DKP: an omitted `enabled` gives EnabledByModuleConfig=False, so a wait that required it hung
    start = time.monotonic()
    run = run_tasks(kc, [mc_task(name=prometheus_mc, version=1, settings={"retentionDays": 6}, wait=True,
                                 wait_timeout=120)])
    assert run.rc == 0, run.output
    assert time.monotonic() - start < 60
    res = run.task("set")
    assert res["changed"] is True and res["module"]["phase"] == "Ready"
    assert res["module"]["enabled_by_config"] is False and res["module"]["enabled"] is True
    again = run_tasks(kc, [mc_task(name=prometheus_mc, version=1, settings={"retentionDays": 6}, wait=True,
                                   wait_timeout=120)])
    assert again.rc == 0 and again.task("set")["changed"] is False
    assert again.task("set")["processed"] is True and again.task("set")["ready"] is True


def test_info_modules_and_lookups(kc, api, prometheus_mc):
    run_tasks(kc, [mc_task(name=prometheus_mc, version=1, settings={"retentionDays": 5, "auth": {"password": "pw-xyz"}})])
    run = run_tasks(kc, [
        {"name": "one", "deckhouse.platform.module_config_info": {"name": prometheus_mc}},
        {"name": "all", "deckhouse.platform.module_config_info": {}},
        {"name": "missing", "deckhouse.platform.module_config_info": {"name": "nope"}},
        {"name": "mods", "deckhouse.platform.module_info": {"enabled": True}},
        {"name": "mod", "deckhouse.platform.module_info": {"name": "deckhouse"}},
        {"name": "lk", "ansible.builtin.set_fact": {
            "settings": "{{ lookup('deckhouse.platform.module_config', '%s') }}" % prometheus_mc,
            "spec": "{{ lookup('deckhouse.platform.module_config', '%s', spec=true) }}" % prometheus_mc,
            "nothing": "{{ lookup('deckhouse.platform.module_config', 'nope', default='none') }}",
            "module": "{{ lookup('deckhouse.platform.module', 'deckhouse') }}"}},
    ], verbosity=3)
    assert run.rc == 0, run.output
    one = run.task("one")["configs"]
    assert [c["name"] for c in one] == [prometheus_mc] and one[0]["settings"]["retentionDays"] == 5
    assert one[0]["settings"]["auth"]["password"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    assert {"deckhouse", "global", prometheus_mc} <= {c["name"] for c in run.task("all")["configs"]}
    assert run.task("missing")["configs"] == []
    assert run.task("missing")["changed"] is False
    mods = run.task("mods")["modules"]
    assert mods and all(m["enabled"] for m in mods)
    assert run.task("mod")["modules"][0]["ready"] is True
    facts = run.task("lk")["ansible_facts"]
    assert facts["settings"]["retentionDays"] == 5
    assert facts["spec"]["version"] == 1
    assert facts["nothing"] == "none"
    assert facts["module"]["name"] == "deckhouse" and facts["module"]["phase"] == "Ready"
    assert "pw-xyz" not in run.output


def test_module_defaults_group_and_env_fallbacks(kc, api, prometheus_mc):
    play = [{"hosts": "localhost", "gather_facts": False,
             "module_defaults": {"group/deckhouse.platform.dkp": {"kubeconfig": str(kc)}},
             "tasks": [mc_task(name=prometheus_mc, version=1, settings={"retentionDays": 4})]}]
    run = run_playbook(kc, play, env={"K8S_AUTH_KUBECONFIG": "/nonexistent/kubeconfig"})
    assert run.rc == 0, run.output
    assert get_mc(api, prometheus_mc)["spec"]["settings"]["retentionDays"] == 4
    bad = run_tasks(kc, [mc_task(name=prometheus_mc, enabled=True)], env={"K8S_AUTH_KUBECONFIG": "/nonexistent/kubeconfig"})
    assert bad.rc != 0 and task_status(bad, "set") == "failed" and "/nonexistent/kubeconfig does not exist" in bad.task("set")["msg"]


def test_cluster_without_dkp_crds_gives_a_clear_error(kc, bare_cluster):
    run = run_tasks(kc, [
        {"name": "set", MC: {"name": "prometheus", "enabled": True, "kubeconfig": str(bare_cluster)}, "ignore_errors": True},
        {"name": "lk", "ansible.builtin.debug": {
            "msg": "{{ lookup('deckhouse.platform.module', 'deckhouse', kubeconfig='%s') }}" % bare_cluster},
         "ignore_errors": True},
    ])
    assert task_status(run, "set") == "failed" and task_status(run, "lk") == "failed"
    msg = run.task("set")["msg"]
    assert "does not serve deckhouse.io/v1alpha1 ModuleConfig: is this a Deckhouse cluster?" in msg, msg
    assert "Traceback" not in run.output
    assert "does not serve deckhouse.io/v1alpha1 Module" in run.task("lk")["msg"]


def test_info_waits_for_a_config_to_appear_and_to_go(kc, api):
    """module_config_info wait_for present/absent: another writer creates the object while the task waits."""
    name = "wait-presence-probe"
    create = {"apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleConfig", "metadata": {"name": name},
              "spec": {"enabled": False}}
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(run_tasks, kc, [{"name": "info", "register": "out", "deckhouse.platform.module_config_info": {
            "name": name, "wait_for": "present", "wait_timeout": 60}}])
        time.sleep(3)  # the task is waiting (ansible-playbook start-up included)
        api.create_cluster_custom_object("deckhouse.io", "v1alpha1", "moduleconfigs", create)
        run = waiting.result(timeout=120)
    assert run.rc == 0, run.output
    assert [c["name"] for c in run.task("info")["configs"]] == [name]

    api.delete_cluster_custom_object("deckhouse.io", "v1alpha1", "moduleconfigs", name)
    gone = run_tasks(kc, [{"name": "info", "register": "out", "deckhouse.platform.module_config_info": {
        "name": name, "wait_for": "absent", "wait_timeout": 60}}])
    assert gone.rc == 0, gone.output
    assert gone.task("info")["configs"] == []

    missing = run_tasks(kc, [{"name": "info", "register": "out", "deckhouse.platform.module_config_info": {
        "name": name, "wait_for": "present", "wait_timeout": 2}}])
    assert missing.rc != 0
    assert "ModuleConfig %s does not exist" % name in missing.task("info")["msg"]
