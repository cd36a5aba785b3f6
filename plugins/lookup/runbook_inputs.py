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
- Options marked ``no_log`` are never read or returned (secrets stay in the role's variables, straight to the
  modules' no_log parameters).
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
  - Options marked C(no_log) are neither read nor returned.
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
            if errors:
                raise AnsibleLookupError("Role deckhouse.platform.%s refuses its inputs before doing anything: %s"
                                         % (role, " | ".join(errors)))
            found.append({short_name(role, name): value for name, value in converted.items()})
        return found
