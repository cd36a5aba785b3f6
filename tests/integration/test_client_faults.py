"""The connection layer (dkp_client) through ansible-playbook against the local cluster: retry budget and its
messages, check mode under read-only RBAC, TLS and proxy settings, and key material never left on disk."""
from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import yaml

from ansible_run import ROOT, collection_env, run_tasks, task_status
from harness import cluster

MC = "deckhouse.platform.module_config"
READ_ONLY_USER = "dkp-core-readonly"


def delete_mc(api, name):
    from kubernetes.client.rest import ApiException
    try:
        api.delete_cluster_custom_object("deckhouse.io", "v1alpha1", "moduleconfigs", name)
    except ApiException as e:
        if e.status != 404:
            raise


@pytest.fixture
def read_only_user(kube):
    """A user that may read deckhouse.io objects but not write them (impersonated by the admin)."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    rbac = client.RbacAuthorizationV1Api(kube)
    role = {"metadata": {"name": READ_ONLY_USER},
            "rules": [{"apiGroups": ["deckhouse.io"], "resources": ["*"], "verbs": ["get", "list", "watch"]}]}
    binding = {"metadata": {"name": READ_ONLY_USER},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": READ_ONLY_USER},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": READ_ONLY_USER}]}
    for create in (lambda: rbac.create_cluster_role(role), lambda: rbac.create_cluster_role_binding(binding)):
        try:
            create()
        except ApiException as e:
            if e.status != 409:
                raise
    yield READ_ONLY_USER
    rbac.delete_cluster_role_binding(READ_ONLY_USER)
    rbac.delete_cluster_role(READ_ONLY_USER)


def test_check_mode_under_read_only_rbac_names_the_permission(kc, dkp_cluster, read_only_user):
    marker = dkp_cluster.audit_marker()
    run = run_tasks(kc, [{"name": "set", MC: {"name": "deckhouse", "settings": {"logLevel": "Debug"},
                                              "impersonate_user": read_only_user},
                          "check_mode": True, "ignore_errors": True}])
    assert task_status(run, "set") == "failed", run.output
    msg = run.task("set")["msg"]
    assert "Check mode sends the write as a server-side dry run" in msg and "`patch`" in msg, msg
    assert [e for e in dkp_cluster.writes_since(marker, resource="moduleconfigs")
            if e.succeeded or not e.dry_run] == [], "only refused dry-run requests were sent"


def test_webhook_down_longer_than_retry_timeout_fails_naming_the_restart(kc, api, dkp_cluster, simulator):
    delete_mc(api, "prometheus")
    simulator.restart_deckhouse(duration=25)
    marker = dkp_cluster.audit_marker()
    start = time.monotonic()
    try:
        run = run_tasks(kc, [{"name": "set", MC: {"name": "prometheus", "enabled": True, "retry_timeout": 4},
                              "ignore_errors": True}])
        took = time.monotonic() - start
        assert task_status(run, "set") == "failed", run.output
        msg = run.task("set")["msg"]
        assert "admission webhook is down" in msg and "Deckhouse is probably restarting" in msg, msg
        assert "retry_timeout" in msg and "failed calling webhook" in msg, msg
        assert took < 20, "bounded by retry_timeout, not by the restart"
        assert [e for e in dkp_cluster.writes_since(marker, resource="moduleconfigs") if e.succeeded] == []
    finally:
        time.sleep(max(0.0, 26 - (time.monotonic() - start)))  # let the restart end for the next tests
        delete_mc(api, "prometheus")


def test_a_read_rides_through_an_apiserver_restart(kc, dkp_cluster):
    box = {}

    def restart():
        time.sleep(1)
        cluster.restart_apiserver(dkp_cluster.dir, 35)
        box["restarted"] = time.monotonic()
    t = threading.Thread(target=restart)
    t.start()
    time.sleep(2)
    start = time.monotonic()
    run = run_tasks(kc, [{"name": "read", "deckhouse.platform.module_config_info": {"name": "deckhouse"},
                          "ignore_errors": True}])
    t.join(120)
    assert task_status(run, "read") == "ok", run.output
    assert time.monotonic() - start >= 20, "the read really happened while the apiserver was down"


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def test_a_wrong_ca_suggests_ca_cert_and_is_not_retried(kc, tmp_path):
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=other-ca",
             "-keyout", "other.key", "-out", "other.crt", cwd=tmp_path)
    conf = yaml.safe_load(open(kc))
    conf["clusters"][0]["cluster"]["certificate-authority-data"] = base64.b64encode(
        (tmp_path / "other.crt").read_bytes()).decode()
    bad = tmp_path / "kubeconfig"
    bad.write_text(json.dumps(conf))
    start = time.monotonic()
    run = run_tasks(bad, [{"name": "read", "deckhouse.platform.module_config_info": {"name": "deckhouse"},
                           "ignore_errors": True}])
    assert task_status(run, "read") == "failed", run.output
    msg = run.task("read")["msg"]
    assert "TLS verification" in msg and "ca_cert" in msg and "validate_certs" in msg, msg
    assert time.monotonic() - start < 30, "TLS errors are not retried for retry_timeout"


def test_proxies(kc):
    dead = "http://127.0.0.1:9"  # nothing listens on the discard port
    run = run_tasks(kc, [
        {"name": "env proxy, loopback host", "deckhouse.platform.module_config_info": {"name": "deckhouse"},
         "environment": {"HTTPS_PROXY": dead}, "ignore_errors": True},
        {"name": "explicit proxy", "deckhouse.platform.module_config_info": {"name": "deckhouse", "proxy": dead,
                                                                             "retry_timeout": 2},
         "ignore_errors": True},
    ])
    assert task_status(run, "env proxy, loopback host") == "ok", "loopback never goes through an env proxy"
    assert task_status(run, "explicit proxy") == "failed", run.output
    assert "Cannot reach the Kubernetes API" in run.task("explicit proxy")["msg"]


def test_a_killed_task_leaves_no_key_material_on_disk(kc, api, tmp_path, simulator):
    conf = yaml.safe_load(open(kc))
    key_pem = base64.b64decode(conf["users"][0]["user"]["client-key-data"])
    needle = [line for line in key_pem.splitlines() if line and not line.startswith(b"-----")][0]
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "wait", MC: {"name": "ingress-nginx", "enabled": True, "wait": True, "wait_timeout": 120}}]}]))
    delete_mc(api, "ingress-nginx")
    env = collection_env(kc, {"TMPDIR": str(tmp), "ANSIBLE_REMOTE_TMP": str(tmp / "remote"),
                              "ANSIBLE_LOCAL_TEMP": str(tmp / "local")}, record=False)
    simulator.pause()
    proc = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(play)],
                            cwd=str(ROOT), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        from kubernetes.client.rest import ApiException
        while time.monotonic() < deadline:
            try:
                api.get_cluster_custom_object("deckhouse.io", "v1alpha1", "moduleconfigs", "ingress-nginx")
                break
            except ApiException:
                time.sleep(0.3)
        time.sleep(2)  # the module is in its wait, holding a TLS connection
        assert proc.poll() is None, "the task was still running when killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        simulator.resume()
        delete_mc(api, "ingress-nginx")
    leftovers = []
    for root, _dirs, files in os.walk(str(tmp)):
        for f in files:
            path = os.path.join(root, f)
            try:
                with open(path, "rb") as fh:
                    if needle in fh.read():
                        leftovers.append(path)
            except OSError:
                pass
    assert leftovers == [], "the client key is on disk after the task was killed: %s" % leftovers
