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


# -- cross-field rules (ROLE_RULES), checked in the same pass -------------------------------------------------


def check(role, **given):
    """Messages of the broken rules for these variables, as the lookup computes them (typed values first)."""
    options = ri.load_options(role)
    converted, errors = ri.normalise(options, given, TYPES.get(role, {}))
    assert errors == []
    seen = dict(given)
    seen.update(converted)
    return ri.rule_errors(ri.ROLE_RULES[role], options, seen)


@pytest.mark.parametrize("role", sorted(ri.ROLE_RULES))
def test_rules_name_only_options_of_the_role(role):
    options = ri.load_options(role)
    unknown = sorted(ri.rule_names(ri.ROLE_RULES[role]) - set(options))
    assert not unknown, "%s: ROLE_RULES names options the role does not have: %s" % (role, unknown)
    for rule in ri.ROLE_RULES[role]:
        assert rule.get("hint"), (role, rule)


@pytest.mark.parametrize("role", sorted(ri.ROLE_RULES))
def test_blank_survey_answers_break_no_rule(role):
    """AWX sends every optional field of a survey as "": nothing is set, no rule is broken."""
    options = ri.load_options(role)
    blanks = {name: "" for name, spec in options.items() if "default" in (spec or {}) and spec.get("default") != ""
              and not spec.get("choices")}
    blanks.update({name: "" for name, spec in options.items() if (spec or {}).get("default") == ""})
    given = {name: value for name, value in blanks.items() if name in ri.rule_names(ri.ROLE_RULES[role])}
    if role == "registry_migrate":
        given["registry_migrate_images_repo"] = "registry.example.com/deckhouse/ee"
    assert check(role, **given) == []


def test_requires():
    assert check("module_enable", module_enable_source_repo="r.example.com/modules") == [
        "module_enable_source_repo needs module_enable_source: set it to the name of the ModuleSource to create "
        "(or leave it empty)"]
    assert check("module_enable", module_enable_source_repo="r.example.com/modules", module_enable_source="ex") == []
    errors = check("module_enable", module_enable_settings={"retentionDays": 7})
    assert len(errors) == 1 and errors[0].startswith("module_enable_settings needs module_enable_settings_version")
    assert check("module_enable", module_enable_settings='{"retentionDays": 7}', module_enable_settings_version="1") == []
    # an int counts as set when given, 0 too (DKP judges the value)
    assert check("module_enable", module_enable_settings={"a": 1}, module_enable_settings_version=0) == []


def test_requires_names_every_option_given():
    errors = check("module_enable", module_enable_update_policy_mode="Manual",
                   module_enable_update_policy_windows='[{"days": ["Mon"], "from": "8:00", "to": "10:00"}]')
    assert errors == ["module_enable_update_policy_mode, module_enable_update_policy_windows need "
                      "module_enable_update_policy: set it to the name of the ModuleUpdatePolicy to create or update "
                      "(or leave them empty)"]


def test_requires_when():
    errors = check("registry_migrate")
    assert len(errors) == 1
    assert errors[0].startswith("registry_migrate_images_repo is required with registry_migrate_direction=to_module")
    assert "Secret d8-system/deckhouse-registry" in errors[0]
    assert check("registry_migrate", registry_migrate_direction="from_module") == []
    assert check("registry_migrate", registry_migrate_images_repo=" ") != []  # blank is not set


def test_exclusive_with_groups_and_secrets_only_tested_for_being_set():
    secret = "s3cr3t-DO-NOT-LEAK"
    errors = check("module_enable", module_enable_source_password=secret, module_enable_source_docker_config=secret)
    assert errors == [
        "module_enable_source_password needs module_enable_source_username: set the registry user of that password "
        "(or leave it empty)",
        "set module_enable_source_username/module_enable_source_password or module_enable_source_docker_config, not "
        "both: a ModuleSource takes one kind of registry credentials"]
    assert not any(secret in e for e in errors)
    assert check("registry_migrate", registry_migrate_images_repo="r.example.com/ee", registry_migrate_license=secret,
                 registry_migrate_username="u", registry_migrate_password=secret)[0].startswith(
        "set registry_migrate_license or registry_migrate_username/registry_migrate_password, not both")
    assert check("registry_migrate", registry_migrate_images_repo="r.example.com/ee", registry_migrate_username="u",
                 registry_migrate_password=secret) == []


def test_exclusive_bool_counts_only_when_true():
    assert check("module_release_approve", module_release_approve_version="v1.2.3",
                 module_release_approve_all="false") == []
    errors = check("module_release_approve", module_release_approve_version="v1.2.3", module_release_approve_all="yes")
    assert errors and errors[0].startswith("set module_release_approve_version or module_release_approve_all, not both")


def test_only_when():
    assert check("module_enable", module_enable_state="disabled") == []
    errors = check("module_enable", module_enable_state="disabled", module_enable_settings={"a": 1},
                   module_enable_settings_version="2", module_enable_update_policy="p")
    assert errors == ["module_enable_state=disabled only disables the module; remove module_enable_settings, "
                      "module_enable_settings_version (used only with module_enable_state=enabled)"]
    errors = check("module_dev_override", module_dev_override_state="absent", module_dev_override_renew="true")
    assert errors == ["module_dev_override_state=absent removes the override; remove module_dev_override_renew "
                      "(used only with module_dev_override_state=present)"]
    assert check("module_dev_override", module_dev_override_state="absent", module_dev_override_renew="false") == []
    assert check("module_dev_override", module_dev_override_image_tag="pr-1") == []


def test_module_source_switch_registry_options_need_the_repo():
    errors = check("module_source_switch", module_source_switch_scheme="HTTP", module_source_switch_ca="PEM")
    assert len(errors) == 1 and errors[0].startswith(
        "module_source_switch_scheme, module_source_switch_ca need module_source_switch_repo")
    assert check("module_source_switch", module_source_switch_scheme="HTTP", module_source_switch_repo="r/m") == []


def lookup_run(role, variables):
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar

    loader = DataLoader()
    plugin = ri.LookupModule(loader=loader, templar=Templar(loader=loader, variables=variables))
    # the options come from the plugin loader's config in a play; here their defaults
    plugin.set_options = lambda **kwargs: None
    plugin.get_option = {"entry_point": "main", "types": {}, "allow_zero": []}.get
    return plugin.run([role], variables=variables)


def test_the_lookup_refuses_a_bad_combination_with_the_type_errors_in_one_message():
    from ansible.errors import AnsibleLookupError

    with pytest.raises(AnsibleLookupError) as e:
        lookup_run("module_enable", {"module_enable_module": "prometheus", "module_enable_settings": {"a": 1},
                                     "module_enable_wait_timeout": "soon", "module_enable_source_password": "pw"})
    message = str(e.value)
    assert message.startswith("Role deckhouse.platform.module_enable refuses its inputs before doing anything")
    for part in ("module_enable_wait_timeout: 'soon' is not a whole number",
                 "module_enable_settings needs module_enable_settings_version",
                 "module_enable_source_password needs module_enable_source_username"):
        assert part in message, message
    assert "pw" not in message.replace("password", "")
    out = lookup_run("module_enable", {"module_enable_module": "prometheus", "module_enable_settings": {"a": 1},
                                       "module_enable_settings_version": "1", "module_enable_source_password": ""})
    assert out[0]["settings_version"] == 1 and "source_password" not in out[0]
