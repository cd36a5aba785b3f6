#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

DOCUMENTATION = r"""
module: run_lock
short_description: Cluster-wide run lock (a coordination.k8s.io Lease), so one runbook writes at a time
version_added: 0.2.0
description:
  - Acquires, renews or releases a C(coordination.k8s.io/v1) Lease that the runbook roles and
    C(deckhouse.platform.gitops_sync) take before they write, so an AWX job and a pipeline never converge
    or switch the registry at the same time.
  - Acquiring is a create, or a write guarded by the Lease's resourceVersion when the Lease is free or
    expired; of two runs that race, exactly one acquires and the other sees it held.
  - The Lease expires O(lease_duration) seconds after its last renewal, so a crashed run (killed job, lost
    runner) blocks the next one for at most that long. Long runs renew it (O(state=renewed)).
  - Expiry is judged with this host's clock against the holder's C(renewTime); keep clocks in sync (NTP).
author: deckhouse.platform contributors (@deckhouse)
options:
  state:
    description:
      - V(acquired) takes the lock (renews it when this holder has it already).
      - V(renewed) pushes the expiry forward; fails when the lock is no longer held by O(holder).
      - V(released) frees the lock when O(holder) has it; a lock held by someone else is left alone
        (C(released=false) with the reason).
    type: str
    choices: [acquired, renewed, released]
    default: acquired
  name:
    description:
      - Name of the Lease, a DNS-1123 subdomain (lowercase letters, digits, C(-) and C(.)); anything else is
        refused before any request.
    type: str
    default: deckhouse-platform-runbook
  namespace:
    description: Namespace of the Lease.
    type: str
    default: d8-system
  holder:
    description:
      - Identity written to C(spec.holderIdentity). Pass the same value to every task of one run (register
        the result of the acquiring task and use its C(holder)).
      - Default C(awx-job-<id>) from O(job_id) or the C(JOB_ID) environment variable of an AWX/Controller job,
        else C(<user>@<host>/<pid of ansible-playbook>).
    type: str
  job_id:
    description:
      - AWX/Controller job id, for example C("{{ awx_job_id | default(tower_job_id) | default(omit) }}").
    type: str
  purpose:
    description: What the run does (annotation C(deckhouse.platform/purpose)), shown to whoever finds it held.
    type: str
  lease_duration:
    description: Seconds after the last renewal at which the lock counts as abandoned.
    type: int
    default: 900
  max_wait:
    description:
      - Seconds to wait for a lock held by someone else.
      - V(0) (the default) fails at once, naming the holder and since when it holds the lock. Negative values
        are refused.
      - The alias C(wait_timeout) is the name the runbook roles use; unlike the C(wait_timeout) of other modules,
        V(0) is meaningful here.
    type: int
    default: 0
    aliases: [wait_timeout]
  break_lock:
    description:
      - With O(state=acquired), take the lock over at once when another holder has it, instead of failing or
        waiting. For the operator who knows that holder is gone (a killed AWX job, a lost runner) and does not
        want to wait until its Lease expires. The take-over is guarded by the Lease's resourceVersion and the
        previous holder is returned in C(broken_from) and shown as a warning.
      - Never set it by default in a job template; two live runs would then both write.
    type: bool
    default: false
extends_documentation_fragment:
  - deckhouse.platform.connection
  - deckhouse.platform.attributes
attributes:
  check_mode:
    description: Reads the Lease only and reports in C(would) what a real run would do (acquire, renew, wait,
      fail, release); takes no lock and writes nothing, not even a dry run.
    support: full
  diff_mode:
    description: Not applicable.
    support: none
"""

EXAMPLES = r"""
- name: Take the run lock (fails at once when another job holds it)
  deckhouse.platform.run_lock:
    job_id: "{{ awx_job_id | default(tower_job_id) | default(omit) }}"
    purpose: registry switch to Proxy
    lease_duration: 1800
  register: run_lock

- name: Switch the registry while holding the lock
  block:
    - name: Switch
      deckhouse.platform.registry_mode:
        mode: Proxy
        images_repo: registry.deckhouse.io/deckhouse/ee
        license: "{{ dkp_license }}"
        wait: true
    - name: Renew before the next long step
      deckhouse.platform.run_lock:
        state: renewed
        holder: "{{ run_lock.holder }}"
        lease_duration: 1800
  always:
    - name: Release the run lock
      deckhouse.platform.run_lock:
        state: released
        holder: "{{ run_lock.holder }}"

- name: Wait up to 10 minutes for a running job to finish
  deckhouse.platform.run_lock:
    max_wait: 600

- name: Take over the lock of a killed job (the failure of the normal acquire named it)
  deckhouse.platform.run_lock:
    break_lock: true
"""

RETURN = r"""
holder:
  description: The holder identity this task used (pass it to later renew and release tasks).
  returned: always
  type: str
acquired:
  description: Whether this run holds the lock after the task.
  returned: when state is acquired or renewed
  type: bool
released:
  description: Whether the task freed the lock.
  returned: when state is released
  type: bool
action:
  description: What was done, one of C(acquired), C(renewed), C(released), C(none).
  returned: except in check mode
  type: str
would:
  description: In check mode, what a real run would do (C(acquire), C(renew), C(wait), C(fail), C(release)).
  returned: in check mode
  type: str
reason:
  description: Why a release did nothing (the Lease is free, or held by someone else).
  returned: when released is false
  type: str
broken_from:
  description: The holder whose live lock this run took over with O(break_lock) (holder, since, expires, purpose).
  returned: when break_lock took a lock held by someone else
  type: dict
took_over_from:
  description: The previous holder of an expired lock this run took over (holder, since, expired_at).
  returned: when an expired lock was taken over
  type: dict
waited:
  description: Seconds spent waiting for the lock.
  returned: when acquired
  type: float
lease:
  description: The Lease's state (holder, since, renewed, expires, expired, free, duration, transitions, purpose).
  returned: always
  type: dict
"""

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import DkpError
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_lock import (
    DEFAULT_NAME,
    DEFAULT_NAMESPACE,
    DEFAULT_TTL,
    acquire,
    check_name,
    check_ttl,
    default_holder,
    release,
    renew,
    takeover_warning,
)
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_base import DkpModule


def run(module):
    p = module.params
    check_name(p["name"], p["namespace"])
    check_ttl(p["lease_duration"], p["max_wait"])
    holder = p.get("holder") or default_holder(p.get("job_id"))
    client = module.client
    if p["state"] == "released":
        return release(client, p["name"], holder, namespace=p["namespace"], check_mode=module.check_mode)
    if p["state"] == "renewed":
        if module.check_mode:
            result = acquire(client, p["name"], holder, p["lease_duration"], 0, namespace=p["namespace"],
                             check_mode=True)
            if result["would"] != "renew":
                raise DkpError("Run lock Lease %s/%s is not held by %s (a real run would fail)"
                               % (p["namespace"], p["name"], holder), lease=result["lease"], holder=holder)
            return result
        return renew(client, p["name"], holder, p["lease_duration"], namespace=p["namespace"])
    result = acquire(client, p["name"], holder, p["lease_duration"], p["max_wait"], namespace=p["namespace"],
                     purpose=p.get("purpose"), check_mode=module.check_mode, break_lock=p["break_lock"])
    warning = takeover_warning(result)
    if warning:
        module.warn(warning)
    if module.check_mode and result["would"] in ("wait", "fail"):
        module.warn("Run lock Lease %s/%s is held by %s since %s: a real run would %s" % (
            p["namespace"], p["name"], result["lease"]["holder"], result["lease"]["since"],
            "wait up to %ss for it" % p["max_wait"] if result["would"] == "wait" else "fail"))
    return result


def main():
    module = DkpModule(
        argument_spec=dict(
            state=dict(type="str", choices=["acquired", "renewed", "released"], default="acquired"),
            name=dict(type="str", default=DEFAULT_NAME),
            namespace=dict(type="str", default=DEFAULT_NAMESPACE),
            holder=dict(type="str"),
            job_id=dict(type="str"),
            purpose=dict(type="str"),
            lease_duration=dict(type="int", default=DEFAULT_TTL),
            # Not named wait_timeout: DkpModule refuses wait_timeout <= 0, and 0 (fail at once) is meaningful here.
            max_wait=dict(type="int", default=0, aliases=["wait_timeout"]),
            break_lock=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    module.run(lambda: run(module))


if __name__ == "__main__":
    main()
