"""Trace records told in words a learner understands.

:func:`narrate` turns one :class:`~simulator.trace.TraceRecord` into a
sentence ("n4 asked n1 for snapshot 300 from offset 3 MiB"), or ``None`` for
records that would only be noise in a story (each message sent, each
commit). The command line prints these lines; the live view scrolls them;
golden outputs of the scenarios are made of them.
"""

from __future__ import annotations

from .trace import CLUSTER, TraceRecord


def human_bytes(count: int) -> str:
    """``337513`` -> ``329.6 KiB``; exact units stay exact (``3 MiB``)."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            if unit == "B":
                return f"{int(value)} B"
            text = f"{value:.1f}".rstrip("0").rstrip(".")
            return f"{text} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _nodes(ids) -> str:
    return ", ".join(f"n{node}" for node in ids) or "none"


def _fault(fields: dict) -> str | None:
    fault = fields.get("fault")
    node = fields.get("node_id")
    if fault == "partition":
        groups = " | ".join("{" + _nodes(group) + "}" for group in fields.get("groups", []))
        return f"the network splits: {groups}; nodes talk only within their group"
    sentences = {
        "isolate": f"n{node} is cut off from everyone",
        "one_way": f"messages from n{fields.get('src')} to n{fields.get('dst')} are now lost (one way)",
        "bridge": "the network splits in two halves joined only through the middle node",
        "majorities_ring": "every node now sees a majority, but no two see the same one",
        "heal": "the network heals: every link works again",
        "set_link": f"link n{fields.get('src')}->n{fields.get('dst')} changes: {fields.get('config')}",
        "set_links": f"every link changes: {fields.get('config')}",
        "reset_links": "every link is back to how the cluster started",
        "crash": f"n{node} crashes: its memory is lost, its disk is kept"
        if fields.get("storage") != "none" else f"n{node} crashes: it keeps nothing on disk, so all is lost",
        "restart": f"n{node} restarts from its disk"
        if fields.get("storage") != "none" else f"n{node} restarts empty and must catch up from the leader",
        "pause": f"n{node} freezes (a long pause): it keeps its state but reacts to nothing",
        "resume": f"n{node} wakes up and handles what queued up",
        "compact": f"n{node} is told to compact its log now"
        + (f" (snapshot at {fields['index']})" if fields.get("index") is not None else ""),
        "fail_chunk": _chunk_fault(fields),
        "chunk_fault_crash": f"n{node} crashes ({fields.get('reason')})",
        "transfer_leader": f"n{fields.get('src')} is asked to hand leadership to n{fields.get('to')}",
        "disarm_chunk_faults": "chunk faults not yet fired are disarmed",
        "fail_stop": f"n{node} stops ({fields.get('reason')}); it restarts from its disk in a second",
        "clock_drift": _clock_drift(node, fields.get("percent")),
        "clock_jump": _clock_jump(node, fields.get("seconds"), fields.get("ticks")),
        # Real-network runs (--transport grpc): the fault proxy closes connections.
        "cut": f"the connections between n{fields.get('src')} and n{fields.get('dst')} are closed mid-stream",
        "cut_stream": f"the proxy cuts n{node}'s snapshot stream, "
                      f"{human_bytes(fields.get('offset') or 0)} verified",
    }
    return sentences.get(fault, f"fault: {fault}")


def _clock_drift(node, percent) -> str:
    if not percent:
        return f"n{node}'s clock keeps true time again"
    pace = "fast" if percent > 0 else "slow"
    return (f"n{node}'s clock now runs {abs(percent):g}% {pace}: its timeouts pass "
            f"{'sooner' if percent > 0 else 'later'} than its peers'")


def _clock_jump(node, seconds, ticks) -> str:
    if seconds is None:
        return f"n{node}'s clock jumps"
    if seconds > 0:
        return f"n{node}'s clock leaps {seconds:g} s ahead: {ticks} ticks pass for it at once"
    return f"n{node}'s clock is set back {-seconds:g} s: it will not tick until true time catches up"


def _chunk_fault(fields: dict) -> str:
    target = f" to n{fields['to']}" if fields.get("to") else ""
    what = {
        "drop": "will be lost",
        "duplicate": "will arrive twice",
        "corrupt": "will arrive with a flipped byte",
        "corrupt_source": "will carry a flipped byte under a valid checksum (a bad read at the sender)",
        "delay": "will arrive late",
        "cut": "will be the last before the stream is cut",
        "crash_sender": "will be the last before its sender crashes",
        "crash_receiver": "will be the last before its receiver crashes",
    }.get(fields.get("action"), fields.get("action"))
    return f"armed: snapshot chunk {fields.get('k')}{target} {what}"


def _role(node: int, fields: dict) -> str:
    role, term, leader = fields.get("role"), fields.get("term"), fields.get("leader")
    if role == "leader":
        return f"n{node} became leader of term {term}"
    if role == "candidate":
        return f"n{node} started an election for term {term}"
    if role == "pre_candidate":
        return f"n{node} asks the others whether it could win an election (pre-vote, after term {term})"
    if leader:
        return f"n{node} follows n{leader} in term {term}"
    return f"n{node} is a follower in term {term}, with no leader known"


def narrate(record: TraceRecord) -> str | None:
    """One sentence for ``record``, or ``None`` if it is not part of the story."""
    fields = dict(record.fields)
    node = record.node
    kind = record.kind
    if node == CLUSTER:
        if kind == "say":
            return fields.get("text")
        if kind == "check":
            return f"check {'passed' if fields.get('ok') else 'FAILED'}: {fields.get('text')}"
        if kind == "fault":
            return _fault(fields)
        if kind == "node_added":
            return f"a new node n{fields.get('node_id')} starts, empty, to join the cluster"
        if kind == "node_removed":
            return f"n{fields.get('node_id')} left the cluster and was stopped"
        return None
    index = fields.get("index")
    size = fields.get("size")
    if kind == "drop" and fields.get("reason") == "stream cut":
        # The one message loss worth a line: the moment a snapshot stream is cut.
        return (f"n{fields.get('from')}'s chunk at offset {human_bytes(fields.get('offset', 0))} to "
                f"n{fields.get('to')} is lost: the stream is cut, and stays cut until n{fields.get('to')} asks again")
    if kind == "role":
        return _role(node, fields)
    if kind == "start":
        snapshot = fields.get("snapshot_index")
        since = f" from its snapshot at {snapshot}" if snapshot else ""
        return f"n{node} started{since} (term {fields.get('term')})"
    if kind == "campaign_refused":
        return (f"n{node} was handed the leadership by n{fields.get('leader')} but may not campaign: "
                f"{fields.get('reason')}; an election timeout will pick the next leader")
    if kind == "conf_change":
        change = fields.get("change")
        target = f"n{fields.get('node_id')}"
        verb = {"add_learner_node": f"added {target} as a learner",
                "add_node": f"made {target} a voter",
                "remove_node": f"removed {target}"}.get(change, change)
        return (f"n{node} applied a membership change: {verb} "
                f"(voters {_nodes(fields.get('voters', []))}; learners {_nodes(fields.get('learners', []))})")
    if kind == "snapshot_created":
        return f"n{node} saved a snapshot of its state at index {index} ({human_bytes(size)})"
    if kind == "compaction":
        return f"n{node} compacted its log: entries before {fields.get('first_index')} are gone"
    if kind == "snapshot_sent":
        to = fields.get("to")
        if fields.get("mode") == "pysyncobj":
            again = " again from its first piece" if fields.get("restart") else ""
            return (f"n{node} sends snapshot {index} ({human_bytes(size)}) to n{to}{again}, "
                    "in pieces inside append_entries, none acknowledged (pysyncobj)")
        why = f" (auto: {fields['why']})" if fields.get("why") else ""  # Auto says why it chose
        if fields.get("mode") == "streaming":
            return (f"n{node} offered snapshot {index} ({human_bytes(size)}) to n{to}: "
                    f"metadata only, the data streams out of band{why}")
        return f"n{node} sent snapshot {index} ({human_bytes(size)}) to n{to} inside one Raft message{why}"
    if kind == "snapshot_request":
        offset = fields.get("offset")
        where = "from the start" if not offset else f"from offset {human_bytes(offset)}"
        return f"n{node} asked n{fields.get('to')} for snapshot {index} {where}"
    if kind == "transfer_started":
        return f"n{node} starts receiving snapshot {index} ({human_bytes(size)}) from n{fields.get('source')}"
    if kind == "transfer_resumed":
        return (f"n{node} resumes snapshot {index} from n{fields.get('source')} at offset "
                f"{human_bytes(fields.get('offset'))}: {fields.get('reason')}")
    if kind == "transfer_delegated":
        return (f"n{node} asks n{fields.get('delegate')}, nearer than the leader n{fields.get('leader')}, "
                f"to send snapshot {index} in its place (a delegated snapshot)")
    if kind == "transfer_restarted":
        return (f"n{node} throws away the {human_bytes(fields.get('discarded'))} of snapshot {index} it had "
                f"verified and starts over from the first byte (its policy keeps no partial transfer)")
    if kind == "chunk_rejected":
        return f"n{node} rejected a chunk from n{fields.get('source')}: {fields.get('reason')}"
    if kind == "transfer_retry":
        return (f"n{node} got nothing new for a while and asks again from offset "
                f"{human_bytes(fields.get('offset'))} (retry {fields.get('attempt')})")
    if kind == "transfer_installed":
        return f"n{node} verified snapshot {index} against its digest and hands it to Raft"
    if kind == "snapshot_installed":
        return (f"n{node} installed snapshot {index} ({human_bytes(size)}): its state now equals "
                f"the leader's at index {index}")
    if kind == "transfer_sent":
        return (f"n{node} finished sending snapshot {index} to n{fields.get('to')} "
                f"({human_bytes(fields.get('bytes_sent'))} sent)")
    if kind in ("transfer_failed", "transfer_aborted", "transfer_refused", "transfer_superseded"):
        verb = {"transfer_failed": "gave up sending", "transfer_aborted": "gave up receiving",
                "transfer_refused": "refused", "transfer_superseded": "dropped"}[kind]
        subject = f"snapshot {index}" if index is not None else "a snapshot transfer"
        return f"n{node} {verb} {subject}: {fields.get('reason')}"
    if kind == "transfer_digest_mismatch":
        return f"n{node} found snapshot {index} does not match its digest and starts over"
    # A disk that failed or lied (docs/disk_faults.md): what the node noticed and what it does.
    if kind == "compaction_failed":
        return f"n{node} could not save its snapshot at {index}, so it keeps its log: {fields.get('reason')}"
    if kind == "snapshot_lost":
        return (f"n{node} cannot trust its snapshot {index} ({fields.get('reason')}): it claims nothing, "
                "keeps its log and term, and asks the leader for a snapshot")
    if kind == "snapshot_recovered":
        return f"n{node} is whole again: snapshot {index} replaces the snapshot {fields.get('lost_index')} it lost"
    if kind == "install_read_failed":
        return (f"n{node} could not read snapshot {index} back from its store (try {fields.get('attempt')}): "
                f"{fields.get('reason')}")
    if kind == "store_reopened":
        return (f"n{node} reopened its snapshot store: snapshots {fields.get('snapshots')}, "
                f"partial transfers {fields.get('partials')}")
    return None
