"""The trace's order within one virtual instant: round, then phase, then node, and
each node's own events in the order it recorded them (``Trace.flush``)."""

from __future__ import annotations

from simulator.observe.trace import NODE, SCENARIO, TRANSPORT, Trace


def test_an_instant_is_ordered_by_round_phase_node_and_keeps_each_nodes_own_order():
    trace = Trace()
    now = [0.5]
    trace.bind_clock(lambda: now[0])
    # Round 0, recorded out of node order, nodes interleaved.
    trace.node_event(2, "a")
    trace.node_event(1, "b")
    trace.node_event(2, "c")
    trace.node_event(1, "d")
    trace.event(0.5, 0, "fault", phase=SCENARIO)
    trace.event(0.5, 2, "arrive", phase=TRANSPORT)
    trace.on_batch()  # round 1: after the batch, whatever node recorded it
    trace.node_event(1, "e")
    trace.event(0.5, 3, "z", phase=NODE)
    trace.node_event(1, "f")
    now[0] = 1.0
    trace.node_event(1, "later")  # time moved on: the instant above is published
    published = [(record.seq, record.time, record.node, record.kind) for record in trace.records]
    assert published == [
        (1, 0.5, 0, "fault"),
        (2, 0.5, 2, "arrive"),
        (3, 0.5, 1, "b"),
        (4, 0.5, 1, "d"),
        (5, 0.5, 2, "a"),
        (6, 0.5, 2, "c"),
        (7, 0.5, 1, "e"),
        (8, 0.5, 1, "f"),
        (9, 0.5, 3, "z"),
        (10, 1.0, 1, "later"),
    ]


def test_reading_mid_instant_shows_the_final_order_without_publishing_it():
    trace = Trace()
    trace.bind_clock(lambda: 0.0)
    for node, kind in ((3, "x"), (1, "y"), (3, "w"), (1, "v")):
        trace.node_event(node, kind)
    provisional = [(record.seq, record.node, record.kind) for record in trace.records]
    assert provisional == [(1, 1, "y"), (2, 1, "v"), (3, 3, "x"), (4, 3, "w")]
    trace.node_event(2, "u")  # the same instant: it still sorts in among the others
    assert [(record.seq, record.node, record.kind) for record in trace.records] == [
        (1, 1, "y"), (2, 1, "v"), (3, 2, "u"), (4, 3, "x"), (5, 3, "w"),
    ]


def _busy_trace() -> tuple[Trace, list[float]]:
    """Events over three instants, with message records, the last instant unpublished."""
    from simulator.raft import Entry, Message, MessageType

    trace = Trace()
    now = [0.25]
    trace.bind_clock(lambda: now[0])
    heartbeat = Message(MessageType.HEARTBEAT, to=2, from_=1, term=3)
    append = Message(MessageType.APPEND, to=3, from_=1, term=3, entries=(Entry(term=3, index=7, data=b"x"),))
    for instant in (0.25, 0.5, 0.75):
        now[0] = instant
        trace.node_event(1, "commit", index=int(instant * 8))
        trace.on_send(heartbeat, instant + 0.001)
        trace.on_deliver(append)
        trace.node_event(2, "apply", first=1, last=int(instant * 8))
    return trace, now


def test_of_kind_gives_exactly_the_records_of_those_kinds_published_or_not():
    trace, _ = _busy_trace()
    everything = trace.records
    for kinds in (("apply",), ("send", "commit"), ("deliver",), ("nothing",)):
        assert trace.of_kind(*kinds) == [record for record in everything if record.kind in kinds]
    fresh, _ = _busy_trace()  # asked before any record was built
    assert fresh.of_kind("apply", "deliver") == [record for record in everything if record.kind in ("apply", "deliver")]


def test_sha256_hashes_the_jsonl_form_as_it_grows():
    import hashlib

    trace, now = _busy_trace()
    assert trace.sha256() == hashlib.sha256(trace.to_jsonl().encode("utf-8")).hexdigest()
    now[0] = 1.0
    trace.node_event(3, "later", index=9)  # publishes the third instant, adds a pending event
    assert trace.sha256() == hashlib.sha256(trace.to_jsonl().encode("utf-8")).hexdigest()
