"""``transports.faults``: each network fault shape as the set of directed links it blocks."""

from __future__ import annotations

import itertools

import pytest

from transports import faults


def all_links(ids) -> set[tuple[int, int]]:
    return {(a, b) for a in ids for b in ids if a != b}


def reachable(ids, blocked, node: int) -> frozenset[int]:
    """Nodes ``node`` can exchange messages with both ways, itself included."""
    both_ways = {o for o in ids if (node, o) not in blocked and (o, node) not in blocked}
    return frozenset({node} | both_ways)


# -- partition -------------------------------------------------------------------------


def test_partition_blocks_every_link_between_groups_and_none_within():
    blocked = faults.partition([1, 2, 3, 4, 5], (1, 2), (3, 4, 5))
    assert blocked == {(a, b) for a in (1, 2) for b in (3, 4, 5)} | {
        (b, a) for a in (1, 2) for b in (3, 4, 5)
    }


def test_partition_isolates_nodes_named_in_no_group():
    blocked = faults.partition([1, 2, 3, 4, 5], (1, 2), (3, 4))
    ids = [1, 2, 3, 4, 5]
    assert reachable(ids, blocked, 5) == {5}
    assert reachable(ids, blocked, 1) == {1, 2}
    assert reachable(ids, blocked, 3) == {3, 4}


def test_partition_with_no_groups_isolates_everyone():
    assert faults.partition([1, 2, 3]) == all_links([1, 2, 3])


def test_partition_refuses_a_node_in_two_groups():
    with pytest.raises(ValueError, match="node 2 is in two partition groups"):
        faults.partition([1, 2, 3], (1, 2), (2, 3))


def test_partition_refuses_a_node_not_in_the_cluster():
    with pytest.raises(ValueError, match=r"node 9 is not in the cluster; nodes are \[1, 2, 3\]"):
        faults.partition([1, 2, 3], (1, 9), (2, 3))


# -- isolate and one_way ---------------------------------------------------------------


def test_isolate_blocks_both_directions_of_every_link_of_the_node():
    assert faults.isolate([1, 2, 3], 2) == {(2, 1), (2, 3), (1, 2), (3, 2)}


def test_isolate_refuses_an_unknown_node():
    with pytest.raises(ValueError, match="node 4 is not in the cluster"):
        faults.isolate([1, 2, 3], 4)


def test_one_way_blocks_only_the_named_direction():
    assert faults.one_way(1, 2) == {(1, 2)}


def test_one_way_refuses_the_same_node_twice():
    with pytest.raises(ValueError, match="two different nodes"):
        faults.one_way(3, 3)


# -- bridge ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ids", "middle", "left", "right"),
    [
        ([1, 2, 3], 2, {1}, {3}),
        ([1, 2, 3, 4, 5], 3, {1, 2}, {4, 5}),
        ([5, 3, 1, 4, 2], 3, {1, 2}, {4, 5}),  # halves are taken in id order
    ],
)
def test_bridge_middle_node_reaches_both_halves_which_cannot_reach_each_other(
    ids, middle, left, right
):
    blocked = faults.bridge(ids)
    assert reachable(ids, blocked, middle) == set(ids)
    for node in left:
        assert reachable(ids, blocked, node) == left | {middle}
    for node in right:
        assert reachable(ids, blocked, node) == right | {middle}


@pytest.mark.parametrize("ids", [[], [1], [1, 2]])
def test_bridge_needs_at_least_three_nodes(ids):
    with pytest.raises(ValueError, match=f"at least 3 nodes, got {len(ids)}"):
        faults.bridge(ids)


# -- majorities ring -------------------------------------------------------------------


@pytest.mark.parametrize("count", [3, 4, 5, 7])
def test_majorities_ring_lets_every_node_reach_a_majority(count):
    ids = list(range(1, count + 1))
    blocked = faults.majorities_ring(ids)
    majority = count // 2 + 1
    for node in ids:
        assert len(reachable(ids, blocked, node)) >= majority, node


@pytest.mark.parametrize("count", [5, 7])
def test_majorities_ring_gives_no_two_nodes_the_same_view(count):
    ids = list(range(1, count + 1))
    blocked = faults.majorities_ring(ids)
    views = [reachable(ids, blocked, node) for node in ids]
    assert len(set(views)) == count
    # And it is a real fault: nobody reaches everyone.
    assert all(len(view) < count for view in views)


@pytest.mark.parametrize("count", [5, 7])
def test_majorities_ring_blocks_links_symmetrically(count):
    blocked = faults.majorities_ring(range(1, count + 1))
    assert blocked == {(b, a) for a, b in blocked}


# -- describe --------------------------------------------------------------------------


def test_describe_lists_blocked_links_in_order():
    assert faults.describe({(2, 1), (1, 3), (1, 2)}) == "1->2 1->3 2->1"


def test_describe_says_none_for_a_healthy_network():
    assert faults.describe(set()) == "none"


def test_every_fault_only_names_links_between_cluster_nodes():
    ids = [1, 2, 3, 4, 5]
    shapes = [
        faults.partition(ids, (1, 2), (3,)),
        faults.isolate(ids, 4),
        faults.bridge(ids),
        faults.majorities_ring(ids),
    ]
    for blocked in shapes:
        assert blocked <= all_links(ids)
    assert not any(a == b for a, b in itertools.chain.from_iterable(shapes))
