// Demo page (the landing page): a live SSE stream (GET /v1/demo/ticks) read with the browser's
// EventSource. Shows each tick as it arrives, the connection state, and that a reconnect
// resumes after the last event id (the browser sends Last-Event-ID by itself); then what the
// other pages show.

import { el } from "../lib/dom.js";

const TOUR = [
  ["#/chat", "Chat", "conversations with a model, streamed token by token; a reload resumes the answer"],
  ["#/notifications", "Notifications", "publish to a channel and watch subscribers receive it"],
  ["#/jobs", "Jobs", "background work with a live progress bar and partial results"],
  ["#/files", "Files", "resumable uploads and ranged downloads"],
  ["#/tails", "Tails", "live lines of allow-listed log files"],
  ["#/inspect", "Inspector", "any stream's events, timings, readers and resets"],
];

export function mount(root, { api = "" } = {}) {
  const count = el("div", { class: "big", id: "demo-count", "aria-label": "Last tick" }, "–");
  const status = el("p", { class: "status", id: "demo-status", role: "status" }, "connecting…");
  const list = el("div", { class: "ticks", id: "demo-ticks", tabindex: 0, role: "region", "aria-label": "Ticks received" });
  const restart = el("button", { type: "button", id: "demo-restart" }, "Restart");
  root.append(el("section", { class: "page demo" },
    el("h1", {}, "Live stream"),
    el("p", { class: "muted" },
      "Server-Sent Events from ", el("code", {}, "GET /v1/demo/ticks"),
      ": one event every half second, resumable by event id."),
    el("div", { class: "demo-head" }, count, el("div", {}, status, restart)),
    list,
    el("h2", {}, "Also here"),
    el("ul", { class: "tour" }, ...TOUR.map(([href, name, what]) =>
      el("li", {}, el("a", { href }, name), el("span", { class: "muted" }, `: ${what}`))))));

  let source = null;
  let received = 0;

  function open() {
    if (source) source.close();
    source = new EventSource(`${api}/v1/demo/ticks?interval=0.5&count=100000`);
    source.onopen = () => {
      status.textContent = "connected";
      status.dataset.state = "open";
    };
    source.onerror = () => {
      status.textContent = "reconnecting…";
      status.dataset.state = "error";
    };
    source.addEventListener("tick", (event) => {
      const tick = JSON.parse(event.data);
      received += 1;
      count.textContent = String(tick.n);
      count.dataset.n = String(tick.n);
      list.prepend(el("div", {}, `#${event.lastEventId}  ${new Date(tick.time * 1000).toISOString()}`));
      while (list.childElementCount > 200) list.lastElementChild.remove();
      root.dataset.received = String(received);
    });
  }
  restart.onclick = open;
  open();
  return () => {
    if (source) source.close();
  };
}

export default { id: "demo", title: "Live demo", mount };
