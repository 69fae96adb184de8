// Trust: attack a test image with an epsilon slider, see what the model looks at (saliency) and what each class
// looks like to it, and audit the data it learned from. Each figure is made by the same tools as the CLI's.
import { useState } from "react";
import { call, percent } from "../api.js";
import RunPicker from "../RunPicker.jsx";
import Audit from "../Audit.jsx";
import { trustedTasks } from "../cards.js";

export default function TrustPage({ info, run, setRun }) {
  const [runs, setRuns] = useState([]);
  const [index, setIndex] = useState(0);
  const [eps, setEps] = useState(0.1);
  const [method, setMethod] = useState("fgsm");
  const [answer, setAnswer] = useState(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const picked = runs.find((r) => r.name === run);

  async function use(tool, extra = {}) {
    setBusy(true);
    setError("");
    try {
      setAnswer(await call(`/api/runs/${encodeURIComponent(run)}/trust`, { json: { tool, index, ...extra } }));
    } catch (e) {
      setError(e.message);
    } finally {
      setBusy(false);
    }
  }
  return (
    <section>
      <h2>Trust</h2>
      <RunPicker run={run} setRun={setRun} testid="trust-run" label="Image run" tasks={trustedTasks(info)} onRuns={setRuns}
                 onError={setError} />{" "}
      <label>test image <input data-testid="trust-index" type="number" min={0} value={index} style={{ width: "5em" }}
                               onChange={(e) => setIndex(Number(e.target.value))} /></label>
      {run && (
        <div className="trust">
          <fieldset>
            <legend>Attack</legend>
            <label>method{" "}
              <select data-testid="attack-method" value={method} onChange={(e) => setMethod(e.target.value)}>
                <option value="fgsm">FGSM (one step)</option><option value="pgd">PGD (10 steps)</option>
              </select>
            </label>{" "}
            <label>epsilon {eps.toFixed(2)}{" "}
              <input data-testid="attack-eps" type="range" min={0} max={0.3} step={0.01} value={eps}
                     onChange={(e) => setEps(Number(e.target.value))}
                     onMouseUp={() => use("attack", { eps, method })} onKeyUp={() => use("attack", { eps, method })} />
            </label>{" "}
            <button data-testid="attack-go" disabled={busy} onClick={() => use("attack", { eps, method })}>Attack</button>
          </fieldset>
          <button data-testid="explain-go" disabled={busy} onClick={() => use("explain")}>Saliency: what it looks at</button>{" "}
          <button data-testid="visualize-go" disabled={busy} onClick={() => use("visualize")}>What each class looks like to it</button>
          {picked && <Audit data={picked.data} />}
        </div>
      )}
      {busy && <p className="busy" role="status"><span className="spinner" aria-hidden="true" /> Working…</p>}
      {error && <p className="error" data-testid="trust-error" role="alert">{error}</p>}
      {answer && <TrustAnswer answer={answer} />}
    </section>
  );
}

const ALT = { attack: "the test image, the attack's change to it and the attacked image, with accuracy against epsilon",
              explain: "the test image and its saliency map: red where the pixels pushed the prediction",
              visualize: "what each class looks like to the model: an image per class that it scores highest" };

function TrustAnswer({ answer }) {
  const r = answer.result;
  return (
    <div data-testid="trust-answer">
      {answer.tool === "attack" && (
        <p data-testid="attack-summary">{r.method.toUpperCase()} at epsilon {r.eps}: accuracy on {r.samples} test images
          falls from {percent(r.clean_accuracy)} to <b>{percent(r.adversarial_accuracy)}</b>.</p>
      )}
      {answer.tool === "explain" && <p>The model says <b>{r.predicted}</b> ({percent(r.probability)}); red areas pushed it there.</p>}
      {answer.images.map((src, i) => <img key={i} src={src} alt={ALT[answer.tool] || answer.tool} className="figure" />)}
    </div>
  );
}
