from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import pytest

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import DkpError
from ansible_collections.deckhouse.platform.plugins.modules import module_update_policy as mup

BASE = dict(name="manual", state="present", release_channel=None, mode=None, windows=None)


def params(**kw):
    return dict(BASE, **kw)


def live(**update):
    return {"apiVersion": "deckhouse.io/v1alpha2", "kind": "ModuleUpdatePolicy",
            "metadata": {"name": "manual", "resourceVersion": "3"},
            "spec": {"releaseChannel": "Stable", "update": dict({"mode": "Auto"}, **update)}}


def test_create_names_only_the_given_fields_and_always_has_update():
    out = mup.desired_object(params(mode="Manual"), None)
    assert out["spec"] == {"update": {"mode": "Manual"}}
    assert out["apiVersion"] == "deckhouse.io/v1alpha2"


def test_update_keeps_what_the_task_does_not_name():
    out = mup.desired_object(params(release_channel="EarlyAccess"), live(windows=[{"from": "1:00", "to": "2:00"}]))
    assert out["spec"] == {"releaseChannel": "EarlyAccess",
                           "update": {"mode": "Auto", "windows": [{"from": "1:00", "to": "2:00"}]}}


def test_windows_replace_and_empty_list_removes():
    out = mup.desired_object(params(windows=[{"from": "8:00", "to": "9:00", "days": None}]),
                             live(windows=[{"from": "1:00", "to": "2:00", "days": ["Mon"]}]))
    assert out["spec"]["update"]["windows"] == [{"from": "8:00", "to": "9:00"}]
    assert "windows" not in mup.desired_object(params(windows=[]), live(windows=[{"from": "1:00", "to": "2:00"}]))["spec"]["update"]


@pytest.mark.parametrize("bad, fragment", [
    (dict(windows=[{"from": "10:00", "to": "9:00", "days": None}]), "Invalid update windows. Start time"),
    (dict(windows=[{"from": "25:00", "to": "26:00", "days": None}]), "should match"),
    (dict(name="Manual Policy"), "not a valid ModuleUpdatePolicy name"),
    (dict(state="absent", mode="Manual"), "remove mode"),
])
def test_bad_input_is_refused_before_writing(bad, fragment):
    with pytest.raises(DkpError, match=fragment):
        mup.validate(params(**bad))
