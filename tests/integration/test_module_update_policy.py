"""deckhouse.platform.module_update_policy and module_update_policy_info through ansible-playbook against the
local DKP cluster. Every task's status is asserted: a task expected to succeed runs without ignore_errors, a task
expected to fail is the only kind that carries it, and is asserted `failed`."""
from __future__ import annotations

import json

import pytest

from ansible_run import run_playbook, run_tasks
from ansible_run import task_status as status
from dkp_audit import our_writes

MUP = "deckhouse.platform.module_update_policy"
INFO = "deckhouse.platform.module_update_policy_info"
WINDOWS_MESSAGE = ("Invalid update windows. Start time (windows.from) should be less than the end time of the "
                   "update window (windows.to)")


def mup_task(title="mup", fails=False, **params):
    task = {"name": title, MUP: params, "register": "out"}
    if fails:
        task["ignore_errors"] = True  # asserted `failed` by the test
    return task


def ok(run, title="mup"):
    assert status(run, title) == "ok", run.output
    return run.task(title)


def failed(run, title="mup"):
    assert status(run, title) == "failed", run.output
    return run.task(title)


@pytest.fixture
def policy(api):
    delete_policy(api, "night")
    yield "night"
    delete_policy(api, "night")


@pytest.fixture
def policy_user(api, policy):
    """The ModuleConfig hello-world names the policy; deleted before the policy (DKP refuses the other order)."""
    yield "hello-world"
    from kubernetes.client.rest import ApiException
    try:
        api.delete_cluster_custom_object("deckhouse.io", "v1alpha1", "moduleconfigs", "hello-world")
    except ApiException as e:
        if e.status != 404:
            raise


def get_policy(api, name):
    from kubernetes.client.rest import ApiException
    try:
        return api.get_cluster_custom_object("deckhouse.io", "v1alpha2", "moduleupdatepolicies", name)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def delete_policy(api, name):
    from kubernetes.client.rest import ApiException
    try:
        api.delete_cluster_custom_object("deckhouse.io", "v1alpha2", "moduleupdatepolicies", name)
    except ApiException as e:
        if e.status != 404:
            raise


WINDOWS = [{"days": ["Mon", "Tue"], "from": "1:00", "to": "4:30"}, {"from": "22:00", "to": "23:59"}]


def test_create_update_and_second_run_unchanged(kc, api, dkp_cluster, policy):
    task = mup_task(name=policy, release_channel="EarlyAccess", mode="Manual", windows=WINDOWS)
    first = run_tasks(kc, [task])
    assert ok(first)["changed"] is True
    spec = get_policy(api, policy)["spec"]
    assert spec == {"releaseChannel": "EarlyAccess", "update": {"mode": "Manual", "windows": WINDOWS}}

    mark = dkp_cluster.audit_marker()
    second = run_tasks(kc, [task])
    assert ok(second)["changed"] is False
    # the same windows as JSON text (a survey answer) are no change either
    as_text = run_tasks(kc, [mup_task(name=policy, windows=json.dumps(WINDOWS))])
    assert ok(as_text)["changed"] is False
    assert our_writes(dkp_cluster, mark) == []

    only_mode = run_tasks(kc, [mup_task(name=policy, mode="AutoPatch")], diff=True)
    result = ok(only_mode)
    assert result["changed"] is True
    assert result["diff"]["before"]["spec"]["update"]["mode"] == "Manual"
    assert result["diff"]["after"]["spec"]["update"]["mode"] == "AutoPatch"
    spec = get_policy(api, policy)["spec"]
    assert spec["update"]["windows"] == WINDOWS and spec["releaseChannel"] == "EarlyAccess", "other fields kept"

    cleared = run_tasks(kc, [mup_task(name=policy, windows=[])])
    assert ok(cleared)["changed"] is True
    assert "windows" not in get_policy(api, policy)["spec"]["update"]


def test_server_defaults_are_not_a_change(kc, api, policy):
    first = run_tasks(kc, [mup_task(name=policy)])
    assert ok(first)["changed"] is True
    assert get_policy(api, policy)["spec"] == {"releaseChannel": "Stable", "update": {"mode": "Auto"}}
    again = run_tasks(kc, [mup_task(name=policy, release_channel="Stable", mode="Auto")])
    assert ok(again)["changed"] is False


def test_check_mode_writes_nothing(kc, api, dkp_cluster, policy):
    mark = dkp_cluster.audit_marker()
    run = run_tasks(kc, [mup_task(name=policy, mode="Manual", windows=WINDOWS)], check=True, diff=True)
    result = ok(run)
    assert result["changed"] is True
    assert result["policy"]["spec"]["update"]["mode"] == "Manual"
    writes = our_writes(dkp_cluster, mark)
    assert writes and all(w.dry_run for w in writes), writes
    assert get_policy(api, policy) is None


def test_lts_channel_follows_the_dkp_release(kc, api, dkp_cluster, dkp_version, policy):
    """1.76 knows release channel Lts; on 1.75 the task refuses before writing and says why."""
    mark = dkp_cluster.audit_marker()
    run = run_tasks(kc, [mup_task(name=policy, release_channel="Lts", fails=dkp_version == "1.75")])
    if dkp_version == "1.75":
        msg = failed(run)["msg"]
        assert "release_channel Lts needs DKP 1.76 or later" in msg, msg
        assert our_writes(dkp_cluster, mark) == []
        assert get_policy(api, policy) is None
    else:
        assert ok(run)["changed"] is True
        assert get_policy(api, policy)["spec"]["releaseChannel"] == "Lts"


def test_bad_inputs_are_refused_before_any_write(fresh_simulator, kc, api, dkp_cluster, policy, policy_user):
    """One playbook, many bad inputs: each task fails with its message and the audit log shows no write."""
    # a policy in use by a ModuleConfig, for the delete refusal
    setup = run_tasks(kc, [
        mup_task(name=policy, mode="Manual"),
        {"name": "mc", "deckhouse.platform.module_config": {"name": "hello-world", "update_policy": policy}},
    ])
    assert ok(setup)["changed"] is True and ok(setup, "mc")
    cases = [
        ("w-order", dict(name=policy, mode="Auto", windows=[{"from": "10:00", "to": "8:00"}]), WINDOWS_MESSAGE),
        ("w-equal", dict(name=policy, mode="Auto", windows=[{"from": "10:00", "to": "10:00"}]), WINDOWS_MESSAGE),
        ("w-24h", dict(name=policy, windows=[{"from": "24:00", "to": "25:00"}]),
         "spec.update.windows[0].from in body should match"),
        ("w-second", dict(name=policy, windows=[{"from": "8:00", "to": "9:00"}, {"from": "8", "to": "9:00"}]),
         "spec.update.windows[1].from in body should match"),
        ("w-day", dict(name=policy, windows=[{"from": "8:00", "to": "9:00", "days": ["Monday"]}]),
         "value of days must be one or more of"),
        ("w-string", dict(name=policy, windows="1:00-4:30"), "windows must be a list of windows"),
        ("w-dict", dict(name=policy, windows={"from": "1:00", "to": "2:00"}), "windows must be a list of windows"),
        ("w-element", dict(name=policy, windows=["1:00-2:00"]), "windows[0] must be a window"),
        ("w-no-to", dict(name=policy, windows=[{"from": "8:00"}]), "windows[0]: missing required arguments: to"),
        ("w-extra", dict(name=policy, windows=[{"from": "8:00", "to": "9:00", "day": ["Mon"]}]), "windows[0]: "),
        ("mode", dict(name=policy, mode="Sometimes"), "value of mode must be one of"),
        ("channel", dict(name=policy, release_channel="stable"), "value of release_channel must be one of"),
        ("name", dict(name="Night_Policy", mode="Auto"), "not a valid ModuleUpdatePolicy name"),
        ("absent-mode", dict(name=policy, state="absent", mode="Manual"), "state=absent deletes the policy; remove mode"),
        ("in-use", dict(name=policy, state="absent"),
         "the '%s' update policy is used by the 'hello-world' module config" % policy),
        ("in-use-check", dict(name=policy, state="absent"), "is in use"),
    ]
    mark = dkp_cluster.audit_marker()
    tasks = [mup_task(title, fails=True, **params) for title, params, _needle in cases]
    tasks[-1]["check_mode"] = True
    run = run_tasks(kc, tasks)
    for title, _params, needle in cases:
        msg = failed(run, title)["msg"]
        assert needle in msg, (title, msg)
    assert failed(run, "in-use")["module_configs"] == ["hello-world"]
    assert "Traceback" not in run.output
    assert our_writes(dkp_cluster, mark) == [], "refused before any write (check mode included)"
    assert get_policy(api, policy)["spec"]["update"]["mode"] == "Manual"


def test_unquoted_times_are_explained(kc, dkp_cluster, policy, tmp_path):
    # YAML 1.1 reads `from: 10:30` as the base-60 number 630; write the play by hand to keep it unquoted.
    play = tmp_path / "play.yml"
    play.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n"
                    "    - name: mup\n      ignore_errors: true\n      %s:\n        name: %s\n"
                    "        windows:\n          - from: 10:30\n            to: 11:30\n" % (MUP, policy))
    mark = dkp_cluster.audit_marker()
    run = run_playbook(kc, play)
    msg = failed(run)["msg"]
    assert "'630'" in msg and "quote the time" in msg, msg
    assert our_writes(dkp_cluster, mark) == []


def test_absent(kc, api, policy):
    assert ok(run_tasks(kc, [mup_task(name=policy, mode="Manual")]))["changed"] is True
    run = run_tasks(kc, [mup_task(name=policy, state="absent")], diff=True)
    assert ok(run)["changed"] is True
    assert get_policy(api, policy) is None
    assert ok(run_tasks(kc, [mup_task(name=policy, state="absent")]))["changed"] is False


def test_info_reads_one_or_all_with_their_users_and_a_query(fresh_simulator, kc, dkp_cluster, policy, policy_user):
    setup = run_tasks(kc, [
        mup_task(name=policy, mode="Manual", windows=WINDOWS),
        {"name": "mc", "deckhouse.platform.module_config": {"name": "hello-world", "update_policy": policy}},
    ])
    ok(setup)
    ok(setup, "mc")
    mark = dkp_cluster.audit_marker()
    run = run_tasks(kc, [
        {"name": "one", INFO: {"name": policy}, "register": "out"},
        {"name": "all", INFO: {}, "register": "out"},
        {"name": "missing", INFO: {"name": "nope"}, "register": "out"},
        {"name": "query", INFO: {"query": "[?mode=='Manual'].{name: name, users: used_by}"}, "register": "out"},
        {"name": "bad-query", INFO: {"query": "[?mode=="}, "register": "out", "ignore_errors": True},
        {"name": "bad-name", INFO: {"name": "Bad_Name"}, "register": "out", "ignore_errors": True},
    ], check=True)
    one = ok(run, "one")
    assert one["changed"] is False
    assert one["policy"]["mode"] == "Manual" and one["policy"]["windows"] == WINDOWS
    assert one["policy"]["used_by"] == ["hello-world"] and [p["name"] for p in one["policies"]] == [policy]
    assert policy in [p["name"] for p in ok(run, "all")["policies"]]
    missing = ok(run, "missing")
    assert missing["policy"] is None and missing["policies"] == []
    assert {"name": policy, "users": ["hello-world"]} in ok(run, "query")["query_result"]
    assert "`query` is not a valid JMESPath expression" in failed(run, "bad-query")["msg"]
    assert "not a valid ModuleUpdatePolicy name" in failed(run, "bad-name")["msg"]
    assert our_writes(dkp_cluster, mark) == []
