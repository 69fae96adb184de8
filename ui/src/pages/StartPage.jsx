// Start: the first-run flow, as Teachable Machine's. Name a class for each thing to tell apart, add samples of each
// (files, zips, the webcam or the microphone), press Train, watch it learn, try it live, then export it. It works for
// every task whose card takes pictures or sounds in and gives classes out: the kind comes from the card, never from a
// task's name. The samples are kept on the server (/api/samples) as a folder any training reads; the job is the Train
// page's (/api/jobs), with the task's own defaults.
import { useEffect, useState } from "react";
import { call } from "../api.js";
import Busy from "../Busy.jsx";
import { useStored } from "../route.js";
import ClassCard from "../start/ClassCard.jsx";
import Icon from "../start/Icon.jsx";
import LiveTry from "../start/LiveTry.jsx";
import TrainPanel from "../start/TrainPanel.jsx";
import { KINDS, startTasks } from "../start/samples.js";
import { useClasses } from "../start/useClasses.js";
import { useJob } from "../start/useJob.js";
import "../start.css";

const DATASET_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/; // as the server checks it

export default function StartPage({ info, update, go, open }) {
  const tasks = startTasks(info);
  const [kept, setKept] = useStored("deepworks.start", { task: null, projects: {} });
  const card = tasks.find((t) => t.name === kept.task) || tasks[0];
  if (!card) {
    return <section><h2>Start</h2><p data-testid="start-none">No task of this server takes pictures or sounds and
      gives classes back. The Data page has every task.</p></section>;
  }
  const kind = KINDS[card.inputs[0]];
  const dataset = (kept.projects || {})[card.name] || kind.project;
  const setProject = (d) => setKept((k) => ({ ...k, projects: { ...k.projects, [card.name]: d } }));
  return (
    <section className="start">
      <div className="start-intro">
        <h2>Teach the computer to recognise your own {kind.title.toLowerCase()}</h2>
        <p>Make a class for each thing to tell apart ({kind.example}), add examples of each, press Train, then try it
          live. No setting to choose, nothing to read first. Every setting is one click away on the{" "}
          <button type="button" className="link" onClick={() => go("Data")}>expert pages</button>.</p>
      </div>
      <div className="start-choices">
        {tasks.length > 1 && (
          <KindChooser tasks={tasks} card={card} onChoose={(task) => setKept((k) => ({ ...k, task }))} />
        )}
        <Project dataset={dataset} kind={kind} onChange={setProject} />
      </div>
      <Flow key={`${card.name}/${dataset}`} card={card} kind={kind} dataset={dataset} update={update} go={go}
            open={open} pretrained={info.pretrained || []} />
    </section>
  );
}

// Pictures or sounds: one choice per task the Start page takes, named by what it takes in.
function KindChooser({ tasks, card, onChoose }) {
  return (
    <div className="kind-chooser" role="radiogroup" aria-label="What to recognise">
      {tasks.map((t) => (
        <button type="button" key={t.name} role="radio" aria-checked={t.name === card.name}
                data-testid={`start-kind-${t.inputs[0]}`} className={t.name === card.name ? "chosen" : ""}
                onClick={() => onChoose(t.name)}>
          <Icon name={KINDS[t.inputs[0]].camera ? "camera" : "mic"} /> {KINDS[t.inputs[0]].title}
          <small>{t.words}</small>
        </button>
      ))}
    </div>
  );
}

// The project's name: the dataset the samples are kept in (and the start of its runs' names).
function Project({ dataset, kind, onChange }) {
  const [text, setText] = useState(dataset);
  const [known, setKnown] = useState([]);
  useEffect(() => setText(dataset), [dataset]);
  useEffect(() => { call("/api/samples").then((r) => setKnown(r.datasets), () => {}); }, [dataset]);
  const bad = !DATASET_ID.test(text);
  const commit = () => { if (!bad && text !== dataset) onChange(text); };
  return (
    <div className="project">
      <label htmlFor="start-project">Project</label>
      <input id="start-project" data-testid="start-project" value={text} list="start-projects" maxLength={64}
             aria-invalid={bad} aria-describedby="start-project-help" onChange={(e) => setText(e.target.value.trim())}
             onBlur={commit} onKeyDown={(e) => e.key === "Enter" && commit()} />
      <datalist id="start-projects">
        {known.filter((d) => KINDS[d.kind] === kind).map((d) => <option key={d.dataset} value={d.dataset} />)}
      </datalist>
      <small id="start-project-help" className={bad ? "error" : ""}>
        {bad ? "Use 1 to 64 letters, digits, - or _, starting with a letter or digit."
             : "Another name starts another project; an earlier name opens it again."}
      </small>
    </div>
  );
}

// A numbered step of the flow.
function Step({ n, title, children, testid }) {
  return (
    <section className="step" aria-labelledby={`step-${n}`} data-testid={testid}>
      <h3 id={`step-${n}`}><span className="step-n" aria-hidden="true">{n}</span> {title}</h3>
      {children}
    </section>
  );
}

// The project's classes, its training and its try-out.
function Flow({ card, kind, dataset, update, go, open, pretrained }) {
  const { listing, error, need, classes, ops } = useClasses(card, dataset);
  const [camera, setCamera] = useState(null); // the class whose webcam is open: one at a time
  const tracker = useJob(`deepworks.start.job.${card.name}.${dataset}`);
  const [overError, setOverError] = useState("");
  async function startOver() {
    if (!window.confirm(`Delete the project ${dataset} and all its ${kind.samples}? Trained models stay.`)) return;
    try {
      await ops.startOver();
      tracker.forget();
    } catch (e) {
      setOverError(e.message);
    }
  }
  function expert() { // the same data on the expert pages, every setting in reach
    if (!listing) return go("Data");
    update({ task: card.name, data: listing.data, preview: null, model: card.templates[0]?.model || null,
             layers: null, image_size: null });
    go("Train");
  }
  if (error) return <p className="error" role="alert" data-testid="start-error">{error}</p>;
  // the steps appear together once the project is read: nothing above them moves (no layout shift)
  if (listing === undefined || need === null) return <Busy testid="start-loading">Opening {dataset}…</Busy>;
  const job = tracker.job;
  const run = job && job.state === "finished" && job.run ? job.run.split("/").pop() : null;
  return (
    <>
      <Step n={1} title={`Add ${kind.samples} of each class`} testid="step-classes">
        <ul className="classes">
          {classes.map((c, i) => <ClassCard key={c.name} index={i} cls={c} kind={kind} ops={ops}
                                             camera={camera === c.name} setCamera={setCamera} />)}
        </ul>
        <div className="class-tools">
          <button type="button" data-testid="add-class" onClick={ops.addClass}><Icon name="plus" /> Add a class</button>
          {listing && <button type="button" className="link" data-testid="start-over" onClick={startOver}>
            Start over</button>}
        </div>
        {overError && <p className="error" role="alert">{overError}</p>}
      </Step>
      <Step n={2} title="Train" testid="step-train">
        <TrainPanel card={card} kind={kind} listing={listing} classes={classes} need={need} tracker={tracker}
                    expert={expert} onTrain={() => setCamera(null)} pretrained={pretrained} />
      </Step>
      <Step n={3} title="Try it" testid="step-try">
        {run ? <LiveTry run={run} kind={kind} open={open} order={classes.map((c) => c.name)} /> : (
          <p className="gallery-empty" data-testid="try-waiting">Once it is trained, try it here live on the{" "}
            {kind.camera ? "webcam" : "microphone"}, then export it.</p>
        )}
      </Step>
    </>
  );
}
