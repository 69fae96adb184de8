// Train: the settings form (from the config's own fields and help), then a worker process with live progress over
// Server-Sent Events, curves, Stop and Resume; a failed run shows the server's message.
import { lazy, Suspense, useEffect, useState } from "react";
import { call, percent } from "../api.js";
import { cardOf } from "../cards.js";
import { useStored } from "../route.js";
import { newestJob, searchOf } from "../jobs.js";
import JobList from "../JobList.jsx";
import { useJob } from "../start/useJob.js";

// the live curves (uPlot) are a part of the script of their own, asked for when a job is shown
const loadCurves = () => import("../Curves.jsx");
const LazyCurves = lazy(loadCurves);
function Curves(props) {
  return <Suspense fallback={<div className="chart curves" aria-hidden="true" />}><LazyCurves {...props} /></Suspense>;
}

export default function TrainPage({ info, choice, update, setRun, go, shown, show }) {
  const [fields, setFields] = useState(null); // null while the form's fields load
  // only what the user set (the rest are the command line's defaults), kept per task across pages and reloads
  const [values, setValues] = useStored(`deepworks.settings.${choice.task}`, {});
  const [error, setError] = useState("");
  const [budget, setBudget] = useStored("deepworks.budget", "5m");
  // the job shown (the last one started, shown again after a page change), its status and running loss
  const { job, points, start: follow, openUnlessAsked } = useJob("deepworks.job", (status) => {
    if (status.state === "finished" && status.run) setRun(status.run.split("/").pop());
  });

  useEffect(() => {
    call(`/api/settings?task=${choice.task}`).then((r) => setFields(r.fields.filter((f) => f.key !== "model.name")),
                                                   (e) => { setFields([]); setError(e.message); });
  }, [choice.task]);

  useEffect(() => { // the job or the search the address names (/jobs/ID, /automl/NAME), unless it is the one shown
    if (!shown.job && !shown.search) return;
    loadCurves();
    const id = shown.job ? Promise.resolve(shown.job) : newestJob((j) => searchOf(j) === shown.search, shown.search);
    // a job asked for before, whose answer may still come, is never shown over this one (useJob's `latest`)
    id.then(openUnlessAsked).catch((e) => setError(e.message));
  }, [shown.job, shown.search]);

  // a job the page started: followed, and its address shown (a search's by its name, so a resumed one keeps it)
  function started({ id, search: name }, from = null) {
    loadCurves();
    follow(id, from);
    show((name || from?.automl) ? { search: name || searchOf(from) } : { job: id });
  }
  const asked = (work) => async () => {
    setError("");
    try {
      await work();
    } catch (e) {
      setError(e.message);
    }
  };

  const start = asked(async () => {
    const settings = { task: choice.task, data: choice.data || null, model: choice.model };
    if (choice.model === "layers") settings["model.layers"] = choice.layers;
    for (const [k, v] of Object.entries(values)) if (v !== "" && v !== undefined) settings[k] = v;
    if (choice.image_size != null) settings["data.image_size"] = choice.image_size; // the Model page's, shared
    started(await call("/api/jobs", { json: { settings } }));
  });
  const search = asked(async () => {
    const settings = { task: choice.task, data: choice.data || null };
    for (const [k, v] of Object.entries(values)) if (v !== "" && v !== undefined && k !== "train.epochs") settings[k] = v;
    if (choice.image_size != null) settings["data.image_size"] = choice.image_size;
    started(await call("/api/automl", { json: { settings, budget } }));
  });
  const trainBest = asked(async () => started(await call("/api/jobs", { json: { settings: job.best_settings } })));
  const stop = () => call(`/api/jobs/${job.id}/stop`, { method: "POST" });
  const resume = asked(async () => started(await call(`/api/jobs/${job.id}/resume`, { method: "POST" }), job));

  // --image-size is the one the Model page shows and the designer checks at: the form reads and sets it there
  const shared = { ...values, "data.image_size": choice.image_size ?? "" };
  function setShared(change) {
    const next = change(shared);
    const size = next["data.image_size"];
    if (size !== shared["data.image_size"]) update({ image_size: size === "" ? null : size });
    setValues(() => { const { "data.image_size": _, ...rest } = next; return rest; });
  }
  const running = job && (job.state === "starting" || job.state === "running");
  const main = (fields || []).filter((f) => f.main);
  const more = (fields || []).filter((f) => !f.main);
  return (
    <section>
      <h2>Train</h2>
      <p>
        {choice.model} on {choice.data || "the default data"} ({choice.task}).{" "}
        {choice.model === "layers" && !(choice.layers || []).length && <span className="error">Design the model first (Model page).</span>}
      </p>
      {fields === null && <p className="busy"><span className="spinner" aria-hidden="true" /> Loading the settings…</p>}
      {fields !== null && <>
      <form className="settings" aria-label="Training settings" onSubmit={(e) => { e.preventDefault(); start(); }}>
        {main.map((f) => <Field key={f.key} field={f} values={shared} setValues={setShared} />)}
        <details>
          <summary>More settings</summary>
          {more.map((f) => <Field key={f.key} field={f} values={shared} setValues={setShared} />)}
        </details>
        <button data-testid="train-start" disabled={running}>Train</button>
      </form>
      {cardOf(info, choice.task).automl && (
        <p className="automl">
          <label htmlFor="automl-budget">Or let the machine choose the model and its settings (AutoML, Optuna's TPE
            with pruning) within</label>{" "}
          <input id="automl-budget" data-testid="automl-budget" value={budget} size={5} aria-describedby="automl-units"
                 onChange={(e) => setBudget(e.target.value)} />{" "}
          <span id="automl-units">(30s, 5m, 1h)</span>: <button data-testid="automl-start" disabled={running} onClick={search}>Search</button>
        </p>
      )}
      </>}
      {error && <p className="error" data-testid="train-error">{error}</p>}
      {job && <JobView job={job} points={points} stop={stop} resume={resume} go={go} trainBest={trainBest} />}
      <JobList current={job} show={show} />
    </section>
  );
}

function Field({ field, values, setValues }) {
  const id = `setting-${field.key}`;
  const value = values[field.key] ?? "";
  const set = (v) => setValues((old) => ({ ...old, [field.key]: v }));
  let input;
  if (field.choices && field.choices.length) {
    input = (
      <select id={id} aria-describedby={`${id}-help`} data-testid={id} value={value} onChange={(e) => set(e.target.value)}>
        <option value="">default</option>
        {field.choices.filter((c) => c !== null).map((c) => <option key={String(c)} value={c}>{String(c)}</option>)}
      </select>
    );
  } else if (field.type === "bool") {
    input = (
      <select id={id} aria-describedby={`${id}-help`} data-testid={id} value={value === "" ? "" : String(value)}
              onChange={(e) => set(e.target.value === "" ? "" : e.target.value === "true")}>
        <option value="">{field.default == null ? "default" : `default (${field.default ? "yes" : "no"})`}</option>
        <option value="true">yes</option><option value="false">no</option>
      </select>
    );
  } else {
    const numeric = field.type === "int" || field.type === "float";
    input = (
      <input id={id} aria-describedby={`${id}-help`} data-testid={id} type={numeric ? "number" : "text"} step={field.type === "float" ? "any" : 1} value={value}
             placeholder={field.default === null ? "default" : String(field.default)}
             onChange={(e) => set(e.target.value === "" ? "" : numeric ? Number(e.target.value) : e.target.value)} />
    );
  }
  // the flag names the control, its help describes it (a screen reader says both, the name first)
  return (
    <div className="field" title={field.help}>
      <label className="flag" htmlFor={id}>{field.flag}</label> {input}
      <small id={`${id}-help`}>{field.help}</small>
    </div>
  );
}

function Leaderboard({ rows }) {
  return (
    <table className="runs" data-testid="leaderboard">
      <thead><tr><th>trial</th><th>state</th><th>score</th><th>epochs</th><th>s</th><th>settings</th></tr></thead>
      <tbody>
        {rows.map((r) => (
          <tr key={r.trial}>
            <td>{r.trial}</td><td>{r.state}</td><td>{r.value != null ? r.value.toFixed(4) : ""}</td><td>{r.epochs ?? ""}</td>
            <td>{r.seconds != null ? Math.round(r.seconds) : ""}</td>
            <td><small>{Object.entries(r.params).map(([k, v]) => `${k.split(".").pop()} ${typeof v === "number" && !Number.isInteger(v) ? v.toPrecision(2) : v}`).join(", ")}{r.note && ` (${r.note})`}</small></td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function JobView({ job, points, stop, resume, go, trainBest }) {
  const p = job.progress;
  const epochs = job.epochs || [];
  const last = epochs[epochs.length - 1];
  return (
    <div className="job" data-testid="job">
      <p>
        Job <span data-testid="job-id">{job.id}</span>: <b data-testid="job-state">{job.state}</b>
        {p && job.state === "running" && (
          <> · epoch {p.epoch}/{p.epochs}, step {p.step}/{p.steps}{p.eta_s != null && <> · about {Math.round(p.eta_s)} s left</>}</>
        )}
      </p>
      {p && <progress data-testid="job-progress" aria-label="progress of the job" max={1} value={job.state === "finished" ? 1 : p.fraction} />}
      {(job.state === "starting" || job.state === "running") && <button data-testid="train-stop" onClick={stop}>Stop</button>}
      {job.state === "stopped" && <button data-testid="train-resume" onClick={resume}>Resume</button>}
      {job.state === "failed" && <pre className="error" data-testid="job-error">{job.message}</pre>}
      {job.state === "stopped" && <p data-testid="job-message">{job.message}</p>}
      {job.automl ? <Leaderboard rows={job.leaderboard || []} /> : <Curves points={points} epochs={epochs} />}
      {job.automl && job.best_settings && job.state !== "running" && (
        <button className="next" data-testid="automl-train-best" onClick={trainBest}>Train the best settings</button>
      )}
      {last && (
        <p data-testid="job-epochs">
          {epochs.length} epoch{epochs.length > 1 ? "s" : ""} done
          {last.val_accuracy !== undefined && <> · validation accuracy {percent(last.val_accuracy)}</>}
          {last.val_loss !== undefined && <> · validation loss {last.val_loss.toFixed(4)}</>}
        </p>
      )}
      {job.state === "finished" && !job.automl && (
        <p data-testid="job-finished">
          Finished{job.results && job.results.accuracy !== undefined && <>: test accuracy <b>{percent(job.results.accuracy)}</b></>}.
          Run folder: <code>{job.run}</code>{" "}
          <button className="next" data-testid="to-try" onClick={() => go("Try")}>Try it →</button>
        </p>
      )}
    </div>
  );
}
