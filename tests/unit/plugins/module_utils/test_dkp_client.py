from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

from ansible_collections.deckhouse.platform.plugins.module_utils import dkp_client as c


def test_retry_policy_is_bounded_and_selective():
    p = c.RetryPolicy(attempts=3, base=0.1, cap=1)
    assert p.should_retry(0, status=429) and p.should_retry(1, status=503)
    assert not p.should_retry(2, status=503), "the third attempt is the last"
    assert not p.should_retry(0, status=409), "409 is re-read by the caller, not blindly retried"
    assert not p.should_retry(0, status=400)
    assert p.should_retry(0, connection_error=True)
    assert all(0 < p.delay(n) <= 1 for n in range(10))
    assert p.delay(0, retry_after="3") == 1, "Retry-After is honoured but capped"


def test_kubeconfig_secret_values():
    kc = {"users": [{"name": "u", "user": {"token": "T0K", "client-key-data": "KEY"}}],
          "clusters": [{"cluster": {"server": "https://x", "certificate-authority-data": "CA"}}]}
    assert sorted(c.kubeconfig_secret_values(kc)) == ["KEY", "T0K"]
    assert c.kubeconfig_secret_values("/path/to/kubeconfig") == []


def test_kind_paths_need_no_discovery():
    assert c.KINDS["ModuleConfig"].path("cert-manager") == "/apis/deckhouse.io/v1alpha1/moduleconfigs/cert-manager"
    assert c.KINDS["ModuleUpdatePolicy"].path() == "/apis/deckhouse.io/v1alpha2/moduleupdatepolicies"
    assert c.KINDS["Secret"].path("registry-state", "d8-system") == "/api/v1/namespaces/d8-system/secrets/registry-state"
    assert c.KINDS["Pod"].path("p", "ns", "exec") == "/api/v1/namespaces/ns/pods/p/exec"


def test_connection_spec_matches_kubernetes_core_names():
    expected = {"kubeconfig", "context", "host", "api_key", "username", "password", "validate_certs", "ca_cert",
                "client_cert", "client_key", "proxy", "no_proxy", "proxy_headers", "persist_config",
                "impersonate_user", "impersonate_groups"}
    assert expected <= set(c.CONNECTION_ARG_SPEC)
    assert c.CONNECTION_ARG_SPEC["kubeconfig"]["fallback"][1] == ["K8S_AUTH_KUBECONFIG"]
    assert c.CONNECTION_ARG_SPEC["validate_certs"]["aliases"] == ["verify_ssl"]


def _kc(user, context="ctx"):
    return {"current-context": "ctx",
            "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
            "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443/",
                                                   "certificate-authority": "ca.crt"}}],
            "users": [{"name": "u", "user": user}]}


def test_plain_kubeconfig_is_read_without_the_kubernetes_client(tmp_path):
    (tmp_path / "tok").write_text("T0KEN\n")
    conn = c._Connection()
    assert c._from_kubeconfig_dict(conn, _kc({"tokenFile": "tok"}), None, str(tmp_path)) is True
    assert conn.host == "https://127.0.0.1:6443/"
    assert conn.ca_file == str(tmp_path / "ca.crt"), "relative paths are relative to the kubeconfig"
    assert conn.authorization() == "Bearer T0KEN"


def test_exec_and_auth_provider_users_go_through_kubernetes_config():
    assert c._from_kubeconfig_dict(c._Connection(), _kc({"exec": {"command": "x"}}), None, "/") is False
    assert c._from_kubeconfig_dict(c._Connection(), _kc({"auth-provider": {"name": "oidc"}}), None, "/") is False


def test_unknown_context_names_the_known_ones():
    import pytest
    with pytest.raises(c.DkpError, match="no context 'other'.*ctx"):
        c._from_kubeconfig_dict(c._Connection(), _kc({"token": "x"}), "other", "/")


def test_explicit_parameters_beat_the_kubeconfig(tmp_path):
    kc = tmp_path / "config"
    import yaml
    kc.write_text(yaml.safe_dump(_kc({"token": "from-file"})))
    conn = c._load_connection({"kubeconfig": str(kc), "api_key": "from-param", "host": "https://other:443",
                               "validate_certs": False})
    assert conn.host == "https://other:443"
    assert conn.authorization() == "Bearer from-param"
    assert conn.verify is False


def test_missing_kubeconfig_is_a_clear_error(tmp_path):
    import pytest
    with pytest.raises(c.DkpError, match="does not exist"):
        c._load_connection({"kubeconfig": str(tmp_path / "nope")})


def test_no_proxy_matching():
    assert c._bypasses_proxy("https://api.cluster.local:6443", "localhost,.cluster.local")
    assert not c._bypasses_proxy("https://api.example.com", "cluster.local")


class _FakeWs:
    def __init__(self, error):
        self.error = error

    @property
    def returncode(self):
        raise ValueError(self.error)


def test_exec_returncode_from_a_failure_without_cause():
    msg = "invalid literal for int() with base 10: 'error executing command in container: exit status 52'"
    assert c._exec_returncode(_FakeWs(msg)) == 52
    assert c._exec_returncode(_FakeWs("no code at all")) == 1
