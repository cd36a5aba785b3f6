# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Lookup deckhouse.platform.runbook_inputs: a runbook role's inputs, typed once, in the controller.

AWX passes survey answers as strings ("false", "600", ""), and a role's argument_specs check does not change what
the role sees: `not "false"` is false, `when: "false"` fails on ansible-core >= 2.19. The first task of every
runbook role sets a fact from this lookup; it reads the role's meta/argument_specs.yml and returns each bool, int, list and
dict option converted, so the role's tasks use only the converted values. It runs in the controller: no module process.

Rules (the role READMEs repeat them):
- bool: a real bool, or one of "true"/"false"/"yes"/"no"/"1"/"0" (any case); "" or null means the option's
  default (false when it has none, or null for a tri-state option without a default). Anything else is refused:
  a typo must not decide a restart. Options documented as ``type: raw`` with a bool default are booleans too
  (raw lets "" through the argument_specs check).
- int: a number or a decimal string; "" means the default. Options named ``*_timeout`` must be > 0 (those in
  ``allow_zero`` may be 0); negative values are always refused.
- list: a list, a YAML/JSON list in a string, or comma-separated words; "" means []. dict: a dict or a YAML/JSON
  object in a string; "" means {}.
- Options marked ``no_log`` are never returned (secrets stay in the role's variables, straight to the modules'
  no_log parameters); the cross-field rules only test whether they are set.
- Cross-field rules (ROLE_RULES: "X needs Y", "not both A and B", "only when enabling") are checked in the same pass,
  on the converted values, so a bad combination is refused by the role's first task, before the run lock and any
  read or write, with one message per broken rule that says how to fix it.
"""

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

DOCUMENTATION = r"""
name: runbook_inputs
short_description: A runbook role's inputs, normalised once (survey strings to bool, int, list, dict)
version_added: 0.2.0
description:
  - Used by the collection's runbook roles as their first task; runs on the controller (no module process).
  - Reads C(meta/argument_specs.yml) of the role named in the term and returns one dictionary with each bool, int,
    list and dict option of the entry point converted (keys without the role prefix), or fails naming every bad
    variable and how to fix it.
  - "bool: a real bool or V(true)/V(false)/V(yes)/V(no)/V(1)/V(0) (any case); an empty string or null means the
    default. int: a number or a decimal string; C(*_timeout) options must be > 0. list: a list, a YAML/JSON list
    in a string, or comma-separated values. dict: a dict or a YAML/JSON object in a string. Empty means the default."
  - Options marked C(no_log) are never returned; the cross-field rules below only test whether they are set.
  - "Cross-field rules of the role (declared per role in the plugin: C(requires) - an option needs another one,
    C(exclusive) - not both, C(only_when) - options that apply only with a given value of another one) are checked in
    the same pass; a broken rule fails the lookup with a message that says what to set or remove. An option counts
    as set when it is not empty (a bool when true, an int when given)."
author: deckhouse.platform contributors (@deckhouse)
options:
  _terms:
    description: Name of one of the collection's roles (for example C(registry_switch)).
    required: true
    type: list
    elements: str
  entry_point:
    description: Entry point of the role's argument_specs.
    type: str
    default: main
  types:
    description: Types for options declared C(raw) whose default does not tell the type (a tri-state bool).
    type: dict
    default: {}
  allow_zero:
    description: C(*_timeout) options for which V(0) is meaningful.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Normalise the inputs of the role (first task of the role)
  ansible.builtin.set_fact:
    registry_switch__in: "{{ query('deckhouse.platform.runbook_inputs', 'registry_switch') | first }}"

- name: Use the converted value only
  ansible.builtin.debug:
    msg: "restart confirmed: {{ registry_switch__in.confirm_restart }}"
"""

RETURN = r"""
_raw:
  description: One dictionary per term, option name without the role prefix -> converted value.
  type: list
  elements: dict
"""

import json
import os
import re
import tempfile

from ansible.errors import AnsibleLookupError
from ansible.module_utils.common.validation import check_type_dict, check_type_int
from ansible.plugins.lookup import LookupBase

try:
    import yaml
except ImportError:  # pragma: no cover - ansible-core requires PyYAML
    yaml = None

COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
TRUE_WORDS = ("true", "yes", "1")
FALSE_WORDS = ("false", "no", "0")
CONVERTED = ("bool", "int", "list", "dict")


def load_options(role, entry_point="main", root=COLLECTION_ROOT):
    """The options of `entry_point` in roles/<role>/meta/argument_specs.yml of this collection."""
    if not ROLE_NAME.match(role or ""):
        raise ValueError("role must be the name of one of the collection's roles, got %r" % (role,))
    for ext in ("yml", "yaml"):
        path = os.path.join(root, "roles", role, "meta", "argument_specs.%s" % ext)
        if os.path.isfile(path):
            with open(path) as f:
                data = yaml.safe_load(f) or {}
            try:
                return data["argument_specs"][entry_point].get("options") or {}
            except (KeyError, AttributeError):
                raise ValueError("%s has no entry point %r" % (path, entry_point))
    raise ValueError("role %s of deckhouse.platform has no meta/argument_specs.yml" % role)


def target_type(spec, override=None):
    """The type an option is converted to (None: left alone)."""
    if override:
        return override
    kind = spec.get("type", "str")
    if kind == "raw":
        default = spec.get("default")
        if isinstance(default, bool):
            return "bool"
        if isinstance(default, list):
            return "list"
        if isinstance(default, dict):
            return "dict"
        return None
    return kind if kind in CONVERTED else None


def _blank(value):
    return value is None or (isinstance(value, str) and not value.strip())


def _parse_structured(text):
    """A YAML/JSON value written in a string (AWX textarea), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def to_bool(name, value, default):
    if isinstance(value, bool):
        return value
    if _blank(value):
        return default if isinstance(default, bool) or default is None else False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise ValueError("%s: %r is not a boolean. Answer true or false (also yes/no, 1/0); an empty answer means %s."
                     % (name, value, "false" if default is None or default is False else str(default).lower()))


def to_int(name, value, default, positive, allow_zero):
    if _blank(value):
        if default is None:
            return None
        value = default
    if isinstance(value, bool):
        raise ValueError("%s: %r is not a number of seconds; give a whole number such as 600." % (name, value))
    try:
        number = check_type_int(value.strip() if isinstance(value, str) else value)
    except TypeError:
        raise ValueError("%s: %r is not a whole number; give digits only, for example %s."
                         % (name, value, default if isinstance(default, int) else 600))
    if number < 0 or (positive and number == 0 and not allow_zero):
        least = 0 if allow_zero else 1
        raise ValueError("%s: %s is not allowed; it must be %s (a number of seconds, for example %s)."
                         % (name, number, ">= 0" if least == 0 else "> 0",
                            default if isinstance(default, int) and default > 0 else 600))
    return number


def to_list(name, value, default):
    if _blank(value):
        return list(default) if isinstance(default, list) else []
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            parsed = _parse_structured(text)
            if isinstance(parsed, list):
                return parsed
            raise ValueError("%s: %r looks like a list but does not parse as YAML/JSON." % (name, value))
        return [part.strip() for part in text.split(",") if part.strip()]
    raise ValueError("%s: %r is not a list; give a YAML/JSON list or comma-separated values." % (name, value))


def to_dict(name, value, default):
    if _blank(value):
        return dict(default) if isinstance(default, dict) else {}
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        parsed = _parse_structured(value.strip())
        if isinstance(parsed, dict):
            return parsed
        try:
            return check_type_dict(value)
        except TypeError:
            pass
    raise ValueError("%s: %r is not a mapping; give a YAML/JSON object such as {\"key\": \"value\"}." % (name, value))


def normalise(options, values, types=None, allow_zero=()):
    """Convert `values` (name -> what the role got) by `options` (argument_specs options).

    Returns (converted, errors): converted maps each converted option, without the role prefix, to its value;
    errors lists one message per bad input. Options not given take their default.
    """
    types = types or {}
    converted, errors = {}, []
    for name in sorted(options):
        spec = options[name] or {}
        kind = target_type(spec, types.get(name))
        if kind is None or spec.get("no_log"):
            continue
        default = spec.get("default")
        value = values.get(name, default)
        try:
            if kind == "bool":
                result = to_bool(name, value, default)
            elif kind == "int":
                result = to_int(name, value, default, name.endswith("_timeout"), name in allow_zero)
            elif kind == "list":
                result = to_list(name, value, default)
            else:
                result = to_dict(name, value, default)
            choices = spec.get("choices")
            if choices and kind != "list" and result is not None and result not in choices:
                raise ValueError("%s: %r is not one of %s." % (name, result, ", ".join(map(str, choices))))
        except ValueError as e:
            errors.append(str(e))
            continue
        converted[name] = result
    return converted, errors


def report_path_error(name, value):
    """A report file the run could not write fails at the start (also in check mode), not after the work."""
    if not value:
        return None
    path = os.path.abspath(os.path.expanduser(str(value)))
    directory = path if name.endswith("_dir") else os.path.dirname(path)
    existing = directory
    while existing and not os.path.isdir(existing):
        existing = os.path.dirname(existing) if os.path.dirname(existing) != existing else ""
    if existing and os.access(existing, os.W_OK | os.X_OK):
        try:  # access() says yes to root even in /proc: try it (a probe directory, removed at once)
            os.rmdir(tempfile.mkdtemp(prefix=".dkp-report-probe-", dir=existing))
            return None
        except OSError:
            pass
    return ("%s: the report cannot be written to %s (%s is not a writable directory on the controller); give a "
            "writable path, or \"\" for no report file." % (name, value, existing or directory))


# Inputs that name a DKP object (a Module, a ModuleSource, a ModuleUpdatePolicy): a name that cannot exist is a
# typo to report now, not a 404 that reads like "is this a Deckhouse cluster?" after the run lock was taken.
OBJECT_NAME_SUFFIXES = ("_module", "_source", "_update_policy")
OBJECT_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def object_name_error(name, value):
    if value in (None, "") or (isinstance(value, str) and OBJECT_NAME_RE.match(value) and len(value) <= 63):
        return None
    return ("%s: %r is not a valid DKP object name: use at most 63 lowercase letters, digits and '-', starting "
            "and ending with a letter or digit (for example 'cert-manager')." % (name, value))


# Cross-field rules of the roles, by full variable name; checked after the types, in the same pass. Kinds:
#   requires + if_set: when any option of `if_set` is set, `requires` must be set too;
#   requires + when:   when every option of `when` has its value, `requires` must be set;
#   exclusive:         at most one of these groups may be set (a group: a name, or a list of names);
#   only_when + names: the options of `names` may be set only when every option of `only_when` has its value.
# `hint` ends the message: what to give, or why. A rule that names an option missing from the role's argument_specs
# is a bug of the table (the unit tests check every name).
ROLE_RULES = {
    "module_enable": (
        {"requires": "module_enable_source", "if_set": ["module_enable_source_repo"],
         "hint": "set it to the name of the ModuleSource to create"},
        {"requires": "module_enable_source_username", "if_set": ["module_enable_source_password"],
         "hint": "set the registry user of that password"},
        {"exclusive": [["module_enable_source_username", "module_enable_source_password"],
                       "module_enable_source_docker_config"],
         "hint": "a ModuleSource takes one kind of registry credentials"},
        {"requires": "module_enable_update_policy",
         "if_set": ["module_enable_update_policy_mode", "module_enable_update_policy_release_channel",
                    "module_enable_update_policy_windows"],
         "hint": "set it to the name of the ModuleUpdatePolicy to create or update"},
        {"requires": "module_enable_settings_version", "if_set": ["module_enable_settings"],
         "hint": "DKP rejects settings without spec.version; set the version of the module's settings schema "
                 "(for example 1)"},
        {"only_when": {"module_enable_state": "enabled"},
         "names": ["module_enable_source_repo", "module_enable_update_policy_mode",
                   "module_enable_update_policy_release_channel", "module_enable_update_policy_windows",
                   "module_enable_settings", "module_enable_settings_version"],
         "hint": "module_enable_state=disabled only disables the module"},
    ),
    "registry_migrate": (
        {"requires": "registry_migrate_images_repo", "when": {"registry_migrate_direction": "to_module"},
         "hint": "to migrate to the registry module, set it to the repository of the platform images the cluster "
                 "uses now (Secret d8-system/deckhouse-registry, key imagesRegistry)"},
        {"requires": "registry_migrate_username", "if_set": ["registry_migrate_password"],
         "hint": "set the registry user of that password"},
        {"exclusive": ["registry_migrate_license", ["registry_migrate_username", "registry_migrate_password"]],
         "hint": "the license key is the registry login of the Deckhouse registry; a user and password are for "
                 "any other registry"},
    ),
    "module_source_switch": (
        {"requires": "module_source_switch_username", "if_set": ["module_source_switch_password"],
         "hint": "set the registry user of that password"},
        {"exclusive": [["module_source_switch_username", "module_source_switch_password"],
                       "module_source_switch_docker_config"],
         "hint": "a ModuleSource takes one kind of registry credentials"},
        {"requires": "module_source_switch_repo",
         "if_set": ["module_source_switch_scheme", "module_source_switch_ca", "module_source_switch_docker_config",
                    "module_source_switch_username", "module_source_switch_scan_interval"],
         "hint": "the registry options describe the source to create or update: set module_source_switch_repo "
                 "too, or leave them empty to switch to the existing source as it is"},
    ),
    "module_release_approve": (
        {"exclusive": ["module_release_approve_version", "module_release_approve_all"],
         "hint": "a version approves that release, module_release_approve_all every Pending one"},
    ),
    "module_dev_override": (
        {"only_when": {"module_dev_override_state": "present"},
         "names": ["module_dev_override_image_tag", "module_dev_override_scan_interval", "module_dev_override_renew"],
         "hint": "module_dev_override_state=absent removes the override"},
    ),
}


def is_set(value):
    """An option counts as set when it is not empty: a bool when true, an int when given (0 too)."""
    if value is None or value is False:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, (list, tuple, dict)):
        return len(value) > 0
    return True


def _group_label(group):
    return "/".join(group) if isinstance(group, (list, tuple)) else group


def _group_set(group, present):
    return any(present(n) for n in (group if isinstance(group, (list, tuple)) else [group]))


def _matches(conditions, value):
    return all(value(name) == wanted for name, wanted in sorted(conditions.items()))


def rule_errors(rules, options, values):
    """The messages of the broken `rules` (see ROLE_RULES); `values` maps a full option name to what the role
    sees: the converted value for a typed option, else the templated variable. Options not given take their
    argument_specs default. Values are never put into the messages (some are secrets)."""

    def value(name):
        if name in values:
            found = values[name]
            if not (isinstance(found, str) and not found.strip()) and found is not None:
                return found
        return (options.get(name) or {}).get("default")

    def present(name):
        return is_set(value(name))

    errors = []
    for rule in rules:
        hint = rule.get("hint")
        if "exclusive" in rule:
            chosen = [g for g in rule["exclusive"] if _group_set(g, present)]
            if len(chosen) > 1:
                labels = [_group_label(g) for g in chosen]
                both = "%s or %s, not both" % tuple(labels) if len(labels) == 2 else \
                    "only one of %s" % ", ".join(labels)
                errors.append("set %s%s" % (both, ": %s" % hint if hint else ""))
        elif "only_when" in rule:
            if _matches(rule["only_when"], value):
                continue
            extra = [n for n in rule["names"] if present(n)]
            if extra:
                errors.append("%s; remove %s (used only with %s)" % (
                    hint, ", ".join(extra), ", ".join("%s=%s" % kv for kv in sorted(rule["only_when"].items()))))
        elif "requires" in rule:
            needed = rule["requires"]
            if present(needed):
                continue
            if "when" in rule:
                if _matches(rule["when"], value):
                    errors.append("%s is required with %s: %s" % (
                        needed, ", ".join("%s=%s" % kv for kv in sorted(rule["when"].items())), hint))
                continue
            given = [n for n in rule["if_set"] if present(n)]
            if given:
                errors.append("%s %s %s: %s (or leave %s empty)" % (
                    ", ".join(given), "needs" if len(given) == 1 else "need", needed, hint,
                    "it" if len(given) == 1 else "them"))
        else:  # pragma: no cover - a malformed table entry
            raise ValueError("runbook_inputs: unknown rule %r" % (rule,))
    return errors


def rule_names(rules):
    """Every option a role's rules look at."""
    names = set()
    for rule in rules:
        for group in rule.get("exclusive", ()):
            names.update(group if isinstance(group, (list, tuple)) else [group])
        names.update(rule.get("if_set", ()))
        names.update(rule.get("names", ()))
        names.update(rule.get("only_when", {}))
        names.update(rule.get("when", {}))
        if "requires" in rule:
            names.add(rule["requires"])
    return names


def short_name(role, name):
    prefix = role + "_"
    return name[len(prefix):] if name.startswith(prefix) else name


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        variables = variables or {}
        found = []
        for role in terms:
            try:
                options = load_options(role, self.get_option("entry_point") or "main")
            except ValueError as e:
                raise AnsibleLookupError(str(e))
            values = {}
            for name, spec in options.items():
                if name in variables and target_type(spec or {}, (self.get_option("types") or {}).get(name)) \
                        and not (spec or {}).get("no_log"):
                    values[name] = self._templar.template(variables[name])
            converted, errors = normalise(options, values, self.get_option("types") or {},
                                          self.get_option("allow_zero") or ())
            for name in sorted(options):
                if name.endswith(OBJECT_NAME_SUFFIXES) and name in variables and \
                        (options[name] or {}).get("type", "str") == "str":
                    message = object_name_error(name, self._templar.template(variables[name]))
                    if message:
                        errors.append(message)
                if name.endswith(("_report_path", "_report_dir")) and name in variables:
                    message = report_path_error(name, self._templar.template(variables[name]))
                    if message:
                        errors.append(message)
            rules = ROLE_RULES.get(role, ())
            if rules:
                # the rules see what the tasks would: converted values, else the templated variable (a no_log
                # option is only tested for being set, its value goes nowhere)
                seen = {name: self._templar.template(variables[name])
                        for name in rule_names(rules) if name in variables and name not in converted}
                seen.update(converted)
                errors.extend(rule_errors(rules, options, seen))
            if errors:
                raise AnsibleLookupError("Role deckhouse.platform.%s refuses its inputs before doing anything: %s"
                                         % (role, " | ".join(errors)))
            found.append({short_name(role, name): value for name, value in converted.items()})
        return found
