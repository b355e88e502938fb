// Tails page (#/tails, #/tails/<name>): follow an allow-listed file as it grows.
//
// - The names come from GET /v1/tails (the server's MIANZHANG_TAILS__FILES; never paths).
// - Following: GET /v1/tails/{name}?last_lines=N with lib/sse.js. Each line is an event whose
//   id is "<file identity>-<byte offset>"; a dropped connection resumes after the last line.
// - Reload: the lines shown (the last 500) and the last id are kept in sessionStorage per
//   name, so a reload shows them again and continues after that id: no line twice, none lost.
// - A `reset` event (the file was rotated or truncated, or the id is not the file's any more)
//   is shown as a marker line, then lines continue from the start of the current file.
// - "Inspect" opens the stream inspector on the same tail.

import { el, field, errorText, hashPath } from "../lib/dom.js";
import { follow } from "../lib/sse.js";

const KEEP = 500;
const key = (name) => `mianzhang.tail.v1.${name}`;

function saved(name) {
  try {
    const value = JSON.parse(sessionStorage.getItem(key(name)) || "null");
    return value && Array.isArray(value.lines) ? value : null;
  } catch {
    return null;
  }
}

export function mount(root, { api = "", replaceRoute }) {
  const select = el("select", { "data-testid": "tails-name" });
  const lastLines = el("input", { type: "number", min: 0, max: 10000, value: 20, "data-testid": "tails-last-lines", size: 6 });
  const start = el("button", { type: "submit", class: "primary", "data-testid": "tails-follow" }, "Follow");
  const clear = el("button", { type: "button", "data-testid": "tails-clear" }, "Clear");
  const wrap = el("input", { type: "checkbox", checked: true, "data-testid": "tails-wrap" });
  const inspect = el("a", { class: "button", "data-testid": "tails-inspect", hidden: true }, "Inspect");
  const status = el("p", { class: "status", role: "status", "data-testid": "tails-status" });
  const lines = el("ol", { class: "log-lines wrap", "data-testid": "tails-lines", "aria-label": "Lines", tabindex: 0 });
  const empty = el("div", { class: "empty", "data-testid": "tails-empty", hidden: true },
    el("p", {}, "No files are configured for tailing on this server."),
    el("p", { class: "muted" }, "Start the server with MIANZHANG_TAILS__FILES='{\"app\": \"/var/log/app.log\"}' to allow a file by name; see docs/tails.md."));
  const form = el("form", { class: "inline-form", "data-testid": "tails-form" },
    field("File", select), field("Last lines first", lastLines, { cls: "narrow" }), start, clear,
    el("label", { class: "check" }, wrap, " Wrap long lines"), inspect);

  root.replaceChildren(el("section", { class: "page" },
    el("h1", {}, "Tails"),
    el("p", { class: "muted" }, "Live lines of allow-listed files on the server, resumable after a reload."),
    empty, form, status, lines));

  let handle = null;
  let current = "";
  let state = { lines: [], lastId: null };

  function persist() {
    if (current) sessionStorage.setItem(key(current), JSON.stringify(state));
  }

  function line(text, cls = "", id = "") {
    lines.append(el("li", { class: cls, "data-id": id, "data-testid": cls ? "tails-marker" : "tails-line" }, text));
    while (lines.childElementCount > KEEP) lines.firstElementChild.remove();
  }

  function show(name) {
    if (handle) handle.stop();
    current = name;
    state = saved(name) || { lines: [], lastId: null };
    lines.replaceChildren();
    for (const item of state.lines) line(item.text, item.cls || "", item.id || "");
    inspect.hidden = false;
    inspect.href = `#/inspect?tail=${encodeURIComponent(name)}`;
    replaceRoute(`#/tails/${encodeURIComponent(name)}`);
    const resumed = state.lastId ? ` (resumed after ${state.lastId})` : "";
    status.textContent = `connecting${resumed}…`;
    const n = Math.max(0, Math.min(10000, Number(lastLines.value) || 0));
    handle = follow(`${api}/v1/tails/${encodeURIComponent(name)}?last_lines=${n}`, {
      lastEventId: state.lastId,
      onOpen: ({ lastEventId }) => {
        status.textContent = `following ${name}${lastEventId ? ` after ${lastEventId}` : ""}`;
        status.dataset.state = "live";
      },
      onDrop: ({ delay }) => {
        status.textContent = `connection lost; again in ${delay} ms`;
        status.dataset.state = "retrying";
      },
      onEvent: (event) => {
        let item;
        if (event.type === "reset") {
          let why = "";
          try {
            why = JSON.parse(event.data).reason;
          } catch {
            // keep it short
          }
          item = { text: `— the file was rotated or truncated (${why}): continuing from its start —`, cls: "marker", id: event.id };
        } else {
          item = { text: event.data, id: event.id };
        }
        state.lastId = event.id;
        state.lines.push(item);
        if (state.lines.length > KEEP) state.lines.splice(0, state.lines.length - KEEP);
        line(item.text, item.cls || "", item.id);
        persist();
        root.dataset.lines = String(state.lines.length);
      },
    });
    handle.done.catch((error) => {
      status.textContent = `refused: ${error.message}`;
      status.dataset.state = "error";
    });
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (select.value) show(select.value);
  });
  clear.addEventListener("click", () => {
    state.lines = [];
    persist();
    lines.replaceChildren();
  });
  wrap.addEventListener("change", () => lines.classList.toggle("wrap", wrap.checked));

  (async () => {
    let names = [];
    try {
      const response = await fetch(`${api}/v1/tails`);
      if (!response.ok) throw new Error(await errorText(response));
      names = (await response.json()).tails || [];
    } catch (error) {
      status.textContent = `Cannot list the tails: ${error.message}`;
    }
    select.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
    empty.hidden = names.length > 0;
    form.hidden = names.length === 0;
    const wanted = hashPath()[0];
    if (wanted && names.includes(wanted)) {
      select.value = wanted;
      show(wanted);
    }
    root.dataset.ready = "1";
  })();

  return () => {
    if (handle) handle.stop();
  };
}

export default { id: "tails", title: "Tails", mount };
