// Face recognition: a photo, or the webcam (a frame at a time, one request in flight), sent to the run's /v1 route;
// every face found is boxed and named from the run's gallery, or "unknown". People are enrolled from the command
// line or the Python API (deepworks faces enroll RUN --name NAME PHOTOS); the answers carry names, never faces.
import { useEffect, useState } from "react";
import { call } from "../api.js";
import Busy from "../Busy.jsx";
import { snapPhoto } from "../media.js";
import { useCamera } from "../start/Webcam.jsx";

const EVERY_MS = 700;

// One photo to the run's /v1 route as a form upload: its one answer.
async function identify(card, file, name) {
  const form = new FormData();
  form.append("files", file, name);
  return (await call(card.route, { method: "POST", body: form })).outputs[0];
}

export default function FacesTry({ card }) {
  const [photo, setPhoto] = useState(null); // { url, width, height } of an uploaded photo
  const [answer, setAnswer] = useState(null);
  const [camera, setCamera] = useState(false);
  const [error, setError] = useState("");
  useEffect(() => () => { if (photo) URL.revokeObjectURL(photo.url); }, [photo]); // the last photo's URL, let go
  async function send(file) {
    try {
      const out = await identify(card, file, file.name || "photo.png");
      setPhoto({ url: URL.createObjectURL(file), width: out.width, height: out.height });
      setAnswer(out);
      setError("");
    } catch (e) {
      setError(e.message);
    }
  }
  return (
    <div className="try">
      <p>Choose or drop a photo, or start the webcam: each face found is boxed and named from the people enrolled,
        or called unknown.</p>
      <input type="file" accept="image/*" data-testid="faces-file"
             onChange={(e) => { setCamera(false); if (e.target.files[0]) send(e.target.files[0]); }} />{" "}
      <button type="button" data-testid="faces-camera" onClick={() => { setCamera(!camera); setAnswer(null); }}>
        {camera ? "Stop the webcam" : "Start the webcam"}</button>
      {error && <p className="error" role="alert">{error}</p>}
      {camera ? <LiveFaces card={card} answer={answer} onAnswer={setAnswer} onError={setError} />
              : <Photo photo={photo} answer={answer} onDrop={send} />}
      {answer && <Summary answer={answer} />}
    </div>
  );
}

// The uploaded photo with its faces boxed; big photos shrink to 560 px, small ones grow to 320 px.
function Photo({ photo, answer, onDrop }) {
  const longest = photo ? Math.max(photo.width, photo.height) : 1;
  const scale = Math.min(560, Math.max(320, longest)) / longest;
  return (
    <div className="detect-view" data-testid="faces-view" onDragOver={(e) => e.preventDefault()}
         onDrop={(e) => { e.preventDefault(); if (e.dataTransfer.files[0]) onDrop(e.dataTransfer.files[0]); }}
         style={photo ? { width: photo.width * scale, height: photo.height * scale } : { width: 320, height: 200 }}>
      {photo ? <img src={photo.url} alt="your photo" width={photo.width * scale} height={photo.height * scale} />
             : <span>drop a photo here</span>}
      {photo && answer && <Boxes faces={answer.faces} scale={scale} />}
    </div>
  );
}

// The webcam's picture, a frame sent whenever the last answer is in; the boxes of the last answer over it.
function LiveFaces({ card, answer, onAnswer, onError }) {
  const [video, error, ready] = useCamera();
  const [size, setSize] = useState(null); // the frame's size as sent: the boxes are in its pixels
  useEffect(() => {
    if (!ready) return undefined;
    let gone = false;
    let timer = null;
    const tick = async () => {
      try {
        const frame = await snapPhoto(video.current);
        if (frame && !gone) {
          const out = await identify(card, frame.blob, "webcam.png");
          if (!gone) { setSize(frame); onAnswer(out); onError(""); }
        }
      } catch (e) {
        if (!gone) onError(e.message);
      }
      if (!gone) timer = setTimeout(tick, EVERY_MS);
    };
    tick();
    return () => { gone = true; clearTimeout(timer); };
  }, [ready]);
  if (error) return <p className="error" role="alert">{error}</p>;
  const shown = 480;
  const scale = size ? shown / size.width : 1;
  return (
    <div className="detect-view" data-testid="faces-live" style={{ width: shown, height: size ? size.height * scale : 360 }}>
      <video ref={video} autoPlay muted playsInline width={shown} data-testid="faces-video"
             aria-label="Webcam picture the model is shown" style={{ position: "absolute", left: 0, top: 0 }} />
      {!ready && <Busy testid="faces-camera-opening">Opening the webcam…</Busy>}
      {answer && size && <Boxes faces={answer.faces} scale={scale} />}
    </div>
  );
}

function Boxes({ faces, scale }) {
  return faces.map((f, i) => {
    const [x1, y1, x2, y2] = f.box.map((v) => v * scale);
    const unknown = f.name === "unknown";
    return (
      <div key={i} className={unknown ? "box unknown" : "box"} data-testid="faces-box"
           style={{ left: x1, top: y1, width: x2 - x1, height: y2 - y1 }}>
        <span>{f.name} {f.similarity.toFixed(2)}</span>
      </div>
    );
  });
}

function Summary({ answer }) {
  const named = answer.faces.filter((f) => f.name !== "unknown").map((f) => f.name);
  return (
    <p data-testid="faces-count">
      {answer.faces.length} face{answer.faces.length === 1 ? "" : "s"} found
      {named.length ? `: ${named.join(", ")}` : ""}. {answer.note || ""}
    </p>
  );
}
