"""Real systems' snapshot policies side by side: one bar per policy, its confidence interval as an error bar.

:func:`plot_policies` draws the results of :func:`simulator.compare_policies`
for one measure. A policy that never caught up has no bar for catch-up
time: its place says "never" instead, so an empty spot is not read as fast.
A policy the scenario does not run under says "n/a".
"""

from __future__ import annotations

from ._draw import axes, byte_axis

#: What ``plot_policies`` can draw: the ``PolicyResult`` field and its axis label.
MEASURES = {
    "caught_up_s": "time until every node caught up (virtual s)",
    "wire_bytes": "bytes on the wire",
    "wasted_bytes": "wasted snapshot bytes",
    "peak_memory_bytes": "largest snapshot memory a node held",
}


def plot_policies(results, measure: str = "caught_up_s", ax=None):
    """A bar per policy of ``measure`` (mean, with its 95 % confidence interval); returns the axes."""
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {', '.join(MEASURES)}, got {measure!r}")
    ax = axes(ax, (8, 3.5))
    names = [result.policy for result in results]
    for position, result in enumerate(results):
        value = getattr(result, measure)
        if result.not_applicable or value is None:
            ax.text(position, 0, "n/a" if result.not_applicable else "never", ha="center", va="bottom",
                    fontsize=9, color="firebrick")
            continue
        mean, half = value
        colour = "tab:green" if result.ok == result.runs else "tab:red"
        ax.bar(position, mean, yerr=half or None, capsize=4, color=colour, alpha=0.8)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel(MEASURES[measure])
    if measure != "caught_up_s":
        byte_axis(ax.yaxis)
    runs = max((result.runs for result in results), default=0)
    ax.set_title(f"mean over {runs} seed(s), 95% confidence interval; red: some runs never caught up")
    return ax


__all__ = ["MEASURES", "plot_policies"]
