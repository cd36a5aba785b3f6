"""Audit-log helpers for "nothing was written" assertions."""
from __future__ import annotations

USER_AGENT = "deckhouse.platform"


def our_writes(dkp_cluster, marker, **filters):
    """Write requests the collection sent after `marker` (the simulator's own writes are left out)."""
    return [w for w in dkp_cluster.writes_since(marker, **filters) if w.user_agent.startswith(USER_AGENT)]
