from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import pytest

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import DkpError
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_resource import managed_view, merge_patch_between
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_sources import build_docker_config
from ansible_collections.deckhouse.platform.plugins.module_utils import dkp_sources
from ansible_collections.deckhouse.platform.plugins.modules import module_source as ms

BASE = dict(name="example", state="present", repo=None, scheme=None, ca=None, docker_config=None,
            registry_username=None, registry_password=None, scan_interval=None)
REPO = "registry.example.com/deckhouse/modules"


def params(**kw):
    return dict(BASE, **kw)


def live(name="example", labels=None, **registry):
    return {"apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleSource",
            "metadata": {"name": name, "resourceVersion": "7", "labels": labels or {}},
            "spec": {"registry": dict({"repo": REPO, "scheme": "HTTPS"}, **registry)}}


def patch_for(p, obj):
    return merge_patch_between(managed_view(obj), managed_view(ms.desired_object(p, obj)))


def test_create_builds_docker_config_for_the_repo_host():
    out = ms.desired_object(params(repo=REPO, registry_username="u", registry_password="p", scan_interval="1m"), None)
    assert out["spec"]["registry"]["dockerCfg"] == build_docker_config("registry.example.com", "u", "p")
    assert out["spec"]["scanInterval"] == "1m"


def test_same_credentials_are_no_change():
    obj = live(dockerCfg=build_docker_config("registry.example.com", "u", "p"))
    assert patch_for(params(repo=REPO, registry_username="u", registry_password="p"), obj) is None


def test_new_password_patches_only_the_docker_config():
    obj = live(dockerCfg=build_docker_config("registry.example.com", "u", "p"))
    patch = patch_for(params(registry_username="u", registry_password="new"), obj)
    assert list(patch["spec"]["registry"]) == ["dockerCfg"]


def test_empty_ca_and_docker_config_remove_them():
    obj = live(ca="PEM", dockerCfg=build_docker_config("registry.example.com", "u", "p"))
    patch = patch_for(params(ca="", docker_config=""), obj)
    assert patch == {"spec": {"registry": {"ca": None, "dockerCfg": None}}}


def test_create_needs_a_repo():
    with pytest.raises(DkpError, match="set repo"):
        ms.desired_object(params(scan_interval="1m"), None)


def test_deckhouse_source_accepts_scan_interval_and_refuses_the_rest_before_writing():
    owned = live(name="deckhouse", labels={"heritage": "deckhouse"})
    assert patch_for(params(name="deckhouse", scan_interval="1m"), owned) == {"spec": {"scanInterval": "1m"}}
    assert patch_for(params(name="deckhouse", repo=REPO), owned) is None  # same value: nothing to refuse
    with pytest.raises(DkpError, match="only scan_interval.*spec.registry"):
        ms.desired_object(params(name="deckhouse", registry_username="u", registry_password="p"), owned)


@pytest.mark.parametrize("bad, fragment", [
    (dict(repo="https://registry.example.com/m"), "without the scheme"),
    (dict(scan_interval="3 minutes"), "scan_interval must be a duration"),
    (dict(name="Example"), "not a valid ModuleSource name"),
    (dict(state="absent", repo=REPO), "remove repo"),
])
def test_bad_input_is_refused_before_writing(bad, fragment):
    with pytest.raises(DkpError, match=fragment):
        ms.validate(params(**bad))


def test_sync_time_parsing():
    assert dkp_sources.parse_time("2025-11-21T10:00:01Z") < dkp_sources.parse_time("2025-11-21T10:00:02.5Z")
    assert dkp_sources.parse_time(None) is None
    obj = {"metadata": {"managedFields": [{"manager": "other", "time": "2025-11-21T11:00:00Z"},
                                          {"manager": "deckhouse.platform", "time": "2025-11-21T10:00:00Z"}]}}
    assert dkp_sources.write_time(obj) == "2025-11-21T10:00:00Z"
