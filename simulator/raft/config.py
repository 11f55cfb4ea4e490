"""Per-node settings of the Raft core (raft-rs ``Config``)."""

from __future__ import annotations

import attrs

from .errors import ConfigError
from .messages import INVALID_ID
from .read_only import ReadOnlyOption


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
    #: How a leader confirms its leadership before answering ``read_index``:
    #: a heartbeat round (``SAFE``) or the check-quorum lease (``LEASE_BASED``).
    read_only_option: ReadOnlyOption = ReadOnlyOption.SAFE
    #: Election timeouts are drawn from ``[min_election_tick, max_election_tick)``;
    #: 0 means ``election_tick`` and ``2 * election_tick``.
    min_election_tick: int = 0
    max_election_tick: int = 0
    #: Bytes of entry data a leader holds uncommitted before it refuses proposals
    #: (an empty log tail always takes one); ``None`` for no limit.
    max_uncommitted_size: int | None = None
    #: Do not send an append to every follower just to tell it the commit index
    #: moved; followers learn it with the next append or heartbeat.
    skip_bcast_commit: bool = False
    #: Merge appends to the same follower that wait in one ``Ready`` into one message.
    batch_append: bool = False
    #: A follower drops proposals instead of forwarding them to the leader.
    disable_proposal_forwarding: bool = False
    #: Election priority: a voter refuses a candidate with a lower priority than its
    #: own unless the candidate's log is longer. Equal priorities (the default) change nothing.
    priority: int = 0

    @property
    def election_range(self) -> tuple[int, int]:
        """``[low, high)`` of randomized election timeouts."""
        low = self.min_election_tick or self.election_tick
        high = self.max_election_tick or 2 * self.election_tick
        return low, high

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
        low, high = self.election_range
        if low < self.election_tick:
            raise ConfigError(
                f"min_election_tick must be >= election_tick ({self.election_tick}), got {low}"
            )
        if high <= low:
            raise ConfigError(f"max_election_tick must be > min_election_tick ({low}), got {high}")
        if self.read_only_option is ReadOnlyOption.LEASE_BASED and not self.check_quorum:
            raise ConfigError("read_only_option LEASE_BASED needs check_quorum=True (the lease)")
        if self.max_uncommitted_size is not None and self.max_uncommitted_size <= 0:
            raise ConfigError(f"max_uncommitted_size must be > 0 or None, got {self.max_uncommitted_size}")
