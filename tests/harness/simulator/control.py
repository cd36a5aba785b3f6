"""Steer a running DKP simulator from tests or a shell.

    from harness.simulator.control import SimulatorControl
    sim = SimulatorControl(".local/cluster")
    sim.hold_condition("DeckhouseRegistrySwitchReady", "waiting for the test")

CLI (PYTHONPATH=tests)::

    python -m harness.simulator.control [--dir DIR] VERB [ARG ...] [key=value ...]

    python -m harness.simulator.control state
    python -m harness.simulator.control node-not-ready master-1
    python -m harness.simulator.control hold-condition type=Ready message="held"
    python -m harness.simulator.control queue-add description=ModuleRun:main:cert-manager error="boom"
    python -m harness.simulator.control add-release module=hello-world version=0.1.2 source=example
    python -m harness.simulator.control module-error cert-manager message="hook failed" duration=10
    python -m harness.simulator.control module-error-clear cert-manager
    python -m harness.simulator.control publish-digest hello-world source=example tag=main
    python -m harness.simulator.control registry-hash-bump
    python -m harness.simulator.control restart-seconds 0

Values of key=value are parsed as JSON when possible (true, 3, ["Stable"]), else taken as text.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
DEFAULT_DIR = REPO / ".local" / "cluster"

VERBS = (
    "state", "pause", "resume", "reset", "set-delay", "hold-condition", "release-condition", "queue-add",
    "queue-clear", "node-not-ready", "node-cordon", "node-restore", "image-check-fail", "image-check-ok",
    "restart-deckhouse", "local-images-pushed", "cluster-type", "add-release", "sync-sources", "wait-idle",
    "module-error", "module-error-clear", "publish-digest", "registry-hash-bump", "restart-seconds",
)
# the first positional argument of a verb, for the CLI
POSITIONAL = {
    "node-not-ready": "name", "node-cordon": "name", "node-restore": "name", "cluster-type": "type",
    "hold-condition": "type", "release-condition": "type", "image-check-fail": "message",
    "restart-deckhouse": "duration", "queue-add": "description",
    "module-error": "module", "module-error-clear": "module", "publish-digest": "module",
    "restart-seconds": "seconds",
}
_NUMERIC_POSITIONAL = ("restart-deckhouse", "restart-seconds")


class SimulatorError(RuntimeError):
    pass


class SimulatorControl:
    def __init__(self, cluster_dir: str | os.PathLike | None = None, timeout: float = 120.0):
        self.dir = Path(cluster_dir) if cluster_dir else DEFAULT_DIR
        self.timeout = timeout
        self._info: dict | None = None

    # -- discovery -----------------------------------------------------------------------
    @property
    def info(self) -> dict:
        """simulator.json (re-read each time the simulator restarted)."""
        path = self.dir / "simulator.json"
        try:
            self._info = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            if self._info is None:
                raise SimulatorError(f"{path} is not readable; is the simulator running? ({e})") from e
        return self._info

    @property
    def control_url(self) -> str:
        return self.info["control_url"]

    @property
    def webhook_url(self) -> str:
        return self.info["webhook_url"]

    @property
    def debug_url(self) -> str:
        return self.info.get("debug_url", self.control_url)

    # -- transport ------------------------------------------------------------------------
    def call(self, verb: str, **args) -> dict:
        body = json.dumps({k: v for k, v in args.items() if v is not None}).encode()
        req = urllib.request.Request(f"{self.control_url}/control/{verb}", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                data = json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            try:
                data = json.loads(e.read() or b"{}")
            except ValueError:
                data = {}
            raise SimulatorError(f"{verb}: HTTP {e.code}: {data.get('error', e.reason)}") from None
        except urllib.error.URLError as e:
            raise SimulatorError(f"{verb}: simulator unreachable at {self.control_url}: {e.reason}") from None
        if not data.get("ok"):
            raise SimulatorError(f"{verb}: {data.get('error')}")
        return data.get("result") or {}

    def get(self, path: str) -> str:
        """GET on the debug API, e.g. get('/queue/list.json')."""
        with urllib.request.urlopen(self.debug_url + path, timeout=self.timeout) as r:
            return r.read().decode()

    def queue_list(self, show_empty: bool = False) -> dict:
        return json.loads(self.get("/queue/list.json" + ("?showEmpty=true" if show_empty else "")))

    # -- verbs ------------------------------------------------------------------------------
    def state(self) -> dict:
        return self.call("state")

    def pause(self) -> dict:
        """Stop reconciling (a test may then write any status by hand)."""
        return self.call("pause")

    def resume(self) -> dict:
        return self.call("resume")

    def reset(self) -> dict:
        """Back to a fresh simulator: ModuleConfigs, sources, releases, overrides, registry, nodes, queue."""
        return self.call("reset")

    def set_delay(self, step_delay: float | None = None, restart_duration: float | None = None) -> dict:
        return self.call("set-delay", step_delay=step_delay, restart_duration=restart_duration)

    def hold_condition(self, type: str, message: str = "Held by the test harness") -> dict:  # noqa: A002
        """Keep a registry-state condition False (reason Processing) with `message` once reached."""
        return self.call("hold-condition", type=type, message=message)

    def release_condition(self, type: str | None = None) -> dict:  # noqa: A002
        """Release one held condition, or all of them."""
        return self.call("release-condition", type=type)

    def queue_add(self, description: str | None = None, *, type: str | None = None,  # noqa: A002
                  queue: str | None = None, meta: str | None = None, fail: bool | None = None,
                  error: str | None = None, failures: int | None = None, hold: bool | None = None,
                  count: int | None = None) -> dict:
        """Add tasks; `description` is `<Type>:<queue>[:<meta>]`. `error`/`fail` makes the task fail
        (`:failures N:<error>`) until cleared; `hold` keeps it pending until cleared."""
        return self.call("queue-add", description=description, type=type, queue=queue, meta=meta, fail=fail,
                         error=error, failures=failures, hold=hold, count=count)

    def add_failing_task(self, description: str = "ModuleRun:main:cert-manager",
                         error: str = "hook failed", failures: int = 1) -> dict:
        return self.queue_add(description, fail=True, error=error, failures=failures)

    def add_pending_task(self, description: str = "ModuleRun:main:prometheus", count: int = 1) -> dict:
        return self.queue_add(description, hold=True, count=count)

    def queue_clear(self) -> dict:
        return self.call("queue-clear")

    def node_not_ready(self, name: str) -> dict:
        return self.call("node-not-ready", name=name)

    def node_cordon(self, name: str) -> dict:
        return self.call("node-cordon", name=name)

    def node_restore(self, name: str | None = None) -> dict:
        """Ready and schedulable again (all nodes without a name)."""
        return self.call("node-restore", name=name)

    def image_check_fail(self, message: str | None = None) -> dict:
        """The images check fails; without `message` in the checker's format (`Mode:` line)."""
        return self.call("image-check-fail", message=message)

    def image_check_ok(self) -> dict:
        return self.call("image-check-ok")

    def restart_deckhouse(self, duration: float | None = None, error: str | None = None) -> dict:
        """Replace the leader pod; for `duration` seconds the debug API drops connections
        (curl exit 52), or answers HTTP 503 with error="503"."""
        return self.call("restart-deckhouse", duration=duration, error=error)

    def local_images_pushed(self, pushed: bool = True) -> dict:
        return self.call("local-images-pushed", pushed=pushed)

    def cluster_type(self, type: str) -> dict:  # noqa: A002
        return self.call("cluster-type", type=type)

    def add_release(self, module: str, version: str, source: str | None = None, repo: str | None = None,
                    channels: list[str] | None = None) -> dict:
        """Publish `version` of `module` in the fake registry of ModuleSource `source` (or `repo`),
        on `channels` (default: all), and resync the sources that use it."""
        return self.call("add-release", module=module, version=version, source=source, repo=repo,
                         channels=channels)

    def module_error(self, module: str, message: str = "hook failed", duration: float = 0) -> dict:
        """Module in phase Error, IsReady=False reason HookError `message`, for `duration` s
        (0 = until module_error_clear)."""
        return self.call("module-error", module=module, message=message, duration=duration)

    def module_error_clear(self, module: str | None = None) -> dict:
        return self.call("module-error-clear", module=module)

    def publish_digest(self, module: str, source: str | None = None, tag: str | None = None) -> dict:
        """Move `tag` of `module` (in `source`'s registry) to a new digest."""
        return self.call("publish-digest", module=module, source=source, tag=tag)

    def registry_hash_bump(self) -> dict:
        """registry-state `hash` changes although the registry did not (unrelated event)."""
        return self.call("registry-hash-bump")

    def restart_seconds(self, seconds: float) -> dict:
        """Length of every later Deckhouse self-restart (0 = none); survives reset."""
        return self.call("restart-seconds", seconds=seconds)

    def sync_sources(self) -> dict:
        return self.call("sync-sources")

    def wait_idle(self, timeout: float = 10.0) -> dict:
        return self.call("wait-idle", timeout=timeout)


def _parse_value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    directory = os.environ.get("DKP_CLUSTER_DIR")
    if len(argv) >= 2 and argv[0] == "--dir":
        directory = argv[1]
        argv = argv[2:]
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        print("verbs: " + ", ".join(VERBS))
        return 0 if argv else 2
    verb, rest = argv[0], argv[1:]
    args: dict = {}
    for item in rest:
        if "=" in item and not item.startswith("="):
            k, v = item.split("=", 1)
            args[k.replace("-", "_")] = _parse_value(v)
        elif verb in POSITIONAL and POSITIONAL[verb] not in args:
            args[POSITIONAL[verb]] = _parse_value(item) if verb in _NUMERIC_POSITIONAL else item
        else:
            print(f"unexpected argument {item!r}", file=sys.stderr)
            return 2
    try:
        result = SimulatorControl(directory).call(verb, **args)
    except SimulatorError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
