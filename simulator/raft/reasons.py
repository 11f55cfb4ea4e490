"""Why a message was ignored or refused: the keys of ``RaftStatistics.rejections``.

One name per reason, shared by every part of the core, so a test or a
report can ask for ``rejected(MALFORMED)`` without spelling it twice.
"""

STALE_TERM = "stale_term"
VOTE_IN_LEASE = "vote_ignored_in_leader_lease"
MALFORMED = "malformed"
MISADDRESSED = "misaddressed"
LOCAL_FROM_NETWORK = "local_message_from_network"
UNKNOWN_SENDER = "unknown_sender"
APPEND_MISMATCH = "append_log_mismatch"
APPEND_CONFLICTS_COMMITTED = "append_conflicts_with_committed"
COMMIT_PAST_LOG = "commit_past_log"
PROPOSAL_DROPPED = "proposal_dropped"
CONF_CHANGE_DROPPED = "conf_change_dropped_while_pending"
SNAPSHOT_NOT_NEWER = "snapshot_not_newer"
SNAPSHOT_UNAVAILABLE = "snapshot_temporarily_unavailable"
TRANSFER_TO_NON_VOTER = "transfer_to_non_voter"
WRONG_ROLE = "unexpected_for_role"
#: A forwarded membership change that does not apply to the leader's configuration.
CONF_CHANGE_INVALID = "conf_change_invalid"
#: A committed membership change that does not apply when its turn comes (kept the old configuration).
CONF_CHANGE_REFUSED_AT_APPLY = "conf_change_refused_at_apply"
#: A read request with no leader to confirm it (the caller retries).
READ_DROPPED = "read_index_dropped"
#: A proposal over ``Config.max_uncommitted_size``.
UNCOMMITTED_SIZE_EXCEEDED = "uncommitted_size_exceeded"
#: A proposal reaching a follower with ``disable_proposal_forwarding`` set.
PROPOSAL_NOT_FORWARDED = "proposal_forwarding_disabled"

#: Not a rejection but a count in ``RaftStatistics.events``: a campaign (an election
#: timeout or a leader's hand-over) refused while a committed membership change is
#: unapplied. The node runner reads it to say why a hand-over led nowhere.
CAMPAIGN_REFUSED_UNAPPLIED_CONF_CHANGE = "campaign_refused_unapplied_conf_change"
