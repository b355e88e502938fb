// The UI shell: a hash router over page modules (plain ES modules, no build step).
//
// A page module exports default { id, title, mount(root, ctx) }; mount may return a cleanup
// function, called when the user leaves the page (close streams, stop timers). Routes are
// `#/<page id>[/<path>][?<query>]`; a change of page or path mounts the page again (a change
// of query alone does not). ctx: { api: "" (the server's base URL), chats: the chat store
// (lib/chat-store.js), setTitle(text), replaceRoute(hash) }.
//
// The skip link targets #page, which is also a route-less hash: it is ignored by the router.

import demo from "./pages/demo.js";
import chat from "./pages/chat.js";
import inspect from "./pages/inspect.js";
import notifications from "./pages/notifications.js";
import jobs from "./pages/jobs.js";
import files from "./pages/files.js";
import tails from "./pages/tails.js";
import { ServerChatStore } from "./lib/chat-store.js";

const PAGES = [demo, chat, notifications, jobs, files, tails, inspect];
const nav = document.getElementById("nav");
const root = document.getElementById("page");
const ctx = {
  api: "",
  chats: new ServerChatStore({ api: "" }),
  setTitle(text) {
    document.title = text ? `${text} · mianzhang` : "mianzhang";
  },
  // Change the URL of the page being shown without mounting it again (history.replaceState).
  replaceRoute(hash) {
    history.replaceState(null, "", location.pathname + location.search + hash);
    const found = route();
    if (found) mounted = routeKey(found);
  },
};
let cleanup = null;
let mounted = "";
let first = true;

for (const page of PAGES) {
  const link = document.createElement("a");
  link.href = `#/${page.id}`;
  link.textContent = page.title;
  link.dataset.page = page.id;
  nav.append(link);
}

function route() {
  const hash = location.hash;
  if (!hash.startsWith("#/")) return null;
  const path = hash.slice(2).split("?")[0];
  const id = path.split("/")[0];
  return { page: PAGES.find((p) => p.id === id) || PAGES[0], path };
}

function routeKey({ page, path }) {
  return `${page.id}/${path.split("/").slice(1).join("/")}`;
}

function show() {
  const found = route();
  if (!found && mounted) return; // e.g. the skip link's #page
  const { page, path } = found || { page: PAGES[0], path: PAGES[0].id };
  const key = routeKey({ page, path });
  if (mounted === key) return;
  const pageChanged = document.body.dataset.page !== page.id;
  if (typeof cleanup === "function") cleanup();
  root.replaceChildren();
  for (const link of nav.children) {
    const active = link.dataset.page === page.id;
    link.classList.toggle("active", active);
    if (active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.body.dataset.page = page.id;
  mounted = key;
  ctx.setTitle(page.title);
  cleanup = page.mount(root, ctx);
  // after a navigation, move focus into the new page (for keyboard and screen reader users)
  // unless the page took it; on the first load the focus stays at the top (skip link first)
  if (pageChanged && !first && !root.contains(document.activeElement)) root.focus({ preventScroll: true });
  first = false;
}

window.addEventListener("hashchange", show);
show();
// answers running on the server are followed at once (a generation nobody reads is cancelled
// after the server's grace period)
ctx.chats.list().then((list) => list.filter((c) => c.running).forEach((c) => ctx.chats.resume(c.id)));
document.body.dataset.ready = "1";
