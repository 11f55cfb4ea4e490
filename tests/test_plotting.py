"""Plots, tables and records of a run: what they read from the trace and what they draw.

The plots are checked by their artists (arrows, shaded rectangles, markers
and their coordinates), not by pixels: an arrow per message, a crash shaded
from the crash to the restart, a retry marked at the offset it asked from.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display in tests

import matplotlib.pyplot as plt
import pytest
import trio
from matplotlib.patches import FancyArrowPatch, Rectangle

from simulator import (
    Cluster,
    CompactionPolicy,
    WorkflowExecutor,
    load_state,
    node_table,
    plot_catch_up,
    plot_memory,
    plot_messages,
    plot_peak_memory,
    plot_roles,
    plot_transfers,
    records_of,
    run,
    sweep_catch_up,
    to_dataframe,
    to_dicts,
    transfer_dicts,
)
from simulator.observe.flows import messages, transfers
from transports import faults
from simulator.observe.intervals import network_faults, outages, role_spans
from transports import Constant, Embedded, LinkConfig, Streaming

LINK = LinkConfig(latency=Constant(0.001), bandwidth=12_500_000)
CHUNK = 32 * 1024


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _arrows(ax) -> list[FancyArrowPatch]:
    return [p for p in ax.patches if isinstance(p, FancyArrowPatch)]


def _shaded(ax, gid: str) -> list[tuple[float, float]]:
    """(start, end) of each rectangle drawn for ``gid``."""
    return [(p.get_x(), p.get_x() + p.get_width()) for p in ax.patches
            if isinstance(p, Rectangle) and p.get_gid() == gid]


def _points(ax, gid: str) -> list[tuple[float, float]]:
    return [(x, y) for line in ax.lines if line.get_gid() == gid
            for x, y in zip(line.get_xdata(), line.get_ydata())]


async def _load(cluster, workflows: int, payload: int) -> None:
    for number in range(workflows):
        await cluster.propose(WorkflowExecutor.start(f"wf-{number}", ["fetch"], bytes([number]) * payload))


async def _crash_and_restart(cluster) -> tuple[int, float, float]:
    leader = await cluster.wait_for_leader()
    await _load(cluster, 3, 10)
    crashed_at = cluster.now()
    cluster.crash(leader)
    await trio.sleep(3)
    restarted_at = cluster.now()
    cluster.restart(leader)
    await cluster.check_liveness()
    return leader, crashed_at, restarted_at


async def _streamed_newcomer(cluster, fault: str, k: int = 2, **options) -> int:
    """Load about five chunks of state, compact, arm a chunk fault, add a node; returns its id."""
    leader = await cluster.wait_for_leader()
    await _load(cluster, 20, 5 * CHUNK // 20 - 128)
    await cluster.wait_caught_up()
    cluster.compact(leader)
    newcomer = max(cluster.node_ids) + 1
    cluster.fail_chunk(k, fault, to=newcomer, **options)
    await cluster.add_node(timeout=60)
    await cluster.wait_caught_up(timeout=30)
    return newcomer


# -- records ---------------------------------------------------------------------------------


async def test_records_become_dicts_and_a_dataframe_with_every_field(autojump_clock, tmp_path):
    async with Cluster.open(nodes=3, seed=1) as cluster:
        await cluster.wait_for_leader()
        cluster.isolate(1)
    rows = to_dicts(cluster)
    records = cluster.trace.records
    assert len(rows) == len(records)
    [fault] = [row for row in rows if row["kind"] == "fault"]
    assert fault["fault"] == "isolate" and fault["node_id"] == 1 and fault["node"] == 0
    assert rows == cluster.trace.to_dicts()
    path = tmp_path / "run.jsonl"
    cluster.trace.write_jsonl(path)
    assert to_dicts(path) == rows  # a JSONL file reads back to the same dicts

    frame = to_dataframe(cluster)
    assert list(frame.columns[:4]) == ["time", "node", "seq", "kind"]
    assert len(frame) == len(records)
    assert (frame.kind == "send").sum() == len(cluster.trace.of_kind("send"))
    assert frame.loc[frame.kind == "fault", "fault"].tolist() == ["isolate"]


def test_records_of_names_what_it_cannot_read():
    with pytest.raises(TypeError, match="cannot read trace records from a int"):
        records_of(42)
    with pytest.raises(TypeError, match="item 1 is a str, expected a TraceRecord"):
        records_of(_one_record_and("oops"))


def _one_record_and(other):
    from simulator import TraceRecord

    return [TraceRecord(0.0, 1, 1, "start", ()), other]


# -- what the trace says ---------------------------------------------------------------------


async def test_outages_and_roles_follow_a_crash_and_restart(autojump_clock):
    async with Cluster.open(nodes=3, seed=2) as cluster:
        leader, crashed_at, restarted_at = await _crash_and_restart(cluster)
    [outage] = outages(records_of(cluster))
    assert (outage.node, outage.kind) == (leader, "down")
    assert outage.start == pytest.approx(crashed_at) and outage.end == pytest.approx(restarted_at)
    assert not outage.ongoing
    spans = role_spans(records_of(cluster))
    # The crashed leader's span ends at the crash; another node leads a higher term after it.
    [led] = [s for s in spans if s.node == leader and s.role == "leader"]
    assert led.end == pytest.approx(crashed_at)
    later = [s for s in spans if s.role == "leader" and s.start > crashed_at]
    assert later and later[0].node != leader and later[0].term > led.term
    # Every follower ends in the new leader's term, learnt from its appends.
    final = {s.node: s for s in spans}
    assert {s.term for s in final.values()} == {later[-1].term}


async def test_network_faults_replay_the_clusters_fault_shapes(autojump_clock):
    async with Cluster.open(nodes=3, seed=3) as cluster:
        await cluster.wait_for_leader()
        cluster.partition([1, 2], [3])
        await trio.sleep(1)
        cluster.one_way(2, 1)
        await trio.sleep(1)
        cluster.heal()
        await trio.sleep(1)
        cluster.isolate(2)
        await trio.sleep(0.5)
    first, second, third = network_faults(records_of(cluster))
    assert set(first.blocked) == faults.partition([1, 2, 3], [1, 2], [3])
    assert first.label == "partition {n1, n2} | {n3}" and second.start == first.end
    assert set(second.blocked) == set(first.blocked) | {(2, 1)}
    assert second.end - second.start == pytest.approx(1.0)
    assert set(third.blocked) == faults.isolate([1, 2, 3], 2) and third.ongoing
    # Shaded: the nodes cut off from a majority, not every node that lost a link.
    assert first.nodes == (3,) and third.nodes == (2,) and third.touched == (1, 2, 3)
    assert second.nodes == (1, 2, 3)  # n1 and n2 no longer talk both ways: nobody has a majority


# -- message-sequence diagram ----------------------------------------------------------------------


async def test_message_diagram_draws_an_arrow_per_message_and_shades_the_crash(autojump_clock):
    async with Cluster.open(nodes=3, seed=2) as cluster:
        leader, crashed_at, restarted_at = await _crash_and_restart(cluster)
    ax = plot_messages(cluster, start=crashed_at - 0.5, end=restarted_at + 0.5)
    shown = [m for m in messages(records_of(cluster)) if crashed_at - 0.5 <= m.sent <= restarted_at + 0.5]
    assert 0 < len(shown) <= 300
    assert len(_arrows(ax)) == len(shown)
    assert "summarised" not in ax.get_title()
    # The crash is shaded over the crashed node's lane, from the crash to the restart.
    [(start, end)] = _shaded(ax, f"down n{leader}")
    assert start == pytest.approx(crashed_at) and end == pytest.approx(restarted_at)
    # Heartbeats to the crashed leader found it down: drawn as undelivered.
    undelivered = [p for p in _arrows(ax) if p.get_gid().endswith("undelivered")]
    assert len(undelivered) == len([m for m in shown if m.fate == "undelivered"]) > 0
    labels = [tick.get_text() for tick in ax.get_yticklabels()]
    assert labels == ["n3", "n2", "n1"]  # top to bottom: n1 first, no stream lanes


async def test_message_diagram_summarises_many_messages_and_says_so(autojump_clock):
    async with Cluster.open(nodes=3, seed=2) as cluster:
        await cluster.wait_for_leader()
        await _load(cluster, 40, 10)
        await trio.sleep(2)
    total = len(messages(records_of(cluster)))
    assert total > 100
    ax = plot_messages(cluster, max_arrows=100, bins=10)
    assert "summarised" in ax.get_title() and str(total) in ax.get_title()
    arrows = _arrows(ax)
    assert 0 < len(arrows) < total
    # Each summary arrow says how many messages it stands for; together, all of them.
    assert sum(int(p.get_gid().rsplit(" ", 1)[1]) for p in arrows) == total


async def test_message_diagram_puts_snapshot_chunks_on_stream_lanes_and_marks_compaction(autojump_clock):
    async with Cluster.open(nodes=3, seed=4, snapshot_mode=Streaming(chunk_size=CHUNK), link=LINK) as cluster:
        newcomer = await _streamed_newcomer(cluster, "cut")
    records = records_of(cluster)
    [compaction] = [r for r in records if r.kind == "compaction"]
    start = compaction.time - 0.01
    ax = plot_messages(cluster, start=start, kinds={"snapshot_chunk", "snapshot_request", "snapshot_ack"})
    lanes = {tick.get_text(): y for tick, y in zip(ax.get_yticklabels(), ax.get_yticks())}
    assert f"n{newcomer} stream" in lanes and f"n{compaction.node} stream" in lanes
    chunks = [p for p in _arrows(ax) if p.get_gid().startswith("message snapshot_chunk")]
    sent = [m for m in messages(records) if m.type == "snapshot_chunk" and m.sent >= start]
    assert len(chunks) == len(sent) > 5
    for patch in chunks:
        (_, y_from), (_, y_to) = patch._posA_posB
        # Delivered chunks run between the stream lanes; a dropped one is a stub beside its
        # sender's lane (a line towards the receiver would end on another node's lane).
        assert y_from == lanes[f"n{compaction.node} stream"]
        stub = y_from + (0.25 if lanes[f"n{newcomer} stream"] > y_from else -0.25)
        assert y_to in (lanes[f"n{newcomer} stream"], stub)
    assert _points(ax, "compaction") == [(compaction.time, lanes[f"n{compaction.node}"])]
    assert len(_points(ax, "dropped")) == len([m for m in sent if m.fate == "dropped"]) > 0
    # Each stub names the node it was for, and the legend says what a stub is.
    names = [text.get_text() for text in ax.texts if text.get_gid() == "dropped to"]
    assert names == [f" n{newcomer}"] * len(_points(ax, "dropped"))
    assert any(text.get_text().startswith("lost") for text in ax.get_legend().get_texts())


def test_message_diagram_refuses_nonsense_limits():
    with pytest.raises(ValueError, match="max_arrows and bins must be >= 1"):
        plot_messages([], max_arrows=0)


# -- roles ---------------------------------------------------------------------------------------------


async def test_role_timeline_bars_follow_the_roles_and_shade_the_downtime(autojump_clock):
    async with Cluster.open(nodes=3, seed=2) as cluster:
        leader, crashed_at, restarted_at = await _crash_and_restart(cluster)
    fig, ax = plt.subplots()
    assert plot_roles(cluster, ax=ax) is ax
    bars = {c.get_gid(): c for c in ax.collections if (c.get_gid() or "").startswith("role ")}
    spans = role_spans(records_of(cluster))
    for span in spans:
        collection = bars[f"role {span.role} n{span.node}"]
        starts = [path.vertices[:, 0].min() for path in collection.get_paths()]
        assert any(start == pytest.approx(span.start) for start in starts)
    [(start, end)] = _shaded(ax, f"down n{leader}")
    assert (start, end) == (pytest.approx(crashed_at), pytest.approx(restarted_at))
    terms = {text.get_text() for text in ax.texts if text.get_gid() == f"term n{leader}"}
    assert "t1" in terms or "t2" in terms


# -- transfers ----------------------------------------------------------------------------------------------


async def test_transfer_plot_marks_the_retry_at_the_verified_offset(autojump_clock):
    async with Cluster.open(nodes=3, seed=4, snapshot_mode=Streaming(chunk_size=CHUNK), link=LINK) as cluster:
        newcomer = await _streamed_newcomer(cluster, "cut", k=2)
    [track] = transfers(records_of(cluster))
    [retry] = [r for r in cluster.trace.of_kind("transfer_retry") if r.node == newcomer]
    ax = plot_transfers(cluster)
    assert _points(ax, "retry") == [(retry.time, 2 * CHUNK)]
    [line] = [line for line in ax.lines if line.get_gid() == f"transfer n{newcomer} {track.snapshot_index}"]
    assert max(line.get_ydata()) == track.size == cluster.transfers()[0].size
    assert list(line.get_ydata()) == sorted(line.get_ydata())  # verified bytes only grow here
    assert _points(ax, "outcome installed") == [(track.ended_at, track.size)]


async def test_transfer_plot_marks_a_resumption_after_the_receiver_crashed(autojump_clock):
    async with Cluster.open(nodes=3, seed=5, snapshot_mode=Streaming(chunk_size=CHUNK), link=LINK) as cluster:
        newcomer = await _streamed_newcomer(cluster, "crash_receiver", k=3, restart_after=0.5)
    [resumed] = [r for r in cluster.trace.of_kind("transfer_resumed") if r.node == newcomer]
    kept = resumed.get("offset")
    assert kept > 0 and kept % CHUNK == 0  # whole chunks verified before the crash
    ax = plot_transfers(cluster, receiver=newcomer)
    assert _points(ax, "resume") == [(resumed.time, kept)]
    # The receiver's downtime is shaded behind the flat stretch.
    [down] = [p for p in ax.patches if p.get_gid() == f"down n{newcomer}"]
    assert down.get_x() < resumed.time


async def test_embedded_transfer_jumps_to_its_size_when_installed(autojump_clock):
    async with Cluster.open(nodes=3, seed=4, snapshot_mode=Embedded(), link=LINK) as cluster:
        leader = await cluster.wait_for_leader()
        await _load(cluster, 10, 20_000)
        await cluster.wait_caught_up()
        cluster.compact(leader)
        newcomer = await cluster.add_node()
    [track] = transfers(records_of(cluster))
    [installed] = [r for r in cluster.trace.of_kind("snapshot_installed") if r.node == newcomer]
    assert track.mode == "embedded" and track.outcome == "installed"
    assert track.progress[-2:] == [(installed.time, 0), (installed.time, installed.get("size"))]
    ax = plot_transfers(cluster)
    [line] = [line for line in ax.lines if line.get_gid().startswith("transfer")]
    assert list(line.get_ydata()) == [0, 0, installed.get("size")]


def test_transfer_plot_of_a_trace_without_transfers_says_so():
    ax = plot_transfers([])
    assert [text.get_text() for text in ax.texts] == ["no snapshot transfers in this trace"]


# -- memory and the sweep ---------------------------------------------------------------------------------


def test_catch_up_sweep_shows_embedded_holding_the_whole_snapshot_and_streaming_a_chunk():
    sizes = [64 * 1024, 256 * 1024]
    runs = run(sweep_catch_up, sizes, [Embedded(), Streaming(chunk_size=CHUNK)])
    assert [(r.mode, r.state_size) for r in runs] == [
        ("embedded", sizes[0]), ("embedded", sizes[1]), ("streaming", sizes[0]), ("streaming", sizes[1])]
    for result in runs:
        assert result.snapshot_size >= result.state_size * 0.9
        assert result.snapshot_bytes_sent >= result.snapshot_size and result.catch_up_seconds > 0
        if result.mode == "embedded":
            assert result.peak_memory >= result.snapshot_size
        else:
            assert result.peak_memory <= CHUNK
    assert runs[0].summary() == {name: getattr(runs[0], name) for name in runs[0].summary()}
    assert "cluster" not in runs[0].summary() and runs[0].summary()["mode"] == "embedded"
    ax = plot_peak_memory(runs)
    for mode in ("embedded", "streaming"):
        expected = sorted((r.snapshot_size, r.peak_memory) for r in runs if r.mode == mode)
        assert _points(ax, f"peak_memory {mode}") == expected
    assert [x for x, _ in _points(ax, "whole snapshot")] == sorted(r.snapshot_size for r in runs[:2])
    times = plot_catch_up(runs, "catch_up_seconds")
    assert len([line for line in times.lines if line.get_gid().startswith("catch_up_seconds")]) == 2

    # Memory over time of the largest embedded run: the newcomer's line reaches the whole snapshot.
    big = runs[1]
    ax = plot_memory(big.cluster)
    [line] = [line for line in ax.lines if line.get_gid() == f"memory n{big.newcomer}"]
    assert max(line.get_ydata()) == big.peak_memory == big.cluster.snapshot_memory()[big.newcomer][1]
    with pytest.raises(ValueError, match="unknown metric 'speed'"):
        plot_catch_up(runs, "speed")
    with pytest.raises(ValueError, match="no node 9 in this cluster"):
        plot_memory(big.cluster, nodes=[9])
    [row] = transfer_dicts(big.cluster)
    assert row["outcome"] == "installed" and row["to"] == big.newcomer and row["size"] == big.snapshot_size


async def test_load_state_loads_about_the_asked_bytes_and_refuses_nothing(autojump_clock):
    async with Cluster.open(nodes=3, seed=1) as cluster:
        with pytest.raises(ValueError, match="state_size must be a positive number of bytes, got 0"):
            await load_state(cluster, 0)
        leader = await load_state(cluster, 100_000)
        assert leader == cluster.leader_id()
        machine = cluster.state_machine(leader)
        snapshot = machine.create_snapshot(machine.applied_index)
    assert abs(len(snapshot) - 100_000) < 1_000  # payloads are sized to leave room for bookkeeping


# -- the node table -----------------------------------------------------------------------------------------


async def test_node_table_renders_html_and_agrees_with_the_trace(autojump_clock):
    async with Cluster.open(nodes=3, seed=2) as cluster:
        leader = await cluster.wait_for_leader()
        await _load(cluster, 3, 10)
        await cluster.wait_caught_up()
        cluster.crash(leader)
        await trio.sleep(0.05)
    now = node_table(cluster)
    recorded = node_table(cluster.trace)
    assert [row.status for row in now.rows] == [
        "down" if node == leader else "up" for node in (1, 2, 3)]
    for live, traced in zip(now.rows, recorded.rows):
        assert (live.node, live.status, live.role, live.term, live.commit, live.applied) == (
            traced.node, traced.status, traced.role, traced.term, traced.commit, traced.applied)
    html = now._repr_html_()
    assert html.count("<tr>") == 4  # the header and three nodes
    assert f"<td>n{leader}</td><td><span style=\"color:red\">down</span></td>" in html
    assert "leader" not in [row.role for row in now.rows if row.node == leader]
    text = str(now)
    assert "peak snapshot memory" in text and f"n{leader}" in text and repr(now) == text


async def test_plots_read_a_jsonl_trace_file_like_the_cluster(autojump_clock, tmp_path):
    async with Cluster.open(nodes=3, seed=4, snapshot_mode=Streaming(chunk_size=CHUNK), link=LINK) as cluster:
        newcomer = await _streamed_newcomer(cluster, "cut")
    path = tmp_path / "run.jsonl"
    cluster.trace.write_jsonl(path)
    from_cluster, from_file = plot_transfers(cluster), plot_transfers(str(path))
    assert _points(from_file, "retry") == _points(from_cluster, "retry") != []
    gid = "message snapshot_chunk delivered"
    assert len([p for p in _arrows(plot_messages(path, max_arrows=10_000)) if p.get_gid() == gid]) == len(
        [m for m in messages(records_of(cluster)) if m.type == "snapshot_chunk" and m.fate == "delivered"])
    assert node_table(path).rows == node_table(cluster.trace).rows
    assert [row.node for row in node_table(path).rows] == [1, 2, 3, newcomer]


# -- what each mark means (issue 19: figures a student reads) ---------------------------------------


def _legend_texts(ax) -> list[str]:
    return [text.get_text() for text in ax.get_legend().get_texts()]


async def test_transfer_plot_has_a_legend_entry_for_every_mark_and_shading(autojump_clock):
    async with Cluster.open(nodes=3, seed=2, snapshot_mode=Streaming(chunk_size=CHUNK, rate_limit=64 * 1024),
                            link=LINK) as cluster:
        leader = await load_state(cluster, 8 * CHUNK)
        cluster.compact(leader)
        cluster.at(cluster.now() + 1.5, cluster.isolate, 4)
        cluster.at(cluster.now() + 5.5, cluster.heal)
        await cluster.add_node(timeout=60)
        await cluster.wait_caught_up(timeout=30)
    ax = plot_transfers(cluster)
    texts = _legend_texts(ax)
    [track] = transfers(records_of(cluster))
    assert track.retries and track.resumes
    for key in ("snapshot size", "retry: asked again, from this offset", "resumed from a kept offset",
                "installed", "cut off: the receiver"):
        assert key in texts, texts
    assert "chunk rejected by a check" not in texts  # nothing was rejected: no key for it


async def test_roles_show_a_joining_node_as_a_learner_until_it_is_made_a_voter(autojump_clock):
    async with Cluster.open(nodes=3, seed=1) as cluster:
        await cluster.wait_for_leader()
        newcomer = await cluster.add_node(timeout=30)
        await cluster.wait_caught_up(timeout=30)
        await trio.sleep(0.5)
    ax = plot_roles(cluster)
    learner = [p for p in ax.collections if p.get_gid() == f"role learner n{newcomer}"]
    assert learner and "learner" in _legend_texts(ax)
    assert not any(p.get_gid() == "role learner n1" for p in ax.collections)


def test_peak_memory_reference_is_a_band_under_the_lines_that_may_lie_on_it():
    runs = run(sweep_catch_up, [64 * 1024, 256 * 1024], [Embedded(), Streaming(chunk_size=16 * 1024)])
    ax = plot_peak_memory(runs)
    lines = {line.get_gid(): line for line in ax.lines}
    band, embedded = lines["whole snapshot"], lines["peak_memory embedded"]
    # Embedded holds the whole snapshot: its line lies on the band, and stays visible over it.
    assert list(embedded.get_ydata()) == list(band.get_ydata())
    assert band.get_zorder() < embedded.get_zorder() and band.get_linewidth() > 2 * embedded.get_linewidth()
    streaming = lines["peak_memory streaming"]
    assert streaming.get_linestyle() != embedded.get_linestyle()  # equal values still show as two lines


def test_a_transfer_that_starts_over_drops_to_zero_in_its_plot(tmp_path):
    from simulator import AddNode, FailChunk, Program, SearchSpace, run_example

    space = SearchSpace(defects=("resume_from_zero",), mode="streaming", vocabulary="transfers", max_steps=6,
                        warmup=15, liveness_within=10.0)
    program = Program((FailChunk(k=2, action="drop"), AddNode()), liveness_within=10.0)
    trace = tmp_path / "run.jsonl"
    assert not run_example(program, space, seed=0, directory=tmp_path, trace_path=trace).ok
    [track] = transfers(records_of(trace))
    [(retry_time, retry_offset)] = track.retries
    assert retry_offset == 0  # where it asked from, not what it had verified
    after = [done for time, done in track.progress if time >= retry_time]
    before = [done for time, done in track.progress if time < retry_time]
    assert max(before) > 0 and after[0] == 0
