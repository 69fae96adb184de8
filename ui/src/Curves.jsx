// Live curves: the running training loss within epochs, and each epoch's validation loss (uPlot, bundled).
import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export default function Curves({ points, epochs }) {
  const box = useRef(null);
  const plot = useRef(null);
  const val = epochs.filter((e) => e.val_loss !== undefined).map((e) => [e.epoch, e.val_loss]);
  const xs = [...new Set([...points.map((p) => p[0]), ...val.map((v) => v[0])])].sort((a, b) => a - b);
  const train = new Map(points.map((p) => [p[0], p[1]]));
  const valid = new Map(val);
  const data = [xs, xs.map((x) => train.get(x) ?? null), xs.map((x) => valid.get(x) ?? null)];

  useEffect(() => {
    const opts = {
      width: 640, height: 260, title: "loss",
      scales: { x: { time: false } },
      axes: [{ label: "epoch" }, {}],
      series: [{ label: "epoch" }, { label: "training (running)", stroke: "#1f77b4", spanGaps: true },
               { label: "validation", stroke: "#d62728", spanGaps: true, points: { show: true, size: 7 } }],
    };
    plot.current = new uPlot(opts, data, box.current);
    return () => plot.current.destroy();
  }, []);

  useEffect(() => {
    if (plot.current) plot.current.setData(data);
  }, [JSON.stringify(data)]);

  return <div className="curves" data-testid="curves" data-points={xs.length} ref={box} />;
}
