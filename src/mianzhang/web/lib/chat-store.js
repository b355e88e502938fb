// The chat page's conversations: the ONE module that knows where conversations live. They live
// on the server (ServerChatStore), in its chat store (`/v1/chats`: the list, titles, the
// messages as UIMessages, which answer is running), owned by the caller, shared by every tab
// and browser of that caller and kept whatever happens to this page. Each answer is a turn of
// the AI SDK chat protocol (lib/ui-answer.js: `POST /v1/ui/chat`, resumed from the log with
// `GET /v1/ui/chat/{id}/stream`, stopped with `POST /v1/ui/chat/{id}/stop`); the server saves
// the answer when its generation ends, even if no page is open any more.
//
// Interface (every method returns a Promise unless said otherwise; ids are strings):
//
//   list()                     -> [{id, title, model, updated, running}] newest first
//   create({model?, title?})   -> Conversation (empty)
//   get(id)                    -> Conversation | null
//   rename(id, title)
//   remove(id)                 stops its running answer first
//   send(id, text, {model?})   appends the user turn and starts the answer to the whole
//                              history; rejects while an answer is running
//   regenerate(id, {model?})   replaces the last answer (also "retry" after a failure) with a
//                              new one to the same history
//   stop(id)                   stops the running answer (it ends "stopped", text kept)
//   resume(id)                 follows the running answer (after a reload, in another tab, or
//                              after the connection was lost)
//   watch(id, cb)              -> unwatch() (sync); cb(conversation) once it is loaded and
//                              after every change, tokens included; also follows its running
//                              answer
//   watchList(cb)              -> unwatch() (sync); cb(list) once loaded and after every change
//                              (this page's, and others' when the page comes back into view)
//   close()                    (sync) stops following; the server keeps the answers
//
// Conversation: {id, title, model, created, updated, messages: [Message]} (read-only for
// callers). Message: {id, role: "user"|"assistant", content, status, error, model, streamId,
// stats, created} with status "done" for user turns and, for answers, "pending" (being
// created), "streaming", "done", "stopped", "failed" (error: {message, type, code}) or
// "interrupted" (the connection was lost; resume() continues it). stats: {ttftMs,
// tokensPerSecond, durationMs, outputTokens, finishReason} with the server's own timings.
//
// Guarantees: the history sent is every user turn and every answer that did not fail, in order
// (a failed answer stays in the conversation; the server does not send it to the model either).
// A running answer is read from its first event after a reload or in another tab, and after a
// lost connection from the last event received: no text is lost or shown twice.

import { followAnswer, startAnswer, stopAnswer } from "./ui-answer.js";

const RUNNING = new Set(["pending", "streaming"]);
const SENT = new Set(["done", "stopped", "interrupted"]);

function newId(prefix) {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return prefix + [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function titleFrom(text) {
  const line = text.trim().split("\n")[0].trim();
  return line.length > 48 ? `${line.slice(0, 47)}…` : line || "New chat";
}

function textOf(ui) {
  return (ui.parts || []).filter((p) => p.type === "text").map((p) => p.text).join("");
}

// A server UIMessage as the page's Message (the UIMessage kept as `ui`).
function fromUI(ui) {
  const m = ui.metadata || {};
  const base = { id: ui.id, role: ui.role, content: textOf(ui), ui, created: m.created || 0 };
  if (ui.role !== "assistant") return { ...base, status: "done" };
  const timings = m.timings || {};
  const stats = {
    ttftMs: timings.timeToFirstTokenMs,
    tokensPerSecond: timings.tokensPerSecond,
    durationMs: timings.durationMs,
    outputTokens: (m.usage || {}).outputTokens,
    finishReason: m.finishReason,
  };
  const status = m.status === "failed" || m.status === "stopped" ? m.status : "done";
  return { ...base, status, error: m.status === "failed" ? m.error || { message: "failed" } : null, model: m.model || "", streamId: ui.id, stats };
}

// The page's Message as the UIMessage sent back as history.
function toUI(msg) {
  if (msg.ui) return msg.ui;
  return { id: msg.id, role: msg.role, parts: [{ type: "text", text: msg.content }] };
}

export function historyOf(messages) {
  return messages.filter((m) => m.role === "user" || (m.content && SENT.has(m.status))).map(toUI);
}

function fromServer(chat) {
  return {
    id: chat.id,
    title: chat.title || "New chat",
    model: chat.model,
    created: chat.created,
    updated: chat.updated,
    messages: chat.messages.map(fromUI),
    stream: chat.stream,
  };
}

export class ServerChatStore {
  constructor({ api = "" } = {}) {
    this.api = api;
    this.cache = new Map(); // id -> Conversation
    this.followers = new Map(); // id -> handle of its running answer
    this.watchers = new Map(); // id -> Set(cb)
    this.listWatchers = new Set();
    this.onVisible = () => {
      if (document.visibilityState === "visible") this.refresh();
    };
    document.addEventListener("visibilitychange", this.onVisible);
    window.addEventListener("focus", this.onVisible);
  }

  // ---- the server ---------------------------------------------------------------------------
  async call(method, path, body) {
    let response;
    try {
      response = await fetch(`${this.api}/v1/chats${path}`, {
        method,
        headers: body === undefined ? {} : { "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new Error(`cannot reach the server: ${error.message}`);
    }
    if (response.status === 204) return null;
    const found = await response.json().catch(() => null);
    if (response.status === 404 && method === "GET") return null;
    if (!response.ok) throw new Error((found && found.error && found.error.message) || `HTTP ${response.status}`);
    return found;
  }

  async load(id) {
    const chat = await this.call("GET", `/${encodeURIComponent(id)}`);
    if (!chat) return null;
    if (this.followers.has(id) && this.cache.has(id)) return this.cache.get(id); // this page writes it
    const conv = fromServer(chat);
    this.cache.set(id, conv);
    return conv;
  }

  emit(conv) {
    for (const cb of this.watchers.get(conv.id) || []) cb(conv);
  }

  async emitList() {
    if (!this.listWatchers.size) return;
    const list = await this.list();
    for (const cb of this.listWatchers) cb(list);
  }

  // Others may have changed things (another tab or browser): read them again.
  async refresh() {
    this.emitList().catch(() => {});
    for (const id of this.watchers.keys()) {
      // a conversation being answered here, or holding a turn the server refused (kept on
      // this page so the text is not lost), is this page's to show
      if (this.followers.has(id) || this.cache.get(id)?.messages.some((m) => m.local)) continue;
      const conv = await this.load(id).catch(() => null);
      if (conv) {
        this.emit(conv);
        this.resume(id);
      }
    }
  }

  // ---- the interface ------------------------------------------------------------------------
  async list() {
    const found = await this.call("GET", "?limit=200");
    // a title the server does not have yet (its first answer is being created) is this page's
    const title = (c) => c.title || this.cache.get(c.id)?.title || "New chat";
    return found.data
      .filter((c) => c.kind === "ui") // (AG-UI threads of the same caller are not chats here)
      .map((c) => ({ id: c.id, title: title(c), model: c.model, updated: c.updated, running: c.running }));
  }

  async create({ model = "", title = "" } = {}) {
    const conv = fromServer(await this.call("POST", "", { model, title }));
    this.cache.set(conv.id, conv);
    this.emitList();
    return conv;
  }

  async get(id) {
    return this.cache.get(id) || (await this.load(id));
  }

  async rename(id, title) {
    const conv = this.must(id);
    const changed = await this.call("PATCH", `/${encodeURIComponent(id)}`, { title: title.trim() || conv.title });
    conv.title = changed.title;
    this.emit(conv);
    this.emitList();
  }

  async remove(id) {
    this.unfollow(id);
    await this.call("DELETE", `/${encodeURIComponent(id)}`);
    this.cache.delete(id);
    this.emitList();
  }

  async send(id, text, { model } = {}) {
    const conv = this.must(id);
    if (conv.messages.some((m) => RUNNING.has(m.status))) throw new Error("an answer is still running");
    if (model) conv.model = model;
    if (!conv.messages.length) conv.title = titleFrom(text);
    const ui = { id: newId("m_"), role: "user", parts: [{ type: "text", text }] };
    conv.messages.push({ ...fromUI(ui), created: Date.now() / 1000, local: true });
    this.answer(conv, { trigger: "submit-message" });
  }

  async regenerate(id, { model } = {}) {
    const conv = this.must(id);
    const last = conv.messages[conv.messages.length - 1];
    if (!last || last.role !== "assistant") throw new Error("nothing to regenerate");
    if (RUNNING.has(last.status)) throw new Error("an answer is still running");
    conv.messages.pop();
    if (model) conv.model = model;
    this.answer(conv, { trigger: "regenerate-message", messageId: last.id });
  }

  async stop(id) {
    const conv = this.must(id);
    const msg = conv.messages[conv.messages.length - 1];
    if (!msg || !RUNNING.has(msg.status)) return;
    // stopped: the follower receives the end ("abort") and ends "stopped"; not running any
    // more (ended meanwhile, or never started): nothing will arrive, end it here
    if (!(await stopAnswer(this.api, id).catch(() => false)) && RUNNING.has(msg.status)) {
      this.end(conv, msg, "stopped");
    }
  }

  async resume(id) {
    const conv = this.cache.get(id) || (await this.load(id).catch(() => null));
    if (!conv || this.followers.has(id)) return;
    const last = conv.messages[conv.messages.length - 1];
    if (last && last.role === "assistant" && last.status === "interrupted") {
      last.status = "streaming";
      last.error = null;
      this.follow(conv, last, { lastEventId: last.lastEventId || null });
      return;
    }
    if (!conv.stream) return;
    const msg = this.placeholder(conv.stream);
    msg.status = "streaming";
    conv.messages.push(msg);
    conv.stream = null;
    this.follow(conv, msg, {});
  }

  watch(id, cb) {
    if (!this.watchers.has(id)) this.watchers.set(id, new Set());
    this.watchers.get(id).add(cb);
    const cached = this.cache.get(id);
    if (cached) {
      cb(cached);
      this.resume(id);
    } else {
      this.load(id).then((conv) => {
        if (!conv) return;
        this.emit(conv);
        this.resume(id);
      }).catch(() => {});
    }
    return () => this.watchers.get(id)?.delete(cb);
  }

  watchList(cb) {
    this.listWatchers.add(cb);
    this.list().then((list) => this.listWatchers.has(cb) && cb(list)).catch(() => {});
    return () => this.listWatchers.delete(cb);
  }

  close() {
    for (const id of [...this.followers.keys()]) this.unfollow(id);
    document.removeEventListener("visibilitychange", this.onVisible);
    window.removeEventListener("focus", this.onVisible);
  }

  // ---- answers ------------------------------------------------------------------------------
  must(id) {
    const conv = this.cache.get(id);
    if (!conv) throw new Error(`no conversation ${id}`);
    return conv;
  }

  placeholder(streamId = "") {
    return {
      id: streamId || newId("m_"),
      role: "assistant",
      content: "",
      status: "pending",
      error: null,
      model: "",
      streamId,
      stats: {},
      created: Date.now() / 1000,
    };
  }

  answer(conv, { trigger, messageId }) {
    const history = historyOf(conv.messages);
    const msg = this.placeholder();
    msg.model = conv.model;
    conv.messages.push(msg);
    this.changed(conv, { list: true });
    const request = { id: conv.id, messages: history, trigger, model: conv.model || undefined };
    if (messageId) request.messageId = messageId;
    const handle = startAnswer(this.api, request, msg, this.callbacks(conv, msg, () => handle));
    this.followers.set(conv.id, handle);
  }

  follow(conv, msg, { lastEventId }) {
    const handle = followAnswer(this.api, conv.id, msg, { lastEventId, ...this.callbacks(conv, msg, () => handle) });
    this.followers.set(conv.id, handle);
    this.changed(conv, { list: true });
  }

  callbacks(conv, msg, handle) {
    return {
      onChange: () => {
        if (msg.status === "pending") {
          msg.status = "streaming";
          for (const m of conv.messages) delete m.local; // the server has the turn now
        }
        this.changed(conv);
      },
      onEnd: (status, error) => {
        if (this.followers.get(conv.id) === handle()) this.followers.delete(conv.id);
        if (status === "gone") this.reloadAfter(conv, msg);
        else this.end(conv, msg, status, error);
      },
    };
  }

  // The server had no running answer any more: it ended while nobody here read it, and the
  // chat holds the saved answer.
  async reloadAfter(conv, msg) {
    const fresh = await this.load(conv.id).catch(() => null);
    if (!fresh) {
      this.end(conv, msg, "interrupted", { message: "the answer is no longer on the server", type: "stream" });
      return;
    }
    this.emit(fresh);
    this.emitList();
  }

  end(conv, msg, status, error = null) {
    msg.status = status;
    msg.error = error;
    this.unfollow(conv.id);
    this.changed(conv, { list: true });
  }

  changed(conv, { list = false } = {}) {
    conv.updated = Date.now() / 1000;
    this.emit(conv);
    if (list) this.emitList().catch(() => {});
  }

  unfollow(id) {
    const handle = this.followers.get(id);
    if (handle) handle.stop();
    this.followers.delete(id);
  }
}
