"""Bulk case of deckhouse.platform.desired_state, side by side with single module_config tasks.

200 ModuleConfigs created by one desired_state task, then the same state again (unchanged), against the
same two plays made of 5 deckhouse.platform.module_config tasks (create 5, then 5 unchanged). Whole
ansible-playbook processes are timed (wall, and CPU of the process tree), best of `repeats`. The issue's
target: the 200-object pair costs at most what the 5-task pair costs (ratio <= 1).

Called by benchmarks/run.py (`make bench`) as measure(runner, kubeconfig, tmp); runs alone too:

    $PY benchmarks/bench_desired_state.py [--dir .local/cluster-bench] [--count 200] [--repeats 3]
"""
from __future__ import annotations

import argparse
import datetime
import pathlib
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
PREFIX = "bench-bulk-"


def _state(path, names):
    docs = [{"apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleConfig", "metadata": {"name": n},
             "spec": {"enabled": False}} for n in names]
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def _play(path, tasks):
    path.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}], sort_keys=False))
    return path


def _cleanup(kubeconfig):
    from kubernetes import client, config

    api = client.CustomObjectsApi(config.new_client_from_config(str(kubeconfig)))
    items = api.list_cluster_custom_object("deckhouse.io", "v1alpha1", "moduleconfigs")["items"]
    for item in items:
        name = item["metadata"]["name"]
        if name.startswith(PREFIX):
            api.delete_cluster_custom_object("deckhouse.io", "v1alpha1", "moduleconfigs", name)


def measure(runner, kubeconfig, tmp, count=200, singles=5, repeats=3):
    """Markdown table of the bulk case (also returned as data in `measure.last`)."""
    tmp = pathlib.Path(tmp)
    names = ["%s%03d" % (PREFIX, i) for i in range(count)]
    state = _state(tmp / "bulk-state.yml", names)
    bulk_play = _play(tmp / "bulk.yml", [{"name": "bulk", "deckhouse.platform.desired_state": {
        "src": str(state), "owner": "bench"}}])
    single_play = _play(tmp / "singles.yml", [
        {"name": "single %d" % i,
         "deckhouse.platform.module_config": {"name": "%ss%02d" % (PREFIX, i), "enabled": False}}
        for i in range(singles)])
    best = {}
    for _round in range(repeats):
        _cleanup(kubeconfig)
        for label, play in (("bulk_create", bulk_play), ("bulk_unchanged", bulk_play),
                            ("single_create", single_play), ("single_unchanged", single_play)):
            wall, cpu, _proc = runner.run(play)
            old = best.get(label)
            if old is None or cpu < old[1]:
                best[label] = (wall, cpu)
    _cleanup(kubeconfig)
    bulk_wall = best["bulk_create"][0] + best["bulk_unchanged"][0]
    bulk_cpu = best["bulk_create"][1] + best["bulk_unchanged"][1]
    single_wall = best["single_create"][0] + best["single_unchanged"][0]
    single_cpu = best["single_create"][1] + best["single_unchanged"][1]
    measure.last = dict(best=best, count=count, singles=singles, cpu_ratio=bulk_cpu / single_cpu,
                        wall_ratio=bulk_wall / single_wall)
    lines = [
        "#### Bulk: desired_state with %d ModuleConfigs vs %d single module_config tasks (%s, best of %d)"
        % (count, singles, datetime.date.today().isoformat(), repeats),
        "",
        "| play (whole ansible-playbook process) | wall s | CPU s |",
        "|---|---|---|",
    ]
    for label, text in (("bulk_create", "desired_state, %d created" % count),
                        ("bulk_unchanged", "desired_state, %d unchanged" % count),
                        ("single_create", "%d module_config tasks, created" % singles),
                        ("single_unchanged", "%d module_config tasks, unchanged" % singles)):
        lines.append("| %s | %.2f | %.2f |" % (text, best[label][0], best[label][1]))
    lines += ["", "Bulk pair / single pair: CPU %.2f×, wall %.2f× (target <= 1)." % (
        bulk_cpu / single_cpu, bulk_wall / single_wall)]
    return "\n".join(lines)


def main():
    sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "integration"), str(ROOT / "benchmarks")]
    import tempfile

    import bench_env
    from harness import cluster
    from run import Runner

    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", default=str(ROOT / ".local" / "cluster-bench"))
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--singles", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--python", default=None, help="python of the ansible to time (default: bench_env)")
    args = parser.parse_args()
    python = args.python or bench_env.ensure()
    cluster_dir = pathlib.Path(args.dir).resolve()
    started = not cluster.running(cluster_dir)
    if started:
        cluster.up(cluster_dir)
    try:
        kubeconfig = cluster_dir / "kubeconfig"
        with tempfile.TemporaryDirectory() as tmp:
            print(measure(Runner(kubeconfig, python), kubeconfig, tmp, args.count, args.singles, args.repeats))
    finally:
        if started:
            cluster.down(cluster_dir)


if __name__ == "__main__":
    main()
