// One answer over the gateway's native protocol, for the chat store (lib/chat-store.js):
// `startAnswer` creates the generation (POST /v1/llm/generations with the whole history),
// `followAnswer` reads it (GET /v1/streams/{id}?format=native: start, content, progress, then
// one complete or error) into a message object, `stopAnswer` cancels it. Only this module knows
// the wire protocol; a store on another protocol (the AI SDK's UI message stream) replaces it.
//
// followAnswer guarantees: the message's text and `lastEventId` always change together, so a
// copy saved at any moment resumes after exactly the text it holds; an event at or before the
// last one applied (same epoch) is ignored; `onEnd(status, error)` is called once ("done",
// "stopped", "failed" or "interrupted") unless the handle was stopped first.

import { follow, HttpError, idSeq } from "./sse.js";

const stream = (api, id) => `${api}/v1/streams/${encodeURIComponent(id)}`;

// -> {streamId, model}; throws {message, type, code} (a plain object) when refused or unreachable
export async function startAnswer(api, { model, messages }) {
  let response;
  let body = null;
  try {
    response = await fetch(`${api}/v1/llm/generations`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: model || undefined, messages }),
    });
    body = await response.json().catch(() => null);
  } catch (error) {
    throw { message: `cannot reach the server: ${error.message}`, type: "network" };
  }
  if (!response.ok || !body || !body.stream_id) {
    const error = (body && body.error) || { message: `HTTP ${response.status}` };
    throw { message: error.message, type: error.type, code: error.code };
  }
  return { streamId: body.stream_id, model: body.model || model };
}

// -> true when the server took the stop (the follower then ends "stopped"), false when the
// answer's stream is gone
export async function stopAnswer(api, streamId) {
  const response = await fetch(`${stream(api, streamId)}/cancel`, { method: "POST" });
  return response.status !== 404;
}

// the end of an answer from its final native event: [status, error]
function ending(type, data) {
  if (type === "complete") return ["done", null];
  const error = data.error || { message: "the generation failed" };
  if (error.code === "cancelled") return ["stopped", null];
  return ["failed", { message: error.message, type: error.type, code: error.code }];
}

function apply(msg, type, data) {
  const stats = msg.stats;
  if (type === "start") {
    msg.model = data.model || msg.model;
    msg.demo = !!data.demo;
  } else if (type === "content") {
    msg.content += data.text || "";
    stats.outputTokens = (stats.outputTokens || 0) + 1;
  } else if (type === "progress") {
    stats.ttftMs = data.time_to_first_token_ms;
    stats.tokensPerSecond = data.tokens_per_second;
  } else if (type === "reset") {
    msg.warning = "part of this answer was no longer kept by the server";
  } else if (type === "complete" || type === "error") {
    const timings = data.timings || {};
    stats.ttftMs = timings.time_to_first_token_ms;
    stats.tokensPerSecond = timings.tokens_per_second;
    stats.durationMs = timings.duration_ms;
    stats.finishReason = data.finish_reason;
    if (data.usage) stats.outputTokens = data.usage.completion_tokens ?? stats.outputTokens;
    return ending(type, data);
  }
  return null;
}

// Follow msg.streamId after msg.lastEventId; returns a handle { stop() }.
export function followAnswer(api, msg, { onChange, onEnd }) {
  let over = false;
  const finish = (status, error = null) => {
    if (over) return;
    over = true;
    handle.stop();
    onEnd(status, error);
  };
  const handle = follow(`${stream(api, msg.streamId)}?format=native`, {
    lastEventId: msg.lastEventId || null,
    maxAttempts: 8,
    onEvent: (event) => {
      const seq = idSeq(event.id);
      if (seq !== null && msg.lastSeq != null && seq <= msg.lastSeq) return; // seen already
      let data = {};
      try {
        data = JSON.parse(event.data);
      } catch {
        // not JSON: only the id counts
      }
      const end = apply(msg, event.type, data);
      msg.lastEventId = event.id || msg.lastEventId;
      if (seq !== null) msg.lastSeq = seq;
      if (end) finish(...end);
      else onChange();
    },
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
    // "ended": a 204, the stream had ended and every event was received before
    (how) => (how === "ended" ? finish("done") : undefined),
    (error) => {
      if (error instanceof HttpError) {
        const message = error.status === 404 ? `this answer's stream is gone (${error.message})` : error.message;
        finish("failed", { message, type: "stream", code: String(error.status) });
      } else {
        finish("interrupted", { message: `lost the connection to the server (${error.message})`, type: "network" });
      }
    },
  );
  return {
    stop() {
      over = true;
      handle.stop();
    },
  };
}
