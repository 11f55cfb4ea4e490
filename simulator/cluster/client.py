"""Talking to the cluster as a client: proposals, waiting, membership, liveness.

A client sends each command to the node it believes leads, waits until the
entry is applied there, and on any failure (not the leader, leadership lost,
node crashed, entry overwritten) looks for the leader again and retries,
until its timeout. Delivery is at least once: a retried command whose first
attempt did commit is applied twice, as with any Raft client that does not
deduplicate.

Determinism with several clients: commands due at the same virtual instant
are ordered by ``(client id, client counter)``. Give each concurrent task
its own :meth:`ClientMixin.client`; the default client refuses to be used
by two tasks in the same instant rather than let trio's scheduling decide.
"""

from __future__ import annotations

import attrs
import trio

from transports.in_memory import CLIENT

from ..checks.history import OperationLog
from ..observe.trace import CLUSTER, SCENARIO
from ..raft import ConfChange, ConfChangeTransition, ConfChangeType, ConfChangeV2
from .node import ClientCommand, ProposalTicket


class ProposalTimeoutError(Exception):
    """A command was not applied before the client's timeout."""


class LivenessError(AssertionError):
    """The cluster did not settle (leader elected, everything applied) in time."""


@attrs.frozen
class ProposalResult:
    index: int
    term: int
    node_id: int
    result: str | None
    attempts: int


class Client:
    """One client of the cluster, with its own identity for ordering; see the module docstring."""

    def __init__(self, cluster, client_id: int) -> None:
        self.cluster = cluster
        self.client_id = client_id
        self._sequence = 0
        self._last_submit: tuple[float, object] | None = None

    def _check_single_task(self, now: float | None = None) -> None:
        if now is None:
            now = trio.current_time()
        task = trio.lowlevel.current_task()
        last = self._last_submit
        if last is not None and last[0] == now and last[1] is not task:
            raise RuntimeError(
                f"client {self.client_id} was used by two tasks in the same instant; their "
                "order would be up to trio's scheduler. Give each task cluster.client(n)."
            )
        self._last_submit = (now, task)

    async def propose(self, command: bytes, *, timeout: float = 10.0) -> ProposalResult:
        """Apply ``command`` through the leader; raises ``ProposalTimeoutError`` after ``timeout``."""
        return await self._submit(ClientCommand(data=bytes(command)), timeout, "command")

    async def propose_conf_change(
        self, change: ConfChange | ConfChangeV2, *, timeout: float = 10.0
    ) -> ProposalResult:
        return await self._submit(ClientCommand(conf_change=change), timeout, repr(change))

    async def _submit(self, command: ClientCommand, timeout: float, what: str) -> ProposalResult:
        cluster = self.cluster
        transport = cluster.transport
        # Virtual time stands still between awaits: read once per step.
        now = trio.current_time()
        deadline = now + timeout
        attempts = 0
        problem = "no leader was known"
        kind, argument = ("command", command.data) if command.conf_change is None else ("membership", what)
        op_id = cluster.history.invoke(self.client_id, kind, argument, at=cluster.now())
        while now < deadline:
            leader = cluster.leader_id()
            if leader is None:
                await cluster._wait_for_change(deadline)
                now = trio.current_time()
                continue
            self._check_single_task(now)
            ticket = ProposalTicket()
            self._sequence += 1
            attempts += 1
            transport.schedule(
                leader,
                now,
                ClientCommand(command.data, command.conf_change, ticket),
                kind=CLIENT,
                order=(self.client_id, self._sequence),
            )
            # The transport keeps the deadline: no trio cancel scope per attempt.
            if not await transport.alarms.wait_done(ticket.done, deadline):
                problem = f"node {leader} had not applied it yet"
                break
            if ticket.error is None:
                # Reads that begin from now on must see this write (ReadChecker).
                checker = getattr(cluster, "read_checker", None)
                if checker is not None:
                    checker.write_acknowledged(ticket.index)
                cluster.history.completed(op_id, at=cluster.now(), result=ticket.result, node_id=ticket.node_id)
                return ProposalResult(ticket.index, ticket.term, ticket.node_id, ticket.result, attempts)
            problem = ticket.error
            # Give the cluster a tick to elect or settle before trying again.
            await trio.sleep(cluster.tick_interval)
            now = trio.current_time()
        if attempts:  # an attempt may have committed after all
            cluster.history.unknown(op_id, reason=problem)
        else:
            cluster.history.failed(op_id, at=cluster.now(), reason=problem)
        raise ProposalTimeoutError(
            f"{what} not applied within {timeout} s after {attempts} attempt(s); last problem: {problem}"
        )


class ClientMixin:
    """The client-facing half of :class:`~simulator.cluster.Cluster`."""

    # -- which nodes there are (``self.runners``: node id -> a runner with ``is_up``) ------

    @property
    def node_ids(self) -> list[int]:
        return sorted(self.runners)

    def is_up(self, node_id: int) -> bool:
        return self._runner(node_id).is_up

    def up_nodes(self) -> list[int]:
        return [node_id for node_id in self.node_ids if self.runners[node_id].is_up]

    def _runner(self, node_id: int):
        runner = self.runners.get(node_id)
        if runner is None:
            raise KeyError(f"no node {node_id}; nodes are {self.node_ids}")
        return runner

    def _notify(self) -> None:
        """Something a waiting client may care about changed: wake it (``_wait_for_change``)."""
        self._changed.set()
        self._changed = trio.Event()

    def _init_clients(self) -> None:
        self._default_client = Client(self, 0)
        #: Every client operation, invoked and completed in virtual time (linearizability checks).
        self.history = OperationLog()
        self._clients: dict[int, Client] = {}

    def client(self, client_id: int) -> Client:
        """A client with its own identity (ids >= 1); use one per concurrent task."""
        if client_id < 1:
            raise ValueError(f"client ids are >= 1 (0 is the default client), got {client_id}")
        return self._clients.setdefault(client_id, Client(self, client_id))

    async def propose(self, command: bytes, *, timeout: float = 10.0) -> ProposalResult:
        """Apply ``command`` through the leader with the default client."""
        return await self._default_client.propose(command, timeout=timeout)

    async def sleep_until(self, deadline: float) -> None:
        """``trio.sleep_until(deadline)``, cheaper: the transport wakes the task (no cancel scope)."""
        await self.transport.alarms.sleep_until(deadline)

    async def _wait_for_change(self, deadline: float) -> None:
        """Sleep until a node changes role, or a tick passes, or ``deadline``."""
        with trio.move_on_at(min(deadline, trio.current_time() + self.tick_interval)):
            await self._changed.wait()

    async def wait_until(self, predicate, *, timeout: float, what: str) -> None:
        """Re-check ``predicate()`` every tick until it holds; ``LivenessError`` after ``timeout``."""
        deadline = trio.current_time() + timeout
        while not predicate():
            if trio.current_time() >= deadline:
                raise LivenessError(f"{what} did not happen within {timeout} s")
            await self._wait_for_change(deadline)

    async def wait_for_leader(self, *, timeout: float = 10.0) -> int:
        await self.wait_until(lambda: self.leader_id() is not None, timeout=timeout, what="a leader")
        return self.leader_id()

    def _caught_up(self, node_ids) -> bool:
        leader = self.leader_id()
        if leader is None:
            return False
        commit = self.runners[leader].node.raft.raft_log.committed
        return all(
            self.runners[n].is_up and self.runners[n].node.raft.raft_log.applied >= commit
            for n in node_ids
        )

    async def wait_caught_up(self, node_ids=None, *, timeout: float = 10.0) -> None:
        """Wait until ``node_ids`` (default: all live members) applied the leader's commit index."""
        ids = list(node_ids) if node_ids is not None else self._live_members()
        await self.wait_until(
            lambda: self._caught_up(ids), timeout=timeout, what=f"nodes {ids} catching up"
        )

    def members(self) -> list[int]:
        """Nodes in the configuration as the leader sees it (all but removed ones, with no leader).

        A node whose join never committed runs but is not a member: nobody
        sends it anything, so it is not expected to catch up.
        """
        leader = self.leader_id()
        if leader is None:
            return [n for n in self.node_ids if n not in self._removed]
        configured = set(self.runners[leader].node.raft.prs.conf_state.members)
        return [n for n in self.node_ids if n in configured and n not in self._removed]

    def _live_members(self) -> list[int]:
        return [n for n in self.members() if self.runners[n].is_up and not self.is_paused(n)]

    # -- membership ---------------------------------------------------------------

    async def add_node(self, *, promote: bool = True, timeout: float = 30.0) -> int:
        """Start an empty node, add it as a learner, let it catch up, then promote it.

        It catches up from the leader's log, or by snapshot if the log was
        compacted past what it needs. Returns the new node's id.
        """
        node_id = max(self.runners) + 1
        self._create_node(node_id, self.bootstrap_conf_state)
        self.trace.event(trio.current_time(), CLUSTER, "node_added", SCENARIO, node_id=node_id)
        self._spawn(node_id)
        await self._default_client.propose_conf_change(
            ConfChange(ConfChangeType.ADD_LEARNER_NODE, node_id), timeout=timeout
        )
        await self.wait_caught_up([node_id], timeout=timeout)
        if promote:
            await self._default_client.propose_conf_change(
                ConfChange(ConfChangeType.ADD_NODE, node_id), timeout=timeout
            )
        return node_id

    async def remove_node(self, node_id: int, *, timeout: float = 30.0) -> None:
        """Remove ``node_id`` from the membership (the leader included), then stop it."""
        self._runner(node_id)
        await self._default_client.propose_conf_change(
            ConfChange(ConfChangeType.REMOVE_NODE, node_id), timeout=timeout
        )
        if self.runners[node_id].is_up:
            self.crash(node_id)
        self._removed.add(node_id)
        self.trace.event(trio.current_time(), CLUSTER, "node_removed", SCENARIO, node_id=node_id)

    async def change_membership(
        self, *, add=0, remove=(), leave: bool = True, timeout: float = 30.0
    ) -> list[int]:
        """Add and remove several members at once, through a joint configuration.

        ``add`` is a number of new nodes, or the ids to give them. They start
        empty, join as learners one by one and catch up (by snapshot if the
        log was compacted); then one ``ConfChangeV2`` makes them voters and
        removes ``remove``: the cluster enters a joint configuration, where
        every decision needs a majority of the old voters and of the new ones.
        With ``leave=True`` the leader leaves it on its own once it is applied
        and the call returns when it has; removed nodes (the leader too: it
        hands over first) are then stopped. With ``leave=False`` the call
        returns in the joint configuration, which lasts until
        :meth:`leave_joint`. Returns the new ids.
        """
        new_ids = list(range(max(self.runners) + 1, max(self.runners) + 1 + add)) if isinstance(
            add, int) else sorted(add)
        taken = sorted(set(new_ids) & set(self.runners))
        if taken:
            raise ValueError(f"nodes {taken} exist already; add takes a count or new node ids")
        members = set(self.members())
        strangers = sorted(set(remove) - members)
        if strangers:
            raise ValueError(f"nodes {strangers} are not members; members are {sorted(members)}")
        for node_id in new_ids:
            self._create_node(node_id, self.bootstrap_conf_state)
            self.trace.event(trio.current_time(), CLUSTER, "node_added", SCENARIO, node_id=node_id)
            self._spawn(node_id)
        for node_id in new_ids:
            await self._default_client.propose_conf_change(
                ConfChange(ConfChangeType.ADD_LEARNER_NODE, node_id), timeout=timeout
            )
        if new_ids:
            await self.wait_caught_up(new_ids, timeout=timeout)
        leader = self.leader_id()
        voters = set(self.runners[leader].node.raft.prs.conf_state.voters) if leader else set()
        self._joint_target = (tuple(sorted((voters | set(new_ids)) - set(remove))), tuple(sorted(remove)))
        transition = ConfChangeTransition.AUTO if leave else ConfChangeTransition.EXPLICIT
        await self._default_client.propose_conf_change(
            ConfChangeV2.of(add=new_ids, remove=sorted(remove), transition=transition), timeout=timeout
        )
        if leave:
            await self._joint_left(timeout)
        return new_ids

    async def leave_joint(self, *, timeout: float = 30.0) -> None:
        """Leave the joint configuration ``change_membership(leave=False)`` entered; stop removed nodes."""
        if getattr(self, "_joint_target", None) is None:
            raise RuntimeError("no joint configuration to leave: call change_membership(leave=False) first")
        await self._default_client.propose_conf_change(ConfChangeV2(), timeout=timeout)
        await self._joint_left(timeout)

    async def _joint_left(self, timeout: float) -> None:
        expected, removed = self._joint_target

        def settled() -> bool:
            now = self.leader_id()
            conf = self.runners[now].node.raft.prs.conf_state if now else None
            return conf is not None and not conf.is_joint and conf.voters == expected

        await self.wait_until(settled, timeout=timeout, what=f"the joint configuration left for {expected}")
        self._joint_target = None
        for node_id in removed:
            if self.runners[node_id].is_up:
                self.crash(node_id)
            self._removed.add(node_id)
            self.trace.event(trio.current_time(), CLUSTER, "node_removed", SCENARIO, node_id=node_id)

    # -- liveness -----------------------------------------------------------------

    async def check_liveness(self, *, within: float = 10.0, stable_for: float | None = None) -> int:
        """After faults stop: a leader exists and every live member applied its commit index,
        and that stays true for ``stable_for`` seconds.

        ``stable_for`` defaults to the longest election timeout: a leader that
        lost its quorum steps down within it, so a cut-off leader cannot pass
        for a healthy one. Returns the leader's id, or raises ``LivenessError``
        saying which node is stuck and what it shows.
        """
        if stable_for is None:
            ticks = max(runner.config.election_tick for runner in self.runners.values())
            stable_for = 2 * ticks * self.tick_interval
        deadline = trio.current_time() + max(within, stable_for)
        settled_since = None
        while True:
            now = trio.current_time()
            # Membership can still change (a join that committed late).
            members = self._live_members()
            if self._caught_up(members):
                settled_since = now if settled_since is None else settled_since
                if now - settled_since >= stable_for:
                    return self.leader_id()
            else:
                settled_since = None
            if now >= deadline:
                raise LivenessError(self._diagnose(members, within))
            await self._wait_for_change(deadline)

    def _diagnose(self, members: list[int], within: float) -> str:
        leader = self.leader_id()
        lines = [f"the cluster did not settle within {within} s of virtual time"]
        if leader is None:
            lines.append("no node is leader")
        commit = self.runners[leader].node.raft.raft_log.committed if leader else None
        for node_id in members:
            raft = self.runners[node_id].node.raft
            blocked = [
                f"{a}->{b}" for a, b in self.transport.blocked_links if node_id in (a, b)
            ]
            state = (
                f"n{node_id}: {raft.role.value} term {raft.term} commit {raft.raft_log.committed} "
                f"applied {raft.raft_log.applied} leader {raft.leader_id or 'unknown'}"
            )
            if commit is not None and raft.raft_log.applied < commit:
                state += f" (behind leader commit {commit})"
            if blocked:
                state += f"; blocked links: {' '.join(blocked)}"
            lines.append(state)
        return "\n".join(lines)


__all__ = ["Client", "ClientMixin", "LivenessError", "ProposalResult", "ProposalTimeoutError"]
