// Small SVG charts: grouped bars and lines over the periods of programStats. Colours come
// from app.css classes (series-0, series-1, …); a legend and an aria-label name each series.
import { h } from "./ui.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 640;
const HEIGHT = 220;
const PAD = { top: 12, right: 12, bottom: 28, left: 52 };

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function scale(series) {
  const values = series.flatMap((s) => s.values).filter((v) => v !== null && v !== undefined);
  let low = Math.min(0, ...values);
  let high = Math.max(0, ...values);
  if (high === low) high = low + 1;
  const plot = HEIGHT - PAD.top - PAD.bottom;
  return { low, high, y: (v) => PAD.top + plot - ((v - low) / (high - low)) * plot };
}

const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });

function axes(root, labels, y, low, high) {
  for (const value of [low, (low + high) / 2, high]) {
    root.append(svg("line", { class: "grid", x1: PAD.left, x2: WIDTH - PAD.right, y1: y(value), y2: y(value) }));
    root.append(svg("text", { class: "tick", x: PAD.left - 6, y: y(value) + 4, "text-anchor": "end" }, compact.format(value)));
  }
  const step = Math.max(1, Math.ceil(labels.length / 6));
  const slot = (WIDTH - PAD.left - PAD.right) / Math.max(labels.length, 1);
  labels.forEach((label, i) => {
    if (i % step) return;
    root.append(svg("text", { class: "tick", x: PAD.left + slot * (i + 0.5), y: HEIGHT - 8, "text-anchor": "middle" }, label));
  });
  return slot;
}

function frame(title, series) {
  const summary = series.map((s) => `${s.name}: ${s.values.map((v) => v ?? "none").join(", ")}`).join("; ");
  const root = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": `${title}. ${summary}`, class: "chart" });
  const legend = h("ul", { class: "legend" },
    series.map((s, i) => h("li", {}, h("span", { class: `swatch series-${i}`, "aria-hidden": "true" }), s.name)));
  return { root, figure: h("figure", { class: "chart-card" }, h("figcaption", {}, title), legend) };
}

export function barChart(title, labels, series, format = (v) => Number(v).toLocaleString(undefined, { maximumFractionDigits: 1 })) {
  const { root, figure } = frame(title, series);
  const { low, high, y } = scale(series);
  const slot = axes(root, labels, y, low, high);
  const width = (slot * 0.8) / series.length;
  labels.forEach((label, i) => {
    series.forEach((s, j) => {
      const value = s.values[i] ?? 0;
      const top = Math.min(y(value), y(0));
      const bar = svg("rect", { class: `bar series-${j}`, x: PAD.left + slot * i + slot * 0.1 + width * j,
        y: top, width: Math.max(width, 1), height: Math.max(Math.abs(y(value) - y(0)), 0.5) });
      bar.append(svg("title", {}, `${s.name}, ${label}: ${format(value)}`));
      root.append(bar);
    });
  });
  figure.insertBefore(root, figure.lastChild);
  return figure;
}

export function lineChart(title, labels, series, format = (v) => Number(v).toLocaleString(undefined, { maximumFractionDigits: 1 })) {
  const { root, figure } = frame(title, series);
  const { low, high, y } = scale(series);
  const slot = axes(root, labels, y, low, high);
  series.forEach((s, j) => {
    const points = s.values
      .map((value, i) => (value === null || value === undefined ? null : [PAD.left + slot * (i + 0.5), y(value)]))
      .filter(Boolean);
    if (points.length > 1) {
      root.append(svg("polyline", { class: `line series-${j}`, fill: "none", points: points.map((p) => p.join(",")).join(" ") }));
    }
    points.forEach(([cx, cy]) => root.append(svg("circle", { class: `dot series-${j}`, cx, cy, r: 3 })));
  });
  figure.insertBefore(root, figure.lastChild);
  return figure;
}
