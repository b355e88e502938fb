// One answer over the AI SDK's UI message stream (v1), for the chat store (lib/chat-store.js):
// the same protocol `useChat` speaks, against the server's chat routes. Only this module knows
// the wire protocol.
//
//   startAnswer(api, request, msg, callbacks)   POST /v1/ui/chat ({id, messages, trigger,
//                                               messageId?, model}) and read the answer into msg
//   followAnswer(api, chatId, msg, callbacks)   GET /v1/ui/chat/{chatId}/stream: the chat's
//                                               running answer from its first event
//   stopAnswer(api, chatId)                     POST /v1/ui/chat/{chatId}/stop
//
// callbacks: onChange() after every change of msg, onEnd(status, error) once ("done",
// "stopped", "failed", "interrupted"; "gone" when the server had no running answer any more:
// the store then reloads the chat, which holds the saved answer) unless the handle's stop()
// came first. Both return a handle { stop() }.
//
// Guarantees: msg.content is the text of the answer's text parts and msg.ui the UIMessage the
// stream built (what the store sends back as history), both rebuilt from scratch on every
// `start` chunk, so a full replay (after a reload, or in another tab) shows every part once. A
// dropped connection is resumed with `Last-Event-ID` set to the last event received: the
// server sends only what came after it, and the message goes on from where it was.
// msg.stats are live: the stream's transient `data-progress` parts (after the first output
// token, then every 16) give the time to first token, tokens/s and the token count while the
// answer is written; the ending's metadata gives the final figures. Other data parts are
// ignored (they are in msg.ui only if the server stores them: it stores none).

import { follow, HttpError, SSEParser } from "./sse.js";

const CHAT = (api) => `${api}/v1/ui/chat`;
const STREAM = (api, chatId) => `${CHAT(api)}/${encodeURIComponent(chatId)}/stream`;

function merge(base, extra) {
  if (!extra || typeof extra !== "object" || Array.isArray(extra)) return extra ?? base;
  if (!base || typeof base !== "object" || Array.isArray(base)) return extra;
  const out = { ...base };
  for (const [key, value] of Object.entries(extra)) out[key] = merge(base[key], value);
  return out;
}

function reset(msg, messageId) {
  msg.id = messageId || msg.id;
  msg.streamId = messageId || msg.streamId;
  msg.content = "";
  msg.stats = {};
  msg.ui = { id: msg.id, role: "assistant", parts: [] };
  msg.open = {};
}

// The server's live figures (a `data-progress` part); a figure it does not know yet stays.
function progress(msg, data) {
  if (!data) return;
  msg.stats = {
    ...msg.stats,
    ttftMs: data.timeToFirstTokenMs ?? msg.stats.ttftMs,
    tokensPerSecond: data.tokensPerSecond ?? msg.stats.tokensPerSecond,
    outputTokens: data.outputTokens ?? msg.stats.outputTokens,
  };
}

function metadata(msg, value) {
  if (!value) return;
  msg.ui.metadata = merge(msg.ui.metadata, value);
  const m = msg.ui.metadata;
  msg.model = m.model || msg.model;
  const timings = m.timings || {};
  const usage = m.usage || {};
  msg.stats = {
    ...msg.stats,
    ttftMs: timings.timeToFirstTokenMs ?? msg.stats.ttftMs,
    tokensPerSecond: timings.tokensPerSecond ?? msg.stats.tokensPerSecond,
    durationMs: timings.durationMs ?? msg.stats.durationMs,
    outputTokens: usage.outputTokens ?? msg.stats.outputTokens,
    finishReason: m.finishReason ?? msg.stats.finishReason,
  };
}

// The end of an answer from its metadata: [status, error]
function ending(msg) {
  const m = msg.ui.metadata || {};
  if (m.status === "stopped") return ["stopped", null];
  if (m.status === "failed") return ["failed", m.error || { message: "the generation failed" }];
  return ["done", null];
}

// Apply one chunk; returns [status, error] when the answer ended.
function apply(msg, chunk) {
  if (chunk.type !== "start" && !msg.ui) reset(msg, null); // (a stream always starts with one)
  const parts = chunk.type === "start" ? null : msg.ui.parts;
  switch (chunk.type) {
    case "start":
      reset(msg, chunk.messageId);
      metadata(msg, chunk.messageMetadata);
      return null;
    case "start-step":
      parts.push({ type: "step-start" });
      return null;
    case "text-start":
    case "reasoning-start": {
      const part = chunk.type === "text-start"
        ? { type: "text", text: "", state: "streaming" }
        : { type: "reasoning", id: chunk.id, text: "", state: "streaming" };
      msg.open[chunk.id] = part;
      parts.push(part);
      return null;
    }
    case "text-delta":
    case "reasoning-delta":
      msg.open[chunk.id].text += chunk.delta;
      if (chunk.type === "text-delta") msg.content += chunk.delta;
      msg.stats.outputTokens = (msg.stats.outputTokens || 0) + 1; // (synced by data-progress)
      return null;
    case "data-progress":
      progress(msg, chunk.data);
      return null;
    case "text-end":
    case "reasoning-end":
      msg.open[chunk.id].state = "done";
      delete msg.open[chunk.id];
      return null;
    case "tool-input-available":
      parts.push({ type: `tool-${chunk.toolName}`, toolCallId: chunk.toolCallId, state: "input-available", input: chunk.input });
      return null;
    case "message-metadata":
      metadata(msg, chunk.messageMetadata);
      return null;
    case "finish":
      metadata(msg, chunk.messageMetadata);
      return ending(msg);
    case "abort":
      return ending(msg)[0] === "failed" ? ending(msg) : ["stopped", null];
    default:
      return null; // error (its text is in the metadata), finish-step, tool input deltas, other data parts
  }
}

// Reads UI message stream events into msg; ends the answer on its terminal chunk.
function reader(msg, finish, onChange) {
  return (event) => {
    if (event.data === "[DONE]") return;
    let chunk;
    try {
      chunk = JSON.parse(event.data);
    } catch {
      return;
    }
    const end = apply(msg, chunk);
    if (event.id) msg.lastEventId = event.id; // with the change it completes: resumed after it
    if (end) finish(...end);
    else onChange();
  };
}

function failure(response, body) {
  const error = (body && body.error) || { message: `HTTP ${response.status}` };
  return { message: error.message, type: error.type, code: error.code };
}

export async function stopAnswer(api, chatId) {
  const response = await fetch(`${CHAT(api)}/${encodeURIComponent(chatId)}/stop`, { method: "POST" });
  return response.ok && (await response.json()).stopped === true;
}

// GET the running answer (after `lastEventId`, or from its first event).
export function followAnswer(api, chatId, msg, { onChange, onEnd, lastEventId = null }) {
  let over = false;
  let handle = null;
  const finish = (status, error = null) => {
    if (over) return;
    over = true;
    handle.stop();
    onEnd(status, error);
  };
  handle = follow(STREAM(api, chatId), {
    lastEventId,
    maxAttempts: 8,
    onEvent: reader(msg, finish, onChange),
    onDrop: () => {
      msg.reconnecting = true;
      onChange();
    },
    onOpen: () => {
      if (!msg.reconnecting) return;
      msg.reconnecting = false;
      onChange();
    },
  });
  handle.done.then(
    (how) => (how === "ended" ? finish("gone") : undefined),
    (error) => {
      if (error instanceof HttpError) finish("failed", { message: error.message, type: "stream", code: String(error.status) });
      else finish("interrupted", { message: `lost the connection to the server (${error.message})`, type: "network" });
    },
  );
  return {
    stop() {
      over = true;
      handle.stop();
    },
  };
}

// POST the next turn and read its answer; a dropped connection goes on with followAnswer.
export function startAnswer(api, request, msg, { onChange, onEnd }) {
  const controller = new AbortController();
  let over = false;
  let next = null;
  const finish = (status, error = null) => {
    if (over) return;
    over = true;
    controller.abort();
    onEnd(status, error);
  };
  (async () => {
    let response;
    try {
      response = await fetch(CHAT(api), {
        method: "POST",
        headers: { "content-type": "application/json", accept: "text/event-stream" },
        body: JSON.stringify(request),
        signal: controller.signal,
      });
    } catch (error) {
      finish("failed", { message: `cannot reach the server: ${error.message}`, type: "network" });
      return;
    }
    if (!response.ok) {
      finish("failed", failure(response, await response.json().catch(() => null)));
      return;
    }
    msg.streamId = response.headers.get("x-stream-id") || msg.streamId;
    const parser = new SSEParser();
    const onEvent = reader(msg, finish, onChange);
    msg.lastEventId = null;
    const body = response.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      let read;
      try {
        read = await body.read();
      } catch {
        break; // the connection dropped: continue below
      }
      if (read.done || over) break;
      for (const item of parser.feed(read.value)) {
        if (item.kind === "event" && !over) onEvent(item); // (a bug here fails loudly)
      }
    }
    if (over) return;
    next = followAnswer(api, request.id, msg, {
      lastEventId: msg.lastEventId || null,
      onChange,
      onEnd: (status, error) => finish(status, error),
    });
  })();
  return {
    stop() {
      over = true;
      controller.abort();
      if (next) next.stop();
    },
  };
}
