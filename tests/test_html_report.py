"""The HTML report (``raftsim run --html``), loaded in a real headless Chromium.

Pages are written by the command line, as a user would, then opened from
disk in Debian's chromium (see tests/browser.py). The tests drive the
slider, the buttons and the keys, and compare what the page shows with what
the trace says through the public readers (role spans, each node's log,
transfers): the page must tell the same story as the trace at every moment.
Screenshots land in the test's folder, and in docs/images when
``RAFTSIM_DOC_SCREENSHOTS=1`` (how the lecture guide's pictures are made).
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import pytest

from browser import Browser
from simulator.cli.main import main
from simulator.observe.flows import transfers
from simulator.observe.html.model import page_model
from simulator.observe.intervals import role_spans
from simulator.observe.logs import LogState, logs_at
from simulator.observe.narration import human_bytes, narrate
from simulator.observe.trace import read_jsonl

DOCS_IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"
RUNS = (("partition_during_transfer", "streaming"), ("leader_change_during_transfer", "streaming"),
        ("large_snapshot", "embedded"), ("large_snapshot", "streaming"))
TEN_MINUTES = '''"""Ten minutes of five nodes: a write a second, the leader cut off, a crash."""
import trio
from simulator import KeyValueStore

CLUSTER = {"nodes": 5, "state_machine": KeyValueStore}
MODES = ("embedded",)


async def scenario(sim):
    cluster = sim.cluster
    await cluster.wait_for_leader()
    for second in range(595):  # ten minutes, within the default limit of 600 virtual seconds
        if second == 200:
            cluster.isolate(cluster.leader_id())
        if second == 260:
            cluster.heal()
        if second == 400:
            cluster.crash(3)
        if second == 430:
            cluster.restart(3)
        await cluster.propose(KeyValueStore.put(f"k{second % 50}", b"v" * 16), timeout=60)
        await trio.sleep(1)
'''


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pages")
    for name, mode in RUNS:
        stem = f"{name}.{mode}"
        code = main(["run", name, "--mode", mode, "--quiet", "--html", str(folder / f"{stem}.html"),
                     "--trace", str(folder / f"{stem}.jsonl")], out=io.StringIO())
        assert code == 0
    return folder


@pytest.fixture(scope="module")
def browser():
    with Browser() as opened:
        yield opened


def seek(browser: Browser, time: float) -> None:
    browser.evaluate(f"(() => {{ const s = document.getElementById('slider'); s.value = {time}; "
                     "s.dispatchEvent(new Event('input')); })()")


def page_time(browser: Browser) -> float:
    return float(browser.evaluate("document.body.dataset.time"))


def node_rows(browser: Browser) -> dict[int, list[str]]:
    rows = browser.evaluate("[...document.querySelectorAll('#nodes tbody tr')].map(r => "
                            "[r.dataset.node, ...[...r.cells].map(c => c.textContent)])")
    return {int(row[0]): row[1:] for row in rows}


def log_rows(browser: Browser) -> dict[int, dict]:
    return {int(row["node"]): row for row in browser.evaluate(
        "[...document.querySelectorAll('#logs .logrow')].map(r => ({node: r.dataset.node, "
        "commit: +r.dataset.commit, applied: +r.dataset.applied, snapshot: +r.dataset.snapshot, "
        "last: +r.dataset.last, cells: [...r.querySelectorAll('.cell')].map(c => [+c.dataset.index, +c.dataset.term])}))")}


def save(browser: Browser, tmp_path: Path, name: str) -> None:
    browser.screenshot(tmp_path / name)
    if os.environ.get("RAFTSIM_DOC_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        browser.screenshot(DOCS_IMAGES / name)


def test_the_page_is_one_file_that_asks_the_network_for_nothing(pages):
    for page in pages.glob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert not re.search(r"<script[^>]+src=|<link\b|@import|url\(|https?://", text), page.name
        assert text.count("<script") == 2  # the data and the script, both inline


def test_large_snapshot_page_size_is_stated_and_small(pages):
    for mode in ("embedded", "streaming"):
        size = (pages / f"large_snapshot.{mode}.html").stat().st_size
        assert size < 200_000, f"large_snapshot {mode}: {size} bytes"  # docs/lecture-guide.md states it


def test_at_any_slider_time_the_page_shows_what_the_trace_says(pages, browser, tmp_path):
    page = pages / "partition_during_transfer.streaming.html"
    records = read_jsonl(page.with_suffix(".jsonl"))
    spans = role_spans(records)
    browser.open(page)
    end = records[-1].time
    for time in (1.5, 2.5, 4.0, 6.0, 7.3, end):
        seek(browser, time)
        assert page_time(browser) == pytest.approx(time, abs=1e-6)
        rows, logs, told = node_rows(browser), log_rows(browser), logs_at(records, time)
        for node, row in rows.items():
            span = next((s for s in spans if s.node == node and s.start <= time and (time < s.end or s.end == end)),
                        None)
            if span is None:  # not started yet
                assert row[1:3] == ["-", "-"]
            else:
                assert row[1].split(" ")[0] == span.role.replace("_", "-") and int(row[2]) == span.term
            log = told.get(node, LogState(0, 0, (), 0, 0))  # no log yet: an empty one
            assert [int(row[3]), int(row[4]), int(row[5]), int(row[6])] == [
                log.commit, log.applied, log.snapshot_index, log.last_index]
            assert logs[node]["last"] == log.last_index and logs[node]["commit"] == log.commit
            assert logs[node]["cells"] == [[index, log.term(index)] for index, _ in logs[node]["cells"]]
            assert logs[node]["cells"][-1:] == ([[log.last_index, log.term(log.last_index)]]
                                                if log.last_index > log.snapshot_index else [])
        # During the partition only n4 is cut off; the other three still make a majority.
        statuses = {node: row[-1] for node, row in rows.items()}
        partitioned = 2.2 < time < 7.1
        assert statuses == {1: "up", 2: "up", 3: "up", 4: "partitioned" if partitioned else "up"}
        if time == 4.0:
            save(browser, tmp_path, "report-partition.png")


def test_step_and_keys_walk_the_story_and_the_story_follows(pages, browser):
    page = pages / "leader_change_during_transfer.streaming.html"
    records = read_jsonl(page.with_suffix(".jsonl"))
    told = [(r.time, narrate(r)) for r in records if narrate(r) is not None]
    times = sorted({time for time, _ in told})
    browser.open(page)
    browser.evaluate("document.getElementById('step').click()")  # from 0, whose events show at once
    assert page_time(browser) == pytest.approx(times[1], abs=1e-6)
    browser.press("n")
    browser.press("n")
    assert page_time(browser) == pytest.approx(times[3], abs=1e-6)
    current = browser.evaluate("document.querySelector('#story .current').textContent")
    last_at_time = [sentence for time, sentence in told if time == times[3]][-1]
    assert current.endswith(last_at_time)
    future = browser.evaluate("[...document.querySelectorAll('#story .future')].length")
    assert future == sum(1 for time, _ in told if time > times[3])
    browser.press("p")
    assert page_time(browser) == pytest.approx(times[2], abs=1e-6)


def test_play_pause_and_speed(pages, browser):
    browser.open(pages / "large_snapshot.streaming.html")
    assert browser.evaluate("document.getElementById('speed-label').textContent") == "1×"
    browser.press("+")
    browser.press("+")
    assert browser.evaluate("document.getElementById('speed-label').textContent") == "5×"
    browser.press("-")
    assert browser.evaluate("document.getElementById('speed-label').textContent") == "2×"
    browser.evaluate("document.getElementById('play').click()")
    browser.wait_until("+document.body.dataset.time > 0.5")
    browser.press(" ")
    assert browser.evaluate("document.body.dataset.playing") == "false"
    paused_at = page_time(browser)
    browser.wait_until("document.getElementById('play').textContent.includes('play')")
    assert page_time(browser) == paused_at  # paused: the time stays where it stopped


def test_transfer_progress_retries_and_resumes_follow_the_slider(pages, browser, tmp_path):
    page = pages / "leader_change_during_transfer.streaming.html"
    records = read_jsonl(page.with_suffix(".jsonl"))
    [track] = transfers(records)
    assert track.sources == [1, 2] and len(track.resumes) == 1
    browser.open(page)
    for time in (track.progress[2][0], track.resumes[0][0], track.ended_at):
        seek(browser, time)
        done = max(bytes_ for when, bytes_ in track.progress if when <= time)
        text = browser.evaluate("document.querySelector('.transfer').textContent")
        assert text.startswith("n1,n2 -> n4 snapshot 21 (streaming)")
        resumes = sum(1 for when, _, _ in track.resumes if when <= time)
        assert f"{resumes} resumes" in text
        outcome = browser.evaluate("document.querySelector('.transfer').dataset.outcome")
        assert outcome == ("installed" if time >= track.ended_at else "in progress")
        width = browser.evaluate("document.querySelector('.bar > div').style.width")
        assert float(width.rstrip("%")) == pytest.approx(100 * done / track.size, abs=1e-3)
        assert f": {human_bytes(done)} / {human_bytes(track.size)} · " in text
    seek(browser, track.resumes[0][0])
    save(browser, tmp_path, "report-leader-change.png")


def test_a_page_from_the_trace_file_equals_the_page_of_the_run_but_for_memory(pages):
    page = pages / "large_snapshot.embedded.html"
    data = re.search(r'id="run-data">(.*?)</script>', page.read_text(encoding="utf-8"), re.S).group(1)
    from_run = json.loads(data)
    from_file = page_model(read_jsonl(page.with_suffix(".jsonl")), title=from_run["title"])
    assert from_run["memory"] and max(point[1] for point in from_run["memory"]["4"]) > 8_000_000
    assert from_file["memory"] is None
    from_run["memory"] = None
    assert from_file == from_run


def test_a_ten_minute_five_node_run_stays_usable(tmp_path, browser):
    scenario = tmp_path / "ten_minutes.py"
    scenario.write_text(TEN_MINUTES)
    page = tmp_path / "ten.html"
    assert main(["run", str(scenario), "--quiet", "--html", str(page)], out=io.StringIO()) == 0
    assert page.stat().st_size < 2_000_000
    browser.open(page)
    notes = browser.evaluate("document.getElementById('notes').textContent")
    assert "heartbeat and heartbeat_response: 1 in" in notes
    assert browser.evaluate("document.getElementById('window').value") == "2"  # a window, not the whole run
    seek(browser, 230)
    drawn = int(browser.evaluate("document.getElementById('lanes').dataset.drawn"))
    assert 0 < drawn < 500  # only the window's messages are drawn
    rows = node_rows(browser)
    assert [row[-1] for row in rows.values()].count("partitioned") == 1
    seek(browser, 410)
    assert node_rows(browser)[3][-1] == "down"
    save(browser, tmp_path, "report-ten-minutes.png")


def test_a_trace_is_data_never_markup(tmp_path, browser):
    # A hand-edited trace whose texts look like HTML: the page shows them as text.
    lines = [
        '{"t":0.0,"node":1,"seq":1,"kind":"start","term":0,"snapshot_index":0}',
        '{"t":0.5,"node":0,"seq":2,"kind":"say","text":"<img src=x onerror=\\"document.body.dataset.owned=1\\">"}',
        '{"t":1.0,"node":1,"seq":3,"kind":"role","role":"<b>leader</b>","term":1,"leader":1}',
    ]
    trace = tmp_path / "odd.jsonl"
    trace.write_text("\n".join(lines) + "\n")
    page = tmp_path / "odd.html"
    assert main(["replay", str(trace), "--html", str(page)], out=io.StringIO()) == 0
    browser.open(page)
    seek(browser, 1.0)
    assert browser.evaluate("document.body.dataset.owned") is None
    assert browser.evaluate("document.querySelectorAll('#story img, #nodes b').length") == 0
    assert "<img src=x" in browser.evaluate("document.getElementById('story').textContent")
