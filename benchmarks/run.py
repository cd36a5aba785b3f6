"""Per-task cost of the collection's modules against Ansible's own per-task floor.

Runs real ansible-playbook processes against the local DKP cluster (started here unless one runs at
.local/cluster) and prints a Markdown table; `--record` appends it, dated, to benchmarks/RESULTS.md.
Each figure is (time of a play with N tasks - time of the same play with no tasks) / N, best of R runs.
"""
from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "integration")]

from ansible_run import collection_env  # noqa: E402
from harness import cluster  # noqa: E402

CASES = {
    "ansible.builtin.ping (Ansible's floor)": {"ansible.builtin.ping": {}},
    "module_config, no change": {"deckhouse.platform.module_config": {"name": "bench", "enabled": False}},
    "module_config_info, one": {"deckhouse.platform.module_config_info": {"name": "deckhouse"}},
    "module_info, all": {"deckhouse.platform.module_info": {}},
    "lookup module_config": {"ansible.builtin.debug": {"msg": "{{ lookup('deckhouse.platform.module_config', 'deckhouse') }}"}},
}


def play_time(kubeconfig, task, count, repeats):
    best = None
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "bench.yml"
        tasks = [dict(task, name="t%d" % i) for i in range(count)]
        path.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
        env = collection_env(kubeconfig, record=False)
        cmd = [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), str(path)]
        for dummy in range(repeats):
            start = time.monotonic()
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
            elapsed = time.monotonic() - start
            if proc.returncode != 0:
                raise SystemExit("benchmark play failed:\n" + proc.stdout + proc.stderr)
            best = elapsed if best is None else min(best, elapsed)
    return best


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = parser.parse_args()

    cluster_dir = ROOT / ".local" / "cluster"
    started = False
    if not cluster.running(cluster_dir):
        cluster.up(cluster_dir)
        started = True
    try:
        kubeconfig = cluster_dir / "kubeconfig"
        from kubernetes import client, config
        api = client.CustomObjectsApi(config.new_client_from_config(str(kubeconfig)))
        body = {"apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleConfig", "metadata": {"name": "bench"},
                "spec": {"enabled": False}}
        try:
            api.create_cluster_custom_object("deckhouse.io", "v1alpha1", "moduleconfigs", body)
        except client.ApiException as e:
            if e.status != 409:
                raise
        empty = play_time(kubeconfig, {"ansible.builtin.meta": "noop"}, 0, args.repeats)
        rows = []
        for label, task in CASES.items():
            total = play_time(kubeconfig, task, args.tasks, args.repeats)
            rows.append((label, (total - empty) / args.tasks * 1000))
    finally:
        if started:
            cluster.down(cluster_dir)

    today = datetime.date.today().isoformat()
    lines = ["### %s — %d tasks per play, best of %d, %s, %d cores, Python %s" % (
        today, args.tasks, args.repeats, platform.machine(), os.cpu_count(), platform.python_version()),
        "", "| task | ms per task |", "|---|---:|"]
    lines += ["| %s | %.0f |" % (label, ms) for label, ms in rows]
    floor = rows[0][1]
    overheads = ["%s %+.0f ms" % (label.split(",")[0], ms - floor) for label, ms in rows[1:]]
    lines += ["", "Overhead over the floor: " + ", ".join(overheads), ""]
    text = "\n".join(lines)
    print(text)
    if args.record:
        results = ROOT / "benchmarks" / "RESULTS.md"
        header = "" if results.exists() else "# Benchmark results\n\nMeasured with `make bench` (benchmarks/run.py).\n\n"
        with results.open("a") as f:
            f.write(header + text + "\n")


if __name__ == "__main__":
    main()
