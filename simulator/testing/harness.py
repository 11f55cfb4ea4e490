"""A synchronous network of ``RawNode`` s for testing the Raft core without trio.

Like raft-rs's ``harness`` crate and etcd's ``rafttest``: every node runs
the Ready loop in plain Python, messages wait in one FIFO queue, and
tests decide what gets through — drop a link, isolate a node, filter by
any predicate, deliver one message out of order. Every step is checked
against Raft's safety properties (:mod:`simulator.invariants`).

When to use what:

- :meth:`Network.stabilize` delivers until nothing is left to do — the usual
  "let the cluster settle" after a proposal or a fault.
- :meth:`Network.deliver` / :meth:`Network.deliver_at` move one message at a
  time, for tests that care about interleavings (hypothesis does).
- :meth:`Network.tick` advances one node's clock; elections and heartbeats
  happen only through ticks or :meth:`Network.campaign`.

Snapshots: each node's storage is a ``MemStorageWithSnapshot``. With
``embed_snapshots=False`` the leader sends metadata only, and the network
fetches the data from the sender's storage "out of band" on delivery —
a stand-in for the streaming transport that later layers provide.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Iterable

import attrs

from ..checks.invariants import InvariantChecker, NodeView
from ..raft import (
    ConfChange,
    ConfChangeV2,
    Config,
    ConfState,
    Entry,
    EntryType,
    HardState,
    MemStorageWithSnapshot,
    Message,
    MessageType,
    RawNode,
    ReadState,
    Ready,
    Role,
    SnapshotStatus,
    decode_conf_change,
)
from ..snapshots import SNAPSHOT_DIGESTS

MessageFilter = Callable[[Message], bool]
_RECORD = struct.Struct(">QI")


@attrs.define(eq=False)
class AppliedLog:
    """The simplest state machine: the ordered list of applied (index, data) commands.

    Its snapshot is the whole list in a length-prefixed binary form, so a
    follower restored from a snapshot holds exactly the leader's history and
    state machine safety can be checked by comparing lists.
    """

    history: list[tuple[int, bytes]] = attrs.Factory(list)

    def apply(self, entry: Entry) -> None:
        if entry.entry_type is EntryType.NORMAL and entry.data:
            self.history.append((entry.index, entry.data))

    def create_snapshot(self, index: int) -> bytes:
        parts = [
            _RECORD.pack(entry_index, len(data)) + data
            for entry_index, data in self.history
            if entry_index <= index
        ]
        return b"".join(parts)

    def restore_from_snapshot(self, data: bytes) -> None:
        history = []
        offset = 0
        while offset < len(data):
            if offset + _RECORD.size > len(data):
                raise ValueError(
                    f"snapshot record header at byte {offset} needs {_RECORD.size} bytes, "
                    f"{len(data) - offset} left"
                )
            index, length = _RECORD.unpack_from(data, offset)
            offset += _RECORD.size
            if offset + length > len(data):
                raise ValueError(
                    f"snapshot record at byte {offset} claims {length} bytes, "
                    f"{len(data) - offset} left"
                )
            history.append((index, bytes(data[offset : offset + length])))
            offset += length
        self.history = history


@attrs.define(eq=False)
class HarnessNode:
    """One node: its Raft core (``None`` while crashed), its storage and state machine."""

    node_id: int
    config: Config
    storage: MemStorageWithSnapshot
    state_machine: AppliedLog
    rng: random.Random
    raw_node: RawNode | None = None

    @property
    def is_up(self) -> bool:
        return self.raw_node is not None

    def start(self) -> None:
        """(Re)start from storage, as a process restarting on the same disk would."""
        self.state_machine = AppliedLog()
        snapshot = self.storage.full_snapshot()
        if snapshot.data is not None and snapshot.index > 0:
            self.state_machine.restore_from_snapshot(snapshot.data)
        # Apply only what follows the snapshot the state machine was restored from.
        config = attrs.evolve(self.config, applied=max(self.config.applied, snapshot.index))
        self.raw_node = RawNode(config, self.storage, self.rng)

    @property
    def node(self) -> RawNode:
        if self.raw_node is None:
            raise RuntimeError(f"node {self.node_id} is crashed; restart it first")
        return self.raw_node


class Network:
    """Nodes plus the messages in flight between them; see the module docstring."""

    def __init__(
        self,
        voters: Iterable[int] = (1, 2, 3),
        *,
        learners: Iterable[int] = (),
        seed: int = 0,
        config: Callable[[int], Config] | None = None,
        embed_snapshots: bool = True,
        check_invariants: bool = True,
    ) -> None:
        self.seed = seed
        self.embed_snapshots = embed_snapshots
        self.config_for = config or (lambda node_id: Config(id=node_id))
        self.nodes: dict[int, HarnessNode] = {}
        self.in_flight: list[Message] = []
        self.filters: list[MessageFilter] = []
        self.blocked: set[tuple[int, int]] = set()
        self.delivered = 0
        self.dropped = 0
        #: Every ``ReadState`` each node's ``Ready`` handed out, in order.
        self.read_states: dict[int, list[ReadState]] = {}
        self.checker = InvariantChecker() if check_invariants else None
        conf_state = ConfState.of(voters, learners)
        for node_id in conf_state.members:
            self._create(node_id, conf_state)

    def _create(self, node_id: int, conf_state: ConfState) -> HarnessNode:
        storage = MemStorageWithSnapshot.new_with_conf_state(
            conf_state, embed_data=self.embed_snapshots, digests=SNAPSHOT_DIGESTS
        )
        harness_node = HarnessNode(
            node_id=node_id,
            config=self.config_for(node_id),
            storage=storage,
            state_machine=AppliedLog(),
            # One generator per node, derived from the run seed: runs replay exactly.
            rng=random.Random(f"{self.seed}/{node_id}"),
        )
        harness_node.start()
        self.nodes[node_id] = harness_node
        return harness_node

    # -- looking --------------------------------------------------------------

    def node(self, node_id: int) -> RawNode:
        return self.nodes[node_id].node

    def live_ids(self) -> list[int]:
        return [node_id for node_id in sorted(self.nodes) if self.nodes[node_id].is_up]

    def leader_id(self) -> int | None:
        """The live leader with the highest term, or ``None``."""
        leaders = [
            (self.node(i).raft.term, i) for i in self.live_ids() if self.node(i).raft.role is Role.LEADER
        ]
        return max(leaders)[1] if leaders else None

    def applied(self, node_id: int) -> list[bytes]:
        return [data for _, data in self.nodes[node_id].state_machine.history]

    def views(self) -> list[NodeView]:
        return [
            NodeView.of(self.node(i), self.nodes[i].state_machine.history) for i in self.live_ids()
        ]

    def check(self) -> None:
        if self.checker is not None:
            self.checker.observe(self.views())

    # -- the Ready loop ------------------------------------------------------

    def process_ready(self, node_id: int) -> None:
        """Run node ``node_id``'s Ready loop until it has nothing more to hand out."""
        harness_node = self.nodes[node_id]
        node = harness_node.node
        while node.has_ready():
            self._handle_ready(harness_node, node, node.ready())

    def _handle_ready(self, harness_node: HarnessNode, node: RawNode, ready: Ready) -> None:
        storage = harness_node.storage
        if ready.snapshot is not None:
            storage.apply_snapshot_with_data(ready.snapshot)
            harness_node.state_machine.restore_from_snapshot(ready.snapshot.data)
        storage.append(ready.entries)
        if ready.hard_state is not None:
            storage.set_hard_state(ready.hard_state)
        self.in_flight.extend(ready.messages)
        for entry in ready.committed_entries:
            if entry.entry_type.is_conf_change:
                conf_state = node.apply_conf_change(decode_conf_change(entry))
                storage.set_conf_state(conf_state)
            else:
                harness_node.state_machine.apply(entry)
        if ready.read_states:
            self.read_states.setdefault(harness_node.node_id, []).extend(ready.read_states)
        node.advance(ready)

    def process_readies(self) -> None:
        for node_id in self.live_ids():
            self.process_ready(node_id)
        self.check()

    # -- delivering ----------------------------------------------------------

    def passes(self, message: Message) -> bool:
        """Would ``message`` get through the current faults and filters?"""
        if (message.from_, message.to) in self.blocked:
            return False
        target = self.nodes.get(message.to)
        if target is None or not target.is_up:
            return False
        return all(keep(message) for keep in self.filters)

    def deliver_at(self, position: int) -> Message:
        """Deliver (or drop, per the faults) the message at ``position`` in the queue."""
        message = self.in_flight.pop(position)
        if not self.passes(message):
            self.dropped += 1
            self._report_lost_snapshot(message)
            return message
        if (
            message.msg_type is MessageType.SNAPSHOT
            and message.snapshot is not None
            and message.snapshot.data is None
        ):
            message = self._fetch_out_of_band(message)
            if message is None:
                return message
        self.delivered += 1
        self.node(message.to).step(message)
        sender = self.nodes.get(message.from_)
        if message.msg_type is MessageType.SNAPSHOT and sender is not None and sender.is_up:
            sender.node.report_snapshot(message.to, SnapshotStatus.FINISH)
        self.process_readies()
        return message

    def deliver(self) -> Message:
        return self.deliver_at(0)

    def _fetch_out_of_band(self, message: Message) -> Message | None:
        sender = self.nodes[message.from_].storage
        try:
            data = sender.snapshot_data(message.snapshot.metadata.snapshot_id)
        except KeyError:
            # The sender compacted past it meanwhile: the transfer fails, Raft retries.
            self.dropped += 1
            self._report_lost_snapshot(message)
            return None
        return attrs.evolve(message, snapshot=attrs.evolve(message.snapshot, data=data))

    def _report_lost_snapshot(self, message: Message) -> None:
        sender = self.nodes.get(message.from_)
        if message.msg_type is MessageType.SNAPSHOT and sender is not None and sender.is_up:
            sender.node.report_snapshot(message.to, SnapshotStatus.FAILURE)

    def stabilize(self, max_messages: int = 100_000) -> None:
        """Process readies and deliver until the network is quiet."""
        self.process_readies()
        for _ in range(max_messages):
            if not self.in_flight:
                return
            self.deliver()
        raise RuntimeError(f"network did not settle within {max_messages} messages")

    def send(self, message: Message) -> None:
        """Put a hand-made message in flight (tests of bad input use this)."""
        self.in_flight.append(message)

    # -- faults ----------------------------------------------------------------

    def cut(self, a: int, b: int) -> None:
        """Drop everything between ``a`` and ``b``, both ways."""
        self.blocked |= {(a, b), (b, a)}

    def drop(self, from_: int, to: int) -> None:
        """Drop everything from ``from_`` to ``to`` (one way)."""
        self.blocked.add((from_, to))

    def isolate(self, node_id: int) -> None:
        for other in self.nodes:
            if other != node_id:
                self.cut(node_id, other)

    def partition(self, *groups: Iterable[int]) -> None:
        """Only nodes in the same group can talk; nodes in no group are isolated."""
        group_of = {node_id: g for g, members in enumerate(groups) for node_id in members}
        for a in self.nodes:
            for b in self.nodes:
                if a != b and (group_of.get(a, -1 - a) != group_of.get(b, -1 - b)):
                    self.blocked.add((a, b))

    def heal(self) -> None:
        """Remove every link fault and filter."""
        self.blocked.clear()
        self.filters.clear()

    def add_filter(self, keep: MessageFilter) -> None:
        """Messages for which ``keep`` returns False are dropped."""
        self.filters.append(keep)

    def ignore(self, msg_type: MessageType) -> None:
        self.add_filter(lambda message: message.msg_type is not msg_type)

    def crash(self, node_id: int) -> None:
        """Lose the node's volatile state; its storage survives. Its queued messages stay in flight."""
        self.nodes[node_id].raw_node = None

    def restart(self, node_id: int) -> None:
        self.nodes[node_id].start()
        self.process_readies()

    # -- driving ---------------------------------------------------------------

    def tick(self, node_id: int, times: int = 1) -> None:
        for _ in range(times):
            self.node(node_id).tick()
            self.process_ready(node_id)
        self.check()

    def tick_all(self, times: int = 1) -> None:
        for _ in range(times):
            for node_id in self.live_ids():
                self.node(node_id).tick()
            self.process_readies()

    def campaign(self, node_id: int) -> None:
        """Make ``node_id`` campaign and let the cluster settle."""
        self.node(node_id).campaign()
        self.stabilize()

    def propose(self, node_id: int, data: bytes) -> None:
        self.node(node_id).propose(data)
        self.process_readies()

    def propose_conf_change(self, node_id: int, change: ConfChange | ConfChangeV2) -> None:
        self.node(node_id).propose_conf_change(change)
        self.process_readies()

    def add_node(self, node_id: int) -> RawNode:
        """Start an empty node (no membership, no log), as a machine joining would be."""
        if node_id in self.nodes:
            raise ValueError(f"node {node_id} already exists")
        return self._create(node_id, ConfState()).node

    def compact(self, node_id: int, index: int | None = None) -> None:
        """Snapshot node's state machine at ``index`` (default: applied) and compact its log."""
        harness_node = self.nodes[node_id]
        node = harness_node.node
        index = node.raft.raft_log.applied if index is None else index
        data = harness_node.state_machine.create_snapshot(index)
        harness_node.storage.create_snapshot(index, harness_node.storage.conf_state, data)
        harness_node.storage.compact(index + 1)

    def hard_state(self, node_id: int) -> HardState:
        return self.nodes[node_id].storage.hard_state
