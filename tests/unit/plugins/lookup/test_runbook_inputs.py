# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The input rules of lookup deckhouse.platform.runbook_inputs, on every role's real argument_specs."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pathlib

import pytest

from ansible_collections.deckhouse.platform.plugins.lookup import runbook_inputs as ri

ROOT = pathlib.Path(__file__).resolve().parents[4]
ROLES = sorted(p.parent.parent.name for p in ROOT.glob("roles/*/meta/argument_specs.yml")
               if p.parent.parent.name != "runbook")
TYPES = {"module_dev_override": {"module_dev_override_rollback": "bool"}}


def typed(role):
    options = ri.load_options(role)
    return options, {name: ri.target_type(spec, TYPES.get(role, {}).get(name)) for name, spec in options.items()}


@pytest.mark.parametrize("text, expected", [
    ("true", True), ("false", False), ("yes", True), ("no", False), ("1", True), ("0", False),
    ("True", True), (" FALSE ", False), (True, True), (False, False), (1, True), (0, False),
])
def test_bool_words(text, expected):
    assert ri.to_bool("x_confirm", text, False) is expected


@pytest.mark.parametrize("text", ["maybe", "on", "off", "y", "t", "2", 2, "false!", [], {}])
def test_bool_refuses_anything_else(text):
    with pytest.raises(ValueError, match="x_confirm: .* is not a boolean"):
        ri.to_bool("x_confirm", text, False)


def test_bool_empty_means_default():
    assert ri.to_bool("x", "", False) is False
    assert ri.to_bool("x", "", True) is True
    assert ri.to_bool("x", None, True) is True
    assert ri.to_bool("x", "", None) is None  # tri-state: not set


@pytest.mark.parametrize("value, expected", [("600", 600), (" 42 ", 42), (300, 300), ("", 900), (None, 900)])
def test_int(value, expected):
    assert ri.to_int("x_timeout", value, 900, True, False) == expected


@pytest.mark.parametrize("value, words", [("abc", "not a whole number"), ("-1", "must be > 0"), ("0", "must be > 0"),
                                          (0, "must be > 0"), ("1.5", "not a whole number"), (True, "not a number")])
def test_timeouts_refused(value, words):
    with pytest.raises(ValueError, match="x_timeout: .*%s" % words):
        ri.to_int("x_timeout", value, 900, True, False)


def test_zero_where_it_means_something():
    assert ri.to_int("x_release_timeout", "0", 600, True, True) == 0
    with pytest.raises(ValueError, match=">= 0"):
        ri.to_int("x_release_timeout", "-5", 600, True, True)
    assert ri.to_int("x_version", "0", None, False, False) == 0
    assert ri.to_int("x_version", "", None, False, False) is None


@pytest.mark.parametrize("value, expected", [
    ("", []), (None, []), ("a, b ,c", ["a", "b", "c"]), ('["a", "b"]', ["a", "b"]), ("[a, b]", ["a", "b"]),
    ('[{"from": "01:00", "to": "02:00"}]', [{"from": "01:00", "to": "02:00"}]), (["x"], ["x"]),
])
def test_list(value, expected):
    assert ri.to_list("x_list", value, []) == expected


@pytest.mark.parametrize("value, expected", [
    ("", {}), ('{"a": {"b": 1}}', {"a": {"b": 1}}), ("a: 1", {"a": 1}), ({"k": "v"}, {"k": "v"}),
])
def test_dict(value, expected):
    assert ri.to_dict("x_settings", value, {}) == expected


def test_dict_refuses_text():
    with pytest.raises(ValueError, match="x_settings: .* is not a mapping"):
        ri.to_dict("x_settings", "[1, 2]", {})


@pytest.mark.parametrize("role", ROLES)
def test_every_role_converts_survey_strings(role):
    """Every bool/int option of every role, given as AWX sends it, comes out typed; defaults fill the rest."""
    options, kinds = typed(role)
    assert any(kinds.values()), "%s has no typed options" % role
    for word, expected in (("true", True), ("false", False), ("yes", True), ("0", False), ("", None)):
        values = {name: word for name, kind in kinds.items() if kind == "bool"}
        values.update({name: "600" for name, kind in kinds.items() if kind == "int"})
        converted, errors = ri.normalise(options, values, TYPES.get(role), allow_zero=())
        assert errors == []
        for name, kind in kinds.items():
            if kind == "bool":
                default = options[name].get("default")
                want = expected if word != "" else default
                assert converted[name] is want, (name, word)
            elif kind == "int":
                assert converted[name] == 600
    # secrets are never read nor returned
    secrets = [name for name, spec in options.items() if spec.get("no_log")]
    converted, errors = ri.normalise(options, {name: "s3cr3t" for name in secrets}, TYPES.get(role))
    assert not set(secrets) & set(converted)


@pytest.mark.parametrize("role", ROLES)
def test_every_role_refuses_bad_timeouts_naming_them(role):
    options, kinds = typed(role)
    timeouts = [name for name, kind in kinds.items() if kind == "int" and name.endswith("_timeout")]
    for bad in ("abc", "-1", "0"):
        converted, errors = ri.normalise(options, {name: bad for name in timeouts}, TYPES.get(role))
        assert len(errors) == len(timeouts), errors
        for name in timeouts:
            assert any(e.startswith(name + ":") for e in errors), (name, errors)


def test_confirm_restart_false_is_false():
    """issue 11: registry_switch_confirm_restart: "false" used to confirm the restart."""
    options = ri.load_options("registry_switch")
    converted, errors = ri.normalise(options, {"registry_switch_confirm_restart": "false",
                                               "registry_switch_rollback_on_failure": "false"})
    assert errors == []
    assert converted["registry_switch_confirm_restart"] is False
    assert converted["registry_switch_rollback_on_failure"] is False


def test_unknown_role_refused():
    with pytest.raises(ValueError):
        ri.load_options("../etc")
    with pytest.raises(ValueError):
        ri.load_options("no_such_role")


def test_object_names_are_checked_before_anything_else():
    assert ri.object_name_error("module_enable_module", "cert-manager") is None
    assert ri.object_name_error("module_enable_source", "") is None
    for bad in ("Bad/Name", "UPPER", "-x", "x-", "a" * 64, "has space", "x_y"):
        message = ri.object_name_error("module_enable_module", bad)
        assert message and "module_enable_module" in message and "not a valid DKP object name" in message, bad


def test_unwritable_report_paths_are_refused_at_the_start(tmp_path):
    assert ri.report_path_error("x_report_path", "") is None
    assert ri.report_path_error("x_report_path", str(tmp_path / "new" / "dir" / "r.json")) is None
    assert ri.report_path_error("x_report_dir", str(tmp_path)) is None
    assert not (tmp_path / "new").exists(), "the check creates nothing"
    message = ri.report_path_error("x_report_path", "/proc/deckhouse-platform-nope/r.json")
    assert message and "x_report_path" in message and "/proc/deckhouse-platform-nope" in message
