# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""DkpModule / ResourceModule as Ansible runs them: arguments in, one JSON result out."""

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import base64
import json

import pytest

from ansible.module_utils import basic

from ansible_collections.deckhouse.platform.plugins.module_utils import dkp_base as b
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import (
    ApiError,
    DkpError,
    WebhookUnavailableError,
)
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_wait import WAIT_ARG_SPEC, WaitTimeout

LICENSE = "LICENSE-abc-123-secret"
PASSWORD = "hunter2-pass"
SSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----xyz"
SPEC = dict(name=dict(type="str", required=True), settings=dict(type="dict"),
            redact_keys=dict(type="list", elements="str", no_log=False))


def _raise(error):
    def work(module):
        raise error
    return work


@pytest.fixture
def args(monkeypatch):
    logged = []
    monkeypatch.setattr(basic.AnsibleModule, "log", lambda self, msg, log_args=None: logged.append((msg, log_args)))

    def set_args(**kw):
        kw.setdefault("host", "https://127.0.0.1:1")
        kw.setdefault("api_key", "t0ken-value")
        payload = json.dumps({"ANSIBLE_MODULE_ARGS": dict(kw, _ansible_remote_tmp="/tmp", _ansible_keep_remote_files=False)})
        monkeypatch.setattr(basic, "_ANSIBLE_ARGS", payload.encode())
        if hasattr(basic, "_ANSIBLE_PROFILE"):
            monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy")
        return logged
    return set_args


def run(capsys, build, work):
    with pytest.raises(SystemExit) as e:
        module = build()
        module.run(lambda: work(module))
    out = capsys.readouterr().out
    return e.value.code, json.loads(out[out.index("{"):]), out


SETTINGS = {"registry": {"proxy": {"license": LICENSE, "imagesRepo": "r.example/x"}},
            "users": [{"name": "admin", "password": PASSWORD}],
            "sshPrivateKeys": [SSH_KEY], "auth": {"basic": {"user": "u", "pass": "basic-secret-1"}},
            "custom": {"myValue": "custom-secret-9"}}


@pytest.mark.parametrize("fail", [False, True])
@pytest.mark.parametrize("check_mode", [False, True])
def test_secrets_in_settings_never_reach_the_output(args, capsys, fail, check_mode):
    logged = args(name="m", settings=SETTINGS, redact_keys=["myValue"], _ansible_check_mode=check_mode)

    def work(module):
        if fail:
            raise DkpError("admission refused settings %s" % json.dumps(module.params["settings"]))
        return {"changed": True, "echo": module.params["settings"]}
    rc, result, raw = run(capsys, lambda: b.DkpModule(SPEC, supports_check_mode=True), work)
    assert rc == (1 if fail else 0)
    for secret in (LICENSE, PASSWORD, SSH_KEY, "basic-secret-1", "custom-secret-9", "t0ken-value",
                   base64.b64encode(LICENSE.encode()).decode()):
        assert secret not in raw, secret
        assert all(secret not in str(entry) for entry in logged), "syslog/journal invocation log"
    # ansible-core 2.21 returns `invocation` only when the controller asks for it (_ansible_inject_invocation).
    if "invocation" in result:
        assert result["invocation"]["module_args"]["settings"]["registry"]["proxy"]["imagesRepo"] == "r.example/x"


def test_no_log_registers_late_secrets(args, capsys):
    args(name="m")

    def work(module):
        module.no_log("generated-password-77")
        module.warn("the password is generated-password-77")
        return {"changed": False, "note": "pw=generated-password-77"}
    rc, result, raw = run(capsys, lambda: b.DkpModule(SPEC), work)
    assert rc == 0 and "generated-password-77" not in raw


def test_partial_result_survives_a_failure(args, capsys):
    args(name="m")

    def work(module):
        module.result.update(changed=True, config={"spec": {"enabled": True}})
        raise WaitTimeout("Timed out after 5s waiting for Module m; last observed state: Reconciling",
                          last_state="Reconciling")
    rc, result, _raw = run(capsys, lambda: b.DkpModule(SPEC), work)
    assert rc == 1 and result["failed"] and result["changed"] is True
    assert result["config"] == {"spec": {"enabled": True}} and result["last_state"] == "Reconciling"
    assert result["msg"].startswith("Timed out after 5s")


def test_typed_errors_become_clean_failures(args, capsys):
    args(name="m")

    def work(module):
        raise WebhookUnavailableError(500, "InternalError", "Deckhouse's admission webhook is down")
    rc, result, _raw = run(capsys, lambda: b.DkpModule(SPEC), work)
    assert rc == 1 and result["msg"] == "Deckhouse's admission webhook is down" and result["status"] == 500


@pytest.mark.parametrize("option,value,message", [
    ("wait_timeout", -1, "wait_timeout must be greater than 0, got -1"),
    ("wait_timeout", 0, "wait_timeout must be greater than 0, got 0"),
    ("request_timeout", 0, "request_timeout must be greater than 0"),
    ("retry_timeout", -5, "retry_timeout must be greater than 0"),
    ("wait_grace", -1, "wait_grace must be 0 or more"),
])
def test_numeric_options_are_refused_before_any_request(args, capsys, option, value, message):
    args(name="m", **{option: value})
    spec = dict(SPEC, **WAIT_ARG_SPEC)
    called = []
    rc, result, _raw = run(capsys, lambda: b.DkpModule(spec), lambda m: called.append(1))
    assert rc == 1 and message in result["msg"] and called == []


class FakeClient:
    def __init__(self, obj=None):
        self.obj = obj
        self.writes = []

    def get(self, kind, name, namespace=None):
        return self.obj

    def create(self, kind, body, namespace=None, dry_run=False):
        self.writes.append(("create", body, dry_run))
        return dict(body, metadata=dict(body["metadata"], resourceVersion="1"))

    def merge_patch(self, kind, name, patch, namespace=None, dry_run=False):
        self.writes.append(("patch", patch, dry_run))
        from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_resource import deep_merge
        return deep_merge(self.obj, patch)

    def delete(self, kind, name, namespace=None, dry_run=False):
        self.writes.append(("delete", name, dry_run))


class ConfigModule(b.ResourceModule):
    kind = "ModuleConfig"
    result_key = "config"

    def validate(self):
        if self.params["name"] == "bad":
            raise DkpError("name must not be bad")

    def desired(self, live):
        return {"apiVersion": "deckhouse.io/v1alpha1", "kind": "ModuleConfig",
                "metadata": dict((live or {}).get("metadata") or {}, name=self.params["name"]),
                "spec": {"settings": self.params["settings"] or {}}}

    def wait_present(self, res):
        if self.params.get("wait"):
            raise WaitTimeout("Timed out", last_state="Reconciling")
        return {"waited": False}


RSPEC = dict(SPEC, state=dict(type="str", default="present", choices=["present", "absent"]), **WAIT_ARG_SPEC)


def _resource(monkeypatch, client):
    def build():
        module = ConfigModule(RSPEC, supports_check_mode=True)
        monkeypatch.setattr(ConfigModule, "client", property(lambda self: client))
        return module
    return build


def test_resource_module_creates_with_redacted_result_and_diff(args, capsys, monkeypatch):
    args(name="m", settings={"password": PASSWORD, "a": 1}, _ansible_diff=True)
    client = FakeClient()
    rc, result, raw = run(capsys, _resource(monkeypatch, client), lambda m: m.execute())
    assert rc == 0 and result["changed"] and result["method"] == "create" and result["waited"] is False
    assert PASSWORD not in raw and result["diff"]["after"]["spec"]["settings"]["a"] == 1
    assert client.writes[0][0] == "create"


def test_resource_module_keeps_changed_when_the_wait_fails(args, capsys, monkeypatch):
    args(name="m", settings={"a": 2}, wait=True)
    client = FakeClient({"metadata": {"name": "m", "resourceVersion": "3"}, "spec": {"settings": {"a": 1}}})
    rc, result, _raw = run(capsys, _resource(monkeypatch, client), lambda m: m.execute())
    assert rc == 1 and result["changed"] is True and result["method"] == "patch"
    assert result["config"]["spec"]["settings"] == {"a": 2} and result["last_state"] == "Reconciling"


def test_resource_module_validates_before_any_read(args, capsys, monkeypatch):
    args(name="bad")

    class Exploding(FakeClient):
        def get(self, *a, **kw):
            raise AssertionError("read before validation")
    rc, result, _raw = run(capsys, _resource(monkeypatch, Exploding()), lambda m: m.execute())
    assert rc == 1 and result["msg"] == "name must not be bad"


def test_resource_module_absent_in_check_mode_is_a_dry_run(args, capsys, monkeypatch):
    args(name="m", state="absent", _ansible_check_mode=True)
    client = FakeClient({"metadata": {"name": "m", "resourceVersion": "3"}, "spec": {}})
    rc, result, _raw = run(capsys, _resource(monkeypatch, client), lambda m: m.execute())
    assert rc == 0 and result["changed"] and client.writes == [("delete", "m", True)]


class AnnotateOnly(ConfigModule):
    creates = False

    def prepare(self):
        if self.params["name"] == "nothing":
            return {"changed": False, "method": "none", "msg": "nothing to act on"}
        return None

    def missing(self, name):
        return "%s %s is gone" % (self.kind, name)

    def before_delete(self, live):
        return {"metadata": {"annotations": {"confirm": "true"}}}


def _annotate_only(monkeypatch, client):
    def build():
        module = AnnotateOnly(RSPEC, supports_check_mode=True)
        monkeypatch.setattr(AnnotateOnly, "client", property(lambda self: client))
        return module
    return build


def test_resource_module_that_never_creates_fails_on_a_missing_object(args, capsys, monkeypatch):
    args(name="m", settings={"a": 1})
    client = FakeClient()
    rc, result, _raw = run(capsys, _annotate_only(monkeypatch, client), lambda m: m.execute())
    assert rc == 1 and result["msg"] == "ModuleConfig m is gone" and client.writes == []


def test_resource_module_prepare_ends_the_task_without_writing(args, capsys, monkeypatch):
    args(name="nothing")
    client = FakeClient({"metadata": {"name": "nothing", "resourceVersion": "3"}, "spec": {}})
    rc, result, _raw = run(capsys, _annotate_only(monkeypatch, client), lambda m: m.execute())
    assert rc == 0 and result["changed"] is False and result["msg"] == "nothing to act on" and client.writes == []


def test_resource_module_marks_the_object_before_deleting_it(args, capsys, monkeypatch):
    args(name="m", state="absent", _ansible_check_mode=True, _ansible_diff=True)
    client = FakeClient({"metadata": {"name": "m", "resourceVersion": "3"}, "spec": {}})
    rc, result, _raw = run(capsys, _annotate_only(monkeypatch, client), lambda m: m.execute())
    assert rc == 0 and result["changed"] and result["method"] == "delete" and result["diff"]["after"] == {}
    assert [(w[0], w[2]) for w in client.writes] == [("patch", True), ("delete", True)]
    assert client.writes[0][1]["metadata"]["annotations"] == {"confirm": "true"}


class ListClient:
    def __init__(self, objs):
        self.objs = {o["metadata"]["name"]: o for o in objs}
        self.selectors = []

    def get(self, kind, name, namespace=None):
        return self.objs.get(name)

    def list(self, kind, label_selector=None):
        self.selectors.append(label_selector)
        return list(self.objs.values()), "1"


class ThingInfo(b.InfoModule):
    kind = "Thing"
    list_key = "things"
    item_key = "thing"
    wait_noun = "thing"

    def name_error(self, name):
        return None if name.islower() else "%r is not a thing name" % name

    def label_selector(self):
        return "app=x"

    def wait(self, name):
        return self.client.get(self.kind, name)

    def secrets(self, obj):
        return [obj["token"]]

    def summary(self, obj):
        return {"name": obj["metadata"]["name"], "size": obj["size"]}

    def keep(self, summary):
        return summary["size"] > 0


ISPEC = dict(name=dict(type="str"), wait_for=dict(type="str"), query=dict(type="str"))
THINGS = [{"metadata": {"name": n}, "size": size, "token": "tok-%s-secret" % n} for n, size in (("b", 2), ("a", 1), ("c", 0))]


def _info(monkeypatch, client):
    def build():
        module = ThingInfo(ISPEC, supports_check_mode=True)
        monkeypatch.setattr(ThingInfo, "client", property(lambda self: client))
        return module
    return build


def test_info_module_lists_sorted_kept_summaries_with_secrets_masked(args, capsys, monkeypatch):
    args(query="[].name", _ansible_check_mode=True)
    client = ListClient(THINGS)

    def work(module):
        out = module.execute()
        out["echo"] = [t["token"] for t in THINGS]  # would leak without the no_log registration
        return out
    rc, result, raw = run(capsys, _info(monkeypatch, client), work)
    assert rc == 0 and result["things"] == [{"name": "a", "size": 1}, {"name": "b", "size": 2}]
    assert "thing" not in result and result["query_result"] == ["a", "b"] and client.selectors == ["app=x"]
    assert "tok-a-secret" not in raw and not result["changed"]


@pytest.mark.parametrize("params, expected", [
    (dict(name="b"), {"name": "b", "size": 2}),
    (dict(name="z"), None),
    (dict(name="a", wait_for="there"), {"name": "a", "size": 1}),
])
def test_info_module_returns_one_object_by_name(args, capsys, monkeypatch, params, expected):
    args(**params)
    rc, result, _raw = run(capsys, _info(monkeypatch, ListClient(THINGS)), lambda m: m.execute())
    assert rc == 0 and result["thing"] == expected and result["things"] == ([expected] if expected else [])


@pytest.mark.parametrize("params, message", [
    (dict(name="B"), "'B' is not a thing name"),
    (dict(wait_for="there"), "wait_for waits on one thing: set name"),
    (dict(query="[?"), "`query` is not a valid JMESPath expression"),
])
def test_info_module_refuses_bad_input_before_any_request(args, capsys, monkeypatch, params, message):
    args(**params)

    class Exploding(ListClient):
        def get(self, *a, **kw):
            raise AssertionError("read before validation")
        list = get
    rc, result, _raw = run(capsys, _info(monkeypatch, Exploding([])), lambda m: m.execute())
    assert rc == 1 and result["msg"].startswith(message)


def test_api_error_details_do_not_clobber_msg(args, capsys):
    args(name="m")
    rc, result, _raw = run(capsys, lambda: b.DkpModule(SPEC),
                           _raise(ApiError(422, "Invalid", "spec.x: Invalid value")))
    assert rc == 1 and result["msg"] == "spec.x: Invalid value" and result["reason"] == "Invalid"
