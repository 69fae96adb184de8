// The run a page works on: the runs of the runs folder (those of some tasks, with `tasks`), the current one kept
// selected while the list loads.
import { useEffect, useState } from "react";
import { call } from "./api.js";

export default function RunPicker({ run, setRun, testid, label = "Run", tasks, onRuns = () => {}, onError = () => {} }) {
  const [runs, setRuns] = useState([]);
  useEffect(() => {
    call("/api/runs").then((r) => {
      const listed = tasks ? r.runs.filter((x) => tasks.includes(x.task)) : r.runs;
      setRuns(listed);
      onRuns(listed);
    }, (e) => onError(e.message));
  }, []);
  return (
    <label>
      {label}{" "}
      <select data-testid={testid} value={run || ""} onChange={(e) => setRun(e.target.value || null)}>
        <option value="">choose a run</option>
        {runs.map((r) => <option key={r.name} value={r.name} disabled={r.empty}>{r.name}{r.empty ? " (empty: no epoch finished)" : ""}</option>)}
        {run && !tasks && !runs.some((r) => r.name === run) && <option value={run}>{run}</option>}
      </select>
    </label>
  );
}
