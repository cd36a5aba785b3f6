"""The main queue and Deckhouse restarts: startup tasks, the self-restart after deploys
and registry switches, and the debug API's availability.

A mixin of ``controller.Simulator`` (it uses the simulator's informers, writers and
state through ``self``)."""

from __future__ import annotations

import json
import time
import logging

from . import consts as c
from .common import STARTUP_EVENT, md
from .kube import ApiError, POD
from .taskqueue import MAIN

log = logging.getLogger("simulator")


class QueueRestartMixin:
    def enqueue(self, task_type: str, queue: str = MAIN, meta: str = "") -> None:
        self.queue.add(task_type, queue, meta)
        self.kick()

    def enqueue_config_change(self, name: str) -> None:
        self.enqueue("ApplyKubeConfigValues", MAIN, name)
        if name == c.GLOBAL:
            self.enqueue("ConvergeModules", MAIN)
            return
        if self.module_enabled(name):
            self.enqueue("ModuleRun", MAIN, name)
        else:
            self.enqueue("ModuleDelete", MAIN, name)
        self.enqueue("ConvergeModules", MAIN)

    def enqueue_startup(self) -> None:
        """The main queue of a Deckhouse that just started: a converge, then one ModuleRun with
        doStartup per enabled module (addon-operator HookMetadata description format:
        `ModuleRun:main:<module>:doStartup:<EventDescription>`)."""
        self.enqueue("ConvergeModules", MAIN, "OperatorStartup")
        mods = sorted((m for m in self._all_module_names() if self.module_enabled(m)),
                      key=lambda m: (self.cat.embedded.get(m) or self.registry_meta(m)).get("weight", 900))
        for m in mods:
            self.enqueue("ModuleRun", MAIN, f"{m}:doStartup:{STARTUP_EVENT}")
        for q in self.cat.other_queues[:4]:
            mod = q.split("/")[2] if q.count("/") >= 3 else "deckhouse"
            self.enqueue("ModuleHookRun", q, f"{mod}:{q.rsplit('/', 1)[-1]}")

    def r_queue(self) -> None:
        now = time.monotonic()
        if now < self.restart_until:
            self.schedule(self.restart_until)
            return
        if self.startup_fill_pending:
            self.startup_fill_pending = False
            self.enqueue_startup()
        if self.queue.total() == 0:
            return
        interval = max(0.05, self.step_delay)
        if now - self.last_queue_tick >= interval:
            self.last_queue_tick = now
            self.queue.tick()
        self.schedule(self.last_queue_tick + interval)

    def deckhouse_down(self) -> bool:
        """True while Deckhouse restarts: webhooks refuse, debug API silent, controllers idle."""
        return time.monotonic() < self.restart_until

    def self_restart(self, reason: str) -> None:
        """deckhouse-controller re-execs after a release/override deploy or a registry switch
        (releaseWasProcessed -> SIGUSR2). restart_duration <= 0 turns this off."""
        if self.restart_duration <= 0:
            return
        log.info("Deckhouse restarts itself (%s) for %.1f s", reason, self.restart_duration)
        self.last_restart_reason = reason
        self.restart_deckhouse(self.restart_duration)

    def restart_deckhouse(self, duration: float | None = None, error: str = "drop") -> dict:
        """Replace the leader pod; meanwhile the debug API drops connections (or answers 503)."""
        if error not in ("drop", "503"):
            raise ValueError("error must be 'drop' or '503'")
        duration = self.restart_duration if duration is None else float(duration)
        self.restart_error = error
        now = time.monotonic()
        self.restart_until = now + duration
        self.leader_recreate_at = now + duration / 2
        old = [md(p)["name"] for p in self.leader_pods()]
        for name in old:
            try:
                self.kube.delete(POD, name, c.NS, grace=0)
            except ApiError as e:
                log.warning("delete leader pod %s: %s", name, e)
            self.c(POD).forget(name, c.NS)
        self.queue.clear()
        self.startup_fill_pending = True  # the new Deckhouse fills its queue when it starts
        self.restarts += 1
        self.schedule(self.leader_recreate_at)
        self.kick()
        return {"deleted": old, "restart_seconds": duration, "error": error}

    def debug_availability(self) -> str:
        now = time.monotonic()
        if now < self.restart_until:
            return self.restart_error
        if now < self.blip_until:
            return "drop"
        return "ok"

    def queue_dump(self, what: str, fmt: str, show_empty: bool) -> str:
        if what == "main":
            return self.queue.main_dump(fmt)
        return self.queue.list_dump(fmt, show_empty)

    def module_list_dump(self, fmt: str) -> str:
        enabled = sorted(m for m in self._all_module_names() if self.module_enabled(m)) + [c.GLOBAL]
        doc = {"enabledModules": sorted(set(enabled))}
        if fmt == "yaml":
            import yaml
            return yaml.safe_dump(doc, sort_keys=False)
        if fmt == "text":
            return "\n".join(doc["enabledModules"]) + "\n"
        return json.dumps(doc) + "\n"
