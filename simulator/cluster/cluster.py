"""``Cluster``: several Raft nodes in one trio process, on virtual time, with faults on demand.

A cluster is opened inside a trio run and lives as long as its ``async
with`` block::

    async with Cluster.open(nodes=3, seed=7) as cluster:
        await cluster.wait_for_leader()
        await cluster.propose(WorkflowExecutor.start("wf-1", ["fetch", "build"]))
        cluster.isolate(cluster.leader_id())
        ...

Run it with :func:`simulator.run` (virtual time: an hour of cluster life
in seconds) or under pytest-trio's ``autojump_clock``; outside a
``MockClock`` it runs at wall speed, which is what live demos want.

Each node is a :class:`~simulator.node.NodeRunner` whose inbox the
transport's one delivery task feeds, in a total order (see
``transports.InMemoryClusterTransport``): one task instead of one per node,
so trio's scheduling decides nothing and whole stretches of virtual time
pass without a trip through the scheduler. The cluster starts, crashes,
pauses and restarts nodes, shapes the network, and records a trace. Every
change a node makes is checked by an :class:`InvariantMonitor`; a
violation stops the run with :class:`InvariantViolation`.
"""

from __future__ import annotations

import functools
import heapq
import random
from collections.abc import Callable
from contextlib import asynccontextmanager

import trio

from transports import (
    Embedded,
    InMemoryClusterTransport,
    LinkConfig,
    SnapshotMode,
    Streaming,
    faults,
)
from transports.chunk_faults import ChunkFault
from transports.streaming import TransferProgress, TransferRegistry

from ..checks.invariants import InvariantViolation
from ..checks.monitor import InvariantMonitor
from ..machines.state_machines import StateMachine, WorkflowExecutor
from ..observe.trace import CLUSTER, SCENARIO, Trace
from ..raft import Config, ConfState, MemStorageWithSnapshot, Role
from ..snapshots import SNAPSHOT_DIGESTS
from .client import Client, ClientMixin
from .clocks import ClockFaultsMixin, NodeClocks
from .delegation import nearest_holder
from .node import CompactionPolicy, LeaderTransfer, NodeFailStop, NodeRunner, SnapshotReport, Tick
from .reads import ReadsMixin
from .long_lived import survivors_frozen
from .snapshot_handling import NodeSnapshots


#: Seconds a node stopped by a fault of its own (``NodeFailStop``) stays down before it restarts.
FAIL_STOP_RESTART_AFTER = 1.0


class Cluster(ClientMixin, ReadsMixin, ClockFaultsMixin):
    """See the module docstring. Build it with :meth:`open`."""

    def __init__(
        self,
        *,
        nodes: int = 3,
        seed: int = 0,
        state_machine: Callable[[], StateMachine] = WorkflowExecutor,
        link: LinkConfig | None = None,
        tick_interval: float = 0.1,
        config: Callable[[int], Config] | None = None,
        compaction: CompactionPolicy = CompactionPolicy(),
        record_messages: bool = True,
        snapshot_mode: SnapshotMode | None = None,
        transport: InMemoryClusterTransport | None = None,
    ) -> None:
        self._check_options(nodes, {"tick_interval": tick_interval})
        self.seed = seed
        self.tick_interval = tick_interval
        self.clocks = NodeClocks(tick_interval)
        self.make_state_machine = state_machine
        self.config_for = config or (lambda node_id: Config(id=node_id))
        self.compaction = compaction
        self.start_time = trio.current_time()
        self.trace = Trace(record_messages=record_messages, start_time=self.start_time)

        self.monitor = InvariantMonitor(context=lambda: self.trace.excerpt(15))
        if transport is None:
            transport = InMemoryClusterTransport(seed=seed, link=link)
        elif link is not None:
            transport.set_default_link(link)
        transport.set_observer(self.trace)
        self.trace.bind_clock(transport.current_time)
        self.transport = transport
        self.snapshot_mode = snapshot_mode or transport.snapshot_mode or Embedded()
        transport.snapshot_mode = self.snapshot_mode
        self.transfers_registry = TransferRegistry()
        transport.on_crash = self._crash_from_chunk_fault
        transport.on_snapshot_fate = self._embedded_snapshot_fate
        transport.on_cut_short = lambda chunk, carried: self.transfers_registry.cut_short(
            chunk.to, chunk.snapshot_id, chunk.offset, len(chunk.data), carried)
        self._opening_link = self.transport.default_link
        self.runners: dict[int, NodeRunner] = {}
        self._paused: dict[int, list] = {}  # node -> items that arrived while paused
        self._tick_rngs: dict[int, random.Random] = {}
        self._removed: set[int] = set()
        self._changed = trio.Event()
        self._actions: list[tuple[float, int, Callable, tuple]] = []
        self._action_sequence = 0
        self._action_wakeup = trio.Event()
        self._init_clients()
        # The genesis configuration: what every node, now or joining later, knows
        # before log index 1 (etcd writes the same thing as its first log entries).
        # A joiner replays the log's membership changes on top of it; started
        # from nothing instead, it would take "make n4 a voter" to mean a
        # cluster of n4 alone and elect itself (the property search found that).
        self.bootstrap_conf_state = ConfState.of(range(1, nodes + 1))
        for node_id in self.bootstrap_conf_state.voters:
            self._create_node(node_id, self.bootstrap_conf_state)

    @classmethod
    @asynccontextmanager
    async def open(cls, nodes: int = 3, **options):
        """Start a cluster of ``nodes`` voters; stop it (cancel every task) on exit.

        Errors raised in the block, or in a node (``InvariantViolation``), reach
        the caller as themselves, not wrapped in an exception group.
        """
        cls._check_options(nodes, options)
        try:
            with survivors_frozen():  # long runs: older collections traverse only new objects
                async with trio.open_nursery() as nursery:
                    cluster = cls(nodes=nodes, **options)
                    await nursery.start(cluster.transport.serve)
                    nursery.start_soon(cluster._run_actions)
                    for node_id in sorted(cluster.runners):
                        cluster._spawn(node_id)
                    try:
                        yield cluster
                    finally:
                        cluster.trace.flush()
                        nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # A safety violation in a node is the story; otherwise the one error
            # that is not the cancellation of the other tasks.
            violations = group.subgroup(InvariantViolation)
            if violations is not None:
                raise _first_leaf(violations) from group
            rest = group.subgroup(lambda error: not isinstance(error, trio.Cancelled))
            if rest is not None and len(_leaves(rest)) == 1:
                raise _leaves(rest)[0] from group
            raise

    @staticmethod
    def _check_options(nodes: int, options: dict) -> None:
        if nodes < 1:
            raise ValueError(f"a cluster needs at least 1 node, got {nodes}")
        tick_interval = options.get("tick_interval", 0.1)
        if not tick_interval > 0:
            raise ValueError(f"tick_interval must be > 0 seconds, got {tick_interval}")

    # -- nodes -------------------------------------------------------------------

    def _create_node(self, node_id: int, conf_state: ConfState) -> NodeRunner:
        mode = self.snapshot_mode
        store = mode.store(node_id) if isinstance(mode, Streaming) else None
        runner = NodeRunner(
            node_id=node_id,
            config=self.config_for(node_id),
            # Streaming: the snapshot data lives in the node's store, not in memory,
            # and the leader offers metadata only.
            storage=MemStorageWithSnapshot.new_with_conf_state(
                conf_state, embed_data=store is None, data_store=store, digests=SNAPSHOT_DIGESTS
            ),
            make_state_machine=self.make_state_machine,
            send=self.transport.send,
            trace=self.trace,
            monitor=self.monitor,
            compaction=self.compaction,
            rng=random.Random(f"{self.seed}/node/{node_id}"),
            on_role_change=self._on_role_change,
            schedule=lambda at, item: self.transport.schedule(node_id, at, item),
        )
        runner.snapshots = NodeSnapshots(runner, mode, self.transfers_registry, store, self.transport)
        runner.snapshots.find_delegate = functools.partial(nearest_holder, self, node_id)
        self.runners[node_id] = runner
        self._tick_rngs[node_id] = random.Random(f"{self.seed}/ticks/{node_id}")
        return runner

    def _spawn(self, node_id: int) -> None:
        runner = self.runners[node_id]
        runner.start()
        self.transport.attach(node_id, functools.partial(self._deliver, runner),
                              functools.partial(self._settle, runner))
        # Nodes tick in step but not in unison: each gets its own phase.
        first_tick = trio.current_time() + self._tick_rngs[node_id].uniform(0, self.tick_interval)
        self.transport.schedule(node_id, first_tick, Tick(runner.incarnation))
        runner.process_ready()

    def _deliver(self, runner: NodeRunner, item) -> None:
        """The node's inbox: the transport calls it for each item, in the total order.

        The node steps the item into its core; the transport calls :meth:`_settle`
        once the instant's items are all handed out.
        """
        if self._paused:
            backlog = self._paused.get(runner.node_id)
            if backlog is not None:
                backlog.append(item)  # a paused node reacts when it resumes
                return
        try:
            if type(item) is Tick:
                if item.incarnation != runner.incarnation:
                    return  # a tick of this node's previous life
                now = self.transport.current_time()
                self.transport.schedule(runner.node_id, self.clocks.next_tick(runner.node_id, now), item)
                for _ in range(self.clocks.ticks_due(runner.node_id, now)):  # clock faults: 0, 1 or a leap
                    runner.react(item)
                return
            runner.react(item)
        except NodeFailStop as stop:
            self._fail_stop(runner.node_id, str(stop))

    def _settle(self, runner: NodeRunner) -> None:
        """The node's Ready loop, once for all it reacted to at this instant."""
        if self._paused and runner.node_id in self._paused:
            return  # frozen (or stopped by a fault of its own): it settles when it resumes
        try:
            runner.settle()
        except NodeFailStop as stop:
            self._fail_stop(runner.node_id, str(stop))

    def _fail_stop(self, node_id: int, reason: str) -> None:
        """A node that cannot go on stops at once and a supervisor restarts it a second later.

        It is frozen now (mid-delivery the transport must not be changed under it), then
        crashed and restarted from its storage by scheduled actions, as a crash fault is.
        """
        self._fault("fail_stop", node_id=node_id, reason=reason)
        self._paused.setdefault(node_id, [])

        def stop() -> None:
            if self.runners[node_id].is_up:
                self.crash(node_id)
                self.at(self.now() + FAIL_STOP_RESTART_AFTER, self._restart_if_down, node_id)

        self.at(self.now(), stop)

    def _on_role_change(self, node_id: int, role: Role, term: int, leader_id: int) -> None:
        self._notify()

    def leader_id(self) -> int | None:
        """The running (not paused) leader of the highest term, or ``None``."""
        # max() needs no sorted input: (term, node id) pairs are all distinct.
        leaders = [
            (runner.node.raft.term, node_id)
            for node_id, runner in self.runners.items()
            if runner.is_up
            and node_id not in self._paused  # frozen: it cannot take commands
            and runner.node.raft.role is Role.LEADER
        ]
        return max(leaders)[1] if leaders else None

    def state_machine(self, node_id: int) -> StateMachine:
        """Node's applied state (read-only by convention)."""
        machine = self._runner(node_id).state_machine
        if machine is None:
            raise RuntimeError(f"node {node_id} is down; its state machine is gone until restart")
        return machine

    def statistics(self, node_id: int):
        return self._runner(node_id).node.statistics()

    def storage(self, node_id: int) -> MemStorageWithSnapshot:
        return self._runner(node_id).storage

    def store(self, node_id: int):
        """Node's ``SnapshotStore`` (Streaming mode), or ``None``."""
        return self._runner(node_id).snapshots.store

    def transfers(self) -> list[TransferProgress]:
        """Every snapshot transfer so far, embedded or streamed, in the order they started."""
        return self.transfers_registry.progress()

    def snapshot_memory(self) -> dict[int, tuple[int, int]]:
        """Per node: (bytes of snapshot data in memory now, the most at any moment)."""
        return {
            node_id: (runner.snapshots.memory.current, runner.snapshots.memory.peak)
            for node_id, runner in sorted(self.runners.items())
        }

    def now(self) -> float:
        """Virtual seconds since the cluster opened."""
        return trio.current_time() - self.start_time

    def _fault(self, kind: str, **fields) -> None:
        self.trace.event(trio.current_time(), CLUSTER, "fault", SCENARIO, fault=kind, **fields)

    # -- network faults -------------------------------------------------------------

    def _block(self, links: set[tuple[int, int]]) -> None:
        for src, dst in sorted(links):
            self.transport.block(src, dst)

    def partition(self, *groups) -> None:
        """Nodes talk only within their group; nodes in no group are isolated."""
        self.transport.unblock_all()
        self._block(faults.partition(self.node_ids, *groups))
        self._fault("partition", groups=[sorted(group) for group in groups])

    def isolate(self, node_id: int) -> None:
        """Cut ``node_id`` off from every other node (on top of existing faults)."""
        self._block(faults.isolate(self.node_ids, node_id))
        self._fault("isolate", node_id=node_id)

    def one_way(self, a: int, b: int) -> None:
        """Messages from ``a`` to ``b`` are lost; ``b`` still reaches ``a``."""
        self._block(faults.one_way(a, b))
        self._fault("one_way", src=a, dst=b)

    def bridge(self) -> None:
        """Two halves that hear each other only through the middle node."""
        self.transport.unblock_all()
        self._block(faults.bridge(self.node_ids))
        self._fault("bridge")

    def majorities_ring(self) -> None:
        """Every node sees a majority, no two the same one."""
        self.transport.unblock_all()
        self._block(faults.majorities_ring(self.node_ids))
        self._fault("majorities_ring")

    def heal(self) -> None:
        """Every link works again (link quality settings stay; see :meth:`reset_links`)."""
        self.transport.unblock_all()
        self._fault("heal")

    def reset_links(self) -> None:
        """Every link behaves as the cluster was opened with (undoes ``set_link(s)``)."""
        self.transport.reset_links()
        self.transport.set_default_link(self._opening_link)
        self._fault("reset_links")

    def set_link(self, src: int, dst: int, config: LinkConfig) -> None:
        """Latency, bandwidth, loss, duplication, reordering of one directed link."""
        self.transport.set_link(src, dst, config)
        self._fault("set_link", src=src, dst=dst, config=repr(config))

    def set_links(self, config: LinkConfig) -> None:
        """The same link behaviour everywhere (per-link overrides are dropped)."""
        self.transport.reset_links()
        self.transport.set_default_link(config)
        self._fault("set_links", config=repr(config))

    # -- node faults ----------------------------------------------------------------

    def crash(self, node_id: int) -> None:
        """Stop ``node_id`` at once: volatile state (Raft, state machine) lost, storage kept."""
        runner = self._runner(node_id)
        if not runner.is_up:
            raise RuntimeError(f"node {node_id} is already down")
        self.transport.detach(node_id)
        for item in self._paused.pop(node_id, []):  # what was queued for it is lost
            _undeliverable(item, f"node {node_id} crashed with the command still queued")
        runner.crash()
        self._fault("crash", node_id=node_id)
        self._notify()

    def restart(self, node_id: int) -> None:
        """Boot a crashed node from its storage."""
        runner = self._runner(node_id)
        if runner.is_up:
            raise RuntimeError(f"node {node_id} is running; crash it before restarting")
        if node_id in self._removed:
            raise RuntimeError(f"node {node_id} was removed from the cluster")
        self._fault("restart", node_id=node_id)
        runner.snapshots.reopen_store()
        self._spawn(node_id)

    def pause(self, node_id: int) -> None:
        """Freeze ``node_id`` (a long GC pause): it keeps its state but reacts to nothing;
        messages wait in its inbox."""
        if not self._runner(node_id).is_up:
            raise RuntimeError(f"node {node_id} is down; only a running node can pause")
        if node_id in self._paused:
            raise RuntimeError(f"node {node_id} is already paused")
        self._paused[node_id] = []
        self._fault("pause", node_id=node_id)

    def resume(self, node_id: int) -> None:
        """Unfreeze ``node_id``: it handles what queued up, in arrival order, now."""
        backlog = self._paused.pop(node_id, None)
        if backlog is None:
            raise RuntimeError(f"node {node_id} is not paused")
        self._fault("resume", node_id=node_id)
        runner = self.runners[node_id]
        for item in backlog:
            if runner.is_up:
                self._deliver(runner, item)
        self._settle(runner)

    def is_paused(self, node_id: int) -> bool:
        return node_id in self._paused

    # -- transfer faults --------------------------------------------------------------

    def fail_chunk(
        self,
        k: int,
        action: str,
        *,
        to: int | None = None,
        delay: float = 0.0,
        restart_after: float | None = None,
    ) -> None:
        """Do ``action`` to chunk ``k`` of the snapshot streams (to node ``to``, if given).

        Actions: drop, duplicate, corrupt, corrupt_source (a flipped byte under
        a valid checksum: only the snapshot digest catches it), delay (by ``delay`` s), cut (the
        stream after chunk k, until the receiver asks again), crash_sender,
        crash_receiver (restarted after ``restart_after`` s, if given).
        Chunks are counted from when the fault is added; it fires once.
        """
        self.transport.add_chunk_fault(
            ChunkFault(k=k, action=action, to=to, delay=delay, restart_after=restart_after)
        )
        self._fault("fail_chunk", k=k, action=action, to=to)

    def disarm_chunk_faults(self) -> None:
        """Forget chunk faults that have not fired yet, and end cut streams."""
        self.transport.clear_chunk_faults()
        self._fault("disarm_chunk_faults")

    def _crash_from_chunk_fault(self, node_id: int, restart_after: float | None, reason: str) -> None:
        # Not in the middle of the node's own reaction: right after this instant's deliveries.
        def crash_now() -> None:
            if self.runners[node_id].is_up:
                self._fault("chunk_fault_crash", node_id=node_id, reason=reason)
                self.crash(node_id)
                if restart_after is not None:
                    self.at(self.now() + restart_after, self._restart_if_down, node_id)

        self.at(self.now(), crash_now)

    def _embedded_snapshot_fate(self, message, delivered: bool) -> None:
        # What an embedded transport tells the leader's Raft: the snapshot message
        # got there (FINISH) or did not (FAILURE, and Raft tries again later).
        sender = self.runners.get(message.from_)
        if sender is not None and sender.is_up:
            self.transport.schedule(
                message.from_, self.transport.current_time(),
                SnapshotReport(message.to, delivered, sender.incarnation),
            )

    def _restart_if_down(self, node_id: int) -> None:
        if not self.runners[node_id].is_up and node_id not in self._removed:
            self.restart(node_id)

    def transfer_leader(self, to: int) -> None:
        """Ask the current leader to hand leadership to ``to`` (Raft's leader transfer)."""
        leader = self.leader_id()
        if leader is None:
            raise RuntimeError("no leader to transfer leadership from")
        self._fault("transfer_leader", src=leader, to=to)
        self.transport.schedule(leader, trio.current_time(), LeaderTransfer(to))

    def compact(self, node_id: int) -> int:
        """Snapshot ``node_id``'s state machine now and compact its log; returns the index."""
        index = self._runner(node_id).compact()
        self._fault("compact", node_id=node_id, index=index)
        return index

    # -- scheduled actions ------------------------------------------------------------

    def at(self, when: float, action: Callable, *args) -> None:
        """Run ``action(*args)`` at virtual time ``when`` (seconds since the cluster opened).

        Actions due at the same time run in the order they were scheduled.
        """
        self._action_sequence += 1
        heapq.heappush(
            self._actions, (self.start_time + when, self._action_sequence, action, args)
        )
        self._action_wakeup.set()

    async def _run_actions(self) -> None:
        while True:
            self._action_wakeup = trio.Event()
            if self._actions and self._actions[0][0] <= trio.current_time():
                _, _, action, args = heapq.heappop(self._actions)
                result = action(*args)
                if hasattr(result, "__await__"):
                    await result
                continue
            deadline = self._actions[0][0] if self._actions else float("inf")
            with trio.move_on_at(deadline):
                await self._action_wakeup.wait()


def _undeliverable(item, reason: str) -> None:
    undeliverable = getattr(item, "undeliverable", None)
    if undeliverable is not None:
        undeliverable(reason)


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    leaves = []
    for error in group.exceptions:
        leaves.extend(_leaves(error) if isinstance(error, BaseExceptionGroup) else [error])
    return leaves


def _first_leaf(group: BaseExceptionGroup) -> BaseException:
    while isinstance(group, BaseExceptionGroup):
        group = group.exceptions[0]
    return group


def run(main: Callable, *args, realtime: bool = False):
    """``trio.run(main, *args)`` on virtual time (or wall time with ``realtime=True``)."""
    import trio.testing

    clock = None if realtime else trio.testing.MockClock(autojump_threshold=0)
    return trio.run(main, *args, clock=clock)


__all__ = ["Client", "Cluster", "run"]
