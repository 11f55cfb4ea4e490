"""Snapshot-store checks for the end of a run: no node claims state its disk cannot back.

A disk fault the store did not notice (a misdirected write, a bit that rotted
after the digest was taken) stays silent until someone reads the bytes, which
may be never in a short run. These checks read them: every running member's
newest snapshot, as its Raft storage records it, must be in its store, carry
the digest Raft recorded, hash to that digest when read back from the disk,
and lie at or below the index the node says it applied. Each function returns
findings, one line each; an empty list means the property held.
"""

from __future__ import annotations


def unbacked_snapshots(cluster, members) -> list[str]:
    """Findings for members whose newest snapshot is not what their store holds (see the module)."""
    findings = []
    for node_id in members:
        if not cluster.is_up(node_id):
            continue
        runner = cluster.runners[node_id]
        if getattr(runner, "snapshot_wait", None) is not None:
            continue  # it knows it lost its snapshot and says so; replicas_agree deals with it
        storage = cluster.storage(node_id)
        recorded = storage.snapshot_metadata
        store = storage.data_store
        if recorded.index == 0 or store is None:
            continue  # no snapshot, or embedded: the data lives in the Raft storage itself
        # Past a fault wrapper (FaultyStore): its armed faults belong to the run; an observer
        # that consumed one would report the fault, not the store.
        store = getattr(store, "inner", store)
        applied = runner.node.raft.raft_log.applied
        if applied < recorded.index:
            findings.append(f"node {node_id} applied up to {applied}, below its snapshot {recorded.index}: "
                            "it claims state it never applied")
        try:
            if not store.has_snapshot(recorded.index):
                findings.append(f"node {node_id}'s Raft storage records snapshot {recorded.index}; "
                                "its store no longer holds it")
                continue
            held = store.snapshot_metadata(recorded.index)
            if recorded.digest and held.digest != recorded.digest:
                findings.append(f"node {node_id}'s store holds snapshot {recorded.index} with digest "
                                f"{held.digest}; Raft recorded {recorded.digest}")
                continue
            for _ in store.stream_snapshot(recorded.index):
                pass  # every byte is hashed; the stream raises before its end on a mismatch
        except (ValueError, OSError) as error:  # store errors are ValueErrors; a disk's are OSErrors
            findings.append(f"node {node_id}'s snapshot {recorded.index} does not read back as "
                            f"recorded: {error}")
    return findings
