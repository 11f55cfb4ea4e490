"""The live terminal view of a running cluster: nodes, snapshot transfers, and the story.

``raftsim run`` uses it when its output is a terminal; plain narrated lines
otherwise. Use it yourself when you want to watch a cluster you drive from
your own code::

    async with Cluster.open(nodes=3) as cluster:
        with LiveView(cluster, Console(), scenario="my demo"):
            ...

Theory of operation: the view is a ``rich.live.Live`` with automatic refresh
off, because rich refreshes from a thread and a virtual-time run must have
none (autojump would move time while the thread draws). Instead the view
listens to the trace: each published record may add a sentence to the event
log (:func:`~simulator.narration.narrate`) and may trigger a redraw. The wall
clock decides only *when* to redraw (at most ``max_refresh_per_second``),
never what happens: the view reads the cluster, it never acts on it, so a run
with the view traces exactly like one without. :meth:`LiveView.stop` draws
the final state once more, so the last frame is always complete.

Virtual time comes from the records themselves, not from trio, so the view
can draw its last frame after the run has returned.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from transports.streaming import Outcome

from .intervals import cut_off
from .logs import LogReader
from .narration import human_bytes, narrate
from .trace import TraceRecord

#: How many narrated sentences the event log keeps on screen.
LOG_LINES = 12
#: Transfers shown: every running one, then the latest finished ones up to this many in all.
TRANSFER_ROWS = 8
#: Entries each node's log row shows (the newest).
LOG_CELLS = 30
#: A running transfer with no verified byte for this many virtual seconds shows as stalled.
STALL_SECONDS = 0.5
#: Background of a log entry, by its term (cycled).
TERM_STYLES = ("on dark_cyan", "on dark_orange3", "on medium_purple4", "on red3", "on dodger_blue3",
               "on chartreuse4", "on magenta3", "on gold3")

_STATUS_STYLE = {"up": "green", "down": "bold red", "paused": "yellow", "partitioned": "magenta"}
_OUTCOME_STYLE = {
    Outcome.IN_PROGRESS: "cyan",
    Outcome.INSTALLED: "green",
    Outcome.SUPERSEDED: "yellow",
    Outcome.ABORTED: "red",
}


class LiveView:
    """Draws ``cluster`` on ``console`` while it runs; see the module docstring.

    Call :meth:`start` inside the run, once the cluster is open (or use the
    view as a context manager), and :meth:`stop` when done; ``stop`` may come
    after the trio run has returned. ``scenario`` names the run in the header.
    ``wall_clock`` is there for tests that check the redraw rate.
    """

    def __init__(
        self,
        cluster,
        console: Console,
        *,
        scenario: str | None = None,
        max_refresh_per_second: float = 10.0,
        wall_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cluster = cluster
        self.console = console
        self.scenario = scenario
        self.min_interval = 1.0 / max_refresh_per_second
        self.wall_clock = wall_clock
        self.refreshes = 0  # frames drawn so far
        self.virtual_time = 0.0
        self._story: deque[tuple[float, str]] = deque(maxlen=LOG_LINES)
        self._logs = LogReader()
        self._given_up: dict[tuple[int, int], str] = {}  # (receiver, index) -> why its sender gave up
        self._senders: dict[tuple[int, int], list[int]] = {}  # (receiver, index) -> who sent, in order
        #: A line under the header (the pacer's state in a slowed-down run), or None.
        self.status: str | None = None
        self._last_refresh: float | None = None
        self._live: Live | None = None

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        """Listen to the trace and draw the first frame."""
        if self._live is not None:
            raise RuntimeError("the live view is already started; stop() it before starting again")
        self.virtual_time = self.cluster.now()
        # auto_refresh=False: no refresh thread. No stdout redirection either:
        # the view owns only the console it was given.
        self._live = Live(
            console=self.console, get_renderable=self.render, auto_refresh=False,
            redirect_stdout=False, redirect_stderr=False,
        )
        self.cluster.trace.listeners.append(self.on_record)
        self._live.start()
        self._refresh()

    def stop(self) -> None:
        """Stop listening and leave the final frame on screen. Safe to call twice.

        The trace publishes an instant once time moves on (or the cluster
        closes), so stop after the cluster closed to show its last events too.
        """
        if self._live is None:
            return
        if self.on_record in self.cluster.trace.listeners:
            self.cluster.trace.listeners.remove(self.on_record)
        live, self._live = self._live, None
        self.refreshes += 1
        live.stop()  # draws once more: the final state, uncropped

    def __enter__(self) -> LiveView:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- the trace listener ------------------------------------------------------------

    def on_record(self, record: TraceRecord) -> None:
        """A trace listener: log the record's sentence, redraw if it is time to."""
        self.virtual_time = record.time
        self._logs.feed(record)
        if record.kind == "transfer_failed":
            self._given_up[(record.get("to"), record.get("index"))] = record.get("reason", "")
        elif record.kind in ("transfer_started", "transfer_resumed", "snapshot_installed"):
            self._given_up.pop((record.node, record.get("index")), None)
        if record.kind in ("transfer_started", "transfer_resumed"):  # a new leader may finish it
            senders = self._senders.setdefault((record.node, record.get("index")), [])
            if record.get("source") not in senders:
                senders.append(record.get("source"))
        sentence = narrate(record)
        if sentence is not None:
            self._story.append((record.time, sentence))
        now = self.wall_clock()
        if self._last_refresh is None or now - self._last_refresh >= self.min_interval:
            self._refresh(now)

    def redraw(self) -> None:
        """Draw now (the pacer calls it when paused or its speed changes)."""
        self._refresh()

    def _refresh(self, now: float | None = None) -> None:
        self._last_refresh = self.wall_clock() if now is None else now
        self.refreshes += 1
        if self._live is not None:
            self._live.refresh()

    # -- drawing --------------------------------------------------------------------------

    def render(self) -> RenderableType:
        """The whole view as one renderable (what each frame shows)."""
        return Group(self._header(), self._node_table(), self._log_rows(), self._transfers(), self._event_log())

    def _header(self) -> Text:
        parts = ["raftsim"]
        if self.scenario:
            parts.append(self.scenario)
        parts += [self.cluster.snapshot_mode.name, f"seed {self.cluster.seed}"]
        header = Text(" · ".join(parts), style="bold")
        header.append(f"   virtual time {self.virtual_time:.3f} s", style="cyan")
        if self.status:
            header.append(f"\n{self.status}", style="bold yellow")
        return header

    def _log_rows(self) -> RenderableType:
        """Each node's newest log entries, coloured and numbered by term; ┃ after the commit index."""
        logs = self._logs.state()
        lines = Table.grid(padding=(0, 1))
        lines.add_column(no_wrap=True)
        lines.add_column(no_wrap=True)
        terms_seen: set[int] = set()
        for node_id in self.cluster.node_ids:
            log = logs.get(node_id)
            row = Text()
            if log is None:
                lines.add_row(f"log of n{node_id}", Text("(empty)", style="dim"))
                continue
            if log.snapshot_index:
                row.append(f"[snapshot ≤{log.snapshot_index} t{log.snapshot_term}]", style="dim")
            first = max(log.snapshot_index + 1, log.last_index - LOG_CELLS + 1)
            if first > log.snapshot_index + 1:
                row.append(f" …{first - log.snapshot_index - 1}", style="dim")
            for index in range(first, log.last_index + 1):
                term = log.term(index)
                terms_seen.add(term)
                style = TERM_STYLES[term % len(TERM_STYLES)] + (" dim" if index > log.commit else " bold")
                row.append(f"{term:>2}", style=style)
                row.append("┃" if index == log.commit else " ")
            row.append(f" commit {log.commit} applied {log.applied}", style="dim")
            lines.add_row(f"log of n{node_id}", row)
        key = Text("entries by term: ", style="dim")
        for term in sorted(terms_seen):
            key.append(f" t{term} ", style=TERM_STYLES[term % len(TERM_STYLES)])
        key.append("  dim: not committed yet, ┃ after the commit index", style="dim")
        return Group(lines, key)

    def _node_status(self, node_id: int, partitioned: set[int]) -> str:
        """``down``, ``paused``, ``partitioned`` (cut off from a majority) or ``up``."""
        if not self.cluster.is_up(node_id):
            return "down"
        if self.cluster.is_paused(node_id):
            return "paused"
        if node_id in partitioned:
            return "partitioned"
        return "up"

    def _node_table(self) -> Table:
        table = Table(title="nodes", title_justify="left", expand=False)
        table.add_column("node")
        table.add_column("role")
        for name in ("term", "commit", "applied", "snapshot", "last index"):
            table.add_column(name, justify="right")
        table.add_column("status")
        blocked = set(self.cluster.transport.blocked_links)
        # Only the nodes cut off from a majority show as partitioned, not every end of a cut link.
        partitioned = set(cut_off(blocked, self.cluster.node_ids)) if blocked else set()
        # A joining node learns it is a learner only from the leader's log or snapshot.
        leader = self.cluster.leader_id()
        learners = set(self.cluster.statistics(leader).conf_state.learners) if leader else set()
        for node_id in self.cluster.node_ids:
            status = self._node_status(node_id, partitioned)
            snapshot = str(self.cluster.storage(node_id).snapshot_metadata.index)
            if status == "down":  # volatile state is gone; the disk keeps the snapshot
                row = ["-", "-", "-", "-", snapshot, "-"]
            else:
                stats = self.cluster.statistics(node_id)
                role = stats.role.value
                if node_id in learners or node_id in stats.conf_state.learners:
                    role += " (learner)"
                row = [role, str(stats.term), str(stats.commit), str(stats.applied), snapshot,
                       str(stats.last_index)]
            table.add_row(f"n{node_id}", *row, Text(status, style=_STATUS_STYLE[status]))
        return table

    def _shown_transfers(self) -> list:
        transfers = self.cluster.transfers()
        running = [t for t in transfers if t.outcome is Outcome.IN_PROGRESS]
        room = max(TRANSFER_ROWS - len(running), 0)
        finished = [t for t in transfers if t.outcome is not Outcome.IN_PROGRESS][-room:] if room else []
        shown = {id(t) for t in running + finished}
        return [t for t in transfers if id(t) in shown]  # in the order they started

    def _transfers(self) -> RenderableType:
        transfers = self._shown_transfers()
        if not transfers:
            return Text("snapshot transfers: none yet", style="dim")
        labels = [f"{self._sender_names(t)}->n{t.to} snapshot {t.snapshot_index}" for t in transfers]
        width = max(len(label) for label in labels)
        # Two lines per transfer, so that the view fits an 80-column terminal.
        lines: list[RenderableType] = [Text("snapshot transfers", style="italic")]
        for label, t in zip(labels, transfers):
            bar_line = Table.grid(padding=(0, 1), expand=True)
            bar_line.add_column(width=width, no_wrap=True)
            bar_line.add_column(ratio=1)
            bar_line.add_column(no_wrap=True, justify="right")
            bar_line.add_row(
                Text(label, style="bold"),
                ProgressBar(total=max(t.size, 1), completed=t.bytes_done),
                f"{t.fraction:4.0%}  {human_bytes(t.bytes_done)} / {human_bytes(t.size)}",
            )
            state, style = t.outcome.value, _OUTCOME_STYLE[t.outcome]
            rate_text, eta_text = f"{human_bytes(int(t.rate))}/s", "-"
            if t.outcome is Outcome.IN_PROGRESS:
                gave_up = self._given_up.get((t.to, t.snapshot_index))
                idle = self.virtual_time - t.updated_at
                if gave_up is not None:  # the receiver still waits; its sender does not send
                    state, style, rate_text = f"sender gave up: {gave_up}", "red", "-"
                elif idle >= STALL_SECONDS:  # a rate and ETA would promise what is not happening
                    state, style, rate_text = f"stalled for {idle:.1f} s", "bold red", "-"
                else:
                    eta_text = "?" if t.eta is None else f"{t.eta:.3f} s"
            details = Text(f"  {t.mode} · {rate_text} · ETA {eta_text} · "
                           f"{t.retries} retries · {human_bytes(t.resent_bytes)} re-sent · ")
            details.append(state, style=style)
            lines += [bar_line, details]
        return Group(*lines)

    def _sender_names(self, transfer) -> str:
        senders = self._senders.get((transfer.to, transfer.snapshot_index), [])
        if transfer.from_ not in senders:
            senders = [*senders, transfer.from_]
        return ",".join(f"n{node}" for node in senders)

    def _event_log(self) -> Panel:
        if not self._story:
            return Panel(Text("(nothing yet)", style="dim"), title="what happens", title_align="left")
        lines = Table.grid(padding=(0, 1))
        lines.add_column(no_wrap=True, style="dim")
        lines.add_column()  # a long sentence wraps under itself, not under the time
        for when, sentence in self._story:
            lines.add_row(f"[{when:9.3f}s]", sentence)
        return Panel(lines, title="what happens", title_align="left")
