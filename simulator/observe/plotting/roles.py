"""The role and term timeline: which node led, followed or campaigned, in which term, when.

One lane per node, coloured by role (leader, candidate, pre-candidate,
follower, or learner: a follower that does not vote yet), each stretch labelled with its term where there is room. A
crashed node's lane is hatched grey until it restarts, a paused one's is
yellow; cut links shade the lanes of the nodes they cut off. Read it for
elections: a leader's lane turning grey, the followers' lanes staying
follower for an election timeout, then one of them going pre-candidate,
candidate, leader in a higher term.
"""

from __future__ import annotations

import attrs
from matplotlib.patches import Patch

from ..records import records_of
from ._draw import axes, lane_axis, shade_faults
from ..intervals import RoleSpan, learners_at, membership, network_faults, node_ids, outages, role_spans, run_end

ROLE_COLOURS = {
    "leader": "tab:green",
    "candidate": "tab:orange",
    "pre_candidate": "gold",
    "follower": "lightsteelblue",
    "learner": "tab:cyan",
}
BAR_HEIGHT = 0.6


def plot_roles(source, ax=None, *, start: float | None = None, end: float | None = None):
    """Draw each node's role and term over virtual time; returns the axes.

    ``source`` is a cluster, trace, records or JSONL path; ``start``/``end``
    choose the stretch of time (default: all of it).
    """
    records = records_of(source)
    low = 0.0 if start is None else start
    high = run_end(records) if end is None else end
    if high <= low:
        high = low + 1e-3
    nodes = node_ids(records)
    lane = {node: -position for position, node in enumerate(nodes)}
    ax = axes(ax, (11, 0.8 + 0.6 * len(nodes)))
    bands = {node: (y - BAR_HEIGHT / 2, y + BAR_HEIGHT / 2) for node, y in lane.items()}
    handles = shade_faults(ax, outages(records), network_faults(records), bands, (low, high),
                           network_on_top=True)

    spans = [span for span in _with_learners(records, role_spans(records)) if span.end > low and span.start < high]
    by_role: dict[str, list] = {}
    for span in spans:
        by_role.setdefault(span.role, []).append(span)
    for role, members in sorted(by_role.items()):
        colour = ROLE_COLOURS.get(role, "tab:brown")
        for node in sorted({span.node for span in members}):
            bars = [(max(span.start, low), min(span.end, high) - max(span.start, low))
                    for span in members if span.node == node]
            ax.broken_barh(bars, (lane[node] - BAR_HEIGHT / 2, BAR_HEIGHT), facecolors=colour,
                           edgecolor="white", linewidth=0.5, gid=f"role {role} n{node}")
    room = (high - low) / 40  # a term label needs about this much width
    for span in spans:
        begin, finish = max(span.start, low), min(span.end, high)
        if finish - begin >= room:
            ax.text((begin + finish) / 2, lane[span.node], f"t{span.term}", ha="center", va="center",
                    fontsize=7, gid=f"term n{span.node}")
    ax.set_title("role and term of each node over virtual time", fontsize=9)
    roles = [Patch(facecolor=ROLE_COLOURS[role], label=role.replace("_", "-"))
             for role in ROLE_COLOURS if role in by_role]
    ax.legend(handles=roles + handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8,
              frameon=False)
    ax.set_xlim(low, high)
    lane_axis(ax, {y: f"n{node}" for node, y in lane.items()})
    return ax


def _with_learners(records, spans: list[RoleSpan]) -> list[RoleSpan]:
    """``spans`` with each follower stretch spent as a learner (a non-voting member) so named.

    Membership comes from the ``conf_change`` events (:func:`membership`):
    a joining node is a learner until a change makes it a voter.
    """
    changes = membership(records)
    if not changes:
        return spans
    found = []
    for span in spans:
        if span.role != "follower":
            found.append(span)
            continue
        cuts = [span.start, *(when for when, _, _ in changes if span.start < when < span.end), span.end]
        pieces: list[RoleSpan] = []
        for begin, finish in zip(cuts, cuts[1:]):
            role = "learner" if span.node in learners_at(changes, begin) else "follower"
            if pieces and pieces[-1].role == role:  # a change that left this node as it was
                pieces[-1] = attrs.evolve(pieces[-1], end=finish)
            else:
                pieces.append(RoleSpan(span.node, begin, finish, role, span.term, span.leader))
        found.extend(pieces)
    return found
