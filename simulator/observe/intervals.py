"""What a trace says about stretches of time: nodes down or paused, network faults, roles.

Pure functions from trace records to small values, with no drawing: the
plots shade and colour what these return, and tests (or your own analysis)
can check them directly. Times are virtual seconds since the cluster opened,
as in the trace. A stretch still open when the trace ends ends at
:func:`run_end`.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from transports import faults

from .trace import CLUSTER, TraceRecord


@attrs.frozen
class NodeOutage:
    """Node ``node`` was ``down`` (crashed or removed) or ``paused`` from ``start`` to ``end``."""

    node: int
    start: float
    end: float
    kind: str  # "down", "paused"
    label: str
    ongoing: bool = False  # the trace ended before it did


@attrs.frozen
class NetworkFault:
    """From ``start`` to ``end`` the directed links ``blocked`` lost every message.

    ``label`` names the fault that set this state up; ``nodes`` are the
    nodes it cut off (see :func:`cut_off`), the ones a plot shades, and
    ``touched`` every node with at least one blocked link.
    """

    start: float
    end: float
    blocked: tuple[tuple[int, int], ...]
    label: str
    ongoing: bool = False  # the trace ended before it did
    nodes: tuple[int, ...] = ()

    @property
    def touched(self) -> tuple[int, ...]:
        return tuple(sorted({node for link in self.blocked for node in link}))


def cut_off(blocked, members) -> tuple[int, ...]:
    """The nodes a set of ``blocked`` links cuts off from a majority of ``members``.

    A node is cut off when it cannot talk both ways with enough others to
    make a majority with itself: isolating n4 cuts off n4 alone, although
    every other node lost its link to n4 too. When a fault leaves everyone a
    majority (one lost direction in a large cluster, say), the nodes at the
    ends of the blocked links are the ones it touches.
    """
    members = sorted(set(members) | {node for link in blocked for node in link})
    majority = len(members) // 2 + 1
    alone = tuple(node for node in members
                  if 1 + sum((node, peer) not in blocked and (peer, node) not in blocked
                             for peer in members if peer != node) < majority)
    return alone or tuple(sorted({node for link in blocked for node in link}))


@attrs.frozen
class RoleSpan:
    """Node ``node`` was ``role`` in ``term`` (knowing ``leader``, 0 if none) from ``start`` to ``end``."""

    node: int
    start: float
    end: float
    role: str
    term: int
    leader: int


def run_end(records: Sequence[TraceRecord]) -> float:
    """The time of the last record (0 for an empty trace)."""
    return max((record.time for record in records), default=0.0)


def node_ids(records: Sequence[TraceRecord]) -> list[int]:
    """Every node the trace mentions: by its own events, or as a message's sender or receiver."""
    nodes = {record.node for record in records if record.node != CLUSTER}
    for record in records:
        if record.kind in ("send", "deliver", "drop", "duplicate"):
            nodes.update(value for value in (record.get("from"), record.get("to")) if value)
    return sorted(nodes)


def outages(records: Sequence[TraceRecord]) -> list[NodeOutage]:
    """Every stretch a node was crashed, removed or paused, in the order they began."""
    end = run_end(records)
    open_since: dict[tuple[int, str], tuple[float, str]] = {}
    found: list[NodeOutage] = []

    def close(node: int, kind: str, at: float, ongoing: bool = False) -> None:
        started = open_since.pop((node, kind), None)
        if started is not None:
            found.append(NodeOutage(node, started[0], at, kind, started[1], ongoing))

    for record in records:
        if record.kind == "start" and record.node != CLUSTER:
            close(record.node, "down", record.time)
            close(record.node, "paused", record.time)
        elif record.kind == "node_removed":
            node = record.get("node_id")
            if (node, "down") in open_since:
                open_since[(node, "down")] = (open_since[(node, "down")][0], f"n{node} removed")
        elif record.kind == "fault":
            fault, node = record.get("fault"), record.get("node_id")
            if fault == "crash":
                close(node, "paused", record.time)  # a crash ends a pause: the node is gone
                open_since[(node, "down")] = (record.time, f"n{node} down")
            elif fault == "pause":
                open_since[(node, "paused")] = (record.time, f"n{node} paused")
            elif fault == "resume":
                close(node, "paused", record.time)
    for node, kind in list(open_since):
        close(node, kind, end, ongoing=True)
    return sorted(found, key=lambda outage: (outage.start, outage.node, outage.kind))


def _label(fields: dict) -> str:
    fault = fields["fault"]
    if fault == "partition":
        return "partition " + " | ".join(
            "{" + ", ".join(f"n{node}" for node in group) + "}" for group in fields.get("groups", [])
        )
    if fault == "isolate":
        return f"n{fields.get('node_id')} isolated"
    if fault == "one_way":
        return f"n{fields.get('src')} -> n{fields.get('dst')} lost"
    return fault.replace("_", " ")


def network_faults(records: Sequence[TraceRecord]) -> list[NetworkFault]:
    """Each stretch of time with the same set of blocked links, if any were blocked.

    Replays the fault events on the cluster's own fault shapes
    (:mod:`transports.faults`): ``partition``, ``bridge`` and
    ``majorities_ring`` replace what was blocked, ``isolate`` and
    ``one_way`` add to it, ``heal`` clears it.
    """
    end = run_end(records)
    members: set[int] = set()  # nodes started so far: the ones a shape is computed over
    blocked: set[tuple[int, int]] = set()
    since, label = 0.0, ""
    found: list[NetworkFault] = []
    for record in records:
        if record.kind == "start" and record.node != CLUSTER:
            members.add(record.node)
            continue
        if record.kind != "fault":
            continue
        fields = dict(record.fields)
        fault = fields.get("fault")
        if fault == "partition":
            after = faults.partition(members, *fields.get("groups", []))
        elif fault == "bridge":
            after = faults.bridge(sorted(members))
        elif fault == "majorities_ring":
            after = faults.majorities_ring(sorted(members))
        elif fault == "isolate":
            after = blocked | faults.isolate(members, fields["node_id"])
        elif fault == "one_way":
            after = blocked | faults.one_way(fields["src"], fields["dst"])
        elif fault == "heal":
            after = set()
        else:
            continue
        if after == blocked:
            continue
        if blocked and record.time > since:
            found.append(NetworkFault(since, record.time, tuple(sorted(blocked)), label,
                                      nodes=cut_off(blocked, members)))
        blocked, since, label = after, record.time, _label(fields)
    if blocked:
        found.append(NetworkFault(since, end, tuple(sorted(blocked)), label, ongoing=True,
                                  nodes=cut_off(blocked, members)))
    return found


#: Messages only a leader sends; whoever receives one of a higher term follows that leader.
_FROM_LEADER = frozenset({"append", "heartbeat", "snapshot"})


def role_spans(records: Sequence[TraceRecord]) -> list[RoleSpan]:
    """Each node's roles over time, from its ``start`` (a follower) through its ``role`` events.

    A node is in no role while it is down: a crash ends its span. A follower
    changes term without a ``role`` event; its new term (and leader) shows
    from the first append, heartbeat or snapshot it is delivered from a
    leader of that term, which Raft makes every receiver adopt (so a term
    learnt only from a vote request shows once that term's leader is heard).
    """
    end = run_end(records)
    current: dict[int, tuple[float, str, int, int]] = {}
    found: list[RoleSpan] = []

    def close(node: int, at: float) -> None:
        started = current.pop(node, None)
        if started is not None and at > started[0]:
            found.append(RoleSpan(node, started[0], at, *started[1:]))

    for record in records:
        if record.kind == "start" and record.node != CLUSTER:
            close(record.node, record.time)
            # Raft boots every node as a follower of nobody, in its stored term.
            current[record.node] = (record.time, "follower", record.get("term", 0), 0)
        elif record.kind == "role":
            close(record.node, record.time)
            current[record.node] = (record.time, record.get("role"), record.get("term"),
                                    record.get("leader") or 0)
        elif record.kind == "deliver" and record.get("type") in _FROM_LEADER:
            started = current.get(record.node)
            term, leader = record.get("term", 0), record.get("from")
            if started is not None and (term > started[2] or (term == started[2] and started[3] != leader
                                                                and started[1] == "follower")):
                close(record.node, record.time)
                current[record.node] = (record.time, "follower", term, leader)
        elif record.kind == "fault" and record.get("fault") == "crash":
            close(record.get("node_id"), record.time)
    for node in list(current):
        close(node, end)
    return sorted(found, key=lambda span: (span.node, span.start))


def membership(records: Sequence[TraceRecord]) -> list[tuple[float, tuple[int, ...], tuple[int, ...]]]:
    """``(time, voters, learners)`` each time the cluster's configuration changed.

    A change counts from the first node that applied it (``conf_change``
    events; each node applies the same change later too). A node never
    named is a voter of the initial configuration.
    """
    seen: set[int] = set()
    found = []
    for record in records:
        if record.kind != "conf_change" or record.get("index") in seen:
            continue
        seen.add(record.get("index"))
        found.append((record.time, tuple(record.get("voters", ())), tuple(record.get("learners", ()))))
    return found


def learners_at(changes, time: float) -> set[int]:
    """The learners at ``time`` of a :func:`membership` timeline."""
    learners: set[int] = set()
    for when, _, names in changes:
        if when > time:
            break
        learners = set(names)
    return learners
