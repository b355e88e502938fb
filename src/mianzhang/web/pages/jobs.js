// Jobs page: submit a background job, watch its progress bar, partial results and result.
//
// - Submit: POST /v1/jobs {type, input} -> 202 with the job and its links. "summarize" sends
//   the text (cut into chunks of "chunk size" characters server-side); "checksum" sends a
//   stored file's id (the form shows only when the server stores files and has some).
// - Progress: EventSource on GET /v1/jobs/{id}/events (the job's event log, from the start):
//   `state`, `progress` {percent, message}, `partial` {data}, then one of `complete`
//   {result}, `error` {type, message} or `state` {state: "cancelled"}. EventSource
//   reconnects by itself with Last-Event-ID; when the job is run again after its worker died
//   (`state` running with a higher attempt), the bar and partial results start over.
// - Nothing is shown before there is something to show: the job panel appears with a job,
//   "Partial results" with the first partial result, "Result" with the result. Results are
//   rendered: text as text (a summary), other values as labelled fields (a checksum's digest,
//   size, lines), never raw JSON.
// - The bar only moves forward within an attempt. Cancel: POST /v1/jobs/{id}/cancel. The job
//   followed is kept in sessionStorage (a reload shows it again); recent jobs (GET /v1/jobs)
//   can be opened; "Inspect stream" opens the inspector on the job's event log (job:<id>).

import { el, field, fmtBytes, inspectHref } from "../lib/dom.js";

const STORE_KEY = "mianzhang.jobs.v1";
const SAMPLE = [
  "Streaming and background jobs answer different needs. When a user watches the answer appear, as with a chat model, every token is worth showing at once: stream it.",
  "When the user only needs the end result, such as a report, an export or a checksum, the work should not depend on an open connection. It becomes a job with an id, a state and a result that can be fetched later.",
  "mianzhang puts both on the same event log: a job's progress is a stream too, so a page can still show a live progress bar and partial results while the job runs elsewhere.",
].join("\n\n");

const FIELD_LABELS = {
  name: "File name", file: "File id", size: "Size", algorithm: "Algorithm", digest: "Digest",
  lines: "Lines", matches_upload: "Matches the upload's digest", chunks: "Chunks",
  llm_calls: "Model calls", model: "Model", usage: "Tokens",
};

function describePartial(data) {
  if (data && typeof data === "object" && "summary" in data) {
    const where = data.stage === "chunk" ? `chunk ${data.index}/${data.chunks}` : `combined (round ${data.round}, ${data.index})`;
    return `${where}: ${data.summary}`;
  }
  return typeof data === "string" ? data : Object.entries(data || {}).map(([k, v]) => `${k}: ${v}`).join(" · ");
}

function fieldValue(key, value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (key === "size" && typeof value === "number") return `${fmtBytes(value)} (${value.toLocaleString()} bytes)`;
  if (key === "digest") return el("code", { class: "digest" }, String(value));
  if (typeof value === "object") {
    return Object.entries(value).map(([k, v]) => `${k.replace(/_/g, " ")} ${typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ");
  }
  return String(value);
}

// {text, fields}: the long text of a result (a summary) and its other values as fields.
export function renderResult(result) {
  if (typeof result === "string") return { text: result, fields: [] };
  const fields = [];
  let text = "";
  for (const [key, value] of Object.entries(result || {})) {
    if (key === "summary" && typeof value === "string") text = value;
    else fields.push([FIELD_LABELS[key] || key.replace(/_/g, " "), fieldValue(key, value), key]);
  }
  return { text, fields };
}

export function mount(root, { api = "" } = {}) {
  const text = el("textarea", { rows: 7, "data-testid": "jobs-text" });
  text.value = SAMPLE;
  const chunk = el("input", { type: "number", min: 200, max: 200000, value: 300, "data-testid": "jobs-chunk" });
  const submit = el("button", { type: "submit", class: "primary", "data-testid": "jobs-submit" }, "Summarize");
  const summarizeForm = el("form", { class: "card" }, el("h2", {}, "Summarize a text"),
    field("Text", text), el("div", { class: "inline-form" }, field("Chunk size (chars)", chunk, { cls: "narrow" }), submit));
  const fileSelect = el("select", { "data-testid": "jobs-file" });
  const checksumButton = el("button", { type: "submit", class: "primary", "data-testid": "jobs-checksum" }, "Checksum");
  const fileForm = el("form", { class: "card", hidden: true }, el("h2", {}, "Checksum an uploaded file"),
    el("div", { class: "inline-form" }, field("Stored file", fileSelect), checksumButton));

  const jobLabel = el("code", { "data-testid": "jobs-id" });
  const state = el("span", { class: "pill", "data-testid": "jobs-state" }, "queued");
  const bar = el("progress", { max: 100, value: 0, "data-testid": "jobs-progress", "aria-label": "Job progress" });
  const percent = el("span", { class: "percent", "data-testid": "jobs-percent" }, "0%");
  const message = el("span", { class: "muted", "data-testid": "jobs-message" });
  const cancel = el("button", { type: "button", class: "danger", disabled: true, "data-testid": "jobs-cancel" }, "Cancel");
  const inspect = el("a", { "data-testid": "jobs-inspect" }, "Inspect stream");
  const partials = el("ol", { "data-testid": "jobs-partials", class: "partials" });
  const partialBox = el("div", { hidden: true, "data-testid": "jobs-partials-box" }, el("h3", {}, "Partial results"), partials);
  const result = el("div", { class: "result-text", "data-testid": "jobs-result" });
  const resultFields = el("dl", { class: "fields", "data-testid": "jobs-result-fields" });
  const resultBox = el("div", { hidden: true, "data-testid": "jobs-result-box" }, el("h3", {}, "Result"), result, resultFields);
  const error = el("div", { class: "msg-error", role: "alert", "data-testid": "jobs-error", hidden: true });
  const panel = el("section", { class: "card job", hidden: true, "data-testid": "jobs-panel", "aria-label": "The job" },
    el("h2", {}, "Job ", jobLabel, " ", state),
    el("div", { class: "progress-row" }, bar, percent),
    el("p", { class: "row" }, message),
    el("div", { class: "row" }, cancel, inspect),
    partialBox, error, resultBox);
  const recent = el("ul", { class: "plain-list", "data-testid": "jobs-recent" });
  const recentBox = el("section", { hidden: true }, el("h2", {}, "Recent jobs"), recent);

  root.replaceChildren(el("section", { class: "page jobs" }, el("h1", {}, "Jobs"),
    el("p", { class: "muted" }, "Background work with live progress: the job runs on the server whether or not this page stays open."),
    el("div", { class: "cards" }, summarizeForm, fileForm), panel, recentBox));

  let source = null;
  let job = null; // {id, links, attempt, percent, done}
  let timer = 0;

  function setPercent(value) {
    if (value == null || value < job.percent) return; // forward only within an attempt
    job.percent = value;
    bar.value = value;
    percent.textContent = `${Math.floor(value)}%`;
  }

  function resetView(attempt) {
    job.percent = 0;
    job.attempt = attempt;
    bar.value = 0;
    percent.textContent = "0%";
    partials.replaceChildren();
    partialBox.hidden = true;
    resultBox.hidden = true;
    error.hidden = true;
  }

  function finish(finalState) {
    state.textContent = finalState;
    state.dataset.state = finalState;
    job.done = true;
    cancel.disabled = true;
    cancel.hidden = true; // nothing left to cancel
    if (source) source.close();
    source = null;
    refreshRecent();
  }

  function showResult(value) {
    const { text, fields } = renderResult(value);
    result.textContent = text;
    result.hidden = !text;
    resultFields.replaceChildren(...fields.flatMap(([label, shown, key]) => [el("dt", {}, label), el("dd", { "data-field": key }, shown)]));
    resultFields.hidden = !fields.length;
    resultBox.hidden = false;
  }

  function follow(id, links, stream) {
    if (source) source.close();
    job = { id, links, attempt: 0, percent: 0, done: false };
    sessionStorage.setItem(STORE_KEY, JSON.stringify({ id, links, stream }));
    panel.hidden = false;
    jobLabel.textContent = id;
    state.textContent = "queued";
    message.textContent = "";
    inspect.href = inspectHref(stream || `job:${id}`);
    resetView(0);
    cancel.disabled = false;
    cancel.hidden = false;
    source = new EventSource(`${api}${links.events}`);
    source.addEventListener("state", (e) => {
      const data = JSON.parse(e.data);
      if (data.state === "running" && data.attempt > 1 && data.attempt !== job.attempt) {
        resetView(data.attempt);
        message.textContent = `run again (attempt ${data.attempt}) after its worker stopped`;
      } else if (data.attempt != null) {
        job.attempt = data.attempt;
      }
      if (data.state === "cancelled") finish("cancelled");
      else state.textContent = data.state;
    });
    source.addEventListener("progress", (e) => {
      const data = JSON.parse(e.data);
      setPercent(data.percent);
      if (data.message) message.textContent = data.message;
    });
    source.addEventListener("partial", (e) => {
      partials.append(el("li", { "data-testid": "jobs-partial" }, describePartial(JSON.parse(e.data).data)));
      partialBox.hidden = false;
    });
    source.addEventListener("complete", (e) => {
      showResult(JSON.parse(e.data).result);
      setPercent(100);
      finish("succeeded");
    });
    source.addEventListener("error", (e) => {
      if (e.data) {
        const data = JSON.parse(e.data); // the job's own `error` event: {type, message}
        error.textContent = `${data.type}: ${data.message}`;
        error.hidden = false;
        finish("failed");
        return;
      }
      // a connection error: EventSource reconnects by itself with Last-Event-ID unless closed
      if (source && source.readyState === EventSource.CLOSED && !job.done) finish("disconnected");
    });
  }

  async function submitJob(type, input) {
    error.hidden = true;
    const response = await fetch(`${api}/v1/jobs`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ type, input }),
    });
    const body = await response.json();
    if (response.status !== 202) {
      panel.hidden = false;
      error.textContent = body.error ? `${body.error.type}: ${body.error.message}` : `HTTP ${response.status}`;
      error.hidden = false;
      return;
    }
    follow(body.id, body.links, body.stream);
    refreshRecent();
  }

  function recentItem(item) {
    const pct = item.progress == null ? "" : ` ${Math.floor(item.progress)}%`;
    const link = el("a", { href: "#/jobs", "data-testid": "jobs-recent-item" }, item.id);
    link.addEventListener("click", (event) => {
      event.preventDefault();
      follow(item.id, item.links, item.stream);
      panel.scrollIntoView({ block: "nearest" });
    });
    return el("li", {}, link, el("span", { class: "muted" }, ` ${item.type} · ${item.state}${pct}`));
  }

  async function refreshRecent() {
    try {
      const response = await fetch(`${api}/v1/jobs?limit=10`);
      if (!response.ok) return;
      const body = await response.json();
      recent.replaceChildren(...body.jobs.map(recentItem));
      recentBox.hidden = body.jobs.length === 0;
    } catch {
      // the list is a convenience: leave it as it was
    }
  }

  async function loadFiles() {
    try {
      const response = await fetch(`${api}/v1/files?limit=50`);
      if (!response.ok) return;
      const body = await response.json();
      if (!body.files.length) return;
      fileSelect.replaceChildren(...body.files.map((f) => el("option", { value: f.id }, f.name || f.id)));
      fileForm.hidden = false;
    } catch {
      // no file storage on this server: the form stays hidden
    }
  }

  summarizeForm.addEventListener("submit", (event) => {
    event.preventDefault();
    submitJob("summarize", { text: text.value, chunk_chars: Number(chunk.value) || 300 });
  });
  fileForm.addEventListener("submit", (event) => {
    event.preventDefault();
    if (fileSelect.value) submitJob("checksum", { file: fileSelect.value });
  });
  cancel.addEventListener("click", async () => {
    if (!job) return;
    cancel.disabled = true;
    await fetch(`${api}${job.links.cancel}`, { method: "POST" });
  });

  try {
    const saved = JSON.parse(sessionStorage.getItem(STORE_KEY) || "null");
    if (saved && saved.id && saved.links) follow(saved.id, saved.links, saved.stream);
  } catch {
    sessionStorage.removeItem(STORE_KEY);
  }
  refreshRecent();
  loadFiles();
  timer = setInterval(refreshRecent, 5000);

  return () => {
    if (source) source.close();
    clearInterval(timer);
  };
}

export default { id: "jobs", title: "Jobs", mount };
