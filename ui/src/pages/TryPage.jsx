// Try: the run's own inference face (the /v1 route `deepworks serve` answers): draw or drop an image and see the top
// classes; give a prime or a sentence for text and translation runs.
import { useEffect, useRef, useState } from "react";
import { call, percent } from "../api.js";

export default function TryPage({ run, setRun }) {
  const [runs, setRuns] = useState([]);
  const [card, setCard] = useState(null);
  const [error, setError] = useState("");

  useEffect(() => {
    call("/api/runs").then((r) => setRuns(r.runs), (e) => setError(e.message));
  }, []);
  useEffect(() => {
    setCard(null);
    if (!run) return;
    call(`/api/runs/${encodeURIComponent(run)}/serve`, { method: "POST" }).then(setCard, (e) => setError(e.message));
  }, [run]);

  return (
    <section>
      <h2>Try the model</h2>
      <label>
        Run{" "}
        <select data-testid="try-run" value={run || ""} onChange={(e) => setRun(e.target.value || null)}>
          <option value="">choose a run</option>
          {runs.map((r) => <option key={r.name} value={r.name}>{r.name}</option>)}
          {run && !runs.some((r) => r.name === run) && <option value={run}>{run}</option>}
        </select>
      </label>
      {error && <p className="error" data-testid="try-error">{error}</p>}
      {card && card.task === "image" && <ImageTry card={card} />}
      {card && card.task !== "image" && <TextTry card={card} />}
    </section>
  );
}

function ImageTry({ card }) {
  const canvas = useRef(null);
  const drawing = useRef(false);
  const [answer, setAnswer] = useState(null);
  const [error, setError] = useState("");

  useEffect(() => clear(), []);
  function clear() {
    const ctx = canvas.current.getContext("2d");
    ctx.fillStyle = "black";
    ctx.fillRect(0, 0, 280, 280);
    setAnswer(null);
  }
  function at(e) {
    const box = canvas.current.getBoundingClientRect();
    return [e.clientX - box.left, e.clientY - box.top];
  }
  function draw(e) {
    if (!drawing.current) return;
    const ctx = canvas.current.getContext("2d");
    const [x, y] = at(e);
    const [x0, y0] = drawing.current === true ? [x, y] : drawing.current;
    Object.assign(ctx, { strokeStyle: "white", lineWidth: 26, lineCap: "round", lineJoin: "round" });
    ctx.beginPath();
    ctx.moveTo(x0, y0);
    ctx.lineTo(x, y);
    ctx.stroke();
    drawing.current = [x, y]; // where the next move continues the stroke from
  }
  async function send(blob) {
    const form = new FormData();
    form.append("files", blob, "image.png");
    form.append("top_k", "3");
    try {
      const r = await call(card.route, { method: "POST", body: form });
      setAnswer(r.outputs[0]);
      setError("");
    } catch (e) {
      setError(e.message);
    }
  }
  const predict = () => canvas.current.toBlob(send, "image/png");

  return (
    <div className="try">
      <p>Draw with the mouse (white on black, as the training images are), or drop an image file on the square.</p>
      <canvas ref={canvas} width={280} height={280} data-testid="try-canvas"
              onMouseDown={(e) => { drawing.current = true; draw(e); }} onMouseMove={draw}
              onMouseUp={() => { drawing.current = false; predict(); }} onMouseLeave={() => { drawing.current = false; }}
              onDragOver={(e) => e.preventDefault()}
              onDrop={(e) => { e.preventDefault(); if (e.dataTransfer.files[0]) send(e.dataTransfer.files[0]); }} />
      <div>
        <button data-testid="try-clear" onClick={clear}>Clear</button>{" "}
        <button data-testid="try-predict" onClick={predict}>Predict</button>{" "}
        <input type="file" accept="image/*" data-testid="try-file" onChange={(e) => e.target.files[0] && send(e.target.files[0])} />
      </div>
      {error && <p className="error">{error}</p>}
      {answer && (
        <ol className="predictions" data-testid="try-predictions">
          {answer.predictions.map((p) => (
            <li key={p.class}>
              <b>{p.class}</b> <meter min={0} max={1} value={p.probability} /> {percent(p.probability)}
            </li>
          ))}
        </ol>
      )}
    </div>
  );
}

function TextTry({ card }) {
  const [text, setText] = useState("");
  const [temperature, setTemperature] = useState(0.8);
  const [answer, setAnswer] = useState(null);
  const [error, setError] = useState("");
  async function go() {
    const json = { inputs: card.task === "gan" ? undefined : text };
    if (card.task === "text") Object.assign(json, { temperature, length: 300 });
    if (card.task === "gan") Object.assign(json, { n: 8 });
    try {
      setAnswer((await call(card.route, { json })).outputs);
      setError("");
    } catch (e) {
      setError(e.message);
    }
  }
  return (
    <div className="try">
      {card.task !== "gan" && <textarea data-testid="try-text" rows={3} cols={60} value={text} onChange={(e) => setText(e.target.value)} />}
      {card.task === "text" && (
        <label>temperature {temperature}
          <input type="range" min={0.1} max={2} step={0.1} value={temperature} onChange={(e) => setTemperature(Number(e.target.value))} />
        </label>
      )}
      <button data-testid="try-go" onClick={go}>{card.use}</button>
      {error && <p className="error">{error}</p>}
      {answer && <pre data-testid="try-answer">{JSON.stringify(answer, null, 1)}</pre>}
    </div>
  );
}
