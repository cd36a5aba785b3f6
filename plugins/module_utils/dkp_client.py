# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Connection to a DKP cluster's API server, shared by every module and lookup.

Known kinds are addressed by a fixed group/version/plural table, so a task never pays for API
discovery. Requests go through the kubernetes client's connection pool (for its kubeconfig,
exec-plugin and OIDC support) but are built here, which gives one place for retries, timeouts,
impersonation and error translation.
"""

from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import json
import os
import re
import random
import socket
import time
from urllib.parse import quote, urlencode

from ansible.module_utils.basic import env_fallback

try:
    import urllib3
    import yaml

    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError as e:  # pragma: no cover - reported by the module
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = e

try:  # the kubernetes client is imported only when a kubeconfig needs it (see _Connection)
    import importlib.util

    if importlib.util.find_spec("kubernetes") is None:
        HAS_KUBERNETES = False
        KUBERNETES_IMPORT_ERROR = ImportError("No module named 'kubernetes'")
except (ImportError, ValueError):  # pragma: no cover
    pass

FIELD_MANAGER = "deckhouse.platform"
NO_LOG_MARKER = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"

# Same names, types, aliases and K8S_AUTH_* fallbacks as kubernetes.core, so module_defaults,
# AWX credentials and environments written for kubernetes.core work unchanged.
CONNECTION_ARG_SPEC = dict(
    kubeconfig=dict(type="raw", fallback=(env_fallback, ["K8S_AUTH_KUBECONFIG"])),
    context=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_CONTEXT"])),
    host=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_HOST"])),
    api_key=dict(type="str", no_log=True, fallback=(env_fallback, ["K8S_AUTH_API_KEY"])),
    username=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_USERNAME"])),
    password=dict(type="str", no_log=True, fallback=(env_fallback, ["K8S_AUTH_PASSWORD"])),
    validate_certs=dict(type="bool", aliases=["verify_ssl"],
                        fallback=(env_fallback, ["K8S_AUTH_VERIFY_SSL", "K8S_AUTH_VALIDATE_CERTS"])),
    ca_cert=dict(type="path", aliases=["ssl_ca_cert"], fallback=(env_fallback, ["K8S_AUTH_SSL_CA_CERT"])),
    client_cert=dict(type="path", aliases=["cert_file"], fallback=(env_fallback, ["K8S_AUTH_CERT_FILE"])),
    client_key=dict(type="path", aliases=["key_file"], no_log=False,
                    fallback=(env_fallback, ["K8S_AUTH_KEY_FILE"])),
    proxy=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_PROXY"])),
    no_proxy=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_NO_PROXY"])),
    proxy_headers=dict(type="dict", options=dict(
        proxy_basic_auth=dict(type="str", no_log=True,
                              fallback=(env_fallback, ["K8S_AUTH_PROXY_HEADERS_PROXY_BASIC_AUTH"])),
        basic_auth=dict(type="str", no_log=True, fallback=(env_fallback, ["K8S_AUTH_PROXY_HEADERS_BASIC_AUTH"])),
        user_agent=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_PROXY_HEADERS_USER_AGENT"])),
    )),
    persist_config=dict(type="bool", fallback=(env_fallback, ["K8S_AUTH_PERSIST_CONFIG"])),
    impersonate_user=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_IMPERSONATE_USER"])),
    impersonate_groups=dict(type="list", elements="str", fallback=(env_fallback, ["K8S_AUTH_IMPERSONATE_GROUPS"])),
    request_timeout=dict(type="float", default=30.0),
)

CONNECTION_OPTION_NAMES = frozenset(CONNECTION_ARG_SPEC)

# Leaves of a kubeconfig that must never be printed (registered as no_log values).
KUBECONFIG_SECRET_KEYS = ("token", "password", "client-key-data", "client-certificate-data", "id-token",
                          "refresh-token", "access-token", "client-secret")


class Kind:
    """A resource type addressed without discovery."""

    def __init__(self, kind, group, version, plural, namespaced=False, deckhouse=True):
        self.kind = kind
        self.group = group
        self.version = version
        self.plural = plural
        self.namespaced = namespaced
        self.deckhouse = deckhouse

    @property
    def api_version(self):
        return "%s/%s" % (self.group, self.version) if self.group else self.version

    def path(self, name=None, namespace=None, subresource=None):
        base = "/apis/%s/%s" % (self.group, self.version) if self.group else "/api/%s" % self.version
        if self.namespaced and namespace:
            base += "/namespaces/%s" % quote(namespace, safe="")
        base += "/" + self.plural
        if name is not None:
            base += "/" + quote(name, safe="")
        if subresource:
            base += "/" + subresource
        return base


KINDS = {k.kind: k for k in (
    Kind("ModuleConfig", "deckhouse.io", "v1alpha1", "moduleconfigs"),
    Kind("Module", "deckhouse.io", "v1alpha1", "modules"),
    Kind("ModuleRelease", "deckhouse.io", "v1alpha1", "modulereleases"),
    Kind("ModuleSource", "deckhouse.io", "v1alpha1", "modulesources"),
    Kind("ModuleUpdatePolicy", "deckhouse.io", "v1alpha2", "moduleupdatepolicies"),
    Kind("ModulePullOverride", "deckhouse.io", "v1alpha2", "modulepulloverrides"),
    Kind("DeckhouseRelease", "deckhouse.io", "v1alpha1", "deckhousereleases"),
    Kind("Secret", "", "v1", "secrets", namespaced=True, deckhouse=False),
    Kind("Pod", "", "v1", "pods", namespaced=True, deckhouse=False),
    Kind("Node", "", "v1", "nodes", deckhouse=False),
)}


class DkpError(Exception):
    """An error with a message fit for the operator; `details` go into the task result."""

    def __init__(self, msg, **details):
        super().__init__(msg)
        self.msg = msg
        self.details = details


class ApiError(DkpError):
    def __init__(self, status, reason, message, body=None):
        super().__init__(message, status=status, reason=reason)
        self.status = status
        self.reason = reason
        self.body = body or {}


class ConflictError(ApiError):
    pass


class RetryPolicy:
    """Bounded exponential backoff with jitter for transient API failures."""

    RETRY_STATUSES = frozenset((429, 500, 502, 503, 504))

    def __init__(self, attempts=5, base=0.2, cap=5.0):
        self.attempts = attempts
        self.base = base
        self.cap = cap

    def delay(self, attempt, retry_after=None):
        if retry_after is not None:
            return min(float(retry_after), self.cap)
        return min(self.cap, self.base * (2 ** attempt)) * (0.5 + random.random() / 2)

    def should_retry(self, attempt, status=None, connection_error=False):
        if attempt + 1 >= self.attempts:
            return False
        return connection_error or status in self.RETRY_STATUSES


def kubeconfig_secret_values(kubeconfig):
    """Secret leaves of an in-memory kubeconfig, to register as no_log values."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in KUBECONFIG_SECRET_KEYS and isinstance(value, str) and value:
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(kubeconfig if isinstance(kubeconfig, dict) else {})
    return found


class _Connection:
    """Where and how to reach the API server: TLS material, credentials, proxy.

    Plain kubeconfigs (token, token file, client certificate, basic auth) and in-cluster credentials are
    read here directly: importing the kubernetes client costs about 0.3 s per task, more than the rest of
    a typical task. Kubeconfigs that need the client's machinery (exec credential plugins, auth-provider
    such as OIDC, several merged files, persist_config) are loaded through kubernetes.config instead.
    """

    def __init__(self):
        self.host = None
        self.verify = True
        self.ca_file = None
        self.ca_data = None
        self.cert_file = None
        self.key_file = None
        self.token = None
        self.basic = None
        self.proxy = None
        self.no_proxy = None
        self.proxy_headers = None
        self.tls_server_name = None
        self.k8s_configuration = None  # set when kubernetes.config did the loading

    def authorization(self):
        if self.k8s_configuration is not None:  # tokens from exec plugins / OIDC may be refreshed
            token = self.k8s_configuration.get_api_key_with_prefix("BearerToken", alias="authorization")
            if token:
                return token
        if self.token:
            return "Bearer " + self.token
        if self.basic:
            return urllib3.util.make_headers(basic_auth="%s:%s" % self.basic)["authorization"]
        return None


_TEMP_FILES = []


def _data_file(b64data, suffix):
    """Write base64 kubeconfig data (a certificate or key) to a private temporary file."""
    import atexit
    import base64
    import tempfile

    fd, path = tempfile.mkstemp(prefix="dkp-", suffix=suffix)
    with os.fdopen(fd, "wb") as f:
        f.write(base64.b64decode(b64data))
    if not _TEMP_FILES:
        atexit.register(lambda: [os.path.exists(p) and os.unlink(p) for p in _TEMP_FILES])
    _TEMP_FILES.append(path)
    return path


def _named(items, name):
    for item in items or []:
        if item.get("name") == name:
            return item
    return None


def _from_kubeconfig_dict(conn, kc, context, base_dir):
    """Fill `conn` from a parsed kubeconfig; False when the user needs kubernetes.config."""
    ctx_name = context or kc.get("current-context")
    ctx = _named(kc.get("contexts"), ctx_name)
    if ctx is None:
        raise DkpError("kubeconfig has no context %r: set `context` to one of %s"
                       % (ctx_name, ", ".join(c.get("name", "?") for c in kc.get("contexts") or []) or "(none)"))
    ctx = ctx.get("context") or {}
    cluster = (_named(kc.get("clusters"), ctx.get("cluster")) or {}).get("cluster") or {}
    user = (_named(kc.get("users"), ctx.get("user")) or {}).get("user") or {}
    if user.get("exec") or user.get("auth-provider"):
        return False

    def path(value):
        return value if os.path.isabs(value) else os.path.join(base_dir, value)

    conn.host = cluster.get("server")
    if not conn.host:
        raise DkpError("kubeconfig cluster %r has no server address" % ctx.get("cluster"))
    conn.verify = not cluster.get("insecure-skip-tls-verify", False)
    if cluster.get("certificate-authority-data"):
        conn.ca_file = _data_file(cluster["certificate-authority-data"], ".crt")
    elif cluster.get("certificate-authority"):
        conn.ca_file = path(cluster["certificate-authority"])
    conn.tls_server_name = cluster.get("tls-server-name")
    conn.proxy = cluster.get("proxy-url")
    if user.get("client-certificate-data"):
        conn.cert_file = _data_file(user["client-certificate-data"], ".crt")
    elif user.get("client-certificate"):
        conn.cert_file = path(user["client-certificate"])
    if user.get("client-key-data"):
        conn.key_file = _data_file(user["client-key-data"], ".key")
    elif user.get("client-key"):
        conn.key_file = path(user["client-key"])
    if user.get("token"):
        conn.token = user["token"]
    elif user.get("tokenFile"):
        with open(path(user["tokenFile"])) as f:
            conn.token = f.read().strip()
    if user.get("username") and user.get("password"):
        conn.basic = (user["username"], user["password"])
    return True


def _with_kubernetes_config(conn, kubeconfig, context, persist):
    """Load through kubernetes.config (exec plugins, OIDC, merged files) and copy what we use."""
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config

    cfg = k8s_client.Configuration()
    try:
        if isinstance(kubeconfig, dict):
            k8s_config.load_kube_config_from_dict(kubeconfig, context=context, client_configuration=cfg,
                                                  persist_config=persist)
        else:
            k8s_config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg,
                                        persist_config=persist)
    except k8s_config.ConfigException as e:
        raise DkpError("Cannot load the kubeconfig: %s" % e)
    conn.host = cfg.host
    conn.verify = cfg.verify_ssl
    conn.ca_file = cfg.ssl_ca_cert
    conn.cert_file = cfg.cert_file
    conn.key_file = cfg.key_file
    conn.proxy = cfg.proxy
    conn.k8s_configuration = cfg
    if cfg.username and cfg.password:
        conn.basic = (cfg.username, cfg.password)


def _load_connection(params):
    """Resolve the connection with kubernetes.core's precedence: explicit parameters beat the kubeconfig;
    `host` with credentials needs no kubeconfig; otherwise in-cluster, then ~/.kube/config."""
    conn = _Connection()
    kubeconfig = params.get("kubeconfig")
    context = params.get("context")
    persist = bool(params.get("persist_config"))
    host = params.get("host")
    direct = host and (params.get("api_key") or (params.get("username") and params.get("password"))
                       or (params.get("client_cert") and params.get("client_key")))
    if not kubeconfig and not direct:
        token_file = "/var/run/secrets/kubernetes.io/serviceaccount/token"
        if os.environ.get("KUBERNETES_SERVICE_HOST") and os.path.exists(token_file):
            with open(token_file) as f:
                conn.token = f.read().strip()
            conn.host = "https://%s:%s" % (os.environ["KUBERNETES_SERVICE_HOST"],
                                           os.environ.get("KUBERNETES_SERVICE_PORT", "443"))
            conn.ca_file = os.path.join(os.path.dirname(token_file), "ca.crt")
        elif not host:
            kubeconfig = os.environ.get("KUBECONFIG") or "~/.kube/config"
    if kubeconfig:
        if isinstance(kubeconfig, dict):
            if persist or not _from_kubeconfig_dict(conn, kubeconfig, context, os.getcwd()):
                _with_kubernetes_config(conn, kubeconfig, context, persist)
        else:
            paths = [os.path.expanduser(p) for p in str(kubeconfig).split(os.pathsep) if p]
            for path in paths:
                if not os.path.exists(path):
                    raise DkpError("kubeconfig %s does not exist: set `kubeconfig` (or K8S_AUTH_KUBECONFIG) to a "
                                   "readable kubeconfig file, or `host` with credentials" % path)
            parsed = None
            if len(paths) == 1 and not persist:
                try:
                    with open(paths[0]) as f:
                        parsed = yaml.safe_load(f) or {}
                except (OSError, yaml.YAMLError) as e:
                    raise DkpError("Cannot read the kubeconfig %s: %s" % (paths[0], e))
            if parsed is None or not _from_kubeconfig_dict(conn, parsed, context, os.path.dirname(paths[0])):
                _with_kubernetes_config(conn, os.pathsep.join(paths), context, persist)
    if host:
        conn.host = host
    if not conn.host:
        raise DkpError("No cluster to talk to: set `kubeconfig` (or K8S_AUTH_KUBECONFIG), or `host` with "
                       "credentials, or run inside a pod")
    conn.host = conn.host.rstrip("/")
    if params.get("api_key"):
        conn.token = params["api_key"]
        conn.k8s_configuration = None
    if params.get("username") and params.get("password"):
        conn.basic = (params["username"], params["password"])
    if params.get("validate_certs") is not None:
        conn.verify = params["validate_certs"]
    if params.get("ca_cert"):
        conn.ca_file = params["ca_cert"]
    if params.get("client_cert"):
        conn.cert_file = params["client_cert"]
    if params.get("client_key"):
        conn.key_file = params["client_key"]
    if params.get("proxy"):
        conn.proxy = params["proxy"]
    if params.get("no_proxy"):
        conn.no_proxy = params["no_proxy"]
    if params.get("proxy_headers"):
        conn.proxy_headers = urllib3.util.make_headers(**{k: v for k, v in params["proxy_headers"].items() if v})
    return conn


def _bypasses_proxy(host, no_proxy):
    from urllib.parse import urlsplit

    hostname = urlsplit(host).hostname or ""
    for entry in (no_proxy or "").split(","):
        entry = entry.strip().lstrip(".")
        if entry and (entry == "*" or hostname == entry or hostname.endswith("." + entry)):
            return True
    return False


class DkpClient:
    """A small, explicit REST client for the kinds in KINDS."""

    def __init__(self, params, retry=None):
        if not HAS_KUBERNETES:
            raise DkpError("The kubernetes and PyYAML Python libraries are required (pip install kubernetes): %s"
                           % KUBERNETES_IMPORT_ERROR)
        self.params = params
        self.timeout = float(params.get("request_timeout") or 30.0)
        self.retry = retry or RetryPolicy()
        self.conn = _load_connection(params)
        self.host = self.conn.host
        self._pool = None

    # -- plumbing -------------------------------------------------------------------------------

    @property
    def pool(self):
        if self._pool is None:
            c = self.conn
            tls = dict(cert_reqs="CERT_REQUIRED" if c.verify else "CERT_NONE", ca_certs=c.ca_file,
                       cert_file=c.cert_file, key_file=c.key_file, maxsize=4)
            if c.tls_server_name:
                tls["server_hostname"] = c.tls_server_name
            if not c.verify:
                urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            if c.proxy and not _bypasses_proxy(c.host, c.no_proxy):
                self._pool = urllib3.ProxyManager(c.proxy, proxy_headers=c.proxy_headers, **tls)
            else:
                self._pool = urllib3.PoolManager(**tls)
        return self._pool

    def _headers(self, content_type=None):
        headers = urllib3.HTTPHeaderDict()
        headers["Accept"] = "application/json"
        headers["User-Agent"] = "deckhouse.platform"
        if content_type:
            headers["Content-Type"] = content_type
        auth = self.conn.authorization()
        if auth:
            headers["Authorization"] = auth
        if self.params.get("impersonate_user"):
            headers["Impersonate-User"] = self.params["impersonate_user"]
        for group in self.params.get("impersonate_groups") or []:
            headers.add("Impersonate-Group", group)
        return headers

    def _url(self, path, query=None):
        query = {k: v for k, v in (query or {}).items() if v is not None}
        return self.host + path + ("?" + urlencode(query, doseq=True) if query else "")

    def raw(self, method, path, query=None, body=None, content_type=None, timeout=None, stream=False):
        """One HTTP request with bounded retries on 429/5xx and dropped connections."""
        data = None if body is None else json.dumps(body).encode()
        attempt = 0
        while True:
            try:
                resp = self.pool.request(
                    method, self._url(path, query), body=data, headers=self._headers(content_type),
                    timeout=urllib3.Timeout(connect=min(10.0, self.timeout), read=timeout or self.timeout),
                    preload_content=not stream, retries=False)
            except (urllib3.exceptions.HTTPError, socket.error) as e:
                if self.retry.should_retry(attempt, connection_error=True):
                    time.sleep(self.retry.delay(attempt))
                    attempt += 1
                    continue
                raise DkpError("Cannot reach the Kubernetes API at %s: %s" % (self.host, _short_error(e)))
            if resp.status in self.retry.RETRY_STATUSES and self.retry.should_retry(attempt, status=resp.status):
                retry_after = resp.headers.get("Retry-After")
                if stream:
                    resp.release_conn()
                time.sleep(self.retry.delay(attempt, retry_after if retry_after and retry_after.isdigit() else None))
                attempt += 1
                continue
            return resp

    def request(self, method, path, query=None, body=None, content_type=None, kind=None, name=None):
        resp = self.raw(method, path, query=query, body=body, content_type=content_type)
        payload = _decode(resp.data)
        if 200 <= resp.status < 300:
            return payload
        raise self._api_error(resp.status, payload, kind, name)

    def _api_error(self, status, payload, kind=None, name=None):
        payload = payload if isinstance(payload, dict) else {"message": str(payload or "")}
        reason = payload.get("reason", "")
        message = payload.get("message") or "HTTP %s" % status
        if status == 404 and kind is not None:
            details = payload.get("details") or {}
            if not (name and details.get("name") == name):
                return ApiError(404, "NotServed", self.not_served_message(kind), payload)
        if status == 403:
            message = "Forbidden: %s. Grant the user RBAC permission for this request, or use other credentials." % message
        if status == 401:
            message = "Unauthorized: the API server at %s rejected the credentials (%s)" % (self.host, message)
        cls = ConflictError if status == 409 else ApiError
        return cls(status, reason, message, payload)

    def not_served_message(self, kind):
        hint = ": is this a Deckhouse cluster?" if kind.deckhouse else ""
        return "The cluster at %s does not serve %s %s%s" % (self.host, kind.api_version, kind.kind, hint)

    # -- verbs ------------------------------------------------------------------------------------

    def get(self, kind, name, namespace=None):
        """The object, or None when it does not exist."""
        k = KINDS[kind]
        try:
            return self.request("GET", k.path(name, namespace), kind=k, name=name)
        except ApiError as e:
            if e.status == 404 and e.reason != "NotServed":
                return None
            raise

    def list(self, kind, namespace=None, label_selector=None, field_selector=None):
        """(items, resourceVersion) of a list."""
        k = KINDS[kind]
        query = {"labelSelector": label_selector, "fieldSelector": field_selector}
        result = self.request("GET", k.path(namespace=namespace), query=query, kind=k)
        items = result.get("items") or []
        for item in items:  # list items come without apiVersion/kind
            item.setdefault("apiVersion", k.api_version)
            item.setdefault("kind", k.kind)
        return items, (result.get("metadata") or {}).get("resourceVersion")

    def create(self, kind, body, namespace=None, dry_run=False):
        k = KINDS[kind]
        query = {"fieldManager": FIELD_MANAGER, "dryRun": "All" if dry_run else None}
        return self.request("POST", k.path(namespace=namespace), query=query, body=body, kind=k)

    def merge_patch(self, kind, name, patch, namespace=None, dry_run=False, subresource=None):
        """RFC 7386 merge patch: names only the fields it changes, so other writers' fields survive.
        A `metadata.resourceVersion` in the patch makes the server refuse a stale write with 409."""
        k = KINDS[kind]
        query = {"fieldManager": FIELD_MANAGER, "dryRun": "All" if dry_run else None}
        return self.request("PATCH", k.path(name, namespace, subresource), query=query, body=patch,
                            content_type="application/merge-patch+json", kind=k, name=name)

    def delete(self, kind, name, namespace=None, dry_run=False):
        """The deleted object (or Status), or None when it was already gone."""
        k = KINDS[kind]
        query = {"dryRun": "All" if dry_run else None}
        try:
            return self.request("DELETE", k.path(name, namespace), query=query, kind=k, name=name)
        except ApiError as e:
            if e.status == 404 and e.reason != "NotServed":
                return None
            raise

    def watch(self, kind, resource_version, namespace=None, name=None, label_selector=None, timeout=30):
        """Yield (type, object) watch events until the server closes the stream or `timeout` passes.

        Raises ApiError(410) when the resourceVersion is too old; callers re-list and resume."""
        k = KINDS[kind]
        query = {"watch": "1", "resourceVersion": resource_version, "allowWatchBookmarks": "true",
                 "timeoutSeconds": max(1, int(timeout)), "labelSelector": label_selector,
                 "fieldSelector": "metadata.name=%s" % name if name else None}
        resp = self.raw("GET", k.path(namespace=namespace), query=query, stream=True, timeout=timeout + 5)
        try:
            if resp.status != 200:
                raise self._api_error(resp.status, _decode(resp.read()), k)
            buf = b""
            for chunk in resp.stream(4096, decode_content=True):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        obj = event.get("object") or {}
                        raise ApiError(obj.get("code", 500), obj.get("reason", ""), obj.get("message", "watch error"))
                    yield event.get("type"), event.get("object") or {}
        finally:
            resp.release_conn()

    def exec_in_pod(self, namespace, pod, container, command, timeout=None):
        """Run a command in a pod; (rc, stdout, stderr). Raises DkpError when exec is refused."""
        from kubernetes import client as k8s_client
        from kubernetes.client.rest import ApiException
        from kubernetes.stream import stream as k8s_stream

        api = k8s_client.CoreV1Api(self._kubernetes_api_client())
        try:
            ws = k8s_stream(api.connect_get_namespaced_pod_exec, pod, namespace, container=container,
                            command=command, stdout=True, stderr=True, stdin=False, tty=False,
                            _preload_content=False, _request_timeout=timeout or self.timeout)
        except ApiException as e:
            body = _decode(e.body) if e.body else {}
            message = body.get("message") if isinstance(body, dict) else None
            if e.status == 403:
                raise DkpError("Forbidden: cannot exec into pod %s/%s (%s). Grant `create` on `pods/exec` in "
                               "namespace %s to this user." % (namespace, pod, message or e.reason, namespace))
            raise DkpError("exec into pod %s/%s failed: %s" % (namespace, pod, message or e.reason or e),
                           status=e.status)
        except Exception as e:  # websocket errors carry the handshake status in the text
            text = str(e)
            if "403" in text:
                raise DkpError("Forbidden: cannot exec into pod %s/%s. Grant `create` on `pods/exec` in namespace "
                               "%s to this user." % (namespace, pod, namespace))
            raise DkpError("exec into pod %s/%s failed: %s" % (namespace, pod, _short_error(e)))
        stdout, stderr = [], []
        deadline = time.monotonic() + (timeout or self.timeout)
        try:
            while ws.is_open() and time.monotonic() < deadline:
                ws.update(timeout=1)
                if ws.peek_stdout():
                    stdout.append(ws.read_stdout())
                if ws.peek_stderr():
                    stderr.append(ws.read_stderr())
            timed_out = ws.is_open()
            rc = None if timed_out else _exec_returncode(ws)
        finally:
            ws.close()
        if timed_out:
            raise DkpError("exec into pod %s/%s timed out after %ss" % (namespace, pod, timeout or self.timeout))
        return rc, "".join(stdout), "".join(stderr)

    def _kubernetes_api_client(self):
        """A kubernetes ApiClient with this connection (pod exec needs the client's websocket support)."""
        from kubernetes import client as k8s_client

        c = self.conn
        cfg = c.k8s_configuration or k8s_client.Configuration()
        cfg.host = c.host
        cfg.verify_ssl = c.verify
        cfg.ssl_ca_cert = c.ca_file
        cfg.cert_file = c.cert_file
        cfg.key_file = c.key_file
        cfg.proxy = c.proxy if c.proxy and not _bypasses_proxy(c.host, c.no_proxy) else None
        cfg.proxy_headers = c.proxy_headers
        if c.tls_server_name:
            cfg.tls_server_name = c.tls_server_name
        api_client = k8s_client.ApiClient(cfg)
        auth = c.authorization()
        if auth:
            # The client's websocket code forwards only a lowercase `authorization` header (and no
            # impersonation headers: deckhouse_queue_info warns about that).
            api_client.set_default_header("authorization", auth)
        return api_client


def _exec_returncode(ws):
    """The command's exit code. Some kubelets (kwok among them) report a failure without the
    NonZeroExitCode cause the client parses, only "... exit status N" in the message."""
    try:
        return ws.returncode
    except (ValueError, TypeError, KeyError, IndexError) as e:
        match = re.search(r"exit status (\d+)", str(e))
        return int(match.group(1)) if match else 1


def _decode(data):
    if not data:
        return {}
    try:
        return json.loads(data)
    except ValueError:
        return {"message": data.decode("utf-8", "replace").strip() if isinstance(data, bytes) else str(data)}


def _short_error(e):
    text = str(e)
    return text if len(text) < 300 else text[:300] + "..."
