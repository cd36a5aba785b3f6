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
    assert p.delay(0, retry_after="3") == 3, "Retry-After is honoured"
    assert p.delay(0, retry_after="3600") == p.retry_after_cap, "but capped"


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


# -- the HTTP retry loop, with a fake transport and a fake clock ---------------------------------------

import base64
import json as _json
import ssl as _ssl

import pytest
import urllib3


def _b64(data):
    return base64.b64encode(data).decode()


class _Clock:
    def __init__(self):
        self.t = 0.0
        self.sleeps = []

    def __call__(self):
        return self.t

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.t += seconds


class _Resp:
    def __init__(self, status, body=None, headers=None):
        self.status = status
        self.data = _json.dumps(body).encode() if body is not None else b""
        self.headers = headers or {}

    def release_conn(self):
        pass

    def drain_conn(self):
        pass

    def read(self):
        return self.data


class _Transport:
    """Answers from a script: a _Resp, an exception to raise, or a callable; the last entry repeats."""

    def __init__(self, clock, script, cost=0.1):
        self.clock = clock
        self.script = list(script)
        self.calls = []
        self.cost = cost

    def request(self, method, url, **kw):
        self.calls.append((method, url))
        self.clock.t += self.cost
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, BaseException):
            raise item
        return item


def _client(script, monkeypatch=None, **params):
    clock = _Clock()
    p = {"host": "https://api.example:6443", "api_key": "t0ken"}
    p.update(params)
    client = c.DkpClient(p, clock=clock, sleep=clock.sleep)
    client._pool = _Transport(clock, script)
    return client, clock


def _status(code, message, reason=""):
    return _Resp(code, {"kind": "Status", "code": code, "message": message, "reason": reason})


OBJ = {"metadata": {"name": "m", "resourceVersion": "1"}}
REFUSED = urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection: [Errno 111] "
                                                      "Connection refused")
WEBHOOK = ('Internal error occurred: failed calling webhook "module-configs.deckhouse.io": failed to call webhook: '
           'Post "https://deckhouse.d8-system.svc:4223/validate": dial tcp 10.0.0.1:4223: connect: connection refused')


def test_429_honours_retry_after():
    client, clock = _client([_Resp(429, {"message": "slow down"}, {"Retry-After": "7"}), _Resp(200, OBJ)])
    assert client.get("ModuleConfig", "m") == OBJ
    assert clock.sleeps == [7.0]


def test_503_while_the_apiserver_starts_is_retried():
    starting = _status(503, "the server is currently unable to handle the request: the apiserver has not "
                            "finished installing all known HTTP paths", "ServiceUnavailable")
    client, clock = _client([starting, starting, starting, _Resp(200, OBJ)])
    assert client.get("ModuleConfig", "m") == OBJ
    assert len(client._pool.calls) == 4 and 0 < sum(clock.sleeps) < 10


def test_webhook_down_is_retried_then_named():
    client, clock = _client([_status(500, WEBHOOK, "InternalError")], retry_timeout=30)
    with pytest.raises(c.WebhookUnavailableError) as e:
        client.merge_patch("ModuleConfig", "m", {"spec": {"enabled": True}})
    assert "webhook is down" in e.value.msg and "Deckhouse is probably restarting" in e.value.msg
    assert "api.example:6443" in e.value.msg and "failed calling webhook" in e.value.msg
    assert 29 <= clock.t <= 31, "bounded by retry_timeout, not by a count"
    assert len(client._pool.calls) > 3
    assert isinstance(e.value, c.ApiError) and e.value.status == 500


def test_webhook_down_that_recovers():
    client, _clock = _client([_status(500, WEBHOOK), _status(500, WEBHOOK), _Resp(200, OBJ)])
    assert client.merge_patch("ModuleConfig", "m", {"spec": {"enabled": True}}) == OBJ


def test_connection_refused_is_retried_then_unreachable():
    client, clock = _client([REFUSED], retry_timeout=20)
    with pytest.raises(c.UnreachableError) as e:
        client.get("ModuleConfig", "m")
    assert "Cannot reach the Kubernetes API at https://api.example:6443" in e.value.msg
    assert "tried" in e.value.msg and "Connection refused" in e.value.msg
    assert 19 <= clock.t <= 21
    assert isinstance(e.value.__cause__, urllib3.exceptions.NewConnectionError), "raise ... from e"


def test_connection_refused_then_back():
    client, _clock = _client([REFUSED, REFUSED, _Resp(200, OBJ)])
    assert client.get("ModuleConfig", "m") == OBJ


def test_413_is_not_retried():
    client, clock = _client([_status(413, "etcdserver: request is too large", "RequestEntityTooLarge")])
    with pytest.raises(c.RequestTooLargeError, match=r"^request too large \(413\)"):
        client.merge_patch("ModuleConfig", "m", {"spec": {"settings": {"x": "y" * 10}}})
    assert len(client._pool.calls) == 1 and clock.sleeps == []


def test_budget_exhausted_on_503_says_so():
    client, clock = _client([_status(503, "service unavailable")], retry_timeout=15)
    with pytest.raises(c.ApiError) as e:
        client.get("ModuleConfig", "m")
    assert e.value.status == 503 and "answered HTTP 503 (for 15s" in e.value.msg and "retry_timeout" in e.value.msg
    assert 14 <= clock.t <= 16


def test_backoff_is_jittered_and_capped():
    client, clock = _client([REFUSED], retry_timeout=120)
    with pytest.raises(c.UnreachableError):
        client.get("ModuleConfig", "m")
    assert max(clock.sleeps) <= client.retry.cap and len(set(clock.sleeps)) > 3


def test_retry_window_caps_the_budget():
    client, clock = _client([REFUSED], retry_timeout=120)
    with client.retry_window(5):
        with pytest.raises(c.UnreachableError):
            client.get("ModuleConfig", "m")
    assert clock.t <= 6


def test_typed_errors():
    client, dummy = _client([_status(401, "Unauthorized", "Unauthorized")])
    with pytest.raises(c.AuthError, match="rejected the credentials"):
        client.get("ModuleConfig", "m")
    client, dummy = _client([_status(403, 'moduleconfigs.deckhouse.io "m" is forbidden', "Forbidden")])
    with pytest.raises(c.ForbiddenError) as e:
        client.merge_patch("ModuleConfig", "m", {"spec": {}}, dry_run=True)
    assert "Check mode" in e.value.msg and "`patch`" in e.value.msg and e.value.details["dry_run"] is True
    client, dummy = _client([_status(403, "forbidden", "Forbidden")])
    with pytest.raises(c.ForbiddenError) as e:
        client.create("ModuleConfig", {"metadata": {"name": "m"}}, dry_run=True)
    assert "`create`" in e.value.msg
    client, dummy = _client([_Resp(404, {"message": "404 page not found"})])
    with pytest.raises(c.NotServedError) as e:
        client.get("ModuleConfig", "m")
    assert e.value.status == 404 and e.value.reason == "NotServed"
    client, dummy = _client([_status(404, 'moduleconfigs "m" not found', "NotFound")])
    client._pool.script[0].data = _json.dumps({"message": "not found", "reason": "NotFound",
                                               "details": {"name": "m"}}).encode()
    assert client.get("ModuleConfig", "m") is None
    client, dummy = _client([_status(409, "the object has been modified", "Conflict")])
    with pytest.raises(c.ConflictError) as e:
        client.merge_patch("ModuleConfig", "m", {"spec": {}})
    assert e.value.details["after_retry"] is False


def test_a_conflict_after_a_retried_write_is_flagged():
    client, dummy = _client([REFUSED, _status(409, "the object has been modified", "Conflict")])
    with pytest.raises(c.ConflictError) as e:
        client.merge_patch("ModuleConfig", "m", {"spec": {}})
    assert e.value.details["after_retry"] is True


def test_tls_verification_error_is_not_retried_and_gives_a_hint():
    reason = "certificate verify failed: unable to get local issuer certificate"
    err = urllib3.exceptions.SSLError(_ssl.SSLCertVerificationError(1, reason))
    client, clock = _client([err])
    with pytest.raises(c.UnreachableError) as e:
        client.get("ModuleConfig", "m")
    assert "ca_cert" in e.value.msg and "validate_certs" in e.value.msg and e.value.details["tls"] is True
    assert len(client._pool.calls) == 1


def test_watch_stream_errors_are_typed():
    class _Stream(_Resp):
        def stream(self, *a, **kw):
            yield (_json.dumps({"type": "ERROR", "object": {"code": 410, "reason": "Expired",
                                                            "message": "too old"}}) + "\n").encode()
    client, dummy = _client([_Stream(200)])
    with pytest.raises(c.ApiError) as e:
        list(client.watch("Module", "5", name="m"))
    assert e.value.status == 410


@pytest.mark.parametrize("name,value,msg", [
    ("request_timeout", 0, "request_timeout must be greater than 0, got 0"),
    ("retry_timeout", -1, "retry_timeout must be greater than 0, got -1"),
    ("retry_timeout", "abc", "retry_timeout must be a number"),
])
def test_numeric_connection_options_are_validated(name, value, msg):
    with pytest.raises(c.DkpError, match=msg):
        c.DkpClient({"host": "https://x", "api_key": "t", name: value})


def test_retry_timeout_from_the_environment(monkeypatch):
    monkeypatch.setenv("DKP_RETRY_TIMEOUT", "42")
    assert c.DkpClient({"host": "https://x", "api_key": "t"}).retry_timeout == 42
    assert c.DkpClient({"host": "https://x", "api_key": "t", "retry_timeout": 5}).retry_timeout == 5
    monkeypatch.setenv("DKP_RETRY_TIMEOUT", "0")
    with pytest.raises(c.DkpError, match="retry_timeout must be greater than 0"):
        c.DkpClient({"host": "https://x", "api_key": "t"})
    monkeypatch.delenv("DKP_RETRY_TIMEOUT")
    assert c.DkpClient({"host": "https://x", "api_key": "t"}).retry_timeout == 120


# -- key material stays off the disk ------------------------------------------------------------------

def _self_signed(tmp_path):
    import subprocess

    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test",
                    "-keyout", str(tmp_path / "k.pem"), "-out", str(tmp_path / "c.pem")],
                   check=True, capture_output=True)
    return (tmp_path / "c.pem").read_bytes(), (tmp_path / "k.pem").read_bytes()


def test_kubeconfig_data_stays_in_memory(tmp_path, monkeypatch):
    import os
    import shutil
    import tempfile

    if not shutil.which("openssl"):
        pytest.skip("openssl not available")
    cert, key = _self_signed(tmp_path / "")
    watched = tmp_path / "tmp"
    watched.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(watched))
    kc = _kc({"client-certificate-data": _b64(cert), "client-key-data": _b64(key)})
    kc["clusters"][0]["cluster"] = {"server": "https://127.0.0.1:6443", "certificate-authority-data": _b64(cert)}
    client = c.DkpClient({"kubeconfig": kc})
    assert client.conn.key_data == key and client.conn.key_file is None and client.conn.ca_file is None
    ctx = client.ssl_context()
    assert ctx.verify_mode == _ssl.CERT_REQUIRED and ctx.get_ca_certs()
    assert os.listdir(str(watched)) == [], "no key or certificate file was written"
    with c._secret_file(key) as path:
        with open(path, "rb") as f:
            assert f.read() == key
        if hasattr(os, "memfd_create"):
            assert path.startswith("/proc/self/fd/")
    assert not os.path.exists(path) or path.startswith("/proc/self/fd/")


def test_secret_file_without_memfd_is_unlinked_at_once(monkeypatch, tmp_path):
    import os
    import tempfile

    monkeypatch.delattr(os, "memfd_create", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with c._secret_file(b"KEY") as path:
        assert os.stat(path).st_mode & 0o077 == 0
    assert not os.path.exists(path) and os.listdir(str(tmp_path)) == []


# -- proxies as kubectl reads them ----------------------------------------------------------------------

def test_https_proxy_from_the_environment(monkeypatch):
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", ".internal,10.0.0.0/8")
    conn = c._load_connection({"host": "https://api.example:6443", "api_key": "t"})
    assert conn.proxy == "http://proxy.corp:3128" and conn.proxy_from_env
    assert not c._bypasses_proxy(conn.host, conn.no_proxy, True)
    assert c._bypasses_proxy("https://api.internal:6443", conn.no_proxy, True)
    assert c._bypasses_proxy("https://10.1.2.3:6443", conn.no_proxy, True)
    assert c._bypasses_proxy("https://127.0.0.1:6443", "", True), "loopback is never proxied from the env"
    assert not c._bypasses_proxy("https://127.0.0.1:6443", "", False), "an explicit proxy is used as given"
    explicit = c._load_connection({"host": "https://api.example:6443", "api_key": "t", "proxy": "http://p:1"})
    assert explicit.proxy == "http://p:1" and not explicit.proxy_from_env
    assert c._bypasses_proxy("https://api.example:6443", "api.example:6443")
    assert not c._bypasses_proxy("https://api.example:6443", "api.example:443")
    assert c._bypasses_proxy("https://anything", "*")


def test_refused_exec_handshake_is_typed(monkeypatch):
    import kubernetes.stream
    from kubernetes.client.rest import ApiException

    class BadStatus(Exception):
        status_code = 403

    def refused(*a, **kw):
        try:
            raise BadStatus("Handshake status 403 Forbidden")
        except BadStatus as e:
            raise ApiException(status=0, reason=str(e))
    monkeypatch.setattr(kubernetes.stream, "stream", refused)
    client = c.DkpClient({"host": "https://api.example:6443", "api_key": "t"})
    with pytest.raises(c.ForbiddenError, match="pods/exec"):
        client.exec_in_pod("d8-system", "deckhouse-0", "deckhouse", ["true"])
    BadStatus.status_code = 401
    with pytest.raises(c.AuthError):
        client.exec_in_pod("d8-system", "deckhouse-0", "deckhouse", ["true"])


def test_kubernetes_config_loader_temp_files_are_taken_into_memory(tmp_path, monkeypatch):
    import os

    from kubernetes.config import kube_config

    cert, key = _self_signed(tmp_path)
    kc = _kc({"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "true"},
              "client-certificate-data": _b64(cert), "client-key-data": _b64(key)})
    kc["clusters"][0]["cluster"] = {"server": "https://127.0.0.1:6443", "certificate-authority-data": _b64(cert)}
    conn = c._Connection()
    c._with_kubernetes_config(conn, kc, None, False)
    assert conn.key_data == key and conn.cert_data == cert and conn.ca_data == cert
    assert conn.key_file is None and conn.cert_file is None and conn.ca_file is None
    assert all(os.path.exists(p) for p in kube_config._temp_files.values()), "no stale cache entries"
    conn2 = c._Connection()
    c._with_kubernetes_config(conn2, kc, None, False)
    assert conn2.key_data == key
