"""A run as one self-contained HTML page: slider, play/pause/step/speed, the whole story.

:func:`to_html` (and :func:`write_html`, behind ``raftsim run --html`` and
``raftsim replay --html``) turns a run into a single file that opens in any
browser with no network: the data (:mod:`.model`), the script and the style
are all inline. The page shows, at the slider's time, the message lanes
(snapshot chunks on lanes of their own), each node's log as a row of entries
coloured by term with its commit index, applied index and snapshot
boundary, roles and terms, snapshot transfer progress with retries and
resumptions, memory, the faults shaded on the lanes they affect, and the
narrated story, highlighted up to that time.

Why hand-written script rather than Bokeh or Plotly: both can write
standalone pages, but with their libraries inline (no CDN allowed) a page
weighs 1.7 MB (Bokeh) or 4.8 MB (Plotly) before any data, and neither
draws a Raft log row or keeps lanes, logs and story in step with one
slider without custom JavaScript anyway. The script here is about 20 KB.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from pathlib import Path

from ..records import memory_timeline, records_of
from .model import MAX_MESSAGES, page_model

_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{style}</style></head>
<body>
<header>
  <h1 id="title">{title}</h1><span id="clock"></span>
  <div id="controls">
    <button id="start" title="to the start">« start</button>
    <button id="back" title="to the previous step of the story (p, ←)">◀ step</button>
    <button id="play" title="play or pause (space)">▶ play</button>
    <button id="step" title="to the next step of the story (n, →)">step ▶</button>
    <button id="end" title="to the end">end »</button>
    <input id="slider" type="range" min="0" value="0" aria-label="virtual time">
    <label>speed <select id="speed" title="+ and - change it"></select></label><span id="speed-label"></span>
    <label>lanes show <select id="window"></select></label>
  </div>
  <div id="notes"></div>
</header>
<main>
 <div>
  <section><h2>nodes</h2><table id="nodes"><thead><tr><th>node</th><th>role</th><th>term</th><th>commit</th>
   <th>applied</th><th>snapshot</th><th>last index</th><th>status</th></tr></thead><tbody></tbody></table></section>
  <section><h2>each node's log (the newest entries; number = term)</h2><div id="logs"></div>
   <div class="legend" id="term-legend"></div></section>
  <section><h2>messages (left to right: virtual time; the red line is now)</h2><canvas id="lanes"></canvas>
   <div class="legend" id="lane-legend"></div></section>
  <section><h2>roles and terms, whole run</h2><canvas id="roles"></canvas><div class="legend" id="role-legend"></div></section>
  <section><h2>snapshot transfers</h2><div id="transfers"></div><canvas id="transfer-chart"></canvas>
   <div class="legend" id="transfer-legend"></div></section>
  <section id="memory-section"><h2>snapshot bytes in memory</h2><p></p><canvas id="memory"></canvas>
   <div class="legend" id="memory-now"></div></section>
 </div>
 <div><section><h2>what happens</h2><div id="story"></div></section></div>
</main>
<script type="application/json" id="run-data">{data}</script>
<script>{script}</script>
</body></html>
"""


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def to_html(source, *, title: str | None = None, max_messages: int = MAX_MESSAGES) -> str:
    """One self-contained HTML page of ``source``: a cluster, its trace, records or a JSONL path.

    Memory shows when ``source`` is a cluster (the trace does not record
    it). ``max_messages`` bounds the messages shipped (see :mod:`.model`).
    """
    records = records_of(source)
    memory = memory_timeline(source) if hasattr(source, "runners") else None
    if title is None:
        title = f"raftsim: {Path(source).name}" if isinstance(source, (str, Path)) else "raftsim run"
    model = page_model(records, title=title, memory=memory, max_messages=max_messages)
    # Inside <script>, "</" could end the element early; JSON allows "<\\/" for it.
    data = json.dumps(model, separators=(",", ":")).replace("</", "<\\/")
    return _TEMPLATE.format(title=html.escape(title), style=_asset("page.css"), data=data,
                            script=_asset("page.js"))


def write_html(source, path, **options) -> int:
    """Write :func:`to_html` of ``source`` to ``path``; returns the page's size in bytes."""
    page = to_html(source, **options).encode("utf-8")
    Path(path).write_bytes(page)
    return len(page)


__all__ = ["to_html", "write_html"]
