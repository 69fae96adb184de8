// Try: the run's own inference face (the /v1 route `deepworks serve` answers): draw or drop an image and see the top
// classes; give a prime or a sentence for text and translation runs. The view is the one for what the run's task
// takes and gives back, as its card declares them: no view names a task.
import { useEffect, useRef, useState } from "react";
import { call, percent } from "../api.js";
import { cardOf } from "../cards.js";
import RunPicker from "../RunPicker.jsx";
import FacesTry from "./FacesTry.jsx";
import { recordMicrophone, wavFile } from "../media.js";

export default function TryPage({ info, run, setRun }) {
  const [card, setCard] = useState(null);
  const [error, setError] = useState("");

  useEffect(() => {
    setCard(null);
    if (!run) return;
    call(`/api/runs/${encodeURIComponent(run)}/serve`, { method: "POST" }).then(setCard, (e) => setError(e.message));
  }, [run]);

  const View = card && viewOf(cardOf(info, card.task));
  return (
    <section>
      <h2>Try the model</h2>
      <RunPicker run={run} setRun={setRun} testid="try-run" onError={setError} />
      {error && <p className="error" data-testid="try-error">{error}</p>}
      {run && !card && !error && <Busy testid="try-loading">Loading {run}…</Busy>}
      {View && <View card={card} />}
    </section>
  );
}

// The view of a use, by what it takes (the task card's inputs[0]) and what it gives back (its outputs[0]); a text
// box and a button for anything else.
function viewOf(task) {
  const VIEWS = {
    image: { classes: ImageTry, boxes: DetectTry, mask: SegmentTry, image: RestoreTry, people: FacesTry },
    audio: { classes: AudioTry, text: AudioTry },
    text: { text: TextTry, classes: TextClassesTry },
    noise: { image: SampleTry },
  };
  return (VIEWS[task.inputs[0]] || {})[task.outputs[0]] || TextTry;
}

// A spinner and what is being waited for (role=status: a screen reader says it).
function Busy({ children, testid }) {
  return <p className="busy" role="status" data-testid={testid}><span className="spinner" aria-hidden="true" /> {children}</p>;
}

// One file to the run's /v1 route as a form upload, with the use's options as fields: its one answer.
async function postFile(route, file, name, fields) {
  const form = new FormData();
  form.append("files", file, name);
  for (const [k, v] of Object.entries(fields)) form.append(k, String(v));
  return (await call(route, { method: "POST", body: form })).outputs[0];
}

// A classifier's answer: its top classes, each with a bar and its probability.
function Predictions({ answer }) {
  return (
    <ol className="predictions" data-testid="try-predictions">
      {answer.predictions.map((p) => (
        <li key={p.class}>
          <b>{p.class}</b> <meter min={0} max={1} value={p.probability} /> {percent(p.probability)}
        </li>
      ))}
    </ol>
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
  const [busy, setBusy] = useState(false);
  async function send(blob) {
    setBusy(true);
    try {
      setAnswer(await postFile(card.route, blob, "image.png", { top_k: 3 }));
      setError("");
    } catch (e) {
      setError(e.message);
    } finally {
      setBusy(false);
    }
  }
  function sendFile(file) { // shown on the square as the model gets it, so the answer is seen beside its picture
    const picture = new Image();
    picture.onload = () => {
      const ctx = canvas.current.getContext("2d");
      const scale = Math.min(280 / picture.width, 280 / picture.height);
      const [w, h] = [picture.width * scale, picture.height * scale];
      ctx.fillStyle = "black";
      ctx.fillRect(0, 0, 280, 280);
      ctx.drawImage(picture, (280 - w) / 2, (280 - h) / 2, w, h);
      URL.revokeObjectURL(picture.src);
    };
    picture.src = URL.createObjectURL(file);
    send(file);
  }
  const predict = () => canvas.current.toBlob(send, "image/png");

  return (
    <div className="try">
      <p>Draw with the mouse (white on black, as the training images are), or drop an image file on the square.</p>
      <canvas ref={canvas} width={280} height={280} data-testid="try-canvas"
              onMouseDown={(e) => { drawing.current = true; draw(e); }} onMouseMove={draw}
              onMouseUp={() => { drawing.current = false; predict(); }} onMouseLeave={() => { drawing.current = false; }}
              onDragOver={(e) => e.preventDefault()}
              onDrop={(e) => { e.preventDefault(); if (e.dataTransfer.files[0]) sendFile(e.dataTransfer.files[0]); }} />
      <div>
        <button data-testid="try-clear" onClick={clear}>Clear</button>{" "}
        <button data-testid="try-predict" onClick={predict}>Predict</button>{" "}
        <label>or a picture: <input type="file" accept="image/*" data-testid="try-file"
                                     onChange={(e) => e.target.files[0] && sendFile(e.target.files[0])} /></label>
      </div>
      {busy && <Busy testid="try-busy">Asking the model…</Busy>}
      {error && <p className="error">{error}</p>}
      {answer && <Predictions answer={answer} />}
    </div>
  );
}

// Audio: choose a recording (WAV; FLAC or OGG where the server has soundfile), hear it, and see the top classes.
// A recording, chosen or from the microphone: a sound classifier names what it hears, a recogniser writes it down.
function AudioTry({ card }) {
  const [clip, setClip] = useState(null);
  const [shown, setShown] = useState({ answer: null, partial: false });
  const [error, setError] = useState("");
  const input = card.inputs[0];
  // a classifier hears clips of one length (at least 1 s of it is recorded); a recogniser any: up to LISTEN_S are
  // recorded, what it heard so far shown every PART_S, until Stop
  const classifier = Boolean(input.shape[1]);
  const seconds = classifier ? Math.max(1, input.shape[1] / input.sample_rate) : LISTEN_S;
  const fields = "top_k" in (card.options || {}) ? { top_k: 3 } : {};
  const listening = useListening(classifier ? 0 : PART_S);
  async function send(file, take = listening.newTake()) {
    setClip(URL.createObjectURL(file));
    try {
      const answer = await postFile(card.route, file, file.name || "clip.wav", fields);
      if (listening.isCurrent(take)) setShown({ answer, partial: false });
      setError("");
    } catch (e) {
      if (listening.isCurrent(take)) { setShown({ answer: null, partial: false }); setError(e.message); }
    }
  }
  async function sendPart(file, take) {
    try {
      const answer = await postFile(card.route, file, "microphone.wav", fields);
      if (listening.isCurrent(take, true)) setShown({ answer, partial: true });
    } catch (e) { /* a part that fails is skipped: the whole recording is sent at the end */ }
  }
  async function record() {
    setError("");
    try {
      send(await listening.record(seconds, sendPart), listening.take());
    } catch (e) {
      setError(`The microphone could not be used (${e.message}). Allow this page to use it, or choose a file.`);
    }
  }
  const { answer, partial } = shown;
  return (
    <div className="try">
      <p>Choose a recording, or record {classifier ? `${seconds.toFixed(1)} s` : `up to ${seconds} s`} from your
        microphone: the model {fields.top_k ? "names" : "writes down"} what it hears
        {classifier ? "." : ", as you speak."}</p>
      <input type="file" accept="audio/*,.wav,.flac,.ogg" data-testid="audio-file"
             onChange={(e) => e.target.files[0] && send(e.target.files[0])} />{" "}
      <button onClick={record} disabled={listening.recording} data-testid="audio-record">
        {listening.recording ? "Recording…" : "Record"}
      </button>
      {listening.recording && !classifier && <button onClick={listening.stop} data-testid="audio-stop">Stop</button>}
      {clip && <div><audio controls src={clip} data-testid="audio-player" /></div>}
      {error && <p className="error" data-testid="audio-error">{error}</p>}
      {answer && (answer.predictions ? <Predictions answer={answer} /> : <Transcript answer={answer} partial={partial} />)}
    </div>
  );
}

// The microphone for AudioTry: `record(seconds, sendPart)` records and gives the WAV File; every `every` seconds
// (0: never) it hands what it has so far to `sendPart(file, take)`, one part in flight at a time (a slow server skips
// parts, never queues them). Each recording or chosen file is a new take: an answer is shown only while its take is
// the latest (a part's only while still listening), so no late answer overwrites a newer one. Leaving the page stops.
function useListening(every) {
  const [recording, setRecording] = useState(false);
  const state = useRef({ take: 0, listening: false, busy: false, stop: { current: false } }).current;
  useEffect(() => () => { state.stop.current = true; state.take += 1; }, []);
  async function record(seconds, sendPart) {
    const take = (state.take += 1);
    state.stop.current = false;
    state.listening = true;
    setRecording(true);
    const onPart = (samples, rate) => {
      if (state.busy) return;
      state.busy = true;
      sendPart(new File([wavFile(samples, rate)], "microphone.wav", { type: "audio/wav" }), take)
        .finally(() => { state.busy = false; });
    };
    try {
      const { samples, rate } = await recordMicrophone(seconds, every ? { every, onPart, stop: state.stop } : {});
      return new File([wavFile(samples, rate)], "microphone.wav", { type: "audio/wav" });
    } finally {
      state.listening = false;
      setRecording(false);
    }
  }
  return {
    recording, record,
    stop: () => { state.stop.current = true; },
    take: () => state.take,
    newTake: () => (state.take += 1),
    isCurrent: (take, part = false) => take === state.take && (!part || state.listening),
  };
}

const LISTEN_S = 30; // seconds a recogniser listens at most
const PART_S = 1.5; // seconds between two looks at what it heard so far

// A recogniser's answer: the transcript, each word with the time it was heard (hover); while it listens, what it heard
// so far (greyed).
function Transcript({ answer, partial = false }) {
  const kind = partial ? "transcript partial" : "transcript";
  if (!answer.words.length) return <p className={kind} data-testid="try-transcript"><i>(nothing heard)</i></p>;
  return (
    <p className={kind} data-testid="try-transcript" title={partial ? "so far: still listening" : undefined}>
      {answer.words.map((w, i) => (
        <span key={i} title={`${w.start.toFixed(2)}–${w.end.toFixed(2)} s`}>{w.word} </span>
      ))}
    </p>
  );
}

// Detection: drop or choose a photo; the boxes the route returns are drawn over it, those under the threshold hidden.
function DetectTry({ card }) {
  const [photo, setPhoto] = useState(null); // { url, width, height }
  const [answer, setAnswer] = useState(null);
  // the run's own threshold (the best F1 on its validation split; 0.3 for older runs), as `deepworks detect` uses
  const [threshold, setThreshold] = useState(card.options.threshold.default);
  const [error, setError] = useState("");
  async function send(file) {
    try {
      // everything above 0.01 once; the slider filters without asking again
      const out = await postFile(card.route, file, file.name || "photo.png", { threshold: 0.01 });
      setPhoto({ url: URL.createObjectURL(file), width: out.width, height: out.height });
      setAnswer(out);
      setError("");
    } catch (e) {
      setError(e.message);
    }
  }
  const shown = answer ? answer.boxes.filter((b) => b.score >= threshold) : [];
  // big photos shrink to 560 px, small ones grow to 320 px: the boxes scale with them
  const longest = photo ? Math.max(photo.width, photo.height) : 1;
  const scale = Math.min(560, Math.max(320, longest)) / longest;
  return (
    <div className="try">
      <p>Choose or drop a photo: the model draws a box around each object it finds.</p>
      <input type="file" accept="image/*" data-testid="detect-file" onChange={(e) => e.target.files[0] && send(e.target.files[0])} />{" "}
      <label>score at least {threshold.toFixed(2)}{" "}
        <input type="range" data-testid="detect-threshold" min={0.01} max={0.99} step={0.01} value={threshold}
               onChange={(e) => setThreshold(Number(e.target.value))} />
      </label>
      {error && <p className="error">{error}</p>}
      <div className="detect-view" data-testid="detect-view" onDragOver={(e) => e.preventDefault()}
           onDrop={(e) => { e.preventDefault(); if (e.dataTransfer.files[0]) send(e.dataTransfer.files[0]); }}
           style={photo ? { width: photo.width * scale, height: photo.height * scale } : { width: 320, height: 200 }}>
        {photo ? <img src={photo.url} alt="your photo" width={photo.width * scale} height={photo.height * scale} />
               : <span>drop a photo here</span>}
        {shown.map((b, i) => {
          const [x1, y1, x2, y2] = b.box.map((v) => v * scale);
          return (
            <div key={i} className="box" data-testid="detect-box" style={{ left: x1, top: y1, width: x2 - x1, height: y2 - y1 }}>
              <span>{b.class} {b.score.toFixed(2)}</span>
            </div>
          );
        })}
      </div>
      {answer && <p data-testid="detect-count">{shown.length} object{shown.length === 1 ? "" : "s"} found.</p>}
    </div>
  );
}

// Segmentation: drop or choose a photo; the mask the route returns (a palette PNG, the background transparent) is
// laid over it, as strongly as the opacity slider says, with each class's share of the pixels.
function SegmentTry({ card }) {
  const [photo, setPhoto] = useState(null); // { url, width, height }
  const [answer, setAnswer] = useState(null);
  const [opacity, setOpacity] = useState(0.5);
  const [error, setError] = useState("");
  async function send(file) {
    try {
      const out = await postFile(card.route, file, file.name || "photo.png", {});
      setPhoto({ url: URL.createObjectURL(file), width: out.width, height: out.height });
      setAnswer(out);
      setError("");
    } catch (e) {
      setError(e.message);
    }
  }
  const longest = photo ? Math.max(photo.width, photo.height) : 1;
  const scale = Math.min(560, Math.max(320, longest)) / longest;
  const size = photo ? { width: photo.width * scale, height: photo.height * scale } : { width: 320, height: 200 };
  return (
    <div className="try">
      <p>Choose or drop a photo: the model colours every pixel by its class.</p>
      <input type="file" accept="image/*" data-testid="segment-file" onChange={(e) => e.target.files[0] && send(e.target.files[0])} />{" "}
      <label>mask opacity {Math.round(opacity * 100)} %{" "}
        <input type="range" data-testid="segment-opacity" min={0} max={1} step={0.05} value={opacity}
               onChange={(e) => setOpacity(Number(e.target.value))} />
      </label>
      {error && <p className="error">{error}</p>}
      <div className="detect-view" data-testid="segment-view" onDragOver={(e) => e.preventDefault()}
           onDrop={(e) => { e.preventDefault(); if (e.dataTransfer.files[0]) send(e.dataTransfer.files[0]); }} style={size}>
        {photo ? <img src={photo.url} alt="your photo" {...size} /> : <span>drop a photo here</span>}
        {answer && <img src={`data:image/png;base64,${answer.mask_png_base64}`} alt="the predicted mask"
                        data-testid="segment-mask" className="mask" {...size} style={{ opacity, imageRendering: "pixelated" }} />}
      </div>
      {answer && (
        <ul className="shares" data-testid="segment-classes">
          {answer.classes.map((c) => <li key={c.class}>{c.class}: {percent(c.share)}</li>)}
        </ul>
      )}
    </div>
  );
}

// Restoration and style transfer: drop or choose a photo; the model's picture of it comes back (upscaled, denoised,
// coloured, painted ...) and a slider
// moves the line between before (left, the photo enlarged by the browser) and after (right), with the file to save.
function RestoreTry({ card }) {
  const [photo, setPhoto] = useState(null); // the object URL of the photo sent
  const [answer, setAnswer] = useState(null);
  const [split, setSplit] = useState(50);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  async function send(file) {
    setBusy(true);
    try {
      const out = await postFile(card.route, file, file.name || "photo.png", {});
      setPhoto(URL.createObjectURL(file));
      setAnswer(out);
      setError("");
    } catch (e) {
      setError(e.message);
    } finally {
      setBusy(false);
    }
  }
  const longest = answer ? Math.max(answer.width, answer.height) : 1;
  const scale = Math.min(640, Math.max(320, longest)) / longest;
  const size = answer ? { width: answer.width * scale, height: answer.height * scale } : { width: 320, height: 200 };
  const after = answer && `data:image/png;base64,${answer.image_png_base64}`;
  return (
    <div className="try">
      <p>Choose or drop a photo: the model ({card.use}) gives back its picture of it, as it learned to make them.
        Slide to compare before and after.</p>
      <input type="file" accept="image/*" data-testid="restore-file" onChange={(e) => e.target.files[0] && send(e.target.files[0])} />{" "}
      <label>before | after{" "}
        <input type="range" data-testid="restore-split" min={0} max={100} value={split}
               onChange={(e) => setSplit(Number(e.target.value))} />
      </label>
      {busy && <Busy testid="restore-busy">Working on it…</Busy>}
      {error && <p className="error">{error}</p>}
      <div className="detect-view" data-testid="restore-view" onDragOver={(e) => e.preventDefault()}
           onDrop={(e) => { e.preventDefault(); if (e.dataTransfer.files[0]) send(e.dataTransfer.files[0]); }} style={size}>
        {answer ? <img src={after} alt="after" data-testid="restore-after" {...size} /> : <span>drop a photo here</span>}
        {answer && <img src={photo} alt="before" data-testid="restore-before" className="mask" {...size}
                        style={{ clipPath: `inset(0 ${100 - split}% 0 0)` }} />}
      </div>
      {answer && (
        <p data-testid="restore-size">{answer.width} × {answer.height} pixels.{" "}
          <a href={after} download={`${card.use}.png`}>Save the result</a></p>
      )}
    </div>
  );
}

// Text in: a prime the run writes on from, streamed as it is written (a use that samples at a temperature), or a
// sentence whose answer comes whole (with its attention weights where the use can return them).
function TextTry({ card }) {
  const options = card.options || {};
  const writes = options.temperature !== undefined;
  const [text, setText] = useState(writes ? "The " : "");
  const [temperature, setTemperature] = useState(0.8);
  const [answer, setAnswer] = useState(null);
  const [error, setError] = useState("");
  async function stream() {
    // the text as it is written: the /v1 route's Server-Sent Events, one character at a time
    setError("");
    setAnswer([{ text }]);
    const response = await fetch(card.route, { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ inputs: text, temperature, length: 300, stream: true }) });
    if (!response.ok) { setError((await response.json()).error); return; }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "", written = text;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      const events = buffer.split("\n\n");
      buffer = events.pop();
      for (const e of events) {
        const data = e.split("\n").find((line) => line.startsWith("data: "));
        const part = data ? JSON.parse(data.slice(6)) : {};
        if (part.error) setError(part.error);
        if (part.token !== undefined) { written += part.token; setAnswer([{ text: written }]); }
      }
    }
  }
  async function go() {
    if (writes) return stream();
    const json = { inputs: text };
    if (options.attention !== undefined) json.attention = true;
    await ask(card, json, setAnswer, setError);
  }
  return (
    <div className="try">
      <textarea data-testid="try-text" rows={3} cols={60} value={text} onChange={(e) => setText(e.target.value)} />
      {writes && (
        <label>temperature {temperature}
          <input type="range" min={0.1} max={2} step={0.1} value={temperature} onChange={(e) => setTemperature(Number(e.target.value))} />
        </label>
      )}
      <button data-testid="try-go" onClick={go}>{card.use}</button>
      {error && <p className="error">{error}</p>}
      {answer && writes && <pre data-testid="try-answer">{answer.map((a) => a.text ?? JSON.stringify(a)).join("\n")}</pre>}
      {answer && options.attention !== undefined && answer.map((a, i) => <Translation key={i} answer={a} />)}
    </div>
  );
}

// Text in, classes out: the classes of what is typed, asked again a moment after each change (and by the button).
function TextClassesTry({ card }) {
  const [text, setText] = useState("");
  const [answer, setAnswer] = useState(null);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const latest = useRef(0); // only the answer to the last text asked is shown (answers may come back out of order)
  async function go(value = text) {
    const asked = ++latest.current;
    if (!value.trim()) { setAnswer(null); setError(""); return; }
    setBusy(true);
    const keep = (set) => (v) => asked === latest.current && set(v);
    const json = { inputs: [value], top_k: card.classes.length, ...((card.options || {}).explain ? { explain: true } : {}) };
    await ask(card, json, keep(setAnswer), keep(setError));
    if (asked === latest.current) setBusy(false);
  }
  useEffect(() => {
    const timer = setTimeout(() => go(text), 300);
    return () => clearTimeout(timer);
  }, [text]);
  return (
    <div className="try">
      <label htmlFor="try-text" style={{ display: "block" }}>A text to classify (its classes update as you type)</label>
      <textarea id="try-text" data-testid="try-text" rows={3} cols={60} value={text}
                placeholder="Type or paste a sentence…" onChange={(e) => setText(e.target.value)} />
      <button data-testid="try-go" onClick={() => go()}>{card.use}</button>
      {busy && <Busy testid="try-busy">Asking the model…</Busy>}
      {error && <p className="error">{error}</p>}
      {answer && answer[0] && <Predictions answer={answer[0]} />}
      {answer && answer[0] && answer[0].tokens && <SharedTokens answer={answer[0]} />}
    </div>
  );
}

// The text's tokens, each on a background as strong as its share in the likeliest class: red for it, blue against.
function SharedTokens({ answer }) {
  const top = Math.max(1e-9, ...answer.tokens.map((t) => Math.abs(t.share)));
  const said = answer.predictions[0].class;
  return (
    <p className="shares" data-testid="try-shares" aria-label={`Which tokens made it say ${said}`}>
      <small>What made it say <b>{said}</b>: </small>
      {answer.tokens.map((t, i) => {
        const strength = Math.min(1, Math.abs(t.share) / top).toFixed(2);
        const colour = t.share > 0 ? `rgba(244,165,130,${strength})` : `rgba(146,197,222,${strength})`;
        return <span key={i} title={`${t.share > 0 ? "+" : ""}${t.share}`} style={{ background: colour }}>{t.token} </span>;
      })}
    </p>
  );
}

// Noise in, images out: eight new images, and a walk through the noise space between two points.
function SampleTry({ card }) {
  const [answer, setAnswer] = useState(null);
  const [error, setError] = useState("");
  return (
    <div className="try">
      <button data-testid="try-go" onClick={() => ask(card, { n: 8 }, setAnswer, setError)}>{card.use}</button>
      {error && <p className="error">{error}</p>}
      {answer && (
        <div data-testid="try-answer">{answer.map((a, i) => <img key={i} className="sample" src={`data:image/png;base64,${a.image_png_base64}`} alt="sample" />)}</div>
      )}
      <Walk card={card} />
    </div>
  );
}

// One JSON request to the run's /v1 route: its answers, or the server's message.
async function ask(card, json, setAnswer, setError) {
  try {
    setAnswer((await call(card.route, { json })).outputs);
    setError("");
  } catch (e) {
    setError(e.message);
  }
}

function Translation({ answer }) {
  const att = answer.attention || [];
  const src = answer.source_tokens || [];
  return (
    <div data-testid="try-answer">
      <p><b>{answer.translation}</b></p>
      {att.length > 0 && (
        <table className="attention" data-testid="attention">
          <thead><tr><th></th>{src.map((t, j) => <th key={j}>{t}</th>)}</tr></thead>
          <tbody>
            {att.map((row, i) => (
              <tr key={i}>
                <th>{(answer.tokens || [])[i]}</th>
                {row.map((w, j) => <td key={j} title={w.toFixed(3)} style={{ background: `rgba(31, 119, 180, ${w})` }} />)}
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

function Walk({ card }) {
  const [seed, setSeed] = useState(0);
  const [walk, setWalk] = useState(null);
  const [t, setT] = useState(0);
  async function go() {
    setWalk(await call(`/api/runs/${encodeURIComponent(card.name)}/walk`, { json: { seed, steps: 9 } }));
    setT(0);
  }
  return (
    <div>
      <p>Walk through the noise space between two points:{" "}
        <label>seed <input type="number" value={seed} onChange={(e) => setSeed(Number(e.target.value))} style={{ width: "5em" }} /></label>{" "}
        <button data-testid="walk-go" onClick={go}>Walk</button></p>
      {walk && (
        <>
          <input type="range" data-testid="walk-slider" min={0} max={walk.images.length - 1} value={t} onChange={(e) => setT(Number(e.target.value))} />
          <br /><img data-testid="walk-image" className="walk" src={walk.images[t]} alt={`step ${t}`} width={128} height={128} />
        </>
      )}
    </div>
  );
}
