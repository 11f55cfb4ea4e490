"""Real systems' snapshot policies (``transports.policies``) under the same faults as raftsim's own.

Two knobs make the difference, and each has a scenario that shows a known
bug of a real system: a read deadline that does not scale with the
snapshot's size (etcd-io/etcd#16377, ``slow_link_catch_up``) and a transfer
that starts over after every interruption (hashicorp/raft#212, camunda#11496,
``flaky_link_catch_up``). raftsim's Streaming survives both schedules.
"""

from __future__ import annotations

import io
import json

import pytest

from simulator import run
from simulator.cli import main
from simulator.scenario.policies import mean_interval
from simulator.scenario import RunOptions, resolve, run_scenario
from transports import Embedded, Streaming
from transports.policies import POLICIES, policy, policy_names


def raftsim(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def scenario_run(name: str, policy_name: str, **params):
    mode = "embedded" if isinstance(policy(policy_name), Embedded) else "streaming"
    options = RunOptions(mode=mode, policy=policy_name, params=tuple((k, str(v)) for k, v in params.items()))
    return run(run_scenario, resolve(name), options)


# -- the presets -------------------------------------------------------------------------------


def test_every_policy_builds_a_mode_and_names_are_checked():
    assert list(POLICIES) == ["raftsim", "etcd", "hashicorp", "openraft", "zeebe", "tikv", "cockroachdb", "kraft"]
    assert policy("etcd") == Embedded(read_timeout=5.0)
    assert policy("raftsim") == Streaming()
    for name in ("hashicorp", "openraft", "zeebe", "tikv", "cockroachdb"):
        assert policy(name).resume == "from_zero", name
    assert policy("openraft").chunk_size == 3 * 2**20 and policy("openraft").mismatch_restarts
    assert policy_names("all") == list(POLICIES)
    assert policy_names("etcd, raftsim") == ["etcd", "raftsim"]
    with pytest.raises(ValueError, match="unknown snapshot policy 'nope'"):
        policy_names("raftsim,nope")
    with pytest.raises(ValueError, match="unknown snapshot policy 'nope'"):
        policy("nope")


def test_bad_knob_values_are_refused():
    with pytest.raises(ValueError):
        Streaming(resume="sometimes")
    with pytest.raises(ValueError, match="read_timeout must be > 0"):
        Embedded(read_timeout=0)


# -- a read deadline that does not scale with size (etcd #16377) --------------------------------


def test_a_fixed_read_timeout_never_lets_a_large_snapshot_arrive():
    result = scenario_run("slow_link_catch_up", "etcd", size=12 * 2**20, within=30)
    assert not result.ok
    [transfer] = result.summary["transfers"]
    assert transfer["outcome"] == "in_progress"
    assert transfer["bytes_sent"] >= 3 * transfer["size"]  # sent again and again, never whole


def test_a_small_snapshot_arrives_within_the_same_read_timeout():
    result = scenario_run("slow_link_catch_up", "etcd", size=2 * 2**20, within=30)
    assert result.ok, result.failed_checks


def test_raftsim_streaming_catches_up_over_the_slow_link():
    result = scenario_run("slow_link_catch_up", "raftsim", size=12 * 2**20, within=30)
    assert result.ok, result.failed_checks
    [transfer] = result.summary["transfers"]
    assert transfer["resent_bytes"] == 0


# -- starting over after every interruption (hashicorp #212, camunda #11496) ---------------------


def test_a_policy_that_starts_over_never_finishes_on_a_flaky_link():
    result = scenario_run("flaky_link_catch_up", "hashicorp", within=30)
    assert not result.ok
    [transfer] = result.summary["transfers"]
    assert transfer["outcome"] == "in_progress" and transfer["resent_bytes"] > 2 * transfer["size"]


def test_raftsim_resumes_through_the_same_outages():
    result = scenario_run("flaky_link_catch_up", "raftsim", within=30)
    assert result.ok, result.failed_checks
    [transfer] = result.summary["transfers"]
    # Each outage costs at most the chunks in flight (one by default), never the whole snapshot.
    assert transfer["resent_bytes"] <= transfer["retries"] * 2**20


def test_starting_over_discards_verified_bytes_and_says_so():
    def story_events(policy_name):
        from simulator import Cluster, load_state

        async def main_():
            async with Cluster.open(nodes=3, seed=0, snapshot_mode=policy(policy_name, chunk_size=64 * 1024)) as c:
                leader = await load_state(c, 1 * 2**20)
                c.compact(leader)
                newcomer = max(c.node_ids) + 1
                c.fail_chunk(3, "cut", to=newcomer)
                await c.add_node(timeout=60)
                await c.wait_caught_up()
                return [r for r in c.trace.of_kind("transfer_restarted")], c.transfers()[-1]

        return run(main_)

    restarted, transfer = story_events("tikv")
    assert restarted and restarted[0].get("discarded") == 3 * 64 * 1024
    assert transfer.outcome.value == "installed" and transfer.resent_bytes >= 3 * 64 * 1024
    restarted, transfer = story_events("raftsim")
    assert restarted == [] and transfer.resent_bytes <= 64 * 1024


# -- the command line --------------------------------------------------------------------------


def test_run_takes_a_policy_and_refuses_one_that_does_not_exist(capsys):
    code, out = raftsim("run", "slow_link_catch_up", "--policy", "tikv", "--param", "size=1MiB", "--json")
    assert code == 0, capsys.readouterr().err
    summary = json.loads(out)
    assert summary["policy"] == "tikv" and summary["mode"] == "streaming"
    assert raftsim("run", "basic", "--policy", "nope")[0] == 2
    assert "unknown snapshot policy 'nope'" in capsys.readouterr().err
    assert raftsim("run", "basic", "--policy", "etcd", "--mode", "streaming")[0] == 2
    assert "does not go with --mode" in capsys.readouterr().err
    # The gRPC runner builds its mode from --mode alone: a policy there would be silently ignored.
    assert raftsim("run", "basic", "--policy", "kraft", "--transport", "grpc")[0] == 2
    assert "does not go with --transport grpc" in capsys.readouterr().err


def test_compare_policies_shows_each_policy_with_confidence_intervals(capsys):
    code, out = raftsim("compare", "flaky_link_catch_up", "--policies", "raftsim,hashicorp,etcd", "--seeds", "2",
                        "--param", "within=20", "--json")
    assert code == 0, capsys.readouterr().err
    table = json.loads(out)["policies"]
    assert table["raftsim"]["ok"] == 2 and table["hashicorp"]["ok"] == 0
    assert "streaming mode only" in table["etcd"]["not_applicable"]  # etcd's embedded snapshots do not apply
    mean, half = table["hashicorp"]["wasted_bytes"]
    assert mean > table["raftsim"]["wasted_bytes"][0] and half >= 0
    code, out = raftsim("compare", "flaky_link_catch_up", "--policies", "raftsim,hashicorp", "--param", "within=20")
    assert code == 0
    assert "mean ± 95% confidence interval" in out
    assert [line.split()[:3] for line in out.splitlines()[-2:]] == [["raftsim", "1/1", "9.90"],
                                                                     ["hashicorp", "0/1", "never"]]


def test_mean_interval_uses_students_t():
    assert mean_interval([5.0]) == (5.0, 0.0)
    mean, half = mean_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.303 * 1.0 / 3**0.5)


def test_an_embedded_record_counts_only_what_crossed_before_the_receiver_hung_up():
    # etcd's receiver hangs up after its 5 s read timeout: the link carried 5 s worth of
    # each attempt, and the transfer record must say the same, not the whole message.
    from simulator import Cluster, LivenessError, ProposalTimeoutError, load_state
    from transports import Constant, LinkConfig

    async def main_():
        link = LinkConfig(latency=Constant(0.001), bandwidth=1_000_000)
        async with Cluster.open(nodes=3, seed=0, link=link, snapshot_mode=policy("etcd")) as c:
            leader = await load_state(c, 8 * 2**20, timeout=600)
            c.compact(leader)
            newcomer = max(c.node_ids) + 1
            with pytest.raises((LivenessError, ProposalTimeoutError)):
                await c.add_node(promote=False, timeout=20)
            [record] = [t for t in c.transfers() if t.to == newcomer]
            link_stats = c.transport.statistics().link(leader, newcomer)
            messages, wire = next((n, b) for kind, n, b in link_stats.by_kind if kind == "snapshot")
            return record, messages, wire

    record, messages, wire = run(main_)
    assert messages >= 3 and record.outcome.value == "in_progress"
    whole = messages * record.size
    assert record.bytes_sent < 0.7 * whole  # 5 s of an 8.4 s message each time
    # What the record counts is what the link carried, less each message's header.
    header = (wire - record.bytes_sent) / messages
    assert 0 < header < 1024


# -- Kafka KRaft: the follower pulls by position (KIP-630 FetchSnapshot) -------------------------


def test_the_kraft_preset_has_kafkas_constants():
    from transports import FetchSnapshot

    kraft = policy("kraft")
    assert isinstance(kraft, FetchSnapshot) and "kraft" in POLICIES
    assert kraft.max_bytes == 0x7FFFFFFF  # MaxBytes' default: one response brings the rest
    assert (kraft.request_timeout, kraft.retry_backoff) == (2.0, 0.02)
    assert kraft.resume == "verified_offset"
    with pytest.raises(ValueError, match="request_timeout must be > 0"):
        FetchSnapshot(request_timeout=0)


def _kraft_cluster_run(story, *, mode, bandwidth=1_000_000, size=1 * 2**20, **options):
    from simulator import Cluster, load_state
    from transports import Constant, LinkConfig

    async def main_():
        link = LinkConfig(latency=Constant(0.001), bandwidth=bandwidth)
        async with Cluster.open(nodes=3, seed=0, link=link, snapshot_mode=mode, **options) as c:
            leader = await load_state(c, size, timeout=600)
            c.compact(leader)
            return await story(c, leader)

    return run(main_)


def test_kraft_pulls_one_response_per_request_over_the_links():
    from transports import FetchSnapshot

    async def story(c, leader):
        newcomer = await c.add_node(promote=False, timeout=60)
        stats = dict((kind, (n, b)) for kind, n, b in c.transport.statistics().link(leader, newcomer).by_kind)
        asked = dict((kind, n) for kind, n, b in c.transport.statistics().link(newcomer, leader).by_kind)
        return stats, asked, [t for t in c.transfers() if t.to == newcomer]

    stats, asked, [transfer] = _kraft_cluster_run(story, mode=FetchSnapshot(max_bytes=64 * 1024))
    chunks = -(-transfer.size // (64 * 1024))
    # The leader answers each request once and never pushes ahead: as many responses as requests.
    assert stats["snapshot_chunk"][0] == asked["snapshot_request"] == chunks
    assert transfer.outcome.value == "installed" and transfer.resent_bytes == 0


def test_kraft_never_gets_a_rest_of_snapshot_the_link_cannot_carry_within_the_request_timeout():
    result = scenario_run("slow_link_catch_up", "kraft", size=12 * 2**20, within=30)
    assert not result.ok
    [transfer] = result.summary["transfers"]
    assert transfer["outcome"] == "in_progress" and transfer["retries"] >= 10
    # Each attempt carries about 2 s of the 2 MB/s link before the follower hangs up,
    # and the record counts that, as the link does, not the whole response.
    per_attempt = transfer["bytes_sent"] / (transfer["retries"] + 1)
    assert 3_000_000 < per_attempt < 4_100_000
    small = scenario_run("slow_link_catch_up", "kraft", size=3 * 2**20, within=30)
    assert small.ok, small.failed_checks  # 1.6 s on the wire: inside the timeout


def _leader_change_story(mode):
    # Every node compacts at the same index, so the next leader holds the very same snapshot.
    async def story(c, leader):
        await c.wait_caught_up()
        for node in c.node_ids:
            if node != leader:
                c.compact(node)
        newcomer = max(c.node_ids) + 1
        c.fail_chunk(4, "crash_sender", to=newcomer)  # the leader dies after 256 KiB
        await c.add_node(promote=False, timeout=60)
        restarted = [e for e in c.trace.of_kind("transfer_restarted") if e.node == newcomer]
        return restarted, [t for t in c.transfers() if t.to == newcomer]

    return _kraft_cluster_run(story, mode=mode, size=1 * 2**20)


def test_a_new_leader_makes_kraft_fetch_from_zero_and_raftsim_resume():
    from transports import FetchSnapshot

    restarted, transfers = _leader_change_story(FetchSnapshot(chunk_size=64 * 1024, max_bytes=64 * 1024))
    assert restarted and restarted[0].get("discarded") >= 3 * 64 * 1024
    assert transfers[-1].outcome.value == "installed"
    assert sum(t.resent_bytes for t in transfers) >= 3 * 64 * 1024
    restarted, transfers = _leader_change_story(Streaming(chunk_size=64 * 1024))
    assert restarted == [] and transfers[-1].outcome.value == "installed"
    assert sum(t.resent_bytes for t in transfers) <= 64 * 1024


# -- CockroachDB: delegated snapshots (cockroachdb/cockroach#83991) ------------------------------


def test_cockroachdb_delegates_to_the_follower_nearest_the_receiver_and_catches_up_sooner():
    leader_sends = scenario_run("distant_leader_catch_up", "tikv")
    delegated = scenario_run("distant_leader_catch_up", "cockroachdb")
    assert leader_sends.ok and delegated.ok, (leader_sends.failed_checks, delegated.failed_checks)
    # 12 MiB over the leader's 2 MB/s link, against the delegate's 50 MB/s (at 32 MiB/s).
    assert delegated.summary["caught_up_seconds"] < leader_sends.summary["caught_up_seconds"] / 3
    [transfer] = delegated.summary["transfers"]
    assert transfer["outcome"] == "installed" and transfer["resent_bytes"] == 0


def _delegation_run(mode, *, crash_delegate_after=None, slow_leader=True):
    from simulator import Cluster, load_state
    from transports import Constant, LinkConfig

    async def main_():
        link = LinkConfig(latency=Constant(0.001), bandwidth=20_000_000)
        async with Cluster.open(nodes=3, seed=0, link=link, snapshot_mode=mode) as c:
            leader = await load_state(c, 1 * 2**20, timeout=600)
            for node in c.node_ids:
                c.compact(node)
            newcomer = max(c.node_ids) + 1
            if slow_leader:
                c.set_link(leader, newcomer, LinkConfig(latency=Constant(0.001), bandwidth=500_000))
            if crash_delegate_after is not None:
                c.fail_chunk(crash_delegate_after, "crash_sender", to=newcomer)
            await c.add_node(promote=False, timeout=60)
            chunks = {src: b for (src, dst), stats in c.transport.statistics().links if dst == newcomer
                      for kind, n, b in stats.by_kind if kind == "snapshot_chunk"}
            delegated = [e for e in c.trace.of_kind("transfer_delegated") if e.node == newcomer]
            fell_back = [e for e in c.trace.of_kind("transfer_resumed") if e.node == newcomer
                         and "made no progress" in e.get("reason", "")]
            return leader, chunks, delegated, fell_back, [t for t in c.transfers() if t.to == newcomer]

    return run(main_)


def test_a_delegate_sends_every_byte_over_its_own_link():
    from transports import DelegatedStreaming

    leader, chunks, [delegated], fell_back, [transfer] = _delegation_run(DelegatedStreaming(chunk_size=64 * 1024))
    delegate = delegated.get("delegate")
    assert delegated.get("leader") == leader and delegate != leader
    assert chunks.get(leader, 0) == 0 and chunks[delegate] >= transfer.size
    assert fell_back == [] and transfer.outcome.value == "installed"


def test_no_delegate_when_none_is_nearer_than_the_leader():
    from transports import DelegatedStreaming

    leader, chunks, delegated, _, [transfer] = _delegation_run(DelegatedStreaming(chunk_size=64 * 1024),
                                                              slow_leader=False)
    assert delegated == [] and set(chunks) == {leader} and transfer.outcome.value == "installed"


def test_a_delegate_that_dies_mid_transfer_hands_the_snapshot_back_to_the_leader():
    from transports import DelegatedStreaming

    leader, chunks, [delegated], [fell_back], transfers = _delegation_run(
        DelegatedStreaming(chunk_size=64 * 1024, resume="from_zero"), crash_delegate_after=3)
    assert fell_back.get("source") == leader
    assert chunks[leader] >= transfers[-1].size  # started over, from the leader
    assert transfers[-1].outcome.value == "installed"


# -- Zeebe: a fixed request timeout per chunk, then the first chunk again (camunda#14671) ---------


def test_the_zeebe_preset_has_zeebes_constants():
    from transports import FetchSnapshot

    zeebe = policy("zeebe")
    assert isinstance(zeebe, FetchSnapshot) and zeebe.resume == "from_zero"
    assert (zeebe.max_bytes, zeebe.request_timeout) == (2**30, 2.5)  # snapshotChunkSize, snapshotRequestTimeout
    assert policy("zeebe", chunk_size=64 * 1024).max_bytes == 64 * 1024


def test_zeebe_loops_on_a_state_whose_chunk_outlasts_the_request_timeout_and_raftsim_does_not():
    # camunda#14671: a request timed out, the leader sent the first chunk again, for ever.
    looping = scenario_run("slow_link_catch_up", "zeebe", size=12 * 2**20, within=30)
    assert not looping.ok
    [transfer] = looping.summary["transfers"]
    assert transfer["outcome"] == "in_progress" and transfer["retries"] >= 8
    assert transfer["bytes_sent"] < (transfer["retries"] + 1) * 5_100_000  # 2.5 s of 2 MB/s per try
    assert scenario_run("slow_link_catch_up", "zeebe", size=4 * 2**20, within=30).ok  # 2.1 s: in time
    assert scenario_run("slow_link_catch_up", "raftsim", size=12 * 2**20, within=30).ok


# -- openraft: a chunk out of place sends the transfer back to offset 0 (openraft fd5c657f) ------


def test_a_duplicate_chunk_sends_openraft_back_to_zero_and_raftsim_ignores_it():
    openraft = scenario_run("duplicating_link_catch_up", "openraft")
    raftsim_run = scenario_run("duplicating_link_catch_up", "raftsim")
    assert openraft.ok and raftsim_run.ok, (openraft.failed_checks, raftsim_run.failed_checks)
    [thrown] = openraft.summary["transfers"]
    [kept] = raftsim_run.summary["transfers"]
    assert thrown["retries"] >= 1 and thrown["resent_bytes"] >= 3 * 2**20  # at least one chunk, again
    assert kept["resent_bytes"] <= 2**20 and thrown["resent_bytes"] > 10 * kept["resent_bytes"]
    assert raftsim_run.summary["caught_up_seconds"] < openraft.summary["caught_up_seconds"]


def test_mismatch_restarts_is_what_makes_a_duplicate_cost_the_transfer():
    from simulator import Cluster, load_state

    def resent(mode):
        async def main_():
            async with Cluster.open(nodes=3, seed=0, snapshot_mode=mode) as c:
                leader = await load_state(c, 1 * 2**20)
                c.compact(leader)
                newcomer = max(c.node_ids) + 1
                c.fail_chunk(5, "duplicate", to=newcomer)
                await c.add_node(promote=False, timeout=60)
                [transfer] = [t for t in c.transfers() if t.to == newcomer]
                return transfer

        return run(main_)

    strict = resent(Streaming(chunk_size=64 * 1024, mismatch_restarts=True))
    lenient = resent(Streaming(chunk_size=64 * 1024))
    assert strict.outcome.value == lenient.outcome.value == "installed"
    assert strict.resent_bytes >= 4 * 64 * 1024 and lenient.resent_bytes <= 64 * 1024
