"""Raft messages on the wire (transports/grpc/wire.py): round trips, and what a peer may not send."""

from __future__ import annotations

import attrs
import pytest

from simulator.raft import (
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)
from transports.grpc.proto import raft_pb2 as pb
from transports.grpc.wire import (
    WireError,
    batch_to_wire,
    message_from_wire,
    message_to_wire,
    parse_batch,
)

MT = MessageType
NETWORK_TYPES = [kind for kind in MT if not kind.is_local]
META = SnapshotMetadata(index=7, term=3, conf_state=ConfState(voters=(1, 2), learners=(4,)), size=5,
                        digest="sha256:" + "ab" * 32, snapshot_id="3-7-abababababab")


@pytest.mark.parametrize("kind", NETWORK_TYPES, ids=[k.name for k in NETWORK_TYPES])
def test_every_network_message_type_survives_the_wire(kind):
    snapshot = Snapshot(META, b"hello") if kind is MT.SNAPSHOT else None
    message = Message(kind, to=2, from_=1, term=5, log_term=4, index=9, commit=8, reject=True, reject_hint=3,
                      context=b"ctx", snapshot=snapshot,
                      entries=(Entry(5, 10, b"x"), Entry(5, 11, b"\x00\x01", EntryType.CONF_CHANGE)))
    wire = pb.Message.FromString(message_to_wire(message).SerializeToString())
    assert message_from_wire(wire) == message


def test_a_metadata_only_snapshot_stays_without_data():
    message = Message(MT.SNAPSHOT, to=2, from_=1, term=1, snapshot=Snapshot(META, None))
    decoded = message_from_wire(pb.Message.FromString(message_to_wire(message).SerializeToString()))
    assert decoded.snapshot.data is None and decoded.snapshot.metadata == META
    empty = Message(MT.SNAPSHOT, to=2, from_=1, term=1, snapshot=Snapshot(attrs.evolve(META, size=0), b""))
    assert message_from_wire(message_to_wire(empty)).snapshot.data == b""


def test_garbage_bytes_are_refused_with_one_line():
    with pytest.raises(WireError, match="do not parse as a raftsim.v1.MessageBatch"):
        parse_batch(b"\xff\xff\xff\xff garbage")


def test_unknown_fields_from_a_newer_peer_are_skipped():
    batch = batch_to_wire(1, 2, [Message(MT.HEARTBEAT, to=2, from_=1, term=3, commit=1)])
    # Field 99, length-delimited, as a newer schema might add: protobuf skips it.
    data = batch.SerializeToString() + _field(99, b"new")
    parsed = parse_batch(data)
    assert [message_from_wire(m) for m in parsed.messages] == [Message(MT.HEARTBEAT, to=2, from_=1, term=3, commit=1)]


def _field(number: int, payload: bytes) -> bytes:
    def varint(value: int) -> bytes:
        out = bytearray()
        while True:
            byte, value = value & 0x7F, value >> 7
            out.append(byte | (0x80 if value else 0))
            if not value:
                return bytes(out)
    return varint(number << 3 | 2) + varint(len(payload)) + payload


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (pb.Message(msg_type=0), "msg_type 0 is not a network message type"),
        (pb.Message(msg_type=42), "msg_type 42 is not a network message type"),  # an older/newer enum
        (pb.Message(msg_type=pb.APPEND, entries=[pb.Entry(index=1, entry_type=7)]), "entry_type 7"),
        (pb.Message(msg_type=pb.HEARTBEAT, snapshot=pb.Snapshot()), "HEARTBEAT message with a snapshot"),
        (pb.Message(msg_type=pb.SNAPSHOT), "SNAPSHOT message without a snapshot"),
        (pb.Message(msg_type=pb.SNAPSHOT, snapshot=pb.Snapshot(metadata=pb.SnapshotMetadata(
            index=3, conf_state=pb.ConfState(voters=[2, 1])))), "voters must be sorted"),
        (pb.Message(msg_type=pb.SNAPSHOT, snapshot=pb.Snapshot(metadata=pb.SnapshotMetadata(
            index=3, conf_state=pb.ConfState(voters=[0])))), "node ids must be integers >= 1"),
        (pb.Message(msg_type=pb.SNAPSHOT, snapshot=pb.Snapshot(
            metadata=pb.SnapshotMetadata(index=3, size=10), data=b"short", has_data=True)),
         "5 bytes of data, metadata says 10"),
    ],
)
def test_invalid_messages_name_what_was_wrong(wire, expected):
    with pytest.raises(WireError, match=expected):
        message_from_wire(wire)


def test_local_message_types_have_no_wire_form():
    with pytest.raises(KeyError):
        message_to_wire(Message(MT.HUP, to=1, from_=1))
