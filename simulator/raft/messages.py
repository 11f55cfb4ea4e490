"""Values that flow through the Raft core: entries, states, snapshots, messages.

Every value is an immutable ``attrs`` class with tuple fields, so it can be
shared between nodes of an in-process cluster without copying and compared by
value. ``repr`` of every value is valid Python that rebuilds it (fields left at
their defaults are omitted), which is what makes a failing hypothesis example
read as a program.

The names follow raft-rs / etcd raft (``eraftpb``), because the seed document
speaks their language: ``MessageType.APPEND`` is ``MsgAppend``,
``MessageType.SNAPSHOT`` is ``MsgSnapshot`` and so on.
"""

from __future__ import annotations

import enum
import struct

import attrs

#: Node id meaning "nobody" (no leader known, no vote cast).
INVALID_ID = 0

#: ``Message.context`` of a vote request sent because of a leader transfer;
#: it lets the candidate through a voter's leader lease (check-quorum).
CAMPAIGN_TRANSFER = b"CampaignTransfer"


class _ReprEnum(enum.Enum):
    """An enum whose ``repr`` is the Python expression naming the member."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}.{self.name}"


def _repr_without_defaults(value: object) -> str:
    """``Cls(field=value, ...)`` listing only fields that differ from their default."""
    parts = []
    for field in attrs.fields(type(value)):
        current = getattr(value, field.name)
        default = field.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory()
        if default is not attrs.NOTHING and current == default:
            continue
        parts.append(f"{field.name}={current!r}")
    return f"{type(value).__name__}({', '.join(parts)})"


class EntryType(_ReprEnum):
    NORMAL = 0
    CONF_CHANGE = 1  # data: an encoded ConfChange (one server)
    CONF_CHANGE_V2 = 2  # data: an encoded ConfChangeV2 (joint consensus, see membership.py)

    @property
    def is_conf_change(self) -> bool:
        return self is not EntryType.NORMAL


@attrs.frozen(repr=False)
class Entry:
    """One log entry. ``data`` of a ``CONF_CHANGE`` entry is an encoded :class:`ConfChange`."""

    term: int
    index: int
    data: bytes = b""
    entry_type: EntryType = EntryType.NORMAL

    __repr__ = _repr_without_defaults

    @property
    def size(self) -> int:
        """Bytes this entry counts for in message-size limits."""
        return len(self.data)


@attrs.frozen(repr=False)
class HardState:
    """What a node must persist before it sends any message: term, vote, commit."""

    term: int = 0
    vote: int = INVALID_ID
    commit: int = 0

    __repr__ = _repr_without_defaults


@attrs.frozen(repr=False)
class ConfState:
    """Cluster membership: voting members and non-voting learners (sorted tuples).

    In a joint configuration (see :mod:`.membership`) ``voters_outgoing`` holds
    the old voters; a decision then needs a majority of ``voters`` and one of
    ``voters_outgoing``. ``learners_next`` are outgoing voters that become
    learners when the joint configuration is left, and ``auto_leave`` says the
    leader leaves it on its own once it is applied.
    """

    voters: tuple[int, ...] = attrs.field(default=(), converter=tuple)
    learners: tuple[int, ...] = attrs.field(default=(), converter=tuple)
    voters_outgoing: tuple[int, ...] = attrs.field(default=(), converter=tuple)
    learners_next: tuple[int, ...] = attrs.field(default=(), converter=tuple)
    auto_leave: bool = False

    __repr__ = _repr_without_defaults

    def __attrs_post_init__(self) -> None:
        for node_id in self.voters + self.learners + self.voters_outgoing + self.learners_next:
            if not isinstance(node_id, int) or node_id < 1:
                raise ValueError(f"node ids must be integers >= 1, got {node_id!r}")
        for name in ("voters", "learners", "voters_outgoing", "learners_next"):
            value = getattr(self, name)
            if tuple(sorted(set(value))) != value:
                raise ValueError(f"ConfState.{name} must be sorted and unique, got {value!r}")
        both = set(self.learners) & (set(self.voters) | set(self.voters_outgoing))
        if both:
            raise ValueError(f"a node is either a voter or a learner, not both: {sorted(both)}")
        if not set(self.learners_next) <= set(self.voters_outgoing) - set(self.voters):
            raise ValueError(
                f"learners_next {list(self.learners_next)} must be outgoing voters that are not "
                f"incoming voters"
            )
        if (self.learners_next or self.auto_leave) and not self.voters_outgoing:
            raise ValueError("learners_next and auto_leave belong to a joint configuration only")

    @classmethod
    def of(cls, voters=(), learners=(), *, voters_outgoing=(), learners_next=(), auto_leave=False) -> ConfState:
        """Build from any iterables, sorting them."""
        return cls(
            voters=tuple(sorted(voters)),
            learners=tuple(sorted(learners)),
            voters_outgoing=tuple(sorted(voters_outgoing)),
            learners_next=tuple(sorted(learners_next)),
            auto_leave=auto_leave,
        )

    @property
    def members(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.voters + self.learners + self.voters_outgoing)))

    @property
    def all_voters(self) -> tuple[int, ...]:
        """Voters of either half of a joint configuration (just ``voters`` otherwise)."""
        if not self.voters_outgoing:
            return self.voters
        return tuple(sorted(set(self.voters) | set(self.voters_outgoing)))

    @property
    def is_joint(self) -> bool:
        return bool(self.voters_outgoing)


@attrs.frozen(repr=False)
class SnapshotMetadata:
    """Describes a snapshot without carrying its data.

    ``size``, ``digest`` and ``snapshot_id`` are filled by storages that know the
    data (``MemStorageWithSnapshot``, snapshot stores); streaming transfers use
    them to fetch and verify the data out of band. The Raft core itself only
    reads ``index``, ``term`` and ``conf_state``.
    """

    index: int = 0
    term: int = 0
    conf_state: ConfState = ConfState()
    size: int = 0
    digest: str = ""
    snapshot_id: str = ""

    __repr__ = _repr_without_defaults


@attrs.frozen(repr=False)
class Snapshot:
    """Snapshot metadata plus, when it travels embedded, the state machine data.

    ``data is None`` means "metadata only": the data moves out of band.
    """

    metadata: SnapshotMetadata = SnapshotMetadata()
    data: bytes | None = None

    __repr__ = _repr_without_defaults

    @property
    def index(self) -> int:
        return self.metadata.index

    @property
    def term(self) -> int:
        return self.metadata.term

    @property
    def is_empty(self) -> bool:
        return self.metadata.index == 0

    @property
    def has_data(self) -> bool:
        return self.data is not None


class ConfChangeType(_ReprEnum):
    ADD_NODE = 0  # add a voter, or promote a learner to voter
    ADD_LEARNER_NODE = 1
    REMOVE_NODE = 2


_CONF_CHANGE_HEADER = struct.Struct(">BQ")


@attrs.frozen(repr=False)
class ConfChange:
    """A single-server membership change, carried in a ``CONF_CHANGE`` entry."""

    change_type: ConfChangeType
    node_id: int
    context: bytes = b""

    __repr__ = _repr_without_defaults

    def __attrs_post_init__(self) -> None:
        if not 1 <= self.node_id < 2**64:
            raise ValueError(f"conf change node id must be in [1, 2**64), got {self.node_id}")

    def encode(self) -> bytes:
        return _CONF_CHANGE_HEADER.pack(self.change_type.value, self.node_id) + self.context

    @classmethod
    def decode(cls, data: bytes) -> ConfChange:
        """Parse :meth:`encode` output; raises ``ValueError`` naming what was wrong."""
        if len(data) < _CONF_CHANGE_HEADER.size:
            raise ValueError(
                f"conf change needs at least {_CONF_CHANGE_HEADER.size} bytes, got {len(data)}"
            )
        kind, node_id = _CONF_CHANGE_HEADER.unpack_from(data)
        try:
            change_type = ConfChangeType(kind)
        except ValueError:
            known = [t.value for t in ConfChangeType]
            raise ValueError(f"conf change type must be one of {known}, got {kind}") from None
        if node_id == INVALID_ID:
            raise ValueError(f"conf change node id must be in [1, 2**64), got {node_id}")
        return cls(change_type, node_id, bytes(data[_CONF_CHANGE_HEADER.size :]))


class MessageType(_ReprEnum):
    # Local messages: produced inside a node, never sent over the network.
    HUP = "hup"  # start an election (tick or campaign())
    BEAT = "beat"  # leader: send heartbeats
    CHECK_QUORUM = "check_quorum"  # leader: step down unless a quorum was heard from
    SNAP_STATUS = "snap_status"  # report_snapshot(); reject=True means failure
    UNREACHABLE = "unreachable"  # report_unreachable()
    # Messages between nodes.
    PROPOSE = "propose"  # a follower forwards proposals to the leader
    APPEND = "append"
    APPEND_RESPONSE = "append_response"
    REQUEST_VOTE = "request_vote"
    REQUEST_VOTE_RESPONSE = "request_vote_response"
    REQUEST_PRE_VOTE = "request_pre_vote"
    REQUEST_PRE_VOTE_RESPONSE = "request_pre_vote_response"
    SNAPSHOT = "snapshot"
    HEARTBEAT = "heartbeat"
    HEARTBEAT_RESPONSE = "heartbeat_response"
    TRANSFER_LEADER = "transfer_leader"
    TIMEOUT_NOW = "timeout_now"
    READ_INDEX = "read_index"  # read_index(ctx); a follower forwards it to the leader
    READ_INDEX_RESPONSE = "read_index_response"  # the leader's answer: the read index for ctx


LOCAL_MESSAGES = frozenset(
    {
        MessageType.HUP,
        MessageType.BEAT,
        MessageType.CHECK_QUORUM,
        MessageType.SNAP_STATUS,
        MessageType.UNREACHABLE,
    }
)

#: What may carry term 0: local messages, and requests a follower forwards to its leader.
TERMLESS_MESSAGES = LOCAL_MESSAGES | {MessageType.PROPOSE, MessageType.TRANSFER_LEADER, MessageType.READ_INDEX}

RESPONSE_MESSAGES = frozenset(
    {
        MessageType.APPEND_RESPONSE,
        MessageType.REQUEST_VOTE_RESPONSE,
        MessageType.REQUEST_PRE_VOTE_RESPONSE,
        MessageType.HEARTBEAT_RESPONSE,
    }
)

# Plain attributes on the members: checked for every message, and hashing an
# enum member (for a set lookup) costs a Python-level call.
for _member in MessageType:
    _member.is_local = _member in LOCAL_MESSAGES
    _member.is_response = _member in RESPONSE_MESSAGES
del _member

class MessageKinds:
    """:class:`MessageType`'s members as plain class attributes, for the per-message paths.

    On Python 3.11 ``MessageType.APPEND`` is looked up through ``EnumType``'s
    ``__getattr__`` hook, about 0.1 µs, and the core reads a dozen kinds per
    message; a plain class attribute costs a fifth of that. The members are the
    same objects (``MessageKinds.APPEND is MessageType.APPEND``).
    """

    HUP = MessageType.HUP
    BEAT = MessageType.BEAT
    CHECK_QUORUM = MessageType.CHECK_QUORUM
    SNAP_STATUS = MessageType.SNAP_STATUS
    UNREACHABLE = MessageType.UNREACHABLE
    PROPOSE = MessageType.PROPOSE
    APPEND = MessageType.APPEND
    APPEND_RESPONSE = MessageType.APPEND_RESPONSE
    REQUEST_VOTE = MessageType.REQUEST_VOTE
    REQUEST_VOTE_RESPONSE = MessageType.REQUEST_VOTE_RESPONSE
    REQUEST_PRE_VOTE = MessageType.REQUEST_PRE_VOTE
    REQUEST_PRE_VOTE_RESPONSE = MessageType.REQUEST_PRE_VOTE_RESPONSE
    SNAPSHOT = MessageType.SNAPSHOT
    HEARTBEAT = MessageType.HEARTBEAT
    HEARTBEAT_RESPONSE = MessageType.HEARTBEAT_RESPONSE
    TRANSFER_LEADER = MessageType.TRANSFER_LEADER
    TIMEOUT_NOW = MessageType.TIMEOUT_NOW
    READ_INDEX = MessageType.READ_INDEX
    READ_INDEX_RESPONSE = MessageType.READ_INDEX_RESPONSE


#: Fixed per-message overhead used by :attr:`Message.size` (header fields as a wire would carry them).
MESSAGE_HEADER_BYTES = 64


@attrs.frozen(repr=False)
class Message:
    """One Raft message, the union of all kinds (like ``eraftpb::Message``).

    Which fields mean something depends on ``msg_type``:

    - ``APPEND``: ``index``/``log_term`` name the entry preceding ``entries``;
      ``commit`` is the leader's commit index.
    - ``APPEND_RESPONSE``: ``index`` is the follower's last matching index, or on
      ``reject`` the rejected ``index`` with ``reject_hint`` / ``log_term``
      pointing where the leader should probe next (fast backtracking).
    - ``REQUEST_VOTE`` / ``REQUEST_PRE_VOTE``: ``index``/``log_term`` describe the
      candidate's last entry; a pre-vote carries the term it *would* use.
    - ``SNAPSHOT``: ``snapshot`` (data may be ``None`` for out-of-band transfer).
    - ``HEARTBEAT``: ``commit`` is ``min(follower match, leader commit)``;
      ``context`` carries the newest pending ReadIndex context (``Safe`` reads),
      echoed by the ``HEARTBEAT_RESPONSE``.
    - ``READ_INDEX``: one entry whose ``data`` is the caller's read context;
      ``READ_INDEX_RESPONSE``: ``index`` is the read index, ``entries`` echo the context.
    - ``APPEND_RESPONSE`` with ``request_snapshot``: a follower asking for a
      snapshot at or past that index (``RawNode.request_snapshot``).
    - ``REQUEST_VOTE``: ``priority`` is the candidate's election priority.
    """

    msg_type: MessageType
    to: int = INVALID_ID
    from_: int = INVALID_ID
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    snapshot: Snapshot | None = None
    reject: bool = False
    reject_hint: int = 0
    context: bytes = b""
    request_snapshot: int = 0
    priority: int = 0

    __repr__ = _repr_without_defaults

    @property
    def size(self) -> int:
        """Estimated bytes on the wire: header, entry payloads and snapshot data."""
        size = MESSAGE_HEADER_BYTES + len(self.context)
        for entry in self.entries:
            size += 24 + entry.size
        if self.snapshot is not None:
            size += 64 + len(self.snapshot.metadata.conf_state.members) * 8
            if self.snapshot.data is not None:
                size += len(self.snapshot.data)
        return size

    @property
    def is_local(self) -> bool:
        return self.msg_type.is_local

    @property
    def is_response(self) -> bool:
        return self.msg_type.is_response
