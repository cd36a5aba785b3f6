"""Every plugin's EXAMPLES run for real: one ansible-playbook per plugin against the local DKP cluster.

The plugin list comes from the file system (plugins/modules/*.py, plugins/lookup/*.py), so a new plugin is
covered, or fails here, without editing this file. EXAMPLES are read with `ast` (no Ansible loader) and run
unchanged in one play whose module_defaults give the `dkp` action group the kubeconfig (lookups find it in
K8S_AUTH_KUBECONFIG), after the state they assume is prepared: a simulator reset, then PREPARE's steps (harness
controls, and tasks; the tasks after the last control run as a first play of the examples' playbook). A task
without `register` gets one; every example task must be run (a skip counts as not run) and must not fail, and
the failure names each task with its status and msg.

The EDA event source's EXAMPLES are a rulebook: they are parsed and checked against the arguments the source reads.
"""
from __future__ import annotations

import ast
import json
import re

import pytest
import yaml

from ansible_run import ROOT, run_playbook
from registry_support import LICENSE, Cluster

PLUGIN_FILES = sorted(p for d in ("modules", "lookup") for p in (ROOT / "plugins" / d).glob("*.py")
                      if p.name != "__init__.py")
EDA_SOURCE = ROOT / "extensions" / "eda" / "plugins" / "event_source" / "dkp_events.py"
EXAMPLE_REPO = "registry.example.com/deckhouse/modules"
REGISTRY_REPO = "registry.example.com/deckhouse/ee"

# Variables the examples take from the inventory, a vault or AWX.
EXTRA_VARS = {
    "vault_registry_user": "puller",
    "vault_registry_password": "PASSWORD-examples-not-a-secret",
    "dkp_license": LICENSE,
    "awx_job_id": "4711",
    "console_needs_reinstall": True,  # run the example's guarded reinstall instead of skipping it
}

# Examples that cannot run for real on the local cluster run with check_mode added here (plugin -> {task: why}).
# Keep this short: the local cluster is disposable, so disruptive examples run for real.
CHECK_MODE_ONLY = {}


def read_examples(path):
    """The EXAMPLES string constant of a plugin file, or None."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "EXAMPLES" for t in node.targets):
            return ast.literal_eval(node.value)
    return None


def plugin_id(path):
    return "%s/%s" % (path.parent.name, path.stem)


def leaf_tasks(tasks):
    """The tasks that run (block members, not the blocks)."""
    for task in tasks:
        if "block" in task:
            for key in ("block", "rescue", "always"):
                yield from leaf_tasks(task.get(key) or [])
        else:
            yield task


def add_registers(tasks):
    for n, task in enumerate(leaf_tasks(tasks)):
        task.setdefault("register", "example_result_%d" % n)


# -- state the examples assume ------------------------------------------------------------------------------

def mc(name, **params):
    return {"name": "prepare: ModuleConfig %s" % name, "deckhouse.platform.module_config": dict(name=name, **params)}


def source(name="example", repo=EXAMPLE_REPO):
    return {"name": "prepare: ModuleSource %s" % name,
            "deckhouse.platform.module_source": {"name": name, "repo": repo, "wait": True, "wait_timeout": 60}}


def policy(name, mode="Manual", channel="Stable"):
    return {"name": "prepare: ModuleUpdatePolicy %s" % name,
            "deckhouse.platform.module_update_policy": {"name": name, "mode": mode, "release_channel": channel}}


def mpo(module, tag="pr123"):
    return {"name": "prepare: ModulePullOverride %s" % module,
            "deckhouse.platform.module_pull_override": {"name": module, "image_tag": tag, "wait": True,
                                                        "wait_timeout": 60}}


CONSOLE = mc("console", enabled=True, source="deckhouse", wait=True, wait_timeout=60)
MANUAL_CONSOLE = [policy("manual-console"),
                  mc("console", enabled=True, source="deckhouse", update_policy="manual-console", wait=True,
                     wait_timeout=60)]


def pending_console(version):
    return {"name": "prepare: console %s Pending" % version,
            "deckhouse.platform.module_release_info": {"module": "console", "version": version,
                                                       "wait_for": "pending", "wait_timeout": 60}}


def enable_registry(ctx):
    Cluster(ctx.kube).enable_registry()


def registry_switch_under_way(ctx):
    """A switch to Direct that DKP has taken up but not finished (its last condition held)."""
    cluster = Cluster(ctx.kube)
    cluster.enable_registry()
    ctx.simulator.hold_condition("Ready", "held by the EXAMPLES test")
    cluster.patch_mc("deckhouse", {"spec": {"settings": {"registry": {
        "mode": "Direct", "direct": {"imagesRepo": REGISTRY_REPO, "license": LICENSE}}}}})
    cluster.wait(lambda: (cluster.state() or {}).get("target_mode") == "Direct", "the switch to start")


def local_images_pushed(ctx):
    ctx.simulator.local_images_pushed()


def desired_state_checkout(ctx):
    """The git checkout the examples read: <dir>/clusters/prod/ next to <dir>/playbooks/."""
    prod = ctx.tmp / "clusters" / "prod"
    prod.mkdir(parents=True)
    (prod / "policies.yml").write_text(yaml.safe_dump({
        "apiVersion": "deckhouse.io/v1alpha2", "kind": "ModuleUpdatePolicy", "metadata": {"name": "manual-stable"},
        "spec": {"releaseChannel": "Stable", "update": {"mode": "Manual"}}}))
    (prod / "modules.yml").write_text(yaml.safe_dump({
        "apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleConfig", "metadata": {"name": "prometheus"},
        "spec": {"enabled": True, "version": 2, "settings": {"retentionDays": 7}}}))


RETIRED_POLICY = {"name": "prepare: a policy of gitops-prod that git no longer declares (pruned)",
                  "deckhouse.platform.desired_state": {"owner": "gitops-prod", "resources": [{
                      "apiVersion": "deckhouse.io/v1alpha2", "kind": "ModuleUpdatePolicy",
                      "metadata": {"name": "retired"},
                      "spec": {"releaseChannel": "Stable", "update": {"mode": "Auto"}}}]}}


def docker_config_file(ctx):
    files = ctx.tmp / "playbooks" / "files"
    files.mkdir(parents=True, exist_ok=True)
    (files / "docker-config.json").write_text(json.dumps({"auths": {"registry.example.com": {
        "auth": "cHVsbGVyOlBBU1NXT1JELWV4YW1wbGVz"}}}))  # puller:PASSWORD-examples


def publish_console(*versions):
    def publish(ctx):
        for version in versions:
            ctx.simulator.add_release("console", version)
    publish.__name__ = "publish console %s" % ", ".join(versions)
    return publish


class Prepared:
    def __init__(self, kube, simulator, tmp):
        self.kube = kube
        self.simulator = simulator
        self.tmp = tmp


# plugin id -> the state its examples assume, as steps in order: tasks (run as one play) and functions of
# Prepared (harness controls). Tasks after the last function run as a first play of the examples' playbook.
PREPARE = {
    "modules/desired_state": [desired_state_checkout, RETIRED_POLICY],
    "modules/module_config": [policy("manual-console")],
    "modules/module_info": [CONSOLE, mpo("console"), source(),
                            mc("commander", enabled=True, source="example", wait=True, wait_timeout=60)],
    "modules/module_pull_override": [CONSOLE],
    "modules/module_pull_override_info": [CONSOLE, mpo("console")],
    # console 1.40.1 deployed under a Manual policy, then 1.41.0 (approved by the examples), 1.42.0 (the next
    # one, approved too) and 1.43.0 (applied now) published
    "modules/module_release": MANUAL_CONSOLE + [publish_console("1.41.0", "1.42.0", "1.43.0"),
                                                pending_console("1.43.0")],
    "modules/module_release_info": MANUAL_CONSOLE + [publish_console("1.41.0")],
    "modules/module_source": [docker_config_file],
    "modules/module_source_info": [source()],
    "modules/module_update_policy_info": [policy("manual")],
    "modules/registry_mode": [enable_registry, local_images_pushed],
    "modules/registry_state_info": [registry_switch_under_way],
    "modules/registry_switch_preflight": [enable_registry],
    "modules/run_lock": [enable_registry],
    "lookup/module_release": [CONSOLE],
    "lookup/registry_state": [enable_registry],
}


def prepare(pid, kc, ctx):
    """Run the steps of PREPARE[pid] but its trailing tasks, which are returned (for the examples' playbook)."""
    batch = []
    for step in PREPARE.get(pid, []):
        if not callable(step):
            batch.append(step)
            continue
        if batch:
            run = run_playbook(kc, [play("prepare", kc, batch)], timeout=300)
            check(run, "preparation", [t["name"] for t in batch])
            batch = []
        step(ctx)
    return batch


def play(name, kc, tasks):
    return {"name": name, "hosts": "localhost", "gather_facts": False,
            "module_defaults": {"group/deckhouse.platform.dkp": {"kubeconfig": str(kc)}}, "tasks": tasks}


def check(run, what, titles):
    """Every task in `titles` ran and succeeded; else fail with each one's status and message."""
    by_name = {rec["task"]: rec for rec in run.records}
    problems = []
    for title in titles:
        rec = by_name.get(title)
        if rec is None:
            problems.append("%r: not run" % title)
        elif rec["status"] != "ok" or rec["result"].get("failed"):
            problems.append("%r: %s: %s" % (title, rec["status"], rec["result"].get("msg")))
    assert not problems, "%s:\n  %s\n%s" % (what, "\n  ".join(problems), run.output[-4000:])
    assert run.rc == 0, run.output


def test_prepare_names_only_existing_plugins():
    stale = (set(PREPARE) | set(CHECK_MODE_ONLY)) - {plugin_id(p) for p in PLUGIN_FILES}
    assert not stale, "PREPARE/CHECK_MODE_ONLY name plugins that do not exist: %s" % sorted(stale)


@pytest.mark.parametrize("path", PLUGIN_FILES, ids=plugin_id)
def test_examples_run(path, kc, kube, fresh_simulator, tmp_path):
    pid = plugin_id(path)
    text = read_examples(path)
    assert text and text.strip(), "%s has no EXAMPLES" % pid
    tasks = yaml.safe_load(text)
    assert isinstance(tasks, list) and tasks, "%s: EXAMPLES are not a list of tasks" % pid
    names = [t.get("name") for t in leaf_tasks(tasks)]
    assert all(names), "%s: every example task needs a name (it is the documentation's heading)" % pid
    assert len(set(names)) == len(names), "%s: example task names repeat: %s" % (pid, names)

    for task in leaf_tasks(tasks):
        if task["name"] in CHECK_MODE_ONLY.get(pid, {}):
            task["check_mode"] = True
    add_registers(tasks)

    prep = prepare(pid, kc, Prepared(kube, fresh_simulator, tmp_path))
    plays = ([play("prepare", kc, prep)] if prep else []) + [play("EXAMPLES of %s" % pid, kc, tasks)]
    # a playbook in <tmp>/playbooks/: examples read files next to it (files/, ../clusters/)
    book = tmp_path / "playbooks" / "examples.yml"
    book.parent.mkdir(parents=True, exist_ok=True)
    book.write_text(yaml.safe_dump(plays, sort_keys=False))
    run = run_playbook(kc, book, extra_vars=dict(EXTRA_VARS, dkp_kubeconfig=str(kc)), timeout=300)
    check(run, "%s EXAMPLES" % pid, [t["name"] for t in prep] + names)


# -- the EDA event source ------------------------------------------------------------------------------------

def test_eda_examples_name_only_accepted_arguments():
    text = read_examples(EDA_SOURCE)
    assert text and text.strip(), "the dkp_events source has no EXAMPLES"
    tree = ast.parse(EDA_SOURCE.read_text())
    accepted = {node.args[0].value for node in ast.walk(tree)
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "args"
                and node.args and isinstance(node.args[0], ast.Constant)}
    kinds = next({key.value for key in node.value.keys} for node in tree.body
                 if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "KINDS")
    # the module docstring lists the event types first, one per line ("  <type>  <meaning>"), then the arguments
    listing = ast.get_docstring(tree).split("Each event carries")[0]
    event_types = set(re.findall(r"^  ([a-z_]+) {2,}", listing, re.M))
    assert "module_phase" in event_types, "event types not found in the docstring of %s" % EDA_SOURCE.name
    rulebooks = yaml.safe_load(text)
    seen = 0
    for rulebook in rulebooks:
        assert rulebook.get("rules"), "rulebook %r has no rules" % rulebook.get("name")
        for src in rulebook["sources"]:
            args = src.get("deckhouse.platform.dkp_events")
            if args is None:
                continue
            seen += 1
            assert set(args) <= accepted, "unknown arguments %s (accepted: %s)" % (set(args) - accepted, accepted)
            assert set(args.get("kinds") or []) <= kinds, "unknown kinds %s" % args["kinds"]
        for rule in rulebook["rules"]:
            for used in re.findall(r'event\.type == "(\w+)"', rule.get("condition", "")):
                assert used in event_types, "condition names unknown event type %r" % used
    assert seen, "no example uses deckhouse.platform.dkp_events"
