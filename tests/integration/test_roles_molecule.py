"""The module runbook roles (issue 6) through their Molecule scenarios, against the local DKP cluster.

Each scenario in extensions/molecule/<role>/ runs `molecule test -s <role>`: prepare (a fresh simulator), converge
with --check (then the audit log must show no write), converge (the role's playbook, as AWX runs it), idempotence
(a second run changes nothing), verify (the cluster read back), and the failure paths (each asserting its message
and, from the audit log, that nothing was written). The scenarios reset the simulator before and after they run.

The layout checks below need no cluster.
"""
from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROLES = ("module_enable", "module_reinstall", "module_release_approve", "module_source_switch",
         "module_dev_override", "registry_migrate", "registry_switch")
TASK_FILES = ("main", "preflight", "apply", "verify", "diagnostics", "report")
# registry_switch waits inside each hop's write (registry_mode's controller-side wait): no wait.yml
WAIT_FILE = set(ROLES) - {"registry_switch"}
ANSI = re.compile(r"\x1b\[[0-9;]*m")
TIMEOUT = 1800


def molecule_env(cluster_dir: pathlib.Path) -> dict:
    bindir = pathlib.Path(sys.executable).parent
    coll = ROOT / ".local" / "collections"
    (coll / "ansible_collections" / "deckhouse").mkdir(parents=True, exist_ok=True)
    link = coll / "ansible_collections" / "deckhouse" / "platform"
    if not link.exists():
        link.symlink_to(ROOT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_"))}
    env.update({
        "PATH": "%s:%s" % (bindir, env.get("PATH", "")),
        "ANSIBLE_COLLECTIONS_PATH": str(coll),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "NO_COLOR": "1",
        "PY_COLORS": "0",
        # the scenarios live in the collection layout; say so even if a top-level molecule/ folder appears
        "MOLECULE_GLOB": "extensions/molecule/*/molecule.yml",
        "DKP_CLUSTER_DIR": str(cluster_dir),
    })
    return env


@pytest.mark.parametrize("scenario", ROLES)
def test_molecule_scenario(scenario, dkp_cluster, simulator):
    if dkp_cluster.audit_log_path is None:
        pytest.skip("the scenarios need a harness cluster (audit log and simulator), not DKP_KUBECONFIG's")
    proc = subprocess.run([str(pathlib.Path(sys.executable).parent / "molecule"), "test", "-s", scenario],
                          cwd=str(ROOT), env=molecule_env(dkp_cluster.dir), capture_output=True, text=True,
                          timeout=TIMEOUT, stdin=subprocess.DEVNULL, check=False)
    output = ANSI.sub("", proc.stdout + proc.stderr)
    assert proc.returncode == 0, "molecule test -s %s failed (rc %s); last lines:\n%s" % (
        scenario, proc.returncode, "\n".join(output.splitlines()[-250:]))
    # the sequence must really have run its steps (a scenario that silently skips them proves nothing)
    # (molecule prints "scenario ➜ action: Executed: Successful", or "[scenario > action] Executed: Successful"
    # without colours)
    for action in ("check", "converge", "idempotence", "verify", "side_effect"):
        done = r"(%s ➜ %s:|\[%s > %s\]) Executed: Successful" % ((re.escape(scenario), action) * 2)
        assert re.search(done, output), "step %s of scenario %s did not run:\n%s" % (action, scenario, output[-5000:])


# -- layout (no cluster) -------------------------------------------------------------------------------


def load(path: pathlib.Path):
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("role", ROLES)
def test_role_layout_and_argument_specs(role):
    base = ROOT / "roles" / role
    for name in TASK_FILES + (("wait",) if role in WAIT_FILE else ()):
        assert (base / "tasks" / ("%s.yml" % name)).is_file(), "roles/%s/tasks/%s.yml is missing" % (role, name)
    assert (base / "meta" / "main.yml").is_file()
    options = load(base / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    defaults = load(base / "defaults" / "main.yml") or {}
    for name in list(options) + list(defaults):
        assert name.startswith(role + "_") and not name.startswith(role + "__"), \
            "%s: public variable %s must be prefixed %s_" % (role, name, role)
    assert set(defaults) <= set(options), "%s: defaults not documented in argument_specs: %s" % (
        role, sorted(set(defaults) - set(options)))
    for name, spec in options.items():
        if "default" in spec:
            assert defaults.get(name) == spec["default"], "%s: default of %s differs between defaults/main.yml " \
                "(%r) and argument_specs (%r)" % (role, name, defaults.get(name), spec["default"])
    main = (base / "tasks" / "main.yml").read_text()
    assert "rescue:" in main and "diagnostics.yml" in main, "%s: main.yml needs a rescue with diagnostics" % role
    # the report is published through the shared scaffold (roles/runbook/tasks/publish.yml: set_stats)
    assert "tasks_from: publish" in (base / "tasks" / "report.yml").read_text()


@pytest.mark.parametrize("role", ROLES)
def test_playbook_documents_its_survey_variables(role):
    playbook = ROOT / "playbooks" / ("%s.yml" % role)
    text = playbook.read_text()
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    options = load(ROOT / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    undocumented = [name for name in options
                    if name != role + "_report_path" and not re.search(r"#\s+%s\s" % re.escape(name), header)]
    assert not undocumented, "playbooks/%s.yml does not document %s at the top" % (role, undocumented)
    play = load(playbook)[0]
    assert play["module_defaults"]["group/deckhouse.platform.dkp"].keys() >= {"kubeconfig", "context"}
    assert play["roles"] == [{"role": "deckhouse.platform.%s" % role}]
    assert "deckhouse.platform.%s" % role in (ROOT / "docs" / "roles.md").read_text()
