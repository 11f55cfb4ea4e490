"""Membership changes: single-server changes and joint consensus (raft-rs ``confchange``).

Two kinds of change travel in the log:

- :class:`~simulator.raft.messages.ConfChange` (entry type ``CONF_CHANGE``):
  one server added, promoted, made a learner or removed. Safe on its own
  because two majorities of configurations that differ by one voter always
  overlap.
- :class:`ConfChangeV2` (entry type ``CONF_CHANGE_V2``): any number of
  changes at once. More than one voter changing at a time needs *joint
  consensus* (§6 of the Raft paper): the cluster first enters a joint
  configuration where every decision needs a majority of the old voters
  (``voters_outgoing``) *and* of the new ones (``voters``), then leaves it.
  Leaving happens automatically (the leader proposes the empty change once
  the joint one is applied) or explicitly (the application proposes the empty
  ``ConfChangeV2``). A voter demoted to learner while joint stays a voter of
  the outgoing half until then; ``learners_next`` remembers it.

:func:`changed_conf_state` is the one place that decides whether a change
applies to a configuration and what comes out. The leader calls it before a
change enters the log (for its own proposals and forwarded ones alike), and
every node calls it again when the change is applied, so a change that
slipped through (a forged entry, an old log) is refused on every node the
same way instead of crashing or leaving no voter.
"""

from __future__ import annotations

import struct

import attrs

from .errors import ConfChangePendingError, InvalidConfChangeError
from .messages import (
    INVALID_ID,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    _repr_without_defaults,
    _ReprEnum,
)
from .reasons import CONF_CHANGE_REFUSED_AT_APPLY
from .role import Role


class ConfChangeTransition(_ReprEnum):
    """How a ``ConfChangeV2`` uses joint consensus (raft-rs ``ConfChangeTransition``)."""

    #: Joint consensus when more than one change, left automatically; a single change applies directly.
    AUTO = 0
    #: Always joint, left automatically once applied.
    IMPLICIT = 1
    #: Always joint, left only when the application proposes the empty ``ConfChangeV2``.
    EXPLICIT = 2


@attrs.frozen(repr=False)
class ConfChangeSingle:
    """One member's change inside a :class:`ConfChangeV2`."""

    change_type: ConfChangeType
    node_id: int

    __repr__ = _repr_without_defaults

    def __attrs_post_init__(self) -> None:
        if not 1 <= self.node_id < 2**64:
            raise ValueError(f"conf change node id must be in [1, 2**64), got {self.node_id}")


_V2_HEADER = struct.Struct(">BBH")  # version, transition, number of changes
_V2_CHANGE = struct.Struct(">BQ")
_V2_VERSION = 2


@attrs.frozen(repr=False)
class ConfChangeV2:
    """Several membership changes at once; empty ``changes`` means "leave the joint configuration"."""

    changes: tuple[ConfChangeSingle, ...] = attrs.field(default=(), converter=tuple)
    transition: ConfChangeTransition = ConfChangeTransition.AUTO
    context: bytes = b""

    __repr__ = _repr_without_defaults

    @classmethod
    def of(cls, *, add=(), add_learners=(), remove=(), transition=ConfChangeTransition.AUTO):
        """Changes from node-id lists: voters to add, learners to add (or demote to), nodes to remove."""
        changes = [ConfChangeSingle(ConfChangeType.ADD_NODE, n) for n in add]
        changes += [ConfChangeSingle(ConfChangeType.ADD_LEARNER_NODE, n) for n in add_learners]
        changes += [ConfChangeSingle(ConfChangeType.REMOVE_NODE, n) for n in remove]
        return cls(tuple(changes), transition)

    def enter_joint(self) -> bool | None:
        """``None`` for a direct change, else whether to leave the joint configuration automatically."""
        if self.transition is not ConfChangeTransition.AUTO or len(self.changes) > 1:
            return self.transition is not ConfChangeTransition.EXPLICIT
        return None

    @property
    def leave_joint(self) -> bool:
        return not self.changes

    def encode(self) -> bytes:
        parts = [_V2_HEADER.pack(_V2_VERSION, self.transition.value, len(self.changes))]
        parts += [_V2_CHANGE.pack(c.change_type.value, c.node_id) for c in self.changes]
        return b"".join(parts) + self.context

    @classmethod
    def decode(cls, data: bytes) -> ConfChangeV2:
        """Parse :meth:`encode` output; raises ``ValueError`` naming what was wrong."""
        if len(data) < _V2_HEADER.size:
            raise ValueError(f"conf change v2 needs at least {_V2_HEADER.size} bytes, got {len(data)}")
        version, transition, count = _V2_HEADER.unpack_from(data)
        if version != _V2_VERSION:
            raise ValueError(f"conf change v2 version must be {_V2_VERSION}, got {version}")
        try:
            kind = ConfChangeTransition(transition)
        except ValueError:
            known = [t.value for t in ConfChangeTransition]
            raise ValueError(f"conf change transition must be one of {known}, got {transition}") from None
        end = _V2_HEADER.size + count * _V2_CHANGE.size
        if len(data) < end:
            raise ValueError(f"conf change v2 announces {count} changes ({end} bytes), got {len(data)} bytes")
        changes = []
        for offset in range(_V2_HEADER.size, end, _V2_CHANGE.size):
            change_type, node_id = _V2_CHANGE.unpack_from(data, offset)
            try:
                change_kind = ConfChangeType(change_type)
            except ValueError:
                known = [t.value for t in ConfChangeType]
                raise ValueError(f"conf change type must be one of {known}, got {change_type}") from None
            if node_id == INVALID_ID:
                raise ValueError(f"conf change node id must be in [1, 2**64), got {node_id}")
            changes.append(ConfChangeSingle(change_kind, node_id))
        return cls(tuple(changes), kind, bytes(data[end:]))


AnyConfChange = ConfChange | ConfChangeV2


def conf_change_entry(change: AnyConfChange) -> Entry:
    """The (unstamped) log entry that carries ``change``."""
    entry_type = EntryType.CONF_CHANGE if isinstance(change, ConfChange) else EntryType.CONF_CHANGE_V2
    return Entry(term=0, index=0, data=change.encode(), entry_type=entry_type)


def decode_conf_change(entry: Entry) -> AnyConfChange:
    """The change an entry carries; ``ValueError`` naming what was wrong if its data does not decode."""
    if entry.entry_type is EntryType.CONF_CHANGE:
        return ConfChange.decode(entry.data)
    if entry.entry_type is EntryType.CONF_CHANGE_V2:
        return ConfChangeV2.decode(entry.data)
    raise ValueError(f"entry {entry.index} is {entry.entry_type!r}, not a membership change")


def is_joint(conf: ConfState) -> bool:
    return bool(conf.voters_outgoing)


def changed_conf_state(conf: ConfState, change: AnyConfChange, *, strict: bool = True) -> ConfState:
    """The configuration after ``change``; ``InvalidConfChangeError`` if it cannot apply to ``conf``.

    ``strict`` (before a change enters the log) also refuses changes that
    would do nothing: adding a voter twice, removing a stranger. Applying a
    committed change is lenient about those, as raft-rs is: a newcomer that
    installed a snapshot already listing it applies its own "add" as a no-op.
    What is refused in either case is what would break the cluster: leaving
    no voter, or mixing single-server and joint changes.
    """
    if isinstance(change, ConfChange):
        return _simple(conf, change, strict)
    if change.leave_joint and change.transition is ConfChangeTransition.AUTO:
        return _leave_joint(conf)
    auto_leave = change.enter_joint()
    if auto_leave is None:
        (single,) = change.changes
        return _simple(conf, ConfChange(single.change_type, single.node_id), strict)
    return _enter_joint(conf, change.changes, auto_leave)


def _simple(conf: ConfState, change: ConfChange, strict: bool) -> ConfState:
    """One server at a time, with the checks single-server changes always had."""
    if is_joint(conf):
        raise InvalidConfChangeError(
            "cannot apply a single-server change in a joint configuration; leave it first"
        )
    node = change.node_id
    kind = change.change_type
    if kind is ConfChangeType.ADD_LEARNER_NODE and node in conf.voters:
        if not strict:
            return conf  # a single-server change never demotes a voter: a no-op, as it always was
        raise InvalidConfChangeError(
            f"node {node} is a voter; demote it with a joint change (ConfChangeV2)"
        )
    if strict:
        if kind is ConfChangeType.ADD_NODE and node in conf.voters:
            raise InvalidConfChangeError(f"node {node} is already a voter")
        if kind is ConfChangeType.ADD_LEARNER_NODE and node in conf.learners:
            raise InvalidConfChangeError(f"node {node} is already a learner")
        if kind is ConfChangeType.REMOVE_NODE and node not in conf.members:
            raise InvalidConfChangeError(
                f"node {node} is not a member; members are {list(conf.members)}"
            )
    voters, learners = set(conf.voters), set(conf.learners)
    _apply_single(voters, set(), learners, set(), kind, node)
    if conf.voters and not voters:
        raise InvalidConfChangeError(f"cannot remove node {node}, the last voter")
    return ConfState.of(voters, learners)


def _enter_joint(conf: ConfState, changes, auto_leave: bool) -> ConfState:
    if is_joint(conf):
        raise InvalidConfChangeError("already in a joint configuration; leave it before the next change")
    if not conf.voters:
        raise InvalidConfChangeError("cannot make a configuration without voters joint")
    outgoing = set(conf.voters)
    voters, learners, learners_next = set(conf.voters), set(conf.learners), set()
    for single in changes:
        _apply_single(voters, outgoing, learners, learners_next, single.change_type, single.node_id)
    if not voters:
        raise InvalidConfChangeError("the change removes every voter of the new configuration")
    return ConfState.of(voters, learners, voters_outgoing=outgoing,
                        learners_next=learners_next, auto_leave=auto_leave)


def _leave_joint(conf: ConfState) -> ConfState:
    if not is_joint(conf):
        raise InvalidConfChangeError("not in a joint configuration; there is nothing to leave")
    return ConfState.of(conf.voters, set(conf.learners) | set(conf.learners_next))


def _apply_single(voters: set, outgoing: set, learners: set, learners_next: set, kind, node: int) -> None:
    """raft-rs ``Changer::apply``: change the incoming half; the outgoing half never changes."""
    if kind is ConfChangeType.ADD_NODE:
        voters.add(node)
        learners.discard(node)
        learners_next.discard(node)
    elif kind is ConfChangeType.ADD_LEARNER_NODE:
        if node in learners:
            return
        voters.discard(node)
        if node in outgoing:
            # Still a voter of the outgoing half: it becomes a learner when the joint state ends.
            learners_next.add(node)
        else:
            learners.add(node)
    else:
        voters.discard(node)
        learners.discard(node)
        learners_next.discard(node)


class MembershipChanges:
    """Checking, applying and leaving membership changes; mixed into ``Raft``."""

    def check_conf_change(self, change: AnyConfChange) -> ConfState:
        """What a leader checks before ``change`` enters the log; raises naming what is wrong.

        The one-change-at-a-time rule (a change is pending until applied) and
        :func:`changed_conf_state` against the configuration in force.
        """
        if self.pending_conf_index > self.raft_log.applied:
            raise ConfChangePendingError(
                f"membership change at index {self.pending_conf_index} is not applied yet "
                f"(applied {self.raft_log.applied}); propose one change at a time"
            )
        return changed_conf_state(self.prs.conf_state, change)

    def apply_conf_change(self, change: AnyConfChange) -> ConfState:
        """Apply a committed membership change and return the membership now in force.

        A change that does not apply (it would leave no voter, or was never
        valid) is refused here on every node alike: the configuration stays
        as it was and the refusal is counted.
        """
        try:
            conf_state = changed_conf_state(self.prs.conf_state, change, strict=False)
        except InvalidConfChangeError:
            self._reject(CONF_CHANGE_REFUSED_AT_APPLY)
            return self.prs.conf_state
        self.prs.apply_conf(conf_state, self.raft_log.last_index() + 1)
        self.events["conf_changes_applied"] += 1
        if conf_state.is_joint:
            self.events["joint_configurations_entered"] += 1
        elif isinstance(change, ConfChangeV2) and change.leave_joint:
            self.events["joint_configurations_left"] += 1
        if self.role is Role.LEADER:
            self.after_leader_conf_change()
        return conf_state

    def maybe_auto_leave(self) -> None:
        """Leader: once a joint configuration with ``auto_leave`` is applied, propose leaving it."""
        conf = self.prs.conf_state
        if not (conf.auto_leave and self.role is Role.LEADER):
            return
        if self.raft_log.applied >= self.pending_conf_index:
            self.events["joint_auto_leave_proposed"] += 1
            self.append_entries([conf_change_entry(ConfChangeV2())])
            self.pending_conf_index = self.raft_log.last_index()
            self.broadcast_append()

