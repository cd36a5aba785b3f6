# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# Apache License 2.0 (see LICENSE)
"""Connection to a DKP cluster's API server, shared by every module and lookup.

Known kinds are addressed by a fixed group/version/plural table, so a task never pays for API
discovery. Requests go through the kubernetes client's connection pool (for its kubeconfig,
exec-plugin and OIDC support) but are built here, which gives one place for retries, timeouts,
impersonation and error translation.
"""

from __future__ import annotations

import json
import os
import random
import socket
import time
from urllib.parse import quote, urlencode

from ansible.module_utils.basic import env_fallback

try:
    import urllib3
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config

    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError as e:  # pragma: no cover - reported by the module
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = e

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


def _load_configuration(params):
    """Build a kubernetes Configuration with kubernetes.core's precedence rules."""
    cfg = k8s_client.Configuration()
    kubeconfig = params.get("kubeconfig")
    context = params.get("context")
    persist = bool(params.get("persist_config"))
    host = params.get("host")
    has_direct_auth = host and (params.get("api_key") or (params.get("username") and params.get("password"))
                                or (params.get("client_cert") and params.get("client_key")))
    try:
        if isinstance(kubeconfig, dict):
            k8s_config.load_kube_config_from_dict(kubeconfig, context=context, client_configuration=cfg,
                                                  persist_config=persist)
        elif kubeconfig:
            paths = os.path.expanduser(str(kubeconfig))
            for path in paths.split(os.pathsep):
                if not os.path.exists(path):
                    raise DkpError("kubeconfig %s does not exist: set `kubeconfig` (or K8S_AUTH_KUBECONFIG) to a "
                                   "readable kubeconfig file" % path)
            k8s_config.load_kube_config(config_file=paths, context=context, client_configuration=cfg,
                                        persist_config=persist)
        elif not has_direct_auth:
            try:
                k8s_config.load_incluster_config(client_configuration=cfg)
            except k8s_config.ConfigException:
                default = os.path.expanduser(os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)[0])
                if not host and not os.path.exists(default):
                    raise DkpError("No cluster to talk to: set `kubeconfig` (or K8S_AUTH_KUBECONFIG), or `host` with "
                                   "credentials, or run inside a pod")
                if os.path.exists(default):
                    k8s_config.load_kube_config(context=context, client_configuration=cfg, persist_config=persist)
    except k8s_config.ConfigException as e:
        raise DkpError("Cannot load the kubeconfig: %s" % e)
    if host:
        cfg.host = host.rstrip("/")
    if params.get("api_key"):
        cfg.api_key = {"authorization": "Bearer " + params["api_key"]}
        cfg.api_key_prefix = {}
    if params.get("username"):
        cfg.username = params["username"]
    if params.get("password"):
        cfg.password = params["password"]
    if params.get("validate_certs") is not None:
        cfg.verify_ssl = params["validate_certs"]
    if params.get("ca_cert"):
        cfg.ssl_ca_cert = params["ca_cert"]
    if params.get("client_cert"):
        cfg.cert_file = params["client_cert"]
    if params.get("client_key"):
        cfg.key_file = params["client_key"]
    if params.get("proxy"):
        cfg.proxy = params["proxy"]
    if params.get("no_proxy"):
        cfg.no_proxy = params["no_proxy"]
    if params.get("proxy_headers"):
        headers = {k: v for k, v in params["proxy_headers"].items() if v}
        cfg.proxy_headers = urllib3.util.make_headers(**headers)
    return cfg


class DkpClient:
    """A small, explicit REST client for the kinds in KINDS."""

    def __init__(self, params, retry=None):
        if not HAS_KUBERNETES:
            raise DkpError("The kubernetes Python library is required (pip install kubernetes): %s"
                           % KUBERNETES_IMPORT_ERROR)
        self.params = params
        self.timeout = float(params.get("request_timeout") or 30.0)
        self.retry = retry or RetryPolicy()
        self.configuration = _load_configuration(params)
        self.host = self.configuration.host
        self._api_client = None
        self._pool = None

    # -- plumbing -------------------------------------------------------------------------------

    @property
    def api_client(self):
        if self._api_client is None:
            self._api_client = k8s_client.ApiClient(self.configuration)
            if self.params.get("impersonate_user"):
                self._api_client.set_default_header("Impersonate-User", self.params["impersonate_user"])
        return self._api_client

    @property
    def pool(self):
        if self._pool is None:
            self._pool = self.api_client.rest_client.pool_manager
        return self._pool

    def _headers(self, content_type=None):
        headers = urllib3.HTTPHeaderDict()
        headers["Accept"] = "application/json"
        headers["User-Agent"] = "deckhouse.platform"
        if content_type:
            headers["Content-Type"] = content_type
        token = self.configuration.get_api_key_with_prefix("BearerToken", alias="authorization")
        if token:
            headers["Authorization"] = token
        elif self.configuration.username and self.configuration.password:
            headers["Authorization"] = self.configuration.get_basic_auth_token()
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
        from kubernetes.client.rest import ApiException
        from kubernetes.stream import stream as k8s_stream

        api = k8s_client.CoreV1Api(self.api_client)
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
            rc = ws.returncode if not timed_out else None
        finally:
            ws.close()
        if timed_out:
            raise DkpError("exec into pod %s/%s timed out after %ss" % (namespace, pod, timeout or self.timeout))
        return rc, "".join(stdout), "".join(stderr)


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
