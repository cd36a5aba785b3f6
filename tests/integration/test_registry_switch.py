"""The registry_switch role through playbooks/registry_switch.yml, against the local DKP cluster and the
Deckhouse simulator: switches, refusals, live progress, resume, idempotence, check mode, rollback, secrets,
and a rolling run over an inventory of clusters."""
from __future__ import annotations

import pytest

from ansible_run import run_playbook
from registry_support import (
    LICENSE,
    PASSWORD,
    PLAYBOOK,
    REPO,
    RW_PASSWORD,
    Background,
    Cluster,
    assert_no_secrets,
    inventory,
    our_writes,
    report,
    switch_vars,
)

NO_LOG = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


@pytest.fixture
def cluster(kube, fresh_simulator):
    c = Cluster(kube)
    c.enable_registry()
    return c


@pytest.fixture
def inv(tmp_path, kc):
    return inventory(tmp_path, {"cluster-a": kc})


def play(kc, inv, extra_vars, **kw):
    return run_playbook(kc, PLAYBOOK, extra_vars=extra_vars, args=["-i", str(inv)], **kw)


def lines_before(output, marker):
    """Output printed before the result line of the task that waits (progress must come before it)."""
    return output.split(marker)[0]


# -- switches ---------------------------------------------------------------------------------------------

def test_unmanaged_to_direct_with_live_progress_and_report(kc, dkp_cluster, cluster, inv, tmp_path):
    before = cluster.mc("deckhouse")["spec"]["settings"]
    mark = dkp_cluster.audit_marker()
    run = play(kc, inv, switch_vars(tmp_path, mode="Direct", images_repo=REPO, license=LICENSE, confirm_restart=True))
    assert run.rc == 0, run.output
    assert cluster.complete("Direct")
    settings = cluster.mc("deckhouse")["spec"]["settings"]
    assert settings["registry"] == {"mode": "Direct", "direct": {"imagesRepo": REPO, "license": LICENSE}}
    # only spec.settings.registry changed
    assert {k: v for k, v in settings.items() if k != "registry"} == {k: v for k, v in before.items() if k != "registry"}
    writes = our_writes(dkp_cluster, mark, name="deckhouse")
    assert [w.verb for w in writes] == ["patch"], writes
    # progress is printed while the wait task runs, before its result
    waiting = lines_before(run.output, "switch to Direct complete")
    for line in ("registry_mode [cluster-a]: TransitionContainerdConfigReady: True",
                 "registry_mode [cluster-a]: InClusterProxyReady: False \u2014 ",
                 "registry_mode [cluster-a]: Ready: True"):
        assert line in waiting, run.output
    rep = report(tmp_path)
    assert rep["outcome"] == "switched" and rep["before"]["mode"] == "Unmanaged"
    assert rep["after"]["state"]["mode"] == "Direct" and rep["after"]["settings"]["direct"]["license"] == NO_LOG
    assert rep["restart"]["all_components"] is True
    assert {t["type"] for t in rep["switch"][0]["timings"]} >= {"TransitionContainerdConfigReady", "Ready"}
    assert set(rep["checks"]) == {"module_ready", "control_plane_ready", "queue_empty", "registry_transition"}
    assert rep["verify"]["module_ready"]["passed"] and rep["verify"]["queue_empty"]["passed"]
    assert_no_secrets(run.output, str(run.records), (tmp_path / "reports").joinpath(
        "registry-switch-cluster-a.json").read_text())


def test_first_switch_needs_confirm_restart(kc, dkp_cluster, cluster, inv, tmp_path):
    mark = dkp_cluster.audit_marker()
    run = play(kc, inv, switch_vars(tmp_path, mode="Direct", images_repo=REPO))
    assert run.rc != 0
    assert "restarts all DKP components" in run.output and "registry_switch_confirm_restart: true" in run.output
    assert "Nothing was written" in run.output
    assert our_writes(dkp_cluster, mark) == []
    assert report(tmp_path)["outcome"] == "failed"


def test_direct_to_proxy(kc, dkp_cluster, cluster, inv, tmp_path):
    cluster.set_registry({"mode": "Direct", "direct": {"imagesRepo": REPO, "username": "puller", "password": PASSWORD}},
                         "Direct")
    run = play(kc, inv, switch_vars(tmp_path, mode="Proxy", images_repo=REPO, username="puller", password=PASSWORD,
                                    ttl="30m"))
    assert run.rc == 0, run.output
    assert cluster.complete("Proxy")
    assert cluster.registry_settings() == {"mode": "Proxy", "proxy": {"imagesRepo": REPO, "username": "puller",
                                                                      "password": PASSWORD, "ttl": "30m"}}
    assert "registry_mode [cluster-a]: NodeServicesReady: True" in run.output
    rep = report(tmp_path)
    assert rep["restart"]["all_components"] is False and rep["restart"]["deckhouse"] is True
    assert_no_secrets(run.output, str(run.records), str(rep))


def test_direct_to_local_with_images_pushed_mid_wait(kc, cluster, inv, tmp_path, simulator):
    cluster.set_registry({"mode": "Direct", "direct": {"imagesRepo": REPO, "license": LICENSE}}, "Direct")
    cluster.create_rw_user()
    bg = Background(kc, inv, switch_vars(tmp_path, mode="Local"), tmp_path / "out.log")
    try:
        bg.wait_for_output("RegistryContainsRequiredImages: False")
        bg.wait_for_output("d8 mirror push")
        assert cluster.state()["target_mode"] == "Local" and not cluster.complete("Local")
        simulator.local_images_pushed()
        rc = bg.wait()
    finally:
        bg.kill()
    out = bg.output
    assert rc == 0, out
    assert cluster.complete("Local") and cluster.registry_settings() == {"mode": "Local"}
    assert "registry.dkp.example.com/system/deckhouse" in out  # registry.<publicDomain>/system/deckhouse
    assert "--registry-login='rw'" in out and "registry-user-rw" in out
    push_hint = out.index("d8 mirror push")
    assert out.index("RegistryContainsRequiredImages: True") > push_hint  # the wait went on after the push
    assert_no_secrets(out, str(report(tmp_path)), secrets=(RW_PASSWORD, LICENSE, "FAKE-SECRET"))


def test_proxy_to_local_refused_before_any_write_then_done_via_direct(kc, dkp_cluster, cluster, inv, tmp_path,
                                                                      simulator):
    cluster.set_registry({"mode": "Proxy", "proxy": {"imagesRepo": REPO, "license": LICENSE, "ttl": "1h"}}, "Proxy")
    mark = dkp_cluster.audit_marker()
    refused = play(kc, inv, switch_vars(tmp_path, mode="Local"))
    assert refused.rc != 0
    assert "mode transition from Proxy to Local not supported" in refused.output
    assert "via: Direct" in refused.output
    assert our_writes(dkp_cluster, mark) == []  # not even a dry-run of the write: only the plan's
    assert cluster.complete("Proxy")

    simulator.local_images_pushed()
    done = play(kc, inv, switch_vars(tmp_path, mode="Local", via="Direct"))
    assert done.rc == 0, done.output
    assert cluster.complete("Local") and cluster.registry_settings() == {"mode": "Local"}
    rep = report(tmp_path)
    assert rep["hops"] == ["Direct", "Local"]
    # the Direct hop kept the Proxy upstream and its license (carried inside the module, never shown)
    assert rep["switch"][0]["settings"] == {"mode": "Direct", "direct": {"imagesRepo": REPO, "license": NO_LOG}}
    assert "switch to Direct complete" in done.output and "switch to Local complete" in done.output
    assert done.output.index("switch to Direct complete") < done.output.index("registry-state: mode Direct, target Local")
    assert_no_secrets(done.output, str(done.records), str(rep))


# -- preflight refusals -------------------------------------------------------------------------------------

PREFLIGHT_FAILURES = {
    "cordoned master": (lambda sim: sim.node_cordon("master-1"),
                        "master-1 is cordoned (SchedulingDisabled)"),
    "NotReady master": (lambda sim: sim.node_not_ready("master-2"),
                        "master-2 is NotReady"),
    "failing queue task": (lambda sim: sim.add_failing_task("ModuleRun:main:cert-manager", error="hook failed: boom"),
                           "failing task(s): ModuleRun:main:cert-manager"),
}


@pytest.mark.parametrize("case", sorted(PREFLIGHT_FAILURES))
def test_preflight_failure_refuses_without_writing(case, kc, dkp_cluster, cluster, inv, tmp_path, simulator):
    cluster.set_registry({"mode": "Direct", "direct": {"imagesRepo": REPO}}, "Direct")
    make, message = PREFLIGHT_FAILURES[case]
    make(simulator)
    mark = dkp_cluster.audit_marker()
    run = play(kc, inv, switch_vars(tmp_path, mode="Proxy", images_repo=REPO, queue_wait_timeout=5))
    assert run.rc != 0
    assert "refused by preflight" in run.output and message in run.output
    assert "Nothing was written" in run.output
    assert our_writes(dkp_cluster, mark) == []
    rep = report(tmp_path)
    assert rep["outcome"] == "failed" and any(message in b for b in rep["blockers"])
    assert cluster.complete("Direct")


def test_preflight_registry_module_not_ready(kc, dkp_cluster, kube, fresh_simulator, inv, tmp_path):
    # released DKP runs the registry module by default; it is critical, disabling needs the annotation
    Cluster(kube).disable_registry()
    mark = dkp_cluster.audit_marker()
    run = play(kc, inv, switch_vars(tmp_path, mode="Direct", images_repo=REPO, confirm_restart=True))
    assert run.rc != 0
    assert "module_ready: Module registry is disabled" in run.output
    assert our_writes(dkp_cluster, mark) == []


# -- waiting, resuming, idempotence, check mode, rollback ------------------------------------------------------

def test_condition_held_false_until_timeout(kc, cluster, inv, tmp_path, simulator):
    cluster.set_registry({"mode": "Direct", "direct": {"imagesRepo": REPO}}, "Direct")
    simulator.hold_condition("NodeServicesReady", "master-1: registry-nodeservices pod is not running")
    run = play(kc, inv, switch_vars(tmp_path, mode="Proxy", images_repo=REPO, timeout=8))
    assert run.rc != 0
    held = "NodeServicesReady: False \u2014 master-1: registry-nodeservices pod is not running"
    assert "registry_mode [cluster-a]: " + held in run.output  # shown live
    assert "Timed out after 8s waiting for the registry switch to Proxy" in run.output
    assert held in run.output.split("Timed out after 8s")[1]  # and in the failure message
    rep = report(tmp_path)
    assert rep["outcome"] == "failed" and "wait" in rep["failed_task"]
    assert any(c["type"] == "NodeServicesReady" for c in rep["diagnostics"]["registry_state"]["pending"])
    assert rep["diagnostics"]["leader"]["phase"] == "Running"
    assert rep["rollback"] is None


def test_resume_after_an_interrupted_run(kc, dkp_cluster, cluster, inv, tmp_path, simulator):
    cluster.set_registry({"mode": "Direct", "direct": {"imagesRepo": REPO}}, "Direct")
    simulator.hold_condition("NodeServicesReady", "master-0: waiting for the test")
    ev = switch_vars(tmp_path, mode="Proxy", images_repo=REPO)
    first = Background(kc, inv, ev, tmp_path / "first.log")
    try:
        first.wait_for_output("NodeServicesReady: False")
    finally:
        first.kill()  # interrupted mid-wait
    assert cluster.state()["target_mode"] == "Proxy" and not cluster.complete("Proxy")

    # The killed job's run lock is still held (its Lease outlives every wait of the role): a plain re-run is
    # refused at once, saying who holds it, since when, and how to get past it; nothing is written.
    mark = dkp_cluster.audit_marker()
    blocked = play(kc, inv, ev)
    assert blocked.rc != 0
    assert "Run lock Lease d8-system/deckhouse-platform-runbook is held by " in blocked.output, blocked.output
    assert " since 20" in blocked.output and "for registry_switch to Proxy" in blocked.output
    assert "registry_switch_break_lock: true" in blocked.output and "Nothing was written" in blocked.output
    assert our_writes(dkp_cluster, mark, dry_run=None) == []

    # The operator checked that the job is gone and re-runs with the survey answer "true": the lock is taken
    # over (the previous holder is named) and the switch in progress is resumed.
    second = Background(kc, inv, dict(ev, registry_switch_break_lock="true"), tmp_path / "second.log")
    try:
        second.wait_for_output("resuming the switch to Proxy")
        second.wait_for_output("switch and wait, hop Proxy")
        second.wait_for_output("registry_mode [cluster-a]: NodeServicesReady: False")  # waiting, not writing
        simulator.release_condition()
        rc = second.wait()
    finally:
        second.kill()
    assert rc == 0, second.output
    assert "taken over (break_lock) from " in second.output
    assert cluster.complete("Proxy")
    assert our_writes(dkp_cluster, mark) == []  # the write of the first run is not repeated
    rep = report(tmp_path)
    assert rep["resumed"] is True and rep["outcome"] == "resumed"


def test_second_run_is_idempotent_and_ignores_busy_queue(kc, dkp_cluster, cluster, inv, tmp_path, simulator):
    ev = switch_vars(tmp_path, mode="Direct", images_repo=REPO, license=LICENSE, confirm_restart=True)
    first = play(kc, inv, ev)
    assert first.rc == 0, first.output
    simulator.add_pending_task("ModuleRun:main:prometheus")  # a busy queue must not block a no-op
    mark = dkp_cluster.audit_marker()
    second = play(kc, inv, ev)
    assert second.rc == 0, second.output
    assert "changed=0" in second.output.split("PLAY RECAP")[1]
    assert "nothing to do" in second.output
    assert our_writes(dkp_cluster, mark) == []
    assert report(tmp_path)["outcome"] == "unchanged"


def test_check_mode_writes_nothing(kc, dkp_cluster, cluster, inv, tmp_path):
    mark = dkp_cluster.audit_marker()
    run = play(kc, inv, switch_vars(tmp_path, mode="Direct", images_repo=REPO, license=LICENSE, confirm_restart=True),
               check=True)
    assert run.rc == 0, run.output
    writes = our_writes(dkp_cluster, mark, dry_run=None)
    assert writes and all(w.dry_run for w in writes), writes
    assert cluster.complete("Unmanaged") and cluster.registry_settings() in (None, {})
    rep = report(tmp_path)
    assert rep["outcome"] == "check_mode" and rep["switch"][0]["changed"] is True
    assert_no_secrets(run.output, str(run.records), str(rep))


def test_rollback_restores_previous_settings(kc, dkp_cluster, cluster, inv, tmp_path, simulator):
    previous = {"mode": "Direct", "direct": {"imagesRepo": REPO, "license": LICENSE}}
    cluster.set_registry(previous, "Direct")
    simulator.hold_condition("NodeServicesReady", "master-2: held for the rollback test")
    run = play(kc, inv, switch_vars(tmp_path, mode="Proxy", images_repo="mirror.example.com/deckhouse/ee",
                                    username="puller", password=PASSWORD, timeout=6, rollback_on_failure=True),
               verbosity=3)
    assert run.rc != 0
    assert "Rolled back to the previous settings (mode Direct)" in run.output
    assert cluster.registry_settings() == previous  # the license came back although it was never printed
    assert cluster.complete("Direct")
    rep = report(tmp_path)
    assert rep["rollback"]["succeeded"] is True and rep["rollback"]["mode"] == "Direct"
    assert_no_secrets(run.output, str(run.records), str(rep))


def test_no_secret_in_verbose_output_or_report(kc, cluster, inv, tmp_path):
    run = play(kc, inv, switch_vars(tmp_path, mode="Unmanaged", images_repo=REPO, username="puller",
                                    password=PASSWORD, confirm_restart=True), verbosity=3)
    assert run.rc == 0, run.output
    assert cluster.registry_settings()["unmanaged"]["password"] == PASSWORD
    text = (tmp_path / "reports" / "registry-switch-cluster-a.json").read_text()
    assert NO_LOG in text
    assert_no_secrets(run.output, str(run.records), text)


# -- an inventory of clusters ----------------------------------------------------------------------------------

def test_clusters_roll_in_sequence_and_stop_at_the_first_failure(kc, dkp_cluster, cluster, tmp_path):
    broken = tmp_path / "missing.kubeconfig"
    # first the good cluster, then the broken one: both are handled, one after the other
    inv = inventory(tmp_path, {"cluster-a": kc, "cluster-broken": broken})
    run = play(kc, inv, switch_vars(tmp_path, mode="Direct", images_repo=REPO, confirm_restart=True))
    assert run.rc != 0
    assert cluster.complete("Direct")
    assert run.output.index("ok: [cluster-a]") < run.output.index("[cluster-broken]")
    assert "kubeconfig %s does not exist" % broken in run.output

    # the broken one first: the play stops there and the good cluster is untouched
    inv = tmp_path / "reversed.yml"
    inv.write_text("dkp_clusters:\n  hosts:\n    cluster-broken:\n      registry_switch_kubeconfig: %s\n"
                   "    cluster-a:\n      registry_switch_kubeconfig: %s\n" % (broken, kc))
    mark = dkp_cluster.audit_marker()
    stopped = play(kc, inv, switch_vars(tmp_path, mode="Proxy", images_repo=REPO))
    assert stopped.rc != 0
    assert "[cluster-a]" not in stopped.output
    assert "cluster-a" not in stopped.output.split("PLAY RECAP")[1]
    assert our_writes(dkp_cluster, mark, dry_run=None) == []
    assert cluster.complete("Direct")
