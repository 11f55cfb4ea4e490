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
