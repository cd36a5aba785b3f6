"""Secrets in ModuleConfig settings never leave the module: grepped, with their base64 forms, in -vvv output,
--diff, ANSIBLE_LOG_PATH and the recorded results, in check mode, real mode, on an argument error, on a server
refusal and in the readers (module_config_info, the module_config lookup)."""
from __future__ import annotations

import base64
import json

import pytest

from ansible_run import run_tasks

MC = "deckhouse.platform.module_config"
NAME = "prometheus"

SECRETS = {
    "password": "pw-S3cret-0001",
    "basic": "basic-S3cret-0002",
    "licenseKey": "lic-S3cret-0003",
    "apiKey1": "ak-S3cret-0004",
    "apiKey2": "ak-S3cret-0005",
    "ssh": "-----BEGIN OPENSSH PRIVATE KEY----- key-S3cret-0006",
    "passphrase": "pp-S3cret-0007",
    "token": "tok-S3cret-0008",
    "custom": "mh-S3cret-0009",
    "license": "lic2-S3cret-0010",
}


def settings(suffix=""):
    s = {k: v + suffix for k, v in SECRETS.items()}
    return {
        "retentionDays": 5,
        "auth": {"basic": s["basic"], "password": s["password"]},
        "licenseKey": s["licenseKey"],
        "apiKeys": [s["apiKey1"], s["apiKey2"]],
        "sshPrivateKeys": [s["ssh"]],
        "remote": {"passphrase": s["passphrase"], "endpoints": [{"url": "https://r.example", "token": s["token"]}]},
        "custom": {"myHidden": s["custom"]},
        "proxy": {"license": s["license"]},
    }


def needles(suffix=""):
    out = []
    for v in SECRETS.values():
        out += [v + suffix, base64.b64encode((v + suffix).encode()).decode()]
    return out


def leaks(run, log_path, suffix=""):
    text = run.output + json.dumps(run.records) + (log_path.read_text() if log_path.exists() else "")
    return [n for n in needles(suffix) if n in text]


@pytest.fixture
def clean_mc(api):
    from test_module_config import delete_mc
    delete_mc(api, NAME)
    yield NAME
    delete_mc(api, NAME)


def mc(title, **params):
    return {"name": title, MC: dict({"name": NAME, "redact_keys": ["myHidden"]}, **params), "register": "out"}


def test_no_secret_in_output_logs_or_results(kc, api, tmp_path, clean_mc):
    log = tmp_path / "ansible.log"
    env = {"ANSIBLE_LOG_PATH": str(log)}
    found = {}

    # check mode: server dry-run of a create, with --diff and -vvv
    run = run_tasks(kc, [mc("check", version=1, settings=settings())], check=True, diff=True, verbosity=3, env=env)
    assert run.rc == 0, run.output
    assert [r["status"] for r in run.records if r["task"] == "check"] == ["ok"]
    assert run.task("check")["changed"] is True
    found["check mode"] = leaks(run, log)

    # real mode: create, then change every secret (the diff has both old and new values to hide)
    run = run_tasks(kc, [mc("create", version=1, settings=settings()),
                         mc("change", settings=settings("-v2"))], diff=True, verbosity=3, env=env)
    assert run.rc == 0, run.output
    assert run.task("create")["changed"] is True and run.task("change")["changed"] is True
    diff = run.task("change")["diff"]
    assert diff["after"]["spec"]["settings"]["retentionDays"] == 5
    assert diff["after"]["spec"]["settings"]["apiKeys"] == ["VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"] * 2
    found["real mode"] = leaks(run, log) + leaks(run, log, "-v2")
    live = api.get_cluster_custom_object("deckhouse.io", "v1alpha1", "moduleconfigs", NAME)
    assert live["spec"]["settings"]["custom"]["myHidden"] == SECRETS["custom"] + "-v2", "the secret itself is written"

    # failures: an argument error (AnsibleModule validation) and a refusal by the admission webhook
    # (retentionDays below the schema's minimum), both with the secrets in the task's arguments
    run = run_tasks(kc, [
        dict(mc("bad-arg", settings=settings("-v3"), settings_mode="bogus"), ignore_errors=True),
        dict(mc("refused", settings=dict(settings("-v3"), retentionDays=0)), ignore_errors=True),
        dict(mc("refused-check", settings=dict(settings("-v3"), retentionDays=0)), ignore_errors=True,
             check_mode=True),
    ], diff=True, verbosity=3, env=env)
    for title in ("bad-arg", "refused", "refused-check"):
        assert [r["status"] for r in run.records if r["task"] == title] == ["failed"], run.output
    assert "settings_mode" in run.task("bad-arg")["msg"]
    assert "retentionDays" in run.task("refused")["msg"] or "not valid" in run.task("refused")["msg"]
    found["failure"] = leaks(run, log, "-v3")

    # readers: module_config_info and the lookup, at -vvv
    run = run_tasks(kc, [
        {"name": "info", "deckhouse.platform.module_config_info": {"name": NAME, "redact_keys": ["myHidden"]}},
        {"name": "lk", "ansible.builtin.debug": {
            "msg": "{{ lookup('deckhouse.platform.module_config', '%s', redact_keys=['myHidden']) }}" % NAME}},
    ], verbosity=3, env=env)
    assert run.rc == 0, run.output
    assert run.task("info")["configs"][0]["settings"]["retentionDays"] == 5
    found["readers"] = leaks(run, log, "-v2")

    total = sum(len(v) for v in found.values())
    print("secrets found: %d (%s)" % (total, found))
    assert total == 0, found
