"""Raft values to protobuf and back: the boundary where bytes from a peer become messages.

Theory of operation. Every Raft message crosses the network as a
``raftsim.v1.Message`` (``proto/raft.proto``), a field-for-field mirror of
:class:`simulator.raft.Message`; nothing is ever pickled. Encoding cannot
fail. Decoding is where untrusted bytes meet the node, so it checks
everything a peer could get wrong and raises :class:`WireError` naming the
field, what it held and what was expected:

- bytes that do not parse as the protobuf at all (garbage, truncation);
- an unknown or local message type (``HUP``, ``BEAT``... never travel);
- a membership that :class:`~simulator.raft.ConfState` refuses (unsorted,
  duplicated, zero ids), an unknown entry type;
- a snapshot on a message that is not ``SNAPSHOT``, or none on one that is.

Unknown *fields* are not errors: protobuf skips them, which is what lets a
newer peer talk to an older one. The caller counts and logs each
``WireError`` under the named reason ``garbage from peer`` and drops the
message; Raft is built to survive lost messages, so dropping is safe, and
the core still checks the values (terms, indexes, addressing) itself.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from simulator.raft import (
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)

from .proto import raft_pb2 as pb

#: Python message type <-> wire enum value (local types have no wire value on purpose).
_TO_WIRE = {
    MessageType.PROPOSE: pb.PROPOSE,
    MessageType.APPEND: pb.APPEND,
    MessageType.APPEND_RESPONSE: pb.APPEND_RESPONSE,
    MessageType.REQUEST_VOTE: pb.REQUEST_VOTE,
    MessageType.REQUEST_VOTE_RESPONSE: pb.REQUEST_VOTE_RESPONSE,
    MessageType.REQUEST_PRE_VOTE: pb.REQUEST_PRE_VOTE,
    MessageType.REQUEST_PRE_VOTE_RESPONSE: pb.REQUEST_PRE_VOTE_RESPONSE,
    MessageType.SNAPSHOT: pb.SNAPSHOT,
    MessageType.HEARTBEAT: pb.HEARTBEAT,
    MessageType.HEARTBEAT_RESPONSE: pb.HEARTBEAT_RESPONSE,
    MessageType.TRANSFER_LEADER: pb.TRANSFER_LEADER,
    MessageType.TIMEOUT_NOW: pb.TIMEOUT_NOW,
    MessageType.READ_INDEX: pb.READ_INDEX,
    MessageType.READ_INDEX_RESPONSE: pb.READ_INDEX_RESPONSE,
}
_FROM_WIRE = {value: kind for kind, value in _TO_WIRE.items()}
_ENTRY_TYPES = {pb.NORMAL: EntryType.NORMAL, pb.CONF_CHANGE: EntryType.CONF_CHANGE,
                pb.CONF_CHANGE_V2: EntryType.CONF_CHANGE_V2}


class WireError(ValueError):
    """Bytes or fields from a peer that are not a valid Raft message (one line, named field)."""


# -- encoding ------------------------------------------------------------------------


def conf_state_to_wire(conf_state: ConfState) -> pb.ConfState:
    return pb.ConfState(voters=conf_state.voters, learners=conf_state.learners,
                        voters_outgoing=conf_state.voters_outgoing, learners_next=conf_state.learners_next,
                        auto_leave=conf_state.auto_leave)


def snapshot_to_wire(snapshot: Snapshot) -> pb.Snapshot:
    meta = snapshot.metadata
    wire = pb.Snapshot(
        metadata=pb.SnapshotMetadata(
            index=meta.index, term=meta.term, conf_state=conf_state_to_wire(meta.conf_state),
            size=meta.size, digest=meta.digest, snapshot_id=meta.snapshot_id,
        ),
        has_data=snapshot.data is not None,
    )
    if snapshot.data is not None:
        wire.data = snapshot.data
    return wire


def message_to_wire(message: Message) -> pb.Message:
    wire = pb.Message(
        msg_type=_TO_WIRE[message.msg_type],
        to=message.to,
        term=message.term,
        log_term=message.log_term,
        index=message.index,
        entries=[
            pb.Entry(term=e.term, index=e.index, data=e.data, entry_type=e.entry_type.value)
            for e in message.entries
        ],
        commit=message.commit,
        reject=message.reject,
        reject_hint=message.reject_hint,
        context=message.context,
        request_snapshot=message.request_snapshot,
        priority=message.priority,
    )
    setattr(wire, "from", message.from_)  # ``from`` is a Python keyword
    if message.snapshot is not None:
        wire.snapshot.CopyFrom(snapshot_to_wire(message.snapshot))
    return wire


def batch_to_wire(from_: int, to: int, messages) -> pb.MessageBatch:
    batch = pb.MessageBatch(to=to, messages=[message_to_wire(m) for m in messages])
    setattr(batch, "from", from_)
    return batch


# -- decoding ------------------------------------------------------------------------


def parse_batch(data: bytes) -> pb.MessageBatch:
    """Parse raw bytes as a batch; ``WireError`` if they are not one."""
    batch = pb.MessageBatch()
    try:
        batch.ParseFromString(data)
    except (DecodeError, ValueError) as error:
        raise WireError(f"{len(data)} bytes do not parse as a raftsim.v1.MessageBatch: {error}") from None
    return batch


def conf_state_from_wire(wire: pb.ConfState, what: str = "conf_state") -> ConfState:
    try:
        return ConfState(voters=tuple(wire.voters), learners=tuple(wire.learners),
                         voters_outgoing=tuple(wire.voters_outgoing), learners_next=tuple(wire.learners_next),
                         auto_leave=wire.auto_leave)
    except ValueError as error:
        raise WireError(f"{what}: {error}") from None


def snapshot_from_wire(wire: pb.Snapshot) -> Snapshot:
    meta = wire.metadata
    if meta.size and wire.has_data and len(wire.data) != meta.size:
        raise WireError(f"snapshot {meta.index}: {len(wire.data)} bytes of data, metadata says {meta.size}")
    metadata = SnapshotMetadata(
        index=meta.index, term=meta.term,
        conf_state=conf_state_from_wire(meta.conf_state, f"snapshot {meta.index} conf_state"),
        size=meta.size, digest=meta.digest, snapshot_id=meta.snapshot_id,
    )
    return Snapshot(metadata, bytes(wire.data) if wire.has_data else None)


def message_from_wire(wire: pb.Message) -> Message:
    """A :class:`~simulator.raft.Message` from its wire form; ``WireError`` if it cannot be one."""
    kind = _FROM_WIRE.get(wire.msg_type)
    if kind is None:
        known = sorted(pb.MessageType.Name(v) for v in _FROM_WIRE)
        raise WireError(f"msg_type {wire.msg_type} is not a network message type; expected one of {known}")
    entries = []
    for entry in wire.entries:
        entry_type = _ENTRY_TYPES.get(entry.entry_type)
        if entry_type is None:
            raise WireError(f"entry {entry.index}: entry_type {entry.entry_type}, expected one of "
                            f"{sorted(_ENTRY_TYPES)} (normal, conf change, conf change v2)")
        entries.append(Entry(term=entry.term, index=entry.index, data=bytes(entry.data), entry_type=entry_type))
    has_snapshot = wire.HasField("snapshot")
    if has_snapshot != (kind is MessageType.SNAPSHOT):
        raise WireError(
            f"{kind.name} message {'with' if has_snapshot else 'without'} a snapshot; "
            "a snapshot is expected on SNAPSHOT messages only"
        )
    return Message(
        msg_type=kind,
        to=wire.to,
        from_=getattr(wire, "from"),
        term=wire.term,
        log_term=wire.log_term,
        index=wire.index,
        entries=tuple(entries),
        commit=wire.commit,
        snapshot=snapshot_from_wire(wire.snapshot) if has_snapshot else None,
        reject=wire.reject,
        reject_hint=wire.reject_hint,
        context=bytes(wire.context),
        request_snapshot=wire.request_snapshot,
        priority=wire.priority,
    )
