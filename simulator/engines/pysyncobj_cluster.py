"""``PysyncobjCluster``: real pysyncobj nodes under raftsim's transport, faults, checks and trace.

The same shape as :class:`~simulator.Cluster`, so a scenario can run on
either engine::

    async with PysyncobjCluster.open(nodes=3, seed=7) as cluster:
        await cluster.wait_for_leader()
        await cluster.propose(WorkflowExecutor.start("wf-1", ["fetch"]))
        cluster.isolate(cluster.leader_id())

Each node is an unmodified pysyncobj ``SyncObj`` (see
:mod:`~simulator.engines.pysyncobj_adapter` for the few things the
simulation changes around it, and why), ticked with ``doTick(0)`` every
``tick_interval`` of virtual time from the transport's one delivery task.
Network faults, ``at`` and the client API are the native cluster's own
code. What differs, because pysyncobj differs:

- membership: pysyncobj has no learners; :meth:`add_node` adds a voter
  with its dynamic membership change and waits for it to catch up;
- storage: pysyncobj's default keeps the log and snapshot in memory only,
  so a crashed node restarts empty and catches up from the leader;
- compaction: ``CompactionPolicy(every=N)`` becomes pysyncobj's
  ``logCompactionMinEntries=N`` (it also compacts every 300 s by itself);
  ``compact(n)`` asks for one at the node's next tick;
- snapshot transfer is pysyncobj's own, in-band (``mode`` ``pysyncobj``).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import asynccontextmanager

import attrs
import trio

from transports import InMemoryClusterTransport, LinkConfig

from ..checks.invariants import InvariantViolation
from ..cluster.client import ClientMixin, LivenessError
from ..cluster.cluster import Cluster, _first_leaf, _leaves
from ..cluster.node import CompactionPolicy, Tick
from ..machines.state_machines import WorkflowExecutor
from ..observe.trace import CLUSTER, SCENARIO, Trace
from . import pysyncobj_adapter as adapter
from .pysyncobj_adapter import PysyncobjWorkarounds, SimNode
from .pysyncobj_checks import PysyncobjMonitor
from .pysyncobj_runner import PysyncobjRunner
from .pysyncobj_state import syncobj_class_for
from .pysyncobj_transfers import PieceFault, PysyncobjTransfers

#: pysyncobj's own default: compact once the log holds this many entries.
DEFAULT_COMPACTION_ENTRIES = 5000


class PysyncobjCluster(ClientMixin):
    """See the module docstring. Build it with :meth:`open`."""

    engine = "pysyncobj"

    def __init__(
        self,
        *,
        nodes: int = 3,
        seed: int = 0,
        state_machine=WorkflowExecutor,
        link: LinkConfig | None = None,
        tick_interval: float = 0.05,
        compaction: CompactionPolicy = CompactionPolicy(),
        record_messages: bool = True,
        workarounds: PysyncobjWorkarounds = PysyncobjWorkarounds(),
    ) -> None:
        Cluster._check_options(nodes, {"tick_interval": tick_interval})
        self.seed = seed
        self.tick_interval = tick_interval
        self.syncobj_class = syncobj_class_for(state_machine)
        self.compaction_entries = max(2, compaction.every) if compaction.every else DEFAULT_COMPACTION_ENTRIES
        self.workarounds = workarounds
        self.start_time = trio.current_time()
        self.trace = Trace(record_messages=record_messages, start_time=self.start_time)
        self.monitor = PysyncobjMonitor(context=lambda: self.trace.excerpt(15))
        self.transport = InMemoryClusterTransport(seed=seed, link=link)
        self.transport.set_observer(self.trace)
        self.trace.bind_clock(self.transport.current_time)
        self._opening_link = self.transport.default_link
        self.transfers_tracker = PysyncobjTransfers(self)
        self.runners: dict[int, PysyncobjRunner] = {}
        self.members: list[int] = list(range(1, nodes + 1))
        self._memory: dict[int, tuple[int, int]] = {}
        self._paused: dict[int, list] = {}
        self._removed: set[int] = set()
        self._hung: dict[int, str] = {}
        self._changed = trio.Event()
        self._actions: list[tuple[float, int, Callable, tuple]] = []
        self._action_sequence = 0
        self._action_wakeup = trio.Event()
        #: pysyncobj's transfer is its own; this names it where views name the snapshot mode.
        self.snapshot_mode = PysyncobjTransfer()
        self._init_clients()
        for node_id in self.members:
            self.runners[node_id] = PysyncobjRunner(self, node_id)

    @classmethod
    @asynccontextmanager
    async def open(cls, nodes: int = 3, **options):
        """Start ``nodes`` pysyncobj nodes; stop them on exit. Errors reach the caller unwrapped."""
        Cluster._check_options(nodes, options)
        try:
            async with trio.open_nursery() as nursery:
                cluster = cls(nodes=nodes, **options)
                with adapter.engine_session(cluster.transport.current_time):
                    await nursery.start(cluster.transport.serve)
                    nursery.start_soon(cluster._run_actions)
                    for node_id in cluster.node_ids:
                        cluster._spawn(node_id)
                    try:
                        yield cluster
                    finally:
                        cluster.trace.flush()
                        nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            violations = group.subgroup(InvariantViolation)
            if violations is not None:
                raise _first_leaf(violations) from group
            rest = group.subgroup(lambda error: not isinstance(error, trio.Cancelled))
            if rest is not None and len(_leaves(rest)) == 1:
                raise _leaves(rest)[0] from group
            raise

    # -- nodes -----------------------------------------------------------------------

    def _spawn(self, node_id: int) -> None:
        runner = self.runners[node_id]
        runner.start(self.members)
        self.transport.attach(node_id, lambda item: self._deliver(runner, item))
        first_tick = trio.current_time() + runner.syncobj._election_rng.uniform(0, self.tick_interval)
        self.transport.schedule(node_id, first_tick, Tick(runner.incarnation))

    def _deliver(self, runner: PysyncobjRunner, item) -> None:
        backlog = self._paused.get(runner.node_id)
        if backlog is not None:
            backlog.append(item)
            return
        if isinstance(item, Tick):
            if item.incarnation != runner.incarnation:
                return
            self.transport.schedule(runner.node_id, self.transport.current_time() + self.tick_interval, item)
        runner.handle(item)

    def reachable_from(self, node_id: int) -> Callable[[int], bool]:
        """Whether ``node_id`` has a working connection to a peer: link open both ways, peer running."""
        transport = self.transport

        def reachable(peer: int) -> bool:
            return (
                transport.is_attached(peer)
                and not transport.is_blocked(node_id, peer)
                and not transport.is_blocked(peer, node_id)
            )

        return reachable

    def role_changed(self) -> None:
        self._notify()

    def memory_changed(self, node_id: int, held: int) -> None:
        _, peak = self._memory.get(node_id, (0, 0))
        self._memory[node_id] = (held, max(peak, held))

    def node_hung(self, node_id: int, reason: str) -> None:
        """A pysyncobj call on ``node_id`` would never have returned: stop the node, keep the reason."""
        self._hung[node_id] = reason
        self._fault("engine_hung", node_id=node_id, reason=reason)
        self._stop(node_id, f"node {node_id} hung inside pysyncobj")

    def engine_problems(self) -> list[str]:
        """Errors pysyncobj raised and calls that hung, as trace lines (empty when none)."""
        return [
            f"n{record.node} at {record.time:.3f}s: {record.get('error') or record.get('reason')}"
            for record in self.trace.of_kind("engine_error", "engine_hung")
        ]

    def leader_id(self) -> int | None:
        """The running (not paused) leader of the highest term, or ``None``."""
        leaders = [
            (runner.syncobj.raftCurrentTerm, node_id)
            for node_id, runner in sorted(self.runners.items())
            if runner.is_up and node_id not in self._paused and runner.role() == "leader"
        ]
        return max(leaders)[1] if leaders else None

    def syncobj(self, node_id: int):
        """The node's pysyncobj ``SyncObj`` (read-only by convention)."""
        runner = self._runner(node_id)
        if runner.syncobj is None:
            raise RuntimeError(f"node {node_id} is down")
        return runner.syncobj

    def state_machine(self, node_id: int):
        """The node's applied state: the native state machine inside its SyncObj."""
        return self.syncobj(node_id).machine

    def statistics(self, node_id: int):
        """Role, term, leader, commit, applied and log bounds of a running node (native names)."""
        self.syncobj(node_id)
        return self.runners[node_id].statistics()

    def storage(self, node_id: int) -> StorageView:
        """What the node keeps of its snapshot, as views read it (nothing once it crashed)."""
        runner = self._runner(node_id)
        return StorageView(SnapshotView(runner.snapshot_at if runner.is_up else 0))

    def transfers(self):
        """Every snapshot transfer so far, in the order they started (mode ``pysyncobj``)."""
        return self.transfers_tracker.progress()

    def snapshot_memory(self) -> dict[int, tuple[int, int]]:
        """Per node: (serialized snapshot bytes in memory now, the most at any moment)."""
        return {node_id: self._memory.get(node_id, (0, 0)) for node_id in self.node_ids}

    def now(self) -> float:
        return trio.current_time() - self.start_time

    def _fault(self, kind: str, **fields) -> None:
        self.trace.event(trio.current_time(), CLUSTER, "fault", SCENARIO, fault=kind, **fields)

    # -- network faults and scheduled actions: the native cluster's own code -----------

    _block = Cluster._block
    partition = Cluster.partition
    isolate = Cluster.isolate
    one_way = Cluster.one_way
    bridge = Cluster.bridge
    majorities_ring = Cluster.majorities_ring
    heal = Cluster.heal
    reset_links = Cluster.reset_links
    set_link = Cluster.set_link
    set_links = Cluster.set_links
    pause = Cluster.pause
    resume = Cluster.resume
    is_paused = Cluster.is_paused
    at = Cluster.at
    _run_actions = Cluster._run_actions

    # -- node faults ------------------------------------------------------------------

    def _stop(self, node_id: int, reason: str) -> None:
        self.transport.detach(node_id)
        for item in self._paused.pop(node_id, []):
            undeliverable = getattr(item, "undeliverable", None)
            if undeliverable is not None:
                undeliverable(reason)
        self.runners[node_id].stop(reason)
        self._notify()

    def crash(self, node_id: int) -> None:
        """Stop ``node_id`` at once; pysyncobj keeps nothing on disk here, so all its state is lost."""
        if not self._runner(node_id).is_up:
            raise RuntimeError(f"node {node_id} is already down")
        self._stop(node_id, f"node {node_id} crashed")
        self._fault("crash", node_id=node_id, storage="none")

    def restart(self, node_id: int) -> None:
        """Boot a crashed node, empty, with the current membership; it catches up from the leader."""
        if self._runner(node_id).is_up:
            raise RuntimeError(f"node {node_id} is running; crash it before restarting")
        if node_id in self._removed:
            raise RuntimeError(f"node {node_id} was removed from the cluster")
        self._fault("restart", node_id=node_id, storage="none")
        self._spawn(node_id)

    def fail_piece(self, k: int, action: str, *, to: int | None = None, cut_for: float = 1.0) -> None:
        """The counterpart of the native ``fail_chunk`` for pysyncobj's in-band snapshot pieces.

        Right after piece ``k`` to ``to`` (any receiver if ``None``) is sent: ``cut``
        the link both ways for ``cut_for`` seconds, or ``crash_sender``. Fires once;
        see :class:`~simulator.engines.pysyncobj_transfers.PieceFault`.
        """
        self.transfers_tracker.add_fault(PieceFault(k=k, action=action, to=to, cut_for=cut_for))
        self.piece_fault_event("fail_piece", k=k, action=action, to=to)

    def piece_fault_event(self, kind: str, **fields) -> None:
        # Their own record kinds (not ``fault``): the narration has no sentence for them, the scenario tells it.
        self.trace.event(trio.current_time(), CLUSTER, kind, SCENARIO, **fields)

    def compact(self, node_id: int) -> None:
        """Ask ``node_id`` to snapshot and compact its log at its next tick (pysyncobj decides when)."""
        self.syncobj(node_id).forceLogCompaction()
        self._fault("compact", node_id=node_id)

    def transfer_leader(self, to: int) -> None:
        """pysyncobj's leadership transfer (TimeoutNow) from the current leader to ``to``."""
        leader = self.leader_id()
        if leader is None:
            raise RuntimeError("no leader to transfer leadership from")
        self._fault("transfer_leader", src=leader, to=to)
        self.syncobj(leader).transferLeadership(SimNode(to))

    # -- membership ---------------------------------------------------------------------

    async def _change_membership(self, change: str, node_id: int, timeout: float) -> None:
        deadline = trio.current_time() + timeout
        problem = "no leader was known"
        while trio.current_time() < deadline:
            leader = self.leader_id()
            if leader is None:
                await self._wait_for_change(deadline)
                continue
            outcome: list = []
            done = trio.Event()

            def callback(result, error, outcome=outcome, done=done) -> None:
                outcome.append(error)
                done.set()

            syncobj = self.syncobj(leader)
            method = syncobj.addNodeToCluster if change == "add" else syncobj.removeNodeFromCluster
            method(SimNode(node_id), callback=callback)
            with trio.move_on_at(deadline):
                await done.wait()
            if outcome and outcome[0] == 0:
                return
            problem = f"n{leader} answered {outcome[0] if outcome else 'nothing'}"
            await trio.sleep(self.tick_interval)
        raise LivenessError(f"{change} n{node_id} not applied within {timeout} s; last problem: {problem}")

    async def add_node(self, *, promote: bool = True, timeout: float = 30.0) -> int:
        """Start an empty node and add it with pysyncobj's membership change; wait until it caught up.

        pysyncobj has no learners: the node is a voter from the moment the change
        is applied (``promote`` is accepted for the native signature only).
        """
        node_id = max(self.runners) + 1
        self.members.append(node_id)
        self.runners[node_id] = PysyncobjRunner(self, node_id)
        self.trace.event(trio.current_time(), CLUSTER, "node_added", SCENARIO, node_id=node_id)
        self._spawn(node_id)
        await self._change_membership("add", node_id, timeout)
        await self.wait_caught_up([node_id], timeout=timeout)
        return node_id

    async def remove_node(self, node_id: int, *, timeout: float = 30.0) -> None:
        """Remove ``node_id`` with pysyncobj's membership change, then stop it."""
        self._runner(node_id)
        await self._change_membership("remove", node_id, timeout)
        if self.runners[node_id].is_up:
            self.crash(node_id)
        self.members.remove(node_id)
        self._removed.add(node_id)
        self.trace.event(trio.current_time(), CLUSTER, "node_removed", SCENARIO, node_id=node_id)

    # -- waiting and liveness ---------------------------------------------------------------

    def _live_members(self) -> list[int]:
        return [n for n in self.up_nodes() if n not in self._removed and not self.is_paused(n)]

    def _caught_up(self, node_ids) -> bool:
        leader = self.leader_id()
        if leader is None:
            return False
        commit = self.runners[leader].syncobj.raftCommitIndex
        return all(
            self.runners[n].is_up and self.runners[n].syncobj.raftLastApplied >= commit for n in node_ids
        )

    async def check_liveness(self, *, within: float = 10.0, stable_for: float | None = None) -> int:
        """A leader exists and every live member applied its commit index, for ``stable_for`` s."""
        members = self._live_members()
        if stable_for is None:
            stable_for = 2 * self.runners[members[0]].syncobj.conf.raftMaxTimeout
        deadline = trio.current_time() + max(within, stable_for)
        settled_since = None
        while True:
            now = trio.current_time()
            if self._caught_up(members):
                settled_since = now if settled_since is None else settled_since
                if now - settled_since >= stable_for:
                    self._check_acknowledged(members)
                    return self.leader_id()
            else:
                settled_since = None
            if now >= deadline:
                states = "; ".join(
                    f"n{n}: {self.runners[n].statistics()}" for n in members if self.runners[n].is_up
                )
                raise LivenessError(f"the cluster did not settle within {within} s: {states}")
            await self._wait_for_change(deadline)

    def _check_acknowledged(self, members: list[int]) -> None:
        lost = self.monitor.lost_acknowledged_writes(
            {n: self.runners[n].syncobj.raftLastApplied for n in members}
        )
        if lost:
            raise self.monitor.violation("no lost acknowledged write", "; ".join(lost))


@attrs.frozen
class PysyncobjTransfer:
    """pysyncobj's in-band snapshot transfer, named as views name a snapshot mode."""

    name: str = "pysyncobj"


@attrs.frozen
class SnapshotView:
    index: int


@attrs.frozen
class StorageView:
    """The part of a native ``storage(n)`` that views read: ``snapshot_metadata.index``."""

    snapshot_metadata: SnapshotView


__all__ = ["PysyncobjCluster", "PysyncobjTransfer"]
