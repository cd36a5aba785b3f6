from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import pytest

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import DkpError
from ansible_collections.deckhouse.platform.plugins.modules import module_pull_override as mpo

BASE = dict(name="console", state="present", image_tag=None, scan_interval=None, rollback=None, renew=False)


def params(**kw):
    return dict(BASE, **kw)


def live():
    return {"apiVersion": "deckhouse.io/v1alpha2", "kind": "ModulePullOverride",
            "metadata": {"name": "console", "resourceVersion": "2", "annotations": {"other": "x"}},
            "spec": {"imageTag": "pr1", "scanInterval": "15s", "rollback": False}}


def test_create_needs_an_image_tag():
    with pytest.raises(DkpError, match="set image_tag"):
        mpo.desired_object(params(), None, None)
    out = mpo.desired_object(params(image_tag="pr1", rollback=True), None, None)
    assert out["spec"] == {"imageTag": "pr1", "rollback": True} and out["apiVersion"] == "deckhouse.io/v1alpha2"


def test_renew_sets_the_renew_annotation_to_a_new_value_and_keeps_others():
    out = mpo.desired_object(params(renew=True), live(), "2025-11-21T10:00:00.000001Z")
    assert out["metadata"]["annotations"] == {"other": "x", "renew": "2025-11-21T10:00:00.000001Z"}
    assert out["spec"] == live()["spec"]


@pytest.mark.parametrize("bad, fragment", [
    (dict(image_tag=".bad"), "not a valid image tag"),
    (dict(image_tag="a" * 129), "not a valid image tag"),
    (dict(scan_interval="15"), "scan_interval must be a duration"),
    (dict(state="absent", image_tag="pr1"), "remove image_tag"),
    (dict(state="absent", renew=True), "remove renew"),
    (dict(name="Console"), "not a valid module name"),
])
def test_bad_input_is_refused_before_writing(bad, fragment):
    with pytest.raises(DkpError, match=fragment):
        mpo.validate(params(**bad))


def test_absent_with_rollback_is_allowed():
    mpo.validate(params(state="absent", rollback=True))


@pytest.mark.parametrize("message, fails", [("Ready", False), ("", False), ("The module disabled", True),
                                            ("Download error: manifest unknown", True), ("The source not found", True)])
def test_failure_messages(message, fails):
    assert (mpo.failure_message(message) is not None) is fails
    if message == "The module disabled":
        assert "enabled: true" in mpo.failure_message(message)
