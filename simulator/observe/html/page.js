// raftsim run report: replays the page model (simulator/observe/html/model.py) at the slider's time.
// Everything here reads RUN (the model); nothing is fetched: the page works offline.
"use strict";
const RUN = JSON.parse(document.getElementById("run-data").textContent);
const $ = (id) => document.getElementById(id);
// Everything from the trace goes through esc() into HTML: a trace file is data, never markup.
const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const esc = (value) => String(value).replace(/[&<>"']/g, (c) => ESCAPES[c]);
const SPEEDS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 50];
const ROLE_COLOURS = { leader: "#2ca02c", candidate: "#ff7f0e", pre_candidate: "#f2c80f", follower: "#b0c4de", learner: "#17becf" };
const FAMILIES = {
  append: ["replication", "#1f77b4"], append_response: ["replication", "#1f77b4"],
  heartbeat: ["heartbeat", "#999999"], heartbeat_response: ["heartbeat", "#999999"],
  request_vote: ["election", "#ff7f0e"], request_vote_response: ["election", "#ff7f0e"],
  request_pre_vote: ["election", "#ff7f0e"], request_pre_vote_response: ["election", "#ff7f0e"],
  timeout_now: ["election", "#ff7f0e"], snapshot: ["snapshot", "#d62728"],
  snapshot_chunk: ["snapshot chunk", "#2ca02c"], snapshot_request: ["stream control", "#9467bd"],
  snapshot_ack: ["stream control", "#9467bd"], snapshot_abort: ["stream control", "#9467bd"],
};
const STREAM = new Set(["snapshot_chunk", "snapshot_request", "snapshot_ack", "snapshot_abort"]);
const TERM_COLOURS = ["#8dd3c7", "#fdb462", "#bebada", "#fb8072", "#80b1d3", "#b3de69", "#fccde5", "#ffffb3", "#bc80bd", "#ccebc5"];
const termColour = (term) => TERM_COLOURS[term % TERM_COLOURS.length];
const LOG_CELLS = 40;  // entries drawn per log row: the newest ones

const state = { t: 0, playing: false, speed: 1, window: 0, lastFrame: null };
const M = RUN.messages;
const maxDelay = M.sent.reduce((m, s, i) => Math.max(m, (M.arrives[i] ?? s) - s), 0);
const streamNodes = new Set();
M.type.forEach((code, i) => { if (STREAM.has(RUN.types[code])) { streamNodes.add(M.src[i]); streamNodes.add(M.dst[i]); } });
const storyTimes = RUN.story.map((s) => s[0]);

function humanBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB"]; let v = n, u = 0;
  while (v >= 1024 && u < 3) { v /= 1024; u++; }
  return u === 0 ? `${n} B` : `${(Math.round(v * 10) / 10)} ${units[u]}`;
}
function lowerBound(array, value) {  // first position with array[pos] >= value
  let lo = 0, hi = array.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (array[mid] < value) lo = mid + 1; else hi = mid; }
  return lo;
}
function upperBound(array, value) {  // first position with array[pos] > value
  let lo = 0, hi = array.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (array[mid] <= value) lo = mid + 1; else hi = mid; }
  return lo;
}

// ---- state at time t, from the model -------------------------------------------------------
function roleAt(node, t) {
  let found = null;
  for (const [n, start, end, role, term, leader] of RUN.roles) if (n === node && start <= t && (t < end || (end === RUN.end && t >= end))) found = { role, term, leader };
  return found;
}
function learnersAt(t) {
  let learners = [];
  for (const [when, , names] of RUN.membership) { if (when > t) break; learners = names; }
  return new Set(learners);
}
function statusAt(node, t) {
  for (const [n, start, end, kind] of RUN.outages) if (n === node && start <= t && t < end) return kind;
  for (const [start, end, nodes] of RUN.network) if (nodes.includes(node) && start <= t && t < end) return "partitioned";
  return "up";
}
let logCache = { t: -1, position: 0, logs: {} };
function logsAt(t) {  // replays log changes up to t; forward from the cache, from scratch going back
  if (t < logCache.t) logCache = { t: -1, position: 0, logs: {} };
  const logs = logCache.logs; let i = logCache.position;
  for (; i < RUN.logs.length && RUN.logs[i][0] <= t; i++) {
    const [, node, kind, index, terms, term] = RUN.logs[i];
    const log = logs[node] || (logs[node] = { snap: 0, snapTerm: 0, terms: [], commit: 0, applied: 0 });
    if (kind === 0) { log.terms.length = Math.max(index - log.snap, 0); log.terms.push(...terms); }
    else if (kind === 1) { log.snap = index; log.snapTerm = term; log.terms = []; log.commit = Math.max(log.commit, index); log.applied = Math.max(log.applied, index); }
    else if (kind === 2) { log.terms.splice(0, index - log.snap); log.snap = index; log.snapTerm = term; }
    else if (kind === 3) log.commit = index;
    else log.applied = index;
  }
  logCache = { t, position: i, logs };
  return logs;
}
function progressAt(track, t) {
  let done = 0;
  for (const [when, bytes] of track.progress) { if (when > t) break; done = bytes; }
  return done;
}

// ---- drawing helpers -----------------------------------------------------------------------
function canvas(id, height) {
  const element = $(id), ratio = window.devicePixelRatio || 1;
  const width = element.clientWidth || 800;
  element.width = width * ratio; element.height = height * ratio; element.style.height = height + "px";
  const ctx = element.getContext("2d"); ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height); ctx.font = "11px sans-serif";
  return { ctx, width, height };
}
function hatch(ctx, x, y, w, h, colour) {
  ctx.save(); ctx.beginPath(); ctx.rect(x, y, w, h); ctx.clip();
  ctx.fillStyle = "rgba(140,140,140,0.3)"; ctx.fillRect(x, y, w, h);
  ctx.strokeStyle = colour; ctx.lineWidth = 1;
  for (let k = -h; k < w; k += 7) { ctx.beginPath(); ctx.moveTo(x + k, y + h); ctx.lineTo(x + k + h, y); ctx.stroke(); }
  ctx.restore();
}
function shadeFaults(ctx, x, bandOf, low, high) {  // outages on their node, cut links on the nodes cut off
  for (const [node, start, end, kind] of RUN.outages) {
    const band = bandOf(node); if (!band || end < low || start > high) continue;
    const x0 = x(Math.max(start, low)), x1 = x(Math.min(end, high));
    if (kind === "down") hatch(ctx, x0, band[0], x1 - x0, band[1] - band[0], "#666");
    else { ctx.fillStyle = "rgba(255,215,0,0.3)"; ctx.fillRect(x0, band[0], x1 - x0, band[1] - band[0]); }
  }
  for (const [start, end, nodes, label] of RUN.network) {
    if (end < low || start > high) continue;
    const x0 = x(Math.max(start, low)), x1 = x(Math.min(end, high));
    ctx.fillStyle = "rgba(255,0,255,0.12)";
    for (const node of nodes) { const band = bandOf(node); if (band) ctx.fillRect(x0, band[0], x1 - x0, band[1] - band[0]); }
    const first = bandOf(nodes[0]);
    if (first) { ctx.fillStyle = "#909"; ctx.fillText(label, x0 + 3, first[0] + 10); }
  }
}
function cursor(ctx, x, height) { ctx.strokeStyle = "#e00"; ctx.lineWidth = 1.5; ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, height); ctx.stroke(); }

// ---- message lanes -------------------------------------------------------------------------
function drawLanes(t) {
  const lanes = []; // [node, stream?, y]
  let y = 18;
  for (const node of RUN.nodes) { lanes.push([node, false, y]); y += 26; if (streamNodes.has(node)) { lanes.push([node, true, y]); y += 26; } y += 6; }
  const { ctx, width, height } = canvas("lanes", y + 16);
  const left = 70, w = state.window > 0 ? state.window : Math.max(RUN.end, 1e-3);
  const low = state.window > 0 ? Math.max(0, t - w * 0.85) : 0, high = state.window > 0 ? low + w : RUN.end;
  const x = (time) => left + (time - low) / (high - low) * (width - left - 10);
  const laneY = (node, stream) => { const lane = lanes.find((l) => l[0] === node && l[1] === stream) || lanes.find((l) => l[0] === node); return lane ? lane[2] : 0; };
  const bandOf = (node) => { const own = lanes.filter((l) => l[0] === node); return own.length ? [own[0][2] - 11, own[own.length - 1][2] + 11] : null; };
  shadeFaults(ctx, x, bandOf, low, high);
  ctx.fillStyle = "#333"; ctx.strokeStyle = "#ddd"; ctx.lineWidth = 1;
  for (const [node, stream, ly] of lanes) {
    ctx.fillText(stream ? `n${node} chunks` : `n${node}`, 4, ly + 4);
    ctx.beginPath(); ctx.moveTo(left, ly); ctx.lineTo(width - 10, ly); ctx.stroke();
  }
  const first = lowerBound(M.sent, low - maxDelay), last = upperBound(M.sent, Math.min(t, high));
  let drawn = 0;
  for (let i = first; i < last; i++) {
    const type = RUN.types[M.type[i]], fate = RUN.fates[M.fate[i]], colour = (FAMILIES[type] || ["other", "#8c564b"])[1];
    const stream = STREAM.has(type), y0 = laneY(M.src[i], stream), y1 = laneY(M.dst[i], stream);
    const sent = M.sent[i], arrives = M.arrives[i];
    if (arrives !== null && arrives < low) continue;
    ctx.strokeStyle = colour; ctx.fillStyle = colour; ctx.lineWidth = 1.1;
    ctx.setLineDash(fate === "duplicate" ? [2, 2] : fate === "dropped" || fate === "undelivered" ? [4, 3] : []);
    if (fate === "dropped") {  // lost on the way: a stub beside its sender, a cross, the intended receiver named
      const xs = x(sent), ye = y0 + Math.sign(y1 - y0) * 9;
      ctx.beginPath(); ctx.moveTo(xs, y0); ctx.lineTo(xs + 8, ye); ctx.stroke(); ctx.setLineDash([]);
      ctx.beginPath(); ctx.moveTo(xs + 5, ye - 3); ctx.lineTo(xs + 11, ye + 3); ctx.moveTo(xs + 11, ye - 3); ctx.lineTo(xs + 5, ye + 3); ctx.stroke();
      ctx.fillText(`n${M.dst[i]}`, xs + 12, ye + 4); drawn++; continue;
    }
    const until = Math.min(arrives ?? t, t), fraction = arrives > sent ? (until - sent) / (arrives - sent) : 1;
    const xe = x(until), ye = y0 + (y1 - y0) * Math.min(Math.max(fraction, 0), 1);
    ctx.beginPath(); ctx.moveTo(x(sent), y0); ctx.lineTo(xe, ye); ctx.stroke(); ctx.setLineDash([]);
    if (fraction >= 1) {
      const angle = Math.atan2(ye - y0, xe - x(sent));
      ctx.beginPath(); ctx.moveTo(xe, ye); ctx.lineTo(xe - 6 * Math.cos(angle - 0.4), ye - 6 * Math.sin(angle - 0.4));
      ctx.lineTo(xe - 6 * Math.cos(angle + 0.4), ye - 6 * Math.sin(angle + 0.4)); ctx.closePath(); ctx.fill();
      if (fate === "undelivered") { ctx.beginPath(); ctx.moveTo(xe - 4, ye - 4); ctx.lineTo(xe + 4, ye + 4); ctx.moveTo(xe + 4, ye - 4); ctx.lineTo(xe - 4, ye + 4); ctx.stroke(); }
    } else { ctx.beginPath(); ctx.arc(xe, ye, 2.5, 0, 7); ctx.fill(); }  // still on the wire
    drawn++;
  }
  for (const [when, node] of RUN.compactions) if (when >= low && when <= t) { const px = x(when), py = laneY(node, false); ctx.fillStyle = "#000"; ctx.beginPath(); ctx.moveTo(px, py - 5); ctx.lineTo(px + 5, py); ctx.lineTo(px, py + 5); ctx.lineTo(px - 5, py); ctx.fill(); }
  for (const [when, node] of RUN.installs) if (when >= low && when <= t) { ctx.fillStyle = "#d62728"; ctx.font = "15px sans-serif"; ctx.fillText("★", x(when) - 6, laneY(node, false) + 5); ctx.font = "11px sans-serif"; }
  cursor(ctx, x(t), height);
  ctx.fillStyle = "#666"; ctx.fillText(`${low.toFixed(3)} s`, left, height - 3); ctx.fillText(`${high.toFixed(3)} s`, width - 70, height - 3);
  $("lanes").dataset.drawn = drawn;
}

// ---- roles over the whole run, with the cursor ----------------------------------------------
function drawRoles(t) {
  const { ctx, width, height } = canvas("roles", RUN.nodes.length * 22 + 20);
  const left = 40, x = (time) => left + time / Math.max(RUN.end, 1e-3) * (width - left - 10);
  const laneTop = (node) => 4 + RUN.nodes.indexOf(node) * 22;
  const bandOf = (node) => RUN.nodes.includes(node) ? [laneTop(node), laneTop(node) + 16] : null;
  for (const [node, start, end, role, term] of RUN.roles) {
    const top = laneTop(node);
    // A follower that is a learner for part of its span: coloured as a learner there.
    const cuts = [start, ...RUN.membership.map((m) => m[0]).filter((w) => w > start && w < end), end];
    const pieces = [];  // [from, to, colour], a membership change that left the node alike merged away
    for (let k = 0; k + 1 < cuts.length; k++) {
      const learner = role === "follower" && learnersAt(cuts[k]).has(node);
      const colour = ROLE_COLOURS[learner ? "learner" : role] || "#8c564b";
      if (pieces.length && pieces[pieces.length - 1][2] === colour) pieces[pieces.length - 1][1] = cuts[k + 1];
      else pieces.push([cuts[k], cuts[k + 1], colour]);
    }
    for (const [from, to, colour] of pieces) { ctx.fillStyle = colour; ctx.fillRect(x(from), top, Math.max(x(to) - x(from) - 1, 1), 16); }
    if (x(end) - x(start) > 26) { ctx.fillStyle = "#000"; ctx.fillText(`t${term}`, (x(start) + x(end)) / 2 - 7, top + 12); }
  }
  shadeFaults(ctx, x, bandOf, 0, RUN.end);
  ctx.fillStyle = "#333";
  for (const node of RUN.nodes) ctx.fillText(`n${node}`, 4, laneTop(node) + 12);
  cursor(ctx, x(t), height);
}

// ---- node table, logs, transfers, memory, story -----------------------------------------------
function renderNodes(t) {
  const logs = logsAt(t), learners = learnersAt(t);
  const rows = RUN.nodes.map((node) => {
    const status = statusAt(node, t), role = roleAt(node, t), log = logs[node];
    const down = status === "down";
    let roleName = down || !role ? "-" : role.role.replace("_", "-");
    if (!down && learners.has(node)) roleName += " (learner)";
    const cells = [`n${node}`, roleName, down || !role ? "-" : role.term, log ? log.commit : 0, log ? log.applied : 0, log ? log.snap : 0, log ? log.snap + log.terms.length : 0];
    return `<tr data-node="${esc(node)}"><td>${esc(cells[0])}</td><td class="role ${esc(role ? role.role : "")}">${esc(cells[1])}</td>` +
      cells.slice(2).map((c) => `<td>${esc(c)}</td>`).join("") + `<td class="status ${esc(status)}">${esc(status)}</td></tr>`;
  });
  $("nodes").tBodies[0].innerHTML = rows.join("");
  const html = RUN.nodes.map((node) => {
    const log = logs[node] || { snap: 0, snapTerm: 0, terms: [], commit: 0, applied: 0 };
    const lastIndex = log.snap + log.terms.length, firstShown = Math.max(log.snap + 1, lastIndex - LOG_CELLS + 1);
    let cells = log.snap ? `<span class="snap" title="entries up to ${esc(log.snap)} are in the snapshot">snapshot ≤ ${esc(log.snap)} (t${esc(log.snapTerm)})</span>` : "";
    if (firstShown > log.snap + 1) cells += `<span class="more">…${firstShown - log.snap - 1} more</span>`;
    for (let index = firstShown; index <= lastIndex; index++) {
      const term = log.terms[index - log.snap - 1];
      const classes = ["cell", index > log.commit ? "uncommitted" : "", index === log.commit ? "commit" : "", index === log.applied ? "applied" : ""].join(" ");
      cells += `<span class="${classes}" data-index="${index}" data-term="${esc(term)}" style="background:${termColour(term)}" title="entry ${index}, term ${esc(term)}">${esc(term)}</span>`;
    }
    const down = statusAt(node, t) === "down" ? " down-row" : "";
    return `<div class="logrow${down}" data-node="${esc(node)}" data-commit="${esc(log.commit)}" data-applied="${esc(log.applied)}" data-snapshot="${esc(log.snap)}" data-last="${esc(lastIndex)}"><span class="who">n${esc(node)}</span><span class="cells">${cells}</span></div>`;
  }).join("");
  $("logs").innerHTML = html;
}
function renderTransfers(t) {
  const parts = RUN.transfers.filter((tr) => tr.progress.length && tr.progress[0][0] <= t).map((tr) => {
    const done = progressAt(tr, t), size = Math.max(tr.size, 1);
    const ended = tr.ended !== null && tr.ended <= t;
    const retries = tr.retries.filter((r) => r[0] <= t).length, resumes = tr.resumes.filter((r) => r[0] <= t).length;
    const outcome = ended ? tr.outcome : "in progress";
    return `<div class="transfer" data-outcome="${esc(outcome)}"><div>${esc(tr.label)}: <b>${esc(humanBytes(done))}</b> / ${esc(humanBytes(tr.size))} · ${retries} retries · ${resumes} resumes · <span class="outcome">${esc(outcome)}</span></div>` +
      `<div class="bar ${ended ? esc(tr.outcome) : ""}"><div style="width:${Math.min(100, 100 * done / size)}%"></div></div></div>`;
  });
  $("transfers").innerHTML = parts.join("") || `<i>${RUN.transfers.length ? "no snapshot transfer yet" : "no snapshot transfer in this run"}</i>`;
  if (!RUN.transfers.length) { $("transfer-chart").style.display = "none"; $("transfer-legend").style.display = "none"; return; }
  const { ctx, width, height } = canvas("transfer-chart", 150);
  const left = 60, top = 8, bottom = height - 16, maxSize = Math.max(...RUN.transfers.map((tr) => tr.size), 1);
  const x = (time) => left + time / Math.max(RUN.end, 1e-3) * (width - left - 10), y = (bytes) => bottom - bytes / maxSize * (bottom - top);
  const receivers = new Set(RUN.transfers.map((tr) => tr.receiver));
  shadeFaults(ctx, x, (node) => receivers.has(node) ? [top, bottom] : null, 0, RUN.end);
  RUN.transfers.forEach((tr, k) => {
    const colour = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b"][k % 5];
    ctx.strokeStyle = colour; ctx.lineWidth = 1.6; ctx.beginPath();
    tr.progress.forEach(([when, bytes], i) => { if (i === 0) ctx.moveTo(x(when), y(bytes)); else { ctx.lineTo(x(when), y(tr.progress[i - 1][1])); ctx.lineTo(x(when), y(bytes)); } });
    ctx.stroke();
    ctx.setLineDash([4, 3]); ctx.lineWidth = 0.8; ctx.beginPath(); ctx.moveTo(x(tr.progress[0][0]), y(tr.size)); ctx.lineTo(x(tr.ended ?? RUN.end), y(tr.size)); ctx.stroke(); ctx.setLineDash([]);
    ctx.fillStyle = "#d62728"; ctx.font = "13px sans-serif";
    for (const [when, offset] of tr.retries) ctx.fillText("×", x(when) - 4, y(offset) + 4);
    ctx.fillStyle = "#000"; for (const [when, offset] of tr.resumes) ctx.fillText("▲", x(when) - 5, y(offset) + 5);
    ctx.fillStyle = "#ff7f0e"; for (const [when, offset] of tr.rejected) ctx.fillText("▼", x(when) - 5, y(offset) + 5);
    ctx.font = "11px sans-serif";
  });
  ctx.fillStyle = "#333"; ctx.fillText(humanBytes(maxSize), 2, top + 8); ctx.fillText("0", 2, bottom);
  cursor(ctx, x(t), height);
}
function renderMemory(t) {
  if (!RUN.memory) return;
  if (!Object.values(RUN.memory).some((points) => points.some((p) => p[1] > 0))) {
    $("memory-section").querySelector("p").textContent = "No node held snapshot data in memory in this run."; $("memory").style.display = "none"; return;
  }
  const { ctx, width, height } = canvas("memory", 130);
  const left = 60, top = 8, bottom = height - 14, entries = Object.entries(RUN.memory);
  const peak = Math.max(1, ...entries.flatMap(([, points]) => points.map((p) => p[1])));
  const x = (time) => left + time / Math.max(RUN.end, 1e-3) * (width - left - 10), y = (b) => bottom - b / peak * (bottom - top);
  const now = [];
  entries.forEach(([node, points], k) => {
    const colour = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"][k % 7];
    ctx.strokeStyle = colour; ctx.lineWidth = 1.3; ctx.beginPath(); ctx.moveTo(x(0), y(0));
    let previous = 0, held = 0;
    for (const [when, bytes] of points) { ctx.lineTo(x(when), y(previous)); ctx.lineTo(x(when), y(bytes)); previous = bytes; if (when <= t) held = bytes; }
    ctx.lineTo(x(RUN.end), y(previous)); ctx.stroke();
    now.push(`<span><span class="key" style="background:${colour}"></span>n${esc(node)}: ${esc(humanBytes(held))}</span>`);
  });
  ctx.fillStyle = "#333"; ctx.fillText(humanBytes(peak), 2, top + 8); ctx.fillText("0", 2, bottom);
  cursor(ctx, x(t), height);
  $("memory-now").innerHTML = now.join("");
}
let storyBuilt = false;
function renderStory(t) {
  const box = $("story");
  if (!storyBuilt) { box.innerHTML = RUN.story.map(([when, , text], i) => `<div data-i="${i}"><span class="t">${esc(Number(when).toFixed(3))}s</span>${esc(text)}</div>`).join(""); storyBuilt = true; }
  const shown = upperBound(storyTimes, t);
  for (const line of box.children) {
    const i = +line.dataset.i;
    line.className = i >= shown ? "future" : i === shown - 1 ? "current" : "";
  }
  const current = box.children[shown - 1];
  if (current) box.scrollTop = current.offsetTop - box.offsetTop - box.clientHeight / 2;
}

// ---- time and controls -----------------------------------------------------------------------
function render() {
  const t = state.t;
  $("clock").textContent = `t = ${t.toFixed(3)} s`;
  document.body.dataset.time = t.toFixed(6);
  $("slider").value = t;
  renderNodes(t); drawLanes(t); drawRoles(t); renderTransfers(t); renderMemory(t); renderStory(t);
}
function seek(t) { state.t = Math.min(Math.max(t, 0), RUN.end); render(); }
function setPlaying(playing) {
  state.playing = playing && state.t < RUN.end; state.lastFrame = null;
  $("play").textContent = state.playing ? "⏸ pause" : "▶ play";
  document.body.dataset.playing = state.playing;
  if (state.playing) requestAnimationFrame(tick);
}
function tick(now) {
  if (!state.playing) return;
  if (state.lastFrame !== null) seek(state.t + (now - state.lastFrame) / 1000 * state.speed);
  state.lastFrame = now;
  if (state.t >= RUN.end) { setPlaying(false); return; }
  requestAnimationFrame(tick);
}
function step(direction) {  // to the next (or previous) moment the story tells something
  setPlaying(false);
  const position = direction > 0 ? upperBound(storyTimes, state.t) : lowerBound(storyTimes, state.t) - 1;
  if (position >= 0 && position < storyTimes.length) seek(storyTimes[position]);
  else seek(direction > 0 ? RUN.end : 0);
}
function setSpeed(speed) { state.speed = speed; $("speed").value = String(speed); $("speed-label").textContent = `${speed}×`; }
function changeSpeed(direction) {
  const position = SPEEDS.indexOf(state.speed) + direction;
  setSpeed(SPEEDS[Math.min(Math.max(position, 0), SPEEDS.length - 1)]);
}

function init() {
  document.title = RUN.title; $("title").textContent = RUN.title;
  const slider = $("slider"); slider.max = RUN.end; slider.step = "any";
  $("speed").innerHTML = SPEEDS.map((s) => `<option value="${s}">${s}× virtual time</option>`).join("");
  const defaultWindow = RUN.end > 60 ? 2 : RUN.end > 2 ? 0.5 : 0;  // arrows stay readable
  $("window").innerHTML = [[0.1, "0.1 s"], [0.5, "0.5 s"], [2, "2 s"], [10, "10 s"], [0, "whole run"]].map(([v, l]) => `<option value="${v}">${l}</option>`).join("");
  $("window").value = String(defaultWindow); state.window = defaultWindow;
  slider.addEventListener("input", () => { setPlaying(false); seek(parseFloat(slider.value)); });
  $("play").addEventListener("click", () => setPlaying(!state.playing));
  $("step").addEventListener("click", () => step(1));
  $("back").addEventListener("click", () => step(-1));
  $("start").addEventListener("click", () => { setPlaying(false); seek(0); });
  $("end").addEventListener("click", () => { setPlaying(false); seek(RUN.end); });
  $("speed").addEventListener("change", () => setSpeed(parseFloat($("speed").value)));
  $("window").addEventListener("change", () => { state.window = parseFloat($("window").value); render(); });
  document.addEventListener("keydown", (event) => {
    if (event.target.tagName === "SELECT") return;
    if (event.key === " ") { event.preventDefault(); setPlaying(!state.playing); }
    else if (event.key === "n" || event.key === "ArrowRight") step(1);
    else if (event.key === "p" || event.key === "ArrowLeft") step(-1);
    else if (event.key === "+" || event.key === "=") changeSpeed(1);
    else if (event.key === "-") changeSpeed(-1);
  });
  const legend = {};
  for (const type of RUN.types) { const [name, colour] = FAMILIES[type] || ["other", "#8c564b"]; legend[name] = colour; }
  $("lane-legend").innerHTML = Object.entries(legend).map(([n, c]) => `<span><span class="key" style="background:${c}"></span>${esc(n)}</span>`).join("") +
    "<span>- - lost or undelivered (× at the end; a short stub names the receiver)</span><span>··· duplicate</span><span>● still on the wire</span>" +
    "<span>◆ compaction</span><span style='color:#d62728'>★ snapshot installed</span>" + FAULT_LEGEND;
  $("role-legend").innerHTML = Object.entries(ROLE_COLOURS).map(([r, c]) => `<span><span class="key" style="background:${c}"></span>${r.replace("_", "-")}</span>`).join("") + FAULT_LEGEND;
  $("term-legend").innerHTML = [...new Set(RUN.logs.flatMap((c) => c[4]))].sort((a, b) => a - b).map((term) => `<span><span class="key" style="background:${termColour(term)}"></span>term ${esc(term)}</span>`).join("") +
    "<span>dashed: not committed yet</span><span>black edge: commit index</span><span style='color:#d00'>▲ under: applied index</span><span>hatched: in the snapshot</span>";
  $("transfer-legend").innerHTML = "<span>solid: bytes verified at the receiver</span><span>dashed: snapshot size</span><span style='color:#d62728'>× retry (asked again)</span><span>▲ resume from a kept offset</span><span style='color:#ff7f0e'>▼ chunk rejected</span>" + FAULT_LEGEND;
  const notes = [`${RUN.messages_total.toLocaleString()} messages`, ...RUN.thinned];
  if (!RUN.memory) { $("memory-section").querySelector("p").textContent = "Memory is measured by the cluster, not recorded in the trace: a page made from a trace file has none."; $("memory").style.display = "none"; }
  $("notes").textContent = notes.join(" · ");
  setSpeed(1); seek(0);
  window.addEventListener("resize", render);
}
const FAULT_LEGEND = "<span><span class='key' style='background:repeating-linear-gradient(45deg,#999,#999 2px,#ddd 2px,#ddd 4px)'></span>node down</span>" +
  "<span><span class='key' style='background:rgba(255,215,0,0.4)'></span>paused</span><span><span class='key' style='background:rgba(255,0,255,0.2)'></span>cut off by the network</span>";
init();
