"""Run a playbook of this collection the way AWX does: ansible-runner with an AWX-shaped private data dir.

AWX (Automation Controller) starts a job as `ansible-runner run <private_data_dir> -p <playbook>`:
- `project/`: the project checkout (here: a link to this repository);
- `inventory/hosts`: the job's inventory;
- `env/extravars`: survey answers and extra vars, YAML; survey answers of text/choice fields are strings;
- `env/envvars`: the environment, where credentials are injected (the "OpenShift or Kubernetes API Bearer Token"
  credential gives K8S_AUTH_HOST, K8S_AUTH_API_KEY, K8S_AUTH_VERIFY_SSL, K8S_AUTH_SSL_CA_CERT);
- `env/settings`: runner settings.
Results land in `artifacts/<ident>/` (`rc`, `status`, `stdout`, `job_events/*.json`); set_stats data is the
`artifact_data` of the `playbook_on_stats` event.

The job gets a clean environment (no KUBECONFIG, no K8S_AUTH_KUBECONFIG of the test session): the credential is
its only way to the cluster, as in AWX.
"""
from __future__ import annotations

import base64
import json
import os
import pathlib
import subprocess
import sys
import uuid

import yaml

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SA_NAMESPACE = "default"
SA_NAME = "awx-job-runner"


class RunnerJob:
    def __init__(self, data_dir: pathlib.Path, ident: str, rc: int, output: str):
        self.data_dir = data_dir
        self.ident = ident
        self.rc = rc
        self.output = output
        self.artifacts = data_dir / "artifacts" / ident
        self.events = []
        for path in sorted((self.artifacts / "job_events").glob("*.json"), key=lambda p: int(p.name.split("-")[0])):
            self.events.append(json.loads(path.read_text()))

    @property
    def status(self) -> str:
        return (self.artifacts / "status").read_text().strip()

    @property
    def stdout(self) -> str:
        return (self.artifacts / "stdout").read_text()

    @property
    def artifact_data(self) -> dict:
        stats = [e for e in self.events if e.get("event") == "playbook_on_stats"]
        assert stats, "no playbook_on_stats event; stdout:\n%s" % self.stdout[-4000:]
        return stats[-1]["event_data"].get("artifact_data") or {}

    @property
    def stats(self) -> dict:
        stats = [e for e in self.events if e.get("event") == "playbook_on_stats"]
        return stats[-1]["event_data"] if stats else {}

    def results(self, task: str) -> list[tuple[str, dict]]:
        """(event name, result) of every host result of the task called `task`."""
        out = []
        for e in self.events:
            data = e.get("event_data") or {}
            if e.get("event", "").startswith("runner_on_") and data.get("task") == task:
                out.append((e["event"], data.get("res") or {}))
        return out

    def module_executions(self) -> list[str]:
        """The collection's modules this job ran (one Python process each): results of deckhouse.platform tasks
        that were not skipped. Lookups run in the controller and are not counted."""
        out = []
        for e in self.events:
            data = e.get("event_data") or {}
            action = data.get("resolved_action") or data.get("task_action") or ""
            if e.get("event") in ("runner_on_ok", "runner_on_failed") and action.startswith("deckhouse.platform."):
                out.append(action.split(".")[-1])
        return out

    def failed_tasks(self) -> list[str]:
        return [(e.get("event_data") or {}).get("task") for e in self.events
                if e.get("event") == "runner_on_failed" and not (e.get("event_data") or {}).get("ignore_errors")]

    def artifact_texts(self):
        """(path, text) of every file under artifacts/<ident>/."""
        for path in sorted(self.artifacts.rglob("*")):
            if path.is_file():
                yield path, path.read_text(errors="replace")


def secret_forms(secret: str) -> list[str]:
    """A secret and the forms in which it could leak: base64 of it (as in a Secret or a dockerconfig), with and
    without padding, and base64 of `user:secret`-style embeddings is covered by the bare-secret check of the decoded
    text, so only these."""
    b64 = base64.b64encode(secret.encode()).decode()
    return [secret, b64, b64.rstrip("=")]


def service_account_credential(api_client, kubeconfig: pathlib.Path, ca_path: pathlib.Path) -> dict:
    """A ServiceAccount with cluster-admin and a fresh token, as the env of AWX's Kubernetes bearer-token credential."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)
    try:
        core.create_namespaced_service_account(SA_NAMESPACE, {"metadata": {"name": SA_NAME}})
    except ApiException as e:
        if e.status != 409:
            raise
    try:
        rbac.create_cluster_role_binding({
            "metadata": {"name": SA_NAME},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": SA_NAME, "namespace": SA_NAMESPACE}]})
    except ApiException as e:
        if e.status != 409:
            raise
    token = core.create_namespaced_service_account_token(
        SA_NAME, SA_NAMESPACE, {"spec": {"expirationSeconds": 3600}}).status.token
    conf = yaml.safe_load(kubeconfig.read_text())
    ctx_name = conf.get("current-context")
    ctx = next(c["context"] for c in conf["contexts"] if c["name"] == ctx_name) if ctx_name else conf["contexts"][0]["context"]
    cluster = next(c["cluster"] for c in conf["clusters"] if c["name"] == ctx["cluster"])
    if "certificate-authority-data" in cluster:
        ca_path.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    else:
        ca = pathlib.Path(cluster["certificate-authority"])
        if not ca.is_absolute():
            ca = kubeconfig.parent / ca
        ca_path.write_bytes(ca.read_bytes())
    return {"K8S_AUTH_HOST": cluster["server"], "K8S_AUTH_API_KEY": token, "K8S_AUTH_VERIFY_SSL": "True",
            "K8S_AUTH_SSL_CA_CERT": str(ca_path)}


def private_data_dir(base: pathlib.Path, credential: dict, hosts=("cluster-a",)) -> pathlib.Path:
    d = base / ("job-" + uuid.uuid4().hex[:8])
    (d / "env").mkdir(parents=True)
    (d / "inventory").mkdir()
    (d / "project").symlink_to(ROOT)
    coll = ROOT / ".local" / "collections"
    link = coll / "ansible_collections" / "deckhouse" / "platform"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(ROOT)
    (d / "inventory" / "hosts").write_text(yaml.safe_dump({"all": {"children": {"dkp_clusters": {"hosts": {
        h: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable} for h in hosts}}}}}))
    envvars = dict(credential)
    # AWX installs the project's collections/requirements.yml into the job's own collections path
    envvars.update({"ANSIBLE_COLLECTIONS_PATH": str(coll), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"})
    (d / "env" / "envvars").write_text(yaml.safe_dump(envvars))
    (d / "env" / "settings").write_text(yaml.safe_dump({"idle_timeout": 0, "job_timeout": 900,
                                                        "pexpect_timeout": 5}))
    return d


def run_job(base: pathlib.Path, credential: dict, playbook: str, extravars: dict, check=False, verbosity=0,
            timeout=900) -> RunnerJob:
    """One AWX-shaped job: `ansible-runner run DIR -p playbooks/<playbook>` with a clean environment."""
    d = private_data_dir(base, credential)
    for key, value in extravars.items():
        assert isinstance(value, str), "survey answers are strings: %s=%r" % (key, value)
    (d / "env" / "extravars").write_text(yaml.safe_dump(extravars))
    ident = uuid.uuid4().hex[:12]
    bindir = pathlib.Path(sys.executable).parent
    cmd = [str(bindir / "ansible-runner"), "run", str(d), "-p", "playbooks/%s" % playbook, "--ident", ident]
    cmdline = []
    if check:
        cmdline.append("--check")
    if verbosity:
        cmdline.append("-" + "v" * verbosity)
    if cmdline:
        (d / "env" / "cmdline").write_text(" ".join(cmdline))
    env = {"PATH": "%s:/usr/bin:/bin" % bindir, "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          check=False)
    return RunnerJob(d, ident, proc.returncode, proc.stdout + proc.stderr)
