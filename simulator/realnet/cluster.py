"""``ProcessCluster``: the part of the simulated ``Cluster`` API that scenarios use, on node processes.

Theory of operation. Each node is an OS process (:mod:`.processes`) on
loopback, with its own data directory and a real gRPC port. Every
connection a node opens to a peer goes through its egress proxy
(:mod:`transports.proxy`), so the run turns the simulator's fault
vocabulary into real things:

====================  =============================================================
``crash(n)``          ``kill -9`` the process (its disk stays)
``restart(n)``        start it again on the same data directory and port
``partition``...      block links in the proxy: live connections cut, new refused
``cut(a, b)``         close the live connections between a and b mid-stream
``fail_chunk(k,..)``  hold the receiver's link right after chunk k (:mod:`.chunk_faults`)
``add_node()``        start an empty process with ``--join``, add it as a learner
                      through the leader, wait until it caught up, make it a voter
``compact(n)``        the control service's ``Compact``
====================  =============================================================

What the run knows of the nodes it sees from outside (:mod:`.observing`).
Time is the wall clock: nothing here is deterministic, and the scenario's
timeouts are stretched (``timeout_scale``) because a loaded machine is slow.
"""

from __future__ import annotations

import socket
import time
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from ..cluster.client import LivenessError, ProposalResult, ProposalTimeoutError
from ..observe.trace import CLUSTER, SCENARIO, Trace
from .chunk_faults import ChunkFaults
from .observing import Observer
from .processes import NodeProcess, node_environment, sorted_event_names


def free_address() -> str:
    """A loopback port no one listens on now (the node binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


class RemoteStateMachine:
    """A node's applied state, as far as the run can see it: its digest."""

    def __init__(self, cluster: ProcessCluster, node_id: int) -> None:
        self.cluster, self.node_id = cluster, node_id

    def digest(self) -> str:
        return self.cluster.control.status(self.node_id, with_digest=True).state_digest


class ProcessCluster:
    """See the module docstring. Open with ``async with ProcessCluster.open(...) as cluster``."""

    network = "grpc"

    def __init__(self, *, nursery, proxy, workdir: Path, snapshot_mode, chunks_in_flight: int,
                 compact_every: int | None, tick: float, state_machine: str, timeout_scale: float,
                 proxied: bool = True) -> None:
        from transports.grpc import ClusterClient
        from transports.grpc import events as node_events

        self.nursery = nursery
        self.proxy = proxy
        self.workdir = workdir
        self.snapshot_mode = snapshot_mode
        self.mode = snapshot_mode.name
        self.chunk_size = getattr(snapshot_mode, "chunk_size", 1024 * 1024)
        self.chunks_in_flight = chunks_in_flight
        self.compact_every = compact_every
        self.tick = tick
        self.state_machine_spec = state_machine
        self.timeout_scale = timeout_scale
        self.proxied = proxied
        self.processes: dict[int, NodeProcess] = {}
        self._event_names = sorted_event_names(
            value for name, value in vars(node_events).items() if name.isupper() and isinstance(value, str))
        self.start_time = trio.current_time()
        self.start_epoch = time.time()  # to place the nodes' own log stamps on the run's clock
        self.trace = Trace(record_messages=False, start_time=self.start_time)
        self.trace.bind_clock(trio.current_time)
        self._client_class = ClusterClient
        self.control = self.client = None  # made once the first nodes have addresses
        self.observer = Observer(self, self.trace, self.mode)
        self.chunk_faults = ChunkFaults(self)

    @classmethod
    @asynccontextmanager
    async def open(cls, nodes: int = 3, *, workdir: Path, snapshot_mode, chunks_in_flight: int = 1,
                   compact_every: int | None = None, tick: float = 0.05,
                   state_machine: str = "simulator:WorkflowExecutor", timeout_scale: float = 3.0,
                   proxied: bool = True):
        """``proxied=False`` lets the nodes connect directly (no network faults then: for measurements)."""
        from transports.proxy import open_fault_proxy

        async with open_fault_proxy() as proxy, trio.open_nursery() as nursery:
            cluster = cls(nursery=nursery, proxy=proxy, workdir=Path(workdir), snapshot_mode=snapshot_mode,
                          chunks_in_flight=chunks_in_flight, compact_every=compact_every, tick=tick,
                          state_machine=state_machine, timeout_scale=timeout_scale, proxied=proxied)
            try:
                for node_id in range(1, nodes + 1):
                    await cluster._create(node_id)
                addresses = {node: process.address for node, process in cluster.processes.items()}
                # Status and compaction, asked of one node at a time:
                cluster.control = cluster._client_class(dict(addresses), timeout=5.0, rpc_timeout=5.0)
                # Proposals and membership changes, following the leader:
                cluster.client = cluster._client_class(dict(addresses), timeout=30.0, rpc_timeout=30.0)
                members = sorted(cluster.processes)
                for node_id in members:
                    cluster._start(node_id, peers=members)
                await cluster.observer.look()
                nursery.start_soon(cluster.observer.run)
                yield cluster
                await cluster.observer.look()  # the last events before the summary
            finally:
                nursery.cancel_scope.cancel()
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(cluster._stop_all)
                for client in (cluster.control, cluster.client):
                    if client is not None:
                        client.close()

    # -- processes -------------------------------------------------------------------

    async def _create(self, node_id: int) -> NodeProcess:
        address = free_address()
        egress = await self.proxy.egress(node_id)
        self.proxy.addresses[node_id] = address
        for client in (self.control, self.client):
            if client is not None:
                client.addresses[node_id] = address
        data_dir = self.workdir / f"node-{node_id}"
        process = self.processes[node_id] = NodeProcess(
            node_id=node_id, address=address, data_dir=data_dir, flags=[],
            env=node_environment(egress if self.proxied else None),
            log_path=self.workdir / f"node-{node_id}.log", event_names=self._event_names)
        return process

    def _flags(self, node_id: int, peers: list[int]) -> list[str]:
        process = self.processes[node_id]
        flags = ["--id", str(node_id), "--listen", process.address,
                 "--peers", ",".join(f"{peer}={self.processes[peer].address}" for peer in sorted(set(peers))),
                 "--data-dir", str(process.data_dir), "--mode", self.mode,
                 "--state-machine", self.state_machine_spec, "--tick", str(self.tick)]
        if self.mode == "streaming":
            flags += ["--chunk-size", str(self.chunk_size), "--chunks-in-flight", str(self.chunks_in_flight)]
        if self.compact_every:
            flags += ["--compact-every", str(self.compact_every)]
        return flags

    def _start(self, node_id: int, *, peers: list[int], join: bool = False) -> None:
        process = self.processes[node_id]
        if not process.flags:  # the first start decides; a restart repeats it exactly
            process.flags = self._flags(node_id, peers)
            process.joins = join
        process.start()

    def _stop_all(self) -> None:
        for process in self.processes.values():
            process.stop()

    @property
    def node_ids(self) -> list[int]:
        return sorted(self.processes)

    def is_up(self, node_id: int) -> bool:
        return self._process(node_id).is_up

    def up_nodes(self) -> list[int]:
        return [node for node in self.node_ids if self.is_up(node)]

    def _process(self, node_id: int) -> NodeProcess:
        try:
            return self.processes[node_id]
        except KeyError:
            raise KeyError(f"no node {node_id}; nodes are {self.node_ids}") from None

    def now(self) -> float:
        """Wall seconds since the run began."""
        return trio.current_time() - self.start_time

    def since_start(self, epoch: float) -> float:
        """A wall-clock time stamp (seconds since the epoch) as seconds since the run began."""
        return epoch - self.start_epoch

    def _fault(self, kind: str, **fields) -> None:
        self.trace.event(trio.current_time(), CLUSTER, "fault", SCENARIO, fault=kind, **fields)

    def crash(self, node_id: int) -> None:
        """``kill -9``: the process dies at once; its data directory stays."""
        self._process(node_id).kill()
        self.observer.statuses[node_id] = None
        self._fault("crash", node_id=node_id)

    def restart(self, node_id: int) -> None:
        """Start the node's process again, same data directory, same port."""
        self._fault("restart", node_id=node_id)
        self._start(node_id, peers=self.node_ids)

    # -- what the nodes show -------------------------------------------------------------

    def _status(self, node_id: int):
        return self.observer.statuses.get(node_id)

    def leader_id(self) -> int | None:
        """The running leader of the highest term, as last seen."""
        leaders = [(status.term, node) for node, status in self.observer.statuses.items()
                   if status is not None and status.role == "leader" and self.is_up(node)]
        return max(leaders)[1] if leaders else None

    def statistics(self, node_id: int):
        """The node's ``Status`` now (role, term, commit, applied, first_index, last_index, ...)."""
        return self.control.status(node_id)

    def state_machine(self, node_id: int) -> RemoteStateMachine:
        if not self.is_up(node_id):
            raise RuntimeError(f"node {node_id} is down; its state machine is gone until restart")
        return RemoteStateMachine(self, node_id)

    def transfers(self):
        return self.observer.transfers.views()

    def snapshot_memory(self) -> dict[int, tuple[int, int]]:
        """Per node: (0, growth of the process's peak resident memory over its first look).

        A process cannot say which of its bytes are snapshot bytes; its peak
        resident memory above where it started is the honest upper bound.
        """
        return {node: (0, max(0, peak - first)) for node, (first, peak) in sorted(self.observer.memory.items())}

    def compact(self, node_id: int) -> int:
        from transports.grpc.proto import control_pb2

        stub = self.control.stub(self._process(node_id).address)
        reply = stub.Compact(control_pb2.CompactRequest(), timeout=self._scaled(30))
        self._fault("compact", node_id=node_id, index=reply.snapshot_index)
        return reply.snapshot_index

    # -- network faults ------------------------------------------------------------------

    def partition(self, *groups) -> None:
        self.proxy.table.partition(self.node_ids, *groups)
        self._fault("partition", groups=[sorted(group) for group in groups])

    def isolate(self, node_id: int) -> None:
        self.proxy.table.isolate(self.node_ids, node_id)
        self._fault("isolate", node_id=node_id)

    def one_way(self, a: int, b: int) -> None:
        self.proxy.table.one_way(a, b)
        self._fault("one_way", src=a, dst=b)

    def heal(self) -> None:
        self.proxy.table.heal()
        self._fault("heal")

    def cut(self, a: int, b: int) -> int:
        """Close the live connections between ``a`` and ``b`` (both ways); how many."""
        closed = self.proxy.table.cut_between(a, b)
        self._fault("cut", src=a, dst=b, connections=closed)
        return closed

    def fail_chunk(self, k: int, action: str, *, to: int | None = None, delay: float = 0.0,
                   restart_after: float | None = None) -> None:
        self.chunk_faults.arm(k, action, to=to, restart_after=restart_after)
        self._fault("fail_chunk", k=k, action=action, to=to)

    # -- waiting ---------------------------------------------------------------------------

    def _scaled(self, timeout: float) -> float:
        return max(20.0, timeout * self.timeout_scale)

    async def wait_until(self, predicate, *, timeout: float, what: str) -> None:
        """Re-check ``predicate()`` after every look at the nodes; ``LivenessError`` after ``timeout``."""
        deadline = trio.current_time() + self._scaled(timeout)
        with trio.move_on_at(deadline):
            await self.observer.wait_for_fresh_look()  # what was done just before this call shows
        while not predicate():
            if trio.current_time() >= deadline:
                raise LivenessError(f"{what} did not happen within {self._scaled(timeout):g} wall seconds")
            with trio.move_on_at(deadline):
                await self.observer.wait_for_look()

    async def wait_for_leader(self, *, timeout: float = 10.0) -> int:
        await self.wait_until(lambda: self.leader_id() is not None, timeout=timeout, what="a leader")
        return self.leader_id()

    def members(self) -> list[int]:
        leader = self.leader_id()
        status = self._status(leader) if leader else None
        if status is None:
            return self.node_ids
        configured = set(status.voters) | set(status.learners)
        return [node for node in self.node_ids if node in configured]

    def _live_members(self) -> list[int]:
        return [node for node in self.members() if self.is_up(node)]

    def _caught_up(self, node_ids) -> bool:
        leader = self.leader_id()
        if leader is None:
            return False
        commit = self._status(leader).commit
        return all(self.is_up(n) and self._status(n) is not None and self._status(n).applied >= commit
                   for n in node_ids)

    async def wait_caught_up(self, node_ids=None, *, timeout: float = 10.0) -> None:
        ids = list(node_ids) if node_ids is not None else self._live_members()
        await self.wait_until(lambda: self._caught_up(ids), timeout=timeout, what=f"nodes {ids} catching up")

    async def check_liveness(self, *, within: float = 10.0, stable_for: float | None = None) -> int:
        """A leader, every live member caught up, and it stays so for ``stable_for`` wall seconds."""
        stable_for = 2 * 30 * self.tick if stable_for is None else stable_for
        deadline = trio.current_time() + max(self._scaled(within), stable_for)
        settled_since = None
        await self.observer.wait_for_fresh_look()
        while True:
            now = trio.current_time()
            if self._caught_up(self._live_members()):
                settled_since = now if settled_since is None else settled_since
                if now - settled_since >= stable_for:
                    return self.leader_id()
            else:
                settled_since = None
            if now >= deadline:
                states = ", ".join(f"n{n}: {s.role} term {s.term} applied {s.applied}" if s else f"n{n}: no answer"
                                   for n, s in sorted(self.observer.statuses.items()))
                raise LivenessError(f"the cluster did not settle within {self._scaled(within):g} wall seconds; "
                                    f"{states}")
            with trio.move_on_at(deadline):
                await self.observer.wait_for_look()

    # -- clients and membership --------------------------------------------------------------

    async def _leader_call(self, call, timeout: float, what: str):
        from transports.grpc import ClusterUnavailableError

        self.client.timeout = self._scaled(timeout)
        try:
            return await trio.to_thread.run_sync(call, abandon_on_cancel=True)
        except ClusterUnavailableError as error:
            raise ProposalTimeoutError(f"{what}: {error}") from None

    async def propose(self, command: bytes, *, timeout: float = 10.0) -> ProposalResult:
        reply = await self._leader_call(lambda: self.client.propose(command), timeout, "proposal not applied")
        if not reply.ok:
            raise ProposalTimeoutError(f"proposal refused: {reply.error}")
        return ProposalResult(index=reply.index, term=0, node_id=self.client.leader or 0, result=reply.result,
                              attempts=1)

    async def add_node(self, *, promote: bool = True, timeout: float = 30.0) -> int:
        """Start an empty node process, add it as a learner, wait until it caught up, promote it."""
        node_id = max(self.processes) + 1
        await self._create(node_id)
        self.trace.event(trio.current_time(), CLUSTER, "node_added", SCENARIO, node_id=node_id)
        self._start(node_id, peers=[*self._live_members(), node_id], join=True)
        address = self.processes[node_id].address
        reply = await self._leader_call(lambda: self.client.add_node(node_id, address, as_learner=True),
                                        timeout, f"adding n{node_id} as a learner")
        if not reply.ok:
            raise ProposalTimeoutError(f"adding n{node_id} as a learner was refused: {reply.error}")
        await self.wait_caught_up([node_id], timeout=timeout)
        if promote:
            reply = await self._leader_call(lambda: self.client.add_node(node_id, address, as_learner=False),
                                            timeout, f"making n{node_id} a voter")
            if not reply.ok:
                raise ProposalTimeoutError(f"making n{node_id} a voter was refused: {reply.error}")
        return node_id
