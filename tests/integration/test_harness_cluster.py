"""Tests of the local DKP cluster itself (tests/harness): CRDs as a real cluster shows
them, the admission policies with their exact messages, the audit log, SSA/dry-run,
and kwok (node readiness, exec).

They run against the real kube-apiserver of the `dkp_cluster` fixture.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import DynamicApiError
from kubernetes.stream import stream

from harness import cluster as harness_cluster
from harness import versions as dkp_harness_versions

GROUP = "deckhouse.io"
D8_USER = "system:serviceaccount:d8-system:deckhouse"
FACTS_NS, FACTS_NAME = harness_cluster.FACTS_CONFIGMAP
WINDOWS_MESSAGE = (
    "Invalid update windows. Start time (windows.from) should be less than the end time of "
    "the update window (windows.to)"
)
REGISTRY_DISABLED = (
    "Changing, adding, or removing `spec.settings.registry` is forbidden when the registry module "
    "is disabled. Please enable the module to make changes."
)
REGISTRY_BOOTSTRAP = (
    "Changing, adding, or removing `spec.settings.registry` is forbidden during cluster bootstrap. "
    "Please wait until bootstrap is complete."
)
REGISTRY_NON_STATIC = (
    "The field `spec.settings.registry.mode` cannot be set to Proxy or Local. Proxy and Local are "
    "unsupported for non-static clusters. Please use other available modes."
)


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def custom(kube):
    return client.CustomObjectsApi(kube)


@pytest.fixture(scope="module")
def core(kube):
    return client.CoreV1Api(kube)


@pytest.fixture(scope="module")
def as_deckhouse(dkp_cluster):
    """An ApiClient impersonating Deckhouse's service account (as the simulator does)."""
    c = config.new_client_from_config(config_file=str(dkp_cluster.kubeconfig))
    c.set_default_header("Impersonate-User", D8_USER)
    yield c
    c.close()


def _denial(exc: ApiException | DynamicApiError) -> str:
    try:
        return json.loads(exc.body).get("message", "")
    except (TypeError, ValueError):
        return str(exc.body)


def _expect_denied(call, policy: str, message: str, binding: str | None = None, timeout: float = 5.0):
    """Call (a dry-run request) until it is denied by `policy` with exactly `message`.

    Retrying covers the admission plugin's informers catching up with a change of
    policy parameters made just before.
    """
    binding = binding or policy
    expected = (f"ValidatingAdmissionPolicy '{policy}' with binding '{binding}' denied request: "
                f"{message}")
    deadline = time.monotonic() + timeout
    last = "request was allowed"
    while True:
        try:
            call()
        except (ApiException, DynamicApiError) as e:
            last = f"HTTP {e.status}: {_denial(e)}"
            if e.status == 422 and _denial(e).endswith(": " + expected):
                return _denial(e)
        if time.monotonic() > deadline:
            pytest.fail(f"expected denial {expected!r}; last answer: {last}")
        time.sleep(0.1)


def _ensure_mc_deckhouse(custom) -> dict:
    try:
        return custom.get_cluster_custom_object(GROUP, "v1alpha1", "moduleconfigs", "deckhouse")
    except ApiException as e:
        if e.status != 404:
            raise
    body = {"apiVersion": f"{GROUP}/v1alpha1", "kind": "ModuleConfig", "metadata": {"name": "deckhouse"},
            "spec": {"version": 1, "settings": {}}}
    return custom.create_cluster_custom_object(GROUP, "v1alpha1", "moduleconfigs", body)


@pytest.fixture(scope="module")
def json_patch_mc(kube):
    """JSON-patch (RFC 6902) ModuleConfig `deckhouse`; CustomObjectsApi only sends merge patches."""
    mcs = DynamicClient(kube).resources.get(api_version=f"{GROUP}/v1alpha1", kind="ModuleConfig")

    def patch(ops: list, dry_run: bool = True):
        kwargs = {"dry_run": "All"} if dry_run else {}
        return mcs.patch(body=ops, name="deckhouse", content_type="application/json-patch+json", **kwargs)

    return patch


def _registry_json_patch(mc: dict, registry: dict) -> list:
    spec = mc.get("spec") or {}
    ops = []
    if not spec.get("version"):
        ops.append({"op": "add", "path": "/spec/version", "value": 1})
    if isinstance(spec.get("settings"), dict):
        ops.append({"op": "add", "path": "/spec/settings/registry", "value": registry})
    else:
        ops.append({"op": "add", "path": "/spec/settings", "value": {"registry": registry}})
    return ops


@pytest.fixture
def facts(dkp_cluster, core):
    """Set keys of the cluster facts ConfigMap for one test; restores it afterwards.

    The simulator keeps that ConfigMap in line with its own state, so it is paused for
    the test (and resumed afterwards, which rewrites the facts from its state).
    """
    sim = None
    if dkp_cluster.dir and (dkp_cluster.dir / "simulator.json").exists():
        from harness.simulator.control import SimulatorControl

        sim = SimulatorControl(dkp_cluster.dir, timeout=30)
        sim.pause()
    try:
        original = core.read_namespaced_config_map(FACTS_NAME, FACTS_NS)
        saved = dict(original.data or {})
    except ApiException as e:
        if e.status != 404:
            raise
        saved = None
    # no completed registry mode: the mode-keyed rules (Local/Proxy) stay out of these tests
    base = {k: v for k, v in (saved or {}).items() if k != "registryMode"}

    def set_facts(**data):
        body = {"metadata": {"name": FACTS_NAME, "namespace": FACTS_NS}, "data": {**base, **data}}
        try:
            core.patch_namespaced_config_map(FACTS_NAME, FACTS_NS, [
                {"op": "add", "path": "/data", "value": body["data"]}])
        except ApiException as e:
            if e.status != 404:
                raise
            core.create_namespaced_config_map(FACTS_NS, body)

    if saved is not None and "registryMode" in saved:
        core.patch_namespaced_config_map(FACTS_NAME, FACTS_NS, [{"op": "add", "path": "/data", "value": base}])
    try:
        yield set_facts
    finally:
        try:
            if saved is None:
                core.delete_namespaced_config_map(FACTS_NAME, FACTS_NS)
            else:
                core.patch_namespaced_config_map(FACTS_NAME, FACTS_NS, [
                    {"op": "add", "path": "/data", "value": saved}])
        except ApiException as e:
            if e.status != 404:
                raise
        finally:
            if sim is not None:
                sim.resume()


def _kubectl(dkp_cluster) -> str:
    kubectl = shutil.which("kubectl")
    if not kubectl:
        state = harness_cluster.read_state(dkp_cluster.dir) if dkp_cluster.dir else None
        cand = Path(state["bin_dir"]) / "kubectl" if state and state.get("bin_dir") else None
        if cand and cand.is_file():
            kubectl = str(cand)
    if not kubectl:
        pytest.skip("no kubectl on PATH or in the binary folder")
    return kubectl


def _tables(output: str) -> dict[str, list[str]]:
    """Headers of `kubectl get a,b,c` output, keyed by the resource prefix of the rows."""
    tables = {}
    for block in re.split(r"\n\s*\n", output.strip()):
        lines = [ln for ln in block.splitlines() if ln.strip()]
        if len(lines) < 2:
            continue
        header = re.split(r"\s{2,}", lines[0].strip())
        kind = lines[1].split("/", 1)[0]
        tables[kind] = header
    return tables


# --------------------------------------------------------------------------- CRDs


@pytest.fixture(scope="module")
def listed_objects(custom, as_deckhouse):
    """Make sure `kubectl get mc,module,mr,ms` has a row of each kind."""
    created = []
    tag = uuid.uuid4().hex[:6]
    samples = {
        "moduleconfigs": {"kind": "ModuleConfig", "metadata": {"name": f"harness-{tag}"}, "spec": {}},
        "modules": {"kind": "Module", "metadata": {"name": f"harness-{tag}"},
                    "properties": {"weight": 900, "source": "harness", "stage": "General Availability"}},
        "modulereleases": {"kind": "ModuleRelease", "metadata": {"name": f"harness-{tag}-v1.0.0"},
                           "spec": {"moduleName": f"harness-{tag}", "version": "1.0.0"}},
        "modulesources": {"kind": "ModuleSource", "metadata": {"name": f"harness-{tag}"},
                          "spec": {"registry": {"repo": "registry.example.com/modules"}}},
    }
    for plural, body in samples.items():
        if custom.list_cluster_custom_object(GROUP, "v1alpha1", plural, limit=1)["items"]:
            continue
        body = {"apiVersion": f"{GROUP}/v1alpha1", **body}
        custom.create_cluster_custom_object(GROUP, "v1alpha1", plural, body)
        created.append((plural, body["metadata"]["name"]))
    yield
    for plural, name in created:
        try:
            custom.delete_cluster_custom_object(GROUP, "v1alpha1", plural, name)
        except ApiException as e:
            if e.status != 404:
                raise


def test_kubectl_get_shows_dkp_printer_columns(dkp_cluster, listed_objects):
    kubectl = _kubectl(dkp_cluster)
    base = [kubectl, "--kubeconfig", str(dkp_cluster.kubeconfig), "get", "mc,module,mr,ms"]
    out = subprocess.run(base, capture_output=True, text=True, check=True).stdout
    tables = _tables(out)
    assert tables.get("moduleconfig.deckhouse.io") == ["NAME", "ENABLED", "VERSION", "AGE", "MESSAGE"], out
    assert tables.get("module.deckhouse.io") == ["NAME", "STAGE", "SOURCE", "PHASE", "ENABLED", "READY"], out
    assert tables.get("modulerelease.deckhouse.io") == [
        "NAME", "PHASE", "UPDATE POLICY", "TRANSITIONTIME", "MESSAGE"], out
    assert tables.get("modulesource.deckhouse.io") == ["NAME", "COUNT", "STATUS", "SYNC", "MSG"], out

    wide = subprocess.run(base + ["-o", "wide"], capture_output=True, text=True, check=True).stdout
    tables = _tables(wide)
    assert tables.get("moduleconfig.deckhouse.io") == [
        "NAME", "ENABLED", "UPDATEPOLICY", "SOURCE", "VERSION", "AGE", "MESSAGE"], wide
    assert tables.get("module.deckhouse.io") == [
        "NAME", "WEIGHT", "STAGE", "RELEASE CHANNEL", "SOURCE", "VERSION", "PHASE", "ENABLED",
        "DISABLED MESSAGE", "READY"], wide


def test_short_names_versions_and_subresources(kube, dkp_version):
    mup_v1 = dkp_harness_versions.features(dkp_version).mup_v1alpha1_served

    def discovery(version: str) -> dict:
        data = client.CustomObjectsApi(kube).get_api_resources(GROUP, version)
        return {r.name: r for r in data.resources}

    v1 = discovery("v1alpha1")
    short = {name: r.short_names or [] for name, r in v1.items() if "/" not in name}
    want = {
        "moduleconfigs": ["mc"],
        "modules": [],
        "modulereleases": ["mr"],
        "modulesources": ["ms"],
        "deckhousereleases": [],
    }
    if mup_v1:  # 1.75 still serves ModuleUpdatePolicy v1alpha1
        want["moduleupdatepolicies"] = ["mup"]
    assert short == want
    assert all(not r.namespaced for r in v1.values())
    for sub in ("moduleconfigs/status", "modules/status", "modulereleases/status", "modulesources/status",
                "deckhousereleases/status"):
        assert sub in v1, sub
    assert "moduleupdatepolicies/status" not in v1

    v2 = discovery("v1alpha2")
    assert set(v2) == {"moduleupdatepolicies", "modulepulloverrides", "modulepulloverrides/status"}
    assert v2["modulepulloverrides"].short_names == ["mpo"]
    if not mup_v1:
        assert v2["moduleupdatepolicies"].short_names == ["mup"]

    crds = client.ApiextensionsV1Api(kube)
    mup = crds.read_custom_resource_definition(f"moduleupdatepolicies.{GROUP}")
    versions = {v.name: v for v in mup.spec.versions}
    assert versions["v1alpha1"].served is mup_v1 and not versions["v1alpha1"].storage and versions["v1alpha1"].deprecated
    assert versions["v1alpha2"].served and versions["v1alpha2"].storage
    assert mup.spec.conversion.strategy == "None"
    mpo = crds.read_custom_resource_definition(f"modulepulloverrides.{GROUP}")
    assert {v.name: v.served for v in mpo.spec.versions} == {"v1alpha1": False, "v1alpha2": True}
    for name in ("moduleconfigs", "modulesources"):
        crd = crds.read_custom_resource_definition(f"{name}.{GROUP}")
        assert crd.metadata.labels.get("backup.deckhouse.io/cluster-config") == "true"


def test_schema_defaults_of_update_policy_versions(custom, dkp_version):
    name = f"harness-defaults-{uuid.uuid4().hex[:6]}"
    v2 = custom.create_cluster_custom_object(GROUP, "v1alpha2", "moduleupdatepolicies", {
        "apiVersion": f"{GROUP}/v1alpha2", "kind": "ModuleUpdatePolicy", "metadata": {"name": name},
        "spec": {"update": {}}}, dry_run="All")
    assert v2["spec"] == {"releaseChannel": "Stable", "update": {"mode": "Auto"}}
    if not dkp_harness_versions.features(dkp_version).mup_v1alpha1_served:
        return
    v1 = custom.create_cluster_custom_object(GROUP, "v1alpha1", "moduleupdatepolicies", {
        "apiVersion": f"{GROUP}/v1alpha1", "kind": "ModuleUpdatePolicy", "metadata": {"name": name},
        "spec": {"update": {}, "moduleReleaseSelector": {"labelSelector": {"matchLabels": {"a": "b"}}}}},
        dry_run="All")
    assert v1["spec"]["update"] == {"mode": "AutoPatch"}
    with pytest.raises(ApiException) as e:
        custom.create_cluster_custom_object(GROUP, "v1alpha2", "moduleupdatepolicies", {
            "apiVersion": f"{GROUP}/v1alpha2", "kind": "ModuleUpdatePolicy", "metadata": {"name": name},
            "spec": {"update": {"mode": "Ignore"}}}, dry_run="All")
    assert e.value.status == 422 and "Unsupported value: \"Ignore\"" in _denial(e.value)


# --------------------------------------------------------------------------- admission


@pytest.mark.parametrize("version", ["v1alpha1", "v1alpha2"])
def test_mup_update_windows_from_must_precede_to(custom, version, dkp_version):
    if version == "v1alpha1" and not dkp_harness_versions.features(dkp_version).mup_v1alpha1_served:
        pytest.skip(f"ModuleUpdatePolicy v1alpha1 is not served by DKP {dkp_version}")

    def body(frm, to):
        spec = {"update": {"mode": "Manual", "windows": [{"from": "1:00", "to": "2:30"}, {"from": frm, "to": to}]}}
        if version == "v1alpha1":
            spec["moduleReleaseSelector"] = {"labelSelector": {"matchLabels": {"module": "x"}}}
        return {"apiVersion": f"{GROUP}/{version}", "kind": "ModuleUpdatePolicy",
                "metadata": {"name": f"harness-windows-{version}"}, "spec": spec}

    _expect_denied(
        lambda: custom.create_cluster_custom_object(GROUP, version, "moduleupdatepolicies",
                                                    body("10:00", "9:59"), dry_run="All"),
        "mup-update-windows.deckhouse.io", WINDOWS_MESSAGE)
    _expect_denied(
        lambda: custom.create_cluster_custom_object(GROUP, version, "moduleupdatepolicies",
                                                    body("8:00", "8:00"), dry_run="All"),
        "mup-update-windows.deckhouse.io", WINDOWS_MESSAGE)
    # "8:00" < "10:00" as times, though not as strings.
    custom.create_cluster_custom_object(GROUP, version, "moduleupdatepolicies", body("8:00", "10:00"),
                                        dry_run="All")


def test_mc_update_windows_from_must_precede_to(custom, json_patch_mc):
    mc = _ensure_mc_deckhouse(custom)
    settings_ops = [] if isinstance((mc.get("spec") or {}).get("settings"), dict) else [
        {"op": "add", "path": "/spec/settings", "value": {}}]
    patch = settings_ops + [
        {"op": "add", "path": "/spec/settings/update", "value": {"windows": [{"from": "22:00", "to": "21:00"}]}}]
    _expect_denied(lambda: json_patch_mc(patch), "mc-update-windows.deckhouse.io", WINDOWS_MESSAGE)


@pytest.mark.parametrize(
    "facts_data, mode, message",
    [
        ({"registryModuleEnabled": "false", "clusterBootstrapped": "true", "clusterType": "Static"},
         "Direct", REGISTRY_DISABLED),
        ({"registryModuleEnabled": "true", "clusterBootstrapped": "false", "clusterType": "Static"},
         "Direct", REGISTRY_BOOTSTRAP),
        ({"registryModuleEnabled": "true", "clusterBootstrapped": "true", "clusterType": "Cloud"},
         "Proxy", REGISTRY_NON_STATIC),
    ],
    ids=["module-disabled", "bootstrapping", "proxy-on-cloud"],
)
def test_registry_change_rejected_by_cluster_facts(custom, json_patch_mc, facts, facts_data, mode, message):
    mc = _ensure_mc_deckhouse(custom)
    section = {"imagesRepo": f"registry.example.com/harness/{uuid.uuid4().hex[:8]}", "license": "x"}
    registry = {"mode": mode, mode.lower(): section}
    patch = _registry_json_patch(mc, registry)

    def call():
        facts(**facts_data)  # re-asserted each try, in case the simulator rewrote it
        json_patch_mc(patch)

    _expect_denied(call, "deckhouse-module-registry-validation", message)

    # With permissive facts the same change passes admission (dry run).
    facts(registryModuleEnabled="true", clusterBootstrapped="true", clusterType="Static")
    deadline = time.monotonic() + 5
    while True:
        try:
            json_patch_mc(patch)
            break
        except DynamicApiError as e:
            if time.monotonic() > deadline or "deckhouse-module-registry-validation" not in _denial(e):
                raise


@pytest.mark.parametrize(
    "registry, message",
    [
        ({"mode": "Direct"}, "registry: when mode is 'Direct', 'direct' section must be specified."),
        ({"mode": "Direct", "direct": {"license": "x"}}, "registry.direct: 'imagesRepo' is required."),
        ({"mode": "Unmanaged", "unmanaged": {"imagesRepo": "r.example.com/d8", "username": "u"}},
         "'password' is required when 'username' is provided."),
        ({"mode": "Direct", "direct": {"imagesRepo": "r.example.com/d8", "license": "l", "username": "u",
                                       "password": "p"}},
         "'license' and 'username'/'password' are mutually exclusive."),
        ({"mode": "Proxy", "proxy": {"imagesRepo": "r.example.com/d8", "ttl": "4m59s"}},
         "registry.proxy: 'ttl' should be at least 5 minutes."),
        ({"mode": "Local", "proxy": {"imagesRepo": "r.example.com/d8"}},
         "registry: when mode is not 'Proxy', 'proxy' section must be omitted."),
    ],
    ids=["direct-missing", "imagesRepo-missing", "password-missing", "license-and-credentials",
         "ttl-too-short", "proxy-section-extra"],
)
def test_registry_settings_messages(custom, json_patch_mc, facts, registry, message):
    facts(registryModuleEnabled="true", clusterBootstrapped="true", clusterType="Static")
    mc = _ensure_mc_deckhouse(custom)
    patch = _registry_json_patch(mc, registry)
    version = int((mc.get("spec") or {}).get("version") or 1)
    _expect_denied(lambda: json_patch_mc(patch), "deckhouse-registry-settings.deckhouse.io",
                   f"spec.settings are not valid (version {version}): {message}")


def test_module_release_update_policy_label_is_deckhouse_only(custom, as_deckhouse):
    name = f"harness-label-{uuid.uuid4().hex[:6]}-v1.0.0"
    custom.create_cluster_custom_object(GROUP, "v1alpha1", "modulereleases", {
        "apiVersion": f"{GROUP}/v1alpha1", "kind": "ModuleRelease", "metadata": {"name": name},
        "spec": {"moduleName": "harness-label", "version": "1.0.0"}})
    try:
        d8 = client.CustomObjectsApi(as_deckhouse)
        key = "modules.deckhouse.io/update-policy"
        d8.patch_cluster_custom_object(GROUP, "v1alpha1", "modulereleases", name,
                                       {"metadata": {"labels": {key: "p1"}}})
        _expect_denied(
            lambda: custom.patch_cluster_custom_object(GROUP, "v1alpha1", "modulereleases", name,
                                                       {"metadata": {"labels": {key: "p2"}}}, dry_run="All"),
            "update-policy-label-objects.deckhouse.io",
            "Manual update-policy change is forbidden. Please, remove the update-policy label to "
            "automatically find a new suitable policy")
        # Removing it, or touching other labels, is allowed.
        custom.patch_cluster_custom_object(GROUP, "v1alpha1", "modulereleases", name,
                                           {"metadata": {"labels": {"harness": "x"}}})
        custom.patch_cluster_custom_object(GROUP, "v1alpha1", "modulereleases", name,
                                           {"metadata": {"labels": {key: None}}})
    finally:
        custom.delete_cluster_custom_object(GROUP, "v1alpha1", "modulereleases", name)


def test_heritage_module_source_only_scan_interval(custom, as_deckhouse):
    d8 = client.CustomObjectsApi(as_deckhouse)
    created = False
    try:
        ms = custom.get_cluster_custom_object(GROUP, "v1alpha1", "modulesources", "deckhouse")
    except ApiException as e:
        if e.status != 404:
            raise
        ms = d8.create_cluster_custom_object(GROUP, "v1alpha1", "modulesources", {
            "apiVersion": f"{GROUP}/v1alpha1", "kind": "ModuleSource",
            "metadata": {"name": "deckhouse", "labels": {"heritage": "deckhouse", "module": "deckhouse"}},
            "spec": {"registry": {"repo": "registry.deckhouse.io/deckhouse/ce/modules"}}})
        created = True
    assert ms["metadata"]["labels"].get("heritage") == "deckhouse"
    try:
        custom.patch_cluster_custom_object(GROUP, "v1alpha1", "modulesources", "deckhouse",
                                           {"spec": {"scanInterval": "7m"}}, dry_run="All")
        denied = ("Creating, updating and deleting objects labeled with `heritage: deckhouse` is forbidden; "
                  "only spec.scanInterval of the ModuleSource `deckhouse` may be changed.")
        _expect_denied(
            lambda: custom.patch_cluster_custom_object(GROUP, "v1alpha1", "modulesources", "deckhouse",
                                                       {"spec": {"scanInterval": "7m", "releaseChannel": "Alpha"}},
                                                       dry_run="All"),
            "label-objects.deckhouse.io", denied, binding="heritage-label-objects.deckhouse.io")
        _expect_denied(
            lambda: custom.delete_cluster_custom_object(GROUP, "v1alpha1", "modulesources", "deckhouse",
                                                        dry_run="All"),
            "label-objects.deckhouse.io", denied, binding="heritage-label-objects.deckhouse.io")
        # Deckhouse itself may change it.
        d8.patch_cluster_custom_object(GROUP, "v1alpha1", "modulesources", "deckhouse",
                                       {"spec": {"releaseChannel": "Alpha"}}, dry_run="All")
    finally:
        if created:
            d8.delete_cluster_custom_object(GROUP, "v1alpha1", "modulesources", "deckhouse")


# --------------------------------------------------------------------------- audit, SSA


def test_audit_log_records_patches_and_marks_dry_runs(dkp_cluster, custom):
    _ensure_mc_deckhouse(custom)
    key = "harness.deckhouse.io/audit-test"
    value = uuid.uuid4().hex
    mark = dkp_cluster.audit_marker()
    custom.patch_cluster_custom_object(GROUP, "v1alpha1", "moduleconfigs", "deckhouse",
                                       {"metadata": {"annotations": {key: value}}}, dry_run="All")
    custom.patch_cluster_custom_object(GROUP, "v1alpha1", "moduleconfigs", "deckhouse",
                                       {"metadata": {"annotations": {key: value}}})
    try:
        writes = dkp_cluster.writes_since(mark, resource="moduleconfigs", name="deckhouse",
                                          user="kubernetes-admin")
        assert [(w.verb, w.dry_run, w.code) for w in writes] == [("patch", True, 200), ("patch", False, 200)], writes
        assert writes[0].api_group == GROUP and writes[0].subresource == ""
        assert dkp_cluster.writes_since(mark, resource="moduleconfigs", name="deckhouse", dry_run=False,
                                        user="kubernetes-admin") == writes[1:]
        # Reads are not recorded at all.
        mark2 = dkp_cluster.audit_marker()
        custom.get_cluster_custom_object(GROUP, "v1alpha1", "moduleconfigs", "deckhouse")
        assert dkp_cluster.audit_events(mark2, verb=("get", "list", "watch")) == []
    finally:
        custom.patch_cluster_custom_object(GROUP, "v1alpha1", "moduleconfigs", "deckhouse",
                                           {"metadata": {"annotations": {key: None}}})


def test_server_side_apply_and_dry_run_on_module_config(kube, custom):
    _ensure_mc_deckhouse(custom)
    mcs = DynamicClient(kube).resources.get(api_version=f"{GROUP}/v1alpha1", kind="ModuleConfig")
    key = "harness.deckhouse.io/ssa-test"
    manager = "harness-ssa-test"
    body = {"apiVersion": f"{GROUP}/v1alpha1", "kind": "ModuleConfig",
            "metadata": {"name": "deckhouse", "annotations": {key: "1"}}}

    dry = mcs.server_side_apply(body=body, name="deckhouse", field_manager=manager, dry_run="All")
    assert dry.metadata.annotations[key] == "1"
    live = custom.get_cluster_custom_object(GROUP, "v1alpha1", "moduleconfigs", "deckhouse")
    assert key not in (live["metadata"].get("annotations") or {})

    mcs.server_side_apply(body=body, name="deckhouse", field_manager=manager)
    live = custom.get_cluster_custom_object(GROUP, "v1alpha1", "moduleconfigs", "deckhouse")
    assert live["metadata"]["annotations"][key] == "1"
    assert any(m["manager"] == manager and m["operation"] == "Apply" for m in live["metadata"]["managedFields"])

    # Applying without the field hands it back: SSA removes what the manager no longer names.
    mcs.server_side_apply(body={**body, "metadata": {"name": "deckhouse"}}, name="deckhouse", field_manager=manager)
    live = custom.get_cluster_custom_object(GROUP, "v1alpha1", "moduleconfigs", "deckhouse")
    assert key not in (live["metadata"].get("annotations") or {})


# --------------------------------------------------------------------------- kwok


def test_kwok_node_is_ready(dkp_cluster, core):
    deadline = time.monotonic() + 15
    while True:
        node = core.read_node(harness_cluster.NODE_NAME)
        ready = [c for c in (node.status.conditions or []) if c.type == "Ready"]
        if ready and ready[0].status == "True":
            break
        assert time.monotonic() < deadline, f"node not Ready: {node.status.conditions}"
        time.sleep(0.2)
    addresses = {a.type: a.address for a in node.status.addresses}
    assert addresses["InternalIP"] == "127.0.0.1"
    assert "node-role.kubernetes.io/control-plane" in node.metadata.labels
    state = harness_cluster.read_state(dkp_cluster.dir) if dkp_cluster.dir else None
    if state:
        assert node.status.daemon_endpoints.kubelet_endpoint.port == state["ports"]["kwok"]


def _wait_running(core, name, ns, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        pod = core.read_namespaced_pod(name, ns)
        if pod.status.phase == "Running":
            return pod
        assert time.monotonic() < deadline, f"pod {ns}/{name} is {pod.status.phase}"
        time.sleep(0.2)


@pytest.fixture
def exec_pod(core):
    ns = "dkp-exec"
    assert ns in harness_cluster.EXEC_NAMESPACES
    try:
        core.create_namespace({"metadata": {"name": ns}})
    except ApiException as e:
        if e.status != 409:
            raise
    deadline = time.monotonic() + 30  # the ServiceAccount admission needs the default SA
    while True:
        try:
            core.read_namespaced_service_account("default", ns)
            break
        except ApiException as e:
            if e.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    name = f"harness-exec-{uuid.uuid4().hex[:6]}"
    core.create_namespaced_pod(ns, {
        "metadata": {"name": name},
        "spec": {"nodeName": harness_cluster.NODE_NAME, "containers": [{"name": "main", "image": "busybox"}]},
    })
    pod = _wait_running(core, name, ns)
    yield pod
    core.delete_namespaced_pod(name, ns, grace_period_seconds=0)


def _exec(core, pod, command):
    ws = stream(core.connect_get_namespaced_pod_exec, pod.metadata.name, pod.metadata.namespace,
                command=command, stdout=True, stderr=True, stdin=False, tty=False, _preload_content=False)
    try:
        ws.run_forever(timeout=20)
        out, err = ws.read_stdout(), ws.read_stderr()
        status = json.loads(ws.read_channel(3) or "{}")
    finally:
        ws.close()
    return out, err, status


def test_exec_in_pod_on_kwok_node(dkp_cluster, core, exec_pod):
    assert exec_pod.status.pod_ip and exec_pod.status.host_ip == "127.0.0.1"
    out, err, status = _exec(core, exec_pod, ["echo", "hello"])
    assert (out, err, status.get("status")) == ("hello\n", "", "Success")
    if dkp_cluster.dir:
        out = _exec(core, exec_pod, ["pwd"])[0]
        assert out.strip() == str(dkp_cluster.dir / "exec")
    # kwok v0.8.0 reports a non-zero exit as a failure without the exit code.
    out, err, status = _exec(core, exec_pod, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (out, err, status.get("status")) == ("out\n", "err\n", "Failure")
    assert "exit status 3" in status.get("message", "")


def test_curl_shim_reaches_the_simulator(dkp_cluster, core):
    if not dkp_cluster.dir or not (dkp_cluster.dir / "simulator.json").exists():
        pytest.skip("the simulator is not running")
    name = f"harness-curl-{uuid.uuid4().hex[:6]}"
    core.create_namespaced_pod("d8-system", {
        "metadata": {"name": name},
        "spec": {"nodeName": harness_cluster.NODE_NAME, "containers": [{"name": "deckhouse", "image": "x"}]},
    })
    try:
        pod = _wait_running(core, name, "d8-system")
        out, err, status = _exec(core, pod, ["curl", "-s", "http://127.0.0.1:9652/queue/list.json"])
        assert status.get("status") == "Success", (status, err)
        assert isinstance(json.loads(out), dict), out
    finally:
        core.delete_namespaced_pod(name, "d8-system", grace_period_seconds=0)


# --------------------------------------------------------------------------- cluster.py


def test_second_up_reports_the_running_cluster(dkp_cluster):
    if not dkp_cluster.dir or not harness_cluster.running(dkp_cluster.dir):
        pytest.skip("not a cluster started by tests/harness/cluster.py")
    script = Path(harness_cluster.__file__)
    res = subprocess.run([sys.executable, str(script), "up", "--dir", str(dkp_cluster.dir)],
                         capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": ""}, check=False)
    assert res.returncode == 0, res.stderr
    assert f"cluster already running (DKP {dkp_cluster.dkp_version}, kubeconfig: {dkp_cluster.dir / 'kubeconfig'})" \
        in res.stdout
    res = subprocess.run([sys.executable, str(script), "status", "--dir", str(dkp_cluster.dir)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0 and res.stdout.startswith("running"), res.stdout
