// A small Markdown renderer that is safe by construction: it builds DOM nodes with
// createElement and text nodes, never innerHTML, so no text (a model's answer included) can
// become markup. Raw HTML in the input is shown as the literal text it is.
//
// Supported: paragraphs (a single newline is a line break), ATX headings, fenced code blocks
// (``` or ~~~, with a language tag; an unclosed fence, as while an answer streams, runs to the
// end), indented lists (-, *, + and 1. 1)), block quotes, horizontal rules, GFM tables; inline
// code, **strong**, *emphasis*, ~~strike~~, [links](url "title"), <autolinks>, bare
// http(s) URLs, backslash escapes. Images are not loaded (no request leaves the page because
// of a model's answer): ![alt](url) becomes a link labelled "image: alt".
//
// Links: only http:, https: and mailto: URLs become links (after the browser's own URL
// parsing, so "java\tscript:" or "JAVASCRIPT:" are caught as what they are); any other link is
// rendered as its text. Links open in a new tab with rel="noopener noreferrer nofollow".
//
// API: renderMarkdown(text) -> DocumentFragment; safeHref(url) -> string | null.

const SAFE_SCHEMES = new Set(["http:", "https:", "mailto:"]);

export function safeHref(url) {
  if (typeof url !== "string" || !url.trim()) return null;
  let parsed;
  try {
    parsed = new URL(url.trim(), location.href);
  } catch {
    return null;
  }
  return SAFE_SCHEMES.has(parsed.protocol) ? parsed.href : null;
}

function h(tag, attrs, children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children || []) node.append(child);
  return node;
}

function link(href, children, title) {
  const safe = safeHref(href);
  if (!safe) return children;
  const attrs = { href: safe, rel: "noopener noreferrer nofollow", target: "_blank" };
  if (title) attrs.title = title;
  return [h("a", attrs, children)];
}

// ---- inline ------------------------------------------------------------------------------

const PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

// The index of the `]` closing the `[` at `open`, or -1.
function closingBracket(text, open) {
  let depth = 0;
  for (let i = open; i < text.length; i += 1) {
    const c = text[i];
    if (c === "\\") i += 1;
    else if (c === "[") depth += 1;
    else if (c === "]" && --depth === 0) return i;
  }
  return -1;
}

// `(url "title")` at `start`: {url, title, end} or null.
function destination(text, start) {
  if (text[start] !== "(") return null;
  let depth = 0;
  for (let i = start; i < text.length; i += 1) {
    const c = text[i];
    if (c === "\\") i += 1;
    else if (c === "(") depth += 1;
    else if (c === ")" && --depth === 0) {
      const inner = text.slice(start + 1, i).trim();
      const match = /^<?([^\s>]*)>?(?:\s+["'(](.*)["')])?$/s.exec(inner);
      if (!match) return null;
      return { url: match[1], title: match[2] || "", end: i + 1 };
    }
  }
  return null;
}

function delimited(text, i, delim) {
  if (!text.startsWith(delim, i)) return null;
  const from = i + delim.length;
  if (from >= text.length || /\s/.test(text[from])) return null;
  if (delim[0] === "_" && i > 0 && /\w/.test(text[i - 1])) return null;
  // a closer is not preceded by a space; an underscore closer is not inside a word either
  const bad = (at) => /\s/.test(text[at - 1]) || (delim[0] === "_" && /\w/.test(text[at + delim.length] || ""));
  let close = text.indexOf(delim, from);
  while (close >= 0 && bad(close)) close = text.indexOf(delim, close + 1);
  if (close < 0 || close === from) return null;
  return { inner: text.slice(from, close), end: close + delim.length };
}

const EMPHASIS = [
  ["**", "strong"],
  ["__", "strong"],
  ["~~", "del"],
  ["*", "em"],
  ["_", "em"],
];

function inlineAt(text, i) {
  const c = text[i];
  if (c === "\\" && i + 1 < text.length && PUNCT.includes(text[i + 1])) {
    return { nodes: [text[i + 1]], end: i + 2 };
  }
  if (c === "`") {
    const run = /^`+/.exec(text.slice(i))[0];
    const close = text.indexOf(run, i + run.length);
    if (close < 0) return { nodes: [run], end: i + run.length };
    let code = text.slice(i + run.length, close).replace(/\n/g, " ");
    if (/^ .* $/.test(code) && code.trim()) code = code.slice(1, -1);
    return { nodes: [h("code", {}, [code])], end: close + run.length };
  }
  if (c === "[" || (c === "!" && text[i + 1] === "[")) {
    const open = c === "!" ? i + 1 : i;
    const close = closingBracket(text, open);
    const dest = close < 0 ? null : destination(text, close + 1);
    if (dest) {
      const label = text.slice(open + 1, close);
      const inner = c === "!" ? [`image: ${label || dest.url}`] : inline(label);
      return { nodes: link(dest.url, inner, dest.title), end: dest.end };
    }
    return null;
  }
  if (c === "<") {
    const match = /^<([a-zA-Z][a-zA-Z0-9+.-]{1,31}:[^\s<>]*)>/.exec(text.slice(i));
    if (match && safeHref(match[1])) return { nodes: link(match[1], [match[1]]), end: i + match[0].length };
    return null;
  }
  if (c === "h" && (i === 0 || /[\s(]/.test(text[i - 1]))) {
    const match = /^https?:\/\/[^\s<]+/.exec(text.slice(i));
    if (match) {
      const url = match[0].replace(/[.,;:!?)\]'"]+$/, "");
      return { nodes: link(url, [url]), end: i + url.length };
    }
  }
  for (const [delim, tag] of EMPHASIS) {
    if (c !== delim[0]) continue;
    const found = delimited(text, i, delim);
    if (found) return { nodes: [h(tag, {}, inline(found.inner))], end: found.end };
  }
  return null;
}

function inline(text) {
  const out = [];
  let plain = "";
  const flush = () => {
    if (plain) out.push(document.createTextNode(plain));
    plain = "";
  };
  let i = 0;
  while (i < text.length) {
    if (text[i] === "\n") {
      flush();
      out.push(h("br"));
      i += 1;
      continue;
    }
    const found = "\\`[!<h*_~".includes(text[i]) ? inlineAt(text, i) : null;
    if (!found) {
      plain += text[i];
      i += 1;
      continue;
    }
    flush();
    for (const node of found.nodes) out.push(typeof node === "string" ? document.createTextNode(node) : node);
    i = found.end;
  }
  flush();
  return out;
}

// ---- blocks ------------------------------------------------------------------------------

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)?.*$/;
const HEADING = /^ {0,3}(#{1,6})(?:\s+(.*?))?\s*#*\s*$/;
const RULE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const ITEM = /^( {0,3})([-*+]|\d{1,9}[.)])\s+(.*)$/;
const TABLE_SEP = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;

function cells(line) {
  return line.trim().replace(/^\|/, "").replace(/\|$/, "").split("|").map((s) => s.trim());
}

function codeBlock(lines, i) {
  const open = FENCE.exec(lines[i]);
  const fence = open[1];
  const body = [];
  let j = i + 1;
  while (j < lines.length && !new RegExp(`^ {0,3}${fence[0]}{${fence.length},}\\s*$`).test(lines[j])) {
    body.push(lines[j]);
    j += 1;
  }
  const lang = (open[2] || "").replace(/[^\w+-]/g, "").slice(0, 32);
  const code = h("code", lang ? { class: `language-${lang}` } : {}, [body.join("\n")]);
  const attrs = { class: "md-code" };
  if (lang) attrs["data-lang"] = lang;
  return { node: h("pre", attrs, [code]), next: j + 1 };
}

function list(lines, i) {
  const first = ITEM.exec(lines[i]);
  const ordered = /\d/.test(first[2]);
  const items = [];
  let j = i;
  while (j < lines.length) {
    const item = ITEM.exec(lines[j]);
    if (!item || /\d/.test(item[2]) !== ordered) break;
    const body = [item[3]];
    const indent = item[1].length + item[2].length + 1;
    j += 1;
    // continuation: indented lines, also after one blank line
    for (;;) {
      const blankThenIndented = lines[j] === "" && /^\s{2,}\S/.test(lines[j + 1] || "");
      if (j >= lines.length || !(blankThenIndented || /^\s{2,}\S/.test(lines[j]))) break;
      body.push(lines[j].slice(Math.min(indent, lines[j].search(/\S|$/))));
      j += 1;
    }
    items.push(h("li", {}, body.length > 1 ? blocks(body, true) : inline(body[0])));
  }
  const attrs = {};
  if (ordered && Number.parseInt(first[2], 10) !== 1) attrs.start = String(Number.parseInt(first[2], 10));
  return { node: h(ordered ? "ol" : "ul", attrs, items), next: j };
}

function table(lines, i) {
  const head = cells(lines[i]);
  const rows = [];
  let j = i + 2;
  while (j < lines.length && lines[j].includes("|") && lines[j].trim()) {
    rows.push(cells(lines[j]));
    j += 1;
  }
  const thead = h("thead", {}, [h("tr", {}, head.map((c) => h("th", { scope: "col" }, inline(c))))]);
  const tbody = h("tbody", {}, rows.map((r) => h("tr", {}, head.map((_, k) => h("td", {}, inline(r[k] || ""))))));
  return { node: h("div", { class: "md-table" }, [h("table", {}, [thead, tbody])]), next: j };
}

function startsBlock(lines, j) {
  const line = lines[j];
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || ITEM.test(line);
}

function block(lines, i, tight) {
  const line = lines[i];
  if (FENCE.test(line)) return codeBlock(lines, i);
  const heading = HEADING.exec(line);
  if (heading) return { node: h(`h${heading[1].length + 2 > 6 ? 6 : heading[1].length + 2}`, { class: "md-h" }, inline(heading[2] || "")), next: i + 1 };
  if (RULE.test(line)) return { node: h("hr"), next: i + 1 };
  if (QUOTE.test(line)) {
    const body = [];
    let j = i;
    while (j < lines.length && QUOTE.test(lines[j])) body.push(QUOTE.exec(lines[j++])[1]);
    return { node: h("blockquote", {}, blocks(body)), next: j };
  }
  if (ITEM.test(line)) return list(lines, i);
  if (line.includes("|") && i + 1 < lines.length && TABLE_SEP.test(lines[i + 1]) && lines[i + 1].includes("-")) {
    return table(lines, i);
  }
  const para = [line];
  let j = i + 1;
  while (j < lines.length && lines[j].trim() !== "" && !startsBlock(lines, j)) para.push(lines[j++]);
  const content = inline(para.join("\n"));
  return { node: tight ? h("span", {}, content) : h("p", {}, content), next: j };
}

function blocks(lines, tight = false) {
  const out = [];
  let i = 0;
  while (i < lines.length) {
    if (lines[i].trim() === "") {
      i += 1;
      continue;
    }
    const { node, next } = block(lines, i, tight);
    out.push(node);
    i = next;
  }
  return out;
}

export function renderMarkdown(text) {
  const fragment = document.createDocumentFragment();
  const lines = String(text ?? "").replace(/\r\n?/g, "\n").split("\n");
  for (const node of blocks(lines)) fragment.append(node);
  return fragment;
}
