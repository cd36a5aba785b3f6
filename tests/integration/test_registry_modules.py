"""registry_state_info, deckhouse_queue_info, preflight, registry_mode and the registry_state lookup,
through ansible-playbook against the local DKP cluster and the Deckhouse simulator."""
from __future__ import annotations

import base64
import pathlib

import pytest
import yaml

from ansible_run import run_tasks
from registry_support import (
    FAKE_STATE_SECRET,
    LICENSE,
    PASSWORD,
    REPO,
    Cluster,
    assert_no_secrets,
    our_writes,
    task_status,
)

NO_LOG = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


@pytest.fixture
def cluster(kube, fresh_simulator):
    return Cluster(kube)


@pytest.fixture
def registry(cluster):
    cluster.enable_registry()
    return cluster


def task(module, register="out", **params):
    return {"name": register, "deckhouse.platform." + module: params, "register": register}


# -- registry_state_info / lookup --------------------------------------------------------------------

def test_state_info_without_registry_module(kc, cluster):
    cluster.disable_registry()  # on by default since 1.75
    run = run_tasks(kc, [task("registry_state_info"),
                         {"name": "lookup", "ansible.builtin.set_fact": {
                             "looked": "{{ lookup('deckhouse.platform.registry_state') }}"}}])
    assert run.rc == 0, run.output
    out = run.task("out")
    assert out["exists"] is False and out["complete"] is False and out["in_progress"] is False
    assert out["mode"] is None and out["conditions"] == []
    assert "does not exist" in out["message"]
    assert run.task("lookup")["ansible_facts"]["looked"]["exists"] is False


def test_state_info_and_lookup_never_return_state(kc, registry):
    run = run_tasks(kc, [task("registry_state_info"),
                         {"name": "lookup", "ansible.builtin.set_fact": {
                             "looked": "{{ lookup('deckhouse.platform.registry_state') }}"}}], verbosity=3)
    assert run.rc == 0, run.output
    out = run.task("out")
    assert out["exists"] and out["complete"] and out["mode"] == "Unmanaged" and out["target_mode"] == "Unmanaged"
    assert [c["type"] for c in out["conditions"]] == ["Ready"]
    assert "state" not in out
    looked = run.task("lookup")["ansible_facts"]["looked"]
    assert looked["mode"] == "Unmanaged" and looked["complete"] is True
    assert_no_secrets(run.output, str(run.records))


def test_state_info_long_poll_returns_every_change(kc, registry, simulator):
    first = run_tasks(kc, [task("registry_state_info")])
    fp = first.task("out")["fingerprint"]
    # nothing changes: the long poll ends after its timeout with the same state
    quiet = run_tasks(kc, [task("registry_state_info", changed_since=fp, wait_timeout=2)])
    assert quiet.task("out")["timed_out"] is True and quiet.task("out")["fingerprint"] == fp
    assert quiet.task("out")["history"] == []
    registry.patch_mc("deckhouse", {"spec": {"settings": {"registry": {"mode": "Direct", "direct": {"imagesRepo": REPO}}}}})
    moved = run_tasks(kc, [task("registry_state_info", changed_since=fp, wait_timeout=60)])
    out = moved.task("out")
    assert out["timed_out"] is False and out["fingerprint"] != fp
    assert out["history"] and out["history"][-1]["target_mode"] == "Direct"


# -- deckhouse_queue_info ------------------------------------------------------------------------------

def test_queue_info_empty_and_check_mode(kc, cluster):
    run = run_tasks(kc, [task("deckhouse_queue_info")], check=True)
    assert run.rc == 0, run.output
    out = run.task("out")
    assert out["changed"] is False and out["empty"] is True and out["total_tasks"] == 0
    assert out["failing_tasks"] == [] and out["leader"]["phase"] == "Running"


def test_queue_info_failing_and_pending_tasks(kc, cluster, simulator):
    simulator.add_failing_task("ModuleRun:main:cert-manager", error="hook failed: exit status 1", failures=2)
    simulator.add_pending_task("ModuleRun:main:prometheus")
    run = run_tasks(kc, [task("deckhouse_queue_info")])
    assert run.rc == 0, run.output
    out = run.task("out")
    assert out["empty"] is False and out["total_tasks"] >= 2 and out["main_queue_tasks"] >= 2
    assert out["active_queues"][0]["name"] == "main"
    failing = out["failing_tasks"]
    assert len(failing) == 1 and failing[0]["queue"] == "main" and failing[0]["failures"] >= 2
    assert failing[0]["error"] == "hook failed: exit status 1"
    assert failing[0]["description"].startswith("ModuleRun:main:cert-manager:failures ")


def test_queue_info_waits_for_the_queue_to_drain_and_fails_at_once_on_a_failing_task(kc, cluster, simulator):
    simulator.queue_add("ModuleRun:main:prometheus", count=3)  # drains by itself, step by step
    run = run_tasks(kc, [task("deckhouse_queue_info", wait_for="empty", wait_timeout=60)])
    assert run.rc == 0, run.output
    out = run.task("out")
    assert out["empty"] is True and out["total_tasks"] == 0 and out["waited"] > 0

    simulator.add_failing_task("ModuleRun:main:cert-manager", error="hook failed: exit status 1", failures=2)
    run = run_tasks(kc, [task("deckhouse_queue_info", wait_for="empty", wait_timeout=120)])
    assert run.rc != 0
    out = run.task("out")
    assert task_status(run, "out") == "failed"
    assert "1 failing task(s)" in out["msg"] and "hook failed" in out["msg"], out["msg"]
    assert out["failing_tasks"][0]["error"] == "hook failed: exit status 1"

    simulator.queue_clear()
    simulator.add_pending_task("ModuleRun:main:prometheus")  # held: never drains
    run = run_tasks(kc, [task("deckhouse_queue_info", wait_for="empty", wait_timeout=3)])
    assert run.rc != 0 and task_status(run, "out") == "failed"
    out = run.task("out")
    assert out["msg"].startswith("Timed out after 3s waiting for Deckhouse's queue to drain; last seen: 1 task(s)")
    assert out["total_tasks"] == 1


def test_queue_info_survives_leader_restart(kc, cluster, simulator):
    before = run_tasks(kc, [task("deckhouse_queue_info")]).task("out")["leader"]["name"]
    simulator.restart_deckhouse(duration=4)
    run = run_tasks(kc, [task("deckhouse_queue_info", leader_wait_timeout=60)])
    assert run.rc == 0, run.output
    out = run.task("out")
    assert out["leader"]["name"] != before and out["leader"]["phase"] == "Running"


def restricted_kubeconfig(kube, dkp_cluster, tmp_path, user="dkp-test-no-exec"):
    """A kubeconfig of a user (client certificate from the harness CA) that may list pods in d8-system but
    not exec into them."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    from kubernetes import client

    if dkp_cluster.dir is None or not (dkp_cluster.dir / "pki" / "ca.key").exists():
        pytest.skip("needs the harness CA to make a client certificate")
    rbac = client.RbacAuthorizationV1Api(kube)
    ns = "d8-system"
    objects = (
        (rbac.create_namespaced_role, rbac.replace_namespaced_role, {
            "metadata": {"name": user},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}),
        (rbac.create_namespaced_role_binding, rbac.replace_namespaced_role_binding, {
            "metadata": {"name": user},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": user},
            "subjects": [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}]}),
    )
    for create, replace, body in objects:
        try:
            create(ns, body)
        except client.rest.ApiException as e:
            if e.status != 409:
                raise
            replace(user, ns, body)
    pki = dkp_cluster.dir / "pki"
    ca_cert = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))

    def b64(data):
        return base64.b64encode(data).decode()

    cfg = yaml.safe_load(pathlib.Path(dkp_cluster.kubeconfig).read_text())
    cfg["users"] = [{"name": user, "user": {
        "client-certificate-data": b64(cert.public_bytes(serialization.Encoding.PEM)),
        "client-key-data": b64(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))}}]
    for ctx in cfg["contexts"]:
        ctx["context"]["user"] = user
    path = tmp_path / "no-exec.kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_queue_info_exec_forbidden_says_rbac(kc, kube, dkp_cluster, cluster, tmp_path):
    no_exec = restricted_kubeconfig(kube, dkp_cluster, tmp_path)
    run = run_tasks(kc, [task("deckhouse_queue_info", kubeconfig=str(no_exec), leader_wait_timeout=60)])
    assert run.rc != 0
    msg = run.task("out")["msg"]
    assert "Forbidden" in msg and "pods/exec" in msg and "d8-system" in msg


def test_queue_info_no_leader_fails_clearly(kc, kube, cluster, simulator):
    from kubernetes import client
    core = client.CoreV1Api(kube)
    simulator.pause()  # or it puts the leader label back
    for pod in core.list_namespaced_pod("d8-system", label_selector="app=deckhouse,leader=true").items:
        core.patch_namespaced_pod(pod.metadata.name, "d8-system", {"metadata": {"labels": {"leader": "false"}}})
    run = run_tasks(kc, [task("deckhouse_queue_info", leader_wait_timeout=3)])
    assert run.rc != 0
    assert "no Deckhouse leader pod in d8-system" in run.task("out")["msg"]


# -- preflight ---------------------------------------------------------------------------------------------

def test_preflight_all_pass(kc, registry):
    run = run_tasks(kc, [task("preflight", target_mode="Direct")])
    assert run.rc == 0, run.output
    out = run.task("out")
    assert out["passed"] and out["failed_checks"] == []
    assert set(out["checks"]) == {"control_plane_ready", "queue_empty", "module_ready", "registry_transition"}
    assert out["checks"]["registry_transition"]["details"]["hops"] == ["Direct"]


def test_preflight_lists_every_failed_check(kc, registry, simulator):
    registry.set_registry({"mode": "Proxy", "proxy": {"imagesRepo": REPO}}, "Proxy")
    simulator.node_cordon("master-1")
    simulator.node_not_ready("master-2")
    simulator.add_failing_task("ModuleRun:main:cert-manager", error="hook failed")
    run = run_tasks(kc, [task("preflight", target_mode="Local")])
    assert run.rc != 0
    out = run.task("out")
    assert set(out["failed_checks"]) == {"control_plane_ready", "queue_empty", "registry_transition"}
    cp = out["checks"]["control_plane_ready"]["message"]
    assert "master-1 is cordoned (SchedulingDisabled)" in cp and "master-2 is NotReady" in cp
    assert "failing task" in out["checks"]["queue_empty"]["message"]
    assert "cert-manager" in out["checks"]["queue_empty"]["message"]
    assert "mode transition from Proxy to Local not supported" in out["checks"]["registry_transition"]["message"]
    for name in out["failed_checks"]:
        assert name in out["msg"]
    # through Direct it is fine
    via = run_tasks(kc, [task("preflight", checks=["registry_transition"], target_mode="Local", via="Direct")])
    assert via.rc == 0, via.output
    assert via.task("out")["checks"]["registry_transition"]["details"]["hops"] == ["Direct", "Local"]


def test_preflight_queue_waits_for_drain(kc, registry, simulator):
    simulator.queue_add("ModuleRun:main:prometheus", count=3)
    run = run_tasks(kc, [task("preflight", checks=["queue_empty"], queue_wait_timeout=60)])
    assert run.rc == 0, run.output
    assert run.task("out")["checks"]["queue_empty"]["passed"]


def test_preflight_takes_the_run_lock_and_gives_it_back_when_it_refuses(kc, kube, registry, simulator):
    from kubernetes import client

    leases = client.CoordinationV1Api(kube)
    name = "preflight-lock-test"

    def holder():
        return leases.read_namespaced_lease(name, "d8-system").spec.holder_identity

    lock = {"name": name, "purpose": "test", "lease_duration": 120}
    run = run_tasks(kc, [task("registry_switch_preflight", checks=["module_ready"], run_lock=lock)])
    assert run.rc == 0, run.output
    out = run.task("out")
    assert out["changed"] is False and out["lock"]["acquired"] is True and holder() == out["lock"]["holder"]

    # held by that run: another holder is refused at once, naming it, and nothing else is checked
    other = run_tasks(kc, [task("registry_switch_preflight", checks=["module_ready"],
                                run_lock=dict(lock, job_id="4711"))])
    assert other.rc != 0
    msg = other.task("out")["msg"]
    assert "Run lock Lease d8-system/%s is held by " % name in msg and "break_lock=true" in msg, msg
    assert "checks" not in other.task("out")

    # a refused preflight releases the lock it took
    leases.delete_namespaced_lease(name, "d8-system")
    simulator.add_failing_task("ModuleRun:main:cert-manager", failures=2)
    refused = run_tasks(kc, [task("registry_switch_preflight", checks=["queue_empty"], run_lock=lock)])
    assert refused.rc != 0
    out = refused.task("out")
    assert "failing task" in out["msg"] and out["lock"]["released"] is True and not holder()


def test_preflight_registry_module_not_ready(kc, cluster):
    cluster.disable_registry()
    run = run_tasks(kc, [task("preflight", checks=["module_ready"])])
    assert run.rc != 0
    assert "Module registry is disabled" in run.task("out")["msg"]


# -- registry_mode ---------------------------------------------------------------------------------------

def test_registry_mode_rejects_bad_settings_before_any_write(kc, dkp_cluster, registry):
    mark = dkp_cluster.audit_marker()
    cases = [
        (dict(mode="Direct"), "registry.direct: 'imagesRepo' is required."),
        (dict(mode="Direct", images_repo=REPO, license=LICENSE, username="u", password=PASSWORD),
         "'license' and 'username'/'password' are mutually exclusive."),
        (dict(mode="Proxy", images_repo=REPO, ttl="1m"), "registry.proxy: 'ttl' should be at least 5 minutes."),
        (dict(mode="Direct", images_repo="https://" + REPO), "must not contain a scheme"),
        (dict(mode="Direct", images_repo=REPO, username="u"), "'password' is required when 'username' is provided."),
    ]
    tasks = [dict(task("registry_mode", register="case%d" % i, **params), ignore_errors=True)
             for i, (params, _msg) in enumerate(cases)]
    run = run_tasks(kc, tasks)
    for i, (_params, msg) in enumerate(cases):
        assert task_status(run, "case%d" % i) == "failed"
        assert msg in run.task("case%d" % i)["msg"]
    assert our_writes(dkp_cluster, mark, dry_run=None) == []
    assert_no_secrets(run.output, str(run.records))


def test_registry_mode_check_mode_and_diff_then_write_and_noop(kc, dkp_cluster, registry):
    params = dict(mode="Direct", images_repo=REPO, license=LICENSE)
    mark = dkp_cluster.audit_marker()
    dry = run_tasks(kc, [task("registry_mode", **params)], check=True, diff=True)
    assert dry.rc == 0, dry.output
    out = dry.task("out")
    assert out["changed"] is True
    assert out["diff"]["after"]["registry"]["direct"]["license"] == NO_LOG
    assert out["restart"]["all_components"] is True
    writes = our_writes(dkp_cluster, mark, dry_run=None, name="deckhouse")
    assert writes and all(w.dry_run for w in writes)
    assert registry.registry_settings() in (None, {}, {"mode": "Unmanaged"})
    assert_no_secrets(dry.output, str(dry.records))

    real = run_tasks(kc, [task("registry_mode", wait=True, wait_timeout=120, **params)], diff=True, verbosity=3)
    assert real.rc == 0, real.output
    out = real.task("out")
    assert out["changed"] and out["state"]["complete"] and out["state"]["mode"] == "Direct"
    assert out["settings"]["direct"]["license"] == NO_LOG
    assert {e["type"] for e in out["progress"]} >= {"TransitionContainerdConfigReady", "Ready"}
    assert "TransitionContainerdConfigReady: True" in real.output  # printed live by the action plugin
    assert "TransitionContainerdConfigReady: True" in out["progress_lines"]  # and kept in the task result
    spec = registry.mc("deckhouse")["spec"]
    assert spec["settings"]["registry"] == {"mode": "Direct", "direct": {"imagesRepo": REPO, "license": LICENSE}}
    assert spec["settings"]["bundle"] == "Default" and spec["settings"]["releaseChannel"] == "Stable"
    assert_no_secrets(real.output, str(real.records))

    mark = dkp_cluster.audit_marker()
    again = run_tasks(kc, [task("registry_mode", wait=True, scheme="HTTPS", **params)])
    assert again.rc == 0, again.output
    assert again.task("out")["changed"] is False and again.task("out")["method"] == "none"
    assert our_writes(dkp_cluster, mark, dry_run=None, name="deckhouse") == []


def test_registry_mode_refuses_proxy_to_local_before_write(kc, dkp_cluster, registry):
    registry.set_registry({"mode": "Proxy", "proxy": {"imagesRepo": REPO}}, "Proxy")
    mark = dkp_cluster.audit_marker()
    run = run_tasks(kc, [task("registry_mode", mode="Local", wait=True)])
    assert run.rc != 0
    assert "mode transition from Proxy to Local not supported" in run.task("out")["msg"]
    assert our_writes(dkp_cluster, mark, dry_run=None) == []


def test_registry_mode_explains_the_vap_denial(kc, dkp_cluster, registry):
    """Written past the client-side check (check_transition: false), DKP 1.75+ refuses Proxy -> Local at
    admission (VAP deckhouse-module-registry-validation): explained, nothing written, no wait started."""
    registry.set_registry({"mode": "Proxy", "proxy": {"imagesRepo": REPO}}, "Proxy")
    mark = dkp_cluster.audit_marker()
    run = run_tasks(kc, [task("registry_mode", mode="Local", check_transition=False, wait=True, wait_timeout=600)])
    assert run.rc != 0
    out = run.task("out")
    assert "DKP refused the switch to Local at admission" in out["msg"]
    assert "deckhouse-module-registry-validation" in out["msg"] and "via: Direct" in out["msg"]
    assert out["denied_by"] == "deckhouse-module-registry-validation" and out["running_mode"] == "Proxy"
    assert [w for w in our_writes(dkp_cluster, mark) if w.succeeded] == []  # the denied request stored nothing
    assert registry.registry_settings()["mode"] == "Proxy"


def test_registry_mode_timeout_names_held_condition(kc, registry, simulator):
    simulator.hold_condition("TransitionContainerdConfigReady", "master-1: containerd config not applied yet")
    run = run_tasks(kc, [task("registry_mode", mode="Direct", images_repo=REPO, wait=True, wait_timeout=6)])
    assert run.rc != 0
    msg = run.task("out")["msg"]
    assert "Timed out after 6s" in msg
    assert "TransitionContainerdConfigReady: False \u2014 master-1: containerd config not applied yet" in msg
    assert "not reported yet" in msg and "FinalContainerdConfigReady" in msg
    assert "TransitionContainerdConfigReady: False \u2014 master-1" in run.output.split("FAILED")[0]


def test_registry_mode_settle_waits_for_deckhouse_after_the_switch(kc, registry, simulator):
    registry.set_registry({"mode": "Direct", "direct": {"imagesRepo": REPO}}, "Direct")
    simulator.add_pending_task("ModuleRun:main:prometheus")  # held: Deckhouse never settles
    run = run_tasks(kc, [task("registry_mode", mode="Direct", images_repo=REPO, wait=True,
                              settle=["module_ready", "queue_empty"], settle_timeout=3)])
    assert run.rc != 0
    out = run.task("out")
    assert out["changed"] is False and out["state"]["mode"] == "Direct"
    assert out["msg"].startswith("The switch to Direct is complete, but Deckhouse has not settled after it: "
                                 "queue_empty: Deckhouse's queue is not empty"), out["msg"]
    assert out["settled"]["module_ready"]["passed"] is True and out["settled"]["queue_empty"]["passed"] is False

    simulator.queue_clear()
    run = run_tasks(kc, [task("registry_mode", mode="Direct", images_repo=REPO, wait=True,
                              settle=["module_ready", "queue_empty"], settle_timeout=30)])
    assert run.rc == 0, run.output
    out = run.task("out")
    assert [c["passed"] for c in out["settled"].values()] == [True, True] and out["settle_duration"] >= 0
    assert "registry_mode [localhost]: Deckhouse settled: Module registry is Ready" in run.output


def test_registry_mode_rollback_point_needs_no_log(kc, registry):
    run = run_tasks(kc, [task("registry_mode", mode="Unmanaged", write=False, return_restore_point=True)])
    assert run.rc != 0 and "no_log" in run.task("out")["msg"]


def test_registry_mode_never_leaks_carried_or_old_secrets(kc, registry):
    """from_current carries the live credentials into the new section; they never show up."""
    registry.set_registry({"mode": "Proxy", "proxy": {"imagesRepo": REPO, "username": "puller", "password": PASSWORD,
                                                      "ttl": "1h"}}, "Proxy")
    run = run_tasks(kc, [task("registry_mode", mode="Direct", from_current=True, wait=True)], diff=True, verbosity=3)
    assert run.rc == 0, run.output
    out = run.task("out")
    assert out["settings"] == {"mode": "Direct", "direct": {"imagesRepo": REPO, "username": "puller", "password": NO_LOG}}
    assert registry.registry_settings() == {
        "mode": "Direct", "direct": {"imagesRepo": REPO, "username": "puller", "password": PASSWORD}}
    assert_no_secrets(run.output, str(run.records), secrets=(PASSWORD, FAKE_STATE_SECRET))


def test_registry_mode_parameter_change_never_takes_the_old_ready(kc, registry):
    """Same mode, new license: the target does not change, so the conditions' observedGeneration (the
    generation of Secret registry-config) tells the new switch from the Ready of the previous one."""
    registry.set_registry({"mode": "Direct", "direct": {"imagesRepo": REPO, "license": "OLD-" + LICENSE}}, "Direct")
    old_gen = registry.config_generation()
    run = run_tasks(kc, [task("registry_mode", mode="Direct", images_repo=REPO, license=LICENSE, wait=True)])
    assert run.rc == 0, run.output
    out = run.task("out")
    assert out["changed"] and out["wait_baseline"]["config_generation"] == old_gen
    assert out["state"]["observed_generation"] > old_gen and out["state"]["complete"]
    assert "registry-config generation > %s" % old_gen in out["evidence"]
    assert [e for e in out["progress"] if e["type"] == "Ready" and e["status"] == "True"]
    assert_no_secrets(run.output, str(run.records))


def test_registry_mode_parameter_change_ignores_hash_bumps_while_paused(kc, registry, simulator):
    """DKP changes `hash` on unrelated events; with the orchestrator paused, a bumped hash next to the old
    Ready=True must not end the wait: it times out naming the evidence it looked for."""
    registry.set_registry({"mode": "Direct", "direct": {"imagesRepo": REPO, "license": "OLD-" + LICENSE}}, "Direct")
    simulator.pause()
    try:
        import threading
        stop = threading.Event()

        def bump():
            while not stop.wait(1.0):
                simulator.registry_hash_bump()
        t = threading.Thread(target=bump, daemon=True)
        t.start()
        run = run_tasks(kc, [task("registry_mode", mode="Direct", images_repo=REPO, license=LICENSE, wait=True,
                                  wait_timeout=8)])
        stop.set()
        t.join(5)
    finally:
        simulator.resume()
    assert run.rc != 0
    out = run.task("out")
    assert out["changed"] is True and "Timed out after 8s" in out["msg"]
    assert "has not picked up the new settings" in out["msg"] and "registry-config generation" in out["msg"]


def test_local_images_timeout_names_the_node_registries(kc, registry, simulator):
    """Local: the images are checked after the node services, against each master's registry; the images
    timeout counts from that check, and its message names the nodes and how to push."""
    registry.create_rw_user()
    run = run_tasks(kc, [task("registry_mode", mode="Local", wait=True, wait_timeout=300, images_wait_timeout=5)])
    assert task_status(run, "out") == "failed"
    out = run.task("out")
    msg = out["msg"]
    assert "counted from the start of the images check" in msg
    assert "master-0 (" in msg and "with errors" in msg and "d8 mirror push" in msg
    types = [e["type"] for e in out["progress"]]
    # released Local order: node services before the images
    assert "NodeServicesReady" in types and "RegistryContainsRequiredImages" in types
    assert types.index("NodeServicesReady") < types.index("RegistryContainsRequiredImages")
    assert any("waiting for the platform images" in line for line in run.output.splitlines())
    assert_no_secrets(run.output, str(run.records))
