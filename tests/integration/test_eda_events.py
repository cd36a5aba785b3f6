"""Event source deckhouse.platform.dkp_events: main(queue, args) against the local cluster and simulator, and one
rulebook through a real ansible-rulebook (its own cached venv under ~/.cache/deckhouse-platform/)."""
from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import time
import uuid

import pytest
import yaml

from ansible_run import ROOT, collection_env

PLUGIN = ROOT / "extensions" / "eda" / "plugins" / "event_source" / "dkp_events.py"
GROUP = "deckhouse.io"
# ansible-rulebook needs Java 17 (JAVA_HOME or java on PATH) and drools-jpy, which it pulls in itself.
EDA_REQUIREMENTS = ["ansible-rulebook==1.3.2", "ansible-core", "kubernetes", "PyYAML"]


def load_plugin():
    spec = importlib.util.spec_from_file_location("dkp_events", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- pure normalisation ---------------------------------------------------------------------------------------

def test_normalise_each_kind():
    p = load_plugin()
    old = {"metadata": {"name": "console"}, "status": {"phase": "Ready"}}
    new = {"metadata": {"name": "console"}, "status": {"phase": "DownloadingError", "conditions": [
        {"type": "IsReady", "status": "False", "message": "pull failed: 401"}]}}
    (ev,) = p.normalise("Module", old, new, "c1")
    assert ev["type"] == "module_phase" and ev["download_error"] and ev["failed"] and "401" in ev["error"]
    assert ev["cluster"] == "c1" and set(ev["time"]) >= {"iso", "hour", "weekday"}
    assert p.normalise("Module", new, new) == []

    rel = {"metadata": {"name": "console-v1.2.0", "labels": {"module": "console"}}, "spec": {"version": "v1.2.0"},
           "status": {"phase": "Pending", "message": "Release is waiting for the 'modules.deckhouse.io/approved: "
                                                     "\"true\"' annotation"}}
    (ev,) = p.normalise("ModuleRelease", None, rel)
    assert ev["type"] == "release_pending" and ev["module"] == "console" and ev["approved"] is False
    (ev,) = p.normalise("ModuleRelease", rel, dict(rel, status={"phase": "Deployed"}))
    assert ev["type"] == "release_deployed"

    src = {"metadata": {"name": "s"}, "status": {"modules": [{"name": "m", "pullError": "MANIFEST_UNKNOWN"}]}}
    (ev,) = p.normalise("ModuleSource", {"metadata": {"name": "s"}}, src)
    assert ev["type"] == "source_error" and ev["module"] == "m" and ev["error"] == "MANIFEST_UNKNOWN"
    (ev,) = p.normalise("ModuleSource", src, {"metadata": {"name": "s"}, "status": {}})
    assert ev["type"] == "source_recovered"
    (ev,) = p.normalise("ModuleSource", None, {"metadata": {"name": "s"}, "status": {"message": "NAME_UNKNOWN"}})
    assert ev["type"] == "source_error" and ev["module"] is None

    mpo = {"metadata": {"name": "m"}, "spec": {"imageTag": "pr-1"}, "status": {"imageDigest": "sha256:b"}}
    (ev,) = p.normalise("ModulePullOverride", dict(mpo, status={"imageDigest": "sha256:a"}), mpo)
    assert ev["type"] == "mpo_digest" and ev["previous_digest"] == "sha256:a"

    import base64

    def secret(mode, target, conds, state="private-key-material"):
        enc = {k: base64.b64encode(v.encode()).decode() for k, v in
               {"mode": mode, "target_mode": target, "conditions": yaml.safe_dump(conds), "state": state}.items()}
        return {"metadata": {"name": "registry-state"}, "data": enc}

    (ev,) = p.normalise("RegistryState", secret("Unmanaged", "Unmanaged", []), secret("Unmanaged", "Direct", [
        {"type": "ContainerdConfigPreflightReady", "status": "False", "reason": "ErrProcessing",
         "message": "bad"}]))
    assert ev["type"] == "registry_switch" and ev["status"] == "failed" and ev["target_mode"] == "Direct"
    assert "private-key-material" not in json.dumps(ev)


# -- main() against the cluster -------------------------------------------------------------------------------

class Collector:
    """Runs main() in its own event loop thread and collects what it puts on the queue."""

    def __init__(self, args):
        self.plugin = load_plugin()
        self.args = args
        self.events = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        queue = asyncio.Queue()

        async def drain():
            while True:
                self.events.append(await queue.get())

        async def runner():
            drainer = asyncio.ensure_future(drain())
            self.task = asyncio.ensure_future(self.plugin.main(queue, self.args))
            try:
                await self.task
            except asyncio.CancelledError:
                pass
            finally:
                drainer.cancel()
                try:
                    await drainer
                except asyncio.CancelledError:
                    pass

        self.loop.run_until_complete(runner())
        self.loop.close()

    def __enter__(self):
        self.thread.start()
        time.sleep(2.0)  # initial lists done
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(10)

    def wait(self, predicate, timeout=60, what="event"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in list(self.events):
                if predicate(e):
                    return e
            time.sleep(0.2)
        seen = [(e["type"], e.get("module"), e.get("phase")) for e in self.events]
        raise AssertionError("no %s within %ss; got %s" % (what, timeout, seen))


def _delete(api, version, plural, name):
    from kubernetes.client.rest import ApiException
    try:
        if plural == "moduleconfigs":
            api.patch_cluster_custom_object(GROUP, version, plural, name, {
                "metadata": {"annotations": {"modules.deckhouse.io/allow-disabling": "true"}}})
        api.delete_cluster_custom_object(GROUP, version, plural, name)
    except ApiException as e:
        if e.status != 404:
            raise


def _wait_gone(api, version, plural, names, timeout=60):
    from kubernetes.client.rest import ApiException
    deadline = time.monotonic() + timeout
    for name in names:
        while time.monotonic() < deadline:
            try:
                api.get_cluster_custom_object(GROUP, version, plural, name)
            except ApiException as e:
                if e.status == 404:
                    break
                raise
            time.sleep(0.5)


@pytest.fixture
def eda_objects(api):
    # A source with releases keeps a finalizer for a while after its deletion: a fresh name per run.
    names = {"source": "eda-src-%s" % uuid.uuid4().hex[:6], "policy": "eda-manual-%s" % uuid.uuid4().hex[:6]}

    def clean():
        # DKP refuses deleting a ModuleConfig while a ModulePullOverride of that module exists (another test may
        # have left one for broken-module): overrides first, and wait until they are gone.
        for module in ("hello-world", "broken-module"):
            _delete(api, "v1alpha2", "modulepulloverrides", module)
        _wait_gone(api, "v1alpha2", "modulepulloverrides", ("hello-world", "broken-module"))
        _delete(api, "v1alpha1", "moduleconfigs", "hello-world")
        _delete(api, "v1alpha1", "moduleconfigs", "broken-module")
        _delete(api, "v1alpha2", "moduleupdatepolicies", names["policy"])
        _delete(api, "v1alpha1", "modulesources", names["source"])

    clean()
    yield names
    clean()


def wait_offered(api, source, module, timeout=60):
    """Until the Module lists `source` among its available sources (the webhook checks that)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            mod = api.get_cluster_custom_object(GROUP, "v1alpha1", "modules", module)
            if source in ((mod.get("properties") or {}).get("availableSources") or []):
                return
        except Exception:  # not created yet
            pass
        time.sleep(0.5)
    raise AssertionError("module %s is not offered by %s within %ss" % (module, source, timeout))


def test_main_delivers_each_kind_of_event(kc, api, simulator, eda_objects):
    args = {"kubeconfig": str(kc), "watch_timeout": 5, "reconnect_delay": 0.5, "cluster": "local"}
    simulator.module_error_clear()  # an earlier failed run may have left one
    time.sleep(1)
    with Collector(args) as c:
        # Module phase change with its error.
        simulator.module_error("prometheus", message="hook failed: eda test")
        ev = c.wait(lambda e: e["type"] == "module_phase" and e["module"] == "prometheus" and e["phase"] == "Error")
        assert ev["failed"] and "eda test" in (ev["error"] or ""), ev
        simulator.module_error_clear("prometheus")

        # ModuleSource pull error (the catalogue's broken-module, reported once the module is enabled from it).
        api.create_cluster_custom_object(GROUP, "v1alpha1", "modulesources", {
            "apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleSource", "metadata": {"name": eda_objects["source"]},
            "spec": {"registry": {"repo": "registry.example.com/deckhouse/modules"}}})
        wait_offered(api, eda_objects["source"], "broken-module")
        api.create_cluster_custom_object(GROUP, "v1alpha1", "moduleconfigs", {
            "apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleConfig", "metadata": {"name": "broken-module"},
            "spec": {"enabled": True, "source": eda_objects["source"]}})
        ev = c.wait(lambda e: e["type"] == "source_error" and e["source"] == eda_objects["source"])
        assert ev["module"] == "broken-module" and "MANIFEST_UNKNOWN" in ev["error"]

        # Release Pending (Manual policy waits for approval), then Deployed once approved.
        api.create_cluster_custom_object(GROUP, "v1alpha2", "moduleupdatepolicies", {
            "apiVersion": "deckhouse.io/v1alpha2", "kind": "ModuleUpdatePolicy", "metadata": {"name": eda_objects["policy"]},
            "spec": {"releaseChannel": "Stable", "update": {"mode": "Manual"}}})
        api.create_cluster_custom_object(GROUP, "v1alpha1", "moduleconfigs", {
            "apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleConfig", "metadata": {"name": "hello-world"},
            "spec": {"enabled": True, "source": eda_objects["source"], "updatePolicy": eda_objects["policy"]}})
        # The first release is deployed without approval; a newer one waits for it under the Manual policy.
        c.wait(lambda e: e["type"] == "module_phase" and e["module"] == "hello-world" and e["phase"] == "Ready",
               timeout=90)
        version = "0.1.%d" % int(time.time())  # newer than whatever an earlier run deployed
        simulator.add_release("hello-world", version, source=eda_objects["source"])
        pending = c.wait(lambda e: e["type"] == "release_pending" and e["module"] == "hello-world"
                         and e["version"] in ("v" + version, version) and "approved" in e["message"], timeout=90)
        assert pending["approved"] is False and "approved" in pending["message"], pending
        api.patch_cluster_custom_object(GROUP, "v1alpha1", "modulereleases", pending["name"], {
            "metadata": {"annotations": {"modules.deckhouse.io/approved": "true"}}})
        c.wait(lambda e: e["type"] == "release_deployed" and e["name"] == pending["name"], timeout=90)

        # ModulePullOverride digest change.
        api.create_cluster_custom_object(GROUP, "v1alpha2", "modulepulloverrides", {
            "apiVersion": "deckhouse.io/v1alpha2", "kind": "ModulePullOverride", "metadata": {"name": "hello-world"},
            "spec": {"imageTag": "pr-7"}})
        first = c.wait(lambda e: e["type"] == "mpo_digest" and e["module"] == "hello-world", timeout=90)
        simulator.publish_digest("hello-world", source=eda_objects["source"], tag="pr-7")
        api.patch_cluster_custom_object(GROUP, "v1alpha2", "modulepulloverrides", "hello-world", {
            "metadata": {"annotations": {"renew": ""}}})
        second = c.wait(lambda e: e["type"] == "mpo_digest" and e["module"] == "hello-world"
                        and e["previous_digest"] == first["digest"], timeout=90)
        assert second["digest"] != first["digest"]

        # Registry state: any change of mode/target/conditions/hash is reported (never `state`).
        simulator.registry_hash_bump()
        ev = c.wait(lambda e: e["type"] == "registry_switch", timeout=60)
        assert ev["status"] in ("progress", "completed", "failed") and "state" not in ev

    # Filters: only the named module and type.
    with Collector(dict(args, modules=["cert-manager"], kinds=["Module"], types=["module_phase"])) as c:
        try:
            simulator.module_error("prometheus", message="filtered out")
            simulator.module_error("cert-manager", message="kept")
            c.wait(lambda e: e["module"] == "cert-manager" and e["phase"] == "Error")
        finally:
            simulator.module_error_clear()
        time.sleep(1)
        assert {e["module"] for e in c.events} == {"cert-manager"}


def test_reconnects_after_the_apiserver_drops_the_watch(kc, simulator):
    """A watch that ends (watch_timeout 2 s) resumes from the last resourceVersion: no change is lost."""
    simulator.module_error_clear()
    time.sleep(1)
    with Collector({"kubeconfig": str(kc), "kinds": ["Module"], "watch_timeout": 2, "reconnect_delay": 0.2}) as c:
        time.sleep(5)  # at least two watch renewals
        simulator.module_error("cert-manager", message="after reconnect")
        c.wait(lambda e: e["module"] == "cert-manager" and e["phase"] == "Error")
        simulator.module_error_clear("cert-manager")


# -- one rulebook through ansible-rulebook ----------------------------------------------------------------------

def eda_venv():
    """~/.cache/deckhouse-platform/eda-<hash>: a venv with ansible-rulebook (made once, reused)."""
    digest = hashlib.sha256(" ".join(EDA_REQUIREMENTS).encode()).hexdigest()[:12]
    venv = pathlib.Path.home() / ".cache" / "deckhouse-platform" / ("eda-" + digest)
    rulebook = venv / "bin" / "ansible-rulebook"
    if rulebook.exists():
        return venv
    if not shutil.which("java"):
        pytest.skip("ansible-rulebook needs Java 17: no java on PATH")
    tmp = venv.with_name(venv.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(tmp)], check=True)
    proc = subprocess.run([str(tmp / "bin" / "pip"), "install", "-q", *EDA_REQUIREMENTS], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        pytest.fail("ansible-rulebook does not install: %s" % proc.stderr[-2000:])
    tmp.rename(venv)
    return venv


def test_reinstall_rulebook_through_ansible_rulebook(kc, kube, api, tmp_path):
    venv = eda_venv()
    out = tmp_path / "fired.json"
    # The rulebook's action runs this playbook instead of the real reinstall role (tested on its own).
    playbook = tmp_path / "record_event.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "all", "gather_facts": False, "tasks": [
        {"ansible.builtin.copy": {"content": "{{ {'module': module_reinstall_module, 'event': dkp_event} | to_json }}",
                                  "dest": str(out)}, "delegate_to": "localhost"}]}]))
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {"ansible_connection": "local",
                                                                         "ansible_python_interpreter": str(
                                                                             venv / "bin" / "python")}}}}))
    variables = tmp_path / "vars.yml"
    variables.write_text(yaml.safe_dump({"dkp_kubeconfig": str(kc), "reinstall_playbook": str(playbook)}))
    env = collection_env(kc, record=False)
    env["PATH"] = "%s:%s" % (venv / "bin", env["PATH"])
    env.pop("ANSIBLE_CONFIG", None)
    proc = subprocess.Popen([str(venv / "bin" / "ansible-rulebook"), "-i", str(inventory), "--vars", str(variables),
                             "-r", "deckhouse.platform.reinstall_failed_module", "-v"],
                            cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines = []
    reader = threading.Thread(target=lambda: [lines.append(line) for line in proc.stdout], daemon=True)
    reader.start()
    try:
        # JVM start, rulebook compile, the source's initial list: then the rules wait for events.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any("Waiting for events" in line for line in lines):
            assert proc.poll() is None, "".join(lines)
            time.sleep(0.5)
        time.sleep(3)  # the source's first list (it reports changes after it)
        # An image download failure as DKP reports it (status written like Deckhouse would).
        name = "console"
        mod = api.get_cluster_custom_object(GROUP, "v1alpha1", "modules", name)
        status = dict(mod.get("status") or {}, phase="DownloadingError")
        api.patch_cluster_custom_object_status(GROUP, "v1alpha1", "modules", name, {"status": status})
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not out.exists():
            time.sleep(0.5)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(5)
    output = "".join(lines)
    assert out.exists(), "the rulebook did not run its action:\n%s" % output[-5000:]
    fired = json.loads(out.read_text())
    assert fired["module"] == "console" and fired["event"]["phase"] == "DownloadingError"
    assert fired["event"]["type"] == "module_phase" and fired["event"]["download_error"] is True


if os.environ.get("DKP_EDA_VENV_ONLY"):  # `DKP_EDA_VENV_ONLY=1 python -m pytest ... -k venv` builds the venv
    def test_venv():
        assert (eda_venv() / "bin" / "ansible-rulebook").exists()
