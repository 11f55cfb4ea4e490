"""How snapshots travel: the seed's ``SnapshotTransferMode``, one value per cluster.

- :class:`Embedded`: the Raft snapshot message carries the data whole. Simple,
  all or nothing, and the whole snapshot sits in memory at both ends (and on
  the wire, where its size counts against the link's bandwidth).
- :class:`Streaming`: the Raft message carries metadata only; the receiver
  pulls the data out of band, in checksummed chunks, from the sender's
  :class:`~simulator.snapshots.SnapshotStore`, writing each verified chunk to
  its own store and resuming from the last verified offset after any failure.

- :class:`Auto`: Streaming's machinery, but each snapshot at or below
  ``threshold`` bytes is embedded; the trace's ``snapshot_sent`` event says
  which way each one went and why.

When to use which: Embedded for small snapshots and for teaching the basic
Raft mechanics; Streaming to see what production systems (etcd, TiKV) do for
large snapshots on unreliable networks — resumability, bounded memory,
progress, and what a failure costs. Auto follows the seed's "when to
upgrade" advice per snapshot: a small one costs one message and no stream
set-up, a large one never sits whole in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import attrs

from simulator.snapshots import DEFAULT_MAX_SNAPSHOT_SIZE, DiskSnapshotStore, MemorySnapshotStore, SnapshotStore
from simulator.snapshots.urls import join, objects_under, open_store, with_shared_client

from .streaming.delegated import DelegatingEndpoint
from .streaming.endpoint import StreamingEndpoint
from .streaming.fetch_snapshot import FETCH_MAX_BYTES, REQUEST_TIMEOUT, RETRY_BACKOFF, FetchSnapshotEndpoint
from .streaming.pulling import PullingEndpoint

MIB = 1024 * 1024
#: Where an interrupted transfer starts again: at the receiver's last verified
#: offset (raftsim's design), or at byte 0 with the partial data thrown away
#: (what hashicorp/raft, openraft, Zeebe, TiKV and CockroachDB do).
RESUME_POLICIES = ("verified_offset", "from_zero")


def _positive(instance, attribute, value) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


@attrs.frozen
class Embedded:
    """Snapshots ride inside the Raft message (``SnapshotTransferMode::Embedded``).

    ``wire_copy=True`` makes the transport copy the data as a serializer would,
    so the extra copy shows in memory figures.

    ``read_timeout``: seconds the receiver waits for a whole snapshot message
    (``None``: for ever). A message still arriving after that is lost, as etcd's
    rafthttp loses one it cannot read within its 5 s timeout (etcd #16377):
    a snapshot larger than the link carries in that time never arrives.

    ``max_snapshot_size``: a leader whose state is larger does not snapshot
    (``SnapshotTooLargeError``, counted as the state machine produces chunks,
    so the oversized snapshot is never held whole); it keeps its log and the
    trace's ``compaction_failed`` names both sizes. Default 10 GiB, the seed's,
    as for the stores of Streaming.
    """

    wire_copy: bool = False
    read_timeout: float | None = attrs.field(default=None, validator=_positive)
    max_snapshot_size: int = attrs.field(default=DEFAULT_MAX_SNAPSHOT_SIZE, validator=_positive)
    name = "embedded"


def _store_or_none(instance, attribute, value) -> None:
    if value is not None and not isinstance(value, SnapshotStore):
        raise TypeError(f"{attribute.name} must be a SnapshotStore or None, got {type(value).__name__}")


def _memory_stores(node_id: int) -> SnapshotStore:
    return MemorySnapshotStore()


@attrs.frozen
class Streaming:
    """Snapshots stream out of band (``SnapshotTransferMode::Streaming { store, chunk_size }``).

    - ``store``: each node's snapshot store, as a function of the node id
      (default: an in-memory store per node, standing for its disk);
      :meth:`on_disk` gives every node a ``DiskSnapshotStore`` under one folder.
    - ``chunk_size``: bytes per chunk; 1-4 MiB is what real systems use, any
      positive size works (small ones make short demos show many chunks).
    - ``chunks_in_flight``: chunks sent before an acknowledgement is needed.
      After a failure, at most this many chunks cross the wire twice.
    - ``rate_limit``: bytes per second of virtual time a sender may stream
      per transfer (``None``: as fast as the link allows).
    - ``max_concurrent_per_sender``: transfers a node streams at once; the
      rest wait their turn.
    - ``resume``: ``"verified_offset"`` (an interrupted transfer goes on
      from the receiver's last verified byte) or ``"from_zero"`` (it starts
      over, its partial data discarded, as several real systems do; see
      :mod:`transports.policies`).
    - ``idle_timeout``: seconds without progress before the receiver asks
      again from its verified offset (longer when the link is slow: at least
      twice the last chunk's time; doubled after each fruitless retry, up to
      8 times); a sender that hears nothing from its
      receiver for three such periods gives up and tells Raft, which offers
      the snapshot again. A transfer that keeps making progress is never
      timed out, however large.
    - ``max_idle_retries``: consecutive retries without progress before the
      receiver gives up (its partial data is kept for a later resume).
    - ``mismatch_restarts``: a chunk at any offset but the next one expected
      (a late duplicate included) is a mismatch, and the transfer starts
      over at byte 0, as openraft's chunked snapshots do (``SnapshotMismatch``);
      by default a duplicate is ignored and a gap is asked for again.
    - ``pull``: follower pull. A store the whole cluster reaches (an
      ``S3SnapshotStore``, a ``GCSSnapshotStore``, or any store); the leader
      uploads each snapshot there once and tells followers where it is, and
      each follower reads it with resumable ranged reads instead of being
      streamed to by the leader. ``pull_latency`` (seconds per read) and
      ``pull_bandwidth`` (bytes per second, ``None``: unlimited) model what a
      read costs in virtual time; ``pull_keep`` is how many snapshots the
      shared store keeps.
    - ``dedup``: a receiver that holds an older snapshot (a restarted
      follower, one a compaction behind) first asks for the new snapshot's
      manifest of content-defined pieces, copies the pieces it holds from its
      own store (each checked against its digest) and asks only for the byte
      ranges it lacks (:mod:`transports.streaming.delta`); off by default.
    """

    store: Callable[[int], SnapshotStore] = _memory_stores
    chunk_size: int = attrs.field(default=MIB, validator=_positive)
    resume: str = attrs.field(default="verified_offset", validator=attrs.validators.in_(RESUME_POLICIES))
    chunks_in_flight: int = attrs.field(default=1, validator=_positive)
    rate_limit: float | None = attrs.field(default=None, validator=_positive)
    max_concurrent_per_sender: int = attrs.field(default=2, validator=_positive)
    idle_timeout: float = attrs.field(default=1.0, validator=_positive)
    max_idle_retries: int = attrs.field(default=10, validator=_positive)
    mismatch_restarts: bool = False
    pull: SnapshotStore | None = attrs.field(default=None, validator=_store_or_none)
    pull_latency: float = attrs.field(default=0.002, validator=_positive)
    pull_bandwidth: float | None = attrs.field(default=None, validator=_positive)
    pull_keep: int = attrs.field(default=2, validator=_positive)
    dedup: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    name = "streaming"

    def __attrs_post_init__(self) -> None:
        if self.dedup and self.pull is not None:
            raise ValueError("dedup=True needs the leader to stream (pull=None): a follower pulling from a "
                             "shared store reads ranges of it directly, there is no sender to cut a manifest")

    @property
    def endpoint_class(self) -> type:
        """The endpoint each node runs: followers pull from ``pull``, or are streamed to."""
        return StreamingEndpoint if self.pull is None else PullingEndpoint

    @classmethod
    def on_disk(cls, snapshot_dir, *, sync_every: int = 1, max_snapshot_size: int = DEFAULT_MAX_SNAPSHOT_SIZE,
                **options) -> Streaming:
        """Every node gets ``DiskSnapshotStore(snapshot_dir / f"node-{id}")``.

        ``sync_every``: chunks a receiver writes per fsync (the store's group
        durability); a receiver crash then re-sends up to that many chunks.
        ``max_snapshot_size``: each store refuses larger snapshots (default
        10 GiB); a leader then keeps its log and says why, a receiver refuses the offer.
        """
        base = Path(snapshot_dir)
        chunk_size = options.get("chunk_size", MIB)

        def disk_store(node_id: int) -> SnapshotStore:
            return DiskSnapshotStore(base / f"node-{node_id}", chunk_size=chunk_size, sync_every=sync_every,
                                     max_snapshot_size=max_snapshot_size)

        return cls(store=disk_store, **options)

    @classmethod
    def in_bucket(cls, url: str, *, pull: bool = False, store_options: dict | None = None,
                  **options) -> Streaming:
        """Every node gets a store at ``url/node-{id}`` (``s3://bucket/prefix`` or
        ``gs://bucket/prefix``); with ``pull=True`` followers pull snapshots from
        ``url/shared``. ``store_options`` go to each store (credentials, endpoint);
        by default each cloud's standard mechanisms apply.

        The prefix must be empty: a run starts from empty stores, as with a fresh
        directory, so that the same seed gives the same run. ``ValueError`` otherwise.
        """
        store_options = with_shared_client(url, **(store_options or {}))
        store_options.setdefault("chunk_size", options.get("chunk_size", MIB))
        leftovers = objects_under(url, **store_options)
        if leftovers:
            raise ValueError(
                f"{url} already holds {len(leftovers)} object(s) (first: {leftovers[0]}); an empty prefix "
                "expected, so that the run starts from empty stores: use a new prefix"
            )

        def bucket_store(node_id: int) -> SnapshotStore:
            return open_store(join(url, f"node-{node_id}"), **store_options)

        if pull:
            options["pull"] = open_store(join(url, "shared"), **store_options)
        return cls(store=bucket_store, **options)


#: Auto's default: the seed's "when to upgrade" line (snapshots over ~10 MB stream).
AUTO_THRESHOLD = 10_000_000


@attrs.frozen
class Auto(Streaming):
    """Embed snapshots of at most ``threshold`` bytes, stream larger ones.

    Every other option is :class:`Streaming`'s (each node still has a store,
    and :meth:`~Streaming.on_disk` works the same). The choice is made by the
    sender for each snapshot it sends, from the snapshot's size alone, so the
    same run makes the same choices; :meth:`choose` says which and why, and
    the ``snapshot_sent`` event carries both (``mode`` and ``why``).
    """

    threshold: int = attrs.field(default=AUTO_THRESHOLD, validator=_positive)
    name = "auto"

    def choose(self, size: int) -> tuple[str, str]:
        """``("embedded" | "streaming", why)`` for a snapshot of ``size`` bytes."""
        if size <= self.threshold:
            return "embedded", f"{size} bytes <= threshold {self.threshold}: one message, no stream"
        return "streaming", f"{size} bytes > threshold {self.threshold}: chunks, resumable, bounded memory"


@attrs.frozen
class FetchSnapshot(Streaming):
    """The follower pulls the snapshot from the leader over the cluster's links, one
    request per response, by byte position: Kafka KRaft's ``FetchSnapshot`` (KIP-630;
    see :mod:`transports.streaming.fetch_snapshot` for what is taken from Kafka).

    - ``max_bytes``: the most one response carries (``MaxBytes``; by default
      ``0x7fffffff``, so one response brings the whole rest of the snapshot).
      ``chunk_size`` keeps its meaning for stores and workloads.
    - ``request_timeout``: seconds the follower waits for a response before it
      drops it and asks again, from the same position, after ``retry_backoff``.

    Resumes from the written position while the leader stays the same; a new
    leader or a restart starts the fetch at byte 0.
    """

    max_bytes: int = attrs.field(default=FETCH_MAX_BYTES, validator=_positive)
    request_timeout: float = attrs.field(default=REQUEST_TIMEOUT, validator=_positive)
    retry_backoff: float = attrs.field(default=RETRY_BACKOFF, validator=_positive)

    @property
    def endpoint_class(self) -> type:
        return FetchSnapshotEndpoint


@attrs.frozen
class DelegatedStreaming(Streaming):
    """Streaming in which the node nearest the receiver that holds the same snapshot
    sends it on the leader's behalf, if its link to the receiver is better than the
    leader's; the leader sends it if there is none, or if the delegate makes no
    progress (CockroachDB's delegated snapshots; see
    :mod:`transports.streaming.delegated`). Every option is :class:`Streaming`'s."""

    @property
    def endpoint_class(self) -> type:
        return DelegatingEndpoint


SnapshotMode = Embedded | Streaming | Auto | FetchSnapshot | DelegatedStreaming
