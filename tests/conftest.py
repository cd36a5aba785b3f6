"""Session fixtures for tests that need the local DKP cluster.

* ``dkp_cluster``: the cluster. ``DKP_KUBECONFIG`` if set; else the cluster already
  running in ``.local/cluster`` (left running); else one started here with
  ``harness.cluster.up()`` and stopped at the end of the session. Exports ``KUBECONFIG``
  and ``K8S_AUTH_KUBECONFIG`` for the session.
* ``kube``: a ``kubernetes.client.ApiClient`` for the admin kubeconfig.
* ``simulator``: from ``harness.simulator.pytest_fixtures`` when that module exists.
* ``dkp_version``: the DKP release the cluster models ("1.75" or "1.76"). A cluster started
  here models env ``DKP_VERSION`` (default 1.76); a running one must match it when it is set.
* ``dkp_cluster_for``: ``dkp_cluster_for("1.75")`` returns a cluster of that release: the
  session's own when it matches, else a second one started once (in ``.local/cluster-dkp-<v>``)
  and stopped at the end of the session. For the few version-specific harness tests.

Audit log helpers (harness clusters only)::

    mark = dkp_cluster.audit_marker()           # byte offset before the action
    ... act ...
    writes = dkp_cluster.writes_since(mark, resource="moduleconfigs", name="global")
    assert [w.verb for w in writes] == ["patch"] and not writes[0].dry_run
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from harness import cluster as _cluster  # noqa: E402
from harness import versions as _versions  # noqa: E402

from harness.simulator.pytest_fixtures import fresh_simulator, simulator  # noqa: E402

__all__ = ["dkp_cluster", "kube", "simulator", "fresh_simulator", "dkp_version", "dkp_cluster_for"]

WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
_SYNC_PREFIX = "dkp-audit-sync-"


@dataclass(frozen=True)
class AuditEvent:
    """One line of the audit log (level Metadata)."""

    raw: dict

    @property
    def verb(self) -> str:
        return self.raw.get("verb", "")

    @property
    def ref(self) -> dict:
        return self.raw.get("objectRef") or {}

    @property
    def resource(self) -> str:
        return self.ref.get("resource", "")

    @property
    def subresource(self) -> str:
        return self.ref.get("subresource", "")

    @property
    def name(self) -> str:
        return self.ref.get("name", "")

    @property
    def namespace(self) -> str:
        return self.ref.get("namespace", "")

    @property
    def api_group(self) -> str:
        return self.ref.get("apiGroup", "")

    @property
    def user(self) -> str:
        return (self.raw.get("user") or {}).get("username", "")

    @property
    def impersonated_user(self) -> str:
        return (self.raw.get("impersonatedUser") or {}).get("username", "")

    @property
    def request_uri(self) -> str:
        return self.raw.get("requestURI", "")

    @property
    def dry_run(self) -> bool:
        """True when the request carried dryRun=All (it changed nothing)."""
        from urllib.parse import parse_qs, urlsplit

        return "All" in parse_qs(urlsplit(self.request_uri).query).get("dryRun", [])

    @property
    def code(self) -> int:
        return int((self.raw.get("responseStatus") or {}).get("code", 0))

    @property
    def succeeded(self) -> bool:
        return 200 <= self.code < 300

    @property
    def user_agent(self) -> str:
        return self.raw.get("userAgent", "")

    def __repr__(self) -> str:
        who = self.impersonated_user or self.user
        ns = f"{self.namespace}/" if self.namespace else ""
        sub = f"/{self.subresource}" if self.subresource else ""
        dry = " dryRun" if self.dry_run else ""
        return f"<{self.verb} {self.resource}{sub} {ns}{self.name} {self.code}{dry} by {who}>"


class DkpCluster:
    def __init__(self, kubeconfig: Path, dir: Path | None, started_here: bool):
        self.kubeconfig = Path(kubeconfig)
        self.dir = Path(dir) if dir else None
        self.started_here = started_here
        state = _cluster.read_state(self.dir) if self.dir else None
        self.dkp_version = (state or {}).get("dkp_version") or os.environ.get("DKP_VERSION") \
            or _versions.DEFAULT
        log = self.dir / "audit.log" if self.dir else None
        self.audit_log_path = log if log and log.exists() else None
        self._client = None

    # -- audit log ---------------------------------------------------------------

    def _need_audit(self) -> Path:
        if self.audit_log_path is None:
            pytest.skip("the cluster has no local audit log (DKP_KUBECONFIG names a foreign cluster)")
        return self.audit_log_path

    def audit_marker(self) -> int:
        """Byte offset of the end of the audit log: pass it to audit_events/writes_since."""
        return self._need_audit().stat().st_size

    def audit_sync(self, timeout: float = 10.0) -> None:
        """Return once every request completed before this call is in the audit log.

        Sends a dry-run create of a ConfigMap with a unique name and waits for its line.
        """
        path = self._need_audit()
        from kubernetes import client

        name = f"{_SYNC_PREFIX}{uuid.uuid4().hex[:12]}"
        start = path.stat().st_size
        client.CoreV1Api(self.api_client()).create_namespaced_config_map(
            "default", {"metadata": {"name": name}}, dry_run="All"
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e.name == name for e in self._read(start)):
                return
            time.sleep(0.02)
        raise AssertionError(f"audit log {path} did not record the sync request within {timeout} s")

    def _read(self, since: int) -> list[AuditEvent]:
        path = self._need_audit()
        with open(path, "rb") as f:
            f.seek(since)
            data = f.read()
        events = []
        for line in data.split(b"\n"):
            if not line.strip():
                continue
            try:
                events.append(AuditEvent(json.loads(line)))
            except ValueError:
                continue  # a line still being written
        return events

    def audit_events(self, since: int = 0, *, resource: str | None = None, name: str | None = None,
                     verb: str | tuple | list | None = None, namespace: str | None = None,
                     subresource: str | None = None, api_group: str | None = None,
                     user: str | None = None, dry_run: bool | None = None,
                     sync: bool = True) -> list[AuditEvent]:
        """Audit events written after byte offset `since`, filtered.

        `user` matches the impersonated user when there is one, else the authenticated
        user. `subresource=""` selects requests to the main resource only; None means any.
        With `sync` (default) the log is first brought up to date (see audit_sync).
        """
        if sync:
            self.audit_sync()
        verbs = (verb,) if isinstance(verb, str) else tuple(verb) if verb else None
        out = []
        for e in self._read(since):
            if e.name.startswith(_SYNC_PREFIX):
                continue
            if resource is not None and e.resource != resource:
                continue
            if name is not None and e.name != name:
                continue
            if verbs is not None and e.verb not in verbs:
                continue
            if namespace is not None and e.namespace != namespace:
                continue
            if subresource is not None and e.subresource != subresource:
                continue
            if api_group is not None and e.api_group != api_group:
                continue
            if user is not None and (e.impersonated_user or e.user) != user:
                continue
            if dry_run is not None and e.dry_run != dry_run:
                continue
            out.append(e)
        return out

    def writes_since(self, marker: int, **filters) -> list[AuditEvent]:
        """Write requests (create/update/patch/delete/deletecollection) after `marker`."""
        filters.setdefault("verb", WRITE_VERBS)
        return self.audit_events(marker, **filters)

    # -- clients -----------------------------------------------------------------

    def api_client(self):
        if self._client is None:
            from kubernetes import config

            self._client = config.new_client_from_config(config_file=str(self.kubeconfig))
        return self._client


def _existing_harness_dir(kubeconfig: Path) -> Path | None:
    d = kubeconfig.resolve().parent
    return d if (d / "pids.json").exists() or (d / "audit.log").exists() else None


@pytest.fixture(scope="session")
def dkp_cluster():
    env_kc = os.environ.get("DKP_KUBECONFIG")
    started = False
    if env_kc:
        kc = Path(env_kc)
        c = DkpCluster(kc, _existing_harness_dir(kc), started_here=False)
    elif _cluster.running(_cluster.DEFAULT_DIR):
        c = DkpCluster(_cluster.DEFAULT_DIR / "kubeconfig", _cluster.DEFAULT_DIR, started_here=False)
    else:
        ci = _cluster.up(_cluster.DEFAULT_DIR, dkp_version=os.environ.get("DKP_VERSION"))
        started = True
        c = DkpCluster(ci.kubeconfig, ci.dir, started_here=True)
    saved = {k: os.environ.get(k) for k in ("KUBECONFIG", "K8S_AUTH_KUBECONFIG")}
    os.environ["KUBECONFIG"] = str(c.kubeconfig)
    os.environ["K8S_AUTH_KUBECONFIG"] = str(c.kubeconfig)
    try:
        yield c
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if c._client is not None:
            c._client.close()
        if started:
            _cluster.down(c.dir)


@pytest.fixture(scope="session")
def dkp_version(dkp_cluster) -> str:
    want = os.environ.get("DKP_VERSION")
    if want and _versions.normalise(want) != _versions.normalise(dkp_cluster.dkp_version):
        pytest.exit(f"DKP_VERSION={want} but the cluster at {dkp_cluster.dir} models DKP "
                    f"{dkp_cluster.dkp_version}; stop it (cluster.py down) or unset DKP_VERSION", returncode=4)
    return _versions.normalise(dkp_cluster.dkp_version)


@pytest.fixture(scope="session")
def dkp_cluster_for(dkp_cluster):
    """Factory: a cluster modelling the given DKP release (see the module docstring)."""
    extra: dict[str, DkpCluster] = {}

    def get(version: str) -> DkpCluster:
        v = _versions.normalise(version)
        if _versions.normalise(dkp_cluster.dkp_version) == v:
            return dkp_cluster
        if v not in extra:
            d = _cluster.REPO / ".local" / f"cluster-dkp-{v}"
            started = not _cluster.running(d)
            ci = _cluster.up(d, dkp_version=v)
            extra[v] = DkpCluster(ci.kubeconfig, ci.dir, started_here=started)
        return extra[v]

    yield get
    for c in extra.values():
        if c._client is not None:
            c._client.close()
        if c.started_here:
            _cluster.down(c.dir)


@pytest.fixture(scope="session")
def kube(dkp_cluster):
    """kubernetes.client.ApiClient for the admin kubeconfig."""
    return dkp_cluster.api_client()
