// Results: a run's test results (per class, the confusion matrix whose cells show their images), its report, and
// runs side by side with their curves overlaid.
import { lazy, Suspense, useEffect, useState } from "react";
import { call, percent } from "../api.js";
import { newestJob, runOf } from "../jobs.js";

// the chart (uPlot) is a part of the script of its own, asked for as the page opens, beside the runs
const loadChart = () => import("../LineChart.jsx");
const LazyChart = lazy(loadChart);
function LineChart(props) {
  return <Suspense fallback={<div className="chart" aria-hidden="true" />}><LazyChart {...props} /></Suspense>;
}

export default function ResultsPage({ run, setRun, show }) {
  const [runs, setRuns] = useState(null); // null while the list loads
  const [picked, setPicked] = useState([]); // runs to compare
  const [error, setError] = useState("");
  useEffect(() => {
    loadChart();
    call("/api/runs").then((r) => setRuns(r.runs), (e) => { setRuns([]); setError(e.message); });
  }, []);
  const toggle = (name) => setPicked((p) => (p.includes(name) ? p.filter((n) => n !== name) : [...p, name]));

  return (
    <section>
      <h2>Results</h2>
      {error && <p className="error">{error}</p>}
      {runs === null ? <p className="busy"><span className="spinner" aria-hidden="true" /> Loading the runs…</p> : <>
      <table className="runs" data-testid="runs">
        <caption className="sr-only">Runs in the runs folder; tick two or more to compare their curves</caption>
        <thead><tr><th scope="col">compare</th><th scope="col">run</th><th scope="col">task</th><th scope="col">model</th><th scope="col">data</th><th scope="col">epochs</th><th scope="col">test</th><th scope="col">status</th></tr></thead>
        <tbody>
          {runs.map((r) => (
            <tr key={r.name} className={r.name === run ? "chosen" : r.empty ? "empty" : ""} data-testid={`row-${r.name}`}>
              <td><input type="checkbox" data-testid={`compare-${r.name}`} aria-label={`compare ${r.name}`} checked={picked.includes(r.name)} onChange={() => toggle(r.name)} /></td>
              <td><button className="link" data-testid={`open-${r.name}`} onClick={() => setRun(r.name)}>{r.name}</button></td>
              <td>{r.task}</td><td>{r.model}</td><td>{r.data}</td><td>{r.epochs}</td>
              <td>{r.test != null ? `${r.test_metric} ${r.test.toFixed(4)}` : ""}</td><td>{r.empty ? <span title="No epoch finished and no checkpoint was saved: delete its folder, or train again">empty: {r.status}, nothing saved</span> : r.status}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {picked.length > 0 && <Compare names={picked} />}
      {run && <RunResults name={run} show={show} />}
      </>}
    </section>
  );
}

function Compare({ names }) {
  const [metrics, setMetrics] = useState([]);
  useEffect(() => {
    Promise.all(names.map((n) => call(`/api/runs/${encodeURIComponent(n)}/metrics`))).then(setMetrics, () => {});
  }, [names.join(",")]);
  const key = metrics.some((m) => m.epochs.some((e) => e.val_accuracy !== undefined)) ? "val_accuracy" : "val_loss";
  const series = metrics.map((m) => ({ label: m.name, points: m.epochs.filter((e) => e[key] !== undefined).map((e) => [e.epoch, e[key]]) }));
  return <LineChart title={`${key.replace("_", " ")}, runs side by side`} series={series} testid="compare-chart" />;
}

function RunResults({ name, show }) {
  const [m, setM] = useState(null);
  const [cell, setCell] = useState(null);
  const [error, setError] = useState("");
  useEffect(() => {
    setM(null);
    setCell(null);
    call(`/api/runs/${encodeURIComponent(name)}/metrics`).then(setM, (e) => setError(e.message));
  }, [name]);
  async function open(i, j) {
    try {
      setCell(await call(`/api/runs/${encodeURIComponent(name)}/confusion?true=${i}&predicted=${j}`));
    } catch (e) {
      setError(e.message);
    }
  }
  if (error) return <p className="error">{error}</p>;
  if (!m) return <p className="busy"><span className="spinner" aria-hidden="true" /> Loading {name}…</p>;
  const test = m.test || {};
  const classes = (test.per_class || []).map((c) => c.class);
  return (
    <div data-testid="run-results">
      <h3>{name}</h3>
      {test.accuracy !== undefined && <p>Test accuracy <b data-testid="test-accuracy">{percent(test.accuracy)}</b>
        {test.macro_f1 !== undefined && <> · macro F1 {test.macro_f1.toFixed(3)}</>} on {test.samples} images.</p>}
      <LineChart title="validation" testid="run-chart"
                 series={["val_loss", "val_accuracy"].filter((k) => m.epochs.some((e) => e[k] !== undefined))
                   .map((k) => ({ label: k, points: m.epochs.filter((e) => e[k] !== undefined).map((e) => [e.epoch, e[k]]) }))} />
      {test.confusion && (
        <>
          <h4>Confusion matrix (rows: true class, columns: predicted). Click a cell to see its images.</h4>
          <table className="confusion" data-testid="confusion">
            <caption className="sr-only">Confusion matrix: rows are the true classes, columns the predicted ones</caption>
            <thead><tr><td></td>{classes.map((c) => <th key={c} scope="col">{c}</th>)}</tr></thead>
            <tbody>
              {test.confusion.map((row, i) => (
                <tr key={i}>
                  <th scope="row">{classes[i]}</th>
                  {row.map((n, j) => (
                    // a cell with images opens them; its button (inside) makes it reachable by the keyboard
                    <td key={j} data-testid={`cm-${i}-${j}`} className={i === j ? "diagonal" : n ? "wrong" : ""}
                        onClick={() => n && open(i, j)}>
                      {n ? <button type="button" aria-label={`${n} ${classes[i]} predicted ${classes[j]}: show them`}>{n}</button> : ""}
                    </td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
          {cell && (
            <div data-testid="cm-images">
              <p>{cell.count} test image{cell.count === 1 ? "" : "s"} of <b>{cell.true}</b> predicted <b>{cell.predicted}</b>
                {cell.count > cell.images.length && <> (the first {cell.images.length})</>}:</p>
              {cell.images.map((src, k) => <img key={k} src={src} alt={`${cell.true} as ${cell.predicted}`} width={56} height={56} />)}
            </div>
          )}
          <h4>Per class</h4>
          <table className="per-class" data-testid="per-class">
            <thead><tr><th scope="col">class</th><th scope="col">precision</th><th scope="col">recall</th><th scope="col">F1</th><th scope="col">images</th></tr></thead>
            <tbody>
              {test.per_class.map((c) => (
                <tr key={c.class}><td>{c.class}</td><td>{c.precision.toFixed(3)}</td><td>{c.recall.toFixed(3)}</td>
                  <td>{c.f1.toFixed(3)}</td><td>{c.support}</td></tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      <JobLink name={name} show={show} />
      {m.report && (
        <p><a data-testid="report-link" href={`/api/runs/${encodeURIComponent(name)}/report/index.html`} target="_blank" rel="noreferrer">
          The run's full report</a> (curves, samples, what the model gets wrong).</p>
      )}
    </div>
  );
}

// The panel of the job that trained the run in this UI (its curves as they came, its end, Resume), if one did.
function JobLink({ name, show }) {
  const [id, setId] = useState(null);
  useEffect(() => { newestJob((j) => !j.automl && runOf(j) === name, name).then(setId, () => setId(null)); }, [name]);
  return id && (
    <p><button type="button" className="link" data-testid="run-job" onClick={() => show({ job: id })}>
      The job that trained it</button> (its live curves, how it ended, Resume).</p>
  );
}
