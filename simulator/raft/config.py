"""Per-node settings of the Raft core (raft-rs ``Config``)."""

from __future__ import annotations

import attrs

from .errors import ConfigError
from .messages import INVALID_ID


@attrs.frozen
class Config:
    """How one node behaves. Times are in ticks; the caller decides what a tick is.

    ``election_tick`` should be about ten times ``heartbeat_tick`` so that a
    follower hears several heartbeats before it gives up on the leader. Each
    election timeout is drawn from ``[election_tick, 2 * election_tick)`` with
    the node's own ``random.Random``, which is what breaks split votes.
    """

    id: int
    election_tick: int = 10
    heartbeat_tick: int = 1
    #: Bytes of entry data per append message; one entry is always sent.
    max_size_per_msg: int = 1024 * 1024
    #: Appends in flight per follower in the replicate state.
    max_inflight_msgs: int = 256
    #: A leader that has not heard from a quorum within an election timeout steps down,
    #: and followers that heard from a leader ignore vote requests for as long.
    check_quorum: bool = True
    #: Ask "would you vote for me?" before bumping the term (§9.6 of the Raft thesis).
    pre_vote: bool = True
    #: Index already applied to the state machine when the node (re)starts; 0 means
    #: "what the snapshot in storage covers".
    applied: int = 0
    #: Bytes of committed entries handed out per ``Ready``; ``None`` for no limit.
    max_committed_size_per_ready: int | None = None

    def validate(self) -> None:
        if not isinstance(self.id, int) or self.id <= INVALID_ID:
            raise ConfigError(f"node id must be a positive integer, got {self.id}")
        if self.heartbeat_tick <= 0:
            raise ConfigError(f"heartbeat_tick must be > 0, got {self.heartbeat_tick}")
        if self.election_tick <= self.heartbeat_tick:
            raise ConfigError(
                f"election_tick must be greater than heartbeat_tick ({self.heartbeat_tick}), "
                f"got {self.election_tick}"
            )
        if self.max_inflight_msgs <= 0:
            raise ConfigError(f"max_inflight_msgs must be > 0, got {self.max_inflight_msgs}")
        if self.max_size_per_msg <= 0:
            raise ConfigError(f"max_size_per_msg must be > 0, got {self.max_size_per_msg}")
        if self.applied < 0:
            raise ConfigError(f"applied must be >= 0, got {self.applied}")
