"""`make demo`: start a local DKP cluster, switch its registry from Unmanaged to Direct with
playbooks/registry_switch.yml (live progress in the output), print the report, stop the cluster.

The simulator runs with its slower `demo` profile so the condition changes can be followed.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "integration")]

from ansible_run import collection_env  # noqa: E402
from harness import cluster  # noqa: E402

INVENTORY = """\
dkp_clusters:
  hosts:
    demo:
      ansible_connection: local
      registry_switch_kubeconfig: {kubeconfig}
"""

PREPARE = """\
- name: Prepare the demo cluster (the registry module must be on before a switch)
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Enable the registry module
      deckhouse.platform.module_config:
        kubeconfig: {kubeconfig}
        name: registry
        enabled: true
        wait: true
        wait_timeout: 120
"""


SWITCH_VARS = """\
registry_switch_mode: Direct
registry_switch_images_repo: registry.deckhouse.io/deckhouse/ee
registry_switch_license: DEMO-LICENSE-NOT-A-SECRET
registry_switch_confirm_restart: true
registry_switch_report_dir: {report_dir}
"""


def ansible_playbook(env, *args):
    cmd = [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), *args]
    print("\n$ " + " ".join(str(a) for a in cmd), flush=True)
    return subprocess.run(cmd, cwd=str(ROOT), env=env, stdin=subprocess.DEVNULL, check=False).returncode


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", default=str(ROOT / ".local" / "demo"))
    parser.add_argument("--keep", action="store_true", help="leave the cluster running afterwards")
    args = parser.parse_args()
    d = pathlib.Path(args.dir)
    os.environ.setdefault("DKP_SIM_PROFILE", "demo")
    info = cluster.up(d)
    try:
        kubeconfig = info.kubeconfig
        (d / "inventory.yml").write_text(INVENTORY.format(kubeconfig=kubeconfig))
        (d / "prepare.yml").write_text(PREPARE.format(kubeconfig=kubeconfig))
        env = collection_env(kubeconfig, record=False)
        if ansible_playbook(env, str(d / "prepare.yml")) != 0:
            return 1
        # Secrets go in a private vars file, never on a command line (ps, shell history, CI logs).
        switch_vars = d / "switch-vars.yml"
        switch_vars.write_text(SWITCH_VARS.format(report_dir=d))
        switch_vars.chmod(0o600)
        rc = ansible_playbook(env, "-i", str(d / "inventory.yml"), "playbooks/registry_switch.yml",
                              "-e", "@%s" % switch_vars)
        report = d / "registry-switch-demo.json"
        if report.exists():
            print("\nReport (%s):" % report)
            print(json.dumps(json.loads(report.read_text()), indent=2))
        return rc
    finally:
        if not args.keep:
            cluster.down(d)


if __name__ == "__main__":
    sys.exit(main())
