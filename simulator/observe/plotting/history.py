"""A client history as a picture: one lane per client, one bar per operation.

Each bar spans an operation's invocation to its completion in virtual time;
a write of unknown outcome runs to the right edge, hatched. Operations of a
violation (``HistoryVerdict`` / ``KeyVerdict.minimal``) are red and labelled
with their id, the rest grey, so the few operations that cannot be ordered
stand out among many. Every bar's ``gid`` is ``op <id>`` (and ends in
`` violation`` when highlighted), for tests and readers of a saved SVG.
"""

from __future__ import annotations

from ...checks.linearizability import GET, PUT, HistoryVerdict, KeyVerdict, KVOperation
from ._draw import axes

BAR_HEIGHT = 0.6


def _label(operation: KVOperation) -> str:
    if operation.kind == PUT:
        return f"#{operation.op_id} put {operation.key}={operation.value!r}"
    if operation.kind == GET:
        return f"#{operation.op_id} get {operation.key}->{operation.value!r}"
    return f"#{operation.op_id} delete {operation.key}"


def plot_history(operations, ax=None, *, highlight=None, title: str | None = None):
    """Draw ``operations`` (KV operations, or a ``HistoryVerdict``/``KeyVerdict``: its
    minimal violation) and return the axes; ``highlight`` marks operations red (by default
    those of the verdict's violations)."""
    if isinstance(operations, HistoryVerdict):
        highlight = highlight if highlight is not None else [o for v in operations.violations for o in v.minimal]
        operations = list(highlight)
    elif isinstance(operations, KeyVerdict):
        highlight = highlight if highlight is not None else list(operations.minimal)
        operations = list(operations.minimal)
    operations = list(operations)
    marked = {operation.op_id for operation in (highlight or ())}
    clients = sorted({operation.client for operation in operations})
    lane = {client: -position for position, client in enumerate(clients)}
    ax = axes(ax, (11, 0.9 + 0.6 * max(1, len(clients))))
    ends = [o.completed for o in operations if o.completed is not None] + [o.invoked for o in operations]
    right = (max(ends) if ends else 1.0) * 1.05 + 1e-3
    for operation in operations:
        bad = operation.op_id in marked
        end = right if operation.completed is None else operation.completed
        width = max(end - operation.invoked, right * 0.004)  # an instant still shows
        bars = ax.broken_barh([(operation.invoked, width)], (lane[operation.client] - BAR_HEIGHT / 2, BAR_HEIGHT),
                              facecolors="tab:red" if bad else "0.75", edgecolor="black" if bad else "0.5",
                              hatch="//" if operation.completed is None else None)
        bars.set_gid(f"op {operation.op_id}" + (" violation" if bad else ""))
        if bad or len(operations) <= 30:
            ax.text(operation.invoked, lane[operation.client] + BAR_HEIGHT / 2 + 0.05, _label(operation),
                    fontsize=8, color="tab:red" if bad else "0.3")
    ax.set_yticks([lane[client] for client in clients], [f"client {client}" for client in clients])
    ax.set_xlim(0, right)
    ax.set_xlabel("virtual time (s)")
    ax.set_title(title or ("operations that cannot be linearized" if marked else "client history"))
    return ax
