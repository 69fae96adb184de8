// The Start page's Train step: what is still missing before training makes sense, a Train button with the task's own
// defaults (epochs and the checks under "Advanced"), then the job live: its progress, its curves and Stop.
import { lazy, Suspense, useEffect, useState } from "react";
import { call, percent } from "../api.js";
import Busy from "../Busy.jsx";
import { useStored } from "../route.js";

// the chart's code (uPlot) loads when a job first draws, not with the page (as the Train page's)
const Curves = lazy(() => import("../Curves.jsx"));

// The few settings offered here, in words; the rest stay the task's defaults (every one is on the Train page).
const ADVANCED = {
  "train.epochs": "Epochs: how many times it goes over your samples (more can learn more, and takes longer)",
  "model.pretrained": "Start from a model that already knows photos (pretrained on ImageNet): better with few pictures",
  "data.audit": "Check the data for problems before training (copies, mix-ups: in the full report)",
  "eval.baseline": "Compare with a simple model (a random forest), to see what the network adds",
};

// What the Start page sets where the task's default is for experts: a network that already knows photos learns a
// few dozen of yours far better than one that starts from nothing (cats and dogs, 60 photos: 68 % of 200 unseen
// photos against 55 %, in the same 12 s on two cores), where its weights are installed.
function startDefaults(kind, pretrained) {
  return kind.pretrained && pretrained.includes(kind.pretrained) ? { "model.pretrained": true } : {};
}

// What is missing before training, in words, or "" when it can start.
export function missing(classes, need, kind) {
  const short = classes.filter((c) => c.count < need);
  if (classes.length < 2) return `Add at least 2 classes with ${need} ${kind.samples} each.`;
  if (short.length) {
    const more = short.map((c) => `${c.name} needs ${need - c.count} more`).join(", ");
    return `Add at least ${need} ${kind.samples} to each class: ${more}.`;
  }
  return "";
}

export default function TrainPanel({ card, kind, listing, classes, need, tracker, expert, onTrain, pretrained }) {
  const [fields, setFields] = useState([]);
  const [values, setValues] = useStored(`deepworks.start.settings.${card.name}`, {});
  const [error, setError] = useState("");
  const [sending, setSending] = useState(false);
  const { job, points } = tracker;
  const defaults = startDefaults(kind, pretrained);
  useEffect(() => {
    const offered = (f) => ADVANCED[f.key] && (f.key !== "model.pretrained" || "model.pretrained" in defaults);
    call(`/api/settings?task=${encodeURIComponent(card.name)}`)
      .then((r) => setFields(r.fields.filter(offered)), (e) => setError(e.message));
  }, [card.name]);

  const running = Boolean(job) && ["starting", "running"].includes(job.state);
  const todo = missing(classes, need, kind);
  async function train() {
    setError("");
    setSending(true);
    const settings = { task: card.name, data: listing.data, ...defaults };
    for (const [k, v] of Object.entries(values)) if (v !== "" && v !== null && v !== undefined) settings[k] = v;
    try {
      const { id } = await call("/api/jobs", { json: { settings } });
      onTrain(); // the webcam a class had open closes: the Try step opens its own
      tracker.start(id);
    } catch (e) {
      setError(e.message);
    } finally {
      setSending(false);
    }
  }
  const total = classes.reduce((n, c) => n + c.count, 0);
  return (
    <div className="train-step">
      <p className={todo ? "needs" : "ready"} data-testid="start-needs" role="status">
        {todo || `Ready: ${total} ${kind.samples} in ${classes.length} classes. More ${kind.samples} teach it better.`}
      </p>
      <div className="train-actions">
        <button type="button" className="primary big" data-testid="start-train" onClick={train}
                disabled={Boolean(todo) || running || sending}>{job && !running ? "Train again" : "Train"}</button>
        <button type="button" className="link" data-testid="start-expert" onClick={expert}>
          Every setting, on the Train page →
        </button>
      </div>
      <details className="advanced">
        <summary>Advanced</summary>
        {fields.map((f) => <Setting key={f.key} field={f} values={{ ...defaults, ...values }} setValues={setValues} />)}
      </details>
      {sending && <Busy testid="start-sending">Checking the settings…</Busy>}
      {error && <p className="error" role="alert" data-testid="start-train-error">{error}</p>}
      {job && <Progress job={job} points={points} kind={kind} />}
    </div>
  );
}

// One advanced setting: a number with the task's default as its placeholder, or a checkbox set as the default is.
function Setting({ field, values, setValues }) {
  const id = `start-${field.key.split(".").pop()}`;
  const set = (v) => setValues((old) => ({ ...old, [field.key]: v }));
  if (field.type === "bool") {
    const on = values[field.key] ?? Boolean(field.default);
    return (
      <label className="setting" title={field.help}>
        <input type="checkbox" data-testid={id} checked={on} onChange={(e) => set(e.target.checked)} />{" "}
        {ADVANCED[field.key]}
      </label>
    );
  }
  return (
    <label className="setting" title={field.help}>
      {ADVANCED[field.key]}{" "}
      <input type="number" min={1} data-testid={id} value={values[field.key] ?? ""}
             placeholder={field.default == null ? "default" : String(field.default)}
             onChange={(e) => set(e.target.value === "" ? "" : Number(e.target.value))} />
    </label>
  );
}

const WORDS = { starting: "Starting…", running: "Training", finished: "Trained", failed: "Failed", stopped: "Stopped" };

// The job live: where it is, a bar, the loss curves, Stop; the outcome when it ends.
function Progress({ job, points, kind }) {
  const p = job.progress;
  const epochs = job.epochs || [];
  const last = epochs[epochs.length - 1];
  const running = job.state === "running" || job.state === "starting";
  const stop = () => call(`/api/jobs/${job.id}/stop`, { method: "POST" });
  return (
    <div className="start-job" data-testid="start-job" data-state={job.state}>
      <p>
        <b data-testid="start-job-state">{WORDS[job.state] || job.state}</b>
        {p && job.state === "running" && (
          <> · epoch {Math.min(p.epoch, p.epochs)} of {p.epochs}
            {p.eta_s != null && <> · about {Math.ceil(p.eta_s)} s left</>}</>
        )}
        {running && last && last.val_accuracy !== undefined && <> · right on {percent(last.val_accuracy)} of the
          {" "}{kind.samples} kept back to check it</>}
      </p>
      {job.state === "starting" && <Busy testid="start-starting">Starting the training process…</Busy>}
      {(p || job.state === "finished") && (
        <progress data-testid="start-progress" max={1} value={job.state === "finished" ? 1 : p.fraction}
                  aria-label="Training progress" />
      )}
      {running && <button type="button" data-testid="start-stop" onClick={stop}>Stop</button>}
      {job.state === "failed" && <pre className="error" role="alert" data-testid="start-job-error">{job.message}</pre>}
      {job.state === "stopped" && <p>{job.message}</p>}
      {(points.length > 0 || epochs.length > 0) && (
        <div className="curves-wrap">
          <Suspense fallback={<Busy testid="start-curves-loading">Drawing the curves…</Busy>}>
            <Curves points={points} epochs={epochs} />
          </Suspense>
        </div>
      )}
      {job.state === "finished" && job.results && job.results.accuracy !== undefined && (
        <Verdict job={job} kind={kind} />
      )}
    </div>
  );
}

// How well it did, in words, with what a newcomer needs to judge it: how many samples that is, what a simple model
// gets, and a plain warning when it is close to guessing or measured on too few samples to say.
function Verdict({ job, kind }) {
  const { accuracy, samples, per_class: perClass = [] } = job.results;
  const classes = perClass.length || 2;
  const chance = 1 / classes;
  const base = job.baseline;
  const run = (job.run || "").split("/").pop();
  let advice = "";
  if (accuracy < chance + (1 - chance) / 3) {
    advice = `That is close to guessing: ${percent(chance)} would be right by chance. Add more ${kind.samples}, and ` +
      "more varied ones (other backgrounds, angles, light), then train again.";
  } else if (samples < 20) {
    advice = `Only ${samples} ${kind.samples} were kept back to test it, so this figure is rough: more ` +
      `${kind.samples} make it surer.`;
  }
  return (
    <div data-testid="start-accuracy">
      <p>Right on <b>{percent(accuracy)}</b> of the {samples} {kind.samples} it never saw in training
        ({Math.round(accuracy * samples)} of {samples}).
        {base && base.accuracy !== undefined && <> A simple model gets {percent(base.accuracy)} of them.</>}{" "}
        <a href={`/api/runs/${encodeURIComponent(run)}/report/index.html`} target="_blank" rel="noreferrer"
           data-testid="start-report">The full report</a></p>
      {advice && <p className="note" data-testid="start-advice">{advice}</p>}
    </div>
  );
}
