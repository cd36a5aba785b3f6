"""registry_mode: the plan made before any write (pure)."""
from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import pytest

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import DkpError
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_registry import parse_state
from ansible_collections.deckhouse.platform.plugins.modules import registry_mode as rm

BASE = dict(images_repo=None, scheme=None, license=None, username=None, password=None, ca=None, image_check_mode=None,
            ttl=None, check_transition=True, from_current=False, settings=None)


def params(mode, **kw):
    return dict(BASE, mode=mode, **kw)


def mc(registry):
    return {"metadata": {"name": "deckhouse", "resourceVersion": "1"},
            "spec": {"version": 1, "settings": {"bundle": "Default", "registry": registry}}}


NO_STATE = parse_state(None)


def test_unchanged_when_live_matches():
    live = mc({"mode": "Direct", "direct": {"imagesRepo": "a.b/c", "license": "L", "scheme": "HTTPS"}})
    _m, wanted, changed, current, restart = rm.plan(params("Direct", images_repo="a.b/c", license="L"), live, NO_STATE)
    assert not changed and current == "Direct" and not restart["deckhouse"]


def test_changed_license_is_a_change():
    live = mc({"mode": "Direct", "direct": {"imagesRepo": "a.b/c", "license": "L"}})
    _m, _w, changed, _c, restart = rm.plan(params("Direct", images_repo="a.b/c", license="NEW"), live, NO_STATE)
    assert changed and restart["deckhouse"] and not restart["all_components"]


def test_first_switch_from_unmanaged_restarts_everything():
    _m, _w, changed, current, restart = rm.plan(params("Direct", images_repo="a.b/c"), mc({"mode": "Unmanaged"}), NO_STATE)
    assert changed and current == "Unmanaged" and restart["all_components"]


def test_proxy_to_local_refused_before_write():
    with pytest.raises(DkpError, match="mode transition from Proxy to Local not supported"):
        rm.plan(params("Local"), mc({"mode": "Proxy", "proxy": {"imagesRepo": "a.b/c"}}), NO_STATE)
    # the second hop of a two-hop switch can be planned ahead
    _m, _w, changed, _c, _r = rm.plan(params("Local", check_transition=False), mc({"mode": "Proxy", "proxy": {"imagesRepo": "a"}}), NO_STATE)
    assert changed


def test_local_to_nonconfigurable_unmanaged_refused():
    with pytest.raises(DkpError, match="non-configurable Unmanaged"):
        rm.plan(params("Unmanaged"), mc({"mode": "Local"}), NO_STATE)
    rm.plan(params("Unmanaged", images_repo="a.b/c"), mc({"mode": "Local"}), NO_STATE)


def test_invalid_params_fail_before_anything():
    with pytest.raises(DkpError, match="'imagesRepo' is required"):
        rm.plan(params("Proxy", ttl="10m"), mc({}), NO_STATE)


def test_from_current_carries_upstream_and_drops_ttl():
    live = mc({"mode": "Proxy", "proxy": {"imagesRepo": "up.example.com/d8/ee", "license": "L", "ttl": "1h"}})
    mode, wanted, changed, _c, _r = rm.plan(params("Direct", from_current=True), live, NO_STATE)
    assert mode == "Direct" and changed
    assert wanted == {"mode": "Direct", "direct": {"imagesRepo": "up.example.com/d8/ee", "license": "L"}}
    # given parameters win
    _m, wanted, _ch, _c, _r = rm.plan(params("Direct", from_current=True, images_repo="other.example.com/x"), live, NO_STATE)
    assert wanted["direct"]["imagesRepo"] == "other.example.com/x" and wanted["direct"]["license"] == "L"


def test_from_current_without_section_needs_images_repo():
    with pytest.raises(DkpError, match="'imagesRepo' is required"):
        rm.plan(params("Direct", from_current=True), mc({"mode": "Local"}), NO_STATE)


def test_restore_settings_are_validated_and_used_as_is():
    saved = {"mode": "Direct", "direct": {"imagesRepo": "a.b/c", "license": "L"}}
    mode, wanted, changed, _c, _r = rm.plan(dict(params(None), settings=saved), mc({"mode": "Proxy", "proxy": {"imagesRepo": "a"}}), NO_STATE)
    assert mode == "Direct" and wanted == saved and changed
    with pytest.raises(DkpError, match="'direct' section must be specified"):
        rm.plan(dict(params(None), settings={"mode": "Direct"}), mc({}), NO_STATE)


def test_proxy_to_direct_without_credentials_refused_unless_carried_over():
    live = mc({"mode": "Proxy", "proxy": {"imagesRepo": "registry.deckhouse.io/deckhouse/ee", "license": "L"}})
    with pytest.raises(DkpError, match="from_current: true"):
        rm.plan(params("Direct", images_repo="registry.deckhouse.io/deckhouse/ee"), live, NO_STATE)
    mode, wanted, changed, _cur, _rs = rm.plan(
        params("Direct", images_repo="registry.deckhouse.io/deckhouse/ee", from_current=True), live, NO_STATE)
    assert changed and wanted["direct"]["license"] == "L"
    # another registry without credentials is a choice, not an accident
    rm.plan(params("Direct", images_repo="mirror.example.com/deckhouse/ee"), live, NO_STATE)


def test_image_check_mode_becomes_checkMode():
    _m, wanted, _c, _cur, _rs = rm.plan(params("Direct", images_repo="a.b/c", image_check_mode="Relax"),
                                        mc({"mode": "Unmanaged"}), NO_STATE)
    assert wanted["direct"]["checkMode"] == "Relax"
