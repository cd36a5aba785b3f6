"""Parts of the local cluster launcher (tests/harness/cluster.py): PKI, processes and
pids.json, kwok configuration."""

from __future__ import annotations


class ClusterError(RuntimeError):
    pass
