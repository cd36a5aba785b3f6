"""Bad input to module_config, module_info, module_config_info and the module/module_config lookups: every case is
refused with a message that names the problem, and none of them sends a single write (dry-run included), as the
apiserver's audit log proves. All cases run in one ansible-playbook process to keep the suite fast; each task's
status is asserted one by one (ignore_errors only lets the play go on to the next case)."""
from __future__ import annotations

import pytest

from ansible_run import run_tasks
from dkp_audit import our_writes

MC = "deckhouse.platform.module_config"
MI = "deckhouse.platform.module_info"
MCI = "deckhouse.platform.module_config_info"

# (title, module, params, needle); a module of None is a set_fact of the lookup expression in params.
CASES = [
    ("mc name with underscore", MC, {"name": "Bad_Name", "enabled": True}, "not a valid module name"),
    ("mc name uppercase", MC, {"name": "Prometheus", "enabled": True}, "not a valid module name"),
    ("mc name too long", MC, {"name": "a" * 64, "enabled": True}, "not a valid module name"),
    ("mc name empty", MC, {"name": "", "enabled": True}, "not a valid module name"),
    ("mc name with slash", MC, {"name": "a/b", "enabled": True}, "not a valid module name"),
    ("mc name missing", MC, {"enabled": True}, "missing required arguments: name"),
    ("mc settings without version", MC, {"name": "operator-postgres", "settings": {"a": 1}}, "without a version"),
    ("mc enabled dict", MC, {"name": "prometheus", "enabled": {"yes": 1}}, "enabled"),
    ("mc enabled word", MC, {"name": "prometheus", "enabled": "maybe"}, "enabled"),
    ("mc absent with enabled", MC, {"name": "prometheus", "state": "absent", "enabled": True}, "state=absent"),
    ("mc absent with settings", MC, {"name": "prometheus", "state": "absent", "settings": {"a": 1}}, "state=absent"),
    ("mc state bogus", MC, {"name": "prometheus", "state": "gone"}, "state must be one of"),
    ("mc settings_mode bogus", MC, {"name": "prometheus", "settings_mode": "patch"}, "settings_mode must be one of"),
    ("mc settings string", MC, {"name": "prometheus", "version": 1, "settings": "abc"}, "settings"),
    ("mc settings list", MC, {"name": "prometheus", "version": 1, "settings": [1, 2]}, "settings"),
    ("mc version zero", MC, {"name": "prometheus", "version": 0}, "version must be a positive"),
    ("mc version negative", MC, {"name": "prometheus", "version": -1}, "version must be a positive"),
    ("mc version word", MC, {"name": "prometheus", "version": "one"}, "version"),
    ("mc wait_timeout zero", MC, {"name": "prometheus", "enabled": True, "wait": True, "wait_timeout": 0},
     "wait_timeout must be greater than 0"),
    ("mc wait_timeout negative", MC, {"name": "prometheus", "enabled": True, "wait": True, "wait_timeout": -1},
     "wait_timeout must be greater than 0"),
    ("mc wait_timeout word", MC, {"name": "prometheus", "enabled": True, "wait_timeout": "soon"}, "wait_timeout"),
    ("mc wait_grace negative", MC, {"name": "prometheus", "enabled": True, "wait": True, "wait_grace": -5},
     "wait_grace must be 0 or more"),
    ("mc maintenance YAML Off", MC, {"name": "prometheus", "maintenance": False}, "maintenance must be one of"),
    ("mc maintenance YAML On", MC, {"name": "prometheus", "maintenance": True}, "maintenance must be one of"),
    ("mc maintenance off creates nothing", MC, {"name": "operator-postgres", "maintenance": "off"}, "sets nothing"),
    ("mc maintenance on", MC, {"name": "prometheus", "maintenance": "on"}, "maintenance must be one of"),
    ("mc source bad", MC, {"name": "prometheus", "source": "My Source"}, "not a valid ModuleSource name"),
    ("mc source empty", MC, {"name": "prometheus", "source": ""}, "not a valid ModuleSource name"),
    ("mc policy bad", MC, {"name": "prometheus", "update_policy": "UPPER"}, "not a valid ModuleUpdatePolicy name"),
    ("mc disable deckhouse", MC, {"name": "deckhouse", "enabled": False}, "allow_disabling"),
    ("mc disable registry", MC, {"name": "registry", "enabled": False}, "allow_disabling"),
    ("mc disable cni-cilium", MC, {"name": "cni-cilium", "enabled": False}, "allow_disabling"),
    ("mc delete deckhouse config", MC, {"name": "deckhouse", "state": "absent"}, "allow_disabling"),
    ("mc 3.6 MB setting", MC, {"name": "prometheus", "version": 1, "settings": {"blob": "{{ 'x' * 3600000 }}"}},
     "request too large (413)"),
    ("mc redact_keys dict", MC, {"name": "prometheus", "enabled": True, "redact_keys": {"a": 1}}, "redact_keys"),
    ("mc unknown option", MC, {"name": "prometheus", "enable": True}, "Unsupported parameters"),
    ("mc allow_disabling word", MC, {"name": "prometheus", "enabled": False, "allow_disabling": "perhaps"},
     "allow_disabling"),
    ("mc wait word", MC, {"name": "prometheus", "enabled": True, "wait": "sometimes"}, "wait"),
    ("mc request_timeout zero", MC, {"name": "prometheus", "enabled": True, "request_timeout": 0},
     "request_timeout must be greater than 0"),
    ("mc retry_timeout negative", MC, {"name": "prometheus", "enabled": True, "retry_timeout": -1},
     "retry_timeout must be greater than 0"),
    ("mi wait_for bogus", MI, {"name": "cert-manager", "wait_for": "green"}, "wait_for must be one of"),
    ("mi wait_for without name", MI, {"wait_for": "ready"}, "set `name`"),
    ("mi wait_timeout zero", MI, {"name": "cert-manager", "wait_for": "ready", "wait_timeout": 0},
     "wait_timeout must be greater than 0"),
    ("mi wait_grace negative", MI, {"name": "cert-manager", "wait_for": "ready", "wait_grace": -1},
     "wait_grace must be 0 or more"),
    ("mi query invalid", MI, {"query": "[?"}, "not a valid JMESPath expression"),
    ("mi name bad", MI, {"name": "Bad_Name"}, "not a valid module name"),
    ("mi enabled word", MI, {"enabled": "maybe"}, "enabled"),
    ("mci query invalid", MCI, {"query": "[?enabled =="}, "not a valid JMESPath expression"),
    ("mci name bad", MCI, {"name": "Bad_Name"}, "not a valid module name"),
    ("mci redact_keys dict", MCI, {"redact_keys": {"a": 1}}, "redact_keys"),
    ("lookup module query invalid", None, "{{ lookup('deckhouse.platform.module', 'cert-manager', query='[?') }}",
     "not a valid JMESPath expression"),
    ("lookup module_config query invalid", None,
     "{{ lookup('deckhouse.platform.module_config', 'deckhouse', query='foo[') }}", "not a valid JMESPath expression"),
    ("lookup request_timeout zero", None,
     "{{ lookup('deckhouse.platform.module', 'cert-manager', request_timeout=0) }}", "request_timeout"),
]


def task(title, module, params):
    if module is None:
        return {"name": title, "ansible.builtin.set_fact": {"value": params}, "ignore_errors": True}
    return {"name": title, module: params, "ignore_errors": True}


@pytest.mark.parametrize("check", [False, True], ids=["real", "check"])
def test_every_bad_input_is_refused_before_any_write(kc, dkp_cluster, check):
    mark = dkp_cluster.audit_marker()
    run = run_tasks(kc, [task(t, m, p) for t, m, p, _n in CASES], check=check)
    problems = []
    for title, _module, _params, needle in CASES:
        records = [r for r in run.records if r["task"] == title]
        if not records:
            problems.append("%s: not run" % title)
            continue
        rec = records[-1]
        msg = str(rec["result"].get("msg", ""))
        if rec["status"] != "failed":
            problems.append("%s: %s, not failed" % (title, rec["status"]))
        elif needle not in msg:
            problems.append("%s: %r not in %r" % (title, needle, msg[:300]))
        elif "Traceback" in msg or "MODULE FAILURE" in msg:
            problems.append("%s: crashed: %s" % (title, msg[:300]))
    assert not problems, "\n".join(problems)
    assert our_writes(dkp_cluster, mark) == [], "a refused input sent a write"
    print("bad inputs tried: %d, refused before any write: %d" % (len(CASES), len(CASES)))
