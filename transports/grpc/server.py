"""One node process: storage, Raft loop, peer links, snapshot transfer and the gRPC server, wired.

Theory of operation. :meth:`NodeServer.run` opens the node's durable state
(``DIR/raft.sqlite3`` and the snapshot store, ``DIR/snapshots`` unless the
Streaming mode names another), binds the gRPC server, and then runs four
kinds of trio tasks until cancelled: the clock (one ``tick`` per
``tick_seconds``), the per-peer senders (:mod:`.links`), the snapshot pulls
(:mod:`.snapshot_pull`), and the gRPC threads' calls into the trio thread
(:mod:`.services`). Everything that reads or changes node state runs on
the trio thread, which is why none of it takes locks.

Binding comes before anything listens to peers: an address in use raises
``OSError`` naming it (the command line turns that into one line and exit
code 2). Cancelling ``run`` (SIGTERM, SIGINT) stops the gRPC server, lets
in-flight calls end with ``UNAVAILABLE``, and closes the database; since
every write was committed when it was made, there is nothing to flush.
"""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import trio

from simulator.raft import (
    INVALID_ID,
    ConfChange,
    ConfChangeType,
    Config,
    ConfState,
    ProgressState,
    Role,
)
from simulator.snapshots import DiskSnapshotStore

from . import events as ev
from .links import PeerLinks, server_options
from .proto import control_pb2 as cpb
from .proto import control_pb2_grpc
from .replica import NotLeaderError, Replica
from .services import ControlService, RaftService, SnapshotService, TrioBridge
from .snapshot_modes import EmbeddedSnapshots, StreamingSnapshots
from .snapshot_pull import SnapshotPuller
from .snapshot_serve import SnapshotServer
from .storage import SqliteRaftStorage


class PortInUseError(OSError):
    """The listen address cannot be bound: another process holds the port, or it is not local."""


class NodeServer:
    """See the module docstring. ``transport`` is a ``GrpcClusterTransport``."""

    def __init__(self, transport, node_id: int, data_dir: Path, make_state_machine, settings) -> None:
        self.transport = transport
        self.node_id = node_id
        self.address = transport.address_of(node_id)
        self.data_dir = data_dir
        self.make_state_machine = make_state_machine
        self.settings = settings
        self.events = ev.EventLog(node_id)
        self.mode = transport.mode
        self.streaming = self.mode.name == "streaming"
        self.snapshot_server: SnapshotServer | None = None
        self.replica: Replica | None = None
        self.port = 0

    # -- assembling --------------------------------------------------------------------

    def _open(self) -> None:
        settings = self.settings
        if self.streaming:
            store = self.mode.store(self.node_id)
        else:
            store = DiskSnapshotStore(self.data_dir / "snapshots")
        self.store = store
        peers = dict(self.transport.addresses)
        initial = ConfState() if settings.join else ConfState.of(voters=peers)
        self.storage = SqliteRaftStorage.open(self.data_dir / "raft.sqlite3", store, initial,
                                              embed_data=not self.streaming)
        learned = self.storage.peer_addresses()
        addresses = {**learned, **peers}
        self.links = PeerLinks(self.node_id, addresses, self.events, report_unreachable=self._unreachable,
                               report_snapshot=self._snapshot_status, embedded=not self.streaming)
        if self.streaming:
            self.snapshot_server = SnapshotServer(self.node_id, store, self.events)
            self.puller = SnapshotPuller(self.node_id, store, self.events, channel_to=self.links.channel,
                                         deliver=self._deliver_snapshot,
                                         chunks_in_flight=self.transport.chunks_in_flight)
            snapshots = StreamingSnapshots(self.events, store, self.snapshot_server, self.puller,
                                           offer_timeout=settings.offer_timeout)
        else:
            self.puller = None
            snapshots = EmbeddedSnapshots(self.events)
        self.snapshots = snapshots
        config = Config(id=self.node_id, election_tick=settings.election_tick,
                        heartbeat_tick=settings.heartbeat_tick, max_size_per_msg=4 * 1024 * 1024)
        self.replica = Replica(config=config, storage=self.storage, make_state_machine=self.make_state_machine,
                               send=self.links.send, events=self.events, snapshots=snapshots,
                               on_peer_added=self.links.add_peer, compact_every=settings.compact_every,
                               keep_entries=settings.keep_entries)

    def _check_port_free(self) -> None:
        """Bind the address once ourselves first: grpcio would log a multi-line C++ error."""
        host, _, port = self.address.rpartition(":")
        host = host.strip("[]")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # As grpcio binds: connections of a killed predecessor in TIME_WAIT must not
            # keep a restarted node off its port; a live listener still refuses the bind.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, int(port)))
            except OSError as error:
                raise PortInUseError(f"cannot listen on {self.address}: {error.strerror or error}") from None

    def _grpc_server(self, bridge: TrioBridge) -> grpc.Server:
        self._check_port_free()
        server = grpc.server(ThreadPoolExecutor(max_workers=16, thread_name_prefix=f"node{self.node_id}-grpc"),
                             options=[("grpc.so_reuseport", 0), *server_options()])
        server.add_generic_rpc_handlers((RaftService(bridge, self).handler(),))
        server.add_generic_rpc_handlers((SnapshotService(bridge, self).handler(),))
        control_pb2_grpc.add_ControlServicer_to_server(ControlService(bridge, self), server)
        try:
            self.port = server.add_insecure_port(self.address)
        except RuntimeError as error:
            raise PortInUseError(f"cannot listen on {self.address}: {error}") from None
        if not self.port:
            raise PortInUseError(f"cannot listen on {self.address}: the address is in use or not local")
        return server

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        self._open()
        try:
            server = self._grpc_server(TrioBridge(trio.lowlevel.current_trio_token()))
        except PortInUseError:
            self.storage.close()
            raise
        server.start()
        self.events(ev.STARTED, f"listening on {self.address}, {self.mode.name} mode, data in {self.data_dir}, "
                                f"term {self.storage.hard_state.term}, snapshot {self.storage.snapshot_metadata.index}")
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.links.run)
                if self.puller is not None:
                    nursery.start_soon(self.puller.run)
                nursery.start_soon(self._clock)
                task_status.started(self)
                await trio.sleep_forever()
        finally:
            self.events(ev.STOPPING, f"listening on {self.address} no more")
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(lambda: server.stop(grace=1.0).wait(5.0))
            self.storage.close()

    async def _clock(self) -> None:
        while True:
            await trio.sleep(self.settings.tick_seconds)
            self.replica.tick()

    # -- called on the trio thread by links, pulls and services ---------------------------

    def _unreachable(self, peer: int) -> None:
        self.replica.report_unreachable(peer)

    def _snapshot_status(self, peer: int, status) -> None:
        self.replica.report_snapshot(peer, status)

    def _deliver_snapshot(self, message) -> None:
        self.replica.step(message)

    def receive_batch(self, messages) -> None:
        for message in messages:
            self.replica.receive(message)

    def garbage(self, detail: str) -> None:
        self.events(ev.GARBAGE, detail)

    def _leader_fields(self) -> dict:
        leader = self.replica.leader_id
        return {"leader_id": leader, "leader_address": self.links.addresses.get(leader, "")
                if leader != self.node_id else self.address}

    def status(self, with_digest: bool = False) -> cpb.NodeStatus:
        replica = self.replica
        raft = replica.node.raft
        log = raft.raft_log
        conf = raft.conf_state
        status = cpb.NodeStatus(
            node_id=self.node_id, role=raft.role.value, term=raft.term, commit=log.committed,
            applied=log.applied, snapshot_index=self.storage.snapshot_metadata.index,
            voters=conf.voters, learners=conf.learners, last_index=log.last_index(),
            first_index=log.first_index(), mode=self.mode.name,
            counters=dict(self.events.counts), **self._leader_fields(),
        )
        if with_digest:
            status.state_digest = replica.state_digest()
        if self.snapshot_server is not None:
            installed = {p: pr.match_index for p, pr in raft.prs.items()
                         if pr.state is not ProgressState.SNAPSHOT} if raft.role is Role.LEADER else {}
            for record in self.snapshot_server.registry.progress():
                done = installed.get(record.to, -1) >= record.snapshot_index
                status.transfers.append(cpb.TransferStatus(
                    peer=record.to, incoming=False, snapshot_index=record.snapshot_index,
                    snapshot_id=record.snapshot_id, size=record.size, bytes_sent=record.bytes_sent,
                    resent_bytes=record.resent_bytes, largest_resend=record.largest_resend,
                    resumptions=record.retries, outcome="installed" if done else record.outcome.value))
        if self.puller is not None:
            for pull in self.puller.progress():
                offer = pull.transfer.offer
                status.transfers.append(cpb.TransferStatus(
                    peer=offer.source, incoming=True, snapshot_index=offer.index, snapshot_id=offer.snapshot_id,
                    size=offer.size, verified_offset=pull.written,  # durable, not just checked
                    resumptions=pull.transfer.retries, outcome=pull.outcome, resumed_from=pull.resumed_from))
        return status

    async def propose(self, command: bytes) -> cpb.ProposeReply:
        try:
            ticket = await self.replica.propose_and_wait(command)
        except NotLeaderError as error:
            return cpb.ProposeReply(ok=False, error=str(error), **self._leader_fields())
        if ticket.error is not None:
            return cpb.ProposeReply(ok=False, error=ticket.error, index=ticket.index, **self._leader_fields())
        return cpb.ProposeReply(ok=True, result=ticket.result or "", index=ticket.index, **self._leader_fields())

    async def get(self, key: str) -> cpb.GetReply:
        """Linearizable read: Raft's ReadIndex (no log write), then the local state machine.

        If the leader cannot confirm the read in time (it has not committed an entry of
        its term yet, say), an empty entry through the log serves as the barrier instead.
        """
        try:
            problem = await self.replica.read_barrier()
        except NotLeaderError as error:
            return cpb.GetReply(ok=False, error=str(error), **self._leader_fields())
        if problem is not None:
            reply = await self.propose(b"")
            if not reply.ok:
                return cpb.GetReply(ok=False, error=f"{problem}; then {reply.error}", **self._leader_fields())
        machine = self.replica.state_machine
        if not hasattr(machine, "get"):
            return cpb.GetReply(ok=False, error=f"the state machine {type(machine).__name__} has no get(key)")
        value = machine.get(key)
        return cpb.GetReply(ok=True, found=value is not None, value=value or b"", **self._leader_fields())

    async def _change(self, change: ConfChange) -> cpb.MembershipReply:
        try:
            ticket = await self.replica.propose_and_wait(conf_change=change)
        except NotLeaderError as error:
            return cpb.MembershipReply(ok=False, error=str(error), **self._leader_fields())
        conf = self.replica.node.raft.conf_state
        return cpb.MembershipReply(ok=ticket.error is None, error=ticket.error or "", index=ticket.index,
                                   voters=conf.voters, learners=conf.learners, **self._leader_fields())

    async def add_node(self, node_id: int, address: str, as_learner: bool) -> cpb.MembershipReply:
        kind = ConfChangeType.ADD_LEARNER_NODE if as_learner else ConfChangeType.ADD_NODE
        return await self._change(ConfChange(kind, node_id, context=address.encode()))

    async def remove_node(self, node_id: int) -> cpb.MembershipReply:
        if node_id == INVALID_ID:
            return cpb.MembershipReply(ok=False, error="a node id >= 1 expected, got 0")
        return await self._change(ConfChange(ConfChangeType.REMOVE_NODE, node_id))

    def compact(self) -> cpb.CompactReply:
        index = self.replica.compact()
        meta = self.storage.snapshot_metadata
        return cpb.CompactReply(snapshot_index=index, size=meta.size, snapshot_id=meta.snapshot_id)
