"""deckhouse.platform.module_update_policy through ansible-playbook against the local DKP cluster."""
from __future__ import annotations

import pytest

from ansible_run import run_tasks
from ansible_run import task_status as status
from dkp_audit import our_writes

MUP = "deckhouse.platform.module_update_policy"
WINDOWS_MESSAGE = ("Invalid update windows. Start time (windows.from) should be less than the end time of the "
                   "update window (windows.to)")


def mup_task(title="mup", **params):
    return {"name": title, MUP: params, "register": "out", "ignore_errors": True}


@pytest.fixture
def policy(api):
    delete_policy(api, "night")
    yield "night"
    delete_policy(api, "night")


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
    assert first.rc == 0 and first.task("mup")["changed"] is True, first.output
    spec = get_policy(api, policy)["spec"]
    assert spec == {"releaseChannel": "EarlyAccess", "update": {"mode": "Manual", "windows": WINDOWS}}

    mark = dkp_cluster.audit_marker()
    second = run_tasks(kc, [task])
    assert second.rc == 0 and second.task("mup")["changed"] is False, second.output
    assert our_writes(dkp_cluster, mark) == []

    only_mode = run_tasks(kc, [mup_task(name=policy, mode="AutoPatch")], diff=True)
    result = only_mode.task("mup")
    assert only_mode.rc == 0 and result["changed"] is True, only_mode.output
    assert result["diff"]["before"]["spec"]["update"]["mode"] == "Manual"
    assert result["diff"]["after"]["spec"]["update"]["mode"] == "AutoPatch"
    spec = get_policy(api, policy)["spec"]
    assert spec["update"]["windows"] == WINDOWS and spec["releaseChannel"] == "EarlyAccess", "other fields kept"

    cleared = run_tasks(kc, [mup_task(name=policy, windows=[])])
    assert cleared.task("mup")["changed"] is True
    assert "windows" not in get_policy(api, policy)["spec"]["update"]


def test_server_defaults_are_not_a_change(kc, api, policy):
    first = run_tasks(kc, [mup_task(name=policy)])
    assert first.rc == 0 and first.task("mup")["changed"] is True, first.output
    assert get_policy(api, policy)["spec"] == {"releaseChannel": "Stable", "update": {"mode": "Auto"}}
    again = run_tasks(kc, [mup_task(name=policy, release_channel="Stable", mode="Auto")])
    assert again.task("mup")["changed"] is False


def test_check_mode_writes_nothing(kc, api, dkp_cluster, policy):
    mark = dkp_cluster.audit_marker()
    run = run_tasks(kc, [mup_task(name=policy, mode="Manual", windows=WINDOWS)], check=True, diff=True)
    assert run.rc == 0 and run.task("mup")["changed"] is True, run.output
    assert run.task("mup")["policy"]["spec"]["update"]["mode"] == "Manual"
    writes = our_writes(dkp_cluster, mark)
    assert writes and all(w.dry_run for w in writes), writes
    assert get_policy(api, policy) is None


@pytest.mark.parametrize("windows, needle", [
    ([{"from": "10:00", "to": "8:00"}], WINDOWS_MESSAGE),
    ([{"from": "10:00", "to": "10:00"}], WINDOWS_MESSAGE),
    ([{"from": "24:00", "to": "25:00"}], "spec.update.windows[0].from in body should match"),
    ([{"from": "8:00", "to": "9:00"}, {"from": "8", "to": "9:00"}], "spec.update.windows[1].from in body should match"),
    ([{"from": "8:00", "to": "9:00", "days": ["Monday"]}], "value of days must be one or more of"),
])
def test_windows_are_validated_before_writing(kc, dkp_cluster, policy, windows, needle):
    mark = dkp_cluster.audit_marker()
    run = run_tasks(kc, [mup_task(name=policy, mode="Auto", windows=windows)])
    assert status(run, "mup") == "failed"
    assert needle in run.task("mup")["msg"], run.task("mup")["msg"]
    assert our_writes(dkp_cluster, mark) == []


def test_unquoted_times_are_explained(kc, dkp_cluster, policy, tmp_path):
    # YAML 1.1 reads `from: 10:30` as the base-60 number 630; write the play by hand to keep it unquoted.
    from ansible_run import run_playbook
    play = tmp_path / "play.yml"
    play.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n"
                    "    - name: mup\n      ignore_errors: true\n      %s:\n        name: %s\n"
                    "        windows:\n          - from: 10:30\n            to: 11:30\n" % (MUP, policy))
    mark = dkp_cluster.audit_marker()
    run = run_playbook(kc, play)
    msg = run.task("mup")["msg"]
    assert "'630'" in msg and "quote the time" in msg, msg
    assert our_writes(dkp_cluster, mark) == []


def test_absent(kc, api, policy):
    run_tasks(kc, [mup_task(name=policy, mode="Manual")])
    run = run_tasks(kc, [mup_task(name=policy, state="absent")], diff=True)
    assert run.rc == 0 and run.task("mup")["changed"] is True, run.output
    assert get_policy(api, policy) is None
    assert run_tasks(kc, [mup_task(name=policy, state="absent")]).task("mup")["changed"] is False
    bad = run_tasks(kc, [mup_task(name=policy, state="absent", mode="Manual")])
    assert "state=absent deletes the policy; remove mode" in bad.task("mup")["msg"]
