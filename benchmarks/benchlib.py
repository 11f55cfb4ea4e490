"""What every benchmark script shares: the machine it ran on, clocks, memory peaks, a table, JSON.

Figures on a shared 2-core machine are noisy, so every script measures a
baseline in the same run, on the same data, and reports each figure beside
it and as a ratio. Memory peaks that must not carry over from one size to
the next are measured in a fresh child process (:func:`run_child`): the
child prints one JSON object on its last line of stdout.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def machine() -> dict:
    """What the figures were measured on (they mean little without it)."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PHYS_PAGES") * PAGE_SIZE
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_bytes": memory,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
    }


class Stopwatch:
    """Wall seconds (``perf_counter``) and CPU seconds of a block.

    CPU seconds are user + system time of this process (``process_time``:
    the sum ``os.times`` gives, at a finer resolution than its clock ticks).
    """

    def __enter__(self) -> Stopwatch:
        self._cpu = time.process_time()
        self._wall = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu


def current_rss() -> int:
    """Resident bytes of this process now (``/proc/self/statm``)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE


def peak_rss() -> int:
    """The most resident bytes this process had since :func:`reset_peak_rss` (or its start).

    Read from ``VmHWM`` in ``/proc/self/status``; ``getrusage``'s ``ru_maxrss``
    would do in a fresh process, except that Linux carries the parent's peak
    across ``exec``, so a child of a big parent starts with the parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * KIB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * KIB


def reset_peak_rss() -> bool:
    """Make the peak resident set equal to the current one (Linux 4.0+); False if it cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def run_child(script: str, *args: str) -> dict:
    """Run ``script`` (in this folder) in a fresh interpreter; return the JSON of its last line."""
    command = [sys.executable, str(Path(__file__).with_name(script)), *map(str, args)]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(
            f"benchmark child {' '.join(command[1:])} failed with exit code {completed.returncode}:\n"
            f"{completed.stderr.strip()[-2000:]}"
        )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def ratio(value: float, baseline: float) -> float | None:
    return value / baseline if baseline else None


def mib(count: float) -> str:
    return f"{count / MIB:,.1f} MiB"


def size_label(count: int) -> str:
    for unit, name in ((GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")):
        if count >= unit and count % unit == 0:
            return f"{count // unit} {name}"
    return f"{count} B"


def parse_size(text: str) -> int:
    """``16MiB``, ``1GiB``, ``256KiB`` or plain bytes."""
    units = {"kib": KIB, "mib": MIB, "gib": GIB, "k": KIB, "m": MIB, "g": GIB, "b": 1}
    lowered = text.strip().lower()
    for suffix in sorted(units, key=len, reverse=True):
        if lowered.endswith(suffix):
            number = lowered[: -len(suffix)].strip()
            if number.isdigit():
                return int(number) * units[suffix]
            break
    if lowered.isdigit():
        return int(lowered)
    raise ValueError(f"a size like 16MiB, 1GiB, 256KiB or a number of bytes expected, got {text!r}")


def print_table(title: str, columns: list[str], rows: list[list[str]], note: str | None = None) -> None:
    table = Table(title=title, title_justify="left")
    for number, column in enumerate(columns):
        table.add_column(column, justify="left" if number == 0 else "right")
    for row in rows:
        table.add_row(*row)
    console = Console(width=max(120, Console().width))
    console.print(table)
    if note:
        console.print(note)


def write_json(path: str | None, benchmark: str, command: list[str], results: dict) -> None:
    """Write the results with the machine and the command that produced them."""
    if path is None:
        return
    payload = {
        "benchmark": benchmark,
        "command": " ".join(["python", *command]),
        "machine": machine(),
        "results": results,
    }
    Path(path).write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
