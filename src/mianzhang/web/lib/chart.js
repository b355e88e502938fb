// A small inline-SVG bar chart (no library): one bar per value, newest on the right, with the
// maximum on the y axis. The SVG is an image for assistive technology, described by `label`.

const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}) {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  return node;
}

export function percentile(values, p) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

// values: numbers (ms); returns a <div> holding the scale and an <svg> stretched to its box.
export function barChart(values, { label = "", width = 600, height = 120, max = 160, unit = "ms" } = {}) {
  const shown = values.slice(-max);
  const top = Math.max(1, ...shown);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label, class: "chart", preserveAspectRatio: "none" });
  const title = svg("title");
  title.textContent = label;
  chart.append(title);
  const left = 0;
  const plotH = height - 14;
  const bar = shown.length ? (width - left) / Math.max(shown.length, 40) : 0;
  shown.forEach((value, i) => {
    const h = Math.max(1, (value / top) * plotH);
    chart.append(svg("rect", { x: left + i * bar, y: plotH - h + 12, width: Math.max(1, bar - 1), height: h, class: "bar" }));
  });
  chart.append(svg("line", { x1: 0, x2: width, y1: height - 1, y2: height - 1, class: "base" }));
  // the scale as HTML text: the SVG stretches to its box, text inside it would too
  const box = document.createElement("div");
  box.className = "chart-wrap";
  const axis = document.createElement("span");
  axis.className = "axis";
  axis.setAttribute("aria-hidden", "true");
  axis.textContent = `max ${Math.round(top)} ${unit}`;
  box.append(axis, chart);
  return box;
}
