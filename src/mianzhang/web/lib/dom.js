// Small DOM and formatting helpers shared by the pages (no framework, no build step).
//
// `el(tag, attrs, ...children)` builds an element. Text children become text nodes (never
// HTML): nothing a server or a model sends is ever parsed as markup by these helpers.
// Attributes: `class`, `style` (a string), `data-*`, `aria-*`, `for`, `role` are set as
// attributes; anything else is set as a property (`value`, `disabled`, `hidden`, ...).

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) {
      if (key in node && typeof node[key] === "boolean") node[key] = false;
      continue;
    }
    if (key === "class") node.className = value;
    else if (["style", "for", "role", "list", "tabindex"].includes(key)) {
      node.setAttribute(key, value);
    } else if (key.startsWith("data-") || key.startsWith("aria-")) node.setAttribute(key, String(value));
    else node[key] = value;
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child);
  }
  return node;
}

let ids = 0;

// A labelled control: returns [label, control] ready to place; the control gets an id.
export function labelled(text, control, attrs = {}) {
  if (!control.id) control.id = `mz-c${++ids}`;
  return el("label", { for: control.id, ...attrs }, text);
}

// A field block: label above its control (the forms' layout unit).
export function field(text, control, { hint = "", cls = "" } = {}) {
  return el("div", { class: `field ${cls}`.trim() }, labelled(text, control), control,
    hint ? el("small", { class: "muted" }, hint) : null);
}

export function fmtMs(ms, digits = 0) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "–";
  return `${Number(ms).toFixed(digits)} ms`;
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let value = n;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i += 1;
  }
  return `${value.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export function fmtTime(seconds) {
  if (!seconds) return "–";
  return new Date(seconds * 1000).toLocaleString();
}

// The `?a=b` part of the location hash (`#/page/rest?a=b`).
export function hashParams() {
  return new URLSearchParams(location.hash.split("?")[1] || "");
}

// The path segments after the page id: `#/inspect/job%3Ax` -> ["job:x"].
export function hashPath() {
  const path = location.hash.replace(/^#\/?/, "").split("?")[0];
  return path.split("/").slice(1).filter(Boolean).map(decodeURIComponent);
}

// The message of a mianzhang JSON error response, else "HTTP <status>".
export async function errorText(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch {
    // not a JSON error body
  }
  return `HTTP ${response.status}`;
}

export function inspectHref(stream) {
  return `#/inspect/${encodeURIComponent(stream)}`;
}
