// Chat page (#/chat, #/chat/<conversation id>): conversations with history, through the chat
// store (lib/chat-store.js: where conversations live and how answers stream is its business).
//
// - Left: the conversation list (new, open, rename, delete); on narrow screens it folds into a
//   "Conversations" disclosure above the chat.
// - Messages: the user's text as text; answers as safe Markdown (pages/chat-message.js), with
//   a "Stopped" marker, the error's message and a Retry button, Regenerate on the last answer,
//   the server's timings and a link to the stream inspector.
// - Composer: Enter sends, Shift+Enter breaks the line; the box clears on send; Stop while an
//   answer runs. The model picker lists GET /v1/models; the choice is kept per conversation.
// - A reload mid-answer shows the text received so far and continues after the last event the
//   store kept (no text twice).

import { el, errorText, labelled } from "../lib/dom.js";
import { renderMessage, signature } from "./chat-message.js";

const MODEL_KEY = "mianzhang.chat.model";

function conversationList(store, current) {
  const list = el("ul", { class: "conv-list", "data-testid": "chat-convs" });
  const row = (c) => {
    const currentId = current();
    const link = el("a", {
      href: `#/chat/${encodeURIComponent(c.id)}`,
      class: "conv-link",
      "data-testid": "chat-conv",
      "data-id": c.id,
      "aria-current": c.id === currentId ? "page" : undefined,
    }, c.title || "New chat", c.running ? el("span", { class: "dot", title: "an answer is running", "aria-label": "(answering)" }) : null);
    const rename = el("button", { type: "button", class: "small ghost", "data-testid": "chat-rename", "aria-label": `Rename “${c.title}”` }, "Rename");
    const remove = el("button", { type: "button", class: "small ghost", "data-testid": "chat-delete", "aria-label": `Delete “${c.title}”` }, "Delete");
    const item = el("li", { class: c.id === currentId ? "current" : "" }, link, el("span", { class: "conv-actions" }, rename, remove));
    rename.addEventListener("click", () => {
      const input = el("input", { value: c.title, "data-testid": "chat-rename-input", maxLength: 120 });
      const save = el("button", { type: "submit", class: "small primary" }, "Save");
      const form = el("form", { class: "conv-rename" }, labelled("New title", input, { class: "sr-only" }), input, save);
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        await store.rename(c.id, input.value);
      });
      input.addEventListener("keydown", (event) => {
        if (event.key === "Escape") item.replaceWith(row(c));
      });
      item.replaceChildren(form);
      input.select();
    });
    remove.addEventListener("click", async () => {
      await store.remove(c.id);
      if (c.id === currentId) location.hash = "#/chat/new";
    });
    return item;
  };
  const render = (items) => {
    list.replaceChildren(...items.map(row));
    if (!items.length) list.append(el("li", { class: "muted" }, "No conversations yet."));
  };
  return { list, render };
}

export function mount(root, { api = "", chats: store, setTitle, replaceRoute }) {
  let convId = decodeURIComponent((location.hash.split("?")[0].split("/")[2] || ""));
  let conv = null;
  let models = [];

  const newChat = el("a", { href: "#/chat/new", class: "button primary", "data-testid": "chat-new" }, "New chat");
  const convs = conversationList(store, () => convId);
  const side = el("details", { class: "chat-side", open: !matchMedia("(max-width: 760px)").matches },
    el("summary", {}, "Conversations"), el("div", { class: "side-body" }, newChat, convs.list));

  const title = el("h1", { class: "chat-title", "data-testid": "chat-title" }, "New chat");
  const modelSelect = el("select", { "data-testid": "chat-model" });
  const badge = el("p", { class: "badge", "data-testid": "chat-badge" });
  const log = el("div", { class: "chat-log", role: "log", "aria-live": "polite", "aria-relevant": "additions text", "data-testid": "chat-log" });
  const empty = el("p", { class: "muted chat-empty" }, "Ask something to start. The whole conversation is sent to the model at every turn.");
  const prompt = el("textarea", { rows: 2, placeholder: "Message…", "data-testid": "chat-prompt", "aria-describedby": "chat-hint", autocomplete: "off" });
  const send = el("button", { type: "submit", class: "primary", "data-testid": "chat-send" }, "Send");
  const stop = el("button", { type: "button", class: "danger", "data-testid": "chat-stop", hidden: true }, "Stop");
  const notice = el("p", { class: "form-error", role: "alert", "data-testid": "chat-notice" });
  const form = el("form", { class: "composer" },
    labelled("Message", prompt, { class: "sr-only" }), prompt,
    el("div", { class: "composer-row" },
      el("small", { id: "chat-hint", class: "muted" }, "Enter sends · Shift+Enter new line"),
      el("span", { class: "row" }, stop, send)),
    notice);

  root.replaceChildren(el("section", { class: "chat" }, side,
    el("div", { class: "chat-main" },
      el("div", { class: "chat-head" }, title,
        el("div", { class: "model-pick" }, labelled("Model", modelSelect), modelSelect)),
      badge, log, form)));

  const nodes = new Map(); // message id -> {node, sig}
  let frame = 0;

  function running() {
    const last = conv && conv.messages[conv.messages.length - 1];
    return !!last && ["pending", "streaming"].includes(last.status);
  }

  const actions = {
    regenerate: () => act(() => store.regenerate(conv.id, { model: modelSelect.value })),
    resume: () => act(() => store.resume(conv.id)),
  };

  async function act(work) {
    notice.textContent = "";
    try {
      await work();
    } catch (error) {
      notice.textContent = error.message;
    }
  }

  function render() {
    frame = 0;
    const atBottom = innerHeight + scrollY >= document.documentElement.scrollHeight - 80;
    const messages = conv ? conv.messages : [];
    title.textContent = conv ? conv.title : "New chat";
    setTitle(conv ? conv.title : "Chat");
    const keep = new Set();
    let previous = null;
    messages.forEach((msg, i) => {
      keep.add(msg.id);
      const sig = signature(msg, i === messages.length - 1);
      let entry = nodes.get(msg.id);
      if (!entry || entry.sig !== sig) {
        const node = renderMessage(msg, { isLast: i === messages.length - 1, actions });
        if (entry) entry.node.replaceWith(node);
        entry = { node, sig };
        nodes.set(msg.id, entry);
      }
      const expected = previous ? previous.nextSibling : log.firstChild;
      if (expected !== entry.node) log.insertBefore(entry.node, expected);
      previous = entry.node;
    });
    for (const [id, entry] of nodes) {
      if (!keep.has(id)) {
        entry.node.remove();
        nodes.delete(id);
      }
    }
    notice.textContent = conv && conv.unsaved ? `This conversation is ${conv.unsaved}.` : notice.textContent;
    if (!messages.length) log.replaceChildren(empty);
    else empty.remove();
    const busy = running();
    stop.hidden = !busy;
    send.disabled = busy;
    root.dataset.status = busy ? "running" : "idle";
    if (atBottom && busy) scrollTo({ top: document.documentElement.scrollHeight });
  }

  function schedule(next) {
    conv = next;
    if (!frame) frame = requestAnimationFrame(render);
  }

  function showBadge() {
    const info = models.find((m) => m.id === modelSelect.value);
    const demo = info && info.owned_by === "mianzhang-demo";
    badge.textContent = demo ? "Demo model: not a language model, it streams a fixed text." : (info && info.description) || "";
    badge.classList.toggle("badge-demo", !!demo);
    badge.hidden = !badge.textContent;
  }

  async function loadModels() {
    try {
      const response = await fetch(`${api}/v1/models`);
      if (!response.ok) throw new Error(await errorText(response));
      models = (await response.json()).data || [];
    } catch (error) {
      notice.textContent = `Cannot list the models: ${error.message}`;
    }
    const wanted = (conv && conv.model) || localStorage.getItem(MODEL_KEY) || "";
    modelSelect.replaceChildren(...models.map((m) =>
      el("option", { value: m.id, selected: m.id === wanted }, m.owned_by === "mianzhang-demo" ? `${m.id} (demo)` : m.id)));
    modelSelect.dataset.ready = "1";
    showBadge();
  }

  async function submit() {
    const text = prompt.value.trim();
    if (!text || running()) return;
    notice.textContent = "";
    if (!conv) {
      conv = await store.create({ model: modelSelect.value });
      convId = conv.id;
      replaceRoute(`#/chat/${encodeURIComponent(conv.id)}`);
      watch();
      convs.render(await store.list());
    }
    prompt.value = "";
    await act(() => store.send(conv.id, text, { model: modelSelect.value }));
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    }
  });
  stop.addEventListener("click", () => act(() => store.stop(conv.id)));
  modelSelect.addEventListener("change", () => {
    localStorage.setItem(MODEL_KEY, modelSelect.value);
    showBadge();
  });

  let unwatch = () => {};
  function watch() {
    unwatch();
    unwatch = store.watch(convId, schedule);
  }
  const unwatchList = store.watchList((items) => convs.render(items));

  (async () => {
    if (convId === "new") convId = "";
    if (!convId && location.hash.split("?")[0] !== "#/chat/new") {
      const recent = await store.list();
      if (recent.length) convId = recent[0].id;
    }
    if (convId) {
      const found = await store.get(convId);
      if (found) {
        replaceRoute(`#/chat/${encodeURIComponent(convId)}`);
        watch();
      } else {
        convId = "";
        replaceRoute("#/chat/new");
      }
    }
    convs.render(await store.list());
    render();
    await loadModels();
    prompt.focus({ preventScroll: true });
    root.dataset.ready = "1";
  })();

  return () => {
    unwatch();
    unwatchList();
    if (frame) cancelAnimationFrame(frame);
  };
}

export default { id: "chat", title: "Chat", mount };
