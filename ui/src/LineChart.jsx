// Several curves over epochs on one uPlot chart (runs side by side). uPlot comes with the chart, in a part of the
// script of its own that the pages load when they first show a chart (React.lazy), not with the page's first load.
import { useEffect, useRef, useState } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const WIDTH = 640; // at most: a narrower screen gets a narrower chart

// uPlot draws on a canvas, which the page's colours do not reach: its axes take the theme's text and line colours.
// The colour scheme the page is drawn in (light or dark), followed live: a chart drawn in one is drawn again when the
// system switches, as its canvas does not take the page's colours by itself.
export function useScheme() {
  const query = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;
  const [dark, setDark] = useState(Boolean(query && query.matches));
  useEffect(() => {
    if (!query) return undefined;
    const follow = (e) => setDark(e.matches);
    query.addEventListener("change", follow);
    return () => query.removeEventListener("change", follow);
  }, []);
  return dark ? "dark" : "light";
}

export function themed(axes) {
  const style = getComputedStyle(document.documentElement);
  const text = style.getPropertyValue("--text").trim() || "#1d2330";
  const line = style.getPropertyValue("--line").trim() || "#d9dee7";
  return axes.map((a) => ({ stroke: text, grid: { stroke: line, width: 1 }, ticks: { stroke: line, width: 1 }, ...a }));
}

// A uPlot chart in `box` as wide as the box allows (up to WIDTH), following the box's width as the window changes.
export function makePlot(opts, data, box) {
  const width = () => Math.max(240, Math.min(WIDTH, box.clientWidth || WIDTH));
  const plot = new uPlot({ ...opts, width: width() }, data, box);
  const observer = typeof ResizeObserver === "undefined" ? null
    : new ResizeObserver(() => { if (plot.width !== width()) plot.setSize({ width: width(), height: opts.height }); });
  if (observer) observer.observe(box);
  return { plot, destroy: () => { if (observer) observer.disconnect(); plot.destroy(); } };
}

export default function LineChart({ title, series, testid }) {
  const box = useRef(null);
  const scheme = useScheme();
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  const data = [xs, ...series.map((s) => { const m = new Map(s.points); return xs.map((x) => m.get(x) ?? null); })];
  const key = JSON.stringify([title, series.map((s) => s.label), data]);

  useEffect(() => {
    const opts = {
      height: 280, title, scales: { x: { time: false } }, axes: themed([{ label: "epoch" }, {}]),
      series: [{ label: "epoch" }, ...series.map((s, i) => ({ label: s.label, stroke: COLOURS[i % COLOURS.length],
                                                                spanGaps: true, points: { show: true } }))],
    };
    return makePlot(opts, data, box.current).destroy;
  }, [key, scheme]);

  // the canvas says nothing to a screen reader: the figure's label does, and uPlot's legend (a table) lists the curves
  const label = `${title}: ${series.map((s) => s.label).join(", ")} over ${xs.length} epoch${xs.length === 1 ? "" : "s"}`;
  return <figure className="chart" aria-label={label} data-testid={testid} data-series={series.length}
                 ref={box} style={{ margin: 0 }} />;
}

