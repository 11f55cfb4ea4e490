"""One node OS process of a real-network run: start it, kill it (-9), start it again, read its events.

Each node runs ``python -m transports.grpc.node`` with its own data
directory, and with ``grpc_proxy`` in its environment pointing at its
egress proxy (:mod:`transports.proxy`), so every connection it opens to a
peer passes through a link the run controls. Its standard error (one line
per named event, see ``transports.grpc.events``) goes to a log file in the
run's directory; :meth:`NodeProcess.new_events` reads what was added since
the last call, so the run can tell what the node did.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import attrs

#: ``2026-12-02 14:15:20,845 node 1 role changed: follower in term 1, leader 3``
_LINE = re.compile(r"^(?P<when>\S+ \S+) node (?P<node>\d+) (?P<rest>.*)$")


@attrs.define(eq=False)
class NodeProcess:
    """See the module docstring. ``flags`` are the node's command-line flags but ``--join``."""

    node_id: int
    address: str
    data_dir: Path
    flags: list[str]
    env: dict[str, str]
    log_path: Path
    event_names: tuple[str, ...]
    joins: bool = False  # started outside the cluster, to be added (``--join``), every time
    process: subprocess.Popen | None = None
    starts: int = 0
    _log_offset: int = 0
    _partial: bytes = b""

    @property
    def is_up(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> None:
        """Start the process (again: the same data directory, so it continues where it was)."""
        if self.is_up:
            raise RuntimeError(f"node {self.node_id} is already running (pid {self.process.pid})")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "transports.grpc.node", *self.flags, *(["--join"] if self.joins else [])]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                            env=self.env)
        self.starts += 1

    def kill(self) -> None:
        """``kill -9``: no goodbye, no flush; what was not on disk is lost."""
        if self.is_up:
            self.process.send_signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait()

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM and wait (then SIGKILL if it does not go); its exit code."""
        if self.process is None:
            return None
        if self.is_up:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def memory(self) -> tuple[int, int]:
        """(resident bytes now, peak resident bytes) of the running process; (0, 0) if down."""
        if not self.is_up:
            return 0, 0
        fields = {}
        try:
            with open(f"/proc/{self.process.pid}/status", encoding="ascii") as status:
                for line in status:
                    name, _, value = line.partition(":")
                    if name in ("VmRSS", "VmHWM"):
                        fields[name] = int(value.split()[0]) * 1024
        except OSError:
            return 0, 0
        return fields.get("VmRSS", 0), fields.get("VmHWM", 0)

    def new_events(self) -> list[tuple[float | None, str, str]]:
        """``(when, event name, detail)`` for each event line the node logged since the last call;
        ``when`` is the line's own time stamp (seconds since the epoch; milliseconds), if readable."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self._log_offset)
                data = log.read()
        except OSError:
            return []
        self._log_offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()  # an unfinished last line waits for the rest
        events = []
        for raw in lines:
            match = _LINE.match(raw.decode("utf-8", "replace"))
            if match is None or int(match["node"]) != self.node_id:
                continue
            rest = match["rest"]
            for name in self.event_names:
                if rest == name or rest.startswith(name + ": "):
                    events.append((_when(match["when"]), name, rest[len(name) + 2:]))
                    break
        return events

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _when(stamp: str) -> float | None:
    try:  # logging's asctime: local time, milliseconds after a comma
        return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
    except ValueError:
        return None


def node_environment(egress: str | None) -> dict[str, str]:
    """The environment of a node process whose gRPC connections go through ``egress`` (or directly)."""
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("no_proxy", "http_proxy", "https_proxy", "grpc_proxy")}
    if egress is not None:
        env["grpc_proxy"] = f"http://{egress}"
    env["PYTHONUNBUFFERED"] = "1"
    repo = str(Path(__file__).resolve().parent.parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [repo, env.get("PYTHONPATH")]))
    return env


def sorted_event_names(names) -> tuple[str, ...]:
    """Longest first, so ``transfer resumed`` is not read as a shorter name it starts with."""
    return tuple(sorted(set(names), key=len, reverse=True))
