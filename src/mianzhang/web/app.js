// The UI shell: a hash router over page modules (no build step).
// A page module exports default { id, title, mount(root, { api }) } and mount may return a
// cleanup function, called when the user leaves the page (close EventSources, timers).

import demo from "./pages/demo.js";
import chat from "./pages/chat.js";
import files from "./pages/files.js";
import notifications from "./pages/notifications.js";
import jobs from "./pages/jobs.js";

const PAGES = [demo, chat, notifications, jobs, files];
const nav = document.getElementById("nav");
const root = document.getElementById("page");
let cleanup = null;

for (const page of PAGES) {
  const link = document.createElement("a");
  link.href = `#/${page.id}`;
  link.textContent = page.title;
  link.dataset.page = page.id;
  nav.append(link);
}

function show() {
  const id = (location.hash.match(/^#\/([\w-]+)/) || [])[1] || PAGES[0].id;
  const page = PAGES.find((p) => p.id === id) || PAGES[0];
  if (document.body.dataset.page === page.id) return;
  if (typeof cleanup === "function") cleanup();
  root.replaceChildren();
  for (const link of nav.children) link.classList.toggle("active", link.dataset.page === page.id);
  document.body.dataset.page = page.id;
  cleanup = page.mount(root, { api: "" });
}

window.addEventListener("hashchange", show);
show();
document.body.dataset.ready = "1";
