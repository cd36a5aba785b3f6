# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""DKP module semantics: summaries of Module and ModuleConfig objects and their readiness rules."""

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import re

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_resource import (
    condition,
    redact_sensitive,
    strip_server_fields,
)

# Module names are kebab-case DNS labels (ModuleConfig name == module name).
MODULE_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
ALLOW_DISABLING_ANNOTATION = "modules.deckhouse.io/allow-disabling"
UNKNOWN_MODULE_MESSAGE = "Ignored: unknown module name"
# Phases that will not become Ready without an operator's action.
MODULE_FAILED_PHASES = ("Error", "DownloadingError", "Conflict", "Unavailable")


def check_name(value, what="module name"):
    """A clear message when `value` cannot be a module (or other DNS-label) name, else None."""
    if not isinstance(value, str) or not MODULE_NAME_RE.match(value):
        return ("%r is not a valid %s: use lowercase letters, digits and '-', starting and ending with a "
                "letter or digit (for example 'cert-manager')" % (value, what))
    return None


def is_true(cond):
    return (cond or {}).get("status") == "True"


def module_summary(module):
    """The facts an operator reads from `kubectl get module NAME` (and a little more)."""
    props = module.get("properties") or {}
    status = module.get("status") or {}
    return {
        "name": module["metadata"]["name"],
        "phase": status.get("phase"),
        "enabled": is_true(condition(module, "EnabledByModuleManager")),
        "enabled_by_config": is_true(condition(module, "EnabledByModuleConfig")),
        "ready": status.get("phase") == "Ready" and is_true(condition(module, "IsReady")),
        "overridden": is_true(condition(module, "IsOverridden")),
        "source": props.get("source"),
        "version": props.get("version"),
        "weight": props.get("weight"),
        "stage": props.get("stage"),
        "release_channel": props.get("releaseChannel"),
        "update_policy": props.get("updatePolicy"),
        "available_sources": props.get("availableSources") or [],
        "disable_confirmation": bool((props.get("disableOptions") or {}).get("confirmation")),
        "disable_message": (props.get("disableOptions") or {}).get("message"),
        "conditions": status.get("conditions") or [],
        "message": condition(module, "IsReady").get("message") or condition(module, "EnabledByModuleManager").get("message"),
    }


def describe_module(module):
    """One line for messages: phase and the conditions that are not True."""
    if module is None:
        return "Module does not exist"
    s = module_summary(module)
    bad = ["%s=%s%s" % (c.get("type"), c.get("status"), " (%s)" % c["message"] if c.get("message") else "")
           for c in s["conditions"] if c.get("status") != "True"]
    return "phase %s%s" % (s["phase"] or "<none>", "; " + ", ".join(bad) if bad else "")


def config_summary(config):
    """A ModuleConfig for results: no managedFields, secret-looking settings redacted."""
    return redact_sensitive(strip_server_fields(config))


def config_error(config):
    """The ModuleConfig's own complaint (status.message `Error: ...` or the unknown-module notice)."""
    message = ((config or {}).get("status") or {}).get("message") or ""
    if message.startswith("Error") or message == UNKNOWN_MODULE_MESSAGE:
        return message
    return None
