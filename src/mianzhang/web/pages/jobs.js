// Jobs page: submit a background job, watch its progress bar, partial results and result.
//
// - Submit: POST /v1/jobs {type, input} -> 202 with the job and its links. "summarize" sends
//   the text (cut into chunks of "chunk size" characters server-side); "checksum" sends a
//   stored file's id (the list comes from GET /v1/files when the server stores files).
// - Progress: EventSource on GET /v1/jobs/{id}/events (the job's event log, from the start):
//   `state`, `progress` {percent, message}, `partial` {data}, then one of `complete`
//   {result}, `error` {type, message} or `state` {state: "cancelled"}. EventSource
//   reconnects by itself with Last-Event-ID after a dropped connection; when the job is run
//   again after its worker died (`state` running with a higher attempt), the bar and the
//   partial results start over for the new attempt.
// - The bar is a <progress max=100>; its value and the percent label only move forward
//   within an attempt. Cancel: POST /v1/jobs/{id}/cancel.
// - The job followed is kept in sessionStorage, so a reload continues to show it; recent
//   jobs (GET /v1/jobs) can be opened from the list.
//
// Module shape (as pages/chat.js): `export default { id, title, mount }`; mount returns a
// cleanup function that closes the EventSource and stops the refresh timer.

const STORE_KEY = "mianzhang.jobs.v1";
const SAMPLE = [
  "Streaming and background jobs answer different needs. When a user watches the answer",
  "appear, as with a chat model, every token is worth showing at once: stream it.",
  "",
  "When the user only needs the end result, such as a report, an export or a checksum, the",
  "work should not depend on an open connection. It becomes a job with an id, a state and",
  "a result that can be fetched later.",
  "",
  "mianzhang puts both on the same event log: a job's progress is a stream too, so a page",
  "can still show a live progress bar and partial results while the job runs elsewhere.",
].join("\n");

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "style") node.setAttribute("style", value);
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) node.append(child);
  return node;
}

function fmtPercent(value) {
  return `${Math.floor(value)}%`;
}

function describePartial(data) {
  if (data && typeof data === "object" && "summary" in data) {
    const where =
      data.stage === "chunk" ? `chunk ${data.index}/${data.chunks}` : `combined (round ${data.round}, ${data.index})`;
    return `${where}: ${data.summary}`;
  }
  return JSON.stringify(data);
}

function describeResult(result) {
  if (result && typeof result === "object" && typeof result.summary === "string") return result.summary;
  return JSON.stringify(result, null, 2);
}

export function mount(root, { api = "" } = {}) {
  const text = el("textarea", { rows: 8, "data-testid": "jobs-text", style: "width:100%;font:inherit" });
  text.value = SAMPLE;
  const chunk = el("input", { type: "number", min: 200, max: 200000, value: 300, "data-testid": "jobs-chunk", style: "width:7rem" });
  const submit = el("button", { type: "submit", class: "primary", "data-testid": "jobs-submit" }, "Summarize");
  const summarizeForm = el(
    "form",
    {},
    el("h2", {}, "Summarize a text"),
    text,
    el("div", { style: "display:flex;gap:.75rem;align-items:center;margin-top:.5rem" },
      el("label", {}, "chunk size (characters) ", chunk), submit),
  );
  const fileSelect = el("select", { "data-testid": "jobs-file" });
  const checksumButton = el("button", { type: "submit", "data-testid": "jobs-checksum" }, "Checksum");
  const fileForm = el(
    "form",
    { hidden: true },
    el("h2", {}, "Checksum an uploaded file"),
    el("div", { style: "display:flex;gap:.75rem;align-items:center" }, fileSelect, checksumButton),
  );

  const jobLabel = el("code", { "data-testid": "jobs-id" }, "");
  const state = el("span", { class: "status", "data-testid": "jobs-state" }, "idle");
  const bar = el("progress", { max: 100, value: 0, "data-testid": "jobs-progress", style: "width:100%;height:1.2rem" });
  const percent = el("span", { "data-testid": "jobs-percent" }, "0%");
  const message = el("span", { class: "muted", "data-testid": "jobs-message" }, "");
  const cancel = el("button", { type: "button", disabled: true, "data-testid": "jobs-cancel" }, "Cancel");
  const partials = el("ol", { "data-testid": "jobs-partials", class: "ticks", style: "padding-left:2.2rem" });
  const result = el("pre", { "data-testid": "jobs-result", style: "white-space:pre-wrap" }, "");
  const error = el("div", { "data-testid": "jobs-error", style: "color:#b00020" }, "");
  const recent = el("ul", { "data-testid": "jobs-recent" });

  root.replaceChildren(
    el(
      "section",
      { class: "mz-jobs" },
      summarizeForm,
      fileForm,
      el("h2", {}, "Job ", jobLabel),
      el("div", {}, "state: ", state, " · ", percent, " · ", message),
      bar,
      el("div", { style: "margin:.5rem 0" }, cancel),
      el("h3", {}, "Partial results"),
      partials,
      el("h3", {}, "Result"),
      error,
      result,
      el("h2", {}, "Recent jobs"),
      recent,
    ),
  );

  let source = null;
  let job = null; // {id, links, attempt, percent, done}
  let timer = 0;

  function setPercent(value) {
    if (value == null || value < job.percent) return; // forward only within an attempt
    job.percent = value;
    bar.value = value;
    percent.textContent = fmtPercent(value);
  }

  function resetView(attempt) {
    job.percent = 0;
    job.attempt = attempt;
    bar.value = 0;
    percent.textContent = "0%";
    partials.replaceChildren();
    result.textContent = "";
    error.textContent = "";
  }

  function finish(finalState) {
    state.textContent = finalState;
    job.done = true;
    cancel.disabled = true;
    if (source) {
      source.close();
      source = null;
    }
    refreshRecent();
  }

  function follow(id, links) {
    if (source) source.close();
    job = { id, links, attempt: 0, percent: 0, done: false };
    sessionStorage.setItem(STORE_KEY, JSON.stringify({ id, links }));
    jobLabel.textContent = id;
    state.textContent = "queued";
    message.textContent = "";
    resetView(0);
    cancel.disabled = false;
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
      const data = JSON.parse(e.data);
      partials.append(el("li", { "data-testid": "jobs-partial" }, describePartial(data.data)));
    });
    source.addEventListener("complete", (e) => {
      const data = JSON.parse(e.data);
      result.textContent = describeResult(data.result);
      setPercent(100);
      finish("succeeded");
    });
    source.addEventListener("error", (e) => {
      if (e.data) {
        // the job's own `error` event: {type, message}
        const data = JSON.parse(e.data);
        error.textContent = `${data.type}: ${data.message}`;
        finish("failed");
        return;
      }
      // a connection error: EventSource reconnects by itself with Last-Event-ID unless closed
      if (source && source.readyState === EventSource.CLOSED && !job.done) finish("disconnected");
    });
  }

  async function submitJob(type, input) {
    error.textContent = "";
    const response = await fetch(`${api}/v1/jobs`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ type, input }),
    });
    const body = await response.json();
    if (response.status !== 202) {
      error.textContent = body.error ? `${body.error.type}: ${body.error.message}` : `HTTP ${response.status}`;
      return;
    }
    follow(body.id, body.links);
    refreshRecent();
  }

  function recentItem(item) {
    const pct = item.progress == null ? "" : ` ${fmtPercent(item.progress)}`;
    const link = el("a", { href: "#/jobs", "data-testid": "jobs-recent-item" }, `${item.id}`);
    link.addEventListener("click", (event) => {
      event.preventDefault();
      follow(item.id, item.links);
    });
    return el("li", {}, link, ` ${item.type} · ${item.state}${pct}`);
  }

  async function refreshRecent() {
    try {
      const response = await fetch(`${api}/v1/jobs?limit=10`);
      if (!response.ok) return;
      const body = await response.json();
      recent.replaceChildren(...body.jobs.map(recentItem));
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
    const chunkChars = Number(chunk.value) || 300;
    submitJob("summarize", { text: text.value, chunk_chars: chunkChars });
  });

  fileForm.addEventListener("submit", (event) => {
    event.preventDefault();
    if (fileSelect.value) submitJob("checksum", { file: fileSelect.value });
  });

  cancel.addEventListener("click", async () => {
    if (!job) return;
    cancel.disabled = true;
    const response = await fetch(`${api}${job.links.cancel}`, { method: "POST" });
    if (response.status === 409) cancel.disabled = true;
  });

  try {
    const saved = JSON.parse(sessionStorage.getItem(STORE_KEY) || "null");
    if (saved && saved.id && saved.links) follow(saved.id, saved.links);
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
