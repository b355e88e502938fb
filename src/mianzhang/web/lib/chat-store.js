// The chat page's conversations: the ONE module that knows where conversations live. Today it
// is client-side (LocalChatStore): conversations are kept in localStorage, and each answer is a
// generation of the gateway's native protocol (lib/native-answer.js: `POST
// /v1/llm/generations` with the whole history as `messages`, read from `GET
// /v1/streams/{id}?format=native`). A server-side store replaces this module by another class
// with the same methods (app.js constructs it); the page does not change.
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
//   resume(id)                 follows the running answer from the last event it received
//                              (after a reload, or after the connection was lost)
//   watch(id, cb)              -> unwatch() (sync); cb(conversation) now and after every
//                              change, tokens included; also resumes its running answer
//   watchList(cb)              -> unwatch() (sync); cb(list) now and after every change
//   close()                    (sync) stops following; the server keeps the answers
//
// Conversation: {id, title, model, created, updated, messages: [Message]} (read-only for
// callers). Message: {id, role: "user"|"assistant", content, status, error, model, streamId,
// stats, created} with status "done" for user turns and, for answers, "pending" (being
// created), "streaming", "done", "stopped", "failed" (error: {message, type, code}) or
// "interrupted" (the connection was lost; resume() continues it). stats: {ttftMs,
// tokensPerSecond, durationMs, outputTokens, finishReason} with the server's own timings.
//
// Guarantees: the history sent is every user turn and every answer that has text and did not
// fail, in order. An answer's text and the id of the last event it holds are saved together, so
// a reload resumes after exactly that event: no text is lost or shown twice (events at or
// before that id are also ignored if a server sends them again).

import { followAnswer, startAnswer, stopAnswer } from "./native-answer.js";

const INDEX_KEY = "mianzhang.chats.v1";
const CONV_PREFIX = "mianzhang.chat.v1.";
const SAVE_DELAY = 250;
const RUNNING = new Set(["pending", "streaming"]);

function newId(prefix) {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return prefix + [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function titleFrom(text) {
  const line = text.trim().split("\n")[0];
  return line.length > 48 ? `${line.slice(0, 47)}…` : line || "New chat";
}

export function historyOf(messages) {
  return messages
    .filter((m) => m.role === "user" || (m.content && ["done", "stopped", "interrupted"].includes(m.status)))
    .map((m) => ({ role: m.role, content: m.content }));
}

export class LocalChatStore {
  constructor({ api = "", storage = window.localStorage } = {}) {
    this.api = api;
    this.storage = storage;
    this.cache = new Map(); // id -> Conversation
    this.followers = new Map(); // id -> follow handle of its running answer
    this.watchers = new Map(); // id -> Set(cb)
    this.listWatchers = new Set();
    this.timers = new Map(); // id -> pending save timer
    this.creating = new Set(); // answers whose POST this page has in flight
    this.onStorage = (event) => this.fromOtherTab(event);
    this.onHide = () => this.flush();
    window.addEventListener("storage", this.onStorage);
    window.addEventListener("pagehide", this.onHide);
  }

  // ---- persistence ------------------------------------------------------------------------
  index() {
    try {
      const ids = JSON.parse(this.storage.getItem(INDEX_KEY) || "[]");
      return Array.isArray(ids) ? ids : [];
    } catch {
      return [];
    }
  }

  load(id) {
    if (this.cache.has(id)) return this.cache.get(id);
    try {
      const conv = JSON.parse(this.storage.getItem(CONV_PREFIX + id) || "null");
      if (conv && Array.isArray(conv.messages)) {
        this.cache.set(id, conv);
        return conv;
      }
    } catch {
      // a corrupt entry: treated as missing
    }
    return null;
  }

  write(id) {
    clearTimeout(this.timers.get(id));
    this.timers.delete(id);
    const conv = this.cache.get(id);
    if (!conv) return;
    try {
      this.storage.setItem(CONV_PREFIX + id, JSON.stringify(conv));
      conv.unsaved = false;
    } catch (error) {
      // the browser's quota (a few MB): the conversation lives on in this tab only
      conv.unsaved = `not kept by the browser: ${error.message}`;
    }
  }

  flush() {
    for (const id of [...this.timers.keys()]) this.write(id);
  }

  // Save soon (tokens arrive fast); `now` for state changes that must survive a crash.
  changed(conv, { now = false, list = false, touch = true } = {}) {
    if (touch) conv.updated = Date.now() / 1000; // the list is ordered by activity
    if (now) this.write(conv.id);
    else if (!this.timers.has(conv.id)) this.timers.set(conv.id, setTimeout(() => this.write(conv.id), SAVE_DELAY));
    for (const cb of this.watchers.get(conv.id) || []) cb(conv);
    if (list) this.emitList();
  }

  fromOtherTab(event) {
    if (event.key === INDEX_KEY) this.emitList();
    if (!event.key || !event.key.startsWith(CONV_PREFIX)) return;
    const id = event.key.slice(CONV_PREFIX.length);
    if (this.followers.has(id)) return; // this tab is writing it
    this.cache.delete(id);
    const conv = this.load(id);
    for (const cb of this.watchers.get(id) || []) cb(conv);
    this.emitList();
  }

  summaries() {
    return this.index()
      .map((id) => this.load(id))
      .filter(Boolean)
      .map((c) => ({
        id: c.id,
        title: c.title,
        model: c.model,
        updated: c.updated,
        running: c.messages.some((m) => RUNNING.has(m.status)),
      }))
      .sort((a, b) => b.updated - a.updated);
  }

  emitList() {
    const list = this.summaries();
    for (const cb of this.listWatchers) cb(list);
  }

  // ---- the interface ----------------------------------------------------------------------
  async list() {
    return this.summaries();
  }

  async create({ model = "", title = "" } = {}) {
    const now = Date.now() / 1000;
    const conv = { id: newId("c_"), title: title || "New chat", titled: !!title, model, created: now, updated: now, messages: [] };
    this.cache.set(conv.id, conv);
    this.storage.setItem(INDEX_KEY, JSON.stringify([conv.id, ...this.index()]));
    this.changed(conv, { now: true, list: true });
    return conv;
  }

  async get(id) {
    return this.load(id);
  }

  async rename(id, title) {
    const conv = this.must(id);
    conv.title = title.trim() || conv.title;
    conv.titled = true;
    this.changed(conv, { now: true, list: true, touch: false });
  }

  async remove(id) {
    const conv = this.load(id);
    if (conv && conv.messages.some((m) => RUNNING.has(m.status))) await this.stop(id);
    this.unfollow(id);
    clearTimeout(this.timers.get(id));
    this.timers.delete(id);
    this.cache.delete(id);
    this.storage.removeItem(CONV_PREFIX + id);
    this.storage.setItem(INDEX_KEY, JSON.stringify(this.index().filter((x) => x !== id)));
    this.emitList();
  }

  async send(id, text, { model } = {}) {
    const conv = this.must(id);
    if (conv.messages.some((m) => RUNNING.has(m.status))) throw new Error("an answer is still running");
    if (model) conv.model = model;
    if (!conv.titled && !conv.messages.length) conv.title = titleFrom(text);
    conv.messages.push({ id: newId("m_"), role: "user", content: text, status: "done", created: Date.now() / 1000 });
    await this.answer(conv);
  }

  async regenerate(id, { model } = {}) {
    const conv = this.must(id);
    const last = conv.messages[conv.messages.length - 1];
    if (!last || last.role !== "assistant") throw new Error("nothing to regenerate");
    if (RUNNING.has(last.status)) throw new Error("an answer is still running");
    conv.messages.pop();
    if (model) conv.model = model;
    await this.answer(conv);
  }

  async stop(id) {
    const conv = this.must(id);
    const msg = conv.messages[conv.messages.length - 1];
    if (!msg || !RUNNING.has(msg.status)) return;
    if (!msg.streamId) {
      this.end(conv, msg, "stopped");
      return;
    }
    // taken: the follower receives the end with code "cancelled" and ends "stopped";
    // not taken: the stream is gone, nothing will arrive any more
    if (!(await stopAnswer(this.api, msg.streamId))) this.end(conv, msg, "stopped");
  }

  async resume(id) {
    const conv = this.load(id);
    if (!conv) return;
    const msg = conv.messages[conv.messages.length - 1];
    if (!msg || msg.role !== "assistant" || this.followers.has(id)) return;
    if (msg.status === "pending" && !msg.streamId && !this.creating.has(msg.id)) {
      // the page was left while the request creating it was in flight
      this.end(conv, msg, "failed", { message: "the page was reloaded before the answer started", type: "network" });
      return;
    }
    if (!msg.streamId) return;
    if (msg.status === "interrupted") {
      msg.status = "streaming";
      msg.error = null;
      this.changed(conv, { now: true, list: true });
    }
    if (msg.status === "streaming") this.follow(conv, msg);
  }

  watch(id, cb) {
    if (!this.watchers.has(id)) this.watchers.set(id, new Set());
    this.watchers.get(id).add(cb);
    cb(this.load(id));
    this.resume(id);
    return () => this.watchers.get(id)?.delete(cb);
  }

  watchList(cb) {
    this.listWatchers.add(cb);
    cb(this.summaries());
    return () => this.listWatchers.delete(cb);
  }

  close() {
    this.flush();
    for (const id of [...this.followers.keys()]) this.unfollow(id);
    window.removeEventListener("storage", this.onStorage);
    window.removeEventListener("pagehide", this.onHide);
  }

  // ---- answers ------------------------------------------------------------------------------
  must(id) {
    const conv = this.load(id);
    if (!conv) throw new Error(`no conversation ${id}`);
    return conv;
  }

  async answer(conv) {
    const msg = {
      id: newId("m_"),
      role: "assistant",
      content: "",
      status: "pending",
      error: null,
      model: conv.model,
      streamId: "",
      lastEventId: "",
      stats: {},
      created: Date.now() / 1000,
    };
    const messages = historyOf(conv.messages);
    conv.messages.push(msg);
    this.changed(conv, { now: true, list: true });
    let started;
    this.creating.add(msg.id);
    try {
      started = await startAnswer(this.api, { model: conv.model, messages });
    } catch (error) {
      this.end(conv, msg, "failed", error);
      return;
    } finally {
      this.creating.delete(msg.id);
    }
    if (this.cache.get(conv.id) !== conv) {
      stopAnswer(this.api, started.streamId).catch(() => {}); // deleted meanwhile: nobody reads it
      return;
    }
    msg.streamId = started.streamId;
    msg.model = started.model || msg.model;
    msg.status = "streaming";
    this.changed(conv, { now: true });
    this.follow(conv, msg);
  }

  end(conv, msg, status, error = null) {
    msg.status = status;
    msg.error = error;
    this.unfollow(conv.id);
    this.changed(conv, { now: true, list: true });
  }

  unfollow(id) {
    const handle = this.followers.get(id);
    if (handle) handle.stop();
    this.followers.delete(id);
  }

  follow(conv, msg) {
    const handle = followAnswer(this.api, msg, {
      onChange: () => this.changed(conv),
      onEnd: (status, error) => {
        if (this.followers.get(conv.id) === handle) this.followers.delete(conv.id);
        this.end(conv, msg, status, error);
      },
    });
    this.followers.set(conv.id, handle);
  }
}
