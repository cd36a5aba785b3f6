from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import base64
import json

import pytest

from ansible_collections.deckhouse.platform.plugins.module_utils import dkp_sources as s
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import DkpError, NO_LOG_MARKER


def b64json(obj):
    return base64.b64encode(json.dumps(obj).encode()).decode()


@pytest.mark.parametrize("repo, host", [("registry.example.com/deckhouse/modules", "registry.example.com"),
                                        ("localhost:5000/modules", "localhost:5000"),
                                        ("registry.example.com", "registry.example.com")])
def test_registry_host(repo, host):
    assert s.registry_host(repo) == host


@pytest.mark.parametrize("repo, fragment", [("https://registry.example.com/m", "without the scheme"),
                                            ("", "not a registry repository path"),
                                            ("registry example/m", "not a registry repository path")])
def test_bad_repo(repo, fragment):
    with pytest.raises(DkpError, match=fragment):
        s.registry_host(repo)


def test_built_docker_config_decodes_to_the_credentials_of_the_host():
    value = s.build_docker_config("registry.example.com", "user", "p:ss")
    decoded = s.decode_docker_config(value)
    entry = decoded["auths"]["registry.example.com"]
    assert base64.b64decode(entry["auth"]).decode() == "user:p:ss"
    assert s.host_credentials(decoded, "registry.example.com") == ("user", "p:ss")
    assert s.host_credentials(decoded, "other.example.com") is None


def test_credentials_are_found_in_foreign_encodings():
    scheme_key = {"auths": {"https://registry.example.com/v1/": {"auth": base64.b64encode(b"u:p").decode()}}}
    fields_only = {"auths": {"registry.example.com": {"username": "u", "password": "p"}}}
    assert s.host_credentials(scheme_key, "registry.example.com") == ("u", "p")
    assert s.host_credentials(fields_only, "registry.example.com") == ("u", "p")


def test_same_credentials_keep_the_live_value_whatever_its_encoding():
    live = b64json({"auths": {"registry.example.com": {"auth": base64.b64encode(b"u:p").decode()},
                              "mirror.example.com": {"auth": "eDp5"}}})
    assert s.desired_docker_config(live, "registry.example.com", username="u", password="p") == live


def test_changed_password_or_host_builds_a_new_value():
    live = s.build_docker_config("registry.example.com", "u", "p")
    changed = s.desired_docker_config(live, "registry.example.com", username="u", password="new")
    assert changed != live and s.host_credentials(s.decode_docker_config(changed), "registry.example.com") == ("u", "new")
    moved = s.desired_docker_config(live, "other.example.com", username="u", password="p")
    assert s.host_credentials(s.decode_docker_config(moved), "other.example.com") == ("u", "p")


def test_docker_config_is_compared_decoded():
    cfg = {"auths": {"registry.example.com": {"auth": "dTpw"}}}
    live = base64.b64encode(json.dumps(cfg, indent=2).encode()).decode()
    given = b64json(cfg)
    assert given != live
    assert s.desired_docker_config(live, "registry.example.com", docker_config=given) == live
    other = b64json({"auths": {"registry.example.com": {"auth": "eDp5"}}})
    assert s.desired_docker_config(live, "registry.example.com", docker_config=other) == other


def test_docker_config_compares_the_credentials_of_the_repo_host_across_forms():
    live = s.build_docker_config("registry.example.com", "u", "p")
    same = b64json({"auths": {"https://registry.example.com": {"auth": base64.b64encode(b"u:p").decode()},
                              "mirror.example.com": {"auth": "eDp5"}}})
    assert s.desired_docker_config(live, "registry.example.com", docker_config=same) == live
    other_host_only = b64json({"auths": {"mirror.example.com": {"auth": "dTpw"}}})
    assert s.desired_docker_config(live, "registry.example.com", docker_config=other_host_only) == other_host_only


def test_no_credentials_in_the_task_keeps_the_live_ones_and_empty_removes_them():
    live = s.build_docker_config("registry.example.com", "u", "p")
    assert s.desired_docker_config(live, "registry.example.com") == live
    assert s.desired_docker_config(live, "registry.example.com", docker_config="") is None


@pytest.mark.parametrize("bad", ["not base64!", base64.b64encode(b"not json").decode(), b64json({"no": "auths"})])
def test_invalid_docker_config_is_refused_without_echoing_it(bad):
    with pytest.raises(DkpError) as e:
        s.desired_docker_config(None, "registry.example.com", docker_config=bad)
    assert bad not in e.value.msg


def owned(name="deckhouse"):
    return {"metadata": {"name": name, "labels": {"heritage": "deckhouse"}}, "spec": {"registry": {"repo": "x"}}}


def test_deckhouse_source_allows_only_scan_interval():
    assert s.deckhouse_owned_violation(owned(), {"spec": {"scanInterval": "1m"}, "metadata": {"resourceVersion": "1"}}) is None
    message = s.deckhouse_owned_violation(owned(), {"spec": {"registry": {"repo": "y"}, "scanInterval": "1m"}})
    assert "only scan_interval" in message and "spec.registry" in message and "heritage: deckhouse" in message
    assert "may not be changed" in s.deckhouse_owned_violation(owned("other"), {"spec": {"scanInterval": "1m"}})
    assert s.deckhouse_owned_violation({"metadata": {"name": "mine"}}, {"spec": {"registry": {}}}) is None


def test_summary_never_carries_the_docker_config():
    src = {"metadata": {"name": "example"},
           "spec": {"registry": {"repo": "r.example.com/m", "dockerCfg": "c2VjcmV0"}, "scanInterval": "1m"},
           "status": {"syncTime": "2025-01-01T00:00:00Z", "modulesCount": 2,
                      "modules": [{"name": "b", "version": "v1.0.0"}, {"name": "a", "pullError": "denied"}],
                      "moduleErrors": [{"name": "b", "error": "old style"}]}}
    summary = s.source_summary(src)
    assert summary["docker_config"] == NO_LOG_MARKER and "c2VjcmV0" not in json.dumps(summary)
    assert [(m["name"], m["error"]) for m in s.source_modules(src)] == [("a", "denied"), ("b", "old style")]


CERT = ("-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(b"\x30\x82\x01\x0a" + b"x" * 60).decode()
        + "-----END CERTIFICATE-----\n")


@pytest.mark.parametrize("ca, ok", [
    (None, True), ("", True), (CERT, True), (CERT + CERT, True),
    ("not a cert", False), ("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----", False),
    ("-----BEGIN CERTIFICATE-----\nMIIB", False), (CERT + "trailing junk", False),
    ("-----BEGIN CERTIFICATE-----\n" + base64.b64encode(b"hello world!").decode() + "\n-----END CERTIFICATE-----", False),
])
def test_ca_must_be_pem_certificates(ca, ok):
    assert (s.ca_error(ca) is None) is ok
    if not ok:
        assert s.ca_error(ca).startswith("ca must be a PEM certificate")


@pytest.mark.parametrize("value, warns", [("30s", True), ("1m", True), ("3m", True), ("180s", True),
                                          ("3m1s", False), ("5m", False), ("1h", False), (None, False), ("bad", False)])
def test_scan_interval_under_3m_warns(value, warns):
    assert (s.scan_interval_warning(value) is not None) is warns


@pytest.mark.parametrize("message, error", [
    ("", None), ("Ready", None), ("Some errors occurred. Inspect status for details", None),
    ("list tags: GET https://r/v2/m/tags/list?n=1000: NAME_UNKNOWN: repository name not known to registry",
     "list tags: GET https://r/v2/m/tags/list?n=1000: NAME_UNKNOWN: repository name not known to registry"),
])
def test_sync_error(message, error):
    assert s.sync_error({"status": {"message": message}}) == error


def src_at(sync, message=""):
    return {"metadata": {"name": "example", "managedFields": [
        {"manager": "deckhouse.platform", "time": "2025-11-21T10:00:00Z"}]},
        "status": {"syncTime": sync, "message": message}}


def test_wait_rules_need_a_sync_newer_than_the_write_and_fail_on_its_error():
    before = src_at("2025-11-21T09:00:00Z")
    rules = s.source_wait_rules(before, src_at("2025-11-21T09:00:00Z"), changed=True)
    assert not rules["fresh"](before) and not rules["predicate"](before)
    assert rules["failure"](src_at("2025-11-21T09:00:00Z", "NAME_UNKNOWN")) is None, "stale error is not judged"
    assert rules["predicate"](src_at("2025-11-21T10:00:05Z"))
    assert "NAME_UNKNOWN" in rules["failure"](src_at("2025-11-21T10:00:05Z", "x: NAME_UNKNOWN"))
    assert not rules["predicate"](src_at("2025-11-21T10:00:05Z", "x: NAME_UNKNOWN"))
    reader = s.source_wait_rules()
    assert reader["predicate"](before) and not reader["predicate"](src_at(None))
    assert "NAME_UNKNOWN" in reader["failure"](src_at("2025-11-21T09:00:00Z", "NAME_UNKNOWN"))


def test_secret_values_cover_the_docker_config_and_what_is_inside():
    auth = base64.b64encode(b"u:pw").decode()
    cfg = b64json({"auths": {"r.example.com": {"auth": auth, "password": "pw"}}})
    src = {"spec": {"registry": {"dockerCfg": cfg}}}
    assert set(s.source_secret_values(src)) == {cfg, auth, "pw"}
    assert s.source_secret_values({"spec": {}}) == []
    summary = s.source_info_summary(dict(src, metadata={"name": "x"}, status={"message": "E"}))
    assert summary["sync_error"] == "E" and cfg not in json.dumps(summary)
