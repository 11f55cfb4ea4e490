"""The snapshot transfer policies of real Raft systems, as snapshot modes, under raftsim's faults.

Each preset is an :class:`~transports.Embedded` or :class:`~transports.Streaming`
configured with the constants and behaviour its system documents, so the
same scenario, seed and fault schedule can be run under each and compared
(``raftsim compare SCENARIO --policies all``). What each models, and what
it leaves out, is said next to it; the source is named so it can be checked.

==============  ============================================================
``raftsim``     raftsim's Streaming: 1 MiB chunks, resumed from the
                receiver's last verified offset after any failure
``etcd``        the whole snapshot in one message over HTTP; the receiver
                reads it with a fixed 5 s timeout (etcd-io/etcd#16377: an
                87 MB snapshot on a slow link never arrives, the leader
                retries for ever)
``hashicorp``   hashicorp/raft: one stream per snapshot; an interrupted
                install starts again from the first byte (the I/O deadline
                scales with size, by ``TimeoutScale`` = 256 KiB, so a slow
                link is not cut short; hashicorp/raft#212: a follower that
                falls behind again during a long install loops)
``openraft``    openraft: ``snapshot_max_chunk_size`` = 3 MiB chunks,
                ``install_snapshot_timeout`` = 200 ms per chunk request;
                a chunk at an offset the receiver did not expect (a late
                duplicate included) is a ``SnapshotMismatch`` and the
                sender goes back to offset 0 (openraft fd5c657f), as it
                does for a new snapshot
``zeebe``       Camunda Zeebe: chunks checked with CRC-32C, one snapshot
                file per chunk (``snapshotChunkSize`` 1 GiB: files are not
                split below it), each ``InstallRequest`` answered within
                ``snapshotRequestTimeout`` = 2.5 s or the leader restarts
                the snapshot at its first chunk (camunda#14671: a large
                state never replicates, the loop of "chunk received out of
                order"; camunda#11496 asks for resumption)
``tikv``        TiKV: 1 MiB gRPC chunks, at most ``concurrent-send-snap-limit``
                sends per node, an I/O rate limit (``snap-io-max-bytes-per-sec``,
                100 MB/s); a failed snapshot is sent again whole
``cockroachdb`` CockroachDB: rate-limited to 32 MiB/s
                (``kv.snapshot_rebalance.max_rate``), 2 concurrent sends
                per node; a failed snapshot is sent again whole; delegated
                snapshots (v23.1 on, cockroachdb/cockroach#83991): the
                follower nearest the receiver that holds the snapshot sends
                it, the leader if none is nearer or the delegate stalls
``kraft``       Kafka KRaft (KIP-630): the follower pulls with
                ``FetchSnapshot`` requests naming its byte position, over
                the cluster's links; one response carries the rest of the
                snapshot (``MaxBytes`` defaults to ``0x7fffffff``) and must
                arrive within the 2 s request timeout, else it is asked
                again from the same position; a new leader or a restart
                starts it at 0 (see :mod:`transports.streaming.fetch_snapshot`)
==============  ============================================================

What is modelled is what decides behaviour under faults: whether a
transfer resumes or starts over, whether a deadline scales with size,
chunk size, rate limits and concurrency. Each system's wire format,
storage engine and own bugs elsewhere are not.

KRaft is not modelled with raftsim's own follower pull (``Streaming(pull=...)``):
that reads a shared store off the cluster's links, so the link faults these
comparisons inject would not touch it. :class:`~transports.FetchSnapshot`
pulls from the leader over the links instead.
"""

from __future__ import annotations

from collections.abc import Callable

from .modes import DelegatedStreaming, Embedded, FetchSnapshot, SnapshotMode, Streaming
from .streaming.fetch_snapshot import REQUEST_TIMEOUT

KIB = 1024
MIB = 1024 * KIB


def _raftsim(**options) -> SnapshotMode:
    return Streaming(**options)


def _etcd(**options) -> SnapshotMode:
    # rafthttp reads a snapshot message with a fixed timeout, whatever its size.
    return Embedded(read_timeout=5.0)


def _hashicorp(**options) -> SnapshotMode:
    # One stream; no partial install survives a failure. The deadline per
    # install scales with size (TimeoutScale), so only a stalled stream times out.
    options.setdefault("chunk_size", 256 * KIB)
    return Streaming(resume="from_zero", chunks_in_flight=4, **options)


def _openraft(**options) -> SnapshotMode:
    # A chunk whose offset is not the one expected (a late duplicate of a timed-out
    # chunk, say) is a SnapshotMismatch, and the sender resets to offset 0
    # (openraft fd5c657f: "Chunked should reset offset 0 when a SnapshotMismatch
    # error is received").
    options.setdefault("chunk_size", 3 * MIB)
    return Streaming(resume="from_zero", idle_timeout=0.2, mismatch_restarts=True, **options)


def _zeebe(**options) -> SnapshotMode:
    # ExperimentalRaftCfg: DEFAULT_SNAPSHOT_CHUNK_SIZE = 1 GiB, DEFAULT_SNAPSHOT_REQUEST_TIMEOUT
    # = 2500 ms. One chunk per round trip, a fixed timeout per round trip, and a timeout
    # restarts from the first chunk: FetchSnapshot's timing with resume="from_zero" (the
    # round trip is leader-initiated in Zeebe; under faults it costs the same). A given
    # chunk_size is the most one request carries.
    max_bytes = options.get("chunk_size", 1024 * MIB)
    return FetchSnapshot(resume="from_zero", max_bytes=max_bytes, request_timeout=2.5, idle_timeout=2.5,
                         **options)


def _tikv(**options) -> SnapshotMode:
    options.setdefault("chunk_size", 1 * MIB)
    return Streaming(resume="from_zero", rate_limit=100_000_000, max_concurrent_per_sender=32, **options)


def _cockroachdb(**options) -> SnapshotMode:
    return DelegatedStreaming(resume="from_zero", rate_limit=32 * MIB, max_concurrent_per_sender=2, **options)


def _kraft(**options) -> SnapshotMode:
    # KafkaRaftClient: the follower asks, by position; no MaxBytes set, a 2 s request
    # timeout, 20 ms backoff (QuorumConfig). The leader serves any number of followers.
    return FetchSnapshot(idle_timeout=REQUEST_TIMEOUT, max_concurrent_per_sender=64, **options)


#: Policy name -> a function of Streaming options (``store``, ``chunk_size``) that builds its mode.
POLICIES: dict[str, Callable[..., SnapshotMode]] = {
    "raftsim": _raftsim,
    "etcd": _etcd,
    "hashicorp": _hashicorp,
    "openraft": _openraft,
    "zeebe": _zeebe,
    "tikv": _tikv,
    "cockroachdb": _cockroachdb,
    "kraft": _kraft,
}


def policy(name: str, **options) -> SnapshotMode:
    """The snapshot mode of policy ``name``; ``options`` (``store``, ``chunk_size``...) go to
    its Streaming where it streams, unless the policy fixes them itself."""
    try:
        build = POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown snapshot policy {name!r}; expected one of {', '.join(POLICIES)}") from None
    return build(**options)


def policy_names(text: str) -> list[str]:
    """``"all"`` or a comma-separated list of policy names, checked."""
    names = list(POLICIES) if text.strip() == "all" else [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in POLICIES]
    if unknown or not names:
        raise ValueError(f"unknown snapshot policy {unknown[0] if unknown else text!r}; expected 'all' or "
                         f"some of {', '.join(POLICIES)}")
    return names
