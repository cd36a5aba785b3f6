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

import contextlib
import json
import math
import os
import re
import random
import socket
import ssl
import threading
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
    # No `default` here: DkpClient falls back to DKP_RETRY_TIMEOUT, then 120, so lookups (whose options
    # come from the doc fragment) read the same environment variable as modules.
    retry_timeout=dict(type="float", fallback=(env_fallback, ["DKP_RETRY_TIMEOUT"])),
)

DEFAULT_RETRY_TIMEOUT = 120.0
DEFAULT_REQUEST_TIMEOUT = 30.0

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
    Kind("Lease", "coordination.k8s.io", "v1", "leases", namespaced=True, deckhouse=False),
    Kind("Node", "", "v1", "nodes", deckhouse=False),
)}


class DkpError(Exception):
    """An error with a message fit for the operator; `details` go into the task result."""

    def __init__(self, msg, **details):
        super().__init__(msg)
        self.msg = msg
        self.details = details


class ApiError(DkpError):
    """The API server answered with an error status (`status`, `reason` from the Status object)."""

    def __init__(self, status, reason, message, body=None, **details):
        details.setdefault("status", status)
        details.setdefault("reason", reason)
        super().__init__(message, **details)
        self.status = status
        self.reason = reason
        self.body = body or {}


class ConflictError(ApiError):
    """409: the object changed since we read it (or already exists); callers re-read."""


class AuthError(ApiError):
    """401: the credentials were rejected."""


class ForbiddenError(ApiError):
    """403: RBAC refused the request (`dry_run` is true when it was a check-mode request)."""


class NotServedError(ApiError):
    """The cluster does not serve the kind at all (a 404 for the collection, not for one object)."""

    def __init__(self, message, body=None, **details):
        super().__init__(404, "NotServed", message, body, **details)


class RequestTooLargeError(ApiError):
    """413: the request body is over the API server's limit; retrying cannot help."""


class WebhookUnavailableError(ApiError):
    """An admission webhook could not be called (Deckhouse is restarting), after retries."""


class UnreachableError(DkpError):
    """No HTTP answer: connection refused or reset, DNS, TLS; raised after retries (TLS errors at once)."""

    status = None
    reason = "Unreachable"


def check_positive(params, names, allow_zero=()):
    """Refuse numeric options that are not > 0 (>= 0 for `allow_zero`), naming the option.

    Called before any request, so a bad value never starts a write. Returns nothing; raises DkpError."""
    for name in names:
        value = params.get(name)
        if value is None:
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise DkpError("%s must be a number of seconds, got %r" % (name, value))
        if math.isnan(number) or math.isinf(number):
            raise DkpError("%s must be a finite number of seconds, got %r" % (name, value))
        if name in allow_zero:
            if number < 0:
                raise DkpError("%s must be 0 or more, got %r" % (name, value))
        elif number <= 0:
            raise DkpError("%s must be greater than 0, got %r" % (name, value))


class RetryPolicy:
    """Jittered exponential backoff for transient API failures, bounded by total time.

    `timeout` (seconds) bounds the whole retry loop of one request; `attempts`, when set, also bounds the
    number of tries (kept for callers that want a short, counted loop)."""

    RETRY_STATUSES = frozenset((429, 500, 502, 503, 504))

    def __init__(self, attempts=None, base=0.5, cap=5.0, timeout=DEFAULT_RETRY_TIMEOUT, retry_after_cap=30.0):
        self.attempts = attempts
        self.base = base
        self.cap = cap
        self.timeout = timeout
        self.retry_after_cap = retry_after_cap

    def delay(self, attempt, retry_after=None):
        if retry_after is not None:
            return max(0.0, min(float(retry_after), self.retry_after_cap))
        return min(self.cap, self.base * (2 ** min(attempt, 30))) * (0.5 + random.random() / 2)

    def should_retry(self, attempt, status=None, connection_error=False):
        if self.attempts is not None and attempt + 1 >= self.attempts:
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
        # TLS material: a path given by the user, or the PEM bytes of kubeconfig *-data fields, which stay in
        # memory (see _secret_file): a killed task must not leave a private key on disk.
        self.ca_file = None
        self.ca_data = None
        self.cert_file = None
        self.cert_data = None
        self.key_file = None
        self.key_data = None
        self.token = None
        self.basic = None
        self.proxy = None
        self.no_proxy = None
        self.proxy_from_env = False
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


@contextlib.contextmanager
def _secret_file(data):
    """A path that reads as `data` (PEM bytes) while the block runs, and nothing on disk afterwards.

    Linux: an anonymous memory file (memfd) opened as /proc/self/fd/N; it vanishes with the process.
    Elsewhere: a 0600 temporary file unlinked as soon as the block ends (the TLS context has read it)."""
    import tempfile

    if data is None:
        yield None
        return
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        fd = os.memfd_create("dkp-tls", getattr(os, "MFD_CLOEXEC", 1))
        try:
            os.write(fd, data)
            yield "/proc/self/fd/%d" % fd
        finally:
            os.close(fd)
        return
    fd, path = tempfile.mkstemp(prefix="dkp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        yield path
    finally:
        os.unlink(path)


def _b64(data):
    import base64

    return base64.b64decode(data)


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
        conn.ca_data = _b64(cluster["certificate-authority-data"])
    elif cluster.get("certificate-authority"):
        conn.ca_file = path(cluster["certificate-authority"])
    conn.tls_server_name = cluster.get("tls-server-name")
    conn.proxy = cluster.get("proxy-url")
    if user.get("client-certificate-data"):
        conn.cert_data = _b64(user["client-certificate-data"])
    elif user.get("client-certificate"):
        conn.cert_file = path(user["client-certificate"])
    if user.get("client-key-data"):
        conn.key_data = _b64(user["client-key-data"])
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
        raise DkpError("Cannot load the kubeconfig: %s" % e) from e
    conn.host = cfg.host
    conn.verify = cfg.verify_ssl
    conn.ca_file = cfg.ssl_ca_cert
    conn.cert_file = cfg.cert_file
    conn.key_file = cfg.key_file
    _take_loader_temp_files(conn)
    conn.proxy = cfg.proxy
    conn.k8s_configuration = cfg
    if cfg.username and cfg.password:
        conn.basic = (cfg.username, cfg.password)


def _take_loader_temp_files(conn):
    """kubernetes.config writes *-data fields to temporary files removed only at exit: read them into
    memory and remove them now, so a killed task leaves no key on disk."""
    try:
        from kubernetes.config import kube_config
    except ImportError:  # pragma: no cover
        return
    cache = getattr(kube_config, "_temp_files", None)
    if not isinstance(cache, dict):
        return
    temp = set(cache.values())
    taken = {}
    for attr in ("ca", "cert", "key"):
        path = getattr(conn, attr + "_file")
        if not path or path not in temp:
            continue
        if path not in taken:
            try:
                with open(path, "rb") as f:
                    taken[path] = f.read()
            except OSError:
                continue
        setattr(conn, attr + "_data", taken[path])
        setattr(conn, attr + "_file", None)
    for path in taken:
        try:
            os.unlink(path)
        except OSError:
            pass
        # the loader caches content -> path; a later load in this process (lookups run in the
        # controller) must write a new file rather than get the removed one
        for key in [k for k, v in cache.items() if v == path]:
            del cache[key]


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
        conn.ca_file, conn.ca_data = params["ca_cert"], None
    if params.get("client_cert"):
        conn.cert_file, conn.cert_data = params["client_cert"], None
    if params.get("client_key"):
        conn.key_file, conn.key_data = params["client_key"], None
    if params.get("proxy"):
        conn.proxy = params["proxy"]
    if params.get("no_proxy"):
        conn.no_proxy = params["no_proxy"]
    if not conn.proxy:
        _proxy_from_environment(conn)
    if params.get("proxy_headers"):
        conn.proxy_headers = urllib3.util.make_headers(**{k: v for k, v in params["proxy_headers"].items() if v})
    return conn


def _env(*names):
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def _proxy_from_environment(conn):
    """HTTPS_PROXY / HTTP_PROXY / NO_PROXY as kubectl (Go's ProxyFromEnvironment) reads them; used only
    when neither `proxy` nor the kubeconfig's proxy-url names a proxy."""
    from urllib.parse import urlsplit

    scheme = urlsplit(conn.host).scheme
    proxy = _env("HTTPS_PROXY", "https_proxy") if scheme == "https" else _env("HTTP_PROXY", "http_proxy")
    if not proxy:
        return
    if "://" not in proxy:  # Go accepts host:port and means http://host:port
        proxy = "http://" + proxy
    conn.proxy = proxy
    conn.proxy_from_env = True
    conn.no_proxy = conn.no_proxy or _env("NO_PROXY", "no_proxy")


def _bypasses_proxy(host, no_proxy, from_env=False):
    """Whether `host` skips the proxy: NO_PROXY entries are `*`, a domain (with or without a leading dot,
    subdomains included), a host:port, an IP or a CIDR. Like Go, a proxy from the environment is never
    used for localhost or loopback addresses."""
    import ipaddress
    from urllib.parse import urlsplit

    parts = urlsplit(host)
    hostname = (parts.hostname or "").lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        ip = ipaddress.ip_address(hostname)
    except ValueError:
        ip = None
    if from_env and (hostname == "localhost" or (ip is not None and ip.is_loopback)):
        return True
    for entry in (no_proxy or "").split(","):
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        if ip is not None and "/" in entry:
            try:
                if ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        entry_host, _sep, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if entry_port and entry_port.isdigit():
            if int(entry_port) != port:
                continue
            entry = entry_host
        entry = entry.lstrip(".")
        if entry and (hostname == entry or hostname.endswith("." + entry)):
            return True
    return False


def _is_webhook_failure(status, payload):
    """The API server's wording when it could not call an admission webhook (the only place that reads
    Status text: callers get WebhookUnavailableError instead)."""
    message = payload.get("message") if isinstance(payload, dict) else None
    return status >= 500 and isinstance(message, str) and "failed calling webhook" in message


def _tls_verify_error(e):
    """The ssl.SSLCertVerificationError behind a urllib3 error, if any."""
    seen = set()
    stack = [e]
    while stack:
        err = stack.pop()
        if err is None or id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, ssl.SSLCertVerificationError):
            return err
        stack.extend([getattr(err, "reason", None), err.__cause__, err.__context__]
                     + [a for a in getattr(err, "args", ()) if isinstance(a, BaseException)])
    return None


class DkpClient:
    """A small, explicit REST client for the kinds in KINDS.

    Every request is retried with jittered backoff on connection errors, 429 (honouring Retry-After),
    500/502/503/504 and admission webhooks that cannot be called, for up to `retry_timeout` seconds in
    total. Writes are safe to repeat: they are merge patches guarded by resourceVersion (a repeated write
    that was applied gets 409 and the caller re-reads) or creates (409 AlreadyExists)."""

    def __init__(self, params, retry=None, clock=None, sleep=None):
        if not HAS_KUBERNETES:
            raise DkpError("The kubernetes and PyYAML Python libraries are required (pip install kubernetes): %s"
                           % KUBERNETES_IMPORT_ERROR)
        self.params = params
        numbers = dict(request_timeout=params.get("request_timeout"), retry_timeout=params.get("retry_timeout"))
        if numbers["retry_timeout"] is None and os.environ.get("DKP_RETRY_TIMEOUT"):
            numbers["retry_timeout"] = os.environ["DKP_RETRY_TIMEOUT"]
        check_positive(numbers, ("request_timeout", "retry_timeout"))
        self.timeout = float(numbers["request_timeout"] or DEFAULT_REQUEST_TIMEOUT)
        self.retry_timeout = float(numbers["retry_timeout"] or DEFAULT_RETRY_TIMEOUT)
        self.retry = retry or RetryPolicy(timeout=self.retry_timeout)
        self._clock = clock or time.monotonic
        self._sleep = sleep or time.sleep
        # An absolute cap (client clock) set by retry_window(); per thread, since desired_state waits on
        # several kinds at once through one client.
        self._retry_local = threading.local()
        self.conn = _load_connection(params)
        self.host = self.conn.host
        self._pool = None

    # -- plumbing -------------------------------------------------------------------------------

    def ssl_context(self):
        """The TLS context: CA and client key loaded from memory, never from a file we wrote."""
        c = self.conn
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if c.verify:
            try:
                if c.ca_data:
                    ctx.load_verify_locations(cadata=c.ca_data.decode("ascii", "replace"))
                elif c.ca_file:
                    ctx.load_verify_locations(cafile=c.ca_file)
                else:
                    ctx.load_default_certs()
            except (ssl.SSLError, OSError, ValueError) as e:
                raise DkpError("Cannot load the CA certificate%s: %s. Check `ca_cert` (or the kubeconfig's "
                               "certificate-authority)." % (" " + c.ca_file if c.ca_file else "", e)) from e
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if c.cert_data or c.cert_file:
            try:
                with _secret_file(c.cert_data) as cert_path, _secret_file(c.key_data) as key_path:
                    ctx.load_cert_chain(cert_path or c.cert_file, key_path or c.key_file)
            except (ssl.SSLError, OSError) as e:
                raise DkpError("Cannot load the client certificate and key: %s. Check `client_cert` and "
                               "`client_key` (or the kubeconfig's client-certificate/client-key)." % e) from e
        return ctx

    @property
    def pool(self):
        if self._pool is None:
            c = self.conn
            tls = dict(ssl_context=self.ssl_context(), cert_reqs="CERT_REQUIRED" if c.verify else "CERT_NONE",
                       maxsize=4)
            if c.tls_server_name:
                tls["server_hostname"] = c.tls_server_name
            if not c.verify:
                urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            if c.proxy and not _bypasses_proxy(c.host, c.no_proxy, c.proxy_from_env):
                self._pool = urllib3.ProxyManager(c.proxy, proxy_headers=c.proxy_headers, **tls)
            else:
                self._pool = urllib3.PoolManager(**tls)
        return self._pool

    @property
    def _retry_until(self):
        return getattr(self._retry_local, "until", None)

    @_retry_until.setter
    def _retry_until(self, value):
        self._retry_local.until = value

    @contextlib.contextmanager
    def retry_window(self, seconds):
        """Within the block, retries of one request end after `seconds` at most (a wait bounds the client
        by its own deadline: it retries itself, and must not sleep past its timeout)."""
        previous = self._retry_until
        until = self._clock() + max(0.0, seconds)
        self._retry_until = until if previous is None else min(previous, until)
        try:
            yield
        finally:
            self._retry_until = previous

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
        """One HTTP request, retried on transient failures for up to `retry_timeout` seconds.

        Returns the last response (which may still be a 5xx when the budget ran out: request() turns it
        into the typed error); raises UnreachableError when no answer came at all."""
        data = None if body is None else json.dumps(body).encode()
        started = self._clock()
        end = started + self.retry.timeout if self.retry.timeout is not None else None
        if self._retry_until is not None:
            end = self._retry_until if end is None else min(end, self._retry_until)
        attempt = 0
        self.last_retries = None
        while True:
            try:
                resp = self.pool.request(
                    method, self._url(path, query), body=data, headers=self._headers(content_type),
                    timeout=urllib3.Timeout(connect=min(10.0, self.timeout), read=timeout or self.timeout),
                    preload_content=not stream, retries=False)
            except (urllib3.exceptions.HTTPError, socket.error) as e:
                tls = _tls_verify_error(e)
                if tls is not None:
                    reason = str(getattr(tls, "verify_message", None) or tls).rstrip(".")
                    raise UnreachableError(
                        "TLS verification of the Kubernetes API at %s failed: %s. Set `ca_cert` to the cluster's "
                        "CA (or fix the kubeconfig's certificate-authority), or `validate_certs: false` to skip "
                        "verification (insecure)." % (self.host, reason),
                        host=self.host, tls=True) from e
                delay = self._next_delay(attempt, end, connection_error=True)
                if delay is not None:
                    self._sleep(delay)
                    attempt += 1
                    continue
                raise UnreachableError(
                    "Cannot reach the Kubernetes API at %s%s: %s. Check `host`/the kubeconfig and the network; if "
                    "the API server is restarting, raise `retry_timeout`." % (
                        self.host, self._retried_note(started, attempt), _short_error(e)),
                    host=self.host, attempts=attempt + 1) from e
            if resp.status in self.retry.RETRY_STATUSES:
                retry_after = resp.headers.get("Retry-After")
                retry_after = float(retry_after) if retry_after and retry_after.isdigit() else None
                delay = self._next_delay(attempt, end, status=resp.status, retry_after=retry_after)
                if delay is not None:
                    if stream:
                        resp.drain_conn()
                        resp.release_conn()
                    self._sleep(delay)
                    attempt += 1
                    continue
            self.last_retries = (attempt, self._clock() - started) if attempt else None
            return resp

    def _next_delay(self, attempt, end, status=None, connection_error=False, retry_after=None):
        """Seconds to sleep before the next try, or None when the request must not be retried again."""
        if not self.retry.should_retry(attempt, status=status, connection_error=connection_error):
            return None
        delay = self.retry.delay(attempt, retry_after)
        if end is not None:
            left = end - self._clock()
            if left <= 0:
                return None
            delay = min(delay, left)
        return delay

    def _retried_note(self, started, attempt):
        if not attempt:
            return ""
        return " (tried %d times over %ds)" % (attempt + 1, int(round(self._clock() - started)))

    def request(self, method, path, query=None, body=None, content_type=None, kind=None, name=None):
        resp = self.raw(method, path, query=query, body=body, content_type=content_type)
        payload = _decode(resp.data)
        if 200 <= resp.status < 300:
            return payload
        raise self._api_error(resp.status, payload, kind, name, method=method, query=query)

    def _api_error(self, status, payload, kind=None, name=None, method=None, query=None):
        payload = payload if isinstance(payload, dict) else {"message": str(payload or "")}
        reason = payload.get("reason", "")
        message = payload.get("message") or "HTTP %s" % status
        retried = getattr(self, "last_retries", None)
        after = "for %ds, %d attempts" % (int(round(retried[1])), retried[0] + 1) if retried else ""
        dry_run = bool(query and query.get("dryRun"))
        if status == 404 and kind is not None:
            details = payload.get("details") or {}
            if not (name and details.get("name") == name):
                return NotServedError(self.not_served_message(kind), payload)
        if status == 401:
            return AuthError(status, reason, "Unauthorized: the API server at %s rejected the credentials (%s)"
                             % (self.host, message), payload)
        if status == 403:
            if dry_run:
                verb = {"PATCH": "patch", "POST": "create", "DELETE": "delete", "PUT": "update"}.get(method, method)
                return ForbiddenError(
                    status, reason, "Forbidden: %s. Check mode sends the write as a server-side dry run, which "
                    "needs the same RBAC permission as the write itself (`%s`%s on this resource); grant it, or "
                    "run without check mode." % (message, verb, " or `create`" if verb == "patch" else ""),
                    payload, dry_run=True)
            return ForbiddenError(status, reason, "Forbidden: %s. Grant the user RBAC permission for this request, "
                                  "or use other credentials." % message, payload)
        if status == 409:
            return ConflictError(status, reason, message, payload, after_retry=bool(retried))
        if status == 413:
            return RequestTooLargeError(status, reason, "request too large (413): %s. The API server (and etcd) "
                                        "limit an object to about 1.5 MB; make the value smaller." % message, payload)
        if _is_webhook_failure(status, payload):
            return WebhookUnavailableError(
                status, reason, "Deckhouse's admission webhook is down (it could not be called %s): Deckhouse is "
                "probably restarting (or its webhook service has no endpoints). Try again later, or raise "
                "`retry_timeout`. The API server at %s said: %s" % (after or "once", self.host, message), payload)
        if status in self.retry.RETRY_STATUSES:
            return ApiError(status, reason, "The Kubernetes API at %s answered HTTP %s%s: the API server is "
                            "starting, overloaded or restarting. Try again later, or raise `retry_timeout`. It said: "
                            "%s" % (self.host, status, " (%s)" % after if after else "", message), payload)
        return ApiError(status, reason, message, payload)

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
                raise self._api_error(resp.status, _decode(resp.read()), k, method="GET")
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
                        # 410 Gone (history compacted) arrives this way; the wait re-lists
                        raise ApiError(obj.get("code", 500), obj.get("reason", ""), obj.get("message", "watch error"),
                                       obj)
                    yield event.get("type"), event.get("object") or {}
        finally:
            resp.release_conn()

    def exec_in_pod(self, namespace, pod, container, command, timeout=None):
        """Run a command in a pod; (rc, stdout, stderr).

        Raises ForbiddenError / AuthError when exec is refused (retrying will not help), DkpError otherwise."""
        from kubernetes import client as k8s_client
        from kubernetes.client.rest import ApiException
        from kubernetes.stream import stream as k8s_stream

        where = "%s/%s" % (namespace, pod)
        forbidden = ("Forbidden: cannot exec into pod %s%s. Grant `create` on `pods/exec` in namespace %s to this "
                     "user.")
        with self._kubernetes_api_client() as api_client:
            api = k8s_client.CoreV1Api(api_client)
            try:
                ws = k8s_stream(api.connect_get_namespaced_pod_exec, pod, namespace, container=container,
                                command=command, stdout=True, stderr=True, stdin=False, tty=False,
                                _preload_content=False, _request_timeout=timeout or self.timeout)
            except ApiException as e:
                body = _decode(e.body) if e.body else {}
                message = body.get("message") if isinstance(body, dict) else None
                # The client reports a refused websocket handshake as ApiException(status=0) raised while
                # handling websocket's exception, which carries the HTTP status as `status_code`.
                status = e.status or _handshake_status(e)
                if status == 403:
                    raise ForbiddenError(403, "Forbidden", forbidden % (where, " (%s)" % (message or e.reason),
                                                                        namespace), body) from e
                if status == 401:
                    raise AuthError(401, "Unauthorized", "Unauthorized: the API server at %s rejected the "
                                    "credentials (exec into pod %s)" % (self.host, where), body) from e
                raise DkpError("exec into pod %s failed: %s" % (where, message or e.reason or e),
                               status=status or None) from e
            except Exception as e:  # websocket handshake refusals carry the HTTP status as an attribute
                status = getattr(e, "status_code", None) or getattr(e, "status", None)
                if status == 403:
                    raise ForbiddenError(403, "Forbidden", forbidden % (where, "", namespace)) from e
                if status == 401:
                    raise AuthError(401, "Unauthorized", "Unauthorized: the API server at %s rejected the "
                                    "credentials (exec into pod %s)" % (self.host, where)) from e
                raise DkpError("exec into pod %s failed: %s" % (where, _short_error(e)), status=status) from e
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
            raise DkpError("exec into pod %s timed out after %ss" % (where, timeout or self.timeout))
        return rc, "".join(stdout), "".join(stderr)

    @contextlib.contextmanager
    def _kubernetes_api_client(self):
        """A kubernetes ApiClient with this connection (pod exec needs the client's websocket support).

        The client reads TLS material from paths when it connects: in-memory material is exposed through
        _secret_file only for the duration of the block (the exec's websocket connects inside it)."""
        from kubernetes import client as k8s_client

        c = self.conn
        with _secret_file(c.ca_data) as ca_path, _secret_file(c.cert_data) as cert_path, \
                _secret_file(c.key_data) as key_path:
            cfg = c.k8s_configuration or k8s_client.Configuration()
            cfg.host = c.host
            cfg.verify_ssl = c.verify
            cfg.ssl_ca_cert = ca_path or c.ca_file
            cfg.cert_file = cert_path or c.cert_file
            cfg.key_file = key_path or c.key_file
            cfg.proxy = c.proxy if c.proxy and not _bypasses_proxy(c.host, c.no_proxy, c.proxy_from_env) else None
            cfg.proxy_headers = c.proxy_headers
            if c.tls_server_name:
                cfg.tls_server_name = c.tls_server_name
            api_client = k8s_client.ApiClient(cfg)
            auth = c.authorization()
            if auth:
                # The client's websocket code forwards only a lowercase `authorization` header (and no
                # impersonation headers: deckhouse_queue_info warns about that).
                api_client.set_default_header("authorization", auth)
            yield api_client


def _handshake_status(error):
    """The HTTP status of a refused websocket handshake behind `error` (None when there is none)."""
    seen = set()
    err = error
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        status = getattr(err, "status_code", None)
        if isinstance(status, int) and status:
            return status
        err = err.__cause__ or err.__context__
    return None


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
