"""The DKP simulator against the real local kube-apiserver (tests/harness).

The first group needs no cluster: it checks the simulator's pure logic (queue dumps,
release decisions, ModuleConfig validation, registry transitions). The rest drive the
simulator through the API server like a user (and the collection) would, and steer it
through ``SimulatorControl``; each starts from ``fresh_simulator`` (a reset simulator).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time

import pytest
import yaml

from harness.simulator import consts as C
from harness.simulator import taskqueue as squeue
from harness.simulator import registry as sreg
from harness.simulator import releases as srel
from harness.simulator import validation as sval
from harness.simulator.catalogue import Catalogue
from harness.simulator.semver import Version

GROUP = "deckhouse.io"
EXAMPLE_REPO = "registry.example.com/deckhouse/modules"
TIMEOUT = 30.0


# =============================================================================== pure logic
class TestPureLogic:
    def test_queue_text_idle_matches_shell_operator(self):
        q = squeue.QueueSet(["/modules/a", "/modules/b"])
        assert q.list_dump("text", False) == (
            "Summary:\n- 'main' queue: empty.\n- 2 other queues (0 active, 2 empty): 0 tasks.\n- no tasks to handle.\n")
        doc = json.loads(q.list_dump("json", False))
        assert doc == {"active": [], "summary": {"mainQueueTasks": 0,
                                                 "otherQueues": {"active": 0, "empty": 2, "tasks": 0},
                                                 "totalTasks": 0}}
        assert "empty" not in doc
        assert [x["name"] for x in json.loads(q.list_dump("json", True))["empty"]] == ["main", "/modules/a",
                                                                                       "/modules/b"]

    def test_queue_failing_task_description_and_drain(self):
        q = squeue.QueueSet(["/modules/a"])
        q.add("ModuleRun", "main", "cert-manager")
        q.add("ModuleRun", "main", "prometheus", fail=True, error="hook failed", failures=1)
        q.add("ModuleHookRun", "/modules/a", "a:hook")
        doc = json.loads(q.list_dump("json", False))
        assert doc["summary"] == {"mainQueueTasks": 2, "otherQueues": {"active": 1, "empty": 0, "tasks": 1},
                                  "totalTasks": 3}
        assert [q_["name"] for q_ in doc["active"]] == ["main", "/modules/a"]
        descs = [t["description"] for t in doc["active"][0]["tasks"]]
        assert descs == ["ModuleRun:main:cert-manager", "ModuleRun:main:prometheus:failures 1:hook failed"]
        q.tick()
        q.tick()
        q.tick()
        doc = json.loads(q.list_dump("json", False))
        assert doc["summary"]["totalTasks"] == 1
        assert doc["active"][0]["tasks"][0]["description"].startswith("ModuleRun:main:prometheus:failures ")
        text = q.list_dump("text", False)
        assert text.startswith("Queue 'main': length 1, status: ")
        assert "- total 1 task to handle.\n" in text
        main = json.loads(q.main_dump("json"))
        assert main["name"] == "main" and main["tasksCount"] == 1

    def _rel(self, name, version, phase, ann=None):
        return {"metadata": {"name": name, "annotations": ann or {}}, "spec": {"version": version},
                "status": {"phase": phase}}

    def test_release_decisions(self):
        now = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.timezone.utc)  # a Monday
        dep = self._rel("m-v1.2.0", "1.2.0", "Deployed")
        minor = self._rel("m-v1.3.0", "1.3.0", "Pending")
        task = srel.calculate_task(minor, [dep, minor])
        assert task.kind == "process" and not task.is_patch
        manual = srel.Policy("p", "Manual")
        assert srel.deploy_delay(minor, task, manual, now) == \
            "Release is waiting for the 'modules.deckhouse.io/approved: \"true\"' annotation"
        assert srel.deploy_delay(minor, task, srel.Policy("p", "Auto"), now) is None
        assert srel.deploy_delay(minor, task, srel.Policy("p", "AutoPatch"), now) is not None
        approved = self._rel("m-v1.3.0", "1.3.0", "Pending", {C.ANN_APPROVED: "true"})
        assert srel.deploy_delay(approved, task, manual, now) is None
        apply_now = self._rel("m-v1.3.0", "1.3.0", "Pending", {C.ANN_APPLY_NOW: "true"})
        assert srel.deploy_delay(apply_now, task, manual, now) is None
        windowed = srel.Policy("p", "Auto", windows=[{"from": "01:00", "to": "02:00"}])
        msg = srel.deploy_delay(minor, task, windowed, now)
        assert msg == "Release is waiting for the update window until 06 Jan 26 01:00 UTC"
        patch = self._rel("m-v1.2.1", "1.2.1", "Pending")
        ptask = srel.calculate_task(patch, [dep, patch])
        assert ptask.is_patch
        assert srel.deploy_delay(patch, ptask, srel.Policy("p", "AutoPatch"), now) is None
        older = self._rel("m-v1.1.0", "1.1.0", "Pending")
        assert srel.calculate_task(older, [dep, older]).kind == "skip"
        a, b = self._rel("m-v1.3.0", "1.3.0", "Pending"), self._rel("m-v1.4.0", "1.4.0", "Pending")
        b_task = srel.calculate_task(b, [dep, a, b])
        assert b_task.kind == "await" and b_task.message == "awaiting for v1.3.0 release to be deployed"
        assert [str(v) for v in srel.new_versions(["1.2.0", "1.2.3", "1.3.0", "1.3.2", "1.4.0"],
                                                  Version.parse("1.2.0"), Version.parse("1.3.2"))] == ["1.2.3",
                                                                                                       "1.3.2"]

    def test_module_config_validation(self):
        cat = Catalogue()
        st = sval.config_status("prometheus", {"settings": {"retentionDays": 3}}, [1, 2], None, True)
        assert st == {"version": "", "message": "Error: spec.version is required when spec.settings are specified"}
        st = sval.config_status("prometheus", {"version": 1, "settings": {"retentionDays": 3}},
                                cat.config_versions("prometheus"), cat.settings_schema("prometheus"), True)
        assert st == {"version": "1", "message": "Update available, latest spec.settings schema version is 2"}
        assert sval.config_status("nope", {"enabled": True}, [1], None, False)["message"] == "Ignored: unknown module name"
        r = sval.validate_config("cert-manager", {"version": 1, "settings": {"bogus": 1}}, [1],
                                 cat.settings_schema("cert-manager"))
        assert r.error.startswith("spec.settings are not valid (version 1):  validate config values: ") \
            and "certManager.bogus" in r.error
        r = sval.validate_config("cert-manager", {"version": 3, "settings": {"x": 1}}, [1, 2], None)
        assert r.error == "spec.version=3 is unsupported. Use latest version 2, or one of previous versions: 1"
        assert sval.confirmation_message("Breaks things").startswith("Breaks things. Please annotate ModuleConfig with")

    def test_registry_transition_rules(self):
        assert sreg.transition_error("Local", "Proxy", True) == "mode transition from Local to Proxy not supported"
        assert sreg.transition_error("Proxy", "Local", True) == "mode transition from Proxy to Local not supported"
        assert sreg.transition_error("Local", "Unmanaged", False) == \
            "mode transition from Local to Unmanaged not supported"
        assert sreg.transition_error("Local", "Unmanaged", True) is None
        assert sreg.transition_error("Unmanaged", "Direct", True) is None
        assert sreg.sequence("Unmanaged", "Direct", True) == [
            C.RC_IMAGES, C.RC_PREFLIGHT, C.RC_TRANSITION, C.RC_INCLUSTER_PROXY, C.RC_SWITCH, C.RC_FINAL,
            C.RC_CLEANUP_NODE_SERVICES]
        conds = sreg.set_condition([], "A", "False", "Processing", "x")
        conds = sreg.set_condition(conds, "B", "True")
        conds = sreg.set_condition(conds, "A", "True")
        assert [c["type"] for c in conds] == ["B", "A"]


# =============================================================================== cluster helpers
def _api(kube):
    from kubernetes import client

    return client.CustomObjectsApi(kube)


def _core(kube):
    from kubernetes import client

    return client.CoreV1Api(kube)


def get_obj(kube, plural, name, version="v1alpha1"):
    from kubernetes.client.rest import ApiException

    try:
        return _api(kube).get_cluster_custom_object(GROUP, version, plural, name)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def create_obj(kube, plural, body, version="v1alpha1", dry_run=None):
    kw = {"dry_run": dry_run} if dry_run else {}
    return _api(kube).create_cluster_custom_object(GROUP, version, plural, body, **kw)


def patch_obj(kube, plural, name, patch, version="v1alpha1"):
    return _api(kube).patch_cluster_custom_object(GROUP, version, plural, name, patch)


def mc(name, **spec):
    return {"apiVersion": f"{GROUP}/v1alpha1", "kind": "ModuleConfig", "metadata": {"name": name}, "spec": spec}


def wait_for(fn, timeout=TIMEOUT, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


def wait_value(fetch, pred, timeout=TIMEOUT, interval=0.1, what="condition"):
    """Fetch until pred(value) holds; return that value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fetch()
        if pred(last):
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


def cond(obj, ctype):
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


class Recorder:
    """Watch one cluster-scoped custom object (or a Secret) in a thread and keep every version."""

    def __init__(self, kube, plural=None, name=None, version="v1alpha1", secret=None):
        from kubernetes import watch

        self.items: list[dict] = []
        self.stop = threading.Event()
        self.w = watch.Watch()
        if secret:
            ns, sname = secret
            fn, args = _core(kube).list_namespaced_secret, (ns,)
            kwargs = {"field_selector": f"metadata.name={sname}"}
        else:
            fn, args = _api(kube).list_cluster_custom_object, (GROUP, version, plural)
            kwargs = {"field_selector": f"metadata.name={name}"}
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.ready = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        self.ready.wait(5)
        time.sleep(0.2)

    def _run(self):
        self.ready.set()
        while not self.stop.is_set():
            try:
                for ev in self.w.stream(self.fn, *self.args, timeout_seconds=60, **self.kwargs):
                    obj = ev["object"]
                    if not isinstance(obj, dict):
                        obj = obj.to_dict()
                    self.items.append(obj)
                    if self.stop.is_set():
                        return
            except Exception:
                time.sleep(0.1)

    def close(self):
        self.stop.set()
        self.w.stop()


def decode_state(secret):
    data = secret.get("data") or {}
    out = {k: base64.b64decode(v).decode() for k, v in data.items() if k != "state"}
    out["conditions"] = yaml.safe_load(out.get("conditions") or "[]") or []
    return out


def read_registry_state(kube):
    from kubernetes.client.rest import ApiException

    try:
        s = _core(kube).read_namespaced_secret("registry-state", "d8-system")
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    return decode_state({"data": s.data})


def leader_pod(kube):
    pods = _core(kube).list_namespaced_pod("d8-system", label_selector="app=deckhouse,leader=true").items
    pods = [p for p in pods if p.metadata.deletion_timestamp is None]
    return pods[0].metadata.name if pods else None


def exec_curl(kube, path, pod=None):
    from kubernetes.stream import stream

    pod = pod or leader_pod(kube)
    ws = stream(_core(kube).connect_get_namespaced_pod_exec, pod, "d8-system", container="deckhouse",
                command=["curl", "-s", f"http://127.0.0.1:9652{path}"], stdout=True, stderr=True, stdin=False,
                tty=False, _preload_content=False)
    ws.run_forever(timeout=30)
    out = ws.read_stdout() if hasattr(ws, "read_stdout") else ""
    rc = ws.returncode
    ws.close()
    return rc, out


def rejected(kube, plural, body, version="v1alpha1", dry_run=None):
    from kubernetes.client.rest import ApiException

    with pytest.raises(ApiException) as ei:
        create_obj(kube, plural, body, version, dry_run=dry_run)
    return json.loads(ei.value.body).get("message", "")


def enable_example_source(kube, name="example", repo=EXAMPLE_REPO):
    create_obj(kube, "modulesources", {"apiVersion": f"{GROUP}/v1alpha1", "kind": "ModuleSource",
                                       "metadata": {"name": name}, "spec": {"registry": {"repo": repo}}})
    wait_for(lambda: (get_obj(kube, "modulesources", name) or {}).get("status", {}).get("syncTime"),
             what=f"ModuleSource {name} synced")


# =============================================================================== cluster tests
@pytest.fixture
def sim(fresh_simulator):
    return fresh_simulator


def test_enable_module_walks_phases_to_ready(kube, sim):
    rec = Recorder(kube, "modules", "ingress-nginx")
    try:
        create_obj(kube, "moduleconfigs", mc("ingress-nginx", enabled=True))
        wait_for(lambda: (get_obj(kube, "modules", "ingress-nginx") or {}).get("status", {}).get("phase") == "Ready",
                 what="ingress-nginx Ready")
        time.sleep(0.3)
    finally:
        rec.close()
    phases = []
    for o in rec.items:
        p = (o.get("status") or {}).get("phase")
        if p and (not phases or phases[-1] != p):
            phases.append(p)
    # released: a disabled embedded module is Downloaded and enables through Reconciling
    assert phases == ["Downloaded", "Reconciling", "Ready"], phases
    mod = get_obj(kube, "modules", "ingress-nginx")
    assert cond(mod, "IsReady")["status"] == "True"
    assert cond(mod, "EnabledByModuleConfig")["status"] == "True"
    assert cond(mod, "EnabledByModuleManager")["status"] == "True"
    rec_ = next(o for o in rec.items if (o.get("status") or {}).get("phase") == "Reconciling")
    assert cond(rec_, "IsReady")["reason"] == "Reconciling" and cond(rec_, "IsReady")["message"] == "reconciling"
    m = get_obj(kube, "moduleconfigs", "ingress-nginx")
    assert m["status"] == {"version": "1", "message": ""}
    assert C.MC_FINALIZER in m["metadata"]["finalizers"]


def test_disable_module_keeps_it_disabled(kube, sim):
    create_obj(kube, "moduleconfigs", mc("prometheus", enabled=False))
    mod = wait_value(lambda: get_obj(kube, "modules", "prometheus"),
                     lambda m: (cond(m, "IsReady") or {}).get("reason") == "Disabled", what="prometheus disabled")
    assert cond(mod, "IsReady")["status"] == "False" and cond(mod, "IsReady")["message"] == "disabled"
    mm = cond(mod, "EnabledByModuleManager")
    assert (mm["status"], mm["reason"], mm["message"]) == ("False", "ModuleConfig", "turned off by module config")
    assert cond(mod, "EnabledByModuleConfig")["status"] == "False"
    time.sleep(1.0)
    assert cond(get_obj(kube, "modules", "prometheus"), "IsReady")["status"] == "False"


def test_module_config_status_messages(kube, sim):
    create_obj(kube, "moduleconfigs", mc("prometheus", version=1, settings={"retentionDays": 7}))
    create_obj(kube, "moduleconfigs", mc("no-such-module", enabled=False))
    st = wait_for(lambda: (get_obj(kube, "moduleconfigs", "prometheus") or {}).get("status"), what="MC status")
    assert st == {"version": "1", "message": "Update available, latest spec.settings schema version is 2"}
    st = wait_for(lambda: (get_obj(kube, "moduleconfigs", "no-such-module") or {}).get("status"), what="MC status")
    assert st["message"] == "Ignored: unknown module name"
    patch_obj(kube, "moduleconfigs", "prometheus", {"spec": {"version": 2}})
    wait_for(lambda: get_obj(kube, "moduleconfigs", "prometheus")["status"] == {"version": "2", "message": ""},
             what="status after the version bump")


@pytest.mark.parametrize("body, message", [
    (mc("prometheus", settings={"retentionDays": 3}), "spec.version is required when spec.settings are specified"),
    (mc("no-such-module", enabled=True), "the 'no-such-module' module not found"),
    (mc("prometheus", updatePolicy="nope"), "the 'nope' module policy does not exist"),
    (mc("prometheus", source="Embedded"), "'Embedded' is a forbidden source"),
    (mc("console", enabled=True, source="example"),
     "the 'example' module source is an unavailable source for the 'console' module, available sources: [deckhouse]"),
    (mc("operator-postgres", enabled=True),
     "the 'operator-postgres' module is experimental, set param in 'deckhouse' ModuleConfig - "
     "spec.settings.allowExperimentalModules: true to allow it"),
    (mc("cni-cilium", enabled=False),
     "Disabling the cni-cilium module breaks the pod network of the whole cluster. Please annotate ModuleConfig "
     "with `modules.deckhouse.io/allow-disabling=true` if you're sure that you want to disable the module."),
])
def test_webhook_rejections(kube, sim, body, message):
    if body["metadata"]["name"] == "console":
        wait_for(lambda: get_obj(kube, "modules", "console"), what="Module console from the deckhouse source")
    prefix = f'admission webhook "{C.WEBHOOK_NAME}" denied the request: '
    assert rejected(kube, "moduleconfigs", body) == prefix + message
    assert rejected(kube, "moduleconfigs", body, dry_run="All") == prefix + message


def test_webhook_allows_confirmed_disable_and_experimental_when_allowed(kube, sim):
    body = mc("cni-cilium", enabled=False)
    body["metadata"]["annotations"] = {C.ANN_ALLOW_DISABLING: "true"}
    create_obj(kube, "moduleconfigs", body)
    patch_obj(kube, "moduleconfigs", "deckhouse", {"spec": {"settings": {"allowExperimentalModules": True}}})
    create_obj(kube, "moduleconfigs", mc("operator-postgres", enabled=True))
    wait_for(lambda: get_obj(kube, "modules", "operator-postgres")["status"]["phase"] == "Ready",
             what="experimental module Ready")


def test_delete_module_config_blocked_by_pull_override(kube, sim):
    enable_example_source(kube)
    create_obj(kube, "moduleconfigs", mc("hello-world", enabled=True))
    wait_for(lambda: get_obj(kube, "modules", "hello-world")["status"]["phase"] == "Ready", what="hello-world Ready")
    create_obj(kube, "modulepulloverrides", {"apiVersion": f"{GROUP}/v1alpha2", "kind": "ModulePullOverride",
                                             "metadata": {"name": "hello-world"}, "spec": {"imageTag": "pr1"}},
               version="v1alpha2")
    from kubernetes.client.rest import ApiException

    with pytest.raises(ApiException) as ei:
        _api(kube).delete_cluster_custom_object(GROUP, "v1alpha1", "moduleconfigs", "hello-world")
    assert "delete the ModulePullOverride before deleting the module config" in json.loads(ei.value.body)["message"]


def test_module_source_status_and_conflict(kube, sim):
    enable_example_source(kube)
    ms = get_obj(kube, "modulesources", "example")
    st = ms["status"]
    assert st["phase"] == "Active" and st["modulesCount"] == len(st["modules"]) == 6
    hello = next(m for m in st["modules"] if m["name"] == "hello-world")
    assert hello["version"] == "v0.1.1" and len(hello["checksum"]) == 64 and "policy" not in hello  # omitted for the embedded policy
    mod = get_obj(kube, "modules", "console")
    assert sorted(mod["properties"]["availableSources"]) == ["deckhouse", "example"]
    create_obj(kube, "moduleconfigs", mc("console", enabled=True))
    mod = wait_value(lambda: get_obj(kube, "modules", "console"), lambda m: m["status"]["phase"] == "Conflict",
                     what="console Conflict")
    assert cond(mod, "IsReady")["reason"] == "Conflict" and cond(mod, "IsReady")["message"] == "several available sources"
    # the module whose pull fails reports the error once it is enabled from this source
    create_obj(kube, "moduleconfigs", mc("broken-module", enabled=True))
    sim.sync_sources()
    ms = wait_value(lambda: get_obj(kube, "modulesources", "example"), lambda m: m["status"]["message"],
                    what="pull error reported")
    assert ms["status"]["message"] == "Some errors occurred. Inspect status for details"
    broken = next(m for m in ms["status"]["modules"] if m["name"] == "broken-module")
    assert "MANIFEST_UNKNOWN" in broken["error"] and broken["version"] == "unknown"


def _phase(kube, name):
    return ((get_obj(kube, "modulereleases", name) or {}).get("status") or {}).get("phase")


def test_release_approval_flow_under_manual_policy(kube, sim):
    enable_example_source(kube)
    create_obj(kube, "moduleupdatepolicies", {"apiVersion": f"{GROUP}/v1alpha2", "kind": "ModuleUpdatePolicy",
                                              "metadata": {"name": "manual"},
                                              "spec": {"releaseChannel": "Stable", "update": {"mode": "Manual"}}},
               version="v1alpha2")
    create_obj(kube, "moduleconfigs", mc("hello-world", enabled=True, updatePolicy="manual"))
    # the first release of a module is installed at once
    wait_for(lambda: _phase(kube, "hello-world-v0.1.1") == "Deployed", what="first release deployed")
    first = get_obj(kube, "modulereleases", "hello-world-v0.1.1")
    lbl = first["metadata"]["labels"]
    assert lbl["module"] == "hello-world" and lbl["source"] == "example" and lbl["status"] == "deployed"
    assert lbl["modules.deckhouse.io/update-policy"] == "manual" and len(lbl["release-checksum"]) == 32
    assert first["spec"] == {"moduleName": "hello-world", "version": "0.1.1", "weight": 900}
    assert first["metadata"]["ownerReferences"][0]["kind"] == "ModuleSource"
    assert C.ANN_APPLY_NOW not in first["metadata"]["annotations"]
    assert first["metadata"]["annotations"][C.ANN_CHANGE_CAUSE] == "check release"
    wait_for(lambda: get_obj(kube, "modules", "hello-world")["status"]["phase"] == "Ready", what="module Ready")

    sim.add_release("hello-world", "0.2.0", source="example")
    pend = wait_value(lambda: get_obj(kube, "modulereleases", "hello-world-v0.2.0"),
                      lambda r: (r or {}).get("status", {}).get("message"), what="pending release with a message")
    assert pend["status"]["phase"] == "Pending"
    assert pend["status"]["message"] == "Release is waiting for the 'modules.deckhouse.io/approved: \"true\"' annotation"
    time.sleep(1.0)
    assert _phase(kube, "hello-world-v0.2.0") == "Pending"

    patch_obj(kube, "modulereleases", "hello-world-v0.2.0", {"metadata": {"annotations": {C.ANN_APPROVED: "true"}}})
    wait_for(lambda: _phase(kube, "hello-world-v0.2.0") == "Deployed", what="approved release deployed")
    old = get_obj(kube, "modulereleases", "hello-world-v0.1.1")
    assert old["status"]["phase"] == "Superseded" and old["metadata"]["labels"]["status"] == "superseded"
    new = get_obj(kube, "modulereleases", "hello-world-v0.2.0")
    assert new["status"]["message"] == "" and new["metadata"]["labels"]["status"] == "deployed"

    sim.add_release("hello-world", "0.3.0", source="example")
    wait_for(lambda: _phase(kube, "hello-world-v0.3.0") == "Pending", what="0.3.0 pending")
    patch_obj(kube, "modulereleases", "hello-world-v0.3.0", {"metadata": {"annotations": {C.ANN_APPLY_NOW: "true"}}})
    wait_for(lambda: _phase(kube, "hello-world-v0.3.0") == "Deployed", what="apply-now release deployed")
    ann = wait_value(lambda: get_obj(kube, "modulereleases", "hello-world-v0.3.0")["metadata"]["annotations"],
                     lambda a: C.ANN_APPLY_NOW not in a, what="apply-now removed")
    assert ann[C.ANN_NOTIFIED] == "true"  # released 1.74-1.76
    wait_for(lambda: get_obj(kube, "modules", "hello-world")["properties"].get("version") == "v0.3.0",
             what="module version follows the release")


def test_reinstall_reinstalls_and_drops_annotation(kube, sim):
    enable_example_source(kube)
    create_obj(kube, "moduleconfigs", mc("hello-world", enabled=True))
    wait_for(lambda: _phase(kube, "hello-world-v0.1.1") == "Deployed", what="release deployed")
    wait_for(lambda: get_obj(kube, "modules", "hello-world")["status"]["phase"] == "Ready", what="module Ready")
    rec = Recorder(kube, "modules", "hello-world")
    try:
        patch_obj(kube, "modulereleases", "hello-world-v0.1.1",
                  {"metadata": {"annotations": {C.ANN_REINSTALL: "true"}}})
        wait_for(lambda: C.ANN_REINSTALL not in get_obj(kube, "modulereleases", "hello-world-v0.1.1")[
            "metadata"].get("annotations", {}), what="reinstall annotation removed")
        wait_for(lambda: any((o.get("status") or {}).get("phase") == "Installing" for o in rec.items),
                 what="Installing seen")
        wait_for(lambda: get_obj(kube, "modules", "hello-world")["status"]["phase"] == "Ready", what="Ready again")
    finally:
        rec.close()
    assert _phase(kube, "hello-world-v0.1.1") == "Deployed"


def test_pull_override_digest_and_renew(kube, sim):
    enable_example_source(kube)
    create_obj(kube, "moduleconfigs", mc("hello-world", enabled=True))
    wait_for(lambda: _phase(kube, "hello-world-v0.1.1") == "Deployed", what="release deployed")
    create_obj(kube, "modulepulloverrides", {"apiVersion": f"{GROUP}/v1alpha2", "kind": "ModulePullOverride",
                                             "metadata": {"name": "hello-world"}, "spec": {"imageTag": "pr42"}},
               version="v1alpha2")
    o = wait_value(lambda: get_obj(kube, "modulepulloverrides", "hello-world", "v1alpha2"),
                   lambda x: (x or {}).get("status", {}).get("message") == "Ready", what="MPO Ready")
    d1 = o["status"]["imageDigest"]
    assert d1.startswith("sha256:") and len(d1) == 71 and o["status"]["updatedAt"]
    mod = wait_value(lambda: get_obj(kube, "modules", "hello-world"),
                     lambda m: (cond(m, "IsOverridden") or {}).get("status") == "True"
                     and m["properties"].get("version") == "pr42", what="IsOverridden, version pr42")
    # renew only triggers a check: the tag moved, so the new digest is deployed and renew goes
    sim.publish_digest("hello-world", source="example", tag="pr42")
    patch_obj(kube, "modulepulloverrides", "hello-world", {"metadata": {"annotations": {"renew": ""}}}, "v1alpha2")
    o = wait_value(lambda: get_obj(kube, "modulepulloverrides", "hello-world", "v1alpha2"),
                   lambda x: "renew" not in (x["metadata"].get("annotations") or {}), what="renew removed")
    assert o["status"]["imageDigest"] != d1 and o["status"]["message"] == "Ready"
    # a pending release is not processed while the override exists
    sim.add_release("hello-world", "0.2.0", source="example")
    time.sleep(1.5)
    assert _phase(kube, "hello-world-v0.2.0") in (None, "Pending")
    # other MPO messages
    for name, msg in (("cert-manager", "The module is embedded"), ("nothing-here", "The module not found"),
                      ("commander", "The module disabled")):
        create_obj(kube, "modulepulloverrides", {"apiVersion": f"{GROUP}/v1alpha2", "kind": "ModulePullOverride",
                                                 "metadata": {"name": name}, "spec": {"imageTag": "x"}}, "v1alpha2")
        wait_for(lambda n=name, m=msg: (get_obj(kube, "modulepulloverrides", n, "v1alpha2") or {}).get(
            "status", {}).get("message") == m, what=f"MPO {name}: {msg}")
    # rollback: deleting the override returns to the release
    patch_obj(kube, "modulepulloverrides", "hello-world", {"spec": {"rollback": True}}, "v1alpha2")
    _api(kube).delete_cluster_custom_object(GROUP, "v1alpha2", "modulepulloverrides", "hello-world")
    wait_for(lambda: get_obj(kube, "modulepulloverrides", "hello-world", "v1alpha2") is None, what="MPO gone")
    mod = wait_value(lambda: get_obj(kube, "modules", "hello-world"),
                     lambda m: m["properties"].get("version") == "v0.1.1", what="module back on its release")
    assert cond(mod, "IsOverridden")["status"] == "False"
    wait_for(lambda: _phase(kube, "hello-world-v0.2.0") == "Deployed", what="pending release processed again")


def _enable_registry(kube):
    create_obj(kube, "moduleconfigs", mc("registry", enabled=True))
    st = wait_for(lambda: read_registry_state(kube), what="registry-state created")
    assert st["mode"] == "Unmanaged" and st["target_mode"] == "Unmanaged"
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    wait_for(lambda: _core(kube).read_namespaced_config_map("d8-cluster-facts", "d8-system").data.get(
        "registryModuleEnabled") == "true", what="cluster facts")


def _set_registry(kube, registry):
    patch_obj(kube, "moduleconfigs", "deckhouse", {"spec": {"settings": {"registry": registry}}})


def _switched(kube, mode):
    st = read_registry_state(kube)
    if not st or st["mode"] != mode or st["target_mode"] != mode:
        return None
    ready = next((c for c in st["conditions"] if c["type"] == "Ready"), None)
    return st if ready and ready["status"] == "True" else None


def test_registry_switch_unmanaged_to_direct(kube, sim):
    _enable_registry(kube)
    secret = _core(kube).read_namespaced_secret("registry-state", "d8-system")
    assert secret.type == "registry/state"
    assert secret.metadata.labels["app"] == "registry" and secret.metadata.labels["type"] == "registry-state"
    assert C.FAKE_SECRET_MARKER in base64.b64decode(secret.data["state"]).decode()
    old_hash = base64.b64decode(secret.data["hash"]).decode()
    leader_before = leader_pod(kube)
    rec = Recorder(kube, secret=("d8-system", "registry-state"))
    t0 = time.monotonic()
    try:
        _set_registry(kube, {"mode": "Direct", "direct": {"imagesRepo": "registry.example.com/deckhouse/ee",
                                                          "scheme": "HTTPS", "license": "LICENSE"}})
        st = wait_for(lambda: _switched(kube, "Direct"), what="switch to Direct")
    finally:
        rec.close()
    assert time.monotonic() - t0 < 20
    assert st["hash"] != old_hash
    # the sequence, as the Secret went through it
    firsts = []
    for obj in rec.items:
        data = decode_state({"data": obj.get("data") or {}})
        for c in data["conditions"]:
            if c["status"] == "True" and c["type"] not in firsts and data["target_mode"] == "Direct":
                firsts.append(c["type"])
    expected = [C.RC_IMAGES, C.RC_PREFLIGHT, C.RC_TRANSITION, C.RC_INCLUSTER_PROXY, C.RC_SWITCH, C.RC_FINAL,
                C.RC_CLEANUP_NODE_SERVICES, C.RC_READY]
    firsts = [t for t in firsts if t in expected]
    assert firsts[-len(expected):] == expected, firsts
    targets = [decode_state({"data": o.get("data") or {}}) for o in rec.items]
    assert any(t["target_mode"] == "Direct" and t["conditions"] == [] for t in targets), "conditions not cleared"
    processing = [c for t in targets for c in t["conditions"] if c["type"] == "Ready" and c["status"] == "False"]
    assert processing and processing[0]["reason"] == "Processing" and processing[0]["message"] == "Transitioning to Direct"
    images = next(c for c in st["conditions"] if c["type"] == C.RC_IMAGES)
    assert images["reason"] == "Ready" and images["message"].endswith("items are checked")
    # the first switch away from Unmanaged replaced the Deckhouse leader pod
    wait_for(lambda: leader_pod(kube) not in (None, leader_before), what="leader pod replaced")


def test_registry_local_proxy_not_supported(kube, sim):
    _enable_registry(kube)
    _set_registry(kube, {"mode": "Proxy", "proxy": {"imagesRepo": "registry.example.com/deckhouse/ee",
                                                    "scheme": "HTTPS", "license": "LICENSE"}})
    wait_for(lambda: _switched(kube, "Proxy"), what="switch to Proxy")
    # 1.75+: the VAP refuses the write (the orchestrator's ErrTransitionNotSupported stays a fallback)
    from kubernetes.client.rest import ApiException

    with pytest.raises(ApiException) as ei:
        _set_registry(kube, {"mode": "Local", "proxy": None})
    assert ('Switching `spec.settings.registry.mode` to Local mode is not supported when registry is running in '
            '"Proxy" mode.') in json.loads(ei.value.body)["message"]
    st = read_registry_state(kube)
    assert st["mode"] == "Proxy" and st["target_mode"] == "Proxy"


def test_registry_local_waits_for_pushed_images_and_holds(kube, sim):
    _enable_registry(kube)
    sim.hold_condition(C.RC_SWITCH, "held by the test")
    _set_registry(kube, {"mode": "Local"})
    wait_value(lambda: read_registry_state(kube),
               lambda s: s and any(c["type"] == C.RC_IMAGES and c["status"] == "False" and "items with errors" in c["message"]
                                   for c in s["conditions"]), what="Local waits for images")
    time.sleep(1.0)
    assert read_registry_state(kube)["mode"] == "Unmanaged"
    sim.local_images_pushed()
    wait_value(lambda: read_registry_state(kube),
               lambda s: s and any(c["type"] == C.RC_SWITCH and c["status"] == "False"
                                   and c["message"] == "held by the test" for c in s["conditions"]),
               what="held switch condition")
    sim.release_condition(C.RC_SWITCH)
    wait_for(lambda: _switched(kube, "Local"), what="switch to Local")


def test_registry_rejected_on_cloud_cluster_by_policy(kube, sim):
    _enable_registry(kube)
    sim.cluster_type("Cloud")
    from kubernetes.client.rest import ApiException

    def attempt():
        try:
            _set_registry(kube, {"mode": "Proxy", "proxy": {"imagesRepo": "r.example.com/x", "license": "L"}})
            return None
        except ApiException as e:
            return e

    err = wait_for(attempt, what="VAP rejection")
    assert "Proxy and Local are unsupported for non-static clusters" in err.body


def test_queue_through_exec(kube, sim):
    rc, out = exec_curl(kube, "/queue/list.json")
    assert rc == 0, out
    doc = json.loads(out)
    assert set(doc) == {"active", "summary"}
    assert doc["summary"]["totalTasks"] == 0 and doc["active"] == []
    sim.add_failing_task("ModuleRun:main:cert-manager", error="hook /modules/cert-manager/hooks/x failed")
    rc, out = exec_curl(kube, "/queue/list.json")
    doc = json.loads(out)
    assert doc["summary"]["mainQueueTasks"] == 1
    desc = doc["active"][0]["tasks"][0]["description"]
    assert desc.startswith("ModuleRun:main:cert-manager:failures ") and desc.endswith(
        ":hook /modules/cert-manager/hooks/x failed")
    rc, text = exec_curl(kube, "/queue/list.text?showEmpty=true")
    assert rc == 0 and "Queue 'main': length 1" in text and "Empty queues (" in text
    sim.queue_clear()
    # a config change adds tasks that drain by themselves
    create_obj(kube, "moduleconfigs", mc("ingress-nginx", enabled=True))
    doc = wait_value(sim.queue_list, lambda d: d["summary"]["totalTasks"] > 0, what="tasks after a config change")
    assert any(t["description"] == "ModuleRun:main:ingress-nginx" for q in doc["active"] for t in q.get("tasks", []))
    wait_for(lambda: sim.queue_list()["summary"]["totalTasks"] == 0, what="queue drained")


def test_exec_fails_while_deckhouse_restarts(kube, sim):
    before = leader_pod(kube)
    sim.restart_deckhouse(duration=3)
    failures = 0
    deadline = time.monotonic() + 20
    ok = None
    while time.monotonic() < deadline:
        pod = leader_pod(kube)
        if pod is None:
            failures += 1
            time.sleep(0.2)
            continue
        try:
            rc, out = exec_curl(kube, "/queue/list.json", pod)
        except Exception:
            rc, out = 1, ""
        if rc == 0 and out.strip():
            ok = json.loads(out)
            break
        failures += 1
        time.sleep(0.2)
    assert failures > 0, "the restart did not interrupt the debug API"
    assert ok is not None and leader_pod(kube) != before
    assert ok["summary"]["totalTasks"] > 0  # the restarted Deckhouse refills its queue


def test_node_not_ready_and_cordon(kube, sim):
    sim.node_not_ready("master-1")
    wait_for(lambda: any(c.type == "Ready" and c.status != "True"
                         for c in _core(kube).read_node("master-1").status.conditions), what="master-1 NotReady")
    time.sleep(1.0)  # kwok no longer manages it: it stays NotReady
    assert any(c.type == "Ready" and c.status != "True" for c in _core(kube).read_node("master-1").status.conditions)
    sim.node_cordon("master-2")
    assert _core(kube).read_node("master-2").spec.unschedulable is True
    sim.node_restore()
    wait_for(lambda: all(c.status == "True" for c in _core(kube).read_node("master-1").status.conditions
                         if c.type == "Ready"), what="master-1 Ready again")
    assert not _core(kube).read_node("master-2").spec.unschedulable


def test_pause_lets_a_test_write_status(kube, sim):
    sim.pause()
    try:
        _api(kube).patch_cluster_custom_object_status(GROUP, "v1alpha1", "modules", "cert-manager",
                                                      {"status": {"phase": "Error"}})
        time.sleep(1.0)
        assert get_obj(kube, "modules", "cert-manager")["status"]["phase"] == "Error"
    finally:
        sim.resume()
    wait_for(lambda: get_obj(kube, "modules", "cert-manager")["status"]["phase"] == "Ready", what="reconciled back")


def test_registry_hold_in_steady_state(kube, sim):
    _enable_registry(kube)
    sim.hold_condition("Ready", "held by the test")
    st = wait_value(lambda: read_registry_state(kube),
                    lambda s: any(c["type"] == "Ready" and c["status"] == "False" for c in s["conditions"]),
                    what="Ready held False")
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert (ready["reason"], ready["message"]) == ("Processing", "held by the test")
    sim.release_condition("Ready")
    wait_for(lambda: _switched(kube, "Unmanaged"), what="Ready again after the release")
