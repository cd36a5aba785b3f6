#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

DOCUMENTATION = r"""
module: desired_state
short_description: Converge a desired DKP state (sources, update policies, module configs, pull overrides) in one task
version_added: 0.2.0
description:
  - Takes ModuleSource, ModuleUpdatePolicy, ModuleConfig and ModulePullOverride objects from O(src) (a YAML
    file or a directory of YAML files, multi-document) and/or O(resources), and makes the cluster match them
    in one module process, in dependency order (sources, policies, configs, overrides).
  - Same write rules as the single-object modules. Only the declared fields are written, as JSON merge
    patches guarded by the object's resourceVersion (a concurrent writer is never overwritten with a stale
    copy). ModuleConfig C(spec.settings) are merged into the live settings (a V(null) value removes a key).
    A ModuleSource C(dockerCfg) is compared by value (the same credentials encoded differently are not a
    change) and never printed.
  - Every object this task creates or updates gets the label C(deckhouse.platform/owner=<owner>). With
    O(prune=true), objects with that label that the state no longer declares are deleted; unlabelled objects
    are never touched.
  - The whole state is validated before the first write (unknown kinds, ModuleConfig settings without a
    version, duplicate names, references to policies or sources that neither the state nor the cluster has,
    disabling a critical module or one that needs confirmation without O(allow_disabling), a new
    ModulePullOverride for a module that no ModuleSource offers); an error names the file and the document
    index. The pull-override rule is skipped when the state creates a ModuleSource (it has not synced yet).
  - Each kind is read with one LIST request; writes of one kind run in parallel (O(workers)).
author: deckhouse.platform contributors (@deckhouse)
options:
  src:
    description:
      - A YAML file or a directory (searched recursively for C(*.yml) and C(*.yaml), in name order) with the
        desired objects, several per file separated by C(---). A C(kind=List) document is expanded.
      - Read on the host that runs the module (the controller with C(connection=local)).
    type: path
  resources:
    description: Desired objects given inline, in addition to O(src).
    type: list
    elements: dict
  owner:
    description:
      - Value of the ownership label C(deckhouse.platform/owner) set on every object written, and the only
        objects O(prune) may delete. Use one owner per desired state (per git repository and cluster).
    type: str
    default: desired-state
  prune:
    description: Delete objects labelled with this O(owner) that the state no longer declares.
    type: bool
    default: false
  allow_disabling:
    description:
      - Allow disabling (C(enabled=false) or pruning a ModuleConfig) critical modules (C(properties.critical),
        for example C(deckhouse), C(registry)) and modules whose disabling DKP asks to confirm; the task then
        adds C(modules.deckhouse.io/allow-disabling=true). Without it such a state fails before any write.
    type: bool
    default: false
  wait:
    description:
      - After the writes, wait on the collection's one wait engine (one list and one watch per kind, the kinds
        at the same time) until every declared enabled module is Ready (disabled ones no longer enabled), every
        ModuleSource has synced after our write, and every ModulePullOverride is Ready with a digest.
      - Only states that show Deckhouse processed the change count (a Ready from before enabling a module is
        not accepted); the wait rides through dropped watches, API server and Deckhouse restarts.
      - Fails at once when a Module needs an operator (Conflict, Unavailable), a ModuleSource reports a sync
        error, a ModulePullOverride a failure, or a ModuleConfig an error. A module hook error (C(Error),
        C(DownloadingError)) fails only when it persists longer than O(wait_grace).
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait in total before failing with the last state of every object that is not ready.
      - Also how long a ModuleSource written by this task may take to offer a module that a ModuleConfig of the
        state takes from it (DKP refuses such a ModuleConfig until then); this wait happens with O(wait=false) too.
    type: int
    default: 600
  workers:
    description: Parallel requests while writing (the apiserver serves them concurrently). V(1) writes one by one.
    type: int
    default: 4
extends_documentation_fragment:
  - deckhouse.platform.connection
  - deckhouse.platform.wait
  - deckhouse.platform.attributes
  - deckhouse.platform.attributes.CHECK_MODE_WRITE
"""

EXAMPLES = r"""
- name: Converge the cluster to the state in git
  deckhouse.platform.desired_state:
    src: "{{ playbook_dir }}/../clusters/prod/"
    owner: gitops-prod
    prune: true
    wait: true
  register: state

- name: Plan only (check mode is a server-side dry run), with the plan as Markdown
  deckhouse.platform.desired_state:
    src: "{{ playbook_dir }}/../clusters/prod/"
    owner: gitops-prod
  check_mode: true
  diff: true
  register: plan

- name: Inline objects
  deckhouse.platform.desired_state:
    owner: platform-team
    resources:
      - apiVersion: deckhouse.io/v1alpha1
        kind: ModuleConfig
        metadata:
          name: cert-manager
        spec:
          enabled: true
          version: 1
          settings:
            disableLetsencrypt: true
"""

RETURN = r"""
results:
  description: One entry per object, in the order written (kind, name, action, source file and document).
    C(action) is one of C(created), C(updated), C(unchanged), C(pruned); in check mode, what a real run would do.
    In check mode an object that names one the same state creates (a ModuleConfig's new policy or source) is
    reported from the plan with C(dry_run=false) and C(depends_on), since the server cannot dry-run it.
  returned: always
  type: list
  elements: dict
summary:
  description: Counts per action (created, updated, unchanged, pruned, total).
  returned: always
  type: dict
plan:
  description:
    - What differs between the cluster and the state before the task, in dependency order. Each entry has
      C(kind), C(name), C(action), C(source), C(changes) (dotted field paths, no values) and, for objects that
      differ, C(changed_by) (managers that own the drifted fields per managedFields, with time).
  returned: always
  type: list
  elements: dict
plan_markdown:
  description: The plan as Markdown, fit for a merge-request comment.
  returned: always
  type: str
drift:
  description: Whether the cluster differed from the state before the task (anything to create, update or prune).
  returned: always
  type: bool
diff:
  description: Per changed object, managed fields before and after (diff mode), secrets redacted.
  returned: in diff mode, when changed
  type: list
waited:
  description: Per waited object, its final state (module phase, source sync time, override digest).
  returned: when wait is true
  type: list
"""

import copy

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import DkpError
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_desired_state import (
    Converger,
    check_owner,
    load,
    plan_markdown,
    secret_values,
    summarize,
    snapshot_modules,
    validate,
    wait_all,
)
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_base import DkpModule
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_wait import WAIT_ARG_SPEC


def _no_log(module, values):
    register = getattr(module, "no_log", None)
    for value in values:
        if register is not None:
            register(value)
        else:
            module.ansible.no_log_values.add(value)


def run(module):
    p = module.params
    if not p.get("src") and not p.get("resources"):
        raise DkpError("Nothing to converge: set src (a YAML file or directory) and/or resources")
    for option in ("wait_timeout", "workers"):
        if p[option] is not None and p[option] < 1:
            raise DkpError("%s must be a positive number, got %s" % (option, p[option]))
    check_owner(p["owner"])
    docs = load(p.get("src"), p.get("resources"))
    _no_log(module, secret_values(docs))
    validate(docs)
    client = module.client
    validate(docs, client)
    conv = Converger(client, docs, p["owner"], check_mode=module.check_mode, diff=module.diff_mode,
                     prune=p["prune"], allow_disabling=p["allow_disabling"], workers=p["workers"])
    conv.source_timeout = p["wait_timeout"]
    conv.read()
    conv.preflight()
    plan = conv.plan()
    plan_summary = summarize(plan)
    result = {"plan": plan, "drift": any(e["action"] != "unchanged" for e in plan),
              "plan_markdown": plan_markdown(plan, plan_summary)}
    module.result = result  # the partial result survives a failure (dkp_base contract)
    waiting = p["wait"] and not module.check_mode
    modules_before = snapshot_modules(client, docs) if waiting else {}  # the "before" of change evidence
    entries, after = conv.apply()
    changed = any(e["action"] != "unchanged" for e in entries)
    diffs = [e.pop("diff") for e in entries if "diff" in e]
    result.update(changed=changed, results=entries, summary=summarize(entries))
    if module.diff_mode and diffs:
        result["diff"] = diffs
    if waiting:
        # A failed wait keeps its type (WaitFailed/WaitTimeout); module.result carries what was written.
        result["waited"] = wait_all(client, docs, entries, conv.live, p["wait_timeout"], grace=p["wait_grace"],
                                    after=after, modules_before=modules_before)
    return result


def main():
    module = DkpModule(
        argument_spec=dict(
            copy.deepcopy(WAIT_ARG_SPEC),
            src=dict(type="path"),
            resources=dict(type="list", elements="dict"),
            owner=dict(type="str", default="desired-state"),
            prune=dict(type="bool", default=False),
            allow_disabling=dict(type="bool", default=False),
            workers=dict(type="int", default=4),
        ),
        supports_check_mode=True,
    )
    module.run(lambda: run(module))


if __name__ == "__main__":
    main()
