"""``Auto(threshold)``: small snapshots ride in the Raft message, large ones stream.

A 4th node joins a 3-node cluster whose log was compacted, once with the
snapshot under the threshold and once over it; the trace names the choice
and its reason, the wire shows it (one snapshot message, or chunks), and the
newcomer ends with the leader's state and the snapshot in its own store
either way. ``--mode auto`` runs a scenario from the command line.
"""

from __future__ import annotations

import io
import json

import pytest

from simulator import Cluster, CompactionPolicy, WorkflowExecutor
from simulator.cli import main
from transports import AUTO_THRESHOLD, Auto, Streaming

NEW = 4
CHUNK = 4096


async def join_with(mode) -> Cluster:
    async with Cluster.open(nodes=3, seed=1, snapshot_mode=mode,
                            compaction=CompactionPolicy(every=50, keep_entries=5)) as cluster:
        await cluster.wait_for_leader()
        for number in range(100):
            await cluster.propose(WorkflowExecutor.start(f"wf-{number}", ["a"], bytes([number]) * 200), timeout=30)
        await cluster.wait_caught_up()
        newcomer = await cluster.add_node(timeout=60)
        await cluster.wait_caught_up(timeout=60)
        assert newcomer == NEW
        states = {cluster.state_machine(node).digest() for node in cluster.node_ids}
        assert len(states) == 1, "the newcomer should hold the leader's state"
        return cluster


def sent_to_newcomer(cluster):
    return [record for record in cluster.trace.of_kind("snapshot_sent") if record.get("to") == NEW]


def kinds_on_link_to_newcomer(cluster) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for (src, dst), link in cluster.transport.statistics().links:
        if dst == NEW:
            for kind, messages, _ in link.by_kind:
                kinds[kind] = kinds.get(kind, 0) + messages
    return kinds


async def test_a_snapshot_at_or_under_the_threshold_is_embedded_and_the_trace_says_why():
    cluster = await join_with(Auto(chunk_size=CHUNK, threshold=1_000_000))
    [sent] = sent_to_newcomer(cluster)
    assert sent.get("mode") == "embedded"
    assert sent.get("why") == f"{sent.get('size')} bytes <= threshold 1000000: one message, no stream"
    [transfer] = [t for t in cluster.transfers() if t.to == NEW]
    assert transfer.mode == "embedded"
    assert "snapshot_chunk" not in kinds_on_link_to_newcomer(cluster)
    # Auto keeps Streaming's stores: the embedded snapshot lands in the newcomer's store too.
    index = cluster.storage(NEW).snapshot_metadata.index
    assert cluster.store(NEW).has_snapshot(index)


async def test_a_snapshot_over_the_threshold_streams_and_the_trace_says_why():
    cluster = await join_with(Auto(chunk_size=CHUNK, threshold=1000))
    [sent] = sent_to_newcomer(cluster)
    size = sent.get("size")
    assert size > 1000 and sent.get("mode") == "streaming"
    assert sent.get("why") == f"{size} bytes > threshold 1000: chunks, resumable, bounded memory"
    [transfer] = [t for t in cluster.transfers() if t.to == NEW]
    assert transfer.mode == "streaming"
    assert kinds_on_link_to_newcomer(cluster)["snapshot_chunk"] >= size // CHUNK


async def test_streaming_traces_carry_no_choice():
    cluster = await join_with(Streaming(chunk_size=CHUNK))
    [sent] = sent_to_newcomer(cluster)
    assert sent.get("mode") == "streaming" and sent.get("why") is None


def test_the_threshold_is_the_seeds_ten_megabytes_and_must_be_positive():
    assert Auto().threshold == AUTO_THRESHOLD == 10_000_000
    assert Auto().choose(10_000_000)[0] == "embedded" and Auto().choose(10_000_001)[0] == "streaming"
    with pytest.raises(ValueError, match="threshold must be > 0, got 0"):
        Auto(threshold=0)


def test_mode_auto_on_the_command_line():
    out = io.StringIO()
    assert main(["run", "auto_threshold", "--mode", "auto", "--json"], out=out) == 0
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    assert summary["mode"] == "auto"
    out = io.StringIO()
    assert main(["run", "auto_threshold"], out=out) == 0  # its only mode is the default
    told = out.getvalue()
    assert "inside one Raft message (auto: " in told and "out of band (auto: " in told
    assert "check passed: the small snapshot was embedded and the large one streamed" in told


@pytest.mark.parametrize("scenario", ["node_join", "partition_during_transfer"])
def test_a_story_written_for_other_modes_refuses_auto(capsys, scenario):
    # Their checks are written for one way of moving snapshots; auto may take the other.
    out = io.StringIO()
    assert main(["run", scenario, "--mode", "auto"], out=out) == 2
    assert "mode only" in out.getvalue() + capsys.readouterr().err


def test_compare_shows_the_auto_column_of_an_auto_story():
    out = io.StringIO()
    assert main(["compare", "auto_threshold"], out=out) == 0
    header = next(line for line in out.getvalue().splitlines() if "auto" in line.split())
    assert header.split() == ["auto"]
    assert "peak snapshot memory n5" in out.getvalue()
