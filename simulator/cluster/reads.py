"""Reading from the cluster: linearizable reads through ReadIndex, and a stale local read for teaching.

``await cluster.read(key)`` asks a node (by default the one the client
believes leads) for a ReadIndex read. The node calls ``RawNode.read_index``
with a context unique to the read; when the leader has confirmed it still
leads (a heartbeat round, or its lease), the node gets a ``ReadState(index,
context)`` and answers once its state machine has applied ``index``. The
answer then includes every write acknowledged before the read began — the
:class:`~simulator.checks.reads.ReadChecker` verifies exactly that for every
read. A read whose node lost its leader, crashed or timed out is retried on
the current leader, until the client's timeout.

``cluster.stale_read(key, node)`` answers at once from ``node``'s state
machine, whatever it holds: a partitioned old leader answers with the state
it had when it was cut off. It exists to show what ReadIndex prevents
(``scenarios/stale_read.py``); it is never checked for linearizability.

A state machine is read by key through its ``read(key)`` method if it has
one; the built-in machines are read without one: a ``KeyValueStore`` gives
the value of ``key``, a ``WorkflowExecutor`` the status of workflow ``key``.
"""

from __future__ import annotations

import attrs
import trio

from transports.in_memory import CLIENT

from ..checks.reads import ReadChecker
from ..raft import INVALID_ID, ReadState, Role


class ReadTimeoutError(Exception):
    """A linearizable read was not answered before the client's timeout."""


@attrs.frozen
class ReadResult:
    """A read's answer: ``value`` as of applied index ``applied_index`` >= the read index."""

    value: object
    read_index: int
    applied_index: int
    node_id: int
    attempts: int


class ReadTicket:
    """What a waiting reader holds: filled when the read is served, or failed."""

    def __init__(self) -> None:
        self.done = trio.Event()
        self.read_index = 0
        self.applied_index = 0
        self.node_id = 0
        self.value: object = None
        self.error: str | None = None

    def fail(self, reason: str) -> None:
        if not self.done.is_set():
            self.error = reason
            self.done.set()


@attrs.frozen
class ReadRequest:
    """Inbox item: read ``key`` linearizably at this node; ``context`` names the read in Raft."""

    key: str
    context: bytes
    ticket: object = attrs.field(default=None, eq=False)

    def undeliverable(self, reason: str) -> None:
        if self.ticket is not None:
            self.ticket.fail(reason)


def read_key(machine, key: str):
    """What reading ``key`` from ``machine`` gives; see the module docstring."""
    read = getattr(machine, "read", None)
    if callable(read):
        return read(key)
    get = getattr(machine, "get", None)
    if callable(get):
        return get(key)
    workflows = getattr(machine, "workflows", None)
    if isinstance(workflows, dict):
        workflow = workflows.get(key)
        return None if workflow is None else workflow.status
    raise TypeError(f"{type(machine).__name__} has no read(key) method to read {key!r} with")


@attrs.define(eq=False)
class NodeReads:
    """One node's reads: waiting for the leader's confirmation, then for the apply to catch up."""

    node_id: int
    unconfirmed: dict[bytes, ReadRequest] = attrs.Factory(dict)
    confirmed: list[tuple[int, ReadRequest]] = attrs.Factory(list)

    def request(self, node, request: ReadRequest) -> None:
        raft = node.raft
        if raft.role is not Role.LEADER and raft.leader_id == INVALID_ID:
            request.ticket.fail(f"node {self.node_id} knows no leader to confirm the read")
            return
        self.unconfirmed[request.context] = request
        node.read_index(request.context)

    def ready(self, read_states: tuple[ReadState, ...], machine) -> None:
        """``Ready.read_states`` arrived (after the same Ready's entries were applied)."""
        for state in read_states:
            request = self.unconfirmed.pop(state.request_ctx, None)
            if request is not None:
                request.ticket.read_index = state.index
                self.confirmed.append((state.index, request))
        self.serve(machine)

    def serve(self, machine) -> None:
        """Answer every confirmed read whose index the state machine has applied."""
        if not self.confirmed or machine is None:
            return
        applied = machine.applied_index
        waiting = []
        for index, request in self.confirmed:
            if index > applied:
                waiting.append((index, request))
                continue
            ticket = request.ticket
            ticket.value = read_key(machine, request.key)
            ticket.applied_index = applied
            ticket.node_id = self.node_id
            ticket.done.set()
        self.confirmed = waiting

    def lost_leader(self) -> None:
        """A role change: reads not yet confirmed may never be (the leader they went to is gone)."""
        for request in self.unconfirmed.values():
            request.ticket.fail(f"node {self.node_id} changed role before the read was confirmed")
        self.unconfirmed.clear()

    def crashed(self) -> None:
        self.lost_leader()
        for _, request in self.confirmed:
            request.ticket.fail(f"node {self.node_id} crashed before serving the read")
        self.confirmed.clear()


class ReadsMixin:
    """The reading half of :class:`~simulator.cluster.Cluster`; see the module docstring."""

    @property
    def read_checker(self) -> ReadChecker:
        checker = getattr(self, "_read_checker", None)
        if checker is None:
            checker = self._read_checker = ReadChecker(self.monitor.violation)
        return checker

    async def read(
        self, key: str, *, node: int | None = None, timeout: float = 10.0, client=None
    ) -> ReadResult:
        """Read ``key`` linearizably (ReadIndex) at ``node`` (default: the leader), retrying on the leader.

        ``client`` (default: the default client) orders reads due in the same
        instant, as it orders commands; give each concurrent task its own.
        """
        client = client or self._default_client
        started_after = self.read_checker.read_started()
        op_id = self.history.invoke(client.client_id, "read", key, at=self.now())
        deadline = trio.current_time() + timeout
        attempts = 0
        problem = "no leader was known"
        target = node
        while trio.current_time() < deadline:
            via = target if target is not None else self.leader_id()
            target = None  # a retry goes to the leader
            if via is None:
                await self._wait_for_change(deadline)
                continue
            attempts += 1
            client._check_single_task()
            client._sequence += 1
            ticket = ReadTicket()
            context = b"read-%d-%d" % (client.client_id, client._sequence)
            self.transport.schedule(
                via, trio.current_time(), ReadRequest(key, context, ticket),
                kind=CLIENT, order=(client.client_id, client._sequence),
            )
            # A read can be lost without a word (its leader deposed, its answer of a
            # stale term dropped): give each attempt an election timeout or two.
            with trio.move_on_at(min(deadline, trio.current_time() + self._read_attempt_timeout())):
                await ticket.done.wait()
            if not ticket.done.is_set():
                problem = f"node {via} had not answered"
                continue
            if ticket.error is None:
                result = ReadResult(
                    ticket.value, ticket.read_index, ticket.applied_index, ticket.node_id, attempts
                )
                self.read_checker.read_served(
                    node_id=via, key=key, started_after=started_after,
                    read_index=result.read_index, applied_index=result.applied_index,
                )
                self.history.completed(op_id, at=self.now(), result=result.value, node_id=result.node_id)
                return result
            problem = ticket.error
            await trio.sleep(self.tick_interval)
        self.history.failed(op_id, at=self.now(), reason=problem)  # a read changes nothing
        raise ReadTimeoutError(
            f"read of {key!r} not answered within {timeout} s after {attempts} attempt(s); "
            f"last problem: {problem}"
        )

    def _read_attempt_timeout(self) -> float:
        ticks = max(runner.config.election_tick for runner in self.runners.values())
        return 2 * ticks * self.tick_interval

    def stale_read(self, key: str, node: int):
        """``key`` as ``node``'s state machine holds it now: may be stale (see the module docstring)."""
        value = read_key(self.state_machine(node), key)
        now = self.now()
        op_id = self.history.invoke(0, "stale_read", key, at=now)
        self.history.completed(op_id, at=now, result=value, node_id=node)
        return value


__all__ = [
    "NodeReads", "ReadRequest", "ReadResult", "ReadTicket", "ReadTimeoutError", "ReadsMixin", "read_key",
]
