"""``Cluster`` on virtual time: elections, the client, every fault, compaction,
membership, liveness checks, invariant violations and the trace.

Every test takes pytest-trio's ``autojump_clock``: minutes of cluster life
run in milliseconds, and a fixed seed makes each run the same.
"""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest
import trio

from simulator import (
    Cluster,
    CompactionPolicy,
    Config,
    InvariantViolation,
    KeyValueStore,
    LivenessError,
    ProposalResult,
    ProposalTimeoutError,
    Role,
    WorkflowExecutor,
    read_jsonl,
)
from transports import faults
from simulator.explore.schedules import steady_load
from transports import Constant, Exponential, LinkConfig, Uniform


def start(number: int, payload: bytes = b"") -> bytes:
    return WorkflowExecutor.start(f"wf-{number}", ["fetch", "build"], payload)


async def propose_many(cluster, count: int, first: int = 1) -> list[ProposalResult]:
    return [await cluster.propose(start(number)) for number in range(first, first + count)]


def digests(cluster, node_ids=None) -> set[str]:
    ids = cluster.node_ids if node_ids is None else node_ids
    return {cluster.state_machine(node_id).digest() for node_id in ids}


def roles(cluster) -> dict[int, Role]:
    return {node_id: cluster.statistics(node_id).role for node_id in cluster.up_nodes()}


def leaders_by_term(cluster) -> dict[int, set[int]]:
    """Every node that the trace shows becoming leader, per term."""
    leaders: dict[int, set[int]] = {}
    for record in cluster.trace.of_kind("role"):
        if record.get("role") == "leader":
            leaders.setdefault(record.get("term"), set()).add(record.node)
    return leaders


def sends(cluster, src: int, dst: int, msg_type: str | None = None):
    return [
        record
        for record in cluster.trace.of_kind("send")
        if record.get("from") == src
        and record.get("to") == dst
        and (msg_type is None or record.get("type") == msg_type)
    ]


def followers_of(cluster, leader: int) -> list[int]:
    return [node_id for node_id in cluster.node_ids if node_id != leader]


# -- elections and replication ---------------------------------------------------------


@pytest.mark.parametrize("nodes", [3, 5])
async def test_cluster_elects_exactly_one_leader_that_everyone_follows(autojump_clock, nodes):
    async with Cluster.open(nodes=nodes, seed=1) as cluster:
        leader = await cluster.wait_for_leader()
        await trio.sleep(3)  # heartbeats settle every follower
        term = cluster.statistics(leader).term
        assert roles(cluster) == {
            node_id: Role.LEADER if node_id == leader else Role.FOLLOWER
            for node_id in cluster.node_ids
        }
        for node_id in cluster.node_ids:
            assert cluster.statistics(node_id).term == term
            assert cluster.statistics(node_id).leader_id == leader
        assert leaders_by_term(cluster) == {term: {leader}}
        assert cluster.leader_id() == leader


@pytest.mark.parametrize("nodes", [3, 5])
async def test_proposals_return_results_and_every_replica_ends_in_the_same_state(
    autojump_clock, nodes
):
    async with Cluster.open(nodes=nodes, seed=2) as cluster:
        leader = await cluster.wait_for_leader()
        commands = [start(1), WorkflowExecutor.complete_step("wf-1", "fetch", b"out"), start(1)]
        results = [await cluster.propose(command) for command in commands]
        term = cluster.statistics(leader).term
        # Index 1 is the new leader's empty entry; the commands follow in order.
        assert results == [
            ProposalResult(index=2, term=term, node_id=leader, result="ok", attempts=1),
            ProposalResult(index=3, term=term, node_id=leader, result="ok", attempts=1),
            ProposalResult(
                index=4, term=term, node_id=leader,
                result="error: workflow 'wf-1' already exists", attempts=1,
            ),
        ]
        await cluster.wait_caught_up()
        # The same commands applied by hand to a fresh executor give the same state.
        expected = WorkflowExecutor()
        for result, command in zip(results, commands):
            expected.apply(result.index, command)
        assert digests(cluster) == {expected.digest()}
        for node_id in cluster.node_ids:
            machine = cluster.state_machine(node_id)
            assert machine.workflows["wf-1"].steps[0].status == "completed"
            assert machine.rejected_commands == 1


async def test_a_node_runs_its_ready_loop_once_for_everything_it_got_at_one_instant(autojump_clock):
    """A new leader's empty entry: both followers' acknowledgements reach it at the same
    instant (constant latency). It steps both, then persists, sends and applies once. One
    Ready per reply would commit and apply after the first and send to the second
    follower only after its reply (its progress was still probing): commit, send, apply, send."""
    async with Cluster.open(nodes=3, seed=1) as cluster:
        leader = await cluster.wait_for_leader()
        await trio.sleep(1)  # the trace publishes an instant once time moves on
        commit = next(record for record in cluster.trace.of_kind("commit")
                      if record.node == leader and record.get("index") == 1)
        acknowledgements = [record for record in cluster.trace.of_kind("deliver")
                            if record.node == leader and record.time == commit.time]
        assert len(acknowledgements) == 2  # the test's premise: one instant, both replies
        reaction = [(record.kind, record.get("to")) for record in cluster.trace.records
                    if record.node == leader and record.time == commit.time and record.kind != "deliver"]
        followers = sorted(set(cluster.node_ids) - {leader})
        assert reaction == [("commit", None), *[("send", node) for node in followers], ("apply", None)]


async def test_key_value_store_as_state_machine_reads_applied_values_on_every_node(autojump_clock):
    async with Cluster.open(nodes=3, seed=3, state_machine=KeyValueStore) as cluster:
        await cluster.wait_for_leader()
        assert (await cluster.propose(KeyValueStore.put("colour", b"red"))).result == "ok"
        assert (await cluster.propose(KeyValueStore.put("size", b"L"))).result == "ok"
        assert (await cluster.propose(KeyValueStore.put("colour", b"blue"))).result == "ok"
        assert (await cluster.propose(KeyValueStore.delete("size"))).result == "ok"
        assert (await cluster.propose(KeyValueStore.delete("size"))).result == "not found"
        await cluster.wait_caught_up()
        for node_id in cluster.node_ids:
            machine = cluster.state_machine(node_id)
            assert isinstance(machine, KeyValueStore)
            assert machine.get("colour") == b"blue"
            assert machine.get("size") is None
            assert machine.data == {"colour": b"blue"}
        assert len(digests(cluster)) == 1


# -- the client -----------------------------------------------------------------------


async def test_client_retries_on_the_new_leader_when_the_old_one_crashes_mid_proposal(
    autojump_clock,
):
    async with Cluster.open(nodes=3, seed=4) as cluster:
        old_leader = await cluster.wait_for_leader()
        await propose_many(cluster, 2)
        # The command reaches the leader now; the leader dies before its appends
        # (1 ms away) arrive, so only a retry on the next leader can apply it.
        cluster.at(cluster.now() + 0.0005, cluster.crash, old_leader)
        result = await cluster.propose(start(3))
        assert result.attempts == 2
        assert result.node_id != old_leader
        assert result.node_id == cluster.leader_id()
        assert result.term > cluster.storage(old_leader).hard_state.term
        later = await cluster.propose(start(4))
        assert (later.node_id, later.attempts) == (result.node_id, 1)
        await cluster.wait_caught_up()
        live = cluster.up_nodes()
        assert len(live) == 2 and len(digests(cluster, live)) == 1
        assert set(cluster.state_machine(live[0]).workflows) == {"wf-1", "wf-2", "wf-3", "wf-4"}


async def test_client_follows_leadership_when_the_leader_is_isolated(autojump_clock):
    async with Cluster.open(nodes=3, seed=5) as cluster:
        old_leader = await cluster.wait_for_leader()
        await propose_many(cluster, 2)
        cluster.isolate(old_leader)
        # The isolated leader still believes it leads: the command goes there
        # first, fails when it steps down, and is retried on the new leader.
        result = await cluster.propose(start(3))
        assert result.attempts > 1
        assert result.node_id != old_leader
        assert cluster.statistics(old_leader).role is not Role.LEADER
        assert (await cluster.propose(start(4))).attempts == 1
        others = followers_of(cluster, old_leader)
        await cluster.wait_caught_up(others)
        assert set(cluster.state_machine(others[0]).workflows) == {"wf-1", "wf-2", "wf-3", "wf-4"}
        assert len(digests(cluster, others)) == 1


async def test_client_retries_on_the_new_leader_when_the_leader_is_paused(autojump_clock):
    """A paused leader never answers; a new one is elected within about two
    election timeouts, well inside the proposal's 10 s."""
    async with Cluster.open(nodes=3, seed=42) as cluster:
        old_leader = await cluster.wait_for_leader()
        await propose_many(cluster, 1)
        cluster.pause(old_leader)
        result = await cluster.propose(start(2), timeout=10.0)
        assert result.node_id != old_leader
        assert result.node_id == cluster.leader_id()
        assert result.term > cluster.statistics(old_leader).term


async def test_proposal_times_out_naming_attempts_and_last_problem_without_a_majority(
    autojump_clock,
):
    async with Cluster.open(nodes=3, seed=6) as cluster:
        leader = await cluster.wait_for_leader()
        await propose_many(cluster, 1)
        for follower in followers_of(cluster, leader):
            cluster.isolate(follower)
        with pytest.raises(ProposalTimeoutError) as raised:
            await cluster.propose(start(2), timeout=5.0)
        # The leader took the command, then stepped down (check quorum) without
        # committing it; nobody can be elected afterwards.
        assert str(raised.value) == (
            f"command not applied within 5.0 s after 1 attempt(s); last problem: "
            f"node {leader} lost leadership before applying the entry"
        )
        assert cluster.leader_id() is None
        for node_id in cluster.node_ids:
            assert set(cluster.state_machine(node_id).workflows) == {"wf-1"}


async def test_separate_clients_in_concurrent_tasks_both_get_their_commands_applied(
    autojump_clock,
):
    async with Cluster.open(nodes=3, seed=7) as cluster:
        leader = await cluster.wait_for_leader()
        results: dict[int, ProposalResult] = {}

        async def submit(client_id: int) -> None:
            results[client_id] = await cluster.client(client_id).propose(start(client_id))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(submit, 2)
            nursery.start_soon(submit, 1)
        # Same instant: ordered by client id, whatever order trio ran the tasks in.
        assert (results[1].index, results[2].index) == (2, 3)
        assert results[1].node_id == results[2].node_id == leader
        await cluster.wait_caught_up()
        for node_id in cluster.node_ids:
            assert set(cluster.state_machine(node_id).workflows) == {"wf-1", "wf-2"}


async def test_default_client_refuses_two_tasks_in_the_same_instant(autojump_clock):
    async with Cluster.open(nodes=3, seed=8) as cluster:
        await cluster.wait_for_leader()
        outcomes: list[object] = []

        async def submit(number: int) -> None:
            try:
                outcomes.append(await cluster.propose(start(number)))
            except RuntimeError as error:
                outcomes.append(error)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(submit, 1)
            nursery.start_soon(submit, 2)
        errors = [outcome for outcome in outcomes if isinstance(outcome, RuntimeError)]
        applied = [outcome for outcome in outcomes if isinstance(outcome, ProposalResult)]
        assert len(errors) == 1 and len(applied) == 1
        assert "cluster.client" in str(errors[0])
        assert "two tasks in the same instant" in str(errors[0])


async def test_invalid_cluster_options_raise_a_plain_value_error(autojump_clock):
    """Not an ExceptionGroup: nothing ran yet, there is one plain mistake to report."""
    with pytest.raises(ValueError, match="at least 1 node, got 0"):
        async with Cluster.open(nodes=0):
            pass
    with pytest.raises(ValueError, match="tick_interval must be > 0"):
        async with Cluster.open(nodes=3, tick_interval=0):
            pass


async def test_client_ids_node_ids_and_fault_arguments_are_validated(autojump_clock):
    async with Cluster.open(nodes=3, seed=47) as cluster:
        with pytest.raises(ValueError, match="client ids are >= 1"):
            cluster.client(0)
        assert cluster.client(3) is cluster.client(3)
        with pytest.raises(KeyError, match="no node 9"):
            cluster.crash(9)
        with pytest.raises(ValueError, match="node 2 is in two partition groups"):
            cluster.partition([1, 2], [2, 3])
        with pytest.raises(ValueError, match="node 7 is not in the cluster"):
            cluster.isolate(7)


# -- network faults ----------------------------------------------------------------------


async def test_partition_minority_cannot_commit_and_catches_up_after_heal(autojump_clock):
    async with Cluster.open(nodes=5, seed=9) as cluster:
        old_leader = await cluster.wait_for_leader()
        await propose_many(cluster, 3)
        await cluster.wait_caught_up()
        minority = [old_leader, followers_of(cluster, old_leader)[0]]
        majority = [node_id for node_id in cluster.node_ids if node_id not in minority]
        commit_before = {node_id: cluster.statistics(node_id).commit for node_id in minority}
        cluster.partition(minority, majority)
        assert set(cluster.transport.blocked_links) == {
            (a, b) for a in minority for b in majority
        } | {(b, a) for a in minority for b in majority}
        # The old leader still leads its side for a moment: it takes a command
        # but cannot commit it.
        with pytest.raises(ProposalTimeoutError, match=f"node {old_leader} had not applied it yet"):
            await cluster.client(1).propose(start(99), timeout=0.5)
        assert cluster.storage(old_leader).last_index() > commit_before[old_leader]

        await trio.sleep(5)
        new_leader = cluster.leader_id()
        assert new_leader in majority
        # The old leader lost its quorum and stepped down.
        assert cluster.statistics(old_leader).role is not Role.LEADER
        results = await propose_many(cluster, 4, first=4)
        assert {result.node_id for result in results} == {new_leader}
        await cluster.wait_caught_up(majority)
        await trio.sleep(2)
        for node_id in minority:
            assert cluster.statistics(node_id).commit == commit_before[node_id]
            assert set(cluster.state_machine(node_id).workflows) == {"wf-1", "wf-2", "wf-3"}

        cluster.heal()
        assert cluster.transport.blocked_links == []
        await cluster.wait_caught_up()
        assert len(digests(cluster)) == 1
        # The minority's uncommitted entry was replaced by the majority's log.
        assert set(cluster.state_machine(old_leader).workflows) == {
            f"wf-{number}" for number in range(1, 8)
        }


async def test_isolate_adds_to_existing_faults_and_partition_replaces_them(autojump_clock):
    async with Cluster.open(nodes=5, seed=48) as cluster:
        cluster.one_way(4, 5)
        cluster.isolate(1)
        assert set(cluster.transport.blocked_links) == {(4, 5)} | faults.isolate(range(1, 6), 1)
        cluster.partition([1, 2, 3], [4, 5])
        assert set(cluster.transport.blocked_links) == {
            (a, b) for a in (1, 2, 3) for b in (4, 5)
        } | {(b, a) for a in (1, 2, 3) for b in (4, 5)}
        # A node named in no group is cut off from everyone.
        cluster.partition([1, 2], [3, 4])
        assert set(cluster.transport.blocked_links) >= faults.isolate(range(1, 6), 5)
        assert (1, 3) in cluster.transport.blocked_links
        assert (1, 2) not in cluster.transport.blocked_links


async def test_isolated_follower_falls_behind_without_disturbing_the_leader(autojump_clock):
    async with Cluster.open(nodes=3, seed=10) as cluster:
        leader = await cluster.wait_for_leader()
        term = cluster.statistics(leader).term
        isolated = followers_of(cluster, leader)[0]
        await propose_many(cluster, 1)
        await cluster.wait_caught_up()
        applied_before = cluster.statistics(isolated).applied
        cluster.isolate(isolated)
        assert cluster.transport.blocked_links == sorted(
            faults.isolate(cluster.node_ids, isolated)
        )
        assert set(cluster.transport.blocked_links) == {
            (isolated, other) for other in cluster.node_ids if other != isolated
        } | {(other, isolated) for other in cluster.node_ids if other != isolated}

        await propose_many(cluster, 3, first=2)
        await trio.sleep(5)  # several election timeouts for the isolated node
        assert cluster.statistics(isolated).applied == applied_before
        # Pre-vote: the isolated node never won a pre-election, so its term stayed.
        assert cluster.statistics(isolated).term == term

        cluster.heal()
        await cluster.wait_caught_up()
        assert cluster.leader_id() == leader
        assert cluster.statistics(leader).term == term
        assert len(digests(cluster)) == 1


async def test_one_way_drops_only_messages_in_that_direction(autojump_clock):
    async with Cluster.open(nodes=3, seed=11) as cluster:
        leader = await cluster.wait_for_leader()
        follower = followers_of(cluster, leader)[0]
        term = cluster.statistics(leader).term
        match_before = {p.node_id: p for p in cluster.statistics(leader).progress}[
            follower
        ].match_index
        before = cluster.transport.statistics()
        cluster.one_way(follower, leader)
        assert cluster.transport.blocked_links == [(follower, leader)]
        results = await propose_many(cluster, 3)
        await trio.sleep(3)  # past an election timeout: check quorum ran

        after = cluster.transport.statistics()
        blocked, reverse = after.link(follower, leader), after.link(leader, follower)
        assert before.link(follower, leader).messages_dropped == 0
        sent_since = blocked.messages_sent - before.link(follower, leader).messages_sent
        assert sent_since > 0
        assert blocked.messages_dropped == sent_since
        assert blocked.messages_delivered == before.link(follower, leader).messages_delivered
        assert reverse.messages_dropped == 0
        assert reverse.messages_delivered > before.link(leader, follower).messages_delivered
        drops = cluster.trace.of_kind("drop")
        assert drops and {(r.get("from"), r.get("to"), r.get("reason")) for r in drops} == {
            (follower, leader, "link blocked")
        }
        # The follower hears the leader (no election), the leader never hears it.
        assert cluster.leader_id() == leader
        assert cluster.statistics(follower).leader_id == leader
        assert cluster.statistics(follower).term == term
        progress = {p.node_id: p for p in cluster.statistics(leader).progress}
        assert progress[follower].match_index == match_before
        assert not progress[follower].recently_active
        assert results[-1].index == cluster.statistics(leader).commit


async def test_bridge_cuts_the_far_half_off_the_leader_without_disrupting_it(autojump_clock):
    async with Cluster.open(nodes=5, seed=12) as cluster:
        leader = await cluster.wait_for_leader()
        term = cluster.statistics(leader).term
        await propose_many(cluster, 2)
        await cluster.wait_caught_up()
        cluster.bridge()
        # 1, 2 | 3 | 4, 5: only node 3 hears both halves.
        assert cluster.transport.blocked_links == [
            (1, 4), (1, 5), (2, 4), (2, 5), (4, 1), (4, 2), (5, 1), (5, 2)
        ]
        assert set(cluster.transport.blocked_links) == faults.bridge(cluster.node_ids)
        assert leader in (4, 5)  # this seed: the leader is in the right half
        far = [1, 2]
        applied_before = {node_id: cluster.statistics(node_id).applied for node_id in far}

        load = await steady_load(cluster, duration=10, interval=0.2, timeout=2)
        assert load.committed == load.proposed
        # The far half never hears the leader and falls behind; it cannot win a
        # pre-election, because node 3 still hears the leader and refuses.
        for node_id in far:
            assert cluster.statistics(node_id).applied == applied_before[node_id]
            assert cluster.statistics(node_id).role is Role.PRE_CANDIDATE
        await cluster.wait_caught_up([3, 4, 5])
        assert cluster.leader_id() == leader
        assert leaders_by_term(cluster) == {term: {leader}}

        cluster.heal()
        assert await cluster.check_liveness(within=10) == leader
        assert len(digests(cluster)) == 1


async def test_majorities_ring_leaves_the_leaders_non_neighbours_behind(autojump_clock):
    async with Cluster.open(nodes=5, seed=13) as cluster:
        leader = await cluster.wait_for_leader()
        term = cluster.statistics(leader).term
        await propose_many(cluster, 2)
        await cluster.wait_caught_up()
        cluster.majorities_ring()
        # Ring 1-2-3-4-5-1: each node hears itself and its two neighbours.
        assert cluster.transport.blocked_links == [
            (1, 3), (1, 4), (2, 4), (2, 5), (3, 1), (3, 5), (4, 1), (4, 2), (5, 2), (5, 3)
        ]
        assert set(cluster.transport.blocked_links) == faults.majorities_ring(cluster.node_ids)
        assert leader == 4  # this seed; its neighbours are 3 and 5
        applied_before = {node_id: cluster.statistics(node_id).applied for node_id in (1, 2)}

        load = await steady_load(cluster, duration=10, interval=0.2, timeout=2)
        assert load.committed == load.proposed
        for node_id in (1, 2):
            assert cluster.statistics(node_id).applied == applied_before[node_id]
        await cluster.wait_caught_up([3, 4, 5])
        assert leaders_by_term(cluster) == {term: {leader}}

        cluster.heal()
        assert await cluster.check_liveness(within=10) == leader
        assert len(digests(cluster)) == 1


async def test_majorities_ring_without_pre_vote_churns_leaders_but_stays_safe(autojump_clock):
    """Without pre-vote and check quorum, the ring is the classic trap: nodes that
    cannot hear the leader keep raising the term. Leaders change; safety holds."""
    def no_pre_vote(node_id: int) -> Config:
        return Config(id=node_id, pre_vote=False, check_quorum=False)

    async with Cluster.open(nodes=5, seed=14, config=no_pre_vote) as cluster:
        await cluster.wait_for_leader()
        await propose_many(cluster, 2)
        cluster.majorities_ring()
        load = await steady_load(cluster, duration=10, interval=0.2, timeout=2)
        assert 0 < load.committed < load.proposed
        leaders = leaders_by_term(cluster)
        assert len(leaders) > 1
        assert all(len(nodes) == 1 for nodes in leaders.values())
        cluster.heal()
        await cluster.check_liveness(within=10)
        assert len(digests(cluster)) == 1


# -- link behaviour ----------------------------------------------------------------------


async def test_constant_latency_on_one_link_delays_exactly_its_messages(autojump_clock):
    async with Cluster.open(nodes=3, seed=14) as cluster:
        leader = await cluster.wait_for_leader()
        slow, fast = followers_of(cluster, leader)
        cluster.set_link(leader, slow, LinkConfig(latency=Constant(0.05)))
        set_at = cluster.now()
        await propose_many(cluster, 3)
        await trio.sleep(1)
        slow_sends = [r for r in sends(cluster, leader, slow) if r.time >= set_at]
        fast_sends = [r for r in sends(cluster, leader, fast) if r.time >= set_at]
        assert slow_sends and fast_sends
        for record in slow_sends:
            assert record.get("arrives") - record.time == pytest.approx(0.05, abs=1e-8)
        for record in fast_sends:
            assert record.get("arrives") - record.time == pytest.approx(0.001, abs=1e-8)
        # The reverse direction keeps the default.
        for record in sends(cluster, slow, leader):
            assert record.get("arrives") - record.time == pytest.approx(0.001, abs=1e-8)


async def test_set_links_replaces_per_link_overrides_and_heal_keeps_link_settings(
    autojump_clock,
):
    async with Cluster.open(nodes=3, seed=39) as cluster:
        cluster.set_link(1, 2, LinkConfig(latency=Constant(0.05)))
        cluster.isolate(3)
        cluster.heal()  # unblocks links, leaves their quality alone
        assert cluster.transport.link_config(1, 2).latency == Constant(0.05)
        cluster.set_links(LinkConfig(latency=Constant(0.002)))
        for src, dst in [(1, 2), (2, 1), (1, 3), (3, 2)]:
            assert cluster.transport.link_config(src, dst).latency == Constant(0.002)
        await cluster.wait_for_leader()
        latencies = {r.get("arrives") - r.time for r in cluster.trace.of_kind("send")}
        assert latencies and all(latency == pytest.approx(0.002, abs=1e-8) for latency in latencies)
        assert [r.get("fault") for r in cluster.trace.of_kind("fault")] == [
            "set_link", "isolate", "heal", "set_links"
        ]


async def test_uniform_latency_everywhere_stays_within_its_bounds(autojump_clock):
    async with Cluster.open(nodes=3, seed=15) as cluster:
        cluster.set_links(LinkConfig(latency=Uniform(0.002, 0.008)))
        await cluster.wait_for_leader()
        await propose_many(cluster, 3)
        latencies = [r.get("arrives") - r.time for r in cluster.trace.of_kind("send")]
        assert len(latencies) > 20
        assert all(0.002 - 1e-8 <= latency <= 0.008 + 1e-8 for latency in latencies)
        assert len({round(latency, 6) for latency in latencies}) > len(latencies) // 2


async def test_exponential_latency_has_a_floor_and_a_tail(autojump_clock):
    async with Cluster.open(nodes=3, seed=16) as cluster:
        cluster.set_links(LinkConfig(latency=Exponential(mean=0.01, minimum=0.002)))
        await cluster.wait_for_leader()
        await propose_many(cluster, 5)
        await trio.sleep(2)
        # On a FIFO link a message may also wait for the one before it; that only adds.
        latencies = [r.get("arrives") - r.time for r in cluster.trace.of_kind("send")]
        assert len(latencies) > 50
        assert min(latencies) >= 0.002 - 1e-8
        assert max(latencies) > 0.02  # the tail: well past the mean
        assert 0.005 < sum(latencies) / len(latencies) < 0.02


async def test_bandwidth_delays_a_large_payload_and_queues_a_heartbeat_behind_it(
    autojump_clock,
):
    async with Cluster.open(nodes=3, seed=17) as cluster:
        leader = await cluster.wait_for_leader()
        follower = followers_of(cluster, leader)[0]
        bandwidth = 100_000.0  # bytes per second
        cluster.set_link(leader, follower, LinkConfig(latency=Constant(0.001), bandwidth=bandwidth))
        await trio.sleep(0.5)  # the link is idle again: heartbeats are tiny
        big = start(1, payload=b"x" * 50_000)
        await cluster.propose(big)
        await trio.sleep(2)

        appends = [r for r in sends(cluster, leader, follower, "append") if r.get("entries")]
        large = appends[-1]
        assert large.get("size") > 50_000
        # Transmission (size / bandwidth) then latency; the link was idle.
        assert large.get("arrives") - large.time == pytest.approx(
            large.get("size") / bandwidth + 0.001, abs=1e-8
        )
        # What the leader sent on the link while the large append was on the wire
        # waits behind it (FIFO): each arrives one transmission time after the one before.
        queued = [
            r for r in sends(cluster, leader, follower)
            if large.time < r.time < large.get("arrives")
        ]
        assert "heartbeat" in [r.get("type") for r in queued]
        previous_arrival = large.get("arrives")
        for record in queued:
            assert record.get("arrives") == pytest.approx(
                previous_arrival + record.get("size") / bandwidth, abs=1e-8
            )
            previous_arrival = record.get("arrives")
        delivered = [
            r.get("type") for r in cluster.trace.of_kind("deliver")
            if r.get("from") == leader and r.get("to") == follower and r.time >= large.time
        ]
        assert delivered.index("append") < delivered.index("heartbeat")
        assert cluster.state_machine(follower).workflows["wf-1"].payload == b"x" * 50_000


async def test_loss_one_on_a_link_drops_everything_on_it(autojump_clock):
    async with Cluster.open(nodes=3, seed=18) as cluster:
        leader = await cluster.wait_for_leader()
        deaf = followers_of(cluster, leader)[0]
        before = cluster.transport.statistics().link(leader, deaf)
        cluster.set_link(leader, deaf, LinkConfig(loss=1.0))
        await propose_many(cluster, 3)
        await trio.sleep(3)
        after = cluster.transport.statistics().link(leader, deaf)
        sent_since = after.messages_sent - before.messages_sent
        assert sent_since > 10
        assert after.messages_dropped - before.messages_dropped == sent_since
        # Only what was already on the wire when the link went bad got through.
        assert after.messages_delivered == before.messages_sent - before.messages_dropped
        lost = [r for r in cluster.trace.of_kind("drop") if r.get("reason") == "lost"]
        assert len(lost) == sent_since
        assert {(r.get("from"), r.get("to")) for r in lost} == {(leader, deaf)}
        assert "wf-1" not in cluster.state_machine(deaf).workflows
        other = followers_of(cluster, leader)[1]
        assert set(cluster.state_machine(other).workflows) == {"wf-1", "wf-2", "wf-3"}


async def test_duplicate_one_delivers_every_message_twice_and_state_stays_exact(
    autojump_clock,
):
    async with Cluster.open(nodes=3, seed=19) as cluster:
        cluster.set_links(LinkConfig(duplicate=1.0))
        await cluster.wait_for_leader()
        results = await propose_many(cluster, 3)
        await trio.sleep(1)
        statistics = cluster.transport.statistics()
        assert statistics.messages_sent > 0
        for _, link in statistics.links:
            assert link.messages_duplicated == link.messages_sent
        assert statistics.messages_duplicated == statistics.messages_sent
        assert len(cluster.trace.of_kind("duplicate")) == statistics.messages_sent
        # Raft ignores the copies: each command is applied once.
        await cluster.wait_caught_up()
        assert [result.attempts for result in results] == [1, 1, 1]
        assert len(digests(cluster)) == 1
        assert len(cluster.state_machine(1).workflows) == 3
        assert cluster.state_machine(1).rejected_commands == 0


async def test_reorder_lets_later_messages_overtake_and_fifo_links_never_do(autojump_clock):
    async def overtakes(link: LinkConfig) -> int:
        async with Cluster.open(nodes=3, seed=20, link=link) as cluster:
            await cluster.wait_for_leader()
            await propose_many(cluster, 10)
            await cluster.wait_caught_up()
            assert len(digests(cluster)) == 1
            count = 0
            last_arrival: dict[tuple[int, int], float] = {}
            for record in cluster.trace.of_kind("send"):
                key = (record.get("from"), record.get("to"))
                if record.get("arrives") < last_arrival.get(key, 0.0):
                    count += 1
                last_arrival[key] = max(last_arrival.get(key, 0.0), record.get("arrives"))
            return count

    jitter = Uniform(0.001, 0.01)
    assert await overtakes(LinkConfig(latency=jitter)) == 0
    assert await overtakes(LinkConfig(latency=jitter, reorder=0.5)) > 0


# -- node faults -------------------------------------------------------------------------


async def test_crash_keeps_storage_loses_volatile_state_and_restart_catches_up(autojump_clock):
    async with Cluster.open(nodes=3, seed=21) as cluster:
        leader = await cluster.wait_for_leader()
        victim = followers_of(cluster, leader)[0]
        await propose_many(cluster, 3)
        await cluster.wait_caught_up()
        old_machine = cluster.state_machine(victim)
        storage = cluster.storage(victim)
        hard_state, last_index = storage.hard_state, storage.last_index()

        cluster.crash(victim)
        assert not cluster.is_up(victim)
        assert victim not in cluster.up_nodes()
        with pytest.raises(RuntimeError, match=f"node {victim} is down"):
            cluster.state_machine(victim)
        with pytest.raises(RuntimeError, match=f"node {victim} is already down"):
            cluster.crash(victim)
        # The disk survives the crash untouched.
        assert cluster.storage(victim) is storage
        assert (storage.hard_state, storage.last_index()) == (hard_state, last_index)

        await propose_many(cluster, 2, first=4)
        assert storage.last_index() == last_index  # a down node receives nothing

        cluster.restart(victim)
        statistics = cluster.statistics(victim)
        assert statistics.role is Role.FOLLOWER and statistics.leader_id == 0
        assert statistics.term == hard_state.term and statistics.commit == hard_state.commit
        assert cluster.state_machine(victim) is not old_machine
        # A new state machine rebuilt by re-applying the stored log.
        assert cluster.state_machine(victim).applied_index == hard_state.commit
        await cluster.wait_caught_up()
        assert len(digests(cluster)) == 1
        assert len(cluster.state_machine(victim).workflows) == 5
        starts = [r for r in cluster.trace.of_kind("start") if r.node == victim]
        assert len(starts) == 2
        with pytest.raises(RuntimeError, match="crash it before restarting"):
            cluster.restart(victim)


async def test_restart_after_compaction_restores_the_snapshot_and_applies_only_what_follows(
    autojump_clock,
):
    policy = CompactionPolicy(every=5, keep_entries=3)
    async with Cluster.open(nodes=3, seed=40, compaction=policy) as cluster:
        leader = await cluster.wait_for_leader()
        victim = followers_of(cluster, leader)[0]
        await propose_many(cluster, 12)
        await cluster.wait_caught_up()
        snapshot_index = cluster.storage(victim).snapshot_metadata.index
        # The log still holds entries before the snapshot point (keep_entries).
        assert cluster.storage(victim).first_index() == snapshot_index + 1 - 3
        cluster.crash(victim)
        cluster.restart(victim)
        start_record = [r for r in cluster.trace.of_kind("start") if r.node == victim][-1]
        assert start_record.get("snapshot_index") == snapshot_index
        await cluster.wait_caught_up()
        machine = cluster.state_machine(victim)
        # Re-applying the kept entries on top of the snapshot would start the same
        # workflows twice, and each second start would be rejected.
        assert machine.rejected_commands == 0
        assert len(machine.workflows) == 12
        assert len(digests(cluster)) == 1


async def test_node_restarted_after_the_log_moved_past_it_catches_up_by_snapshot(
    autojump_clock,
):
    async with Cluster.open(nodes=3, seed=46, compaction=CompactionPolicy(every=10)) as cluster:
        leader = await cluster.wait_for_leader()
        victim = followers_of(cluster, leader)[0]
        await propose_many(cluster, 2)
        await cluster.wait_caught_up()
        cluster.crash(victim)
        await propose_many(cluster, 25, first=3)
        assert cluster.storage(leader).first_index() > cluster.storage(victim).last_index() + 1
        cluster.restart(victim)
        await cluster.wait_caught_up()
        installed = [r for r in cluster.trace.of_kind("snapshot_installed") if r.node == victim]
        assert len(installed) == 1
        assert cluster.storage(victim).snapshot_metadata.index == installed[0].get("index")
        assert len(digests(cluster)) == 1
        assert len(cluster.state_machine(victim).workflows) == 27


async def test_crashing_a_paused_node_unpauses_it_and_it_restarts_normally(autojump_clock):
    async with Cluster.open(nodes=3, seed=41) as cluster:
        leader = await cluster.wait_for_leader()
        node_id = followers_of(cluster, leader)[0]
        cluster.pause(node_id)
        await propose_many(cluster, 2)
        cluster.crash(node_id)
        assert not cluster.is_paused(node_id)
        with pytest.raises(RuntimeError, match="only a running node can pause"):
            cluster.pause(node_id)
        cluster.restart(node_id)
        await cluster.wait_caught_up()
        assert len(digests(cluster)) == 1


async def test_paused_follower_applies_nothing_until_resumed(autojump_clock):
    async with Cluster.open(nodes=3, seed=22) as cluster:
        leader = await cluster.wait_for_leader()
        paused = followers_of(cluster, leader)[0]
        await propose_many(cluster, 1)
        await cluster.wait_caught_up()
        applied = cluster.statistics(paused).applied
        cluster.pause(paused)
        assert cluster.is_paused(paused)
        with pytest.raises(RuntimeError, match="already paused"):
            cluster.pause(paused)
        await propose_many(cluster, 3, first=2)
        await trio.sleep(5)
        assert cluster.statistics(paused).applied == applied
        assert set(cluster.state_machine(paused).workflows) == {"wf-1"}

        cluster.resume(paused)
        assert not cluster.is_paused(paused)
        await cluster.wait_caught_up()
        assert len(digests(cluster)) == 1
        assert cluster.leader_id() == leader
        with pytest.raises(RuntimeError, match="is not paused"):
            cluster.resume(paused)


async def test_paused_leader_is_replaced_and_steps_down_after_resume(autojump_clock):
    async with Cluster.open(nodes=3, seed=23) as cluster:
        old_leader = await cluster.wait_for_leader()
        old_term = cluster.statistics(old_leader).term
        await propose_many(cluster, 1)
        cluster.pause(old_leader)
        await cluster.wait_until(
            lambda: cluster.leader_id() not in (None, old_leader), timeout=10, what="a new leader"
        )
        new_leader = cluster.leader_id()
        new_term = cluster.statistics(new_leader).term
        assert new_term > old_term
        # Frozen: it still shows what it was when paused.
        assert cluster.statistics(old_leader).role is Role.LEADER
        assert cluster.statistics(old_leader).term == old_term
        await propose_many(cluster, 2, first=2)

        cluster.resume(old_leader)
        await cluster.wait_caught_up()
        statistics = cluster.statistics(old_leader)
        assert (statistics.role, statistics.term, statistics.leader_id) == (
            Role.FOLLOWER, new_term, new_leader
        )
        steps_down = [
            r for r in cluster.trace.of_kind("role")
            if r.node == old_leader and r.get("term") == new_term
        ]
        assert steps_down and steps_down[0].get("role") == "follower"
        assert len(digests(cluster)) == 1


async def test_scheduled_fault_runs_at_exactly_its_virtual_time(autojump_clock):
    await trio.sleep(7.25)  # times are relative to the cluster's opening, not the clock's zero
    async with Cluster.open(nodes=3, seed=24) as cluster:
        cluster.at(2.5, cluster.isolate, 2)
        cluster.at(4.0, cluster.heal)
        cluster.at(2.5, cluster.one_way, 1, 3)  # same instant: runs after the isolate
        await trio.sleep(3)
        assert set(faults.isolate(cluster.node_ids, 2)) | {(1, 3)} == set(
            cluster.transport.blocked_links
        )
        await trio.sleep(2)
        records = cluster.trace.of_kind("fault")
        assert [(r.time, r.get("fault")) for r in records] == [
            (2.5, "isolate"), (2.5, "one_way"), (4.0, "heal")
        ]
        assert records[0].get("node_id") == 2
        assert records[0].seq < records[1].seq
        assert cluster.transport.blocked_links == []


# -- log compaction ----------------------------------------------------------------------


async def test_compaction_policy_snapshots_and_discards_old_entries_on_every_node(
    autojump_clock,
):
    policy = CompactionPolicy(every=10, keep_entries=3)
    async with Cluster.open(nodes=3, seed=25, compaction=policy) as cluster:
        await cluster.wait_for_leader()
        await propose_many(cluster, 25)
        await cluster.wait_caught_up()
        for node_id in cluster.node_ids:
            storage = cluster.storage(node_id)
            compactions = [r for r in cluster.trace.of_kind("compaction") if r.node == node_id]
            indexes = [r.get("index") for r in compactions]
            assert len(indexes) == 2
            assert indexes[0] >= 10 and indexes[1] - indexes[0] >= 10
            assert storage.snapshot_metadata.index == indexes[-1]
            # keep_entries=3 entries stay before the snapshot point.
            assert storage.first_index() == indexes[-1] + 1 - 3
            assert compactions[-1].get("first_index") == storage.first_index()
            assert storage.snapshot_data_size > 0
        assert len(digests(cluster)) == 1


async def test_compact_on_demand_snapshots_at_the_applied_index(autojump_clock):
    async with Cluster.open(nodes=3, seed=26) as cluster:
        leader = await cluster.wait_for_leader()
        await propose_many(cluster, 4)
        await cluster.wait_caught_up()
        applied = cluster.statistics(leader).applied
        assert cluster.storage(leader).snapshot_metadata.index == 0
        assert cluster.compact(leader) == applied
        storage = cluster.storage(leader)
        assert storage.snapshot_metadata.index == applied
        assert storage.first_index() == applied + 1
        assert cluster.statistics(leader).first_index == applied + 1
        # Nothing newer applied: compacting again changes nothing.
        assert cluster.compact(leader) == applied
        assert [r.get("index") for r in cluster.trace.of_kind("compaction")] == [applied]
        fault = cluster.trace.of_kind("fault")[-1]
        assert (fault.get("fault"), fault.get("node_id"), fault.get("index")) == (
            "compact", leader, applied
        )
        # Other nodes keep their whole log.
        for node_id in followers_of(cluster, leader):
            assert cluster.storage(node_id).first_index() == 1
        await propose_many(cluster, 1, first=5)
        await cluster.wait_caught_up()
        assert len(digests(cluster)) == 1


# -- membership ----------------------------------------------------------------------------


async def test_added_node_catches_up_by_snapshot_and_is_promoted(autojump_clock):
    async with Cluster.open(nodes=3, seed=27, compaction=CompactionPolicy(every=20)) as cluster:
        await cluster.wait_for_leader()
        await propose_many(cluster, 30)
        await cluster.wait_caught_up()
        leader = cluster.leader_id()
        assert cluster.storage(leader).first_index() > 1  # the start of the log is gone

        new_node = await cluster.add_node()
        assert new_node == 4
        await cluster.wait_caught_up()
        sent = [r for r in cluster.trace.of_kind("snapshot_sent") if r.get("to") == new_node]
        installed = [r for r in cluster.trace.of_kind("snapshot_installed") if r.node == new_node]
        assert sent and installed
        assert installed[0].get("index") == sent[0].get("index")
        leader = cluster.leader_id()
        conf_state = cluster.statistics(leader).conf_state
        assert tuple(conf_state.voters) == (1, 2, 3, 4)
        assert new_node not in conf_state.learners
        changes = [
            (r.get("change"), r.get("node_id"))
            for r in cluster.trace.of_kind("conf_change") if r.node == leader
        ]
        assert changes == [("add_learner_node", 4), ("add_node", 4)]
        learner_phase = [r for r in cluster.trace.of_kind("conf_change") if r.node == leader][0]
        assert (learner_phase.get("voters"), learner_phase.get("learners")) == ([1, 2, 3], [4])
        # It was still a learner when the snapshot reached it.
        assert installed[0].seq < [
            r for r in cluster.trace.of_kind("conf_change") if r.node == leader
        ][1].seq
        assert len(digests(cluster)) == 1
        assert len(cluster.state_machine(new_node).workflows) == 30


async def test_removed_follower_is_stopped_and_cannot_restart(autojump_clock):
    async with Cluster.open(nodes=3, seed=28) as cluster:
        leader = await cluster.wait_for_leader()
        await propose_many(cluster, 2)
        removed = followers_of(cluster, leader)[0]
        await cluster.remove_node(removed)
        assert not cluster.is_up(removed)
        assert removed not in cluster.statistics(leader).conf_state.voters
        with pytest.raises(RuntimeError, match=f"node {removed} was removed"):
            cluster.restart(removed)
        # Two voters left, both needed: commits still work.
        result = await cluster.propose(start(3))
        assert result.node_id == leader
        await cluster.wait_caught_up()
        assert len(digests(cluster, cluster.up_nodes())) == 1
        assert [r.get("node_id") for r in cluster.trace.of_kind("node_removed")] == [removed]


async def test_removed_leader_is_replaced_by_one_of_the_rest(autojump_clock):
    async with Cluster.open(nodes=3, seed=29) as cluster:
        old_leader = await cluster.wait_for_leader()
        await propose_many(cluster, 2)
        await cluster.remove_node(old_leader)
        assert not cluster.is_up(old_leader)
        new_leader = await cluster.wait_for_leader()
        rest = followers_of(cluster, old_leader)
        assert new_leader in rest
        assert tuple(cluster.statistics(new_leader).conf_state.voters) == tuple(rest)
        with pytest.raises(RuntimeError, match="was removed"):
            cluster.restart(old_leader)
        await propose_many(cluster, 1, first=3)
        await cluster.wait_caught_up()
        assert len(digests(cluster, rest)) == 1
        assert len(cluster.state_machine(rest[0]).workflows) == 3


# -- liveness ---------------------------------------------------------------------------------


async def test_check_liveness_passes_after_a_partition_heals(autojump_clock):
    async with Cluster.open(nodes=3, seed=30) as cluster:
        await cluster.wait_for_leader()
        await propose_many(cluster, 2)
        cluster.partition([1], [2, 3])
        await trio.sleep(5)
        await propose_many(cluster, 2, first=3)
        cluster.heal()
        leader = await cluster.check_liveness(within=10)
        assert leader == cluster.leader_id()
        assert len(digests(cluster)) == 1


async def test_check_liveness_ignores_a_paused_node(autojump_clock):
    async with Cluster.open(nodes=3, seed=31) as cluster:
        leader = await cluster.wait_for_leader()
        paused = followers_of(cluster, leader)[0]
        cluster.pause(paused)
        await propose_many(cluster, 3)
        assert await cluster.check_liveness(within=5) == leader
        # The paused node is behind, and liveness did not wait for it.
        assert cluster.statistics(paused).applied < cluster.statistics(leader).commit


async def test_check_liveness_never_names_a_paused_leader(autojump_clock):
    """A frozen leader serves nobody: liveness needs a leader among the live nodes."""
    async with Cluster.open(nodes=3, seed=31) as cluster:
        frozen = await cluster.wait_for_leader()
        await propose_many(cluster, 2)
        await cluster.wait_caught_up()
        cluster.pause(frozen)
        leader = await cluster.check_liveness(within=10)
        assert leader != frozen
        assert cluster.statistics(leader).role is Role.LEADER


async def test_liveness_error_says_no_node_is_leader_when_every_node_is_alone(autojump_clock):
    async with Cluster.open(nodes=3, seed=32) as cluster:
        await cluster.wait_for_leader()
        await propose_many(cluster, 1)
        cluster.partition([1], [2], [3])
        await trio.sleep(5)  # the old leader lost its quorum and stepped down
        assert cluster.leader_id() is None
        checked_at = cluster.now()
        with pytest.raises(LivenessError) as raised:
            await cluster.check_liveness(within=10)
        assert cluster.now() - checked_at == pytest.approx(10.0)
        message = str(raised.value)
        assert message.splitlines()[0] == (
            "the cluster did not settle within 10 s of virtual time"
        )
        assert "no node is leader" in message
        for node_id in (1, 2, 3):
            assert f"\nn{node_id}: " in message
        assert "blocked links: 1->2 1->3 2->1 3->1" in message


async def test_check_liveness_is_not_fooled_by_a_leader_cut_off_from_everyone(autojump_clock):
    """Right after a 1+1+1 partition the old leader still believes it leads; a live
    cluster is one that can make progress, which this one cannot."""
    async with Cluster.open(nodes=3, seed=32) as cluster:
        await cluster.wait_for_leader()
        await propose_many(cluster, 1)
        await cluster.wait_caught_up()
        cluster.partition([1], [2], [3])
        with pytest.raises(LivenessError):
            await cluster.check_liveness(within=10)


async def test_liveness_error_names_the_node_behind_the_leader(autojump_clock):
    async with Cluster.open(nodes=3, seed=33) as cluster:
        leader = await cluster.wait_for_leader()
        behind = followers_of(cluster, leader)[0]
        cluster.isolate(behind)
        await propose_many(cluster, 2)
        commit = cluster.statistics(leader).commit
        with pytest.raises(LivenessError) as raised:
            await cluster.check_liveness(within=3)
        lines = str(raised.value).splitlines()
        assert "no node is leader" not in lines
        behind_line = next(line for line in lines if line.startswith(f"n{behind}: "))
        assert f"(behind leader commit {commit})" in behind_line
        leader_line = next(line for line in lines if line.startswith(f"n{leader}: "))
        assert leader_line.startswith(f"n{leader}: leader term ")
        assert "behind" not in leader_line


# -- invariant violations ---------------------------------------------------------------------


async def test_second_leader_in_a_term_is_an_election_safety_violation(autojump_clock):
    async with Cluster.open(nodes=3, seed=34) as cluster:
        leader = await cluster.wait_for_leader()
        await propose_many(cluster, 1)
        follower = followers_of(cluster, leader)[0]
        raft = cluster.runners[follower].node.raft
        term = cluster.statistics(leader).term
        saved = (raft.role, raft.term)
        raft.role, raft.term = Role.LEADER, term
        try:
            with pytest.raises(InvariantViolation) as raised:
                cluster.monitor.role_changed(follower, cluster.runners[follower].node)
        finally:
            raft.role, raft.term = saved  # no await in between: no node saw the forgery
        violation = raised.value
        assert violation.invariant == "election safety"
        assert f"nodes {leader} and {follower} were both leader in term {term}" in str(violation)
        # The message carries the trace around the violation, for the reader.
        assert "last trace events:" in str(violation)
        assert cluster.trace.records[-1].to_text() in str(violation)


class DivergentKeyValueStore(KeyValueStore):
    """A replica whose snapshots differ from everyone else's: a nondeterministic state machine."""

    __slots__ = ()

    def snapshot_chunks(self, index: int):
        yield from super().snapshot_chunks(index)
        yield b"divergent"


async def test_violation_inside_a_node_task_reaches_the_user_unwrapped(autojump_clock):
    with pytest.raises(InvariantViolation) as raised:
        async with Cluster.open(
            nodes=3, seed=35, state_machine=KeyValueStore, compaction=CompactionPolicy(every=5)
        ) as cluster:
            await cluster.wait_for_leader()
            # Node 2's state machine now snapshots different bytes at the same index.
            cluster.state_machine(2).__class__ = DivergentKeyValueStore
            for number in range(10):
                await cluster.propose(KeyValueStore.put(f"k{number}", b"v"))
            pytest.fail("the divergent snapshot went unnoticed")
    assert type(raised.value) is InvariantViolation
    # Caught where node 2 applies the index node 1 snapshotted, before node 2 snapshots.
    assert raised.value.invariant == "replicas that applied the same index hold the same state"
    assert "node 2 applied up to 5 and holds state" in str(raised.value)
    assert isinstance(raised.value.__cause__, BaseExceptionGroup)


async def test_liveness_error_raised_in_the_cluster_block_reaches_the_caller_unwrapped(
    autojump_clock,
):
    with pytest.raises(LivenessError):
        async with Cluster.open(nodes=3, seed=43) as cluster:
            cluster.partition([1], [2], [3])
            await cluster.check_liveness(within=3)


# -- trace ------------------------------------------------------------------------------------


async def test_trace_numbers_records_from_one_in_time_order(autojump_clock):
    async with Cluster.open(nodes=3, seed=36) as cluster:
        await cluster.wait_for_leader()
        await propose_many(cluster, 3)
        cluster.isolate(1)
        await trio.sleep(3)
        records = cluster.trace.records
        assert len(records) > 50
        assert [r.seq for r in records] == list(range(1, len(records) + 1))
        times = [r.time for r in records]
        assert times == sorted(times)
        assert len(cluster.trace) == len(records)


async def test_trace_shows_no_event_of_a_node_after_its_crash(autojump_clock):
    """The proposal returns at the instant the leader applies it; crashing the leader
    then must not be narrated before what the leader did at that instant."""
    async with Cluster.open(nodes=3, seed=4) as cluster:
        leader = await cluster.wait_for_leader()
        await cluster.wait_caught_up()
        await cluster.propose(start(1))
        cluster.crash(leader)
        await trio.sleep(1)
        records = cluster.trace.records
        crash = next(
            r for r in records if r.kind == "fault" and r.get("fault") == "crash"
        )
        after_crash = [
            r.to_text() for r in records[crash.seq :]
            if r.node == leader and r.kind != "drop"
        ]
        assert after_crash == []


async def test_trace_jsonl_round_trips_and_hash_is_of_the_jsonl(autojump_clock, tmp_path):
    async with Cluster.open(nodes=3, seed=37) as cluster:
        await cluster.wait_for_leader()
        await propose_many(cluster, 2)
        cluster.partition([1, 2], [3])
        early_hash = cluster.trace.sha256()
        early_text = cluster.trace.to_jsonl()
        assert early_hash == hashlib.sha256(early_text.encode("utf-8")).hexdigest()
        await trio.sleep(2)
        cluster.heal()
        await propose_many(cluster, 1, first=3)
        # Hashing is incremental; it must still equal the hash of the whole text.
        text = cluster.trace.to_jsonl()
        assert cluster.trace.sha256() == hashlib.sha256(text.encode("utf-8")).hexdigest()
        assert text.startswith(early_text)

        path = tmp_path / "trace.jsonl"
        path.write_text(text, encoding="utf-8")
        assert read_jsonl(path) == cluster.trace.records
        written = tmp_path / "written.jsonl"
        cluster.trace.write_jsonl(written)
        assert written.read_text(encoding="utf-8") == text


async def test_same_seed_gives_the_same_trace(autojump_clock):
    async def one_run(seed: int) -> str:
        link = LinkConfig(latency=Uniform(0.001, 0.005), loss=0.05, duplicate=0.05, reorder=0.1)
        async with Cluster.open(nodes=3, seed=seed, link=link) as cluster:
            await cluster.wait_for_leader()
            await propose_many(cluster, 5)
            cluster.isolate(cluster.leader_id())
            await trio.sleep(4)
            cluster.heal()
            await cluster.check_liveness()
            return cluster.trace.to_jsonl()

    first = await one_run(44)
    assert first == await one_run(44)
    assert first != await one_run(45)


async def test_reading_the_trace_mid_run_does_not_change_it(autojump_clock):
    """Looking at the trace is not part of the story: same seed, same trace, whether
    or not the scenario read it in the middle of an instant."""

    async def one_run(peek: bool) -> str:
        async with Cluster.open(nodes=3, seed=4) as cluster:
            leader = await cluster.wait_for_leader()
            await cluster.propose(start(1))
            if peek:
                cluster.trace.of_kind("fault")
            cluster.isolate(leader)
            await trio.sleep(1)
            return cluster.trace.to_jsonl()

    assert await one_run(peek=True) == await one_run(peek=False)


async def test_trace_without_messages_keeps_roles_faults_and_compactions(autojump_clock):
    async with Cluster.open(
        nodes=3, seed=38, record_messages=False, compaction=CompactionPolicy(every=5)
    ) as cluster:
        await cluster.wait_for_leader()
        await propose_many(cluster, 6)
        cluster.one_way(1, 2)
        await trio.sleep(1)
        kinds = Counter(record.kind for record in cluster.trace.records)
        assert not {"send", "deliver", "drop", "duplicate"} & set(kinds)
        assert kinds["role"] >= 3 and kinds["fault"] == 1 and kinds["compaction"] >= 3
        # The transport still counts what the trace leaves out.
        statistics = cluster.transport.statistics()
        assert statistics.messages_sent > 0
        assert statistics.link(1, 2).messages_dropped > 0
