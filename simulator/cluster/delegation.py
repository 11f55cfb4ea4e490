"""Who sends a snapshot on the leader's behalf: CockroachDB's delegated snapshots.

CockroachDB (v23.1 on; cockroachdb/cockroach#83991, "kv: enable delegate
snapshots", and the v23.1 replication-layer docs) lets a follower send a
snapshot instead of the leader: the one nearest the recipient, so that the
bytes cross a local link rather than the WAN. A follower that cannot send
it (it does not hold a snapshot valid for the recipient, or it does not get
on with it quickly) gives up, and the leader sends it itself.

Locality here is the link: the nearest holder is the up, unpaused node
(neither the leader nor the recipient) whose store holds the very snapshot
offered and whose link to the recipient has the highest bandwidth (then the
lowest mean latency, then the lowest id). It is chosen only if that link is
better than the leader's own; otherwise the leader sends, as without
delegation.
"""

from __future__ import annotations

import math


def _link_rank(cluster, src: int, dst: int) -> tuple[float, float]:
    config = cluster.transport.link_config(src, dst)
    bandwidth = math.inf if config.bandwidth is None else config.bandwidth
    return (-bandwidth, config.latency.mean)


def nearest_holder(cluster, receiver: int, snapshot_id: str, leader: int) -> int | None:
    """The node that should send ``snapshot_id`` to ``receiver`` for ``leader``, or ``None``: the leader."""
    best = None
    for node in sorted(cluster.node_ids):
        if node in (receiver, leader) or not cluster.is_up(node) or cluster.is_paused(node):
            continue
        store = cluster.store(node)
        if store is None or not any(held.snapshot_id == snapshot_id for held in store.list_snapshots()):
            continue
        if best is None or _link_rank(cluster, node, receiver) < _link_rank(cluster, best, receiver):
            best = node
    if best is not None and _link_rank(cluster, best, receiver) < _link_rank(cluster, leader, receiver):
        return best
    return None
