#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

DOCUMENTATION = r"""
module: module_config
short_description: Manage a DKP ModuleConfig (enable, configure, disable a module)
version_added: 0.1.0
description:
  - Creates, updates or deletes the C(deckhouse.io/v1alpha1) ModuleConfig of one module.
  - Only the fields the task names are written (a JSON merge patch guarded by the object's
    resourceVersion), so settings written by others survive, also when both write at the same time.
  - C(changed) is decided from spec, labels and annotations before any wait; status never counts.
  - Optionally waits until the Module is Ready (or disabled), failing early when the ModuleConfig reports
    an error.
author: deckhouse.platform contributors (@deckhouse)
options:
  name:
    description: Module name (the ModuleConfig's name), for example C(cert-manager), or C(global).
    type: str
    required: true
  state:
    description: C(present) creates or updates the ModuleConfig; C(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  enabled:
    description: Enable (V(true)) or disable (V(false)) the module. Omitted leaves it as it is.
    type: bool
  version:
    description:
      - Settings schema version (C(spec.version)). DKP requires it whenever O(settings) are set.
    type: int
  settings:
    description:
      - Module settings (C(spec.settings)).
      - With O(settings_mode=merge) they are deep-merged into the live settings and a V(null) value removes
        that key; with O(settings_mode=replace) the settings become exactly this dictionary.
    type: dict
  settings_mode:
    description: How O(settings) combine with the live settings.
    type: str
    choices: [merge, replace]
    default: merge
  source:
    description: ModuleSource the module is taken from (C(spec.source)). Needed when several sources offer it.
    type: str
  update_policy:
    description: Name of a ModuleUpdatePolicy (C(spec.updatePolicy)).
    type: str
  maintenance:
    description:
      - V(NoResourceReconciliation) stops Deckhouse reconciling the module's resources; V(off) removes it.
      - A string. An unquoted YAML C(Off) or C(no) is a boolean, not V(off), and is refused rather than guessed.
    type: raw
    choices: [NoResourceReconciliation, "off"]
  allow_disabling:
    description:
      - Needed when the task disables the module (or deletes its ModuleConfig) and the module is critical
        (C(properties.critical), for example C(deckhouse) and C(registry)) or DKP asks to confirm its disabling
        (C(properties.disableOptions.confirmation)). Without it such a task fails before writing anything.
      - With it, the annotation C(modules.deckhouse.io/allow-disabling=true) that DKP's webhook requires is added.
    type: bool
    default: false
  redact_keys:
    description:
      - More setting names whose values are secret, matched like the built-in ones.
      - "The rule (the same for results, C(--diff), failures and the logged invocation): a key is secret wherever it
        appears in O(settings), nested dictionaries and dictionaries inside lists included, when its name, compared
        case-insensitively with C(_), C(-) and C(.) removed, is C(auth), C(basic), C(credentials) or
        C(dockerconfigjson), or ends with password(s), passwd, passphrase, secret, token(s), license, licensekey,
        apikey(s), privatekey(s), tlskey, keydata, dockercfg, accesskey, secretkey or basicauth. Everything under a
        secret key (a string, a number, each item of a list, each leaf of a dictionary) is replaced by
        C(VALUE_SPECIFIED_IN_NO_LOG_PARAMETER) and registered as a no_log value (with its base64 form) before the
        module prints anything."
    type: list
    elements: str
    default: []
    version_added: 0.2.0
  wait:
    description:
      - Wait until Deckhouse applied the change. With O(enabled=true) (or C(spec.enabled=true)) that is the Module
        Ready (phase C(Ready), C(IsReady=True)); with V(false), the Module disabled; with C(enabled) left to the
        bundle, whatever the bundle decided (Ready when Deckhouse enables the module, else disabled).
      - "A state counts only on evidence that Deckhouse processed this write: after it, the Module's status differs
        from the one read before it (phase, hooks state, or the status or transition time of C(EnabledByModuleConfig),
        C(EnabledByModuleManager) or C(IsReady)). Deckhouse always shows that when C(spec.enabled) flips or the
        module's enabled state changes. It shows nothing for a change of settings (or version, source, policy,
        maintenance) of a module that stays Ready: the task then watches 5 seconds for evidence or errors and,
        seeing none, returns RV(processed=false) and RV(ready=null) with a warning instead of claiming Ready."
      - Fails at once when the ModuleConfig reports C(Error ...) or C(Ignored. unknown module name), or the Module is in
        C(Conflict) or C(Unavailable). C(Error)/C(HookError) and C(DownloadingError) are retried by Deckhouse, so they
        fail only when they persist for O(wait_grace) seconds (or at O(wait_timeout)); the failure names the last
        hook error.
      - An unchanged task returns the current state at once when it already is the target state.
      - Rides through an apiserver restart and a Deckhouse restart (watch re-established, requests retried).
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait before failing with the last observed Module state. Must be greater than 0.
    type: int
    default: 600
  wait_grace:
    description:
      - Seconds a transient Module error (C(Error) with C(HookError)/C(ModuleError), C(DownloadingError)) may persist
        before the wait fails. V(0) fails at the first one.
    type: int
    default: 60
    version_added: 0.2.0
extends_documentation_fragment:
  - deckhouse.platform.connection
  - deckhouse.platform.attributes
  - deckhouse.platform.attributes.CHECK_MODE_WRITE
"""

EXAMPLES = r"""
- name: Enable cert-manager with one setting, keeping every other setting as it is
  deckhouse.platform.module_config:
    name: cert-manager
    enabled: true
    version: 1
    settings:
      disableLetsencrypt: true
    wait: true

- name: Remove one setting (null removes the key)
  deckhouse.platform.module_config:
    name: cert-manager
    settings:
      disableLetsencrypt: null

- name: Disable a module; allow_disabling confirms it where DKP asks to (critical modules, for example)
  deckhouse.platform.module_config:
    name: console
    enabled: false
    allow_disabling: true
    wait: true

- name: Connection options once for the whole collection
  module_defaults:
    group/deckhouse.platform.dkp:
      kubeconfig: "{{ dkp_kubeconfig }}"
  block:
    - name: Take console from a given source with an update policy
      deckhouse.platform.module_config:
        name: console
        enabled: true
        source: deckhouse
        update_policy: manual-console
"""

RETURN = r"""
config:
  description: The ModuleConfig after the task (the dry-run result in check mode); secrets redacted (O(redact_keys)).
  returned: when state is present
  type: dict
module:
  description:
    - Status summary of the Module (phase, enabled, ready, source, hook_error, conditions) when the task waited.
    - Its C(ready) is what the Module shows; see RV(ready) for whether that answers this change.
  returned: when wait is true
  type: dict
processed:
  description:
    - True when the wait saw evidence that Deckhouse processed this change (or nothing was changed); false when
      Deckhouse showed none (a settings-only change of a module that stays Ready, see O(wait)).
  returned: when wait is true
  type: bool
  version_added: 0.2.0
evidence:
  description: What showed that Deckhouse processed the change, for example C(condition EnabledByModuleConfig changed to True).
  returned: when wait is true
  type: str
  version_added: 0.2.0
ready:
  description:
    - Whether the Module is Ready after this change; null when RV(processed) is false (its Ready may predate the change).
  returned: when wait is true
  type: bool
  version_added: 0.2.0
diff:
  description: Spec, labels and annotations before and after (diff mode), secrets redacted.
  returned: in diff mode, when changed
  type: dict
method:
  description: What was sent, one of C(create), C(patch), C(delete) or C(none).
  returned: always
  type: str
"""

import copy

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_base import ResourceModule
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import DkpError
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_modules import (
    ALLOW_DISABLING_ANNOTATION,
    check_name,
    config_wait_target,
    disabling_refusal,
    redact_config,
    request_size_refusal,
    wait_config_applied,
)
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_resource import deep_merge
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_wait import WAIT_ARG_SPEC, WaitTimeout, wait_for


def validate(params):
    """Bad input refused before any request (numeric options > 0 are checked by DkpModule)."""
    errors = [m for m in (check_name(params["name"]),
                          params.get("source") is not None and check_name(params["source"], "ModuleSource name"),
                          params.get("update_policy") is not None
                          and check_name(params["update_policy"], "ModuleUpdatePolicy name"))
              if m]
    if params["state"] == "absent":
        conflicting = [k for k in ("enabled", "version", "settings", "source", "update_policy", "maintenance")
                       if params.get(k) is not None]
        if conflicting:
            errors.append("state=absent deletes the ModuleConfig; remove %s from the task" % ", ".join(conflicting))
    if params.get("version") is not None and params["version"] < 1:
        errors.append("version must be a positive settings schema version (for example 1), got %s" % params["version"])
    if errors:
        raise DkpError("; ".join(errors))


def desired_object(params, live):
    """The whole ModuleConfig the task wants, built on top of the live one."""
    name = params["name"]
    obj = live or {"apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleConfig",
                   "metadata": {"name": name}, "spec": {}}
    overlay = {}
    if params.get("enabled") is not None:
        overlay["enabled"] = params["enabled"]
    if params.get("version") is not None:
        overlay["version"] = params["version"]
    if params.get("source") is not None:
        overlay["source"] = params["source"]
    if params.get("update_policy") is not None:
        overlay["updatePolicy"] = params["update_policy"]
    if params.get("maintenance") is not None:
        overlay["maintenance"] = None if params["maintenance"] == "off" else params["maintenance"]
    spec = deep_merge(obj.get("spec") or {}, overlay)
    if params.get("settings") is not None:
        if params["settings_mode"] == "replace":
            spec["settings"] = deep_merge({}, params["settings"])
        else:
            spec["settings"] = deep_merge(spec.get("settings") or {}, params["settings"])
        if not spec["settings"]:
            spec.pop("settings")
    if spec.get("settings") and not spec.get("version"):
        raise DkpError("ModuleConfig %s would have settings without a version: DKP rejects that. Set `version` to "
                       "the module's settings schema version (for example `version: 1`)." % name)
    if live is None and not spec:
        raise DkpError("ModuleConfig %s does not exist and the task sets nothing in it (`maintenance: off` only removes "
                       "a maintenance mode): set `enabled`, `settings` or another field" % name)
    wanted = dict(obj, spec=spec)
    if params.get("allow_disabling") and params.get("enabled") is False:
        meta = dict(wanted.get("metadata") or {})
        meta["annotations"] = dict(meta.get("annotations") or {}, **{ALLOW_DISABLING_ANNOTATION: "true"})
        wanted["metadata"] = meta
    refusal = request_size_refusal("ModuleConfig", name, wanted)
    if refusal:
        raise DkpError(refusal)
    return wanted


class ModuleConfigModule(ResourceModule):
    kind = "ModuleConfig"
    result_key = "config"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._module_before = None
        self._module_read = False

    def validate(self):
        validate(self.params)

    def module_before(self):
        """The Module as it was before our write (for the disabling rules and the wait's evidence)."""
        if not self._module_read:
            self._module_before = self.client.get("Module", self.params["name"])
            self._module_read = True
        return self._module_before

    def check_disabling(self, live):
        p = self.params
        disabling = p["state"] == "absent" and live is not None or p.get("enabled") is False
        if not disabling or p["allow_disabling"]:
            return
        refusal = disabling_refusal(p["name"], self.module_before(), live, p["state"], p.get("enabled"),
                                    p["allow_disabling"])
        if refusal:
            raise DkpError(refusal)

    def desired(self, live):
        self.check_disabling(live)
        if self.params["wait"]:
            self.module_before()
        return desired_object(self.params, live)

    def redact(self, obj):
        return redact_config(obj, self.params.get("redact_keys"))

    def wait_present(self, res):
        p = self.params
        if not p["wait"]:
            return None
        target = config_wait_target(p.get("enabled"), (res.after or {}).get("spec"))
        out = wait_config_applied(self.client, p["name"], target, self.module_before(), res,
                                  p["wait_timeout"], p["wait_grace"], wait_for, WaitTimeout)
        if out["processed"] is False:
            self.warn("Deckhouse shows no evidence of having processed this change of ModuleConfig %s (DKP reports "
                      "none for a settings change of a module that stays %s); the Module's state may predate it. "
                      "deckhouse.platform.deckhouse_queue_info shows whether a ModuleRun task for it is queued."
                      % (p["name"], (out["module"] or {}).get("phase") or "as it is"))
        return out

    def before_delete(self, live):
        self.check_disabling(live)
        if live is not None and self.params["allow_disabling"]:
            # DKP's webhook refuses deleting the ModuleConfig of a critical module without it
            return {"metadata": {"annotations": {ALLOW_DISABLING_ANNOTATION: "true"}}}
        return None


def main():
    module = ModuleConfigModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            enabled=dict(type="bool"),
            version=dict(type="int"),
            settings=dict(type="dict"),
            settings_mode=dict(type="str", choices=["merge", "replace"], default="merge"),
            source=dict(type="str"),
            update_policy=dict(type="str"),
            # raw: with type str, Ansible maps a YAML boolean Off onto the choice "off" without a word
            maintenance=dict(type="raw", choices=["NoResourceReconciliation", "off"]),
            allow_disabling=dict(type="bool", default=False),
            redact_keys=dict(type="list", elements="str", default=[], no_log=False),
            **copy.deepcopy(WAIT_ARG_SPEC)
        ),
        secret_params=("settings",),
        supports_check_mode=True,
    )
    module.main()


if __name__ == "__main__":
    main()
