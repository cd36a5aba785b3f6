from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import pytest

from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import NO_LOG_MARKER, ConflictError
from ansible_collections.deckhouse.platform.plugins.module_utils import dkp_resource as r


def test_deep_merge_keeps_foreign_keys_and_null_removes():
    live = {"a": 1, "nested": {"keep": True, "drop": "x", "change": 1}, "list": [1, 2]}
    out = r.deep_merge(live, {"nested": {"drop": None, "change": 2, "new": {"x": None, "y": 1}}, "list": [3]})
    assert out == {"a": 1, "nested": {"keep": True, "change": 2, "new": {"y": 1}}, "list": [3]}
    assert live["nested"]["drop"] == "x", "the input must not be modified"


def test_deep_merge_null_on_missing_key_is_a_no_op():
    assert r.deep_merge({"a": 1}, {"b": None}) == {"a": 1}


def test_merge_patch_between_names_only_changes():
    before = {"spec": {"enabled": True, "settings": {"a": 1, "b": {"c": 1}}}, "metadata": {"labels": {"x": "1"}}}
    after = {"spec": {"enabled": True, "settings": {"a": 2, "b": {}}}, "metadata": {"labels": {"x": "1", "y": "2"}}}
    assert r.merge_patch_between(before, after) == {
        "spec": {"settings": {"a": 2, "b": {"c": None}}}, "metadata": {"labels": {"y": "2"}}}
    assert r.merge_patch_between(before, before) is None


def test_merge_patch_between_removes_keys():
    assert r.merge_patch_between({"spec": {"a": 1, "b": 2}}, {"spec": {"a": 1}}) == {"spec": {"b": None}}


def test_managed_view_ignores_status_and_server_metadata():
    meta = {"name": "n", "resourceVersion": "5", "generation": 3, "labels": {"a": "b"}}
    obj = {"apiVersion": "v", "kind": "K", "metadata": meta,
           "spec": {"x": 1}, "status": {"phase": "Ready"}}
    assert r.managed_view(obj) == {"metadata": {"labels": {"a": "b"}, "annotations": {}}, "spec": {"x": 1}}
    changed_status = dict(obj, status={"phase": "Error"}, metadata=dict(obj["metadata"], resourceVersion="6"))
    assert r.managed_view(changed_status) == r.managed_view(obj)


def test_redact_paths_and_wildcards():
    obj = {"spec": {"registry": {"dockerCfg": "c2VjcmV0", "repo": "r"}}, "data": {"a": "1", "b": "2"}}
    out = r.redact(obj, ["spec.registry.dockerCfg", "data.*", "missing.path"])
    assert out["spec"]["registry"] == {"dockerCfg": NO_LOG_MARKER, "repo": "r"}
    assert out["data"] == {"a": NO_LOG_MARKER, "b": NO_LOG_MARKER}
    assert obj["spec"]["registry"]["dockerCfg"] == "c2VjcmV0"


@pytest.mark.parametrize("key,secret", [("password", True), ("license", True), ("dockerCfg", True),
                                        ("bindPassword", True), ("api_token", True), ("imagesRepo", False),
                                        ("username", False), ("ca", False), ("mode", False)])
def test_sensitive_keys(key, secret):
    assert r.is_sensitive_key(key) is secret


def test_redact_sensitive_walks_lists_and_keeps_structure():
    obj = {"registry": {"direct": {"license": "LIC", "imagesRepo": "r"}}, "users": [{"password": "p", "name": "n"}],
           "token": ""}
    out = r.redact_sensitive(obj)
    assert out == {"registry": {"direct": {"license": NO_LOG_MARKER, "imagesRepo": "r"}},
                   "users": [{"password": NO_LOG_MARKER, "name": "n"}], "token": ""}


def test_diff_view_redacts():
    before = {"metadata": {}, "spec": {"settings": {"password": "old"}}}
    after = {"metadata": {}, "spec": {"settings": {"password": "new"}}}
    d = r.diff_view(before, after)
    assert "old" not in str(d) and "new" not in str(d)


class FakeClient:
    """Just enough of DkpClient to drive ensure(): a store plus a scripted conflict."""

    def __init__(self, obj, conflicts=0):
        self.obj = obj
        self.conflicts = conflicts
        self.patches = []

    def get(self, kind, name, namespace=None):
        return self.obj

    def merge_patch(self, kind, name, patch, namespace=None, dry_run=False):
        self.patches.append(patch)
        if self.conflicts:
            self.conflicts -= 1
            # another writer changed settings in between
            self.obj = r.deep_merge(self.obj, {"spec": {"settings": {"other": "theirs"}},
                                               "metadata": {"resourceVersion": str(int(self.obj["metadata"]["resourceVersion"]) + 1)}})
            raise ConflictError(409, "Conflict", "the object has been modified")
        patch = dict(patch)
        patch["metadata"] = {k: v for k, v in patch["metadata"].items() if k != "resourceVersion"}
        self.obj = r.deep_merge(self.obj, patch)
        return self.obj


def test_ensure_retries_on_conflict_and_keeps_the_other_writer():
    client = FakeClient({"metadata": {"name": "m", "resourceVersion": "1"}, "spec": {"settings": {"a": 1}}}, conflicts=1)
    res = r.ensure(client, "ModuleConfig", "m", lambda live: r.deep_merge(live, {"spec": {"settings": {"mine": 1}}}))
    assert res.changed
    assert client.obj["spec"]["settings"] == {"a": 1, "other": "theirs", "mine": 1}
    assert [p["metadata"]["resourceVersion"] for p in client.patches] == ["1", "2"]


def test_ensure_no_change_sends_nothing():
    client = FakeClient({"metadata": {"name": "m", "resourceVersion": "1"}, "spec": {"enabled": True}})
    res = r.ensure(client, "ModuleConfig", "m", lambda live: r.deep_merge(live, {"spec": {"enabled": True}}))
    assert not res.changed and client.patches == []


def test_ensure_gives_up_after_bounded_conflicts():
    client = FakeClient({"metadata": {"name": "m", "resourceVersion": "1"}, "spec": {}}, conflicts=99)
    with pytest.raises(r.DkpError, match="kept changing"):
        r.ensure(client, "ModuleConfig", "m", lambda live: r.deep_merge(live, {"spec": {"x": 1}}), attempts=3)
    assert len(client.patches) == 3


@pytest.mark.parametrize("key", ["licenseKey", "apiKeys", "sshPrivateKeys", "passphrase", "auth", "basic",
                                 "basicAuth", "dockerCfg", ".dockerconfigjson", "client_secret", "PASSWORD",
                                 "bootstrapTokens", "tls.key", "client-key-data", "credentials", "privateKey"])
def test_secret_key_rule_covers(key):
    assert r.is_sensitive_key(key)


@pytest.mark.parametrize("key", ["key", "imagePullSecrets", "secretRef", "tokenFile", "secretName", "authn",
                                 "user", "host", "enabled", "scheme", "caBundle"])
def test_secret_key_rule_leaves_alone(key):
    assert not r.is_sensitive_key(key)


def test_redaction_covers_nested_keys_and_list_values():
    settings = {"registry": {"proxy": {"licenseKey": "LK", "imagesRepo": "r"}},
                "apiKeys": ["k1", "k2"], "sshPrivateKeys": [{"name": "a", "key": "PEM"}],
                "auth": {"basic": {"user": "u", "password": "p"}, "enabled": True},
                "list": [{"passphrase": "pp", "mode": "x"}], "token": None}
    out = r.redact(settings)
    m = NO_LOG_MARKER
    assert out == {"registry": {"proxy": {"licenseKey": m, "imagesRepo": "r"}}, "apiKeys": [m, m],
                   "sshPrivateKeys": [{"name": m, "key": m}],
                   "auth": {"basic": {"user": m, "password": m}, "enabled": True},
                   "list": [{"passphrase": m, "mode": "x"}], "token": None}
    assert settings["apiKeys"] == ["k1", "k2"], "input untouched"


def test_user_redact_keys_and_paths():
    obj = {"spec": {"settings": {"myValue": "v", "Other": {"inner": "i"}, "plain": "p"}}}
    out = r.redact(obj, ["myvalue", "spec.settings.Other"])
    assert out["spec"]["settings"] == {"myValue": NO_LOG_MARKER, "Other": {"inner": NO_LOG_MARKER}, "plain": "p"}
    d = r.diff_view({"metadata": {}, "spec": obj["spec"]}, None, extra_keys=["my_value"])
    assert d["before"]["spec"]["settings"]["myValue"] == NO_LOG_MARKER and d["after"] == {}


def test_secret_values_for_no_log():
    import base64
    import json

    auth = base64.b64encode(b"robot:ROBOTPASS").decode()
    cfg = base64.b64encode(json.dumps({"auths": {"r.example": {"auth": auth}}}).encode()).decode()
    obj = {"registry": {"license": "LIC-1", "dockerCfg": cfg}, "users": [{"password": "pw12"}],
           "apiKeys": ["k-one"], "port": 5000, "flag": {"token": True}, "mine": "x-custom"}
    values = r.secret_values(obj, ["mine"])
    for v in ("LIC-1", base64.b64encode(b"LIC-1").decode(), cfg, auth, "robot:ROBOTPASS", "ROBOTPASS", "pw12",
              "k-one", "x-custom"):
        assert v in values, v
    assert "5000" not in values and "True" not in values and len(values) == len(set(values))


class RetriedClient(FakeClient):
    """The first patch timed out after the server applied it; the retry got 409."""

    def merge_patch(self, kind, name, patch, namespace=None, dry_run=False):
        self.patches.append(patch)
        if len(self.patches) == 1:
            clean = dict(patch, metadata={})
            self.obj = r.deep_merge(self.obj, clean)
            self.obj["metadata"]["resourceVersion"] = "2"
            raise ConflictError(409, "Conflict", "modified", after_retry=True)
        raise AssertionError("no second patch expected")


def test_ensure_reports_a_write_that_landed_before_the_conflict():
    client = RetriedClient({"metadata": {"name": "m", "resourceVersion": "1"}, "spec": {"settings": {"a": 1}}})
    res = r.ensure(client, "ModuleConfig", "m", lambda live: r.deep_merge(live, {"spec": {"settings": {"a": 2}}}))
    assert res.changed and res.method == "patch" and res.before["spec"]["settings"] == {"a": 1}
    assert res.after["spec"]["settings"] == {"a": 2}
