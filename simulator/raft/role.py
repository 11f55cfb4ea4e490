"""The role a Raft node plays in its current term."""

from __future__ import annotations

from .messages import _ReprEnum


class Role(_ReprEnum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre_candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"
