"""The command line's teaching options: ``--realtime``/``--speed`` pacing and ``--html`` pages.

``--realtime`` no longer runs on the wall clock: the run stays on virtual
time (same events, same trace hash as without it) and a
:class:`~simulator.observe.pacing.Pacer` shows it at ``--speed`` virtual
seconds per wall second (``--speed`` alone implies ``--realtime``). With
the live view on a terminal, keys steer it: space pauses, ``n`` steps to
the next narrated event, ``+``/``-`` change the speed.

``--html FILE`` writes the run (``run``) or a recorded trace (``replay``)
as one self-contained page (:mod:`simulator.observe.html`).
"""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack

from .errors import UsageError


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of virtual seconds per wall second, got {text!r}") from None
    if not 0 < value <= 1000:
        raise argparse.ArgumentTypeError(f"expected a speed above 0 and at most 1000, got {text!r}")
    return value


def add_speed_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--speed", type=_speed, metavar="X",
                        help="with --realtime: X virtual seconds per wall second, e.g. 0.25 (implies --realtime; "
                             "default 1)")


def add_html_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--html", metavar="FILE.html",
                        help="also write the run as one self-contained HTML page (slider, lanes, logs, story)")


def speed_of(args) -> float | None:
    """The pacing speed the options ask for, or None for a run as fast as it goes."""
    speed = getattr(args, "speed", None)
    if speed is not None:
        return speed
    return 1.0 if getattr(args, "realtime", False) else None


class Slowdown:
    """Paces one run when asked to (see the module docstring); a context manager around it."""

    def __init__(self, speed: float | None, *, interactive: bool) -> None:
        self.speed = speed
        self.interactive = interactive
        self._stack = ExitStack()
        self._keys = None
        self.pacer = None

    def __enter__(self) -> Slowdown:
        if self.speed is not None and self.interactive:
            from simulator.observe.pacing import TerminalKeys

            self._keys = self._stack.enter_context(TerminalKeys(sys.stdin))
        return self

    def __exit__(self, *exc_info) -> None:
        self._stack.close()

    def attach(self, cluster, view=None) -> None:
        """Pace ``cluster``'s trace; ``view`` (a LiveView) shows the pacer's state."""
        if self.speed is None:
            return
        from simulator.observe.pacing import Pacer

        keys = self._keys if self._keys is not None and self._keys.interactive else None

        def changed() -> None:
            if view is not None:
                view.status = self.pacer.status
                view.redraw()

        self.pacer = Pacer(self.speed, keys=keys, on_change=changed)
        if view is not None and keys is not None:
            view.status = self.pacer.status
        # First of the listeners: the pace holds each event before anyone tells it.
        cluster.trace.listeners.insert(0, self.pacer)


def check_html(args) -> None:
    """Refuse, before the run, a page the run could not write at its end."""
    path = getattr(args, "html", None)
    if path is None:
        return
    from pathlib import Path

    target = Path(path)
    if target.is_dir():
        raise UsageError(f"--html {path} is a folder; expected a file name")
    if not target.parent.is_dir():
        raise UsageError(f"--html {path}: folder {str(target.parent)!r} does not exist")


def write_page(path: str, source, title: str, *, from_file: bool = False) -> None:
    """Write ``source`` (a cluster or records) as a page; one line on stderr says where and how big.

    ``from_file``: the records come from a trace file, which may have been
    edited; fields of the wrong kinds are bad input (one line), not a bug.
    """
    from simulator.observe.html import write_html
    from simulator.observe.narration import human_bytes

    try:
        size = write_html(source, path, title=title)
    except OSError as error:
        raise UsageError(f"--html {path}: cannot write it: {error.strerror or error}") from None
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as error:
        if not from_file:
            raise
        raise UsageError(f"--html {path}: the trace's fields are not as raftsim writes them "
                         f"({type(error).__name__}: {error})") from None
    print(f"raftsim: wrote {path} ({human_bytes(size)}); open it in a browser", file=sys.stderr)
