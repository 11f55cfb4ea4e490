"""The one place where raftsim reaches into pysyncobj: clock, randomness, wire, workarounds.

pysyncobj (pinned: :data:`PYSYNCOBJ_VERSION`) runs here unmodified: its
``SyncObj`` nodes keep their own Raft logic, message formats and snapshot
transfer. What this module changes, and why, is all of it:

1. **Time.** pysyncobj reads time through ``monotonicTime``, a name it imports
   into ``syncobj.py`` (and its TCP modules). :func:`engine_session` points
   those names at the simulation's virtual clock for as long as a cluster is
   open, and puts them back after.
2. **Randomness.** Election timeouts come from the global ``random``, in the
   private method ``SyncObj.__generateRaftTimeout``. :class:`SeededTimeouts`
   overrides it (name-mangled as ``_SyncObj__generateRaftTimeout``) with a
   per-node ``random.Random`` derived from the run seed.
3. **Set order.** pysyncobj keeps peers in ``set``s of ``Node`` hashed by id;
   a string id would make its send order depend on ``PYTHONHASHSEED``.
   :class:`SimNode` hashes by the node's number instead.
4. **Snapshot bytes.** Its in-memory snapshot is ``gzip(pickle(state))``;
   gzip writes the wall clock into the header. The serializer's ``gzip``
   name is swapped for :data:`_FIXED_MTIME_GZIP` (mtime 0) while a session
   is open, so the same state gives the same bytes.
5. **Wire.** :class:`SimTransport` is a pysyncobj ``Transport`` that hands each
   message, as the object pysyncobj built, to raftsim's
   ``InMemoryClusterTransport`` (latency, bandwidth, loss, partitions). Its
   size on the wire is what pysyncobj's TCP transport would write:
   ``zlib(pickle(message))`` plus a 4-byte length. raftsim pickles to
   measure and never unpickles anything; pysyncobj unpickles its own
   commands and snapshots inside its nodes, as it always does.
6. **Connections.** pysyncobj only talks to peers it was told are connected.
   A simulated connection is up while the link is open both ways and the
   peer runs; the node hears of a change at its next tick, as it would when
   a TCP connection breaks or is re-established.
7. **Private reads.** Progress views need a node's first log index and
   snapshot size, which pysyncobj keeps private; :func:`log_bounds` and
   :func:`held_snapshot_bytes` read them, and nothing else does.

Two workarounds for pysyncobj bugs live here too (``docs/pysyncobj-bugs.md``):

- *Empty-snapshot loop* (``PysyncobjWorkarounds.break_empty_snapshot_loop``): right
  after a log compaction, a leader that owes a follower a snapshot sends
  ``append_entries`` with ``serialized=None`` in a loop that only time ends.
  The transport answers the second such message in one call by reporting
  the follower disconnected, which is the loop's other exit; it reconnects
  it when the call returns. Without the workaround the transport stops the
  call after :data:`LOOP_LIMIT` messages with :class:`EngineLivelock`.
- *Mislabelled last piece* (``PysyncobjWorkarounds.unsplit_commands``): a command of
  at least ``appendEntriesBatchSizeBytes`` is sent in pieces, and pieces
  before the last can be labelled ``finish``; the follower then unpickles a
  truncated entry and raises. The workaround is configuration only: the
  batch size is raised above the largest command (``max_command_bytes``),
  and bigger commands are refused before they reach pysyncobj.
"""

from __future__ import annotations

import contextlib
import gzip
import random
import types
import zlib
from collections.abc import Callable

import attrs
import pysyncobj.pickle as pysyncobj_pickle
import pysyncobj.serializer as pysyncobj_serializer
from pysyncobj import SyncObjConf
from pysyncobj.node import Node
from pysyncobj.transport import Transport

#: The pysyncobj release this adapter was written and tested against.
PYSYNCOBJ_VERSION = "0.3.17"

#: Messages one pysyncobj call may send one follower before it counts as a livelock.
LOOP_LIMIT = 1000

#: Bytes a message occupies on the wire besides zlib(pickle(message)): the length prefix.
FRAME_HEADER = 4


def check_version() -> None:
    from pysyncobj.version import VERSION

    if VERSION != PYSYNCOBJ_VERSION:
        raise RuntimeError(
            f"the pysyncobj engine needs pysyncobj=={PYSYNCOBJ_VERSION}, found {VERSION}; "
            f"install the pinned version"
        )


class EngineLivelock(RuntimeError):
    """A pysyncobj call kept sending without its clock moving (it would never return)."""


@attrs.frozen
class PysyncobjWorkarounds:
    """Which pysyncobj bug workarounds are on (both, unless a scenario shows the bug)."""

    break_empty_snapshot_loop: bool = True
    unsplit_commands: bool = True
    #: Largest command accepted when ``unsplit_commands`` is on.
    max_command_bytes: int = 4 * 1024 * 1024


# -- time and randomness ----------------------------------------------------------

_MONOTONIC_USERS = ("pysyncobj.syncobj", "pysyncobj.transport", "pysyncobj.tcp_connection",
                    "pysyncobj.dns_resolver")


class _FixedMtimeGzip(types.ModuleType):
    """``gzip`` as pysyncobj's serializer sees it: headers carry mtime 0, not the wall clock."""

    def __init__(self) -> None:
        super().__init__("gzip")

    @staticmethod
    def GzipFile(filename=None, mode=None, compresslevel=9, fileobj=None, mtime=None):
        return gzip.GzipFile(filename, mode, compresslevel, fileobj, 0 if mtime is None else mtime)


_FIXED_MTIME_GZIP = _FixedMtimeGzip()
_SESSIONS: list[Callable[[], float]] = []


@contextlib.contextmanager
def engine_session(clock: Callable[[], float]):
    """Point pysyncobj's clock at ``clock`` and fix its gzip mtime while the block runs."""
    import importlib

    check_version()
    modules = [importlib.import_module(name) for name in _MONOTONIC_USERS]
    saved = [module.monotonicTime for module in modules]
    saved_gzip = pysyncobj_serializer.gzip
    if _SESSIONS:
        raise RuntimeError("one pysyncobj cluster at a time: its clock is process-wide")
    _SESSIONS.append(clock)
    try:
        for module in modules:
            module.monotonicTime = clock
        pysyncobj_serializer.gzip = _FIXED_MTIME_GZIP
        yield
    finally:
        for module, original in zip(modules, saved):
            module.monotonicTime = original
        pysyncobj_serializer.gzip = saved_gzip
        _SESSIONS.clear()


class SeededTimeouts:
    """Mixin for ``SyncObj`` subclasses: election timeouts from ``self._election_rng``.

    Set ``_election_rng`` before ``SyncObj.__init__`` runs: it draws a timeout there.
    """

    _election_rng: random.Random

    def _SyncObj__generateRaftTimeout(self) -> float:
        conf = self.conf
        return conf.raftMinTimeout + (conf.raftMaxTimeout - conf.raftMinTimeout) * self._election_rng.random()


# -- nodes and configuration ---------------------------------------------------------


class SimNode(Node):
    """A pysyncobj node named ``n<number>`` whose hash does not depend on ``PYTHONHASHSEED``."""

    def __init__(self, number: int) -> None:
        super().__init__(f"n{number}", number=number)

    def __hash__(self) -> int:
        return self.number

    def __reduce__(self):
        # pysyncobj pickles nodes into membership commands and snapshots.
        return (SimNode, (self.number,))


def node_number(node: Node) -> int:
    return node.number


def make_conf(
    *,
    tick_interval: float,
    compaction_entries: int,
    workarounds: PysyncobjWorkarounds,
    on_state_changed: Callable | None = None,
) -> SyncObjConf:
    """A pysyncobj configuration for a simulated node: driven by ``doTick``, nothing on disk."""
    options = dict(
        autoTick=False,
        autoTickPeriod=tick_interval,
        dynamicMembershipChange=True,
        logCompactionMinEntries=compaction_entries,
        # No fork, no files, no pipes: the snapshot lives in memory, as with pysyncobj's defaults.
        useFork=False,
        fullDumpFile=None,
        journalFile=None,
        pollerType="select",
        onStateChanged=on_state_changed,
    )
    if workarounds.unsplit_commands:
        options["appendEntriesBatchSizeBytes"] = workarounds.max_command_bytes + 1
    return SyncObjConf(**options)


def command_size(syncobj, method: str, args: tuple) -> int:
    """Bytes of the log entry pysyncobj makes of a call to ``@replicated`` ``method`` (pickled as it does).

    This is the length pysyncobj compares with ``appendEntriesBatchSizeBytes``
    when it decides to send an entry in pieces.
    """
    func_id = syncobj._methodToID[syncobj._getFuncName(method)]
    return 1 + len(pysyncobj_pickle.dumps((func_id, args)))


def wire_size(message: dict) -> int:
    """What pysyncobj's TCP transport would write for ``message``."""
    return FRAME_HEADER + len(zlib.compress(pysyncobj_pickle.dumps(message), 3))


# -- private reads ---------------------------------------------------------------------


def log_bounds(syncobj) -> tuple[int, int]:
    """(first, last) index of the node's log (pysyncobj keeps its journal private)."""
    journal = syncobj._SyncObj__raftLog
    return journal[0][1], journal[-1][1]


def snapshot_index(syncobj) -> int:
    """Index of the snapshot a leader sends: the second entry its compacted log keeps."""
    journal = syncobj._SyncObj__raftLog
    return journal[1][1] if len(journal) > 1 else journal[0][1]


def own_snapshot_bytes(syncobj) -> int:
    """Size of the node's own serialized snapshot (what it sends a follower that needs one)."""
    own = syncobj._SyncObj__serializer._Serializer__inMemorySerializedData
    return len(own) if own else 0


def held_snapshot_bytes(syncobj) -> int:
    """Bytes of serialized snapshot the node keeps in memory (its own, plus one being received)."""
    serializer = syncobj._SyncObj__serializer
    own = serializer._Serializer__inMemorySerializedData
    incoming = serializer._Serializer__incomingTransmissionFile
    return (len(own) if own else 0) + (len(incoming) if incoming else 0)


# -- the wire --------------------------------------------------------------------------


@attrs.frozen
class PysyncobjMessage:
    """A pysyncobj message on raftsim's transport: the dict pysyncobj built, addressed and sized."""

    from_: int
    to: int
    kind: str
    size: int
    body: dict = attrs.field(repr=False, eq=False)

    @property
    def snapshot_piece(self) -> tuple[bytes, bool, bool] | None:
        """``(data, is_first, is_last)`` if this message carries a piece of a snapshot."""
        serialized = self.body.get("serialized")
        return serialized if isinstance(serialized, tuple) else None


def message_kind(body: dict) -> str:
    kind = body.get("type", "?")
    if kind == "append_entries":
        if "serialized" in body:
            return "snapshot_piece" if body["serialized"] is not None else "snapshot_empty"
        if "transmission" in body:
            return "entry_piece"
        return "append" if body.get("entries") else "heartbeat"
    return kind


class SimTransport(Transport):
    """pysyncobj's ``Transport`` over raftsim's ``InMemoryClusterTransport``; see the module docstring.

    Built by ``SyncObj`` itself (``transportClass``); :func:`transport_factory`
    binds the raftsim side.
    """

    def __init__(self, syncobj, self_node, other_nodes, *, wire, workarounds: PysyncobjWorkarounds, on_livelock):
        super().__init__(syncobj, self_node, other_nodes)
        self.me = self_node
        self.wire = wire  # raftsim's InMemoryClusterTransport
        self.workarounds = workarounds
        self.on_livelock = on_livelock
        self.peers: dict[int, Node] = {node_number(n): n for n in other_nodes}
        self.connected: set[int] = set()
        self._sent_in_call: dict[int, int] = {}
        self._empty_in_call: dict[int, int] = {}
        self._to_reconnect: list[Node] = []

    # pysyncobj calls these --------------------------------------------------------

    def addNode(self, node) -> None:
        self.peers[node_number(node)] = node

    def dropNode(self, node) -> None:
        number = node_number(node)
        self.peers.pop(number, None)
        self.connected.discard(number)

    def send(self, node, message) -> bool:
        number = node_number(node)
        if number not in self.connected:
            return False
        kind = message_kind(message)
        count = self._sent_in_call[number] = self._sent_in_call.get(number, 0) + 1
        if kind == "snapshot_empty":
            empties = self._empty_in_call[number] = self._empty_in_call.get(number, 0) + 1
            if empties > 1 and self.workarounds.break_empty_snapshot_loop:
                # The loop's own exit for a lost connection; reconnected after the call.
                self.connected.discard(number)
                self._to_reconnect.append(node)
                self._onNodeDisconnected(node)
                return False
        if count > LOOP_LIMIT:
            self.on_livelock(number, kind, count)
            raise EngineLivelock(
                f"n{node_number(self.me)} sent n{number} {count} messages in one call "
                f"(last: {kind}) while its clock stood still"
            )
        self.wire.send(PysyncobjMessage(node_number(self.me), number, kind, wire_size(message), message))
        return True

    # raftsim calls these ----------------------------------------------------------

    def deliver(self, message: PysyncobjMessage) -> None:
        node = self.peers.get(message.from_) or SimNode(message.from_)
        self._onMessageReceived(node, message.body)

    def end_call(self) -> None:
        """A call into pysyncobj returned: reset per-call counters, undo workaround disconnects."""
        self._sent_in_call.clear()
        self._empty_in_call.clear()
        reconnect, self._to_reconnect = self._to_reconnect, []
        for node in reconnect:
            number = node_number(node)
            if number in self.peers and number not in self.connected:
                self.connected.add(number)
                self._onNodeConnected(node)

    def refresh_connections(self, reachable: Callable[[int], bool]) -> None:
        """Tell pysyncobj which peers it can talk to now (in node order)."""
        for number in sorted(self.peers):
            up = reachable(number)
            if up and number not in self.connected:
                self.connected.add(number)
                self._onNodeConnected(self.peers[number])
            elif not up and number in self.connected:
                self.connected.discard(number)
                self._onNodeDisconnected(self.peers[number])


def transport_factory(**bound) -> Callable[..., SimTransport]:
    """``transportClass`` for ``SyncObj``: builds a :class:`SimTransport` bound to the simulation."""

    def build(syncobj, self_node, other_nodes) -> SimTransport:
        return SimTransport(syncobj, self_node, other_nodes, **bound)

    return build


__all__ = [
    "PYSYNCOBJ_VERSION",
    "EngineLivelock",
    "PysyncobjMessage",
    "PysyncobjWorkarounds",
    "SeededTimeouts",
    "SimNode",
    "SimTransport",
    "command_size",
    "engine_session",
    "held_snapshot_bytes",
    "log_bounds",
    "make_conf",
    "own_snapshot_bytes",
    "snapshot_index",
    "transport_factory",
    "wire_size",
]
