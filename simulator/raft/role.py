"""The role a Raft node plays in its current term."""

from __future__ import annotations

from .messages import _ReprEnum


class Role(_ReprEnum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre_candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


class Roles:
    """:class:`Role`'s members as plain class attributes, read on every step (see
    ``messages.MessageKinds`` for why: enum class reads are slow on Python 3.11)."""

    FOLLOWER = Role.FOLLOWER
    PRE_CANDIDATE = Role.PRE_CANDIDATE
    CANDIDATE = Role.CANDIDATE
    LEADER = Role.LEADER
