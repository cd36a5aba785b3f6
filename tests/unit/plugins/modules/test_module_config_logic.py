from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import pytest

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import DkpError
from ansible_collections.deckhouse.platform.plugins.modules import module_config as mc

BASE = dict(name="cert-manager", state="present", enabled=None, version=None, settings=None, settings_mode="merge",
            source=None, update_policy=None, maintenance=None, allow_disabling=False)


def params(**kw):
    return dict(BASE, **kw)


def live(**spec):
    return {"apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleConfig",
            "metadata": {"name": "cert-manager", "resourceVersion": "1", "annotations": {"keep": "me"}}, "spec": spec}


def test_merge_keeps_foreign_settings_and_null_removes():
    out = mc.desired_object(params(settings={"mine": 1, "old": None}), live(version=1, settings={"theirs": 2, "old": 3}))
    assert out["spec"]["settings"] == {"theirs": 2, "mine": 1}
    assert out["metadata"]["annotations"] == {"keep": "me"}


def test_replace_makes_settings_exact():
    out = mc.desired_object(params(settings={"mine": 1}, settings_mode="replace"), live(version=1, settings={"theirs": 2}))
    assert out["spec"]["settings"] == {"mine": 1}


def test_settings_without_version_fail_before_write():
    with pytest.raises(DkpError, match="without a version"):
        mc.desired_object(params(settings={"a": 1}), None)
    # a live version is enough
    assert mc.desired_object(params(settings={"a": 1}), live(version=2))["spec"]["version"] == 2


def test_maintenance_off_removes_field():
    out = mc.desired_object(params(maintenance="off"), live(maintenance="NoResourceReconciliation"))
    assert "maintenance" not in out["spec"]


def test_allow_disabling_annotation_only_when_disabling():
    out = mc.desired_object(params(enabled=False, allow_disabling=True), live(enabled=True))
    assert out["metadata"]["annotations"]["modules.deckhouse.io/allow-disabling"] == "true"
    out = mc.desired_object(params(enabled=True, allow_disabling=True), live(enabled=False))
    assert "modules.deckhouse.io/allow-disabling" not in out["metadata"]["annotations"]


@pytest.mark.parametrize("bad", [dict(name="Cert_Manager"), dict(name="-x"), dict(name="{'a': 1}"),
                                 dict(source="My Source"), dict(version=0),
                                 dict(state="absent", enabled=True)])
def test_bad_input_is_refused_with_a_reason(bad):
    with pytest.raises(DkpError) as e:
        mc.validate(params(**bad))
    assert len(e.value.msg) > 20
