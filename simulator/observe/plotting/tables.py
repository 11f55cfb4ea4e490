"""A summary table of node states that renders in Jupyter (HTML) and on a terminal (rich).

:func:`node_table` reads a cluster (its nodes as they are now) or a trace
(the nodes as the trace last recorded them: a JSONL file from ``raftsim run
--trace``, say). The result is a :class:`NodeTable`: a notebook shows it as
an HTML table when it is a cell's value, ``rich.print`` draws it on a
terminal, and ``rows`` has the values themselves.
"""

from __future__ import annotations

import html

import attrs
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..narration import human_bytes
from ..records import records_of
from ..intervals import network_faults, node_ids, outages, role_spans, run_end

#: Column titles, in order; ``None`` values show as "-".
COLUMNS = ("node", "status", "role", "term", "commit", "applied", "snapshot", "last index",
           "peak snapshot memory")
_STATUS_COLOURS = {"up": "green", "down": "red", "removed": "grey", "paused": "goldenrod",
                   "partitioned": "magenta"}


@attrs.frozen
class NodeState:
    """One node's row; values a source cannot tell are ``None``."""

    node: int
    status: str  # up, down, removed, paused, partitioned
    role: str | None
    term: int | None
    commit: int | None
    applied: int | None
    snapshot_index: int | None
    last_index: int | None = None
    peak_memory: int | None = None

    def cells(self) -> list[str]:
        values = [f"n{self.node}", self.status, self.role, self.term, self.commit, self.applied,
                  self.snapshot_index, self.last_index,
                  None if self.peak_memory is None else human_bytes(self.peak_memory)]
        return ["-" if value is None else str(value) for value in values]


@attrs.frozen(repr=False)
class NodeTable:
    """Rows of node states; shows as a table wherever it is printed or displayed."""

    title: str
    rows: tuple[NodeState, ...]

    def to_dicts(self) -> list[dict[str, object]]:
        return [attrs.asdict(row) for row in self.rows]

    def __rich__(self) -> Table:
        table = Table(title=self.title, title_justify="left")
        for number, name in enumerate(COLUMNS):
            table.add_column(name, justify="left" if number < 3 else "right")
        for row in self.rows:
            cells = row.cells()
            cells[1] = Text(cells[1], style=_STATUS_COLOURS.get(row.status, ""))
            table.add_row(*cells)
        return table

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(name)}</th>" for name in COLUMNS)
        body = []
        for row in self.rows:
            cells = [html.escape(cell) for cell in row.cells()]
            colour = _STATUS_COLOURS.get(row.status, "inherit")
            cells[1] = f'<span style="color:{colour}">{cells[1]}</span>'
            body.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
        return (f"<table><caption style=\"text-align:left\">{html.escape(self.title)}</caption>"
                f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")

    def __str__(self) -> str:
        console = Console(width=120, color_system=None, file=None, record=True)
        with console.capture() as captured:
            console.print(self)
        return captured.get().rstrip()

    __repr__ = __str__  # a plain console or notebook front end shows the table too


def node_table(source) -> NodeTable:
    """The state of every node of ``source`` (a cluster, or a trace, records or JSONL path)."""
    if hasattr(source, "runners") and hasattr(source, "statistics"):
        return _from_cluster(source)
    return _from_records(records_of(source))


def _from_cluster(cluster) -> NodeTable:
    blocked = {node for link in cluster.transport.blocked_links for node in link}
    memory = cluster.snapshot_memory()
    removed = getattr(cluster, "_removed", set())
    rows = []
    for node in cluster.node_ids:
        snapshot = cluster.storage(node).snapshot_metadata.index
        peak = memory[node][1]
        if not cluster.is_up(node):
            status = "removed" if node in removed else "down"
            rows.append(NodeState(node, status, None, None, None, None, snapshot, None, peak))
            continue
        stats = cluster.statistics(node)
        if cluster.is_paused(node):
            status = "paused"
        else:
            status = "partitioned" if node in blocked else "up"
        rows.append(NodeState(node, status, stats.role.value, stats.term, stats.commit, stats.applied,
                              snapshot, stats.last_index, peak))
    return NodeTable("nodes now", tuple(rows))


def _from_records(records) -> NodeTable:
    end = run_end(records)
    still_out = {(o.node, o.kind): o.label for o in outages(records) if o.ongoing}
    faults = network_faults(records)
    cut_off = set(faults[-1].nodes) if faults and faults[-1].ongoing else set()
    last_role = {span.node: span for span in role_spans(records)}
    commit: dict[int, int] = {}
    applied: dict[int, int] = {}
    snapshot: dict[int, int] = {}
    for record in records:
        if record.kind == "commit":
            commit[record.node] = record.get("index")
        elif record.kind == "apply":
            applied[record.node] = record.get("last")
        elif record.kind in ("snapshot_created", "snapshot_installed"):
            snapshot[record.node] = record.get("index")
            if record.kind == "snapshot_installed":
                applied[record.node] = max(applied.get(record.node, 0), record.get("index"))
        elif record.kind == "start":
            snapshot.setdefault(record.node, record.get("snapshot_index", 0))
    rows = []
    for node in node_ids(records):
        down = still_out.get((node, "down"))
        if down is not None:
            status = "removed" if down.endswith("removed") else "down"
            rows.append(NodeState(node, status, None, None, None, None, snapshot.get(node, 0)))
            continue
        if (node, "paused") in still_out:
            status = "paused"
        else:
            status = "partitioned" if node in cut_off else "up"
        span = last_role.get(node)
        rows.append(NodeState(node, status, span.role if span else None, span.term if span else None,
                              commit.get(node, 0), applied.get(node, 0), snapshot.get(node, 0)))
    return NodeTable(f"nodes as the trace last recorded them ({end:.3f} s)", tuple(rows))
