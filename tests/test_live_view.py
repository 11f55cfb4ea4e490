"""The live view: what it shows, how often it draws, and that it changes nothing.

The view is rendered to an in-memory terminal (``force_terminal=True``,
``record=True``) and read back as plain text with ``export_text``; it holds
every frame drawn, so the assertions look at the last one (the final frame
that ``stop`` draws). Clusters run on virtual time (``autojump_clock``) and
are small, so the whole file takes about a second.
"""

from __future__ import annotations

import io
import re
import threading

import pytest
import trio
from rich.console import Console
from rich.text import Text

from simulator import Cluster, CompactionPolicy, WorkflowExecutor, run
from simulator.cli import main
from simulator.observe.live_view import LOG_LINES, LiveView
from transports import Streaming

FRAME_START = "raftsim · "  # every frame opens with the header
CHUNK = 4096


def terminal(width: int = 140) -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=width, record=True)


def last_frame(console: Console) -> str:
    text = console.export_text()
    return text[text.rindex(FRAME_START):]


def node_row(frame: str, node_id: int) -> list[str]:
    """The cells of the node table's row for ``node_id``: id, role, term, commit,
    applied, snapshot, last index, status. (Log lines start with a time, not an id.)"""
    [row] = [line for line in frame.splitlines() if re.match(rf"^\W*n{node_id}\s", line)]
    return [cell.strip() for cell in row.strip("│ ").split("│")]


def start(number: int, payload: bytes = b"") -> bytes:
    return WorkflowExecutor.start(f"wf-{number}", ["fetch", "build"], payload)


@pytest.fixture
def no_new_threads(monkeypatch):
    """Fails the test if anything starts a thread (rich's auto refresh would)."""
    started = []
    original = threading.Thread.start

    def record(thread, *args, **kwargs):
        started.append(thread.name)
        return original(thread, *args, **kwargs)

    monkeypatch.setattr(threading.Thread, "start", record)
    yield started
    assert started == [], f"threads were started: {started}"


async def test_view_shows_nodes_a_streamed_transfer_and_the_story(autojump_clock, no_new_threads):
    threads = threading.active_count()
    console = terminal()
    async with Cluster.open(
        nodes=3, seed=1, snapshot_mode=Streaming(chunk_size=CHUNK),
        compaction=CompactionPolicy(every=50, keep_entries=5),
    ) as cluster:
        view = LiveView(cluster, console, scenario="join test")
        view.start()
        leader = await cluster.wait_for_leader()
        for number in range(100):
            await cluster.propose(start(number, b"x" * 200))
        await cluster.wait_caught_up()
        index = cluster.storage(leader).snapshot_metadata.index
        newcomer = await cluster.add_node(promote=False)  # stays a learner: the table says so
        await cluster.wait_caught_up()
        assert threading.active_count() == threads  # while the view is live
        view.stop()
        view.stop()  # a second stop does nothing

    assert index > 0
    assert "\x1b[" in console.file.getvalue()  # drawn for a terminal: styles and cursor moves
    frame = last_frame(console)
    header = f"raftsim · join test · streaming · seed 1   virtual time {view.virtual_time:.3f} s"
    assert frame.startswith(header)
    roles = {leader: "leader", newcomer: "follower (learner)"}
    for node_id in cluster.node_ids:
        stats = cluster.statistics(node_id)
        assert node_row(frame, node_id) == [
            f"n{node_id}", roles.get(node_id, "follower"), str(stats.term),
            str(stats.commit), str(stats.applied), str(index), str(stats.last_index), "up",
        ]
    [transfer_line] = [line for line in frame.splitlines() if f"n{leader}->n{newcomer}" in line]
    assert f"snapshot {index}" in transfer_line and "100%" in transfer_line
    assert re.search(r"streaming · .* · 0 retries · 0 B re-sent · installed", frame)
    assert f"n{newcomer} installed snapshot {index}" in frame
    times = re.findall(r"\[\s*(\d+\.\d{3})s\] ", frame)
    assert len(times) == LOG_LINES and times == sorted(times, key=float)
    assert threading.active_count() == threads


async def test_down_paused_and_partitioned_nodes_say_so(autojump_clock):
    console = terminal()
    async with Cluster.open(nodes=5, seed=2) as cluster:
        with LiveView(cluster, console) as view:
            leader = await cluster.wait_for_leader()
            crashed, paused, isolated, steady = [n for n in cluster.node_ids if n != leader]
            cluster.crash(crashed)
            cluster.pause(paused)
            cluster.isolate(isolated)
            await trio.sleep(1)
            view.stop()
            frame = last_frame(console)
            assert node_row(frame, crashed)[1:] == ["-", "-", "-", "-", "0", "-", "down"]
            assert node_row(frame, paused)[-1] == "paused"
            # Only the isolated node is partitioned: the others lost a link to it,
            # yet still reach a majority.
            assert node_row(frame, isolated)[-1] == "partitioned"
            for node_id in (steady, leader):
                assert node_row(frame, node_id)[-1] == "up"

            view.start()
            cluster.heal()
            cluster.resume(paused)
            cluster.restart(crashed)
            await cluster.wait_caught_up()
            await trio.sleep(0.1)  # the heal's instant is published once time moves on
    frame = last_frame(console)
    assert [node_row(frame, n)[-1] for n in cluster.node_ids] == ["up"] * 5
    assert "the network heals: every link works again" in frame


async def test_wall_time_decides_only_when_to_draw(autojump_clock):
    wall = [100.0]
    console = terminal()
    async with Cluster.open(nodes=3, seed=4) as cluster:
        view = LiveView(cluster, console, wall_clock=lambda: wall[0], max_refresh_per_second=10)
        view.start()
        assert view.refreshes == 1
        events = len(cluster.trace)
        await cluster.wait_for_leader()
        await trio.sleep(2)
        assert len(cluster.trace) - events > 50
        assert view.refreshes == 1  # no wall time passed: no new frame, however much happened
        wall[0] += 0.099
        await trio.sleep(0.5)
        assert view.refreshes == 1
        wall[0] += 0.001
        await trio.sleep(0.5)
        assert view.refreshes == 2
        view.stop()
        assert view.refreshes == 3  # the final frame


async def trace_hash(with_view: bool) -> str:
    async with Cluster.open(nodes=3, seed=5) as cluster:
        view = LiveView(cluster, terminal()) if with_view else None
        if view:
            view.start()
        await cluster.wait_for_leader()
        for number in range(5):
            await cluster.propose(start(number))
        cluster.crash(cluster.leader_id())
        await cluster.wait_for_leader()
        if view:
            view.stop()
        return cluster.trace.sha256()


async def test_the_view_changes_nothing_in_the_run(autojump_clock):
    assert await trace_hash(with_view=True) == await trace_hash(with_view=False)


def test_view_at_wall_speed_draws_at_most_ten_frames_a_second(no_new_threads):
    clock = []

    async def elect() -> LiveView:
        async with Cluster.open(nodes=3, seed=1, tick_interval=0.01) as cluster:
            with LiveView(cluster, terminal()) as view:
                clock.append(trio.current_time())
                await cluster.wait_for_leader(timeout=30)
                await trio.sleep(0.3)
                clock.append(trio.current_time())
            return view

    view = run(elect, realtime=True)
    elapsed = clock[1] - clock[0]
    assert 2 <= view.refreshes <= 10 * elapsed + 3  # start, one per 0.1 s, stop
    assert "leader" in last_frame(view.console)


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_cli_run_on_a_terminal_shows_the_live_view(no_new_threads):
    out = FakeTerminal()
    assert main(["run", "basic"], out=out) == 0
    assert "\x1b[" in out.getvalue()
    text = Text.from_ansi(out.getvalue()).plain
    assert "raftsim · basic · embedded · seed 0   virtual time" in text
    assert re.search(r"n\d\s+│ leader\s+│", text)
    assert "what happens" in text and "check passed" in text
    # The summary comes after the final frame.
    assert text.rindex("virtual time") < text.index("basic (seed 0, embedded): ok")


def test_cli_run_without_a_terminal_prints_plain_lines():
    out = io.StringIO()
    assert main(["run", "basic"], out=out) == 0
    text = out.getvalue()
    assert "\x1b" not in text
    assert "virtual time" not in text and "│" not in text
    story = [line for line in text.splitlines() if re.match(r"^\[\s*\d+\.\d{3}s\] ", line)]
    assert len(story) > 5 and any("became leader" in line for line in story)


def _scenario_frames(name: str, mode: str, every: int = 1) -> str:
    """The live view's frames over a scenario's run, as text: a redraw every ``every`` records
    (a fake wall clock moves a tenth of the redraw interval per record)."""
    import functools
    import itertools

    from simulator.scenario import RunOptions, resolve, run_scenario

    console = terminal(160)
    views = []

    def attach(cluster) -> None:
        ticks = itertools.count()
        views.append(LiveView(cluster, console, scenario=name, max_refresh_per_second=10,
                              wall_clock=lambda: next(ticks) * 0.1 / every))
        views[0].start()

    run(functools.partial(run_scenario, on_cluster=attach), resolve(name), RunOptions(seed=0, mode=mode))
    views[0].stop()
    return console.export_text()


def test_a_stalled_transfer_says_so_and_then_that_its_sender_gave_up():
    frames = _scenario_frames("partition_during_transfer", "streaming", every=20).split(FRAME_START)
    stalled = [f for f in frames if "stalled for" in f]
    gave_up = [f for f in frames if "sender gave up: receiver silent" in f]
    assert stalled and gave_up
    # A stalled or abandoned transfer shows no rate and no ETA.
    for frame in stalled + gave_up:
        [details] = [line for line in frame.splitlines() if "stalled for" in line or "sender gave up" in line]
        assert "ETA -" in details and "· - ·" in details
    assert frames.index(stalled[0]) < frames.index(gave_up[0])
    assert "installed" in frames[-1] and "stalled for" not in frames[-1]


def test_each_nodes_log_row_shows_its_entries_by_term_and_its_commit_index():
    frame = last_frame_of(_scenario_frames("leader_change_during_transfer", "streaming", every=10**6))
    rows = {line.split("log of ")[1][:2]: line for line in frame.splitlines() if "log of n" in line}
    assert set(rows) == {"n1", "n2", "n3", "n4"}
    # n2 took over in term 2: its newest entries are of term 2, after its snapshot boundary.
    assert "[snapshot ≤21 t1]" in rows["n2"] and re.search(r" 2┃ commit (\d+) applied \1", rows["n2"])
    assert "n1,n2->n4 snapshot 21" in frame  # both senders of the transfer a new leader finished
    assert "entries by term:" in frame and " t2 " in frame


def last_frame_of(text: str) -> str:
    return text[text.rindex(FRAME_START):]
