"""The machine-readable summary of a run (``raftsim run --json``), the same keys on every engine."""

from __future__ import annotations

from ..cluster.cluster import Cluster
from ..observe.flows import TRANSFER_KINDS
from ..observe.flows import transfers as transfer_tracks
from .script import RunOptions


def summarize(cluster: Cluster, name: str, options: RunOptions) -> dict:
    """The machine-readable summary of a run (``raftsim run --json``)."""
    nodes = []
    for node_id in cluster.node_ids:
        runner = cluster.runners[node_id]
        entry = {"id": node_id, "up": runner.is_up}
        if runner.is_up:
            stats = runner.node.statistics()
            entry.update(
                role=stats.role.value, term=stats.term, commit=stats.commit, applied=stats.applied,
                snapshot_index=cluster.storage(node_id).snapshot_metadata.index,
                last_index=stats.last_index, state_digest=cluster.state_machine(node_id).digest(),
            )
        nodes.append(entry)
    return run_summary(cluster, name, options.seed, options.mode, nodes)


def run_summary(cluster, name: str, seed: int, mode: str, nodes: list[dict], *, engine: str | None = None) -> dict:
    """The summary fields every engine reports alike (``nodes`` is engine-specific;
    ``engine`` is named for engines other than the native one)."""
    statistics = cluster.transport.statistics()
    # When the last node applied the last entry (or installed the last snapshot).
    caught_up = max(
        (record.time for record in cluster.trace.of_kind("apply", "snapshot_installed")), default=0.0
    )
    senders = _senders(cluster)
    return {
        "scenario": name,
        "seed": seed,
        "mode": mode,
        **({"engine": engine} if engine else {}),
        "virtual_seconds": round(cluster.now(), 6),
        "caught_up_seconds": round(caught_up, 6),
        "trace_sha256": cluster.trace.sha256(),
        "messages_sent": statistics.messages_sent,
        "bytes_sent": statistics.bytes_sent,
        "nodes": nodes,
        "transfers": [
            {
                "from": t.from_, "to": t.to, "snapshot_index": t.snapshot_index, "mode": t.mode,
                # Every node that sent part of it, in order (a new leader may finish a transfer).
                "senders": senders.get((t.to, t.snapshot_index), [t.from_]),
                "size": t.size, "bytes_sent": t.bytes_sent, "resent_bytes": t.resent_bytes,
                "retries": t.retries, "outcome": t.outcome.value,
                "seconds": round(t.updated_at - t.started_at, 6),
            }
            for t in cluster.transfers()
        ],
        "peak_snapshot_memory_bytes": {
            str(node_id): peak for node_id, (_, peak) in cluster.snapshot_memory().items()
        },
    }


def _senders(cluster) -> dict[tuple[int, int], list[int]]:
    """(receiver, snapshot index) -> the nodes that sent it, as the trace tells (the last transfer's)."""
    return {(track.receiver, track.snapshot_index): list(track.sources)
            for track in transfer_tracks(cluster.trace.of_kind(*TRANSFER_KINDS))}
