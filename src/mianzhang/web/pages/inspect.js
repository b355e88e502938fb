// Stream inspector (#/inspect/<stream id>[?format=native], #/inspect?tail=<name>): what one
// stream carries, live.
//
// - Reads GET /v1/streams/{id} (or GET /v1/tails/{name}) with lib/sse.js, which shows every
//   event type and the pings EventSource hides, and reconnects after the last id like a
//   browser would (each connection, drop and `reset` is a row of the timeline too).
// - Timeline: per event its sequence number in this view, id, type, size on the wire (bytes of
//   its lines), time since the connection was opened and the start of its data.
// - Time to first token: the server's own figure (the native `progress`/`complete`/`error`
//   events' `time_to_first_token_ms`, which is what its metrics record), next to when the first
//   token reached this page. Time per token: the server's mean (1 / its tokens_per_second).
//   Inter-token latency: the gaps between `content` events as they arrived here (a chart; a
//   replay of a finished stream arrives in one burst, and says so).
// - Readers: GET /v1/streams/{id}/info every second (this page is one of them); state, last
//   id, length and retention from the same answer. Tails have no info endpoint.
// - "Replay after id": reads again after any id (an event id, or a number N for "<epoch>-N");
//   "From the start" replays everything the log still holds.

import { el, field, fmtBytes, hashParams, hashPath, inspectHref } from "../lib/dom.js";
import { follow, idEpoch } from "../lib/sse.js";
import { barChart, percentile } from "../lib/chart.js";

const MAX_ROWS = 500;

function target() {
  const params = hashParams();
  const tail = params.get("tail");
  if (tail) return { kind: "tail", name: tail, url: `/v1/tails/${encodeURIComponent(tail)}`, label: `tail ${tail}` };
  const stream = hashPath()[0];
  if (!stream) return null;
  const format = params.get("format");
  const query = format ? `?format=${encodeURIComponent(format)}` : "";
  return { kind: "stream", name: stream, url: `/v1/streams/${encodeURIComponent(stream)}${query}`, label: stream, format };
}

function picker(root, chats) {
  const input = el("input", { required: true, placeholder: "gen-…, job:…, channel:…", "data-testid": "inspect-id", autocomplete: "off" });
  const form = el("form", { class: "inline-form" }, field("Stream id", input), el("button", { type: "submit", class: "primary" }, "Inspect"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = inspectHref(input.value.trim());
  });
  const recent = el("ul", { class: "plain-list", "data-testid": "inspect-recent" });
  root.replaceChildren(el("section", { class: "page" },
    el("h1", {}, "Stream inspector"),
    el("p", { class: "muted" }, "Any event-log stream, live: its events, timings, readers and resets. Open one from a chat answer, a job, a channel or a tail, or type its id."),
    form, el("h2", {}, "Recent answers"), recent));
  chats.list().then(async (convs) => {
    const items = [];
    for (const c of convs.slice(0, 5)) {
      const conv = await chats.get(c.id);
      for (const m of (conv ? conv.messages : []).filter((x) => x.streamId).slice(-3)) {
        items.push(el("li", {}, el("a", { href: `${inspectHref(m.streamId)}?format=native` }, m.streamId), el("span", { class: "muted" }, ` ${c.title}`)));
      }
    }
    recent.replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, "No chat answers in this browser yet.")]));
  });
  return () => {};
}

function stat(label, testid, value = "–") {
  const dd = el("dd", { "data-testid": testid }, value);
  return { node: el("div", { class: "stat" }, el("dt", {}, label), dd), dd };
}

export function mount(root, { api = "", chats }) {
  const t = target();
  if (!t) return picker(root, chats);

  const s = {
    state: stat("State", "inspect-state"),
    events: stat("Events", "inspect-count", "0"),
    bytes: stat("Bytes", "inspect-bytes", "0 B"),
    ttft: stat("Time to first token (server)", "inspect-ttft"),
    seen: stat("First token reached this page", "inspect-first-seen"),
    itl: stat("Inter-token gap here (median / p95)", "inspect-itl"),
    tpot: stat("Time per token (server mean)", "inspect-tpot"),
    readers: stat("Readers now (this page included)", "inspect-readers", t.kind === "tail" ? "not tracked for tails" : "–"),
    resets: stat("Resets", "inspect-resets", "0"),
    conns: stat("Connections", "inspect-connections", "0"),
    last: stat("Last id", "inspect-last-id"),
  };
  const after = el("input", { placeholder: "id or number", "data-testid": "inspect-after", autocomplete: "off", size: 14 });
  const replay = el("button", { type: "submit", "data-testid": "inspect-replay" }, "Replay after id");
  const fromStart = el("button", { type: "button", "data-testid": "inspect-from-start" }, "From the start");
  const pause = el("button", { type: "button", "data-testid": "inspect-pause" }, "Pause");
  const form = el("form", { class: "inline-form" }, field("Replay after event id", after, { hint: "an id, or N for <epoch>-N" }), replay, fromStart, pause);
  const chartBox = el("div", { class: "chart-box", "data-testid": "inspect-chart" }, el("p", { class: "muted" }, "No tokens yet."));
  const chartNote = el("p", { class: "muted small" }, "Gaps between tokens (content events) as they reached this page: live tokens show the model's pace; tokens replayed from the log arrive in a burst.");
  const rows = el("tbody", { "data-testid": "inspect-rows" });
  const note = el("p", { class: "muted", "data-testid": "inspect-note" });
  const table = el("div", { class: "table-wrap", tabindex: 0, role: "region", "aria-label": "Events of the stream" },
    el("table", { class: "events" },
      el("thead", {}, el("tr", {}, ...["#", "type", "+ms", "size", "id", "data"].map((h) => el("th", { scope: "col" }, h)))),
      rows));
  root.replaceChildren(el("section", { class: "page inspect" },
    el("h1", {}, "Stream inspector"),
    el("p", { class: "stream-name" }, el("code", { "data-testid": "inspect-stream" }, t.label), t.format ? el("span", { class: "muted" }, ` · format ${t.format}`) : null),
    el("dl", { class: "stats" }, ...Object.values(s).map((x) => x.node)),
    el("h2", {}, "Inter-token latency"), chartBox, chartNote,
    form,
    el("h2", {}, "Timeline"), note, table));

  let handle = null;
  let t0 = 0;
  let n = 0;
  let bytes = 0;
  let lastArrival = null;
  let gaps = [];
  let firstSeen = null;
  let epoch = null;
  let resets = 0;
  let connections = 0;
  let timer = 0;
  let chartFrame = 0;

  // One timeline row; columns: #, type, +ms, size, id, data (the narrow screen sees the first).
  function row(kind, { seq = "", id = "", type = "", size = "", data = "" }, cls = "") {
    const ms = (performance.now() - t0).toFixed(1);
    const cells = [["seq", seq], ["type", type], ["ms", ms], ["size", size], ["id", id], ["data", data]];
    const tr = el("tr", { class: cls, "data-kind": kind, "data-id": id, "data-type": type },
      ...cells.map(([name, value]) => el("td", { class: `c-${name}`, title: name === "data" ? String(value.textContent ?? value) : undefined }, value)));
    rows.append(tr);
    while (rows.childElementCount > MAX_ROWS) rows.firstElementChild.remove();
    note.textContent = n > MAX_ROWS ? `Showing the last ${MAX_ROWS} rows.` : "";
  }

  function drawChart() {
    chartFrame = 0;
    if (!gaps.length) return;
    const median = percentile(gaps, 50);
    const p95 = percentile(gaps, 95);
    const burst = gaps.length >= 10 && p95 < 2;
    s.itl.dd.textContent = `${median.toFixed(1)} / ${p95.toFixed(1)} ms${burst ? " (replayed in a burst)" : ""}`;
    chartBox.replaceChildren(barChart(gaps, { label: `Gaps between tokens as they arrived: median ${median.toFixed(1)} ms, p95 ${p95.toFixed(1)} ms, ${gaps.length} gaps` }));
  }

  function timings(data) {
    const source = data && (data.timings || data);
    if (source && source.tokens_per_second) s.tpot.dd.textContent = `${(1000 / source.tokens_per_second).toFixed(1)} ms`;
    const ttft = data && (data.timings ? data.timings.time_to_first_token_ms : data.time_to_first_token_ms);
    if (ttft !== undefined && ttft !== null) {
      s.ttft.dd.textContent = `${ttft} ms`;
      s.ttft.dd.dataset.ms = String(ttft);
    }
  }

  function onEvent(event) {
    const now = performance.now();
    n += 1;
    bytes += event.size;
    epoch = epoch || idEpoch(event.id);
    s.events.dd.textContent = String(n);
    s.bytes.dd.textContent = fmtBytes(bytes);
    s.last.dd.textContent = event.id || "–";
    root.dataset.events = String(n);
    let data = null;
    try {
      data = JSON.parse(event.data);
    } catch {
      // text data
    }
    if (event.type === "content" || (t.kind === "tail" && event.type === "message")) {
      if (firstSeen === null) {
        firstSeen = now - t0;
        s.seen.dd.textContent = `${firstSeen.toFixed(1)} ms after connecting`;
      }
      if (lastArrival !== null) gaps.push(now - lastArrival);
      lastArrival = now;
      if (!chartFrame) chartFrame = requestAnimationFrame(drawChart);
    }
    if (event.type === "progress" || event.type === "complete" || event.type === "error") timings(data);
    if (event.type === "complete" || event.type === "error") s.state.dd.textContent = event.type === "complete" ? "finished" : "ended with an error";
    if (event.type === "reset") {
      resets += 1;
      s.resets.dd.textContent = String(resets);
    }
    const preview = event.data.length > 2000 ? `${event.data.slice(0, 2000)}…` : event.data;
    row("event", { seq: String(n), id: event.id || "", type: event.type, size: `${event.size} B`, data: el("code", {}, preview) },
      event.type === "reset" ? "row-reset" : "");
  }

  function start(lastEventId) {
    if (handle) handle.stop();
    t0 = performance.now();
    lastArrival = null;
    gaps = [];
    firstSeen = null;
    pause.textContent = "Pause";
    const label = lastEventId ? `after ${lastEventId}` : "from the start";
    handle = follow(`${api}${t.url}`, {
      lastEventId,
      onEvent,
      onComment: (c) => row("comment", { type: `: ${c.text || "ping"}`, size: `${c.size} B` }, "row-meta"),
      onOpen: ({ status, lastEventId: from }) => {
        connections += 1;
        s.conns.dd.textContent = String(connections);
        const data = status === 204 ? "the stream has ended and was read to its end" : label;
        row("open", { id: from || "", type: `connected (HTTP ${status})`, data }, "row-meta");
      },
      onDrop: ({ error, delay }) => row("drop", { type: "connection lost", data: `${error.message}; again in ${delay} ms` }, "row-meta"),
    });
    const mine = handle;
    handle.done.then(
      (how) => {
        if (how === "ended" && mine === handle) s.state.dd.textContent = s.state.dd.textContent === "–" ? "ended" : s.state.dd.textContent;
      },
      (error) => {
        if (mine !== handle) return;
        s.state.dd.textContent = `error: ${error.message}`;
        row("error", { type: "refused", data: error.message }, "row-reset");
      },
    );
  }

  async function poll() {
    if (t.kind !== "stream") return;
    try {
      const response = await fetch(`${api}/v1/streams/${encodeURIComponent(t.name)}/info`, { cache: "no-store" });
      if (!response.ok) return;
      const info = await response.json();
      epoch = info.epoch || epoch;
      s.readers.dd.textContent = String(info.readers);
      if (!["finished", "ended with an error"].includes(s.state.dd.textContent)) s.state.dd.textContent = info.state;
      const kept = info.max_events ? ` (keeps ${info.max_events})` : "";
      s.last.dd.title = `${info.length} events in the log${kept}`;
    } catch {
      // next time
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = after.value.trim();
    if (!value) return start(null);
    start(/^\d+$/.test(value) && epoch ? `${epoch}-${value}` : value);
  });
  fromStart.addEventListener("click", () => start(null));
  pause.addEventListener("click", () => {
    if (pause.textContent === "Pause") {
      const id = handle ? handle.lastEventId : null;
      if (handle) handle.stop();
      handle = null;
      after.value = id || "";
      pause.textContent = "Continue";
      row("pause", { id: id || "", type: "paused", data: "Continue resumes after this id" }, "row-meta");
    } else {
      start(after.value.trim() || null);
    }
  });

  start(null);
  poll();
  timer = setInterval(poll, 1000);
  return () => {
    if (handle) handle.stop();
    clearInterval(timer);
    if (chartFrame) cancelAnimationFrame(chartFrame);
  };
}

export default { id: "inspect", title: "Inspector", mount };
