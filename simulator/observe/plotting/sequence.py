"""The message-sequence diagram: who sent what to whom, when, over virtual time.

Time runs left to right; each node has a lane, and a second lane beneath it
for the out-of-band snapshot stream when it sent or received any (chunks,
requests, acks), so a transfer does not drown the Raft messages. Each
message is an arrow from its sending time on the sender's lane to its
arrival on the receiver's. A dropped message is a short dashed stub beside
its sender's lane, ending in a cross and naming the node it was for; one
that reached a node that was down ends in a cross on that node's lane.
Crashes and pauses shade the node's lanes, cut links shade the lanes of the
nodes they cut off, diamonds mark compactions and stars installed snapshots.

More than ``max_arrows`` messages in view are summarised rather than drawn
one by one: time is cut into bins and each bin gets one arrow per lane pair
and kind of message, wider the more messages it stands for, and the title
says so. Narrow the view with ``start``/``end`` or ``kinds`` to see each
message again.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch

from ..records import records_of
from ._draw import axes, lane_axis, shade_faults
from ..flows import MessageArrow, messages
from ..intervals import network_faults, node_ids, outages, run_end

#: Colour of each family of messages.
FAMILIES = {
    "append": ("replication", "tab:blue"),
    "append_response": ("replication", "tab:blue"),
    "heartbeat": ("heartbeat", "0.6"),
    "heartbeat_response": ("heartbeat", "0.6"),
    "request_vote": ("election", "tab:orange"),
    "request_vote_response": ("election", "tab:orange"),
    "request_pre_vote": ("election", "tab:orange"),
    "request_pre_vote_response": ("election", "tab:orange"),
    "timeout_now": ("election", "tab:orange"),
    "snapshot": ("snapshot", "tab:red"),
    "snapshot_chunk": ("snapshot chunk", "tab:green"),
    "snapshot_request": ("stream control", "tab:purple"),
    "snapshot_ack": ("stream control", "tab:purple"),
    "snapshot_abort": ("stream control", "tab:purple"),
}
OTHER = ("other", "tab:brown")


def family(message_type: str) -> tuple[str, str]:
    """``(family name, colour)`` of a message type."""
    return FAMILIES.get(message_type, OTHER)


def plot_messages(
    source,
    ax=None,
    *,
    start: float | None = None,
    end: float | None = None,
    kinds: Iterable[str] | None = None,
    max_arrows: int = 300,
    bins: int = 80,
):
    """Draw the message-sequence diagram of ``source`` (a cluster, trace, records or JSONL path).

    ``start``/``end`` choose the stretch of virtual time (default: all of
    it), ``kinds`` the message types to show (default: all). Returns the
    axes; see the module docstring for how to read it.
    """
    if max_arrows < 1 or bins < 1:
        raise ValueError(f"max_arrows and bins must be >= 1, got {max_arrows} and {bins}")
    records = records_of(source)
    low = 0.0 if start is None else start
    high = run_end(records) if end is None else end
    if high <= low:
        high = low + 1e-3
    wanted = None if kinds is None else set(kinds)
    shown = [m for m in messages(records)
             if low <= m.sent <= high and (wanted is None or m.type in wanted)]

    nodes = node_ids(records)
    streaming = {node for m in shown if m.stream for node in (m.src, m.dst)}
    lanes, labels, bands = _lanes(nodes, streaming)
    ax = axes(ax, (11, 0.9 + 0.75 * len(labels)))
    handles = shade_faults(ax, outages(records), network_faults(records), bands, (low, high))

    if len(shown) > max_arrows:
        count = _draw_summary(ax, shown, lanes, low, high, bins)
        width = (high - low) / bins
        ax.set_title(f"{len(shown)} messages summarised as {count} arrows: one per {width:.3g} s bin, "
                     "lane pair and kind (wider: more messages)", fontsize=9)
    else:
        for arrow in shown:
            _draw_message(ax, arrow, lanes, (high - low) / 150)
        ax.set_title(f"{len(shown)} messages, {low:.3f} s to {high:.3f} s", fontsize=9)

    _mark(ax, records, lanes, low, high, "compaction", "D", "black", "compaction")
    _mark(ax, records, lanes, low, high, "snapshot_installed", "*", "tab:red", "snapshot installed")
    families = sorted({family(m.type) for m in shown})
    handles = [Line2D([], [], color=colour, label=name) for name, colour in families] + handles
    handles += [line for line in ax.lines if line.get_gid() in ("compaction", "snapshot installed")]
    fates = {m.fate for m in shown}
    if "dropped" in fates or "undelivered" in fates:
        handles.append(Line2D([], [], color="0.3", linestyle="--", marker="x", markersize=5,
                              label="lost (stub: to n…) or undelivered"))
    if "duplicate" in fates:
        handles.append(Line2D([], [], color="0.3", linestyle=":", label="duplicate"))
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    ax.set_xlim(low, high)
    lane_axis(ax, labels)
    return ax


def _lanes(nodes: list[int], streaming: set[int]):
    """y of each (node, stream?) lane, tick labels, and each node's band (its lanes' extent)."""
    lanes: dict[tuple[int, bool], float] = {}
    labels: dict[float, str] = {}
    bands: dict[int, tuple[float, float]] = {}
    y = 0.0
    for node in nodes:
        top = y
        lanes[(node, False)] = y
        labels[y] = f"n{node}"
        if node in streaming:
            y -= 0.6
            lanes[(node, True)] = y
            labels[y] = f"n{node} stream"
        bands[node] = (y - 0.35, top + 0.35)
        y -= 1.0
    return lanes, labels, bands


def _lane(lanes, node: int, stream: bool) -> float:
    return lanes.get((node, stream), lanes.get((node, False), 0.0))


def _draw_message(ax, arrow: MessageArrow, lanes, stub: float) -> None:
    _, colour = family(arrow.type)
    y_from = _lane(lanes, arrow.src, arrow.stream)
    y_to = _lane(lanes, arrow.dst, arrow.stream)
    gid = f"message {arrow.type} {arrow.fate}"
    if arrow.fate == "dropped":
        # A short stub beside the sender's lane, pointing the way it went, naming its receiver:
        # a line towards the receiver would end on some other node's lane.
        x_end = arrow.sent + stub
        y_end = y_from + (0.25 if y_to > y_from else -0.25)
        ax.add_patch(FancyArrowPatch((arrow.sent, y_from), (x_end, y_end), arrowstyle="-", color=colour,
                                     linestyle="--", linewidth=0.9, gid=gid))
        ax.plot([x_end], [y_end], "x", color=colour, markersize=5, gid="dropped")
        ax.text(x_end, y_end, f" n{arrow.dst}", fontsize=6, color=colour, va="center", gid="dropped to")
        return
    style = {"delivered": "-", "duplicate": ":", "undelivered": "--", "in_flight": "-"}[arrow.fate]
    ax.add_patch(FancyArrowPatch((arrow.sent, y_from), (arrow.arrives, y_to), arrowstyle="-|>",
                                 mutation_scale=7, color=colour, linestyle=style, linewidth=0.8,
                                 shrinkA=0, shrinkB=0, gid=gid))
    if arrow.fate == "undelivered":
        ax.plot([arrow.arrives], [y_to], "x", color=colour, markersize=5, gid="dropped")


def _draw_summary(ax, shown: list[MessageArrow], lanes, low: float, high: float, bins: int) -> int:
    width = (high - low) / bins
    groups: dict[tuple, list[MessageArrow]] = defaultdict(list)
    for arrow in shown:
        slot = min(int((arrow.sent - low) / width), bins - 1)
        groups[(slot, arrow.src, arrow.dst, arrow.stream, family(arrow.type))].append(arrow)
    for (slot, src, dst, stream, (name, colour)), members in sorted(groups.items()):
        delays = [m.arrives - m.sent for m in members if m.arrives is not None]
        begin = low + (slot + 0.5) * width
        finish = begin + (sum(delays) / len(delays) if delays else 0.25 * width)
        ax.add_patch(FancyArrowPatch(
            (begin, _lane(lanes, src, stream)), (finish, _lane(lanes, dst, stream)),
            arrowstyle="-|>", mutation_scale=7, color=colour, alpha=0.8, shrinkA=0, shrinkB=0,
            linewidth=0.6 + 1.2 * math.log2(len(members)), linestyle="-" if delays else "--",
            gid=f"summary {name} {len(members)}",
        ))
    return len(groups)


def _mark(ax, records, lanes, low, high, kind: str, marker: str, colour: str, label: str) -> None:
    points = [(r.time, lanes[(r.node, False)]) for r in records
              if r.kind == kind and low <= r.time <= high and (r.node, False) in lanes]
    if points:
        xs, ys = zip(*points)
        ax.plot(xs, ys, marker, color=colour, markersize=6, linestyle="none", gid=label, label=label,
                zorder=3)
