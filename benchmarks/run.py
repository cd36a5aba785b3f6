"""Side-by-side benchmarks: deckhouse.platform, kubernetes.core and Ansible's own per-task floor, in one run.

Every figure comes from whole ansible-playbook processes against the local DKP cluster (real kube-apiserver),
all run by one ansible-core: the one of a separate venv (benchmarks/bench_env.py) that holds the `ansible` PyPI
package, so kubernetes.core is the released one. Measured:

* per task: (play with N tasks - empty play) / N, wall time and CPU (user+sys of the whole process tree),
  best of R runs: `ping`, a no-change ModuleConfig update, a read, a lookup; ours beside kubernetes.core;
* wait reaction: a play waits for a Module to become Ready; the bench process watches the same Module and
  records the moment the simulator makes it Ready; reaction = play exit - that moment;
* the one-hop registry switch (playbooks/registry_switch.yml, Unmanaged -> Direct, the simulator's test
  profile included) against a play of 8 `ping` tasks, and how many modules it executed;
* the bulk case of desired_state when benchmarks/bench_desired_state.py provides it.

`--record` appends the dated table to benchmarks/RESULTS.md. Timings are never asserted anywhere.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "integration"), str(ROOT / "benchmarks")]

from ansible_run import collection_env  # noqa: E402
from harness import cluster  # noqa: E402
import bench_env  # noqa: E402

MC = "deckhouse.io/v1alpha1"
KC_DEFINITION = {"apiVersion": MC, "kind": "ModuleConfig", "metadata": {"name": "bench"}, "spec": {"enabled": False}}

PER_TASK = [
    ("floor", "ansible.builtin.ping", {"ansible.builtin.ping": {}}),
    ("update", "deckhouse.platform.module_config",
     {"deckhouse.platform.module_config": {"name": "bench", "enabled": False}}),
    ("update", "kubernetes.core.k8s",
     {"kubernetes.core.k8s": {"state": "present", "definition": KC_DEFINITION}}),
    ("read", "deckhouse.platform.module_config_info",
     {"deckhouse.platform.module_config_info": {"name": "deckhouse"}}),
    ("read", "kubernetes.core.k8s_info",
     {"kubernetes.core.k8s_info": {"api_version": MC, "kind": "ModuleConfig", "name": "deckhouse"}}),
    ("lookup", "lookup deckhouse.platform.module_config",
     {"ansible.builtin.debug": {"msg": "{{ lookup('deckhouse.platform.module_config', 'deckhouse') }}"}}),
    ("lookup", "lookup kubernetes.core.k8s",
     {"ansible.builtin.debug": {"msg": "{{ lookup('kubernetes.core.k8s', api_version='%s', kind='ModuleConfig',"
                                       " resource_name='deckhouse') }}" % MC}}),
]


class Runner:
    def __init__(self, kubeconfig, python):
        self.kubeconfig = kubeconfig
        self.python = pathlib.Path(python)
        env = collection_env(kubeconfig, record=False)
        bindir = self.python.parent
        env.update({"ANSIBLE_PYTHON_INTERPRETER": str(self.python), "PATH": "%s:%s" % (bindir, env["PATH"]),
                    "ANSIBLE_COLLECTIONS_PATH": env["ANSIBLE_COLLECTIONS_PATH"]})
        self.env = env
        self.playbook = str(bindir / "ansible-playbook")

    def run(self, path, *args, env=None, check=True):
        """(wall seconds, CPU seconds of the process tree, completed process)."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.monotonic()
        proc = subprocess.run([self.playbook, str(path), *args], env=dict(self.env, **(env or {})), cwd=str(ROOT),
                              capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
        wall = time.monotonic() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if check and proc.returncode != 0:
            raise SystemExit("benchmark play %s failed:\n%s%s" % (path, proc.stdout[-4000:], proc.stderr[-4000:]))
        return wall, cpu, proc


def write_play(tmp, name, tasks, hosts="localhost"):
    path = pathlib.Path(tmp) / ("%s.yml" % name)
    path.write_text(yaml.safe_dump([{"hosts": hosts, "gather_facts": False, "tasks": tasks}], sort_keys=False))
    return path


def per_task(runner, tmp, count, repeats):
    def best(task, n):
        path = write_play(tmp, "p", [dict(task, name="t%d" % i) for i in range(n)])
        runs = [runner.run(path)[:2] for dummy in range(repeats)]
        return min(r[0] for r in runs), min(r[1] for r in runs)

    empty_wall, empty_cpu = best({"ansible.builtin.meta": "noop"}, 0)
    rows = []
    for group, label, task in PER_TASK:
        wall, cpu = best(task, count)
        rows.append((group, label, (wall - empty_wall) / count * 1000, (cpu - empty_cpu) / count * 1000))
    return rows


def wait_reaction(runner, tmp, kube, control, repeats):
    """Seconds from the Module turning Ready (seen by our own watch) to the waiting play's exit."""
    from kubernetes import client, watch

    api = client.CustomObjectsApi(kube)
    module = "bench-wait"  # a catalogue module the simulator installs when its ModuleConfig enables it
    cases = {
        "deckhouse.platform.module_info wait_for": {
            "deckhouse.platform.module_info": {"name": "{{ m }}", "wait_for": "ready", "wait_timeout": 120}},
        "kubernetes.core.k8s_info wait": {
            "kubernetes.core.k8s_info": {"api_version": MC, "kind": "Module", "name": "{{ m }}", "wait": True,
                                         "wait_timeout": 120, "wait_condition": {"type": "IsReady", "status": "True"}}},
    }
    results = {}
    for label, task in cases.items():
        reactions = []
        for dummy in range(repeats):
            control.reset()
            name = pick_module(api)
            path = write_play(tmp, "w", [dict(task, name="wait")])
            ready_at = {}

            def watch_ready():
                w = watch.Watch()
                for ev in w.stream(api.list_cluster_custom_object, "deckhouse.io", "v1alpha1", "modules",
                                   field_selector="metadata.name=%s" % name, timeout_seconds=120):
                    st = ev["object"].get("status") or {}
                    conds = {c.get("type"): c.get("status") for c in st.get("conditions") or []}
                    if st.get("phase") == "Ready" and conds.get("IsReady") == "True":
                        ready_at["t"] = time.monotonic()
                        w.stop()

            watcher = threading.Thread(target=watch_ready, daemon=True)
            watcher.start()
            proc = subprocess.Popen([runner.playbook, str(path), "-e", "m=%s" % name], env=runner.env,
                                    cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, text=True)
            time.sleep(3)  # the play is waiting by now
            body = {"apiVersion": MC, "kind": "ModuleConfig", "metadata": {"name": name},
                    "spec": {"enabled": True}}
            try:
                api.create_cluster_custom_object("deckhouse.io", "v1alpha1", "moduleconfigs", body)
            except client.ApiException as e:
                if e.status != 409:
                    raise
                api.patch_cluster_custom_object("deckhouse.io", "v1alpha1", "moduleconfigs", name,
                                                {"spec": {"enabled": True}})
            out = proc.communicate(timeout=180)[0]
            ended = time.monotonic()
            watcher.join(timeout=10)
            if proc.returncode != 0 or "t" not in ready_at:
                raise SystemExit("wait benchmark %s failed:\n%s" % (label, out[-4000:]))
            reactions.append(ended - ready_at["t"])
        results[label] = min(reactions)
    return results, module


def pick_module(api):
    """A disabled module of the simulator's catalogue with no ModuleConfig (so enabling it is a flip)."""
    configs = {o["metadata"]["name"] for o in api.list_cluster_custom_object("deckhouse.io", "v1alpha1",
                                                                             "moduleconfigs")["items"]}
    for m in api.list_cluster_custom_object("deckhouse.io", "v1alpha1", "modules")["items"]:
        name = m["metadata"]["name"]
        st = m.get("status") or {}
        if name not in configs and st.get("phase") in ("Available", "Downloaded") and not m.get("properties", {}).get(
                "critical"):
            return name
    raise SystemExit("no disabled module without a ModuleConfig in the simulator's catalogue")


SWITCH_VARS = {
    "registry_switch_mode": "Direct",
    "registry_switch_images_repo": "registry.deckhouse.io/deckhouse/ee",
    "registry_switch_license": "BENCH-LICENSE-NOT-A-SECRET",
    "registry_switch_confirm_restart": "true",
}


def registry_switch(runner, tmp, kubeconfig, control, repeats):
    inventory = pathlib.Path(tmp) / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"dkp_clusters": {"hosts": {"bench": {
        "ansible_connection": "local", "registry_switch_kubeconfig": str(kubeconfig)}}}}))
    extra = pathlib.Path(tmp) / "switch-vars.yml"
    extra.write_text(yaml.safe_dump(SWITCH_VARS))
    extra.chmod(0o600)
    prepare = write_play(tmp, "prepare", [{"name": "registry on", "deckhouse.platform.module_config": {
        "name": "registry", "enabled": True, "wait": True, "wait_timeout": 120}}])
    pings = write_play(tmp, "pings", [{"name": "p%d" % i, "ansible.builtin.ping": {}} for i in range(8)],
                       hosts="dkp_clusters")
    switch_runs, ping_runs, executions = [], [], None
    for dummy in range(repeats):
        control.reset()
        runner.run(prepare)
        # the report comes from set_stats (a report file would add the file and copy modules to the count)
        wall, cpu, proc = runner.run(ROOT / "playbooks" / "registry_switch.yml", "-i", str(inventory),
                                     "-e", "@%s" % extra, "-vvv",
                                     env={"ANSIBLE_SHOW_CUSTOM_STATS": "1", "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"})
        # Deckhouse's own part, as the role measured it: the switch (registry-state) and the settling after it
        stats = re.search(r"^\tRUN: (\{.*\})\s*$", proc.stdout, re.M)
        hops = json.loads(stats.group(1))["registry_switch"]["bench"]["switch"]
        deckhouse = sum((h.get("duration") or 0) + (h.get("settle_duration") or 0) for h in hops)
        switch_runs.append((wall, cpu, deckhouse))
        # -vvv names the module file of every module execution (pipelined or not)
        executions = len(re.findall(r"^Using module file \S+", proc.stdout, re.M))
        ping_runs.append(runner.run(pings, "-i", str(inventory))[:2])
    return min(switch_runs), min(ping_runs), executions


def bulk(runner, kubeconfig, tmp):
    try:
        import bench_desired_state
    except ImportError:
        return None
    return bench_desired_state.measure(runner, kubeconfig, pathlib.Path(tmp))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--record", action="store_true", help="append the tables to benchmarks/RESULTS.md")
    parser.add_argument("--dir", default=str(ROOT / ".local" / "cluster-bench"))
    parser.add_argument("--only", choices=("switch",), help="measure only the registry switch (no recording)")
    args = parser.parse_args()

    python = bench_env.ensure()
    cluster_dir = pathlib.Path(args.dir)
    started = not cluster.running(cluster_dir)
    if started:
        cluster.up(cluster_dir)
    try:
        kubeconfig = cluster_dir / "kubeconfig"
        from kubernetes import client, config
        from harness.simulator.control import SimulatorControl

        kube = config.new_client_from_config(str(kubeconfig))
        control = SimulatorControl(cluster_dir)
        api = client.CustomObjectsApi(kube)
        try:
            api.create_cluster_custom_object("deckhouse.io", "v1alpha1", "moduleconfigs", KC_DEFINITION)
        except client.ApiException as e:
            if e.status != 409:
                raise
        runner = Runner(kubeconfig, python)
        if args.only == "switch":
            with tempfile.TemporaryDirectory() as tmp:
                switch, pings, executions = registry_switch(runner, tmp, kubeconfig, control, args.repeats)
            print("switch %.1f s wall / %.1f s CPU (Deckhouse's own part %.1f s), 8 pings %.1f / %.1f, "
                  "%d module executions" % (switch + pings + (executions,)))
            return
        with tempfile.TemporaryDirectory() as tmp:
            rows = per_task(runner, tmp, args.tasks, args.repeats)
            reactions, dummy = wait_reaction(runner, tmp, kube, control, min(args.repeats, 2))
            switch, pings, executions = registry_switch(runner, tmp, kubeconfig, control, min(args.repeats, 2))
            bulk_rows = bulk(runner, kubeconfig, tmp)
    finally:
        if started:
            cluster.down(cluster_dir)

    text = report(rows, reactions, switch, pings, executions, bulk_rows, args, python)
    print(text)
    if args.record:
        with (ROOT / "benchmarks" / "RESULTS.md").open("a") as f:
            f.write("\n" + text + "\n")


def report(rows, reactions, switch, pings, executions, bulk_rows, args, python):
    core = subprocess.run([str(pathlib.Path(python).parent / "ansible"), "--version"], capture_output=True,
                          text=True, check=False).stdout.splitlines()[0]
    load = os.getloadavg()[0]
    lines = ["### %s — side by side, %d tasks per play, best of %d, %s, %d cores, load %.1f, %s" % (
        datetime.date.today().isoformat(), args.tasks, args.repeats, platform.machine(), os.cpu_count(), load, core),
        "", "| task | ms per task (wall) | ms CPU per task | CPU ratio ours / kubernetes.core |", "|---|---:|---:|---:|"]
    by_group = {}
    for group, label, wall, cpu in rows:
        by_group.setdefault(group, []).append((label, wall, cpu))
    for group, label, wall, cpu in rows:
        ratio = ""
        if label.startswith(("deckhouse.platform", "lookup deckhouse")):
            theirs = [r for r in by_group[group] if "kubernetes.core" in r[0]]
            if theirs and theirs[0][2] > 0:
                ratio = "%.2f×" % (cpu / theirs[0][2])
        lines.append("| %s | %.0f | %.0f | %s |" % (label, wall, cpu, ratio))
    lines += ["", "| wait reaction after the Module turns Ready | seconds |", "|---|---:|"]
    lines += ["| %s | %.2f |" % kv for kv in reactions.items()]
    lines += ["", "| one-hop registry switch (Unmanaged → Direct) | wall s | CPU s |", "|---|---:|---:|",
              "| playbooks/registry_switch.yml (%d module executions) | %.1f | %.1f |" % (
                  executions, switch[0], switch[1]),
              "| of which Deckhouse's own switch and settling (simulator, test profile) | %.1f | |" % switch[2],
              "| 8 × ansible.builtin.ping | %.1f | %.1f |" % pings,
              "", "Switch / 8 pings: %.2f× wall, %.2f× CPU; the collection's part (wall minus Deckhouse's own time) "
              "/ 8 pings: %.2f×." % (switch[0] / pings[0], switch[1] / pings[1], (switch[0] - switch[2]) / pings[0])]
    if bulk_rows:
        lines += ["", bulk_rows]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
