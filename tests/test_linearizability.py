"""The history checker: known histories, agreement with brute force, a cluster's own history.

Known linearizable and non-linearizable histories pin the algorithm down; a
hypothesis property compares it with an exhaustive search over every order
that respects real time, on random small histories; the cluster records each
client operation in virtual time and its ReadIndex history checks clean while
a stale local read of a cut-off leader is caught, with the minimal story told
in words and drawn.
"""

from __future__ import annotations

import itertools

import matplotlib
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import (
    Cluster,
    KeyValueStore,
    KVOperation,
    check_kv_history,
    check_linearizability,
    kv_operations,
    plot_history,
)
from simulator.checks.history import FAILED, OK, UNKNOWN
from simulator.checks.linearizability import is_linearizable

matplotlib.use("Agg")


def op(op_id, kind, value, invoked, completed, *, client=None, key="x", result=None):
    return KVOperation(op_id, op_id if client is None else client, kind, key, value, invoked, completed, result)


LINEARIZABLE = {
    "sequential": [op(0, "put", b"1", 0, 1), op(1, "get", b"1", 2, 3), op(2, "put", b"2", 4, 5),
                   op(3, "get", b"2", 6, 7)],
    "a read concurrent with a write may see the old value": [op(0, "put", b"1", 0, 1), op(1, "put", b"2", 2, 6),
                                                             op(2, "get", b"1", 3, 4)],
    "... or the new one": [op(0, "put", b"1", 0, 1), op(1, "put", b"2", 2, 6), op(2, "get", b"2", 3, 4)],
    "nothing written yet reads as absent": [op(0, "get", None, 0, 1), op(1, "put", b"1", 2, 3)],
    "operations touching one instant overlap": [op(0, "put", b"1", 0, 2), op(1, "get", None, 2, 3)],
    "a write of unknown outcome may have happened": [op(0, "put", b"1", 0, None), op(1, "get", b"1", 5, 6)],
    "... or not": [op(0, "put", b"1", 0, None), op(1, "get", None, 5, 6)],
    "delete answers": [op(0, "delete", None, 0, 1, result="not found"), op(1, "put", b"1", 2, 3),
                       op(2, "delete", None, 4, 5, result="ok"), op(3, "get", None, 6, 7)],
}

NOT_LINEARIZABLE = {
    "a stale read after a completed write": [op(0, "put", b"1", 0, 1), op(1, "put", b"2", 2, 3),
                                             op(2, "get", b"1", 4, 5)],
    "reads going back in time": [op(0, "put", b"1", 0, 10), op(1, "get", b"1", 1, 2), op(2, "get", None, 3, 4)],
    "a value nobody wrote": [op(0, "put", b"1", 0, 1), op(1, "get", b"9", 2, 3)],
    "delete finds nothing after a completed put": [op(0, "put", b"1", 0, 1),
                                                   op(1, "delete", None, 2, 3, result="not found")],
    "two readers disagree on the order": [op(0, "put", b"a", 0, 10), op(1, "put", b"b", 0, 10),
                                          op(2, "get", b"a", 1, 2), op(3, "get", b"b", 3, 4),
                                          op(4, "get", b"a", 5, 6)],
}


@pytest.mark.parametrize("name", sorted(LINEARIZABLE))
def test_known_linearizable_histories(name):
    verdict = check_kv_history(LINEARIZABLE[name])
    assert verdict.linearizable, verdict.describe()


@pytest.mark.parametrize("name", sorted(NOT_LINEARIZABLE))
def test_known_non_linearizable_histories(name):
    verdict = check_kv_history(NOT_LINEARIZABLE[name])
    assert not verdict.linearizable
    [violation] = verdict.violations
    assert not is_linearizable(list(violation.minimal))
    for left_out in violation.minimal:  # minimal: nothing can go
        rest = [o for o in violation.minimal if o is not left_out]
        written = {None} | {o.value for o in rest if o.kind == "put"}
        assert is_linearizable(rest) or any(o.value not in written for o in rest if o.kind == "get")


def test_keys_are_checked_apart_and_the_minimal_story_is_told():
    noise = [op(10 + n, "put", b"%d" % n, 10 * n, 10 * n + 1, key=f"k{n}") for n in range(20)]
    history = noise + NOT_LINEARIZABLE["a stale read after a completed write"]
    verdict = check_kv_history(history)
    assert [v.key for v in verdict.violations] == ["x"] and len(verdict.keys) == 21
    [violation] = verdict.violations
    assert [o.op_id for o in violation.minimal] == [0, 1, 2]
    text = verdict.describe()
    assert "#0 ended (1.000) before #1 began (2.000)" in text
    assert "#2 read b'1' while the register held b'2'" in text


def _brute_force(operations) -> bool:
    definite = [o for o in operations if o.completed is not None]
    maybe = [o for o in operations if o.completed is None]
    for count in range(len(maybe) + 1):
        for chosen in itertools.combinations(maybe, count):
            ops = definite + list(chosen)
            for order in itertools.permutations(ops):
                if any(a.completed is not None and a.completed < b.invoked
                       for i, b in enumerate(order) for a in order[i + 1:]):
                    continue
                state, legal = None, True
                for o in order:
                    if o.kind == "put":
                        state = o.value
                    elif o.kind == "delete":
                        state = None
                    elif o.value != state:
                        legal = False
                        break
                if legal:
                    return True
    return False


@st.composite
def histories(draw):
    operations = []
    for number in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["put", "put", "get", "get", "delete"]))
        start = draw(st.integers(0, 8))
        end = None if kind != "get" and draw(st.integers(0, 5)) == 0 else start + draw(st.integers(0, 4))
        value = draw(st.sampled_from([None, b"a", b"b"])) if kind != "delete" else None
        if kind == "put" and value is None:
            value = b"a"
        operations.append(op(number, kind, value, start, end))
    return operations


@settings(max_examples=300, deadline=None)
@given(histories())
def test_agrees_with_an_exhaustive_search(operations):
    assert is_linearizable(operations) == _brute_force(operations)


# -- the cluster's own history ------------------------------------------------------------


async def test_the_cluster_records_each_operation_and_its_readindex_history_is_linearizable(autojump_clock):
    async with Cluster.open(nodes=3, seed=11, state_machine=KeyValueStore) as cluster:
        await cluster.wait_for_leader()

        async def worker(number: int) -> None:
            client = cluster.client(number)
            for step in range(6):
                await client.propose(KeyValueStore.put(f"k{step % 2}", b"%d-%d" % (number, step)))
                await cluster.read(f"k{step % 2}", client=client)
                await trio.sleep(0.01 * number)

        async with trio.open_nursery() as nursery:
            for number in (1, 2, 3):
                nursery.start_soon(worker, number)
            await trio.sleep(0.3)
            cluster.crash(cluster.leader_id())
        operations = cluster.history.operations
        assert len(operations) == 36 and all(o.outcome == OK for o in operations)
        assert all(o.completed >= o.invoked for o in operations)
        assert len({(o.invoked, o.completed) for o in operations}) > 12  # really concurrent, in virtual time
        verdict = check_linearizability(cluster)
        assert verdict.linearizable, verdict.describe()
        assert sum(v.operations for v in verdict.keys) == 36


async def test_a_stale_read_of_a_cut_off_leader_is_caught_and_drawn(autojump_clock):
    async with Cluster.open(nodes=3, seed=2, state_machine=KeyValueStore) as cluster:
        old = await cluster.wait_for_leader()
        await cluster.propose(KeyValueStore.put("x", b"before"))
        await cluster.wait_caught_up()
        cluster.isolate(old)
        await cluster.wait_until(lambda: cluster.leader_id() not in (None, old), timeout=10, what="a new leader")
        await cluster.propose(KeyValueStore.put("x", b"after"))
        await trio.sleep(0.05)
        assert cluster.stale_read("x", old) == b"before"
        assert (await cluster.read("x")).value == b"after"

    assert check_linearizability(cluster).linearizable  # ReadIndex reads only
    verdict = check_linearizability(cluster, include_stale=True)
    [violation] = verdict.violations
    kinds = [(o.kind, o.value) for o in violation.minimal]
    assert kinds == [("put", b"before"), ("put", b"after"), ("get", b"before")]
    assert "read b'before' while the register held b'after'" in verdict.describe()
    ax = plot_history(verdict)
    marked = sorted(c.get_gid() for c in ax.collections if (c.get_gid() or "").endswith("violation"))
    assert marked == [f"op {o.op_id} violation" for o in sorted(violation.minimal, key=lambda o: o.op_id)]


async def test_timeouts_and_refusals_are_recorded_as_such(autojump_clock):
    async with Cluster.open(nodes=3, seed=5, state_machine=KeyValueStore) as cluster:
        leader = await cluster.wait_for_leader()
        await cluster.propose(KeyValueStore.put("x", b"1"))
        for node in cluster.node_ids:
            if node != leader:
                cluster.crash(node)
        with pytest.raises(Exception, match="not applied"):
            await cluster.propose(KeyValueStore.put("x", b"2"), timeout=1)
        with pytest.raises(Exception, match="not answered"):
            await cluster.read("x", timeout=1)
    put_ok, put_unknown, read_failed = cluster.history.operations
    assert (put_ok.outcome, put_unknown.outcome, read_failed.outcome) == (OK, UNKNOWN, FAILED)
    assert put_unknown.completed is None
    kinds = [(o.kind, o.completed) for o in kv_operations(cluster.history)]
    assert kinds == [("put", put_ok.completed), ("put", None)]  # the failed read is left out
    assert check_linearizability(cluster).linearizable
