"""What a real-network run sees of its node processes: their status, their events, their memory.

Theory of operation. The run cannot look inside a node process the way the
simulator looks inside its nodes. It looks from outside, every
``POLL_SECONDS``: each running node's control service answers ``Status``
(role, term, commit, applied, transfers), each node's log file yields the
event lines written since the last look, and ``/proc`` tells the process's
resident memory. Events become trace records with the simulator's kinds
where one exists (``role``, ``transfer_started``, ``transfer_resumed``,
``transfer_retry``, ``snapshot_installed``, ``snapshot_created``), so the
story is narrated as in the simulator and scenarios find what they look
for; times are wall seconds since the run began, as seen by the run.
"""

from __future__ import annotations

import re

import trio

from ..observe.trace import NODE, Trace
from .transfers import TransferBook

POLL_SECONDS = 0.05

_ROLE = re.compile(r"^(\w+) in term (\d+), leader (\d+|unknown)")
_STARTED = re.compile(r"^snapshot (\d+) \((\d+) bytes\) from node (\d+)")
_RESUMED = re.compile(r"^snapshot (\d+) from node (\d+): (\d+) of (\d+) bytes kept from before")
_RETRY = re.compile(r"^snapshot (\d+) from node (\d+)\b.*?\bat offset (\d+)")
_INSTALLED = re.compile(r"^snapshot (\d+) \((\d+) bytes")
_CREATED = re.compile(r"^index (\d+), (\d+) bytes")
#: Events after which a receiver asks again from its verified offset (the offset is in the line).
_RETRY_EVENTS = ("stream cut", "peer unreachable", "checksum failed", "chunk refused")


class Observer:
    """Looks at the cluster's processes; see the module docstring."""

    def __init__(self, cluster, trace: Trace, mode: str) -> None:
        self.cluster = cluster
        self.trace = trace
        self.transfers = TransferBook(mode)
        self.statuses: dict[int, object] = {}
        #: node -> (resident bytes when first seen, most resident bytes seen)
        self.memory: dict[int, tuple[int, int]] = {}
        self.looks = 0
        #: When a node last applied something new (wall seconds since the run began).
        self.last_progress = 0.0
        self._applied: dict[int, int] = {}
        self._attempts: dict[int, int] = {}
        self._looked = trio.Event()

    async def wait_for_look(self) -> None:
        """Return after the next complete look at every node."""
        await self._looked.wait()

    async def wait_for_fresh_look(self) -> None:
        """Return after a complete look that began after this call (the next one may have begun before)."""
        for _ in range(2):
            await self._looked.wait()

    async def run(self) -> None:
        while True:
            await self.look()
            await trio.sleep(POLL_SECONDS)

    async def look(self) -> None:
        cluster = self.cluster
        up = [node for node in cluster.node_ids if cluster.is_up(node)]
        statuses = await trio.to_thread.run_sync(self._statuses, up)
        now = cluster.now()
        for node_id in cluster.node_ids:
            process = cluster.processes[node_id]
            for when, name, detail in process.new_events():
                # Transfers are timed by the node's own stamps (finer than a look); the trace by the look.
                self.transfers.observe_event(node_id, name, detail, cluster.since_start(when) if when else now)
                self._event(node_id, name, detail)
            status = statuses.get(node_id)
            self.statuses[node_id] = status if cluster.is_up(node_id) else None
            if status is not None:
                self.transfers.observe_status(node_id, status, now)
                if status.applied > self._applied.get(node_id, 0):
                    self._applied[node_id] = status.applied
                    self.last_progress = now
            resident, peak = process.memory()
            if resident and status is not None:  # from when it serves: start-up imports are not its data
                first, most = self.memory.get(node_id, (resident, 0))
                self.memory[node_id] = (first, max(most, peak))
        self.looks += 1
        looked, self._looked = self._looked, trio.Event()
        looked.set()

    def _statuses(self, nodes: list[int]) -> dict[int, object]:
        found = {}
        for node_id in nodes:
            try:
                found[node_id] = self.cluster.control.status(node_id)
            except Exception:  # noqa: BLE001 - a node starting up or just killed: no status this time
                continue
        return found

    def _event(self, node: int, name: str, detail: str) -> None:
        now = trio.current_time()  # the trace counts from the run's start itself
        record = self.trace.event
        if name == "role changed" and (match := _ROLE.match(detail)):
            role, term, leader = match.groups()
            record(now, node, "role", NODE, role=role, term=int(term),
                   leader=0 if leader == "unknown" else int(leader))
        elif name == "transfer started" and (match := _STARTED.match(detail)):
            index, size, source = (int(group) for group in match.groups())
            record(now, node, "transfer_started", NODE, index=index, size=size, source=source)
        elif name == "transfer resumed" and (match := _RESUMED.match(detail)):
            index, source, offset, size = (int(group) for group in match.groups())
            record(now, node, "transfer_resumed", NODE, index=index, source=source, offset=offset, size=size,
                   reason="kept from before the restart")
        elif name in _RETRY_EVENTS and (match := _RETRY.match(detail)):
            index, source, offset = (int(group) for group in match.groups())
            attempt = self._attempts[node] = self._attempts.get(node, 0) + 1
            record(now, node, "transfer_retry", NODE, index=index, source=source, offset=offset,
                   attempt=attempt, reason=f"{name}: {detail}")
        elif name == "snapshot installed" and (match := _INSTALLED.match(detail)):
            index, size = (int(group) for group in match.groups())
            record(now, node, "snapshot_installed", NODE, index=index, size=size)
        elif name == "snapshot created" and (match := _CREATED.match(detail)):
            index, size = (int(group) for group in match.groups())
            record(now, node, "snapshot_created", NODE, index=index, size=size)
        elif name in ("started", "stopping", "peer unreachable", "garbage from peer", "digest failed",
                      "membership changed", "port in use"):
            record(now, node, "node_event", NODE, event=name, detail=detail)
