"""What a trace says about things that move: messages, and snapshot transfers.

Pure functions from trace records to small values, like
:mod:`~simulator.observe.intervals`. A message is one arrow: sent at one
time, arriving at another (or dropped). A transfer is one snapshot's journey
to one receiver: verified bytes over time, with the retries, resumptions and
rejected chunks that happened on the way.

Message events exist only when the cluster recorded them
(``Cluster.open(record_messages=True)``, the default).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from .trace import TraceRecord

#: Message types of the out-of-band snapshot stream (the Raft core never sees them).
STREAM_TYPES = frozenset({"snapshot_chunk", "snapshot_request", "snapshot_ack", "snapshot_abort"})


@attrs.frozen
class MessageArrow:
    """One message: from ``src`` at ``sent`` to ``dst`` at ``arrives``.

    ``fate`` is ``delivered``, ``duplicate`` (a second, delivered copy),
    ``dropped`` (lost, blocked or faulted on the way: ``arrives`` is None,
    ``reason`` says why), ``undelivered`` (it arrived at a node that was
    down) or ``in_flight`` (the trace ended first).
    """

    sent: float
    arrives: float | None
    src: int
    dst: int
    type: str
    size: int
    fate: str
    reason: str = ""

    @property
    def stream(self) -> bool:
        """Part of the snapshot stream rather than a Raft message."""
        return self.type in STREAM_TYPES


def messages(records: Sequence[TraceRecord]) -> list[MessageArrow]:
    """Every message the trace recorded, in the order they were sent."""
    end = max((record.time for record in records), default=0.0)
    arrows: list[MessageArrow] = []
    by_arrival: dict[tuple, list[int]] = {}
    for record in records:
        kind = record.kind
        if kind not in ("send", "duplicate", "drop"):
            continue
        fields = dict(record.fields)
        src, dst, msg_type = fields.get("from"), fields.get("to"), fields.get("type")
        size = fields.get("size", 0)
        if kind == "drop":
            if fields.get("reason") == "destination down":
                # The message was sent earlier and found its receiver down on arrival.
                key = (src, dst, msg_type, record.time)
                for position in by_arrival.get(key, []):
                    if arrows[position].fate in ("delivered", "duplicate"):
                        arrows[position] = attrs.evolve(arrows[position], fate="undelivered",
                                                        reason="destination down")
                        break
                continue
            arrows.append(MessageArrow(record.time, None, src, dst, msg_type, size, "dropped",
                                       fields.get("reason", "")))
            continue
        arrives = fields.get("arrives")
        fate = "duplicate" if kind == "duplicate" else "delivered"
        if arrives is not None and arrives > end:
            fate = "in_flight"
        by_arrival.setdefault((src, dst, msg_type, arrives), []).append(len(arrows))
        arrows.append(MessageArrow(record.time, arrives, src, dst, msg_type, size, fate))
    return arrows


@attrs.define(eq=False)
class TransferTrack:
    """One snapshot's way to one receiver, as the trace tells it.

    ``progress`` are ``(time, verified bytes)`` points (for an embedded
    transfer: nothing until the whole snapshot is installed at once);
    ``retries`` and ``resumes`` are ``(time, offset)`` where the receiver
    asked again after silence or a bad chunk, or continued a transfer it had
    kept (after a crash, a partition, a change of leader); ``rejected`` are
    ``(time, offset)`` of chunks that failed a check; ``lost`` the times an
    embedded snapshot message was lost whole.
    """

    receiver: int
    snapshot_index: int
    mode: str
    size: int
    sources: list[int]
    progress: list[tuple[float, int]] = attrs.Factory(list)
    retries: list[tuple[float, int]] = attrs.Factory(list)
    resumes: list[tuple[float, int, str]] = attrs.Factory(list)
    rejected: list[tuple[float, int]] = attrs.Factory(list)
    lost: list[float] = attrs.Factory(list)
    outcome: str = "in_progress"
    ended_at: float | None = None

    @property
    def label(self) -> str:
        sources = ",".join(f"n{source}" for source in self.sources)
        return f"{sources} -> n{self.receiver} snapshot {self.snapshot_index} ({self.mode})"

    def _point(self, time: float, done: int) -> None:
        self.progress.append((time, done))


_OUTCOMES = {"transfer_installed": "installed", "transfer_aborted": "aborted",
             "transfer_superseded": "superseded"}

#: Every kind of event :func:`transfers` reads (a kind it reads must be added here): a
#: caller may hand it ``trace.of_kind(*TRANSFER_KINDS)`` instead of every record, for the
#: same tracks (tests/test_flows.py compares the two).
TRANSFER_KINDS = ("snapshot_sent", "snapshot_installed", "drop", "transfer_started", "transfer_resumed",
                  "transfer_progress", "snapshot_request", "transfer_retry", "chunk_rejected", *_OUTCOMES)


def transfers(records: Sequence[TraceRecord]) -> list[TransferTrack]:
    """Every snapshot transfer in the trace, embedded or streamed, in the order they began.

    A transfer is identified by receiver and snapshot index; one that is cut,
    retried or resumed stays one track. A new one starts when the same
    snapshot is sent again after the receiver installed it (say, after it
    lost everything in a crash of its disk-less store).
    """
    tracks: list[TransferTrack] = []
    current: dict[tuple[int, int], TransferTrack] = {}
    active: dict[int, TransferTrack] = {}  # receiver -> the streaming transfer under way

    def track(receiver: int, index: int, mode: str, size: int, source: int) -> TransferTrack:
        found = current.get((receiver, index))
        if found is None or found.outcome == "installed":
            found = TransferTrack(receiver, index, mode, size, [source])
            current[(receiver, index)] = found
            tracks.append(found)
        elif source not in found.sources:
            found.sources.append(source)
        return found

    for record in records:
        kind, time, node = record.kind, record.time, record.node
        fields = dict(record.fields)
        if kind == "snapshot_sent" and fields.get("mode") == "embedded":
            found = current.get((fields["to"], fields["index"]))
            again = found is not None and found.outcome != "installed"
            found = track(fields["to"], fields["index"], "embedded", fields.get("size", 0), node)
            if again:
                found.retries.append((time, 0))  # all of it, from byte 0, again
            found._point(time, 0)
        elif kind == "snapshot_installed":
            found = current.get((node, fields.get("index")))
            if found is not None and found.mode == "embedded" and found.outcome != "installed":
                found._point(time, 0)
                found._point(time, fields.get("size", found.size))
                found.outcome, found.ended_at = "installed", time
        elif kind == "drop" and fields.get("type") == "snapshot":
            found = current.get((fields.get("to"), fields.get("snapshot_index")))
            if found is not None and found.mode == "embedded":
                found.lost.append(time)
        elif kind == "transfer_started":
            found = track(node, fields["index"], "streaming", fields.get("size", 0), fields.get("source"))
            found.outcome, found.ended_at = "in_progress", None
            active[node] = found
            found._point(time, 0)
        elif kind == "transfer_resumed":
            found = track(node, fields["index"], "streaming", 0, fields.get("source"))
            found.outcome, found.ended_at = "in_progress", None
            active[node] = found
            found.resumes.append((time, fields.get("offset", 0), fields.get("reason", "")))
            found._point(time, fields.get("offset", 0))
        elif kind == "transfer_progress":
            found = track(node, fields["index"], "streaming", fields.get("size", 0), fields.get("source"))
            found.size = fields.get("size", found.size)
            found._point(time, fields.get("offset", 0))
        elif kind == "snapshot_request":
            # What the receiver asks for is what it kept: a request below its verified
            # bytes threw the rest away (and a retry at this moment asked from there).
            found = active.get(node)
            offset = fields.get("offset", 0)
            if found is not None and found.snapshot_index == fields.get("index") and found.progress \
                    and offset < found.progress[-1][1]:
                found._point(time, offset)
                if found.retries and found.retries[-1][0] == time:
                    found.retries[-1] = (time, offset)
        elif kind == "transfer_retry":
            found = current.get((node, fields.get("index")))
            if found is not None:
                found.retries.append((time, fields.get("offset", 0)))
        elif kind == "chunk_rejected":
            found = active.get(node)
            if found is not None and "offset" in fields:
                found.rejected.append((time, fields["offset"]))
        elif kind in _OUTCOMES:
            found = current.get((node, fields.get("index")))
            if found is not None:
                found.outcome, found.ended_at = _OUTCOMES[kind], time
                if active.get(node) is found:
                    del active[node]
    return tracks
