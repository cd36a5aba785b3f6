# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ModuleUpdatePolicy semantics: channels and modes per DKP release, the desired object, summaries, and
the checks DKP's admission would refuse (a policy in use, the `Lts` channel before 1.76), made before
any write."""

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import json

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import KINDS, ApiError, DkpError
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_modules import check_name
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_releases import window_errors, windows_spec
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_resource import deep_merge, strip_server_fields

CHANNELS = ["Alpha", "Beta", "EarlyAccess", "Stable", "RockSolid", "Lts"]
MODES = ["Auto", "Manual", "AutoPatch"]
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
# `Lts` is in the v1alpha2 CRD from DKP 1.76; 1.75's CRD rejects it.
LTS_CHANNEL = "Lts"
LTS_REFUSAL = ("release_channel Lts needs DKP 1.76 or later: this cluster serves ModuleUpdatePolicy "
               "deckhouse.io/v1alpha1, which DKP 1.75 does and 1.76 no longer does, and the 1.75 CRD has no Lts "
               "channel. Use RockSolid (or Stable) until the cluster runs DKP 1.76")


# One update window. `windows` is declared `raw` and checked here, element by element, so that a string or a
# malformed element gets a message naming the option (Ansible's own list-of-dicts check does not name it).
WINDOW_SPEC = {
    "from": dict(type="str", required=True),
    "to": dict(type="str", required=True),
    "days": dict(type="list", elements="str", choices=DAYS),
}
WINDOWS_SHAPE = 'a list of windows such as [{from: "1:00", to: "4:30", days: [Mon, Tue]}]'


def normalize_windows(value):
    """(windows as a list of dicts with str times, [errors]). JSON text of a list is accepted (a survey answer);
    any other string, or an element that is not a window, is an error that names `windows`."""
    if value is None:
        return None, []
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if not isinstance(parsed, list):
            return None, ["windows must be %s, got the string %r" % (WINDOWS_SHAPE, value)]
        value = parsed
    if not isinstance(value, list):
        return None, ["windows must be %s, got %s %r" % (WINDOWS_SHAPE, type(value).__name__, value)]
    windows, errors = [], []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            errors.append("windows[%d] must be a window such as {from: \"1:00\", to: \"4:30\"}, got %s %r"
                          % (index, type(item).__name__, item))
            continue
        result = ArgumentSpecValidator(WINDOW_SPEC).validate({k: v for k, v in item.items() if v is not None})
        if result.error_messages:
            errors += ["windows[%d]: %s" % (index, m) for m in result.error_messages]
            continue
        windows.append(result.validated_parameters)
    return windows, errors


def validate(params):
    """Messages for every invalid input (name, windows as DKP words them, state=absent with spec options).
    Normalises params["windows"] in place."""
    errors = []
    if check_name(params["name"], "ModuleUpdatePolicy name"):
        errors.append(check_name(params["name"], "ModuleUpdatePolicy name"))
    if params["state"] == "absent":
        conflicting = [k for k in ("release_channel", "mode", "windows") if params.get(k) is not None]
        if conflicting:
            errors.append("state=absent deletes the policy; remove %s from the task" % ", ".join(conflicting))
    windows, window_problems = normalize_windows(params.get("windows"))
    errors += window_problems
    if not window_problems:
        params["windows"] = windows
        errors += window_errors(windows)
    if errors:
        raise DkpError("; ".join(errors))


def desired_object(params, live):
    kind = KINDS["ModuleUpdatePolicy"]
    obj = live or {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": {"name": params["name"]},
                   "spec": {"update": {}}}
    overlay = {"update": {}}
    if params.get("release_channel") is not None:
        overlay["releaseChannel"] = params["release_channel"]
    if params.get("mode") is not None:
        overlay["update"]["mode"] = params["mode"]
    spec = deep_merge(obj.get("spec") or {}, overlay)
    spec.setdefault("update", {})
    if params.get("windows") is not None:
        if params["windows"]:
            spec["update"]["windows"] = windows_spec(params["windows"])
        else:
            spec["update"].pop("windows", None)
    return dict(obj, spec=spec)


def policy_summary(policy):
    """A ModuleUpdatePolicy for results: its spec in option names, and the object without managedFields."""
    if not policy:
        return None
    spec = policy.get("spec") or {}
    update = spec.get("update") or {}
    return {
        "name": policy["metadata"]["name"],
        "release_channel": spec.get("releaseChannel"),
        "mode": update.get("mode"),
        "windows": list(update.get("windows") or []),
        "object": strip_server_fields(policy),
    }


def users_by_policy(client):
    """{policy name: [ModuleConfig names whose spec.updatePolicy names it]} (one list of ModuleConfigs)."""
    items, _rv = client.list("ModuleConfig")
    used = {}
    for config in items:
        policy = (config.get("spec") or {}).get("updatePolicy")
        if policy:
            used.setdefault(policy, []).append(config["metadata"]["name"])
    return {k: sorted(v) for k, v in used.items()}


def configs_using_policy(client, name):
    """Names of the ModuleConfigs whose spec.updatePolicy names the policy (DKP's webhook refuses deleting it)."""
    return users_by_policy(client).get(name, [])


def in_use_refusal(name, configs):
    return ("ModuleUpdatePolicy %s is in use: the '%s' update policy is used by the %s module config%s (DKP refuses "
            "deleting a policy in use). Point %s at another policy first (module_config update_policy), then "
            "delete it" % (name, name, ", ".join("'%s'" % c for c in configs), "s" if len(configs) > 1 else "",
                           "them" if len(configs) > 1 else "it"))


def serves_v1alpha1_policies(client):
    """True when the cluster serves ModuleUpdatePolicy deckhouse.io/v1alpha1 (DKP 1.75 and older)."""
    try:
        resources = client.request("GET", "/apis/deckhouse.io/v1alpha1").get("resources") or []
    except ApiError as e:
        if e.status == 404:
            return False
        raise
    return any(r.get("name") == "moduleupdatepolicies" for r in resources)


def lts_refusal(client, params):
    """LTS_REFUSAL when the task asks for the Lts channel on a DKP that has none, else None."""
    if params.get("release_channel") != LTS_CHANNEL:
        return None
    return LTS_REFUSAL if serves_v1alpha1_policies(client) else None
