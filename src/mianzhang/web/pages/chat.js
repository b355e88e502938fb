// Chat page: streams a generation from the gateway's native event stream.
//
// - POST /v1/llm/generations creates a generation (JSON: stream_id, stream_url); the page then
//   follows GET /v1/streams/{id} with EventSource (native events: start, content, progress,
//   error, complete). EventSource reconnects by itself with Last-Event-ID.
// - Typewriter output: received text is revealed a few characters per animation frame.
// - Stop: POST /v1/streams/{id}/cancel (a user's stop cancels; closing the tab does not,
//   the server only cancels after the grace period with no reader).
// - Reload mid-answer: the stream id, the last event id and the text so far are kept in
//   sessionStorage and the URL (#/chat?stream=ID, a route the shell's router keeps on this
//   page); on load the page resumes after the last event id.
// - Shows time to first token and tokens/s; the demo model is labelled as a demo.

const STORE_KEY = "mianzhang.chat.v1";

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) node.append(child);
  return node;
}

function load() {
  try {
    return JSON.parse(sessionStorage.getItem(STORE_KEY) || "null");
  } catch {
    return null;
  }
}

function save(state) {
  sessionStorage.setItem(STORE_KEY, JSON.stringify(state));
  const hash = state && state.streamId ? `#/chat?stream=${encodeURIComponent(state.streamId)}` : "#/chat";
  if (location.hash !== hash) history.replaceState(null, "", location.pathname + location.search + hash);
}

function fmtMs(ms) {
  return ms == null ? "–" : `${Math.round(ms)} ms`;
}

function fmtRate(rate) {
  return rate == null ? "–" : `${rate.toFixed(1)} tok/s`;
}

export function mount(root, { api = "" } = {}) {
  const modelSelect = el("select", { class: "mz-chat-model", "data-testid": "chat-model" });
  const badge = el("span", { class: "mz-chat-badge", "data-testid": "chat-badge" });
  const prompt = el("textarea", {
    class: "mz-chat-prompt",
    rows: 3,
    placeholder: "Ask something…",
    "data-testid": "chat-prompt",
  });
  const send = el("button", { type: "submit", class: "mz-btn primary", "data-testid": "chat-send" }, "Send");
  const stop = el(
    "button",
    { type: "button", class: "mz-btn mz-btn-stop", disabled: true, "data-testid": "chat-stop" },
    "Stop",
  );
  const question = el("div", { class: "mz-chat-question", "data-testid": "chat-question" });
  const answer = el("div", { class: "mz-chat-answer", "data-testid": "chat-answer" });
  const caret = el("span", { class: "mz-chat-caret" }, "▍");
  const status = el("span", { class: "mz-chat-status", "data-testid": "chat-status" }, "idle");
  const ttft = el("span", { "data-testid": "chat-ttft" }, "–");
  const rate = el("span", { "data-testid": "chat-rate" }, "–");
  const tokens = el("span", { "data-testid": "chat-tokens" }, "0");
  const streamLabel = el("code", { "data-testid": "chat-stream-id" }, "");
  const form = el("form", { class: "mz-chat-form" }, prompt, el("div", { class: "mz-chat-buttons" }, send, stop));

  root.replaceChildren(
    el(
      "section",
      { class: "mz-chat" },
      el("header", { class: "mz-chat-head" }, el("label", {}, "Model ", modelSelect), badge),
      el("div", { class: "mz-chat-log" }, question, answer),
      form,
      el(
        "footer",
        { class: "mz-chat-stats" },
        "status: ", status,
        " · time to first token: ", ttft,
        " · ", rate,
        " · tokens: ", tokens,
        " · stream: ", streamLabel,
      ),
    ),
  );

  let state = load();
  let source = null;
  let shown = 0; // characters of state.text revealed so far (typewriter)
  let frame = 0;
  let models = [];
  let unloading = false;
  const onPageHide = () => {
    unloading = true;
  };
  window.addEventListener("pagehide", onPageHide);

  function render() {
    const text = state ? state.text : "";
    answer.textContent = text.slice(0, shown);
    if (state && state.status === "streaming") answer.append(caret);
    question.textContent = state ? state.prompt : "";
    status.textContent = state ? state.status : "idle";
    ttft.textContent = fmtMs(state && state.ttftMs);
    rate.textContent = fmtRate(state && state.rate);
    tokens.textContent = String(state ? state.tokens : 0);
    streamLabel.textContent = state ? state.streamId : "";
    const busy = !!state && (state.status === "streaming" || state.status === "starting");
    stop.disabled = !busy;
    send.disabled = busy;
  }

  function typewriter() {
    frame = 0;
    if (!state) return;
    const pending = state.text.length - shown;
    if (pending > 0) {
      shown += Math.max(1, Math.ceil(pending / 6));
      frame = requestAnimationFrame(typewriter);
    }
    render();
  }

  function reveal() {
    if (!frame) frame = requestAnimationFrame(typewriter);
  }

  function showBadge(model) {
    const info = models.find((m) => m.id === model);
    const demo = info ? info.owned_by === "mianzhang-demo" : model === "demo";
    badge.textContent = demo ? "demo model — not an LLM: it streams a fixed text" : info ? info.description || "" : "";
    badge.classList.toggle("mz-chat-badge-demo", demo);
  }

  function finish(newStatus) {
    if (source) {
      source.close();
      source = null;
    }
    state.status = newStatus;
    save(state);
    shown = Math.min(shown, state.text.length);
    reveal();
    render();
  }

  function follow() {
    if (source) source.close();
    const after = state.lastEventId ? `?last_event_id=${encodeURIComponent(state.lastEventId)}` : "";
    source = new EventSource(`${api}/v1/streams/${encodeURIComponent(state.streamId)}${after}`);
    source.addEventListener("start", (e) => {
      const data = JSON.parse(e.data);
      state.lastEventId = e.lastEventId;
      state.model = data.model;
      state.demo = data.demo;
      if (state.status === "starting") state.status = "streaming";
      showBadge(data.model);
      save(state);
      render();
    });
    source.addEventListener("content", (e) => {
      const data = JSON.parse(e.data);
      state.lastEventId = e.lastEventId;
      state.text += data.text;
      state.tokens += 1;
      state.status = "streaming";
      if (state.ttftMs == null && state.sentAt) state.ttftMs = performance.now() - state.sentAt;
      if (state.firstAt == null) state.firstAt = Date.now();
      const seconds = (Date.now() - state.firstAt) / 1000;
      if (state.tokens > 1 && seconds > 0) state.rate = (state.tokens - 1) / seconds;
      save(state);
      reveal();
    });
    source.addEventListener("progress", (e) => {
      const data = JSON.parse(e.data);
      state.lastEventId = e.lastEventId;
      if (data.tokens_per_second != null) state.rate = data.tokens_per_second;
      if (state.ttftMs == null && data.time_to_first_token_ms != null) state.ttftMs = data.time_to_first_token_ms;
      save(state);
      render();
    });
    source.addEventListener("complete", (e) => {
      const data = JSON.parse(e.data);
      state.lastEventId = e.lastEventId;
      const t = data.timings || {};
      if (t.tokens_per_second != null) state.rate = t.tokens_per_second;
      if (state.ttftMs == null) state.ttftMs = t.time_to_first_token_ms;
      state.serverTtftMs = t.time_to_first_token_ms;
      finish("done");
    });
    source.addEventListener("error", (e) => {
      // a named "error" event from the server carries data; a connection error does not
      if (e.data) {
        const data = JSON.parse(e.data);
        state.lastEventId = e.lastEventId;
        state.error = data.error ? data.error.message : "error";
        finish(data.error && data.error.code === "cancelled" ? "stopped" : "failed");
        return;
      }
      // leaving or reloading the page closes the connection too: that is not an end (the
      // page resumes after the reload), so nothing is recorded then
      if (unloading) return;
      if (source && source.readyState === EventSource.CLOSED) finish("disconnected");
      // otherwise EventSource reconnects by itself with Last-Event-ID
    });
  }

  async function loadModels() {
    try {
      const response = await fetch(`${api}/v1/models`);
      const body = await response.json();
      models = body.data || [];
    } catch {
      models = [];
    }
    modelSelect.replaceChildren(
      ...models.map((m) =>
        el("option", { value: m.id, selected: state ? state.model === m.id : false }, m.owned_by === "mianzhang-demo" ? `${m.id} (demo)` : m.id),
      ),
    );
    showBadge(modelSelect.value);
  }

  modelSelect.addEventListener("change", () => showBadge(modelSelect.value));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = prompt.value.trim();
    if (!text) return;
    if (source) source.close();
    state = {
      streamId: "",
      lastEventId: "",
      prompt: text,
      text: "",
      model: modelSelect.value,
      status: "starting",
      tokens: 0,
      ttftMs: null,
      rate: null,
      sentAt: performance.now(),
      firstAt: null,
    };
    shown = 0;
    render();
    const response = await fetch(`${api}/v1/llm/generations`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: state.model, messages: [{ role: "user", content: text }] }),
    });
    const body = await response.json();
    if (!response.ok) {
      state.error = body.error ? body.error.message : `HTTP ${response.status}`;
      state.status = "failed";
      answer.textContent = state.error;
      render();
      return;
    }
    state.streamId = body.stream_id;
    save(state);
    render();
    follow();
  });

  stop.addEventListener("click", async () => {
    if (!state || !state.streamId) return;
    stop.disabled = true;
    await fetch(`${api}/v1/streams/${encodeURIComponent(state.streamId)}/cancel`, { method: "POST" });
  });

  // Resume after a reload: the URL names the stream, sessionStorage has where we were.
  const match = /[?&]stream=([^&]+)/.exec(location.hash);
  if (state && match && decodeURIComponent(match[1]) !== state.streamId) state = null;
  if (state && state.streamId) {
    shown = state.text.length;
    state.sentAt = null; // time to first token was measured before the reload
    render();
    // "disconnected": the connection failed for good before; the server may still have it
    if (["streaming", "starting", "disconnected"].includes(state.status)) {
      if (state.status === "disconnected") state.status = "streaming";
      follow();
    }
  }
  loadModels();
  render();

  return () => {
    window.removeEventListener("pagehide", onPageHide);
    if (source) source.close();
    if (frame) cancelAnimationFrame(frame);
  };
}

export default { id: "chat", title: "Chat", mount };
