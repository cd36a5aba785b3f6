from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import pytest

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import DkpError
from ansible_collections.deckhouse.platform.plugins.module_utils import dkp_pull_overrides as mpo

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


def status(digest, message="Ready", updated="2025-11-21T10:00:00Z"):
    return {"metadata": {"name": "console"}, "status": {"imageDigest": digest, "message": message,
                                                        "updatedAt": updated}}


def test_renew_waits_for_a_new_digest_and_a_new_tag_also_for_a_new_time():
    before = status("sha256:a")
    renew = mpo.override_wait_rules("console", before, "digest", lambda: False)
    assert not renew["predicate"](status("sha256:a", updated="2025-11-21T11:00:00Z"))
    assert renew["predicate"](status("sha256:b"))
    assert not renew["predicate"](status("sha256:b", message="Download error: x"))
    tag = mpo.override_wait_rules("console", before, "digest_or_time", lambda: False)
    assert tag["predicate"](status("sha256:a", updated="2025-11-21T11:00:00Z"))
    assert mpo.override_wait_rules("console", before, None, lambda: False)["predicate"](before)


def test_a_failure_message_from_before_the_write_counts_only_once_dkp_had_time_to_react():
    before = status(None, message="The module disabled")
    settled = [False]
    rules = mpo.override_wait_rules("console", before, "digest_or_time", lambda: settled[0])
    assert rules["failure"](before) is None
    settled[0] = True
    assert "enabled: true" in rules["failure"](before)
    assert "was deleted" in rules["failure"](None)
    assert mpo.override_wait_rules("console", None, None, lambda: True, allow_missing=True)["failure"](None) is None


def test_runs_newest_needs_ready_on_the_same_digest():
    before = status("sha256:a")
    assert mpo.runs_newest(before, status("sha256:a"))
    assert not mpo.runs_newest(before, status("sha256:b"))
    assert not mpo.runs_newest(before, status("sha256:a", message="The module disabled"))
    assert not mpo.runs_newest(before, None)


class Sources:
    def __init__(self, sources):
        self.sources = sources

    def list(self, kind, **_kw):
        assert kind == "ModuleSource"
        return self.sources, "1"


def src(name, *modules):
    return {"metadata": {"name": name}, "status": {"modules": [{"name": m} for m in modules]}}


def test_offering_sources_and_the_refusal_name_the_sources():
    client = Sources([src("example", "hello-world", "console"), src("deckhouse")])
    assert mpo.offering_sources(client, "console")[0] == ["example"]
    names, offered = mpo.offering_sources(client, "nope")
    assert names == []
    msg = mpo.not_offered_refusal("nope", offered)
    assert "No ModuleSource offers module nope" in msg
    assert "example offers console, hello-world" in msg and "deckhouse offers nothing" in msg
    assert "there is no ModuleSource" in mpo.not_offered_refusal("nope", {})


def test_summary_reports_ready_renew_and_error():
    obj = status("sha256:a")
    obj["metadata"]["annotations"] = {"renew": "x"}
    obj["spec"] = {"imageTag": "pr1"}
    s = mpo.override_summary(obj)
    assert s["ready"] and s["renew_pending"] and s["error"] is None and s["image_tag"] == "pr1"
    assert mpo.override_summary(status(None, message="The source not found"))["error"] == "The source not found"
