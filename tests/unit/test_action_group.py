"""Every module must be reachable through module_defaults' group/deckhouse.platform.dkp."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pathlib

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_every_module_is_in_the_action_group():
    group = set(yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())["action_groups"]["dkp"])
    modules = {p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__"}
    assert modules, "no modules found"
    assert modules - group == set(), "modules missing from the dkp action group"


def test_every_module_documents_the_action_group_attribute():
    for path in (ROOT / "plugins" / "modules").glob("*.py"):
        assert "deckhouse.platform.attributes\n" in path.read_text(), path.name
