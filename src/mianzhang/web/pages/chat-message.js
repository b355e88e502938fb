// One chat message as DOM: the user's text (as text) or the model's answer (Markdown rendered
// by lib/markdown.js, which cannot produce markup from the answer's text), with its status
// marker, error and actions. Used by pages/chat.js.
//
// Test hooks: article[data-testid=chat-msg][data-role][data-status][data-stream];
// [data-testid=chat-msg-body], chat-error, chat-stopped, chat-retry, chat-resume,
// chat-regenerate, chat-inspect, chat-ttft, chat-tokens, chat-rate.

import { el, fmtMs, inspectHref } from "../lib/dom.js";
import { renderMarkdown } from "../lib/markdown.js";

const LABELS = {
  pending: "starting…",
  streaming: "writing…",
  done: "",
  stopped: "Stopped",
  failed: "Failed",
  interrupted: "Connection lost",
};

export function signature(msg, isLast) {
  const s = msg.stats || {};
  return [msg.status, msg.content.length, msg.error && msg.error.message, msg.reconnecting, msg.warning,
    s.ttftMs, s.tokensPerSecond, s.outputTokens, msg.streamId, msg.model, isLast].join("|");
}

function stats(msg) {
  const s = msg.stats || {};
  const parts = [];
  if (msg.model) parts.push(el("span", {}, msg.model));
  if (s.ttftMs != null) {
    parts.push(el("span", { "data-testid": "chat-ttft", title: "time to first token, measured by the server" },
      `${fmtMs(s.ttftMs)} to first token`));
  }
  if (s.tokensPerSecond != null) parts.push(el("span", { "data-testid": "chat-rate" }, `${s.tokensPerSecond.toFixed(1)} tok/s`));
  if (s.outputTokens) parts.push(el("span", { "data-testid": "chat-tokens" }, `${s.outputTokens} tokens`));
  if (msg.streamId) {
    parts.push(el("a", { href: `${inspectHref(msg.streamId)}?format=native`, "data-testid": "chat-inspect", "aria-label": `Inspect stream ${msg.streamId}` },
      "Inspect stream"));
  }
  return el("div", { class: "msg-stats" }, ...parts.flatMap((p, i) => (i ? [" · ", p] : [p])));
}

function marker(msg) {
  if (msg.status === "stopped") {
    return el("p", { class: "marker marker-stopped", "data-testid": "chat-stopped" },
      el("span", { "aria-hidden": "true" }, "■ "), "Stopped: the answer was cut here.");
  }
  if (msg.status === "pending" || msg.status === "streaming") {
    const text = msg.reconnecting ? "reconnecting…" : LABELS[msg.status];
    return el("p", { class: "marker marker-live", "data-testid": "chat-live" }, text);
  }
  return null;
}

function problem(msg, actions) {
  if (!msg.error || !(msg.status === "failed" || msg.status === "interrupted")) return null;
  const retry = msg.status === "interrupted"
    ? el("button", { type: "button", "data-testid": "chat-resume", onclick: () => actions.resume() }, "Resume")
    : el("button", { type: "button", class: "primary", "data-testid": "chat-retry", onclick: () => actions.regenerate() }, "Retry");
  return el("div", { class: "msg-error", role: "alert", "data-testid": "chat-error" },
    el("strong", {}, `${LABELS[msg.status]}: `),
    el("span", { "data-testid": "chat-error-message" }, msg.error.message || "unknown error"),
    el("div", { class: "row" }, retry));
}

export function renderMessage(msg, { isLast, actions }) {
  const user = msg.role === "user";
  const body = el("div", { class: user ? "msg-body msg-text" : "msg-body md", "data-testid": "chat-msg-body" });
  if (user) body.textContent = msg.content;
  else body.append(renderMarkdown(msg.content));
  if (!user && msg.status === "streaming") body.classList.add("writing");
  const node = el("article", {
    class: `msg msg-${msg.role} msg-${msg.status || "done"}`,
    "data-testid": "chat-msg",
    "data-role": msg.role,
    "data-status": msg.status || "done",
    "data-stream": msg.streamId || "",
    "aria-label": user ? "You said" : `Answer${msg.status && msg.status !== "done" ? ` (${LABELS[msg.status] || msg.status})` : ""}`,
  }, el("div", { class: "msg-role" }, user ? "You" : "Answer"), body);
  if (user) return node;
  if (msg.warning) node.append(el("p", { class: "marker" }, msg.warning));
  const mark = marker(msg);
  if (mark) node.append(mark);
  const error = problem(msg, actions);
  if (error) node.append(error);
  const meta = el("div", { class: "msg-meta" }, stats(msg));
  if (isLast && ["done", "stopped"].includes(msg.status)) {
    meta.append(el("button", { type: "button", class: "small", "data-testid": "chat-regenerate", onclick: () => actions.regenerate() }, "Regenerate"));
  }
  node.append(meta);
  return node;
}
