// Several curves over epochs on one uPlot chart (runs side by side).
import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

export default function LineChart({ title, series, testid }) {
  const box = useRef(null);
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  const data = [xs, ...series.map((s) => { const m = new Map(s.points); return xs.map((x) => m.get(x) ?? null); })];
  const key = JSON.stringify([title, series.map((s) => s.label), data]);

  useEffect(() => {
    const opts = {
      width: 640, height: 280, title, scales: { x: { time: false } }, axes: [{ label: "epoch" }, {}],
      series: [{ label: "epoch" }, ...series.map((s, i) => ({ label: s.label, stroke: COLOURS[i % COLOURS.length],
                                                                spanGaps: true, points: { show: true } }))],
    };
    const plot = new uPlot(opts, data, box.current);
    return () => plot.destroy();
  }, [key]);

  return <div data-testid={testid} data-series={series.length} ref={box} />;
}
