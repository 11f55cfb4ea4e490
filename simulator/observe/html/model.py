"""What the HTML page shows, as plain data built from trace records alone.

:func:`page_model` reads a run's records (and, when there is one, the
memory timeline of the cluster, which the trace does not hold) and returns
one JSON-ready dict: nodes, role spans, outages and cut links, messages,
each node's log changes, transfers, memory and the narrated story. The page
(``page.js``) replays it; nothing here knows how it is drawn.

Long runs: every message is kept unless there are more than
``max_messages``; then the routine ones are thinned, heartbeats first (and
their responses), then append responses, keeping one in
``stride`` per link and type, while every election message, snapshot
message, chunk and lost message is kept. The page says what was thinned.
The lanes draw only a window of time around the slider, so a long run stays
quick to draw.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence

from ..flows import messages, transfers
from ..intervals import membership, network_faults, node_ids, outages, role_spans, run_end
from ..logs import log_changes
from ..narration import narrate
from ..trace import TraceRecord

#: Thinned first when a run has too many messages to ship them all.
ROUTINE = (("heartbeat", "heartbeat_response"), ("append_response",))
#: Messages (all of them, before thinning) a page keeps at most.
MAX_MESSAGES = 40_000

_LOG_KINDS = {"write": 0, "snapshot": 1, "compact": 2, "commit": 3, "apply": 4}
_FATES = ("delivered", "duplicate", "dropped", "undelivered", "in_flight")


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _thin(arrows: list, max_messages: int) -> tuple[list, list[str]]:
    """Keep at most ``max_messages`` arrows (see the module docstring); notes on what went."""
    notes = []
    kept = arrows
    for family in ROUTINE:
        if len(kept) <= max_messages:
            break
        routine = [a for a in kept if a.type in family and a.fate in ("delivered", "in_flight")]
        if not routine:
            continue
        others = len(kept) - len(routine)
        room = max(max_messages - others, max_messages // 10)
        stride = math.ceil(len(routine) / room)
        if stride <= 1:
            continue
        seen: Counter = Counter()
        dropped = set()
        for arrow in routine:
            key = (arrow.src, arrow.dst, arrow.type)
            if seen[key] % stride:
                dropped.add(id(arrow))
            seen[key] += 1
        kept = [a for a in kept if id(a) not in dropped]
        notes.append(f"{' and '.join(family)}: 1 in {stride} shown ({len(dropped):,} left out)")
    return kept, notes


def page_model(records: Sequence[TraceRecord], *, title: str = "raftsim run", memory=None,
               max_messages: int = MAX_MESSAGES) -> dict:
    """The page's data for ``records``; ``memory`` is ``{node: [(time, bytes), ...]}`` or None."""
    records = list(records)
    nodes = node_ids(records)
    arrows = messages(records)
    total_messages = len(arrows)
    arrows, thinned = _thin(arrows, max_messages)
    types = sorted({a.type for a in arrows})
    type_code = {name: code for code, name in enumerate(types)}
    lanes = defaultdict(list)
    for arrow in arrows:
        lanes["sent"].append(_round(arrow.sent))
        lanes["arrives"].append(_round(arrow.arrives))
        lanes["src"].append(arrow.src)
        lanes["dst"].append(arrow.dst)
        lanes["type"].append(type_code[arrow.type])
        lanes["fate"].append(_FATES.index(arrow.fate))
    story = []
    for record in records:
        sentence = narrate(record)
        if sentence is not None:
            story.append([_round(record.time), record.node, sentence])
    tracks = []
    for track in transfers(records):
        tracks.append({
            "label": track.label, "receiver": track.receiver, "sources": track.sources,
            "index": track.snapshot_index, "mode": track.mode, "size": track.size,
            "progress": [[_round(t), done] for t, done in track.progress],
            "retries": [[_round(t), offset] for t, offset in track.retries],
            "resumes": [[_round(t), offset, reason] for t, offset, reason in track.resumes],
            "rejected": [[_round(t), offset] for t, offset in track.rejected],
            "lost": [_round(t) for t in track.lost],
            "outcome": track.outcome, "ended": _round(track.ended_at),
        })
    return {
        "title": title,
        "end": run_end(records),
        "nodes": nodes,
        "roles": [[s.node, _round(s.start), _round(s.end), s.role, s.term, s.leader] for s in role_spans(records)],
        "membership": [[_round(t), list(voters), list(learners)] for t, voters, learners in membership(records)],
        "outages": [[o.node, _round(o.start), _round(o.end), o.kind] for o in outages(records)],
        "network": [[_round(f.start), _round(f.end), list(f.nodes), f.label] for f in network_faults(records)],
        "types": types,
        "fates": list(_FATES),
        "messages": dict(lanes) or {"sent": [], "arrives": [], "src": [], "dst": [], "type": [], "fate": []},
        "messages_total": total_messages,
        "thinned": thinned,
        "logs": [[_round(c.time), c.node, _LOG_KINDS[c.kind], c.index, list(c.terms), c.term]
                 for c in log_changes(records)],
        "transfers": tracks,
        "memory": None if memory is None else {
            str(node): [[_round(t), held] for t, held in points] for node, points in sorted(memory.items())},
        "story": story,
        "compactions": [[_round(r.time), r.node, r.get("index")] for r in records if r.kind == "compaction"],
        "installs": [[_round(r.time), r.node, r.get("index")] for r in records if r.kind == "snapshot_installed"],
    }
