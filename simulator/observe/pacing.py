"""Slow motion: a virtual-time run shown at a wall-clock pace, paused and stepped by keys.

``raftsim run --realtime --speed 0.25`` is the *same* run as without it:
the cluster still runs on virtual time (trio's ``MockClock``), so it makes
the same events and the same trace hash. A :class:`Pacer` is only a trace
listener: when the trace publishes a record of virtual time ``t``, it holds
the process until the wall clock reaches ``t / speed`` (since the start, or
since the last change of speed or pause). While it holds, nothing in the
run moves: autojump advances virtual time only when every task waits, and
the pacer blocks the one thread they all run on. So pacing decides *when*
you see each event, never *what* happens.

Keys (read from the terminal without Enter, when there is one): space
pauses and resumes, ``n`` steps to the next narrated event and pauses
again, ``+``/``-`` change the speed through :data:`SPEEDS`. A view may
pass ``on_change`` to show the state (``Pacer.status``).
"""

from __future__ import annotations

import os
import select
import sys
import time
from collections.abc import Callable

from .narration import narrate
from .trace import TraceRecord

#: The speeds ``+`` and ``-`` step through (virtual seconds per wall second).
SPEEDS = (0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 50.0)
#: How often a paused run looks at the keyboard.
POLL_SECONDS = 0.1


def _nearest(speed: float) -> int:
    return min(range(len(SPEEDS)), key=lambda position: abs(SPEEDS[position] - speed))


class Pacer:
    """Paces a run's trace against the wall clock; see the module docstring.

    ``keys(timeout)`` waits up to ``timeout`` wall seconds for a key and
    returns it (or None); without it there are no keys, only pacing.
    ``clock`` and ``keys`` (or ``sleep`` without keys) are the wall clock's
    only users, so tests pass fakes.
    """

    def __init__(
        self,
        speed: float = 1.0,
        *,
        keys: Callable[[float], str | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.speed = speed
        self.paused = False
        self.stepping = False
        self.steps = 0  # narrated events shown by 'n'
        self._keys = keys
        self._clock = clock
        self._sleep = sleep
        self._on_change = on_change
        self._anchor: tuple[float, float] | None = None  # (wall, virtual) pacing counts from
        self._virtual = 0.0
        self._stop_next = False

    @property
    def status(self) -> str:
        if self.paused:
            return f"paused at {self.speed:g}x (space resumes, n steps, +/- speed)"
        return f"{self.speed:g}x virtual time (space pauses, n steps, +/- speed)"

    def __call__(self, record: TraceRecord) -> None:
        """The trace listener: hold until ``record``'s time is due, obeying keys meanwhile."""
        if self._anchor is None:
            self._anchor = (self._clock(), record.time)
        if self._stop_next:  # the step showed its event: pause before the next one
            self._stop_next = False
            self._set_paused(True)
        self._wait_until_due(record.time)
        self._virtual = record.time
        if self.stepping and narrate(record) is not None:
            self.stepping = False
            self.steps += 1
            self._stop_next = True

    def _due(self, virtual: float) -> float:
        wall, start = self._anchor
        return wall + (virtual - start) / self.speed

    def _wait_until_due(self, virtual: float) -> None:
        while True:
            if self.paused:
                self._handle(self._read(POLL_SECONDS))
                continue
            left = self._due(virtual) - self._clock()
            if left <= 0:
                return
            if self._keys is None:
                self._sleep(left)
                continue
            self._handle(self._read(left))

    def _read(self, timeout: float) -> str | None:
        if self._keys is None:
            self._sleep(timeout)
            return None
        return self._keys(timeout)

    def _handle(self, key: str | None) -> None:
        if key is None:
            return
        if key == " ":
            self._set_paused(not self.paused)
        elif key == "n":
            self.stepping = True
            self._set_paused(False)
        elif key in ("+", "="):
            self._set_speed(SPEEDS[min(_nearest(self.speed) + 1, len(SPEEDS) - 1)])
        elif key == "-":
            self._set_speed(SPEEDS[max(_nearest(self.speed) - 1, 0)])

    def _set_paused(self, paused: bool) -> None:
        self.paused = paused
        self._anchor = (self._clock(), self._virtual)  # pacing resumes from here, not from before
        self._changed()

    def _set_speed(self, speed: float) -> None:
        self.speed = speed
        self._anchor = (self._clock(), self._virtual)
        self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()


class TerminalKeys:
    """Single key presses from a terminal, without Enter or echo, for :class:`Pacer`.

    A context manager: it puts the terminal in cbreak mode and restores it.
    Not a terminal (a pipe, a test): it yields no keys and only waits.
    """

    def __init__(self, stream=None) -> None:
        self._stream = stream if stream is not None else sys.stdin
        self._saved = None
        self._fd: int | None = None

    def __enter__(self) -> TerminalKeys:
        try:
            fd = self._stream.fileno()
        except (AttributeError, OSError, ValueError):
            return self
        if not os.isatty(fd):
            return self
        import termios
        import tty

        self._fd = fd
        self._saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
        return self

    def __exit__(self, *exc_info) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    @property
    def interactive(self) -> bool:
        return self._fd is not None

    def __call__(self, timeout: float) -> str | None:
        if self._fd is None:
            time.sleep(timeout)
            return None
        ready, _, _ = select.select([self._fd], [], [], max(timeout, 0.0))
        if not ready:
            return None
        return os.read(self._fd, 1).decode("utf-8", "replace")
