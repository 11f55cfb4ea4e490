"""Snapshot memory over time, and what each transfer mode costs as snapshots grow.

:func:`plot_memory` draws, for each node of a finished cluster, the bytes
of snapshot data it held in memory over virtual time (what
``Cluster.snapshot_memory`` sums up as a peak). Embedded: the newcomer's
line jumps to the whole snapshot when the message arrives, and the leader
holds its snapshot all along. Streaming: thin spikes of one chunk each.

:func:`plot_catch_up` draws the results of :func:`simulator.sweep_catch_up`:
one line per mode against snapshot size, for catch-up time, bytes sent, or
peak memory (:func:`plot_peak_memory`, with the snapshot's own size as a
wide grey band underneath: a mode lying on that band holds the whole
snapshot at once). Modes are drawn wide-and-pale, then thin-and-dashed, so
two modes with the same values show as one line inside the other.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..narration import human_bytes
from ..records import memory_timeline
from ._draw import axes, byte_axis

#: What ``plot_catch_up`` can draw: the ``CatchUp`` field and its axis label.
METRICS = {
    "catch_up_seconds": "catch-up time (virtual s)",
    "snapshot_bytes_sent": "snapshot bytes sent",
    "wire_bytes": "bytes on the wire",
    "peak_memory": "newcomer's peak snapshot memory",
    "leader_peak_memory": "leader's peak snapshot memory",
}


def plot_memory(cluster, ax=None, *, nodes: Sequence[int] | None = None):
    """Each node's snapshot bytes in memory over virtual time, for a finished ``cluster``.

    Needs the cluster itself (memory is not in the trace). Returns the axes.
    """
    timeline = memory_timeline(cluster)
    chosen = sorted(timeline) if nodes is None else list(nodes)
    unknown = [node for node in chosen if node not in timeline]
    if unknown:
        raise ValueError(f"no node {unknown[0]} in this cluster; nodes are {sorted(timeline)}")
    end = max((record.time for record in cluster.trace.records), default=0.0)
    ax = axes(ax, (9, 3.5))
    for node in chosen:
        points = [(0.0, 0), *timeline[node]]
        times = [time for time, _ in points] + [max(end, points[-1][0])]
        held = [count for _, count in points] + [points[-1][1]]
        peak = max(held)
        ax.plot(times, held, drawstyle="steps-post", linewidth=1.2, gid=f"memory n{node}",
                label=f"n{node} (peak {human_bytes(peak)})")
    ax.set_title("snapshot bytes each node holds in memory", fontsize=9)
    ax.set_xlabel("virtual time (s)")
    ax.set_ylabel("bytes in memory")
    ax.set_ylim(bottom=0)
    byte_axis(ax.yaxis)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    return ax


_MODE_STYLES = (
    {"marker": "o", "linestyle": "-", "linewidth": 4, "markersize": 8, "alpha": 0.55, "zorder": 2},
    {"marker": "s", "linestyle": "--", "linewidth": 1.5, "markersize": 4, "zorder": 3},
    {"marker": "^", "linestyle": ":", "linewidth": 1.5, "markersize": 4, "zorder": 4},
)


def plot_catch_up(runs, metric: str = "catch_up_seconds", ax=None):
    """One line per transfer mode: ``metric`` of each run against its snapshot size.

    ``runs`` are :class:`simulator.CatchUp` results (from :func:`simulator.sweep_catch_up`);
    ``metric`` is one of :data:`METRICS`. Returns the axes.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
    runs = list(runs)
    if not runs:
        raise ValueError("no runs to plot; pass the results of sweep_catch_up")
    ax = axes(ax, (5.5, 3.5))
    for number, mode in enumerate(sorted({run.mode for run in runs})):
        points = sorted((run.snapshot_size, getattr(run, metric)) for run in runs if run.mode == mode)
        xs, ys = zip(*points)
        # Modes often coincide (the same bytes sent): a wide line under a thin dashed one shows both.
        style = _MODE_STYLES[number % len(_MODE_STYLES)]
        ax.plot(xs, ys, label=mode, gid=f"{metric} {mode}", **style)
    ax.set_xscale("log", base=2)
    byte_axis(ax.xaxis, linear=False)
    ax.set_xlabel("snapshot size")
    ax.set_ylabel(METRICS[metric])
    if metric != "catch_up_seconds":
        byte_axis(ax.yaxis)
    ax.set_title(f"{METRICS[metric]} by snapshot size", fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    return ax


def plot_peak_memory(runs, ax=None, *, who: str = "newcomer"):
    """Peak snapshot memory against snapshot size, per mode, beside the snapshot size itself.

    ``who`` is ``newcomer`` (the receiver) or ``leader`` (the sender).
    """
    if who not in ("newcomer", "leader"):
        raise ValueError(f"who must be 'newcomer' or 'leader', got {who!r}")
    runs = list(runs)
    ax = plot_catch_up(runs, "peak_memory" if who == "newcomer" else "leader_peak_memory", ax)
    sizes = sorted({run.snapshot_size for run in runs})
    # A wide pale band underneath, so that a mode lying on it (embedded) is seen on top of it.
    ax.plot(sizes, sizes, "-", color="0.6", linewidth=12, alpha=0.3, solid_capstyle="butt", zorder=1,
            label="the whole snapshot (grey band)", gid="whole snapshot")
    ax.legend(fontsize=8, frameon=False)
    return ax
