"""Small helpers for the harness self-tests (tests/integration/test_harness_*.py): read and
write DKP objects through a kubernetes ApiClient, wait for a value, decode registry-state.

Test infrastructure only; never imported by shipped plugins.
"""

from __future__ import annotations

import base64
import json
import time

import yaml

GROUP = "deckhouse.io"
TIMEOUT = 30.0


def custom(kube):
    from kubernetes import client

    return client.CustomObjectsApi(kube)


def core(kube):
    from kubernetes import client

    return client.CoreV1Api(kube)


def get_obj(kube, plural, name, version="v1alpha1"):
    from kubernetes.client.rest import ApiException

    try:
        return custom(kube).get_cluster_custom_object(GROUP, version, plural, name)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def create_obj(kube, plural, body, version="v1alpha1", dry_run=None):
    kw = {"dry_run": dry_run} if dry_run else {}
    return custom(kube).create_cluster_custom_object(GROUP, version, plural, body, **kw)


def patch_obj(kube, plural, name, patch, version="v1alpha1", dry_run=None):
    kw = {"dry_run": dry_run} if dry_run else {}
    return custom(kube).patch_cluster_custom_object(GROUP, version, plural, name, patch, **kw)


def delete_obj(kube, plural, name, version="v1alpha1", dry_run=None):
    kw = {"dry_run": dry_run} if dry_run else {}
    return custom(kube).delete_cluster_custom_object(GROUP, version, plural, name, **kw)


def mc(name, **spec):
    return {"apiVersion": f"{GROUP}/v1alpha1", "kind": "ModuleConfig", "metadata": {"name": name}, "spec": spec}


def api_error(call):
    """Run `call`, which must fail with an ApiException; return (status, body dict)."""
    from kubernetes.client.rest import ApiException

    try:
        call()
    except ApiException as e:
        try:
            return e.status, json.loads(e.body)
        except (TypeError, ValueError):
            return e.status, {"message": str(e.body)}
    raise AssertionError("the request succeeded; expected an API error")


def wait_value(fetch, pred=bool, timeout=TIMEOUT, interval=0.1, what="condition"):
    """Fetch until pred(value) holds; return that value (AssertionError with the last one)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fetch()
        except Exception as e:  # an API blip while Deckhouse or the apiserver restarts
            last = e
        else:
            if pred(last):
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


def cond(obj, ctype):
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def phase(obj):
    return ((obj or {}).get("status") or {}).get("phase")


def registry_state(kube):
    """registry-state decoded: mode, target_mode, hash, conditions (list), or None."""
    from kubernetes.client.rest import ApiException

    try:
        s = core(kube).read_namespaced_secret("registry-state", "d8-system")
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    out = {k: base64.b64decode(v).decode() for k, v in (s.data or {}).items() if k != "state"}
    out["conditions"] = yaml.safe_load(out.get("conditions") or "[]") or []
    out["annotations"] = dict(s.metadata.annotations or {})
    return out


def leader_pod(kube):
    pods = core(kube).list_namespaced_pod("d8-system", label_selector="app=deckhouse,leader=true").items
    pods = [p for p in pods if p.metadata.deletion_timestamp is None]
    return pods[0].metadata.name if pods else None


def enable_example_source(kube, name="example", repo="registry.example.com/deckhouse/modules"):
    create_obj(kube, "modulesources", {"apiVersion": f"{GROUP}/v1alpha1", "kind": "ModuleSource",
                                       "metadata": {"name": name}, "spec": {"registry": {"repo": repo}}})
    return wait_value(lambda: get_obj(kube, "modulesources", name),
                      lambda o: (o or {}).get("status", {}).get("syncTime"), what=f"ModuleSource {name} synced")
