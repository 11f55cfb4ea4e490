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
receiver or senders and cut links touching the receiver shade the
background, so a flat stretch can be read against its cause.
"""

from __future__ import annotations

from ..records import records_of
from ._draw import axes, byte_axis, span_faults
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
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    return ax


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
