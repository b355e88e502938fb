// Files page: resumable uploads with a live progress bar, and download links.
//
// - Uploads use tus 1.0 (POST /v1/uploads, then PATCH /v1/uploads/{id}) in chunks of
//   CHUNK bytes, so a dropped connection only costs the chunk in flight: on a failed PATCH
//   the page asks the server for the offset (HEAD) and continues from there (a few retries
//   with backoff).
// - Progress: the bar follows XHR upload progress (bytes sent) and, when the server serves
//   event-log streams (GET /v1/streams/{stream}, SSE), the server's own progress events of
//   stream "upload:{id}" (bytes stored). It shows the larger of the two.
// - Completed uploads get a download link (GET /v1/files/{id}); the list of recent files
//   comes from GET /v1/files.
//
// Module shape (as pages/chat.js): `export default { id: "files", title: "Files", mount }`;
// `mount(root, { api = "" })` renders into `root` and returns a cleanup function that closes
// the page's EventSources. Loaded as an ES module: `import page from "/web/pages/files.js"`.

import { el, field, fmtBytes } from "../lib/dom.js";

const CHUNK = 8 * 1024 * 1024;
const RETRIES = 5;
const TUS = { "Tus-Resumable": "1.0.0" };

function b64(text) {
  return btoa(String.fromCharCode(...new TextEncoder().encode(text)));
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// One PATCH with XHR (fetch has no upload progress). Resolves with the new offset.
function patchChunk(url, offset, blob, onSent) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PATCH", url);
    xhr.setRequestHeader("Tus-Resumable", "1.0.0");
    xhr.setRequestHeader("Upload-Offset", String(offset));
    xhr.setRequestHeader("Content-Type", "application/offset+octet-stream");
    xhr.upload.onprogress = (event) => onSent(offset + event.loaded);
    xhr.onload = () => {
      if (xhr.status === 204) resolve(Number(xhr.getResponseHeader("Upload-Offset")));
      else reject(Object.assign(new Error(`PATCH: HTTP ${xhr.status}`), { status: xhr.status }));
    };
    xhr.onerror = () => reject(new Error("network error"));
    xhr.send(blob);
  });
}

async function serverOffset(url) {
  const response = await fetch(url, { method: "HEAD", headers: TUS, cache: "no-store" });
  if (!response.ok) throw new Error(`HEAD: HTTP ${response.status}`);
  return Number(response.headers.get("Upload-Offset"));
}

export function mount(root, { api = "" } = {}) {
  const input = el("input", { type: "file", multiple: true, "data-testid": "files-input" });
  const start = el("button", { type: "submit", class: "primary", "data-testid": "files-upload" }, "Upload");
  const uploads = el("ul", { class: "plain-list uploads", "data-testid": "files-uploads", "aria-label": "Uploads" });
  const list = el("ul", { class: "plain-list", "data-testid": "files-list", "aria-label": "Stored files" });
  const form = el("form", { class: "inline-form card" }, field("Files to upload", input), start);
  const sources = new Set();

  root.replaceChildren(
    el(
      "section",
      { class: "page files" },
      el("h1", {}, "Files"),
      el("p", { class: "muted" }, "Resumable uploads (tus) in chunks, with the server's own progress over SSE; downloads with ranges."),
      form,
      uploads,
      el("h2", {}, "Stored files"),
      list,
    ),
  );

  function fileLink(file) {
    return el(
      "li",
      { "data-testid": "files-item", "data-id": file.id },
      el("a", { href: `${api}${file.url}`, download: file.name || file.id, "data-testid": "files-link" },
        file.name || file.id),
      el("span", { class: "muted" }, ` ${fmtBytes(file.size)} · sha-256 ${file.sha256.slice(0, 12)}…`),
    );
  }

  async function refresh() {
    const response = await fetch(`${api}/v1/files?limit=50`);
    if (!response.ok) {
      const why = response.status === 404 ? "File storage is disabled on this server." : `Cannot list the files (HTTP ${response.status}).`;
      list.replaceChildren(el("li", { class: "muted" }, why));
      return;
    }
    const body = await response.json();
    list.replaceChildren(...body.files.map(fileLink));
    if (!body.files.length) list.append(el("li", { class: "muted" }, "No files yet: upload one above."));
  }

  // Server-side progress (bytes stored) from the event log, when the server offers it.
  // Each event is also recorded on the row (data-server-state, data-server-received,
  // data-server-events) so the page, and tests, can tell the server's view from the XHR's.
  function follow(uploadId, row, show) {
    if (typeof EventSource === "undefined") return () => {};
    const source = new EventSource(`${api}/v1/streams/${encodeURIComponent(`upload:${uploadId}`)}`);
    sources.add(source);
    const stop = () => {
      source.close();
      sources.delete(source);
    };
    source.addEventListener("progress", (event) => {
      const data = JSON.parse(event.data);
      row.dataset.serverEvents = String(Number(row.dataset.serverEvents || 0) + 1);
      row.dataset.serverState = data.state;
      row.dataset.serverReceived = String(data.received);
      show(data.received, data.state);
      if (data.state === "complete" || data.state === "failed") stop();
    });
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) stop(); // no such endpoint: XHR only
    });
    return stop;
  }

  async function upload(file) {
    const bar = el("progress", { max: file.size || 1, value: 0, "data-testid": "files-progress", "aria-label": `Upload of ${file.name}` });
    const percent = el("span", { "data-testid": "files-percent" }, "0%");
    const status = el("span", { class: "muted", "data-testid": "files-status" }, "starting");
    const row = el("li", { "data-testid": "files-upload-row" }, el("strong", {}, file.name), " ", bar, " ", percent, " ", status);
    uploads.prepend(row);

    let shown = 0;
    const began = performance.now();
    const show = (bytes, state) => {
      if (bytes > shown) {
        shown = Math.min(bytes, file.size);
        bar.value = shown;
        percent.textContent = `${file.size ? Math.floor((100 * shown) / file.size) : 100}%`;
        const seconds = (performance.now() - began) / 1000;
        if (seconds > 0) status.textContent = `${state || "uploading"} · ${fmtBytes(shown / seconds)}/s`;
      }
    };

    const created = await fetch(`${api}/v1/uploads`, {
      method: "POST",
      headers: {
        ...TUS,
        "Upload-Length": String(file.size),
        "Upload-Metadata": `filename ${b64(file.name)},filetype ${b64(file.type || "application/octet-stream")}`,
      },
    });
    if (created.status !== 201) {
      status.textContent = `refused: HTTP ${created.status}`;
      row.dataset.state = "failed";
      return;
    }
    const url = new URL(created.headers.get("Location"), location.href).toString();
    const uploadId = url.split("/").pop();
    row.dataset.id = uploadId;
    const stopFollowing = follow(uploadId, row, show);

    let offset = 0;
    let failures = 0;
    while (offset < file.size) {
      try {
        offset = await patchChunk(url, offset, file.slice(offset, offset + CHUNK), (sent) => show(sent));
        failures = 0;
      } catch (error) {
        failures += 1;
        if (failures > RETRIES || (error.status && error.status < 500 && error.status !== 409)) {
          status.textContent = `failed: ${error.message}`;
          row.dataset.state = "failed";
          stopFollowing();
          return;
        }
        status.textContent = `retrying (${failures}/${RETRIES})…`;
        await sleep(250 * 2 ** failures);
        try {
          offset = await serverOffset(url); // resume where the server stopped
        } catch {
          // try again on the next round
        }
      }
    }
    show(file.size, "complete");
    const seconds = (performance.now() - began) / 1000;
    status.textContent = `complete · ${fmtBytes(file.size)} in ${seconds.toFixed(1)} s`;
    row.append(" ", el("a", { href: `${api}/v1/files/${uploadId}`, "data-testid": "files-done-link" }, "download"));
    row.dataset.state = "complete";
    // The follower stops by itself on the server's final event; this is only a backstop.
    setTimeout(stopFollowing, 10_000);
    await refresh();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const files = [...input.files];
    input.value = "";
    for (const file of files) await upload(file);
  });

  refresh();
  return () => {
    for (const source of sources) source.close();
  };
}

export default { id: "files", title: "Files", mount };
