"""What differs between the DKP releases the local cluster models (1.75, 1.76), each
checked on a real apiserver of that release.

The session cluster models DKP_VERSION (default 1.76); the other release gets a second
cluster of its own (``dkp_cluster_for``), started once. Env DKP_HARNESS_VERSIONS
("1.75,1.76" by default) limits the releases (the 1.75 smoke run sets "1.75").
"""

from __future__ import annotations

import os
import time

import pytest

from harness import versions
from harness.simulator import consts as C
from harness.simulator.control import SimulatorControl
from harness.testing import (GROUP, api_error, create_obj, enable_example_source, get_obj, mc, patch_obj,
                             phase, wait_value)

VERSIONS = [v.strip() for v in os.environ.get("DKP_HARNESS_VERSIONS", ",".join(versions.SUPPORTED)).split(",")
            if v.strip()]


@pytest.fixture(params=VERSIONS)
def dkp(request, dkp_cluster_for):
    """(version, ApiClient, SimulatorControl) of a reset cluster of that release."""
    cl = dkp_cluster_for(request.param)
    sim = SimulatorControl(cl.dir)
    sim.reset()
    sim.restart_seconds(1)
    yield request.param, cl.api_client(), sim
    sim.resume()
    sim.restart_seconds(3)


def _mup(channel, version="v1alpha2"):
    spec = {"releaseChannel": channel, "update": {"mode": "Auto"}}
    if version == "v1alpha1":
        spec["moduleReleaseSelector"] = {"labelSelector": {"matchLabels": {"source": "example"}}}
    return {"apiVersion": f"{GROUP}/{version}", "kind": "ModuleUpdatePolicy",
            "metadata": {"name": f"mup-{channel.lower()}-{version}"}, "spec": spec}


def test_update_policy_versions_and_lts(dkp):
    version, kube, _sim = dkp
    f = versions.features(version)
    from kubernetes import client

    served = [r.name for r in client.CustomObjectsApi(kube).get_api_resources(GROUP, "v1alpha1").resources]
    assert ("moduleupdatepolicies" in served) is f.mup_v1alpha1_served
    if f.lts_channel:
        out = create_obj(kube, "moduleupdatepolicies", _mup("Lts"), "v1alpha2", dry_run="All")
        assert out["spec"]["releaseChannel"] == "Lts"
    else:
        status, body = api_error(lambda: create_obj(kube, "moduleupdatepolicies", _mup("Lts"), "v1alpha2",
                                                    dry_run="All"))
        assert status == 422 and "spec.releaseChannel" in body["message"], body


def test_module_release_update_versions_field(dkp):
    _version, kube, _sim = dkp
    body = {"apiVersion": f"{GROUP}/v1alpha1", "kind": "ModuleRelease", "metadata": {"name": "hello-world-v9.9.9"},
            "spec": {"moduleName": "hello-world", "version": "9.9.9",
                     "update": {"versions": [{"from": "9.8", "to": "9.9"}]},
                     "updateConstraints": {"versions": [{"from": "1.0", "to": "2.0"}]}}}
    out = create_obj(kube, "modulereleases", body, dry_run="All")
    assert out["spec"]["update"] == {"versions": [{"from": "9.8", "to": "9.9"}]}
    assert "updateConstraints" not in out["spec"]  # main only: pruned by the released schema


def test_module_config_denial_format(dkp):
    version, kube, _sim = dkp
    status, body = api_error(lambda: create_obj(kube, "moduleconfigs", mc(
        "cert-manager", version=1, settings={"maxConcurrentChallenges": "many"}), dry_run="All"))
    msg = body["message"]
    assert msg.startswith('admission webhook "module-configs.deckhouse-webhook.deckhouse.io" denied the request: ')
    assert ("spec.settings are not valid (version 1):  validate config values: 1 error occurred: "
            "* certManager.maxConcurrentChallenges in body must be of type integer: \"many\"") in msg
    if versions.features(version).webhook_422:
        assert status == 422 and body["reason"] == "Invalid", body
        assert [x["message"] for x in body["details"]["causes"]] == [msg.split("denied the request: ", 1)[1]]
    else:
        assert status == 403 and "details" not in body or not body.get("details", {}).get("causes"), body


def test_pull_override_fields_per_version(dkp):
    version, kube, sim = dkp
    f = versions.features(version)
    enable_example_source(kube)
    create_obj(kube, "moduleconfigs", mc("hello-world", enabled=True))
    wait_value(lambda: get_obj(kube, "modules", "hello-world"), lambda m: phase(m) == "Ready",
               what="hello-world Ready")
    wait_value(sim.state, lambda s: not s["deckhouse_down"], what="Deckhouse back after the deploy")
    create_obj(kube, "modulepulloverrides", {
        "apiVersion": f"{GROUP}/v1alpha2", "kind": "ModulePullOverride", "metadata": {"name": "hello-world"},
        "spec": {"imageTag": "pr-1", "scanInterval": "15s"}}, "v1alpha2")
    o = wait_value(lambda: get_obj(kube, "modulepulloverrides", "hello-world", "v1alpha2"),
                   lambda o: (o.get("status") or {}).get("imageDigest"), what="MPO pulled")
    time.sleep(0.5)  # status first, then the annotations
    o = get_obj(kube, "modulepulloverrides", "hello-world", "v1alpha2")
    assert ("weight" in o["status"]) is f.mpo_weight_and_deployed_on
    assert (C.ANN_DEPLOYED_ON in (o["metadata"].get("annotations") or {})) is f.mpo_weight_and_deployed_on
    rel = get_obj(kube, "modulereleases", "hello-world-v0.1.1")
    assert ("size" in rel["status"]) is f.release_size_and_duration
    assert set(rel["metadata"]["finalizers"]) >= {C.MR_FINALIZER, C.MR_FINALIZER_METRICS}


def test_registry_vap_local_to_proxy(dkp):
    """1.75 and 1.76: from a completed Local mode, Proxy and non-configurable Unmanaged are denied."""
    _version, kube, sim = dkp
    sim.local_images_pushed(True)
    patch_obj(kube, "moduleconfigs", "deckhouse", {"spec": {"settings": {"registry": {"mode": "Local"}}}})
    wait_value(sim.state, lambda s: s["registry_mode"] == "Local", timeout=60, what="Local completed")
    wait_value(sim.state, lambda s: not s["deckhouse_down"], what="Deckhouse back")
    for settings in ({"mode": "Proxy", "proxy": {"imagesRepo": "registry.example.com/dkp"}},
                     {"mode": "Unmanaged"}):
        status, body = wait_value(
            lambda: api_error(lambda: patch_obj(kube, "moduleconfigs", "deckhouse", {
                "spec": {"settings": {"registry": settings}}}, dry_run="All")),
            lambda r: "deckhouse-module-registry-validation" in r[1].get("message", ""), timeout=10,
            what="the VAP denial")
        assert ('Switching `spec.settings.registry.mode` to Proxy or non-configurable Unmanaged mode is not '
                'supported when registry is running in "Local" mode. Please use a transition mode') in body["message"]
    # configurable Unmanaged is a transition mode: allowed
    patch_obj(kube, "moduleconfigs", "deckhouse", {"spec": {"settings": {"registry": {
        "mode": "Unmanaged", "unmanaged": {"imagesRepo": "registry.example.com/dkp"}}}}}, dry_run="All")
