"""Helpers of the registry-switch integration tests (test_registry_*.py): cluster set-up through the
admin API (independent of the code under test), registry-state reading, audit-log and secret checks,
and playbook runs in the background for tests that interrupt or steer a run."""
from __future__ import annotations

import base64
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import yaml

from ansible_run import ROOT, collection_env

PLAYBOOK = ROOT / "playbooks" / "registry_switch.yml"
DECKHOUSE_USER = "system:serviceaccount:d8-system:deckhouse"
FAKE_STATE_SECRET = "FAKE-SECRET-registry-state-DO-NOT-LEAK"  # what the simulator hides in registry-state `state`
REPO = "registry.example.com/deckhouse/ee"
LICENSE = "LICENSE-7f3c9a-must-never-be-printed"
PASSWORD = "PASSWORD-b41e07-must-never-be-printed"
RW_PASSWORD = "RW-USER-PASSWORD-5d2e-must-never-be-printed"


class Cluster:
    """Admin-side view of the test cluster (kubernetes client, not the collection)."""

    def __init__(self, api_client):
        from kubernetes import client
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)

    # -- ModuleConfigs ----------------------------------------------------------------------------
    def mc(self, name):
        from kubernetes.client.rest import ApiException
        try:
            return self.custom.get_cluster_custom_object("deckhouse.io", "v1alpha1", "moduleconfigs", name)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def patch_mc(self, name, patch):
        kind = "application/json-patch+json" if isinstance(patch, list) else "application/merge-patch+json"
        return self.custom.patch_cluster_custom_object("deckhouse.io", "v1alpha1", "moduleconfigs", name, patch,
                                                       _content_type=kind)

    def registry_settings(self):
        return (((self.mc("deckhouse") or {}).get("spec") or {}).get("settings") or {}).get("registry")

    def module(self, name):
        return self.custom.get_cluster_custom_object("deckhouse.io", "v1alpha1", "modules", name)

    # -- registry-state ----------------------------------------------------------------------------
    def state(self):
        from kubernetes.client.rest import ApiException
        try:
            sec = self.core.read_namespaced_secret("registry-state", "d8-system")
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        data = {k: base64.b64decode(v).decode() for k, v in (sec.data or {}).items() if k != "state"}
        data["conditions"] = yaml.safe_load(data.get("conditions") or "[]") or []
        return data

    def condition(self, ctype):
        for cond in (self.state() or {}).get("conditions") or []:
            if cond.get("type") == ctype:
                return cond
        return None

    def wait(self, predicate, what, timeout=60.0, interval=0.2):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(interval)
        raise AssertionError("timed out waiting for %s; registry-state: %s" % (what, self.state()))

    def complete(self, mode):
        s = self.state() or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in s.get("conditions") or [])
        return ready and s.get("mode") == mode and s.get("target_mode") == mode

    # -- set-up -------------------------------------------------------------------------------------
    def enable_registry(self):
        """Enable the registry module (disabled after a simulator reset) and wait until it is Ready."""
        if self.mc("registry") is None:
            self.custom.create_cluster_custom_object("deckhouse.io", "v1alpha1", "moduleconfigs", {
                "apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleConfig", "metadata": {"name": "registry"},
                "spec": {"enabled": True}})
        else:
            self.patch_mc("registry", {"spec": {"enabled": True}})

        def ready():
            st = self.module("registry").get("status") or {}
            is_ready = any(c.get("type") == "IsReady" and c.get("status") == "True" for c in st.get("conditions") or [])
            return st.get("phase") == "Ready" and is_ready and self.complete("Unmanaged")
        self.wait(ready, "the registry module to be Ready")

    def disable_registry(self):
        """Disable the registry module (on by default, critical: DKP asks for the allow-disabling annotation)
        and wait until registry-state is gone."""
        body = {"metadata": {"annotations": {"modules.deckhouse.io/allow-disabling": "true"}},
                "spec": {"enabled": False}}
        if self.mc("registry") is None:
            self.custom.create_cluster_custom_object("deckhouse.io", "v1alpha1", "moduleconfigs", dict(
                body, apiVersion="deckhouse.io/v1alpha1", kind="ModuleConfig",
                metadata=dict(body["metadata"], name="registry")))
        else:
            self.patch_mc("registry", body)
        self.wait(lambda: self.state() is None, "registry-state to disappear")

    def config_generation(self):
        """The generation of Secret d8-system/registry-config (what conditions' observedGeneration follow)."""
        from kubernetes.client.rest import ApiException
        try:
            sec = self.core.read_namespaced_secret("registry-config", "d8-system")
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        ann = (sec.metadata.annotations or {}).get("registry.deckhouse.io/generation")
        return int(ann) if ann else sec.metadata.generation

    def set_registry(self, registry, mode):
        """Put the cluster in a registry mode directly (as an operator with kubectl would) and wait."""
        # a JSON patch replaces the whole registry object in one write (a merge patch would keep old sections)
        self.patch_mc("deckhouse", [{"op": "add", "path": "/spec/settings/registry", "value": registry}])
        self.wait(lambda: self.complete(mode), "registry mode %s" % mode)

    def create_rw_user(self, password=RW_PASSWORD):
        """Secret d8-system/registry-user-rw as Deckhouse keeps it for Local (the simulator does not)."""
        from kubernetes.client.rest import ApiException
        body = {"metadata": {"name": "registry-user-rw", "namespace": "d8-system"}, "type": "system-registry/user",
                "stringData": {"name": "rw", "password": password, "passwordHash": "$2a$10$fakehash"}}
        try:
            self.core.create_namespaced_secret("d8-system", body)
        except ApiException as e:
            if e.status != 409:
                raise
            self.core.replace_namespaced_secret("registry-user-rw", "d8-system", body)


def our_writes(dkp_cluster, mark, dry_run=False, **filters):
    """Writes since `mark` not made by the simulator (which acts as Deckhouse's service account)."""
    filters.setdefault("resource", "moduleconfigs")
    writes = dkp_cluster.writes_since(mark, **filters)
    return [w for w in writes if (w.impersonated_user or w.user) != DECKHOUSE_USER
            and (dry_run is None or w.dry_run == dry_run)]


def task_status(run, name):
    """ok / failed / skipped of the last run of task `name` (a failed result need not carry `failed`)."""
    found = [r for r in run.records if r["task"] == name]
    assert found, "task %r not run:\n%s" % (name, run.output[-3000:])
    return found[-1]["status"]


def assert_no_secrets(*texts, secrets=(LICENSE, PASSWORD, RW_PASSWORD, FAKE_STATE_SECRET)):
    for text in texts:
        for secret in secrets:
            assert secret not in text, "secret %r leaked:\n%s" % (secret, text[-3000:])


def inventory(tmp_path, hosts):
    """An inventory of clusters: {host: kubeconfig}."""
    path = pathlib.Path(tmp_path) / "clusters.yml"
    path.write_text(yaml.safe_dump({"dkp_clusters": {"hosts": {
        name: {"registry_switch_kubeconfig": str(kc)} for name, kc in hosts.items()}}}))
    return path


def switch_vars(tmp_path=None, **kw):
    ev = {"registry_switch_timeout": 120, "registry_switch_queue_wait_timeout": 60,
          "registry_switch_images_timeout": 120}
    if tmp_path is not None:
        ev["registry_switch_report_dir"] = str(pathlib.Path(tmp_path) / "reports")
    ev.update({"registry_switch_" + k: v for k, v in kw.items()})
    return ev


def report(tmp_path, host="cluster-a"):
    return json.loads((pathlib.Path(tmp_path) / "reports" / ("registry-switch-%s.json" % host)).read_text())


class Background:
    """ansible-playbook in the background, output in a file, so a test can steer or interrupt it."""

    def __init__(self, kubeconfig, inventory_path, extra_vars, log_path, verbosity=0):
        cmd = [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), str(PLAYBOOK), "-i", str(inventory_path),
               "-e", json.dumps(extra_vars)]
        if verbosity:
            cmd.append("-" + "v" * verbosity)
        self.log_path = pathlib.Path(log_path)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=str(ROOT), env=collection_env(kubeconfig), stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def output(self):
        return self.log_path.read_text()

    def wait_for_output(self, text, timeout=120.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output:
                return
            if self.proc.poll() is not None:
                raise AssertionError("playbook ended (rc %s) before printing %r:\n%s"
                                     % (self.proc.returncode, text, self.output[-4000:]))
            time.sleep(0.2)
        raise AssertionError("no %r in the output within %ss:\n%s" % (text, timeout, self.output[-4000:]))

    def kill(self):
        """Interrupt the run hard (as a lost AWX node would): the process group this object started."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._log.close()

    def wait(self, timeout=600):
        rc = self.proc.wait(timeout=timeout)
        self._log.close()
        return rc
