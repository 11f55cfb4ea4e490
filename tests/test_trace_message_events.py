"""The trace's per-message events (``Trace.on_send`` and friends): their fields, built
lazily or at once, and the arrival time each send records."""

from __future__ import annotations

import gc
import weakref

from simulator.observe.trace import Trace, message_fields
from simulator.raft import Entry, Message, MessageType
from transports.streaming.messages import SnapshotChunk, SnapshotRequest


def _trace(start_time: float = 0.0) -> tuple[Trace, list[float]]:
    trace = Trace(start_time=start_time)
    now = [start_time]
    trace.bind_clock(lambda: now[0])
    return trace, now


def test_each_send_records_its_own_arrival_rounded_to_the_nanosecond():
    start = 1000.1  # an offset whose subtraction leaves binary noise for round() to remove
    trace, now = _trace(start)
    heartbeat = Message(MessageType.HEARTBEAT, to=2, from_=1, term=3)
    arrivals = [start + 0.001, start + 0.001, start + 0.0025, start + 0.001, start + 1 / 3]
    for arrival in arrivals:
        trace.on_send(heartbeat, arrival)
    now[0] = start + 1  # publish the instant
    trace.node_event(1, "later")
    recorded = [record.get("arrives") for record in trace.of_kind("send")]
    assert recorded == [round(arrival - start, 9) for arrival in arrivals]
    assert recorded[2] == 0.0025 and recorded[4] == 0.333333333


def test_message_events_have_the_extra_field_first_then_the_messages_own():
    trace, now = _trace()
    plain = Message(MessageType.APPEND_RESPONSE, to=1, from_=2, term=4, index=9, commit=7)
    carrying = Message(MessageType.APPEND, to=2, from_=1, term=4, index=8, log_term=4,
                       entries=(Entry(4, 9, b"x" * 10),), commit=7)
    chunk = SnapshotChunk(from_=1, to=2, snapshot_index=5, snapshot_term=4, snapshot_id="s", offset=0,
                          total_size=3, is_final=True, checksum=0, data=b"abc")
    request = SnapshotRequest(from_=2, to=1, snapshot_index=5, snapshot_term=4, snapshot_id="s", offset=0)
    for message in (plain, carrying, chunk, request):
        trace.on_send(message, 0.25)
        trace.on_deliver(message)
        trace.on_drop(message, "lost")
        trace.on_duplicate(message, 0.5)
    now[0] = 1.0
    trace.node_event(1, "later")
    records = [record for record in trace.records if record.kind != "later"]
    expected = []
    for message in (plain, carrying, chunk, request):
        own = tuple(message_fields(message).items())
        expected += [("send", (("arrives", 0.25), *own)), ("deliver", own),
                     ("drop", (("reason", "lost"), *own)), ("duplicate", (("arrives", 0.5), *own))]
    # (the trace orders an instant by phase and node; the fields are what is checked here)
    assert sorted(((record.kind, record.fields) for record in records), key=repr) == sorted(expected, key=repr)
    assert len({record.to_json() for record in records}) == len(records)


def test_a_message_with_a_payload_is_not_kept_alive_by_the_trace_one_without_is():
    trace, _ = _trace()
    carrying = Message(MessageType.APPEND, to=2, from_=1, term=1, index=0,
                       entries=(Entry(1, 1, b"p" * 1000),))
    bare = Message(MessageType.HEARTBEAT, to=2, from_=1, term=1)
    watch_carrying, watch_bare = weakref.ref(carrying), weakref.ref(bare)
    trace.on_send(carrying, 0.25)
    trace.on_send(bare, 0.25)
    del carrying, bare
    gc.collect()
    assert watch_carrying() is None  # its fields were built at once, without the entries
    assert watch_bare() is not None  # read when the trace is (most never are)
    first, second = trace.records
    assert (first.get("entries"), first.get("size")) == (1, 64 + 24 + 1000)
    assert (second.get("type"), second.get("size")) == ("heartbeat", 64)
