"""Snapshot transfer progress: verified bytes over virtual time, one line per transfer.

A streamed transfer climbs chunk by chunk; an embedded one stays at zero
until the whole snapshot is installed at once, then jumps to its size.
Markers show what went wrong and how it was mended:

====================  ========================================================
``x`` (red)           a retry: the receiver asked again (silence, a bad chunk),
                      at the offset it asked from
``^`` (black)         a resumption: the transfer continued from the offset it
                      had kept (after a crash, a partition, a new leader)
``v`` (orange)        a chunk rejected by a check (checksum, gap, overlap)
``X`` (red, at 0)     an embedded snapshot message lost whole
``o``                 the end: installed (filled) or given up (hollow)
====================  ========================================================

The dashed line over each transfer is its snapshot's size. Crashes of the
receiver or senders (hatched) and links cutting the receiver off (pink)
shade the background, so a flat stretch can be read against its cause.
The legend keys every mark and shading the plot holds.
"""

from __future__ import annotations

from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ..records import records_of
from ._draw import NETWORK_STYLE, OUTAGE_STYLE, axes, byte_axis, span_faults
from ..flows import TransferTrack, transfers
from ..intervals import network_faults, outages


def plot_transfers(source, ax=None, *, receiver: int | None = None, snapshot_index: int | None = None):
    """Draw every snapshot transfer of ``source`` (or those to ``receiver``, of ``snapshot_index``).

    ``source`` is a cluster, trace, records or JSONL path. Returns the axes.
    """
    records = records_of(source)
    tracks = [track for track in transfers(records)
              if (receiver is None or track.receiver == receiver)
              and (snapshot_index is None or track.snapshot_index == snapshot_index)]
    ax = axes(ax, (9, 4))
    nodes = {node for track in tracks for node in (track.receiver, *track.sources)}
    # Only the receiver's network troubles matter here; the senders' crashes do too.
    span_faults(ax, outages(records), [f for f in network_faults(records)
                                       if {t.receiver for t in tracks} & set(f.nodes)], nodes)
    for track in tracks:
        _draw_track(ax, track)
    if not tracks:
        ax.text(0.5, 0.5, "no snapshot transfers in this trace", transform=ax.transAxes,
                ha="center", va="center", color="0.4")
    ax.set_title(f"snapshot transfers: verified bytes over virtual time ({len(tracks)})", fontsize=9)
    ax.set_xlabel("virtual time (s)")
    ax.set_ylabel("bytes verified at the receiver")
    ax.set_ylim(bottom=0)
    byte_axis(ax.yaxis)
    if tracks:
        ax.legend(handles=_legend(ax, tracks), loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8,
                  frameon=False)
    return ax


#: What each mark means, by the gid it is drawn with: (marker, colour, legend text).
MARKS = {
    "retry": ("x", "tab:red", "retry: asked again, from this offset"),
    "resume": ("^", "black", "resumed from a kept offset"),
    "rejected": ("v", "tab:orange", "chunk rejected by a check"),
    "lost": ("X", "tab:red", "embedded snapshot lost whole"),
}


def _legend(ax, tracks) -> list:
    """The transfers' lines, then a key for every kind of mark and shading the plot holds."""
    handles = [line for line in ax.lines if line.get_label() and not line.get_label().startswith("_")]
    handles.append(Line2D([], [], color="0.3", linestyle="--", linewidth=0.7, label="snapshot size"))
    drawn = {artist.get_gid() for artist in ax.lines + ax.patches + ax.collections if artist.get_gid()}
    for gid, (marker, colour, text) in MARKS.items():
        if gid in drawn:
            handles.append(Line2D([], [], marker=marker, color=colour, linestyle="none", label=text))
    outcomes = {track.outcome for track in tracks if track.ended_at is not None}
    if "installed" in outcomes:
        handles.append(Line2D([], [], marker="o", color="0.3", linestyle="none", label="installed"))
    if outcomes - {"installed"}:
        handles.append(Line2D([], [], marker="o", color="0.3", markerfacecolor="white", linestyle="none",
                              label="given up or superseded"))
    for gid in sorted(drawn):
        kind = gid.split(" ")[0]
        if kind in OUTAGE_STYLE and not any(h.get_label().startswith(kind) for h in handles):
            handles.append(Patch(label=f"{kind}: a sender or the receiver", **OUTAGE_STYLE[kind]))
        if kind == "network" and not any(h.get_label().startswith("cut off") for h in handles):
            handles.append(Patch(label="cut off: the receiver", **NETWORK_STYLE))
    return handles


def _draw_track(ax, track: TransferTrack) -> None:
    times = [time for time, _ in track.progress]
    done = [count for _, count in track.progress]
    [line] = ax.plot(times, done, drawstyle="steps-post", linewidth=1.4, label=track.label,
                     gid=f"transfer n{track.receiver} {track.snapshot_index}")
    colour = line.get_color()
    if times:
        ax.hlines(track.size, times[0], track.ended_at or times[-1], colors=colour, linestyles="--",
                  linewidth=0.7, gid=f"size n{track.receiver} {track.snapshot_index}")
    _points(ax, track.retries, "x", "tab:red", "retry")
    _points(ax, [(time, offset) for time, offset, _ in track.resumes], "^", "black", "resume")
    _points(ax, track.rejected, "v", "tab:orange", "rejected")
    _points(ax, [(time, 0) for time in track.lost], "X", "tab:red", "lost")
    if track.ended_at is not None and track.progress:
        filled = track.outcome == "installed"
        ax.plot([track.ended_at], [done[-1]], "o", color=colour, markerfacecolor=colour if filled else "white",
                gid=f"outcome {track.outcome}")


def _points(ax, points, marker: str, colour: str, gid: str) -> None:
    if points:
        xs, ys = zip(*points)
        ax.plot(xs, ys, marker, color=colour, linestyle="none", markersize=7, gid=gid, zorder=3)
