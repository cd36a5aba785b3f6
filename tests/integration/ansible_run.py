"""Run real ansible-playbook processes against the local DKP cluster and read back task results."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile

import yaml

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]


class PlaybookRun:
    def __init__(self, rc, stdout, stderr, records):
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.records = records

    def task(self, name):
        """The last recorded result of the task called `name`."""
        found = [r for r in self.records if r["task"] == name]
        assert found, "task %r not run; tasks: %s\n%s" % (name, [r["task"] for r in self.records], self.output)
        return found[-1]["result"]

    @property
    def output(self):
        return self.stdout + self.stderr

    @property
    def failed(self):
        return [r for r in self.records if r["status"] == "failed"]


def collection_env(kubeconfig, extra=None, record=True):
    """Environment for ansible-playbook with this checkout as deckhouse.platform; `record` enables the
    test callback that writes task results to $DKP_RECORD_FILE."""
    bindir = pathlib.Path(sys.executable).parent
    coll = ROOT / ".local" / "collections"
    (coll / "ansible_collections" / "deckhouse").mkdir(parents=True, exist_ok=True)
    link = coll / "ansible_collections" / "deckhouse" / "platform"
    if not link.exists():
        link.symlink_to(ROOT)
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": str(coll),
        "ANSIBLE_CONFIG": str(ROOT / "tests" / "ansible.cfg"),
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "K8S_AUTH_KUBECONFIG": str(kubeconfig),
        "PATH": "%s:%s" % (bindir, env.get("PATH", "")),
    })
    if record:
        env.update({"ANSIBLE_CALLBACK_PLUGINS": str(HERE / "callback"), "ANSIBLE_CALLBACKS_ENABLED": "record"})
    env.update(extra or {})
    return env


def run_playbook(kubeconfig, playbook, check=False, diff=False, verbosity=0, extra_vars=None, env=None,
                 args=(), timeout=900):
    """Run a playbook given as a path or as a list of plays; return a PlaybookRun."""
    with tempfile.TemporaryDirectory() as tmp:
        if not isinstance(playbook, (str, pathlib.Path)):
            path = pathlib.Path(tmp) / "play.yml"
            path.write_text(yaml.safe_dump(playbook, sort_keys=False))
            playbook = path
        record = pathlib.Path(tmp) / "record.json"
        cmd = [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), str(playbook)]
        if check:
            cmd.append("--check")
        if diff:
            cmd.append("--diff")
        if verbosity:
            cmd.append("-" + "v" * verbosity)
        if extra_vars:
            cmd += ["-e", json.dumps(extra_vars)]
        cmd += list(args)
        proc = subprocess.run(cmd, cwd=str(ROOT), env=collection_env(kubeconfig, dict(env or {}, DKP_RECORD_FILE=str(record))),
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              check=False)
        records = json.loads(record.read_text()) if record.exists() else []
    return PlaybookRun(proc.returncode, proc.stdout, proc.stderr, records)


def task_status(run, title):
    """How the task ended: ok, failed or skipped (a failed result carries no `failed` key when ignored)."""
    return [r for r in run.records if r["task"] == title][-1]["status"]


def run_tasks(kubeconfig, tasks, **kwargs):
    """Run `tasks` in one localhost play."""
    play = [{"name": "test", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]
    return run_playbook(kubeconfig, play, **kwargs)
