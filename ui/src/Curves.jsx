// Live curves: the running training loss within epochs, and each epoch's validation loss (uPlot, bundled, loaded
// with the chart: see LineChart.jsx).
import { useEffect, useRef } from "react";
import { makePlot, themed, useScheme } from "./LineChart.jsx";

// `points`: the running loss as the job sent it; a job shown again after a reload has none, and its training line
// is then each epoch's training loss.
export default function Curves({ points, epochs }) {
  const box = useRef(null);
  const plot = useRef(null);
  const scheme = useScheme();
  if (!points.length) points = epochs.filter((e) => e.train_loss !== undefined).map((e) => [e.epoch, e.train_loss]);
  const val = epochs.filter((e) => e.val_loss !== undefined).map((e) => [e.epoch, e.val_loss]);
  const xs = [...new Set([...points.map((p) => p[0]), ...val.map((v) => v[0])])].sort((a, b) => a - b);
  const train = new Map(points.map((p) => [p[0], p[1]]));
  const valid = new Map(val);
  const data = [xs, xs.map((x) => train.get(x) ?? null), xs.map((x) => valid.get(x) ?? null)];

  useEffect(() => {
    const opts = {
      height: 260, title: "loss (lower is better)", legend: { live: false }, // names, not "--" until hovered
      scales: { x: { time: false } },
      axes: themed([{ label: "epoch" }, {}]),
      series: [{ label: "epoch" }, { label: "training (running)", stroke: "#1f77b4", spanGaps: true },
               { label: "validation", stroke: "#d62728", spanGaps: true, points: { show: true, size: 7 } }],
    };
    const made = makePlot(opts, data, box.current);
    plot.current = made.plot;
    return made.destroy;
  }, [scheme]);

  useEffect(() => {
    if (plot.current) plot.current.setData(data);
  }, [JSON.stringify(data)]);

  return <figure className="chart curves" data-testid="curves" data-points={xs.length} ref={box}
                 aria-label={`Loss: training (running) and validation, ${val.length} epoch${val.length === 1 ? "" : "s"} validated`}
                 style={{ margin: 0 }} />;
}
