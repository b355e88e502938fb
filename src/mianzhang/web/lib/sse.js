// Server-Sent Events over fetch: the parser of the WHATWG "event stream" format and a follower
// that reconnects after the last event id, as EventSource does, but with what EventSource
// hides: every event type (not only the ones listened to), comments (pings), the HTTP status
// (204 = the stream was read to its end, 404 = gone), an AbortSignal to stop, and the
// `Last-Event-ID` to start from chosen by the caller (kept across page reloads).
//
// Guarantees of `follow`: events are delivered in order, each once per connection; after a
// dropped connection it reconnects with `Last-Event-ID` set to the id of the last event
// delivered (so the server sends only what came after); it ends when the server answers 204,
// when `stop()` is called or the signal aborts (no callback after that), or throws an
// `HttpError` for any other non-200 answer (the server's JSON error message in `.message`).

export class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// Incremental parser: feed() text chunks, get back the dispatched events and comments.
// Lines end with CRLF, LF or CR (a CR at the end of a chunk waits for the next chunk).
export class SSEParser {
  constructor() {
    this.buffer = "";
    this.data = [];
    this.event = "";
    this.id = null; // the last event id buffer (persists across events, as the spec says)
    this.retry = null;
    this.bytes = 0; // raw characters of the event being built (its size on the wire)
    this.started = false;
  }

  feed(text) {
    const out = [];
    this.buffer += text;
    if (!this.started && this.buffer.length) {
      if (this.buffer.charCodeAt(0) === 0xfeff) this.buffer = this.buffer.slice(1);
      this.started = true;
    }
    let start = 0;
    for (;;) {
      const cr = this.buffer.indexOf("\r", start);
      const lf = this.buffer.indexOf("\n", start);
      let end = -1;
      let next = -1;
      if (cr >= 0 && (lf < 0 || cr < lf)) {
        if (cr === this.buffer.length - 1) break; // CR LF may be split between chunks
        end = cr;
        next = this.buffer[cr + 1] === "\n" ? cr + 2 : cr + 1;
      } else if (lf >= 0) {
        end = lf;
        next = lf + 1;
      } else {
        break;
      }
      this.line(this.buffer.slice(start, end), next - start, out);
      start = next;
    }
    this.buffer = this.buffer.slice(start);
    return out;
  }

  line(line, raw, out) {
    this.bytes += raw;
    if (line === "") {
      if (this.data.length) {
        out.push({
          kind: "event",
          type: this.event || "message",
          data: this.data.join("\n"),
          id: this.id,
          size: this.bytes,
        });
      }
      this.data = [];
      this.event = "";
      this.bytes = 0;
      return;
    }
    if (line.startsWith(":")) {
      out.push({ kind: "comment", text: line.slice(1).trimStart(), size: raw });
      this.bytes -= raw;
      return;
    }
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "data") this.data.push(value);
    else if (name === "event") this.event = value;
    else if (name === "id" && !value.includes("\0")) this.id = value;
    else if (name === "retry" && /^\d+$/.test(value)) this.retry = Number(value);
  }
}

// Follow `url` (see the module comment). Callbacks: onEvent({type, data, id, size}),
// onComment({text, size}), onOpen({status, attempt, lastEventId}), onDrop({error, attempt,
// delay}). Returns a handle { stop(), done: Promise<"ended"|"stopped"> }.
export function follow(url, {
  lastEventId = null,
  headers = {},
  onEvent = () => {},
  onComment = () => {},
  onOpen = () => {},
  onDrop = () => {},
  maxDelay = 5000,
  maxAttempts = Infinity,
} = {}) {
  const controller = new AbortController();
  let last = lastEventId;
  let stopped = false;

  async function once(attempt) {
    const sent = { accept: "text/event-stream", ...headers };
    if (last) sent["last-event-id"] = last;
    const response = await fetch(url, { headers: sent, cache: "no-store", signal: controller.signal });
    onOpen({ status: response.status, attempt, lastEventId: last });
    if (response.status === 204) return "ended";
    if (response.status !== 200) {
      let message = `HTTP ${response.status}`;
      try {
        const body = await response.json();
        if (body && body.error && body.error.message) message = body.error.message;
      } catch {
        // not JSON
      }
      throw new HttpError(response.status, message);
    }
    const parser = new SSEParser();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const item of parser.feed(value)) {
          if (stopped) return "stopped";
          if (item.kind === "comment") {
            onComment(item);
            continue;
          }
          last = item.id;
          onEvent(item);
        }
      }
    } finally {
      reader.cancel().catch(() => {});
    }
    return parser.retry;
  }

  function sleep(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      controller.signal.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  async function run() {
    let attempt = 0;
    let failures = 0;
    let cleanEnds = 0;
    let retry = null; // the server's `retry:` field, once it sent one
    while (!stopped) {
      attempt += 1;
      let wait;
      try {
        const result = await once(attempt);
        if (result === "ended" || result === "stopped") return result;
        if (result !== null) retry = result;
        // the server closed the body: reconnect (it answers 204 once the stream has ended)
        failures = 0;
        cleanEnds += 1;
        wait = cleanEnds > 1 ? retry ?? 1000 : 0;
      } catch (error) {
        if (stopped) return "stopped";
        if (error instanceof HttpError) throw error;
        failures += 1;
        if (failures >= maxAttempts) throw error;
        wait = Math.min(maxDelay, retry ?? 250 * 2 ** failures);
        onDrop({ error, attempt, delay: wait });
      }
      if (wait) await sleep(wait);
    }
    return "stopped";
  }

  const done = run();
  return {
    done,
    get lastEventId() {
      return last;
    },
    stop() {
      stopped = true;
      controller.abort();
    },
  };
}

// "epoch-seq" -> seq (a number), or null for other ids.
export function idSeq(id) {
  const match = /-(\d+)$/.exec(id || "");
  return match ? Number(match[1]) : null;
}

export function idEpoch(id) {
  const match = /^(.*)-\d+$/.exec(id || "");
  return match ? match[1] : null;
}
