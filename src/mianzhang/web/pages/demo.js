// Demo page: a live SSE stream (GET /v1/demo/ticks) read with the browser's EventSource.
// Shows each tick as it arrives, the connection state, and that a reconnect resumes after
// the last event id (the browser sends Last-Event-ID by itself).

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, attrs);
  node.append(...children);
  return node;
}

export function mount(root, { api = "" } = {}) {
  const count = el("div", { className: "big", id: "demo-count" }, "–");
  const status = el("p", { className: "status", id: "demo-status" }, "connecting…");
  const list = el("div", { className: "ticks", id: "demo-ticks" });
  const restart = el("button", { id: "demo-restart" }, "Restart");
  root.append(
    el("h1", {}, "Live stream"),
    el("p", { className: "muted" },
      "Server-Sent Events from ", el("code", {}, "GET /v1/demo/ticks"),
      ": one event every half second, resumable by event id."),
    count, status, restart, list,
  );

  let source = null;
  let received = 0;

  function open() {
    if (source) source.close();
    source = new EventSource(`${api}/v1/demo/ticks?interval=0.5&count=100000`);
    source.onopen = () => { status.textContent = "connected"; status.dataset.state = "open"; };
    source.onerror = () => { status.textContent = "reconnecting…"; status.dataset.state = "error"; };
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
  return () => { if (source) source.close(); };
}

export default { id: "demo", title: "Live demo", mount };
