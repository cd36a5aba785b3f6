# -*- coding: utf-8 -*-
# Copyright: deckhouse.platform contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""deckhouse.platform.dkp_events: an Event-Driven Ansible source of normalised DKP events.

Watches deckhouse.io Modules, ModuleReleases, ModuleSources, ModulePullOverrides and the Secret
d8-system/registry-state, and puts one dict per meaningful change on the queue:

  module_phase        a Module's phase changed (with the error of its conditions; `failed` for phases that
                      need an operator, such as DownloadingError)
  release_pending     a ModuleRelease became Pending, or its reason changed (message: approval, window, ...)
  release_deployed    a ModuleRelease became Deployed
  release_phase       any other ModuleRelease phase change (Superseded, Suspended, Skipped, Terminating)
  source_error        a ModuleSource reports a new pull/sync error (per module, or the source's message)
  source_recovered    a ModuleSource error went away
  registry_switch     registry-state changed (mode, target_mode, conditions); `status` progress|failed|completed
  mpo_digest          a ModulePullOverride deployed another image digest

Each event carries `type`, `kind`, `name`, `module` (when there is one), `cluster` (the `cluster` argument),
`time` {iso, hour, weekday} in UTC (for maintenance-window conditions) and the fields above. registry-state's
`state` key holds private keys and passwords: it is never read into an event.

Arguments:
  kubeconfig      path (default K8S_AUTH_KUBECONFIG, KUBECONFIG, in-cluster, ~/.kube/config)
  context         kubeconfig context
  kinds           list of Module, ModuleRelease, ModuleSource, ModulePullOverride, RegistryState (default all)
  modules         only events about these modules (registry events always pass)
  types           only these event types
  initial         also emit events for the state found at start (default false: changes only)
  reconnect_delay seconds between reconnects after an error (default 2)
  watch_timeout   seconds of one watch request before it is renewed (default 60)
  cluster         a label copied into every event (default: the kubeconfig's server)

Watches resume from the last resourceVersion; on 410 Gone the kind is re-listed and compared with what was
seen, so a change made while disconnected is still reported once.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import asyncio
import base64
import datetime
import logging
import os
import threading

DOCUMENTATION = r"""
short_description: Watch DKP (Deckhouse) objects and emit normalised events
description:
  - See the module docstring for the event types and arguments.
"""

EXAMPLES = r"""
- name: React to DKP
  hosts: all
  sources:
    - deckhouse.platform.dkp_events:
        kinds: [Module, ModuleRelease]
        modules: [console]
  rules:
    - name: Print module errors
      condition: event.type == "module_phase" and event.failed
      action:
        print_event:
"""

LOG = logging.getLogger("deckhouse.platform.dkp_events")

KINDS = {
    "Module": ("deckhouse.io", "v1alpha1", "modules"),
    "ModuleRelease": ("deckhouse.io", "v1alpha1", "modulereleases"),
    "ModuleSource": ("deckhouse.io", "v1alpha1", "modulesources"),
    "ModulePullOverride": ("deckhouse.io", "v1alpha2", "modulepulloverrides"),
    "RegistryState": None,  # Secret d8-system/registry-state
}
REGISTRY_NAMESPACE = "d8-system"
REGISTRY_SECRET = "registry-state"
FAILED_PHASES = ("Error", "DownloadingError", "Conflict", "Unavailable")
# registry-state keys that are safe to report; `state` holds PKI keys and passwords.
REGISTRY_PUBLIC_KEYS = ("mode", "target_mode", "hash", "conditions")


def _now():
    t = datetime.datetime.now(datetime.timezone.utc)
    return {"iso": t.strftime("%Y-%m-%dT%H:%M:%SZ"), "hour": t.hour, "minute": t.minute,
            "weekday": t.strftime("%a")}


def _conditions(obj):
    return ((obj or {}).get("status") or {}).get("conditions") or []


def _bad_conditions(obj):
    return ["%s: %s" % (c.get("type"), c.get("message") or c.get("reason") or c.get("status"))
            for c in _conditions(obj) if c.get("status") != "True" and (c.get("message") or c.get("reason"))]


def module_of(kind, obj):
    meta = obj.get("metadata") or {}
    if kind in ("Module", "ModulePullOverride"):
        return meta.get("name")
    if kind == "ModuleRelease":
        return (obj.get("spec") or {}).get("moduleName") or (meta.get("labels") or {}).get("module")
    return None


def source_errors(obj):
    """{module or '': error} of a ModuleSource (newer `error`, older `pullError`/`moduleErrors`, status.message)."""
    status = (obj or {}).get("status") or {}
    errors = {}
    for item in status.get("modules") or []:
        if isinstance(item, dict) and (item.get("error") or item.get("pullError")):
            errors[item.get("name") or ""] = item.get("error") or item.get("pullError")
    for item in status.get("moduleErrors") or []:
        if isinstance(item, dict) and item.get("error"):
            errors[item.get("name") or ""] = item["error"]
    message = status.get("message") or ""
    if message and not errors:  # a source-level failure (for example NAME_UNKNOWN for the whole repo)
        errors[""] = message
    return errors


def registry_view(secret):
    """The public part of registry-state (never `state`)."""
    if secret is None:
        return None
    data = secret.get("data") or {}
    view = {}
    for key in REGISTRY_PUBLIC_KEYS:
        if key in data:
            try:
                view[key] = base64.b64decode(data[key]).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                view[key] = None
    try:
        import yaml

        view["conditions"] = yaml.safe_load(view.get("conditions") or "[]") or []
    except Exception:  # a malformed list must not stop the source
        view["conditions"] = []
    return view


def normalise(kind, old, new, cluster=None):
    """The events that the change old -> new of one object means (old/new None: absent)."""
    obj = new if new is not None else old
    name = (obj.get("metadata") or {}).get("name")
    base = {"kind": kind, "name": name, "module": module_of(kind, obj), "cluster": cluster, "time": _now()}
    events = []
    if kind == "Module":
        old_phase = ((old or {}).get("status") or {}).get("phase")
        new_phase = ((new or {}).get("status") or {}).get("phase")
        if new is not None and new_phase != old_phase:
            errors = _bad_conditions(new)
            events.append(dict(base, type="module_phase", phase=new_phase, previous_phase=old_phase,
                               failed=new_phase in FAILED_PHASES, download_error=new_phase == "DownloadingError",
                               error="; ".join(errors) if errors else None))
    elif kind == "ModuleRelease":
        old_status = (old or {}).get("status") or {}
        old_phase = old_status.get("phase")
        status = (new or {}).get("status") or {}
        # A Pending release is reported again when its reason changes (approval, window, requirements).
        if new is not None and (status.get("phase") != old_phase or (
                status.get("phase") == "Pending" and (status.get("message") or "") != (old_status.get("message") or ""))):
            phase = status.get("phase")
            etype = {"Pending": "release_pending", "Deployed": "release_deployed"}.get(phase, "release_phase")
            annotations = (new.get("metadata") or {}).get("annotations") or {}
            events.append(dict(base, type=etype, phase=phase, previous_phase=old_phase,
                               version=(new.get("spec") or {}).get("version"), message=status.get("message") or "",
                               approved=annotations.get("modules.deckhouse.io/approved") in
                               ("1", "t", "T", "TRUE", "true", "True")))
    elif kind == "ModuleSource":
        before, after = source_errors(old), source_errors(new)
        for module, error in sorted(after.items()):
            if before.get(module) != error:
                events.append(dict(base, type="source_error", module=module or None, source=name, error=error))
        for module in sorted(set(before) - set(after)):
            events.append(dict(base, type="source_recovered", module=module or None, source=name,
                               previous_error=before[module]))
    elif kind == "ModulePullOverride":
        old_status = (old or {}).get("status") or {}
        status = (new or {}).get("status") or {}
        if new is not None and status.get("imageDigest") and status.get("imageDigest") != old_status.get("imageDigest"):
            events.append(dict(base, type="mpo_digest", digest=status.get("imageDigest"),
                               previous_digest=old_status.get("imageDigest"),
                               image_tag=(new.get("spec") or {}).get("imageTag"), message=status.get("message"),
                               updated_at=status.get("updatedAt")))
    elif kind == "RegistryState":
        before, after = registry_view(old), registry_view(new)
        if after is not None and after != before:
            conds = [{k: c.get(k) for k in ("type", "status", "reason", "message")} for c in after["conditions"]
                     if isinstance(c, dict)]
            failed = [c for c in conds if c.get("status") != "True" and str(c.get("reason") or "").startswith("Err")]
            done = (after.get("mode") and after.get("mode") == after.get("target_mode")
                    and conds and all(c.get("status") == "True" for c in conds))
            events.append(dict(base, type="registry_switch", name=REGISTRY_SECRET, module="registry",
                               status="failed" if failed else ("completed" if done else "progress"),
                               mode=after.get("mode"), target_mode=after.get("target_mode"),
                               previous_mode=(before or {}).get("mode"), conditions=conds,
                               errors=["%s: %s" % (c["type"], c.get("message") or c.get("reason")) for c in failed]))
    return events


def _api_client(args):
    from kubernetes import client, config

    kubeconfig = args.get("kubeconfig") or os.environ.get("K8S_AUTH_KUBECONFIG")
    if kubeconfig:
        return config.new_client_from_config(config_file=os.path.expanduser(kubeconfig), context=args.get("context"))
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        config.load_incluster_config()
        return client.ApiClient()
    return config.new_client_from_config(context=args.get("context"))


class Watcher:
    """List + watch of one kind in a thread, resuming from the last resourceVersion."""

    def __init__(self, kind, api_client, emit, args, stop):
        self.kind = kind
        self.api_client = api_client
        self.emit = emit
        self.stop = stop
        self.initial = bool(args.get("initial", False))
        self.delay = float(args.get("reconnect_delay", 2))
        self.timeout = int(args.get("watch_timeout", 60))
        self.cluster = args.get("cluster") or api_client.configuration.host
        self.seen = {}
        self.rv = None

    def _list_fn(self):
        from kubernetes import client

        if self.kind == "RegistryState":
            core = client.CoreV1Api(self.api_client)
            return core.list_namespaced_secret, dict(namespace=REGISTRY_NAMESPACE,
                                                     field_selector="metadata.name=%s" % REGISTRY_SECRET)
        group, version, plural = KINDS[self.kind]
        custom = client.CustomObjectsApi(self.api_client)
        return custom.list_cluster_custom_object, dict(group=group, version=version, plural=plural)

    def _as_dict(self, obj):
        if isinstance(obj, dict):
            return obj
        return self.api_client.sanitize_for_serialization(obj)

    def relist(self, first):
        fn, kw = self._list_fn()
        result = self._as_dict(fn(**kw))
        current = {(i.get("metadata") or {}).get("name"): i for i in result.get("items") or []}
        for name, obj in current.items():
            old = self.seen.get(name)
            if old is None and first and not self.initial:
                continue
            self.changed(old, obj)
        for name in set(self.seen) - set(current):
            self.changed(self.seen[name], None)
        self.seen = current
        self.rv = (result.get("metadata") or {}).get("resourceVersion")

    def changed(self, old, new):
        for event in normalise(self.kind, old, new, self.cluster):
            self.emit(event)

    def run(self):
        from kubernetes import watch
        from kubernetes.client.rest import ApiException

        first = True
        while not self.stop.is_set():
            try:
                if self.rv is None:
                    self.relist(first)
                    first = False
                fn, kw = self._list_fn()
                w = watch.Watch()
                for raw in w.stream(fn, resource_version=self.rv, timeout_seconds=self.timeout,
                                    allow_watch_bookmarks=True, **kw):
                    if self.stop.is_set():
                        w.stop()
                        break
                    etype = raw.get("type")
                    obj = self._as_dict(raw.get("object"))
                    if etype == "ERROR":
                        if (obj or {}).get("code") == 410:
                            self.rv = None
                            break
                        raise RuntimeError((obj or {}).get("message") or "watch error")
                    self.rv = (obj.get("metadata") or {}).get("resourceVersion") or self.rv
                    if etype == "BOOKMARK":
                        continue
                    name = (obj.get("metadata") or {}).get("name")
                    old = self.seen.get(name)
                    if etype == "DELETED":
                        self.seen.pop(name, None)
                        self.changed(old, None)
                    else:
                        self.seen[name] = obj
                        self.changed(old, obj)
            except ApiException as e:
                if e.status == 410:
                    self.rv = None  # history compacted: re-list and compare
                    continue
                if e.status == 404:
                    LOG.debug("%s is not served; retrying", self.kind)
                else:
                    LOG.warning("watch of %s failed (%s); reconnecting", self.kind, e.status)
                self.stop.wait(self.delay)
            except Exception as e:  # dropped connection, apiserver restart: resume from the last resourceVersion
                LOG.warning("watch of %s interrupted (%s); reconnecting", self.kind, e)
                self.stop.wait(self.delay)


def _filter(args):
    modules = set(args.get("modules") or [])
    types = set(args.get("types") or [])

    def accept(event):
        if types and event["type"] not in types:
            return False
        if modules and event["kind"] != "RegistryState" and event.get("module") not in modules:
            return False
        return True

    return accept


async def main(queue, args):
    """Run until cancelled, putting normalised DKP events on `queue`."""
    args = args or {}
    kinds = args.get("kinds") or list(KINDS)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError("dkp_events: unknown kinds %s; choose from %s" % (", ".join(unknown), ", ".join(KINDS)))
    loop = asyncio.get_running_loop()
    accept = _filter(args)
    api_client = _api_client(args)
    stop = threading.Event()

    def emit(event):
        if accept(event):
            asyncio.run_coroutine_threadsafe(queue.put(event), loop)

    watchers = [Watcher(kind, api_client, emit, args, stop) for kind in kinds]
    threads = [threading.Thread(target=w.run, name="dkp-events-%s" % w.kind, daemon=True) for w in watchers]
    for t in threads:
        t.start()
    try:
        while True:
            await asyncio.sleep(3600)
    finally:
        stop.set()


if __name__ == "__main__":
    # Run by hand: print events of the cluster in $K8S_AUTH_KUBECONFIG.
    class _Printer:
        async def put(self, event):
            print(event)

    asyncio.run(main(_Printer(), {"initial": True}))
