"""Drawing pieces the plots share: axes, lanes, fault shading, byte axes.

Every shaded region is a ``Rectangle`` patch whose ``gid`` says what it
stands for (``down n2``, ``paused n1``, ``network n3``), so a test, or a
reader of a saved SVG, can find it.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FuncFormatter, Locator

from ..narration import human_bytes
from ..intervals import NetworkFault, NodeOutage

OUTAGE_STYLE = {
    "down": {"facecolor": "0.55", "alpha": 0.35, "hatch": "//", "edgecolor": "0.35"},
    "paused": {"facecolor": "gold", "alpha": 0.3, "edgecolor": "none"},
}
NETWORK_STYLE = {"facecolor": "magenta", "alpha": 0.12, "edgecolor": "none"}


def axes(ax, figsize: tuple[float, float]):
    """``ax``, or the axes of a new figure of ``figsize`` inches."""
    if ax is not None:
        return ax
    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def clip(start: float, end: float, low: float, high: float) -> tuple[float, float] | None:
    """``[start, end]`` cut to ``[low, high]``; None when nothing is left."""
    start, end = max(start, low), min(end, high)
    return (start, end) if end > start else None


def shade(ax, start: float, end: float, y_low: float, y_high: float, style: dict, gid: str,
          zorder: float = 0.5) -> Rectangle:
    patch = Rectangle((start, y_low), end - start, y_high - y_low, gid=gid, zorder=zorder, **style)
    ax.add_patch(patch)
    return patch


def shade_faults(
    ax,
    outages: Sequence[NodeOutage],
    network: Sequence[NetworkFault],
    bands: dict[int, tuple[float, float]],
    window: tuple[float, float],
    *,
    network_on_top: bool = False,
) -> list[Patch]:
    """Shade each outage over its node's band, each network fault over the bands of the nodes it
    cuts off; returns legend handles for what was shaded.

    ``network_on_top``: draw cut links over what the lanes hold (bars that would hide them)."""
    shown: dict[str, Patch] = {}
    for outage in outages:
        span = clip(outage.start, outage.end, *window)
        if span is None or outage.node not in bands:
            continue
        shade(ax, *span, *bands[outage.node], OUTAGE_STYLE[outage.kind], f"{outage.kind} n{outage.node}")
        shown.setdefault(outage.kind, Patch(label=outage.kind, **OUTAGE_STYLE[outage.kind]))
    for fault in network:
        span = clip(fault.start, fault.end, *window)
        if span is None:
            continue
        touched = [node for node in fault.nodes if node in bands]
        for node in touched:
            shade(ax, *span, *bands[node], NETWORK_STYLE, f"network n{node}",
                  zorder=2.5 if network_on_top else 0.5)
        if touched:
            top = max(bands[node][1] for node in touched)
            # Written into the stretch from its nearer end, so that it stays inside the axes.
            left = span[0] - window[0] < window[1] - span[1]
            ax.text(span[0] if left else span[1], top, fault.label, fontsize=7, va="bottom",
                    ha="left" if left else "right", color="purple", gid="network label")
            shown.setdefault("network", Patch(label="cut off by the network", **NETWORK_STYLE))
    return list(shown.values())


def span_faults(ax, outages: Sequence[NodeOutage], network: Sequence[NetworkFault], nodes: set[int]) -> None:
    """Shade, across the whole height, the stretches when a node of ``nodes`` was out or cut off."""
    for outage in outages:
        if outage.node in nodes:
            ax.axvspan(outage.start, outage.end, gid=f"{outage.kind} n{outage.node}", zorder=0.5,
                       **OUTAGE_STYLE[outage.kind])
    for fault in network:
        touched = sorted(nodes & set(fault.nodes))
        if touched:
            ax.axvspan(fault.start, fault.end, gid="network " + " ".join(f"n{n}" for n in touched),
                       zorder=0.5, **NETWORK_STYLE)


class _BinaryLocator(Locator):
    """Ticks at multiples of a power of two, so that byte labels come out round (256 KiB, 1 MiB)."""

    def __call__(self):
        low, high = self.axis.get_view_interval()
        return self.tick_values(low, high)

    def tick_values(self, vmin: float, vmax: float):
        low, high = max(min(vmin, vmax), 0.0), max(vmin, vmax)
        step = 1
        while (high - low) / step > 8:
            step *= 2
        first = int(low // step) * step
        return [first + step * number for number in range(int((high - first) // step) + 1)]


def byte_axis(axis, *, linear: bool = True) -> None:
    """Label an axis in bytes, KiB, MiB... (round ones, on a linear axis)."""
    if linear:
        axis.set_major_locator(_BinaryLocator())
    axis.set_major_formatter(FuncFormatter(lambda value, _: human_bytes(int(value)) if value >= 0 else ""))


def lane_axis(ax, labels: dict[float, str]) -> None:
    positions = sorted(labels)
    ax.set_yticks(positions, [labels[y] for y in positions])
    ax.set_ylim(min(positions) - 0.7, max(positions) + 0.7)
    ax.set_xlabel("virtual time (s)")
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.tick_params(axis="y", length=0)
