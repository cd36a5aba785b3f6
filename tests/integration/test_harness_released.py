"""The local cluster behaves like released DKP (tests/harness/README.md): Deckhouse restarts
itself, embedded module phases, hook errors, MPO renew/publish-digest, the ModuleConfig and
update-policies webhooks, ModuleSource and ModuleRelease details, the registry module and
its orchestrator, and `cluster.py restart-apiserver`.

Real kube-apiserver of the session cluster (DKP_VERSION, default 1.76); each test starts
from a reset simulator. Version-specific checks live in test_harness_versions.py.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error

import pytest

from harness import cluster as harness_cluster
from harness.simulator import consts as C
from harness.simulator import registry as sreg
from harness.simulator.control import SimulatorError
from harness.testing import (GROUP, api_error, cond, core, create_obj, delete_obj, enable_example_source, get_obj,
                             leader_pod, mc, patch_obj, phase, registry_state, wait_value)

WEBHOOK = "module-configs.deckhouse-webhook.deckhouse.io"


@pytest.fixture
def sim(fresh_simulator):
    fresh_simulator.restart_seconds(2)
    yield fresh_simulator
    fresh_simulator.restart_seconds(3)


def _deployed_hello_world(kube, sim):
    enable_example_source(kube)
    create_obj(kube, "moduleconfigs", mc("hello-world", enabled=True))
    return wait_value(lambda: get_obj(kube, "modulereleases", "hello-world-v0.1.1"),
                      lambda r: phase(r) == "Deployed", what="hello-world-v0.1.1 Deployed")


def _up_again(sim, timeout=30):
    return wait_value(sim.state, lambda s: not s["deckhouse_down"], timeout=timeout, what="Deckhouse back")


# ----------------------------------------------------------------------------- restarts


def test_release_deploy_restarts_deckhouse(kube, sim, dkp_version):
    before_pod = leader_pod(kube)
    r = _deployed_hello_world(kube, sim)
    st = sim.state()
    assert st["deckhouse_down"] and st["last_restart_reason"].startswith("deploy of hello-world-v0.1.1"), st
    # the module-configs webhook does not answer: the apiserver reports it (failurePolicy Fail)
    status, body = api_error(lambda: create_obj(kube, "moduleconfigs", mc("prometheus", enabled=True),
                                                dry_run="All"))
    assert status == 500 and f'failed calling webhook "{WEBHOOK}"' in body["message"], body
    # the debug API does not answer
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        sim.queue_list()
    # released deploy writes
    a, lbl = r["metadata"]["annotations"], r["metadata"]["labels"]
    assert a.get(C.ANN_NOTIFIED) == "true" and a.get(C.ANN_IS_UPDATING) in ("true", "false")
    assert C.ANN_APPLY_NOW not in a and lbl["status"] == "deployed"
    assert set(r["metadata"]["finalizers"]) >= {C.MR_FINALIZER, C.MR_FINALIZER_METRICS}
    _up_again(sim)
    # a new leader pod, and a main queue refilled with startup tasks in the released format
    new_pod = wait_value(lambda: leader_pod(kube), lambda p: p and p != before_pod, what="a new leader pod")
    assert new_pod != before_pod
    q = wait_value(sim.queue_list, lambda q: q["summary"]["mainQueueTasks"] > 0, what="startup tasks")
    descs = [t["description"] for t in q["active"][0]["tasks"]]
    assert "ModuleRun:main:cert-manager:doStartup:Operator-Startup" in descs, descs
    create_obj(kube, "moduleconfigs", mc("prometheus", enabled=True), dry_run="All")  # webhook answers again


def test_restart_seconds_zero_turns_restarts_off(kube, sim):
    sim.restart_seconds(0)
    _deployed_hello_world(kube, sim)
    assert not sim.state()["deckhouse_down"]
    create_obj(kube, "moduleconfigs", mc("prometheus", enabled=True), dry_run="All")


def test_reinstall_restarts_deckhouse(kube, sim):
    _deployed_hello_world(kube, sim)
    _up_again(sim)
    n = sim.state()["restarts"]
    patch_obj(kube, "modulereleases", "hello-world-v0.1.1",
              {"metadata": {"annotations": {C.ANN_REINSTALL: "true"}}})
    st = wait_value(sim.state, lambda s: s["restarts"] > n, what="a restart after reinstall")
    assert st["last_restart_reason"].startswith("reinstall of hello-world-v0.1.1")
    r = get_obj(kube, "modulereleases", "hello-world-v0.1.1")
    assert C.ANN_REINSTALL not in (r["metadata"].get("annotations") or {})


# ----------------------------------------------------------------------------- modules


def test_embedded_module_enables_through_reconciling(kube, sim):
    mod = get_obj(kube, "modules", "ingress-nginx")
    assert phase(mod) == "Downloaded"  # disabled embedded modules are on disk
    seen = []

    def fetch():
        m = get_obj(kube, "modules", "ingress-nginx")
        if not seen or seen[-1] != phase(m):
            seen.append(phase(m))
        return m

    create_obj(kube, "moduleconfigs", mc("ingress-nginx", enabled=True))
    wait_value(fetch, lambda m: phase(m) == "Ready", interval=0.02, what="ingress-nginx Ready")
    assert "Downloading" not in seen and "Installing" not in seen and "Reconciling" in seen, seen


def test_omitted_enabled_reads_false_and_bundle_default_applies(kube, sim):
    create_obj(kube, "moduleconfigs", mc("cert-manager", version=1, settings={"email": "a@example.com"}))
    m = wait_value(lambda: get_obj(kube, "modules", "cert-manager"),
                   lambda m: cond(m, C.C_ENABLED_BY_MC), what="EnabledByModuleConfig")
    assert cond(m, C.C_ENABLED_BY_MC)["status"] == "False"
    assert phase(m) == "Ready"  # the bundle keeps it on


def test_module_error_is_transient(kube, sim):
    sim.module_error("cert-manager", "hook orphan-secrets failed: exit status 1", duration=2)
    m = wait_value(lambda: get_obj(kube, "modules", "cert-manager"), lambda m: phase(m) == "Error",
                   what="cert-manager Error")
    c = cond(m, C.C_IS_READY)
    assert (c["status"], c["reason"], c["message"]) == ("False", "HookError", "hook orphan-secrets failed: exit status 1")
    wait_value(lambda: get_obj(kube, "modules", "cert-manager"), lambda m: phase(m) == "Ready", timeout=15,
               what="cert-manager Ready after the error cleared")


def test_module_error_until_cleared(kube, sim):
    sim.module_error("prometheus", "boom", duration=0)
    wait_value(lambda: get_obj(kube, "modules", "prometheus"), lambda m: phase(m) == "Error", what="Error")
    time.sleep(1.0)
    assert phase(get_obj(kube, "modules", "prometheus")) == "Error"
    sim.module_error_clear("prometheus")
    wait_value(lambda: get_obj(kube, "modules", "prometheus"), lambda m: phase(m) == "Ready", what="Ready")


def test_pull_override_renew_and_publish_digest(kube, sim):
    _deployed_hello_world(kube, sim)
    _up_again(sim)
    create_obj(kube, "modulepulloverrides", {
        "apiVersion": f"{GROUP}/v1alpha2", "kind": "ModulePullOverride", "metadata": {"name": "hello-world"},
        "spec": {"imageTag": "pr-7", "scanInterval": "1h"}}, "v1alpha2")
    m = wait_value(lambda: get_obj(kube, "modules", "hello-world"), lambda m: cond(m, C.C_IS_OVERRIDDEN),
                   what="IsOverridden")
    assert cond(m, C.C_IS_OVERRIDDEN)["status"] == "True"
    o = wait_value(lambda: get_obj(kube, "modulepulloverrides", "hello-world", "v1alpha2"),
                   lambda o: (o.get("status") or {}).get("imageDigest"), what="pulled")
    _up_again(sim)
    digest, updated = o["status"]["imageDigest"], o["status"]["updatedAt"]
    n = sim.state()["restarts"]
    patch_obj(kube, "modulepulloverrides", "hello-world", {"metadata": {"annotations": {"renew": "1"}}}, "v1alpha2")
    time.sleep(1.5)
    o = get_obj(kube, "modulepulloverrides", "hello-world", "v1alpha2")
    assert o["metadata"]["annotations"].get("renew") == "1"  # stays: nothing new to pull
    assert (o["status"]["imageDigest"], o["status"]["updatedAt"], o["status"]["message"]) == (digest, updated, "Ready")
    assert sim.state()["restarts"] == n
    moved = sim.publish_digest("hello-world", source="example", tag="pr-7")
    assert moved["old_digest"] == digest and moved["digest"] != digest
    time.sleep(1.0)  # the controller reads the registry only on a change or every scanInterval
    assert get_obj(kube, "modulepulloverrides", "hello-world", "v1alpha2")["status"]["imageDigest"] == digest
    patch_obj(kube, "modulepulloverrides", "hello-world", {"metadata": {"annotations": {"renew": "2"}}}, "v1alpha2")
    o = wait_value(lambda: get_obj(kube, "modulepulloverrides", "hello-world", "v1alpha2"),
                   lambda o: o["status"]["imageDigest"] == moved["digest"], what="the new digest deployed")
    assert "renew" not in (o["metadata"].get("annotations") or {})
    assert sim.state()["restarts"] == n + 1


# ----------------------------------------------------------------------------- webhooks


def test_parent_module_must_be_deployed(kube, sim):
    enable_example_source(kube)
    status, body = api_error(lambda: create_obj(kube, "moduleconfigs", mc("commander-agent", enabled=True)))
    assert "'commander' is not deployed" in body["message"], body


def test_empty_settings_are_no_settings(kube, sim):
    out = create_obj(kube, "moduleconfigs", mc("cert-manager", settings={}), dry_run="All")
    assert out["metadata"]["name"] == "cert-manager"  # no "spec.version is required" denial


def test_update_policy_in_use_cannot_be_deleted(kube, sim):
    create_obj(kube, "moduleupdatepolicies", {"apiVersion": f"{GROUP}/v1alpha2", "kind": "ModuleUpdatePolicy",
                                              "metadata": {"name": "slow"}, "spec": {"update": {"mode": "Manual"}}},
               "v1alpha2")
    enable_example_source(kube)
    create_obj(kube, "moduleconfigs", mc("hello-world", enabled=True, updatePolicy="slow"))
    status, body = api_error(lambda: delete_obj(kube, "moduleupdatepolicies", "slow", "v1alpha2"))
    assert "the 'slow' update policy is used by the 'hello-world' module config" in body["message"], body


def test_registry_module_on_by_default_and_disabling_needs_confirmation(kube, sim):
    m = get_obj(kube, "modules", "registry")
    assert phase(m) == "Ready" and m["properties"]["critical"] is True and m["properties"]["stage"] == "Preview"
    assert registry_state(kube) is not None
    status, body = api_error(lambda: create_obj(kube, "moduleconfigs", mc("registry", enabled=False)))
    assert "Disabling this module will completely stop normal operation of the Deckhouse Kubernetes Platform." \
        in body["message"] and "allow-disabling=true" in body["message"], body


# ----------------------------------------------------------------------------- sources / releases


def test_module_source_status_details(kube, sim):
    ms = enable_example_source(kube)
    assert ms["status"]["message"] == ""
    entry = next(x for x in ms["status"]["modules"] if x["name"] == "hello-world")
    assert "policy" not in entry  # the embedded policy is not named
    create_obj(kube, "moduleconfigs", mc("hello-world", enabled=True))
    wait_value(lambda: get_obj(kube, "modulereleases", "hello-world-v0.1.1"), lambda r: phase(r) == "Deployed",
               what="deployed")
    _up_again(sim)
    patch_obj(kube, "modulesources", "example", {"spec": {"registry": {"scheme": "HTTP"}}})
    wait_value(lambda: get_obj(kube, "modulereleases", "hello-world-v0.1.1"),
               lambda r: C.ANN_REGISTRY_SPEC_CHANGED in (r["metadata"].get("annotations") or {}),
               interval=0.05, what="registry-spec-changed")


def test_scan_interval_below_three_minutes_is_ignored():
    # pure rule, as the reconciler applies it
    from harness.simulator.common import parse_duration

    assert max(180.0, parse_duration("1m", 180.0)) == 180.0
    assert max(180.0, parse_duration("5m", 180.0)) == 300.0


# ----------------------------------------------------------------------------- registry


def test_registry_step_orders():
    c = C
    assert sreg.sequence("Unmanaged", "Local", True) == [
        c.RC_PREFLIGHT, c.RC_NODE_SERVICES, c.RC_IMAGES, c.RC_TRANSITION, c.RC_SWITCH, c.RC_FINAL,
        c.RC_CLEANUP_INCLUSTER_PROXY]
    assert sreg.sequence("Unmanaged", "Proxy", True) == [
        c.RC_IMAGES, c.RC_PREFLIGHT, c.RC_NODE_SERVICES, c.RC_TRANSITION, c.RC_SWITCH, c.RC_FINAL,
        c.RC_CLEANUP_INCLUSTER_PROXY]
    assert sreg.sequence("Direct", "Unmanaged", True)[-2:] == [c.RC_CLEANUP_NODE_SERVICES, c.RC_CLEANUP_INCLUSTER_PROXY]
    assert sreg.sequence("Direct", "Unmanaged", False) == [
        c.RC_IMAGES, c.RC_TRANSITION, c.RC_SWITCH, c.RC_FINAL, c.RC_CLEANUP_NODE_SERVICES,
        c.RC_CLEANUP_INCLUSTER_PROXY]


def test_registry_local_checks_images_on_nodes_after_node_services(kube, sim):
    patch_obj(kube, "moduleconfigs", "deckhouse", {"spec": {"settings": {"registry": {"mode": "Local"}}}})
    st = wait_value(lambda: registry_state(kube),
                    lambda s: (cond({"status": s}, C.RC_IMAGES) or {}).get("message", "").startswith("Mode:"),
                    what="the Local images check")
    types = [x["type"] for x in st["conditions"]]
    assert types.index(C.RC_NODE_SERVICES) < types.index(C.RC_IMAGES), types
    assert cond({"status": st}, C.RC_NODE_SERVICES)["status"] == "True"
    msg = cond({"status": st}, C.RC_IMAGES)["message"]
    assert msg.splitlines()[0] == "Mode: Default" and "master-0: " in msg, msg
    sim.local_images_pushed(True)
    wait_value(lambda: registry_state(kube), lambda s: s["mode"] == "Local", timeout=60, what="Local")


def test_registry_hash_generation_and_stale_ready(kube, sim):
    patch_obj(kube, "moduleconfigs", "deckhouse", {"spec": {"settings": {"registry": {
        "mode": "Direct", "direct": {"imagesRepo": "registry.example.com/ee", "license": "L1"}}}}})
    st = wait_value(lambda: registry_state(kube), lambda s: s["mode"] == "Direct" and
                    (cond({"status": s}, "Ready") or {}).get("status") == "True", timeout=60, what="Direct")
    sec = core(kube).read_namespaced_secret(C.REGISTRY_CONFIG_SECRET, "d8-system")
    gen = int(sec.metadata.annotations[C.ANN_REGISTRY_CONFIG_GENERATION])
    assert {x["observedGeneration"] for x in st["conditions"]} == {gen}
    # an unrelated event: the hash moves, nothing else
    sim.registry_hash_bump()
    st2 = wait_value(lambda: registry_state(kube), lambda s: s["hash"] != st["hash"], what="hash moved")
    assert st2["conditions"] == st["conditions"]
    # a same-mode change: conditions stay (stale Ready) until the orchestrator walks again
    patch_obj(kube, "moduleconfigs", "deckhouse", {"spec": {"settings": {"registry": {"direct": {"license": "L2"}}}}})
    sec = wait_value(lambda: core(kube).read_namespaced_secret(C.REGISTRY_CONFIG_SECRET, "d8-system"),
                     lambda s: int(s.metadata.annotations[C.ANN_REGISTRY_CONFIG_GENERATION]) == gen + 1,
                     what="registry-config generation + 1")
    stale = registry_state(kube)
    assert stale["target_mode"] == "Direct"
    assert any(x["type"] == C.RC_IMAGES for x in stale["conditions"])  # not cleared: same target
    done = wait_value(lambda: registry_state(kube), lambda s: (cond({"status": s}, "Ready") or {}).get(
        "observedGeneration") == gen + 1 and cond({"status": s}, "Ready")["status"] == "True", timeout=60,
        what="Ready of the new generation")
    assert {x["observedGeneration"] for x in done["conditions"]} == {gen + 1}


# ----------------------------------------------------------------------------- apiserver restart


def test_restart_apiserver_keeps_pids_true(dkp_cluster, kube):
    d = dkp_cluster.dir
    before = next(p for p in harness_cluster.read_state(d)["processes"] if p["name"] == "kube-apiserver")
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, str(harness_cluster.HARNESS / "cluster.py"), "restart-apiserver",
                          "--dir", str(d), "--down", "2"], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert time.monotonic() - t0 >= 2
    after = next(p for p in harness_cluster.read_state(d)["processes"] if p["name"] == "kube-apiserver")
    assert after["pid"] != before["pid"] and harness_cluster._alive(after) and not harness_cluster._alive(before)
    assert after["argv"] == before["argv"]
    assert harness_cluster.running(d)
    wait_value(lambda: core(kube).list_namespace().items, what="the API answers again")
    # the simulator is still there and answers
    from harness.simulator.control import SimulatorControl

    try:
        SimulatorControl(d).state()
    except SimulatorError as e:  # pragma: no cover - reported
        pytest.fail(f"simulator lost: {e}")


def test_drop_connections_cuts_open_connections(dkp_cluster):
    import http.client
    import ssl

    d = dkp_cluster.dir
    port = harness_cluster.read_state(d)["ports"]["apiserver_proxy"]
    ctx = ssl.create_default_context(cafile=str(d / "pki" / "ca.crt"))
    ctx.load_cert_chain(str(d / "pki" / "admin.crt"), str(d / "pki" / "admin.key"))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    conn.request("GET", "/version")
    assert conn.getresponse().read()  # keep-alive connection through the proxy
    out = subprocess.run([sys.executable, str(harness_cluster.HARNESS / "cluster.py"), "drop-connections",
                          "--dir", str(d)], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0 and "dropped 1 connections" in out.stdout, (out.stdout, out.stderr)
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        conn.request("GET", "/version")
        conn.getresponse().read()
    conn.close()
    # new connections work again (kubeconfig-proxy is a normal kubeconfig)
    assert (d / "kubeconfig-proxy").is_file()
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    conn.request("GET", "/version")
    assert conn.getresponse().status == 200
    conn.close()


def test_reset_removes_run_lock_leases(kube, simulator):
    from kubernetes import client

    coord = client.CoordinationV1Api(kube)
    coord.create_namespaced_lease("d8-system", {"metadata": {"name": "deckhouse-platform-runbook"},
                                                "spec": {"holderIdentity": "killed-run", "leaseDurationSeconds": 600}})
    simulator.reset()
    names = [x.metadata.name for x in coord.list_namespaced_lease("d8-system").items]
    assert "deckhouse-platform-runbook" not in names
