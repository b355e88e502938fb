// Notifications page (channels): subscribe to a channel, watch events arrive, publish.
//
// - Subscribe: EventSource on GET /v1/channels/{name}/events (with ?history=false to start
//   at the live tail). EventSource reconnects by itself with Last-Event-ID, so nothing is
//   missed or repeated while the channel's history is retained; a `reset` event (history
//   lost) is shown as such. EventSource cannot send headers: a subscriber JWT typed into
//   the token field is stored in the `mianzhang_token` cookie (path /v1/channels,
//   SameSite=Strict), which the server reads.
// - EventSource only delivers the event types it listens to: the page listens to `message`,
//   `reset`, the types typed into "event types", and every type published from this page.
// - Publish: POST /v1/channels/{name}/publish with the JSON envelope {data, event?,
//   idempotency_key?}; the API key field (if any) goes in the Authorization header.
// - Subscriber count: GET /v1/channels/{name} when the subscription opens, after each publish
//   and every 5 s while subscribed. "Inspect stream" opens the inspector on channel:<name>.
//
// Module shape (as pages/chat.js): `export default { id, title, mount }`; mount returns a
// cleanup function that closes the EventSource and stops the timer.

import { el, field, hashParams, inspectHref } from "../lib/dom.js";

const MAX_SHOWN = 200;
const COOKIE = "mianzhang_token";

function channelPath(name) {
  return name.split("/").map(encodeURIComponent).join("/");
}

function pretty(data) {
  try {
    const value = JSON.parse(data);
    if (value !== null && typeof value === "object") return JSON.stringify(value, null, 2);
  } catch {
    // not JSON: shown as text
  }
  return data;
}

async function errorText(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch {
    // not mianzhang's JSON error
  }
  return `HTTP ${response.status}`;
}

export function mount(root, { api = "" } = {}) {
  const params = hashParams();
  const channel = el("input", {
    value: params.get("channel") || "news",
    required: true,
    size: 24,
    "data-testid": "notif-channel",
  });
  const history = el("input", { type: "checkbox", checked: true, "data-testid": "notif-history" });
  const types = el("input", { placeholder: "alert, note", size: 18, "data-testid": "notif-types" });
  const token = el("input", {
    type: "password",
    placeholder: "JWT (optional)",
    size: 24,
    "data-testid": "notif-token",
  });
  const subscribe = el(
    "button",
    { type: "submit", class: "primary", "data-testid": "notif-subscribe" },
    "Subscribe",
  );
  const status = el("span", { class: "status", "data-testid": "notif-status" }, "idle");
  const subscribers = el("span", { "data-testid": "notif-subscribers" }, "–");
  const events = el("ol", {
    class: "ticks events-list",
    reversed: true,
    "data-testid": "notif-events",
    "aria-label": "Events received",
    tabindex: 0,
  });

  const data = el("textarea", {
    rows: 3,
    placeholder: "text, or JSON with the box ticked",
    "data-testid": "notif-data",
  });
  const eventType = el("input", { placeholder: "optional", size: 14, "data-testid": "notif-event-type" });
  const asJson = el("input", { type: "checkbox", "data-testid": "notif-json" });
  const apiKey = el("input", { type: "password", placeholder: "optional", size: 14, "data-testid": "notif-api-key" });
  const idem = el("input", { placeholder: "optional", size: 14, "data-testid": "notif-idem" });
  const publish = el("button", { type: "submit", "data-testid": "notif-publish" }, "Publish");
  const result = el("span", { class: "status", "data-testid": "notif-result" }, "");

  const inspect = el("a", { class: "button", "data-testid": "notif-inspect" }, "Inspect stream");
  const subForm = el(
    "form",
    { "data-testid": "notif-subscribe-form", class: "inline-form" },
    field("Channel", channel),
    field("Event types", types),
    field("Subscriber token", token),
    el("label", { class: "check" }, history, " From the history"),
    subscribe,
  );
  const pubForm = el(
    "form",
    { "data-testid": "notif-publish-form", class: "card" },
    el("h2", {}, "Publish"),
    field("Data", data),
    el(
      "div",
      { class: "inline-form" },
      field("Event type", eventType),
      field("Idempotency key", idem),
      field("API key", apiKey),
      el("label", { class: "check" }, asJson, " Data is JSON"),
      publish,
    ),
    el("p", { role: "status" }, result),
  );

  root.replaceChildren(
    el(
      "section",
      { class: "page" },
      el("h1", {}, "Notifications"),
      el("p", { class: "muted" }, "Channels: subscribe with the browser's EventSource, publish over HTTP. A reconnect resumes after the last event id."),
      subForm,
      el("p", { class: "row" }, el("span", {}, "Status: ", status), el("span", {}, "Subscribers: ", subscribers), inspect),
      events,
      pubForm,
    ),
  );
  const updateInspect = () => {
    inspect.href = inspectHref(`channel:${channel.value.trim()}`);
  };
  channel.addEventListener("input", updateInspect);
  updateInspect();

  let source = null;
  let current = ""; // the channel subscribed to
  let timer = 0;
  const listening = new Set(); // event types the current EventSource listens to
  const wanted = new Set(["message", "reset"]);

  function show(type, id, text, extra = "") {
    const item = el(
      "li",
      { "data-testid": "notif-event", "data-event-type": type, "data-id": id || "" },
      el("span", { class: "muted" }, `${new Date().toLocaleTimeString()} `),
      el("strong", {}, type),
      id ? el("span", { class: "muted" }, ` #${id}`) : "",
      extra ? el("em", {}, ` ${extra}`) : "",
      el("pre", { class: "event-data" }, text),
    );
    events.prepend(item);
    while (events.children.length > MAX_SHOWN) events.lastChild.remove();
  }

  function listen(type) {
    if (!source || listening.has(type)) return;
    listening.add(type);
    source.addEventListener(type, (e) => {
      if (type === "reset") {
        show("reset", e.lastEventId, pretty(e.data), "history was lost: events continue from the oldest kept");
        return;
      }
      show(type, e.lastEventId, pretty(e.data));
    });
  }

  async function refreshCount() {
    if (!current) return;
    try {
      const response = await fetch(`${api}/v1/channels/${channelPath(current)}`, { cache: "no-store" });
      if (!response.ok) return;
      const body = await response.json();
      if (body.channel === current) subscribers.textContent = String(body.subscribers);
    } catch {
      // the next refresh tries again
    }
  }

  function setCookie(value) {
    const secure = location.protocol === "https:" ? "; Secure" : "";
    document.cookie = value
      ? `${COOKIE}=${encodeURIComponent(value)}; path=/v1/channels; SameSite=Strict${secure}`
      : `${COOKIE}=; path=/v1/channels; max-age=0; SameSite=Strict${secure}`;
  }

  function stop(text = "closed") {
    if (source) source.close();
    source = null;
    listening.clear();
    if (timer) clearInterval(timer);
    timer = 0;
    current = "";
    subscribe.textContent = "Subscribe";
    status.textContent = text;
  }

  // EventSource gives no status for a refused request: ask once to show the server's reason.
  async function explainFailure(url) {
    try {
      const controller = new AbortController();
      const response = await fetch(url, { signal: controller.signal, cache: "no-store" });
      if (response.ok) {
        controller.abort(); // a stream: only its status mattered
        return "closed by the server";
      }
      return `refused: ${await errorText(response)}`;
    } catch {
      return "server unreachable";
    }
  }

  function start() {
    stop("connecting");
    const name = channel.value.trim();
    if (!name) return;
    current = name;
    const t = token.value.trim();
    if (t) setCookie(t);
    for (const type of types.value.split(",").map((s) => s.trim()).filter(Boolean)) wanted.add(type);
    const query = history.checked ? "" : "?history=false";
    const url = `${api}/v1/channels/${channelPath(name)}/events${query}`;
    const es = new EventSource(url);
    source = es;
    subscribe.textContent = "Unsubscribe";
    status.textContent = "connecting";
    for (const type of wanted) listen(type);
    es.addEventListener("open", () => {
      if (source !== es) return;
      status.textContent = "live";
      refreshCount();
    });
    es.addEventListener("error", async (e) => {
      if (source !== es) return;
      if (e.data) {
        // a named `error` event from the server: the stream failed after it started
        show("error", e.lastEventId, pretty(e.data));
        return;
      }
      if (es.readyState === EventSource.CONNECTING) {
        status.textContent = "reconnecting";
        return;
      }
      const reason = await explainFailure(url);
      if (source === es) stop(reason);
    });
    timer = setInterval(refreshCount, 5000);
  }

  subForm.addEventListener("submit", (event) => {
    event.preventDefault();
    if (source) stop();
    else start();
  });

  pubForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = channel.value.trim();
    if (!name) return;
    let value = data.value;
    if (asJson.checked) {
      try {
        value = JSON.parse(data.value);
      } catch (exc) {
        result.textContent = `not JSON: ${exc.message}`;
        return;
      }
    }
    const envelope = { data: value };
    const type = eventType.value.trim();
    if (type) {
      envelope.event = type;
      wanted.add(type);
      listen(type); // before the event can arrive: EventSource drops types nobody listens to
    }
    if (idem.value.trim()) envelope.idempotency_key = idem.value.trim();
    const headers = { "content-type": "application/json" };
    if (apiKey.value.trim()) headers.authorization = `Bearer ${apiKey.value.trim()}`;
    publish.disabled = true;
    try {
      const response = await fetch(`${api}/v1/channels/${channelPath(name)}/publish`, {
        method: "POST",
        headers,
        body: JSON.stringify(envelope),
      });
      if (!response.ok) {
        result.textContent = `refused: ${await errorText(response)}`;
        return;
      }
      const body = await response.json();
      result.textContent = body.duplicate
        ? `already published as ${body.id} (same idempotency key): stored once`
        : `published as ${body.id}`;
      result.dataset.id = body.id;
      refreshCount();
    } catch (exc) {
      result.textContent = `failed: ${exc.message}`;
    } finally {
      publish.disabled = false;
    }
  });

  return () => stop();
}

export default { id: "notifications", title: "Notifications", mount };
