"""Network fault shapes, as sets of blocked directed links.

Each function takes the cluster's node ids and returns the directed links
``(src, dst)`` to block; the cluster applies them to the transport. Kept
pure so each shape can be tested, printed and explained on its own.

The vocabulary (the same words in the CLI, scenarios and tests):

=====================  =====================================================
``partition(*groups)``  nodes talk only within their group; nodes named in
                        no group are cut off from everyone
``isolate(node)``       ``node`` can neither send nor receive
``one_way(a, b)``       messages from ``a`` to ``b`` are lost; ``b`` still
                        reaches ``a`` (a half-broken link)
``bridge(nodes)``       two halves that only hear each other through the one
                        node in the middle, which talks to both
``majorities_ring``     every node sees a majority, but no two nodes see the
                        same majority: a classic split-brain trap
``heal()``              every link works again
=====================  =====================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Link = tuple[int, int]


def _ids(nodes: Iterable[int]) -> list[int]:
    return sorted(set(nodes))


def partition(nodes: Iterable[int], *groups: Iterable[int]) -> set[Link]:
    ids = _ids(nodes)
    group_of: dict[int, int] = {}
    for number, group in enumerate(groups):
        for node in group:
            if node in group_of:
                raise ValueError(f"node {node} is in two partition groups; each node in at most one")
            if node not in ids:
                raise ValueError(f"node {node} is not in the cluster; nodes are {ids}")
            group_of[node] = number
    # A node in no group gets a group of its own.
    return {
        (a, b)
        for a in ids
        for b in ids
        if a != b and group_of.get(a, -a) != group_of.get(b, -b)
    }


def isolate(nodes: Iterable[int], node: int) -> set[Link]:
    ids = _ids(nodes)
    if node not in ids:
        raise ValueError(f"node {node} is not in the cluster; nodes are {ids}")
    return {(node, other) for other in ids if other != node} | {
        (other, node) for other in ids if other != node
    }


def one_way(a: int, b: int) -> set[Link]:
    if a == b:
        raise ValueError(f"one_way needs two different nodes, got {a} twice")
    return {(a, b)}


def bridge(nodes: Sequence[int]) -> set[Link]:
    """Split ``nodes`` (in id order) into two halves joined only by the middle node."""
    ids = _ids(nodes)
    if len(ids) < 3:
        raise ValueError(f"a bridge needs at least 3 nodes, got {len(ids)}")
    middle = len(ids) // 2
    left, right = ids[:middle], ids[middle + 1 :]
    return {(a, b) for a in left for b in right} | {(b, a) for a in left for b in right}


def majorities_ring(nodes: Sequence[int]) -> set[Link]:
    """Nodes on a ring each talk to their nearest neighbours, enough to form a majority."""
    ids = _ids(nodes)
    count = len(ids)
    majority = count // 2 + 1
    reach = -(-(majority - 1) // 2)  # neighbours on each side, rounded up
    blocked = set()
    for i, a in enumerate(ids):
        for j, b in enumerate(ids):
            distance = min((i - j) % count, (j - i) % count)
            if a != b and distance > reach:
                blocked.add((a, b))
    return blocked


def describe(blocked: set[Link]) -> str:
    """Blocked links as text, e.g. ``1->2 1->3``."""
    return " ".join(f"{a}->{b}" for a, b in sorted(blocked)) or "none"
