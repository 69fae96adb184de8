// The Start page's Try step: the trained run served by this server (its /v1 route, as `deepworks serve` answers it)
// and tried live: webcam frames every half second, one request in flight at a time, or a microphone recording; the
// answer as a bar per class. Then where to go next: export, the results, the expert pages.
import { useEffect, useState } from "react";
import { call } from "../api.js";
import Busy from "../Busy.jsx";
import { recordWav, snapFrame } from "../media.js";
import ClassBars from "./ClassBars.jsx";
import Icon from "./Icon.jsx";
import { useCamera } from "./Webcam.jsx";

const EVERY_MS = 500;

// One file to the run's /v1 route: its answer, with every class's probability.
async function predict(card, file, name) {
  const form = new FormData();
  form.append("files", file, name);
  form.append("top_k", String(card.classes.length));
  return (await call(card.route, { method: "POST", body: form })).outputs[0];
}

export default function LiveTry({ run, kind, open, order }) {
  const [card, setCard] = useState(null);
  const [error, setError] = useState("");
  useEffect(() => {
    setCard(null);
    setError("");
    call(`/api/runs/${encodeURIComponent(run)}/serve`, { method: "POST" }).then((served) => {
      // the bars in the order of the class cards above (the run's own order is alphabetical)
      const known = order.filter((c) => served.classes.includes(c));
      setCard({ ...served, shown: [...known, ...served.classes.filter((c) => !known.includes(c))] });
    }, (e) => setError(e.message));
  }, [run]);
  return (
    <div className="live" data-testid="live">
      {!card && !error && <Busy testid="live-loading">Loading the model {run}…</Busy>}
      {error && <p className="error" role="alert" data-testid="live-error">{error}</p>}
      {card && (kind.camera ? <CameraTry card={card} kind={kind} /> : <MicrophoneTry card={card} kind={kind} />)}
      <div className="next" data-testid="start-next">
        <a className="button primary" href={`/api/runs/${encodeURIComponent(run)}/export?format=onnx`} download
           data-testid="download-onnx"><Icon name="download" /> Download your model (.zip)</a>
        <button type="button" data-testid="to-export" onClick={() => open("Export", run)}>
          Other formats, or serve it →</button>
        <button type="button" data-testid="to-results" onClick={() => open("Results", run)}>Its mistakes →</button>
        <p className="hint">The zip runs without deepworks: an ONNX model that ONNX Runtime runs in Python, C#, Java,
          JavaScript or C++, with a README that shows how.</p>
      </div>
    </div>
  );
}

// The answer to a file of one's own (a picture or a clip), shown beside the live view.
function useAsk(card) {
  const [answer, setAnswer] = useState(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  async function ask(file, name) {
    setBusy(true);
    try {
      setAnswer(await predict(card, file, name));
      setError("");
    } catch (e) {
      setError(e.message);
    } finally {
      setBusy(false);
    }
  }
  return { answer, setAnswer, busy, error, setError, ask };
}

function CameraTry({ card, kind }) {
  const [live, setLive] = useState(false);
  const [picked, setPicked] = useState(null); // the chosen picture, shown as it is judged
  const asked = useAsk(card);
  function choose(file) {
    setLive(false);
    if (!file) return;
    setPicked((old) => { if (old) URL.revokeObjectURL(old); return URL.createObjectURL(file); });
    asked.ask(file, file.name);
  }
  return (
    <div className="try-live">
      <div className="try-input">
        {live ? <LiveCamera card={card} onAnswer={asked.setAnswer} onError={asked.setError} />
          : picked ? <img className="live-video" src={picked} alt={`The ${kind.one} you chose`} data-testid="live-picked" />
          : <p className="gallery-empty">Show it something: start the webcam, or choose a {kind.one}.</p>}
        <div className="class-tools">
          <button type="button" className="primary" data-testid="live-camera" aria-pressed={live}
                  onClick={() => setLive(!live)}>
            <Icon name={live ? "close" : "camera"} /> {live ? "Stop the webcam" : "Start the webcam"}
          </button>
          <label className="file-button">
            <Icon name="upload" /> Choose a {kind.one}
            <input type="file" accept="image/*" data-testid="live-file"
                   onChange={(e) => choose(e.target.files[0])} />
          </label>
        </div>
      </div>
      <Answer card={card} kind={kind} asked={asked} />
    </div>
  );
}

// The webcam, a frame sent every half second while no answer is awaited.
function LiveCamera({ card, onAnswer, onError }) {
  const [video, error, ready] = useCamera();
  useEffect(() => {
    if (!ready) return undefined;
    let waiting = false;
    let gone = false;
    const tick = async () => {
      if (waiting || gone) return;
      waiting = true;
      try {
        const frame = await snapFrame(video.current);
        if (frame && !gone) onAnswer(await predict(card, frame, "webcam.png"));
        onError("");
      } catch (e) {
        if (!gone) onError(e.message);
      } finally {
        waiting = false;
      }
    };
    tick();
    const timer = setInterval(tick, EVERY_MS);
    return () => { gone = true; clearInterval(timer); };
  }, [ready]);
  if (error) return <p className="error" role="alert">{error}</p>;
  return (
    <>
      <video ref={video} className="live-video" autoPlay muted playsInline data-testid="live-video"
             aria-label="Webcam picture the model is shown" />
      {!ready && <Busy testid="live-camera-opening">Opening the webcam…</Busy>}
    </>
  );
}

function MicrophoneTry({ card, kind }) {
  const asked = useAsk(card);
  const [recording, setRecording] = useState(false);
  const [clip, setClip] = useState(null);
  const input = card.inputs[0];
  const seconds = Math.max(1, input.shape[1] / input.sample_rate); // the clip length the model hears, at least 1 s
  async function listen() {
    setRecording(true);
    try {
      const file = await recordWav(seconds);
      setClip(URL.createObjectURL(file));
      await asked.ask(file, file.name);
    } catch (e) {
      asked.setError(`The microphone could not be used (${e.message}). Allow this page to use it, or choose a file.`);
    } finally {
      setRecording(false);
    }
  }
  return (
    <div className="try-live">
      <div className="try-input">
        <p>Make a sound: it listens for {seconds.toFixed(1)} s and names what it heard.</p>
        <div className="class-tools">
          <button type="button" className="primary" data-testid="live-record" disabled={recording} onClick={listen}>
            <Icon name="mic" /> {recording ? "Listening…" : "Record and listen"}
          </button>
          <label className="file-button">
            <Icon name="upload" /> Choose a {kind.one}
            <input type="file" accept={kind.accept.replace(",.zip", "")} data-testid="live-file"
                   onChange={(e) => e.target.files[0] && asked.ask(e.target.files[0], e.target.files[0].name)} />
          </label>
        </div>
        {recording && <Busy testid="live-recording">Recording…</Busy>}
        {clip && <audio controls src={clip} data-testid="live-clip" />}
      </div>
      <Answer card={card} kind={kind} asked={asked} />
    </div>
  );
}

function Answer({ card, kind, asked }) {
  return (
    <div className="try-answer">
      <h4>What it {kind.camera ? "sees" : "hears"}</h4>
      <ClassBars classes={card.shown} answer={asked.answer} />
      {asked.busy && <Busy testid="live-busy">Asking the model…</Busy>}
      {asked.error && <p className="error" role="alert" data-testid="live-error">{asked.error}</p>}
    </div>
  );
}
