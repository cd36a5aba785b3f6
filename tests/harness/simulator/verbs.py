"""The control API: `state` and the verbs tests use to steer the simulator.

A mixin of ``controller.Simulator`` (it uses the simulator's informers, writers and
state through ``self``)."""

from __future__ import annotations

import os
import time

from . import consts as c
from .catalogue import Catalogue
from .common import DEFAULT_IMAGE_ERROR, MASTERS, WORKERS, md, now_rfc3339, unb64
from .kube import MODULE, MODULE_SOURCE, NODE, SECRET
from .semver import Version
from .taskqueue import MAIN


class VerbsMixin:
    def control_state(self) -> dict:
        sec = self.c(SECRET).get("registry-state", c.NS) if self.inf else None
        return {
            "paused": self.paused,
            "step_delay": self.step_delay,
            "restart_duration": self.restart_duration,
            "cluster_type": self.cluster_type,
            "holds": dict(self.holds),
            "image_check_error": self.image_check_error,
            "local_images_pushed": self.local_pushed,
            "restarting": self.debug_availability() != "ok",
            "deckhouse_down": self.deckhouse_down(),
            "restarts": self.restarts,
            "last_restart_reason": self.last_restart_reason,
            "restart_seconds": self.restart_duration,
            "dkp_version": self.opts.dkp_version,
            "module_errors": {k: v[0] for k, v in self.module_errors.items()},
            "leader_pods": [md(p)["name"] for p in self.leader_pods()] if self.inf else [],
            "queue_tasks": self.queue.total(),
            "registry_mode": unb64(((sec or {}).get("data") or {}).get("mode")) if sec else None,
            "registry_target_mode": unb64(((sec or {}).get("data") or {}).get("target_mode")) if sec else None,
            "passes": self.passes,
            "pid": os.getpid(),
        }

    def control(self, verb: str, args: dict) -> dict:
        fn = getattr(self, "c_" + verb.replace("-", "_"), None)
        if fn is None:
            raise KeyError(verb)
        if verb in ("reset", "wait-idle", "state"):
            result = fn(**(args or {}))  # these manage the lock themselves
        else:
            with self.lock:  # never change what a reconcile pass is reading
                result = fn(**(args or {}))
        self.kick()
        return result if result is not None else {}

    def c_state(self) -> dict:
        return self.control_state()

    def c_pause(self) -> dict:
        with self.lock:
            self.paused = True
        return {"paused": True}

    def c_resume(self) -> dict:
        self.paused = False
        self.kick()
        return {"paused": False}

    def c_set_delay(self, step_delay: float | None = None, restart_duration: float | None = None) -> dict:
        if step_delay is not None:
            self.step_delay = float(step_delay)
        if restart_duration is not None:
            self.restart_duration = float(restart_duration)
        return {"step_delay": self.step_delay, "restart_duration": self.restart_duration}

    def c_hold_condition(self, type: str, message: str = "Held by the test harness") -> dict:  # noqa: A002
        if type not in c.REGISTRY_CONDITION_TYPES:
            raise ValueError(f"unknown registry condition type {type!r}")
        self.holds[type] = message
        return {"holds": dict(self.holds)}

    def c_release_condition(self, type: str | None = None) -> dict:  # noqa: A002
        if type is None:
            self.holds.clear()
        else:
            self.holds.pop(type, None)
        return {"holds": dict(self.holds)}

    def c_queue_add(self, description: str | None = None, type: str = "ModuleRun", queue: str = MAIN,  # noqa: A002
                    meta: str = "", fail: bool = False, error: str = "", failures: int = 0, hold: bool = False,
                    count: int = 1) -> dict:
        if description:
            parts = description.split(":", 2)
            type = parts[0]
            if len(parts) > 1:
                queue = parts[1]
            if len(parts) > 2:
                meta = parts[2]
        if error and not fail and not failures:
            fail = True
        if fail and failures == 0:
            failures = 1
        added = [self.queue.add(type, queue, meta, fail=fail, error=error, failures=failures, hold=hold).description
                 for _attempt in range(int(count))]
        return {"added": added, "total": self.queue.total()}

    def c_queue_clear(self) -> dict:
        self.queue.clear()
        return {"total": 0}

    def c_node_not_ready(self, name: str) -> dict:
        node = self.admin.get(NODE, name)
        if node is None:
            raise ValueError(f"node {name} not found")
        self.kube.patch(NODE, name, {"metadata": {"annotations": {"kwok.x-k8s.io/node": None}}})
        now = now_rfc3339()
        conds = [x for x in ((node.get("status") or {}).get("conditions") or []) if x.get("type") != "Ready"]
        conds.append({"type": "Ready", "status": "False", "reason": "KubeletNotReady",
                      "message": "container runtime network not ready (set by the DKP simulator)",
                      "lastHeartbeatTime": now, "lastTransitionTime": now})
        out = self.kube.patch(NODE, name, {"status": {"conditions": conds}}, status=True)
        self.c(NODE).upsert(out)
        return {"node": name, "ready": False}

    def c_node_cordon(self, name: str, unschedulable: bool = True) -> dict:
        out = self.kube.patch(NODE, name, {"spec": {"unschedulable": True if unschedulable else None}})
        self.c(NODE).upsert(out)
        return {"node": name, "unschedulable": bool(unschedulable)}

    def c_node_restore(self, name: str | None = None) -> dict:
        names = [name] if name else MASTERS + WORKERS
        for n in names:
            node = self.admin.get(NODE, n)
            if node is None:
                self.w_create(NODE, self._node_manifest(n))
                continue
            out = self.kube.patch(NODE, n, {"metadata": {"annotations": {"kwok.x-k8s.io/node": "fake"}},
                                            "spec": {"unschedulable": None}})
            self.c(NODE).upsert(out)
        return {"restored": names}

    def c_image_check_fail(self, message: str | None = None) -> dict:
        """The images check reports missing images: `message` as given, or by default the
        checker's own format (`Mode:` line, per-registry counts, `- source/image/error` items)."""
        self.image_check_error = message or DEFAULT_IMAGE_ERROR
        return {"image_check_error": self.image_check_error}

    def c_image_check_ok(self) -> dict:
        self.image_check_error = None
        return {"image_check_error": None}

    def c_local_images_pushed(self, pushed: bool = True) -> dict:
        self.local_pushed = bool(pushed)
        return {"local_images_pushed": self.local_pushed}

    def c_restart_deckhouse(self, duration: float | None = None, error: str = "drop") -> dict:
        with self.lock:
            return self.restart_deckhouse(duration, error)

    def c_cluster_type(self, type: str) -> dict:  # noqa: A002
        if type not in ("Static", "Cloud"):
            raise ValueError("cluster type must be Static or Cloud")
        self.cluster_type = type
        with self.lock:
            self.r_facts()
        return {"cluster_type": type}

    def c_add_release(self, module: str, version: str, source: str | None = None, repo: str | None = None,
                      channels: list[str] | None = None, channel: str | None = None) -> dict:
        if repo is None:
            src = source or c.DECKHOUSE_SOURCE
            repo = self.source_repo(src)
            if repo is None:
                raise ValueError(f"ModuleSource {src} not found")
        if channel and not channels:
            channels = [channel]
        self.cat.add_version(repo, module, version, channels)
        for ms in self.c(MODULE_SOURCE).list():
            if Catalogue.norm_repo(((ms.get("spec") or {}).get("registry") or {}).get("repo") or "") == \
                    Catalogue.norm_repo(repo):
                self.force_sync.add(md(ms)["name"])
        return {"repo": Catalogue.norm_repo(repo), "module": module, "version": str(Version.parse(version)),
                "channels": channels or list(c.RELEASE_CHANNELS)}

    def c_module_error(self, module: str, message: str = "hook failed", duration: float = 0,
                       clear: bool = False) -> dict:
        """Module `module` holds a last hook error: phase Error, IsReady=False reason HookError
        with `message`, for `duration` seconds (0 = until cleared with clear=true or
        module-error-clear). A failing ModuleRun task sits in the main queue meanwhile."""
        if clear:
            return self.c_module_error_clear(module)
        if self.c(MODULE).get(module) is None and module not in self.cat.embedded:
            raise ValueError(f"module {module} not found")
        duration = float(duration or 0)
        until = time.monotonic() + duration if duration > 0 else None
        self.module_errors[module] = (str(message), until)
        self.queue.add("ModuleRun", MAIN, module, fail=True, error=str(message), failures=1)
        return {"module": module, "message": message, "duration": duration}

    def c_module_error_clear(self, module: str | None = None) -> dict:
        names = [module] if module else list(self.module_errors)
        for n in names:
            self.module_errors.pop(n, None)
        # the failing task succeeds on its next try
        with self.queue.lock:
            for q in self.queue.queues.values():
                for t in q:
                    if t.fail and t.type == "ModuleRun" and (t.meta == module or (module is None and t.error)):
                        t.fail = False
        return {"cleared": names}

    def c_publish_digest(self, module: str, source: str | None = None, tag: str | None = None) -> dict:
        """Push a new image under `tag` of `module` in ModuleSource `source`'s registry: the tag
        moves to a new digest (a ModulePullOverride of that tag redeploys on its next check)."""
        src = source or (((self.c(MODULE).get(module) or {}).get("properties") or {}).get("source")) \
            or c.DECKHOUSE_SOURCE
        repo = self.source_repo(src)
        if repo is None:
            raise ValueError(f"ModuleSource {src} not found")
        if tag is None:
            tag = ((self.mpo(module) or {}).get("spec") or {}).get("imageTag")
        if not tag:
            raise ValueError("tag is required (no ModulePullOverride names one)")
        old = self.cat.tag_digest(repo, module, tag)
        new = self.cat.publish_digest(repo, module, tag, str(time.time_ns()))
        return {"module": module, "source": src, "tag": tag, "old_digest": old, "digest": new}

    def c_registry_hash_bump(self) -> dict:
        """An unrelated orchestrator input changed (a pod, a node): registry-state `hash` moves
        although nothing about the registry did."""
        self.registry_salt += 1
        return {"salt": self.registry_salt}

    def c_restart_seconds(self, seconds: float) -> dict:
        """How long each Deckhouse self-restart lasts from now on (0 = no restarts); kept by reset."""
        self.restart_duration = float(seconds)
        self.opts.restart_duration = self.restart_duration
        return {"restart_seconds": self.restart_duration}

    def c_sync_sources(self) -> dict:
        names = [md(ms)["name"] for ms in self.c(MODULE_SOURCE).list()]
        self.force_sync.update(names)
        return {"sources": names}

    def c_wait_idle(self, timeout: float = 10.0) -> dict:
        self.wait_passes(2, timeout)
        return {"passes": self.passes}
