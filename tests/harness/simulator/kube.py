"""A small Kubernetes REST client and informer for the DKP simulator.

Plain urllib3 on top of the kubeconfig that ``kubernetes.config`` understands, so the
simulator can send what Deckhouse sends: JSON merge patches to the main resource and to
the ``/status`` subresource, while impersonating Deckhouse's service account. Watches
are raw streams with ``resourceVersion``; a 410 causes a re-list, any other failure a
reconnect with back-off.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.parse
from dataclasses import dataclass

import urllib3
from urllib3._collections import HTTPHeaderDict

log = logging.getLogger("simulator.kube")

DECKHOUSE_USER = "system:serviceaccount:d8-system:deckhouse"
DECKHOUSE_GROUPS = (
    "system:serviceaccounts",
    "system:serviceaccounts:d8-system",
    "system:authenticated",
)
FIELD_MANAGER = "deckhouse-controller"


@dataclass(frozen=True)
class Res:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, name: str | None = None, namespace: str | None = None, sub: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += "/" + urllib.parse.quote(name, safe="")
        if sub:
            base += "/" + sub
        return base


D = "deckhouse.io"
MODULE_CONFIG = Res(D, "v1alpha1", "moduleconfigs", "ModuleConfig")
MODULE = Res(D, "v1alpha1", "modules", "Module")
MODULE_RELEASE = Res(D, "v1alpha1", "modulereleases", "ModuleRelease")
MODULE_SOURCE = Res(D, "v1alpha1", "modulesources", "ModuleSource")
MODULE_UPDATE_POLICY = Res(D, "v1alpha2", "moduleupdatepolicies", "ModuleUpdatePolicy")
MODULE_PULL_OVERRIDE = Res(D, "v1alpha2", "modulepulloverrides", "ModulePullOverride")
NODE = Res("", "v1", "nodes", "Node")
POD = Res("", "v1", "pods", "Pod", True)
SECRET = Res("", "v1", "secrets", "Secret", True)
CONFIG_MAP = Res("", "v1", "configmaps", "ConfigMap", True)
SERVICE = Res("", "v1", "services", "Service", True)
NAMESPACE = Res("", "v1", "namespaces", "Namespace")
SERVICE_ACCOUNT = Res("", "v1", "serviceaccounts", "ServiceAccount", True)
CLUSTER_ROLE_BINDING = Res("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding")
LEASE = Res("coordination.k8s.io", "v1", "leases", "Lease", True)
VALIDATING_WEBHOOK = Res(
    "admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations", "ValidatingWebhookConfiguration"
)


class ApiError(Exception):
    def __init__(self, status: int, body: str, method: str = "", path: str = ""):
        self.status = status
        self.body = body
        self.reason = ""
        self.message = body
        try:
            data = json.loads(body)
            self.reason = data.get("reason", "")
            self.message = data.get("message", body)
        except (ValueError, AttributeError):
            pass
        super().__init__(f"{method} {path}: HTTP {status}: {self.message}")


class Gone(Exception):
    """The watch resourceVersion is too old (HTTP 410): re-list."""


def rv_int(obj: dict | None) -> int:
    try:
        return int((obj or {}).get("metadata", {}).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


class Kube:
    """Minimal API client. ``impersonate=True`` acts as Deckhouse's service account."""

    def __init__(self, kubeconfig: str, impersonate: bool = True, timeout: float = 30.0):
        from kubernetes import client, config  # local import: only the harness needs it

        cfg = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        self.host = cfg.host.rstrip("/")
        self.timeout = timeout
        kwargs: dict = {"maxsize": 16, "block": False, "retries": False}
        if cfg.verify_ssl:
            kwargs["cert_reqs"] = "CERT_REQUIRED"
            if cfg.ssl_ca_cert:
                kwargs["ca_certs"] = cfg.ssl_ca_cert
        else:
            kwargs["cert_reqs"] = "CERT_NONE"
        if cfg.cert_file:
            kwargs["cert_file"] = cfg.cert_file
        if cfg.key_file:
            kwargs["key_file"] = cfg.key_file
        if not cfg.verify_ssl:
            urllib3.disable_warnings()
        self.pool = urllib3.PoolManager(**kwargs)
        self.auth = cfg.get_api_key_with_prefix("authorization") or None
        self.impersonate = impersonate
        self.status_subresource: dict[str, bool] = {}

    # -- plumbing ---------------------------------------------------------------------------
    def _headers(self, content_type: str | None = None, impersonate: bool | None = None) -> HTTPHeaderDict:
        h = HTTPHeaderDict()
        h["Accept"] = "application/json"
        if content_type:
            h["Content-Type"] = content_type
        if self.auth:
            h["Authorization"] = self.auth
        if self.impersonate if impersonate is None else impersonate:
            h["Impersonate-User"] = DECKHOUSE_USER
            for g in DECKHOUSE_GROUPS:
                h.add("Impersonate-Group", g)
        return h

    def request(self, method: str, path: str, body=None, query: dict | None = None,
                content_type: str = "application/json", timeout: float | None = None,
                impersonate: bool | None = None) -> dict:
        url = self.host + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None}, doseq=True)
        data = None if body is None else json.dumps(body).encode()
        r = self.pool.request(
            method, url, body=data,
            headers=self._headers(content_type if data is not None else None, impersonate),
            timeout=urllib3.Timeout(connect=5.0, read=timeout or self.timeout),
            preload_content=True,
        )
        text = r.data.decode("utf-8", "replace")
        if r.status >= 400:
            raise ApiError(r.status, text, method, path)
        if not text:
            return {}
        try:
            return json.loads(text)
        except ValueError:
            return {"text": text}

    # -- verbs ------------------------------------------------------------------------------
    def get(self, res: Res, name: str, namespace: str | None = None, **kw) -> dict | None:
        try:
            return self.request("GET", res.path(name, namespace), **kw)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def list(self, res: Res, namespace: str | None = None, label_selector: str | None = None, **kw):
        data = self.request("GET", res.path(None, namespace), query={"labelSelector": label_selector}, **kw)
        items = data.get("items") or []
        for it in items:
            it.setdefault("apiVersion", res.api_version)
            it.setdefault("kind", res.kind)
        return items, data.get("metadata", {}).get("resourceVersion", "")

    def create(self, res: Res, obj: dict, namespace: str | None = None, **kw) -> dict:
        obj = dict(obj)
        obj.setdefault("apiVersion", res.api_version)
        obj.setdefault("kind", res.kind)
        ns = namespace or obj.get("metadata", {}).get("namespace")
        return self.request("POST", res.path(None, ns), obj, query={"fieldManager": FIELD_MANAGER}, **kw)

    def replace(self, res: Res, obj: dict, namespace: str | None = None, **kw) -> dict:
        ns = namespace or obj.get("metadata", {}).get("namespace")
        return self.request("PUT", res.path(obj["metadata"]["name"], ns), obj,
                            query={"fieldManager": FIELD_MANAGER}, **kw)

    def patch(self, res: Res, name: str, patch, namespace: str | None = None, status: bool = False,
              ptype: str = "merge", **kw) -> dict:
        ctype = {"merge": "application/merge-patch+json", "json": "application/json-patch+json"}[ptype]
        query = {"fieldManager": FIELD_MANAGER}
        if status and self.status_subresource.get(res.plural, True):
            try:
                return self.request("PATCH", res.path(name, namespace, "status"), patch, query=query,
                                    content_type=ctype, **kw)
            except ApiError as e:
                # a CRD without the status subresource answers 404 for /status
                if e.status != 404 or self.get(res, name, namespace) is None:
                    raise
                self.status_subresource[res.plural] = False
        return self.request("PATCH", res.path(name, namespace), patch, query=query, content_type=ctype, **kw)

    def delete(self, res: Res, name: str, namespace: str | None = None, grace: int | None = None,
               **kw) -> dict | None:
        body = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace is not None:
            body["gracePeriodSeconds"] = grace
        try:
            return self.request("DELETE", res.path(name, namespace), body, **kw)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def watch(self, res: Res, namespace: str | None, resource_version: str, timeout: int = 240,
              stop: threading.Event | None = None):
        """Yield (type, object) pairs; BOOKMARK events included. Raises Gone on 410."""
        query = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout),
        }
        url = self.host + res.path(None, namespace) + "?" + urllib.parse.urlencode(query)
        r = self.pool.request(
            "GET", url, headers=self._headers(),
            timeout=urllib3.Timeout(connect=5.0, read=timeout + 30),
            preload_content=False,
        )
        try:
            if r.status == 410:
                raise Gone()
            if r.status >= 400:
                raise ApiError(r.status, r.read().decode("utf-8", "replace"), "WATCH", res.plural)
            buf = b""
            for chunk in r.stream(65536, decode_content=True):
                if stop is not None and stop.is_set():
                    return
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if not line.strip():
                        continue
                    ev = json.loads(line)
                    etype = ev.get("type")
                    obj = ev.get("object") or {}
                    if etype == "ERROR":
                        if obj.get("code") == 410:
                            raise Gone()
                        raise ApiError(obj.get("code") or 500, json.dumps(obj), "WATCH", res.plural)
                    yield etype, obj
        finally:
            r.release_conn()


class Informer:
    """List+watch cache of one resource; calls ``on_change(res, type, obj)`` after each change."""

    def __init__(self, kube: Kube, res: Res, namespace: str | None = None, on_change=None,
                 stop: threading.Event | None = None):
        self.kube = kube
        self.res = res
        self.namespace = namespace
        self.on_change = on_change
        self.stop = stop or threading.Event()
        self.lock = threading.Lock()
        self.items: dict[str, dict] = {}
        self.tombstones: dict[str, int] = {}  # key -> resourceVersion of its DELETED event
        self.synced = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"informer-{res.plural}", daemon=True)

    def start(self) -> "Informer":
        self.thread.start()
        return self

    @staticmethod
    def key(obj: dict) -> str:
        md = obj.get("metadata", {})
        return f"{md.get('namespace') or ''}/{md.get('name')}"

    # -- cache access ---------------------------------------------------------------------------
    def get(self, name: str, namespace: str | None = None) -> dict | None:
        with self.lock:
            obj = self.items.get(f"{namespace or self.namespace or ''}/{name}")
            return obj

    def list(self) -> list[dict]:
        with self.lock:
            return list(self.items.values())

    def upsert(self, obj: dict | None) -> None:
        """Write-through after our own writes; an older resourceVersion never wins."""
        if not obj or not obj.get("metadata"):
            return
        obj.setdefault("apiVersion", self.res.api_version)
        obj.setdefault("kind", self.res.kind)
        k = self.key(obj)
        with self.lock:
            if k in self.tombstones and rv_int(obj) <= self.tombstones[k]:
                return  # a late write-through of an object deleted meanwhile
            cur = self.items.get(k)
            if cur is not None and rv_int(cur) > rv_int(obj):
                return
            self.items[k] = obj

    def forget(self, name: str, namespace: str | None = None) -> None:
        with self.lock:
            self.items.pop(f"{namespace or self.namespace or ''}/{name}", None)

    # -- loop -------------------------------------------------------------------------------------
    def _notify(self, etype: str, obj: dict) -> None:
        if self.on_change:
            try:
                self.on_change(self.res, etype, obj)
            except Exception:  # pragma: no cover - never kill the informer
                log.exception("on_change failed")

    def _run(self) -> None:
        backoff = 0.2
        while not self.stop.is_set():
            try:
                items, rv = self.kube.list(self.res, self.namespace)
                with self.lock:
                    self.items = {self.key(o): o for o in items}
                    self.tombstones = {}
                self.synced.set()
                self._notify("SYNC", {})
                backoff = 0.2
                while not self.stop.is_set():
                    for etype, obj in self.kube.watch(self.res, self.namespace, rv, stop=self.stop):
                        md = obj.get("metadata", {})
                        if md.get("resourceVersion"):
                            rv = md["resourceVersion"]
                        if etype == "BOOKMARK":
                            continue
                        obj.setdefault("apiVersion", self.res.api_version)
                        obj.setdefault("kind", self.res.kind)
                        k = self.key(obj)
                        with self.lock:
                            if etype == "DELETED":
                                self.items.pop(k, None)
                                self.tombstones[k] = rv_int(obj)
                            else:
                                cur = self.items.get(k)
                                if cur is None or rv_int(cur) <= rv_int(obj):
                                    self.items[k] = obj
                                    self.tombstones.pop(k, None)
                        self._notify(etype, obj)
            except Gone:
                log.debug("watch %s: 410, re-listing", self.res.plural)
                continue
            except Exception as e:  # connection refused during an apiserver restart, etc.
                if self.stop.is_set():
                    return
                log.debug("watch %s failed: %s; retrying in %.1fs", self.res.plural, e, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
