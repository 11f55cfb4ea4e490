"""Slow motion (simulator.observe.pacing): the same run, shown at a pace, paused and stepped.

The pacer's wall clock, sleep and keys are fakes here: a fake clock that
sleeping moves forward, and keys scripted per poll. So the tests check
*what* the pacer waits for, never how long a real wait took.
"""

from __future__ import annotations

import io
import json

import pytest

from simulator.cli.main import main
from simulator.observe.pacing import SPEEDS, Pacer
from simulator.observe.trace import TraceRecord


class FakeWall:
    """A wall clock that only sleeping (or a key wait) moves."""

    def __init__(self, keys=()) -> None:
        self.now = 100.0
        self.keys = list(keys)  # one entry per key poll: a key, or None for "nothing pressed"
        self.polls = 0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)

    def read(self, timeout: float):
        self.polls += 1
        if self.keys:
            key = self.keys.pop(0)
            if key is None:
                self.now += timeout
            return key
        self.now += timeout
        return None


def record(time: float, kind: str = "commit", node: int = 1, **fields) -> TraceRecord:
    return TraceRecord(time, node, 0, kind, tuple(fields.items()))


def role(time: float) -> TraceRecord:  # a narrated record
    return record(time, "role", role="leader", term=1, leader=1)


def test_each_record_is_held_until_its_virtual_time_is_due_at_the_speed():
    wall = FakeWall()
    pacer = Pacer(0.25, clock=wall.clock, sleep=wall.sleep)
    shown = []
    for time in (0.0, 0.5, 0.5, 2.0):
        pacer(record(time))
        shown.append(wall.now - 100.0)
    assert shown == [0.0, 2.0, 2.0, 8.0]  # virtual seconds / 0.25


def test_space_pauses_until_pressed_again_and_pacing_resumes_from_there():
    # First poll: space (pause). Then three polls with nothing. Then space (resume).
    wall = FakeWall([" ", None, None, None, " "])
    pacer = Pacer(1.0, keys=wall.read, clock=wall.clock)
    pacer(record(0.0))
    pacer(record(1.0))  # waits: space arrives at once, then the paused polls, then space
    assert not pacer.paused and wall.polls >= 5
    resumed_at = wall.now
    pacer(record(2.0))
    # One virtual second after the point it resumed from, not a burst to catch up.
    assert wall.now == pytest.approx(resumed_at + 1.0)


def test_n_steps_to_the_next_narrated_event_and_pauses_before_the_one_after():
    wall = FakeWall([" ", "n"])
    pacer = Pacer(1.0, keys=wall.read, clock=wall.clock)
    pacer(record(0.0))
    pacer(record(1.0))  # paused here, then 'n': steps on
    assert pacer.stepping and not pacer.paused
    pacer(record(1.0))  # not narrated: the step goes on
    pacer(role(1.0))  # narrated: shown, and the pacer stops before the next record
    assert pacer.steps == 1 and not pacer.stepping
    wall.keys = [None, None, " "]
    pacer(record(1.5))
    assert wall.polls >= 5 and not pacer.paused  # it waited, paused, until space


def test_plus_and_minus_step_through_the_speeds():
    wall = FakeWall(["+", "+", "-", "-", "-"])
    changes = []
    pacer = Pacer(1.0, keys=wall.read, clock=wall.clock, on_change=lambda: changes.append(pacer.speed))
    pacer(record(0.0))
    pacer(record(5.0))
    assert changes == [2.0, 5.0, 2.0, 1.0, 0.5]
    assert SPEEDS.index(pacer.speed) == SPEEDS.index(1.0) - 1
    assert "0.5x" in pacer.status


def test_speed_must_be_positive():
    with pytest.raises(ValueError, match="speed must be > 0"):
        Pacer(0)


def _summary(*extra: str) -> dict:
    out = io.StringIO()
    assert main(["run", "leader_change_during_transfer", "--mode", "streaming", "--json", *extra], out=out) == 0
    return json.loads(out.getvalue())


def test_a_paced_run_is_the_same_run():
    plain = _summary()
    paced = _summary("--realtime", "--speed", "1000")
    assert paced["trace_sha256"] == plain["trace_sha256"]
    assert paced == plain


@pytest.mark.parametrize("speed", ["0", "-1", "fast", "5000"])
def test_a_bad_speed_is_one_line_and_exit_code_2(speed, capsys):
    assert main(["run", "basic", "--speed", speed]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--speed" in err


def test_keys_pause_step_and_resume_a_live_run_on_a_real_terminal():
    """raftsim on a pseudo-terminal: space pauses (the header says so), n steps, space resumes."""
    import os
    import pty
    import select
    import subprocess
    import sys

    main_fd, child_fd = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "simulator", "run", "basic", "--speed", "2"],
                               stdin=child_fd, stdout=child_fd, stderr=child_fd, close_fds=True)
    os.close(child_fd)
    seen = b""

    def read_until(text: bytes, since: int = 0) -> int:
        """Read until ``text`` shows after position ``since``; the position after it."""
        nonlocal seen
        while text not in seen[since:]:
            ready, _, _ = select.select([main_fd], [], [], 60)  # a bound on a hung run, not a timing
            assert ready, f"no {text!r} on the terminal; last output: {seen[-500:]!r}"
            try:
                chunk = os.read(main_fd, 65536)
            except OSError:
                chunk = b""
            assert chunk, f"the run ended before {text!r}: {seen[-500:]!r}"
            seen += chunk
        return seen.index(text, since) + len(text)

    try:
        at = read_until(b"space pauses")  # the live view's first frame, with the pacer's state
        os.write(main_fd, b" ")
        at = read_until(b"paused at 2x", at)
        os.write(main_fd, b"+")
        at = read_until(b"paused at 5x", at)
        os.write(main_fd, b"n")  # one narrated event, then paused again
        at = read_until(b"5x virtual time", at)
        at = read_until(b"paused at 5x", at)
        os.write(main_fd, b" ")
        at = read_until(b"trace sha256", at)
        read_until(b"\n", at)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(main_fd)
    _, plain = _plain_basic()
    assert plain in seen.decode("utf-8", "replace")


def _plain_basic() -> tuple[int, str]:
    out = io.StringIO()
    code = main(["run", "basic", "--json"], out=out)
    return code, json.loads(out.getvalue())["trace_sha256"]
