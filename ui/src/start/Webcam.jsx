// The webcam inside a class: its live picture, "Snap" for one frame and "Hold to record" for a frame every 150 ms
// while the button is held (by the mouse, a finger, or Space/Enter), sent together on release.
import { useEffect, useRef, useState } from "react";
import Busy from "../Busy.jsx";
import { closeStream, openCamera, snapFrame } from "../media.js";

const EVERY_MS = 150;
const MOST = 100; // frames one hold records (15 s): an upload stays small

// The webcam's stream shown in a <video>, opened on mount and closed on unmount; [video ref, error, ready].
export function useCamera() {
  const video = useRef(null);
  const [error, setError] = useState("");
  const [ready, setReady] = useState(false);
  useEffect(() => {
    let stream = null;
    let gone = false;
    openCamera().then((s) => {
      if (gone) return closeStream(s);
      stream = s;
      video.current.srcObject = s;
      video.current.onloadeddata = () => setReady(true);
    }, (e) => setError(`The webcam could not be used (${e.message}). Allow this page to use it, or upload files.`));
    return () => { gone = true; closeStream(stream); };
  }, []);
  return [video, error, ready];
}

export default function Webcam({ name, testid, onFrames, busy }) {
  const [video, error, ready] = useCamera();
  const [held, setHeld] = useState(null); // frames taken in the current hold; null: not holding
  const frames = useRef(null);
  const timer = useRef(null);

  async function take() {
    const blob = await snapFrame(video.current);
    if (blob && frames.current && frames.current.length < MOST) {
      frames.current.push(blob);
      setHeld(frames.current.length);
    }
  }
  function hold() {
    if (frames.current || !ready) return;
    frames.current = [];
    setHeld(0);
    take();
    timer.current = setInterval(take, EVERY_MS);
  }
  function release() {
    if (!frames.current) return;
    clearInterval(timer.current);
    const taken = frames.current;
    frames.current = null;
    setHeld(null);
    if (taken.length) onFrames(taken);
  }
  useEffect(() => () => clearInterval(timer.current), []);
  async function snapOne() {
    const blob = await snapFrame(video.current);
    if (blob) onFrames([blob]);
  }
  const keys = (down) => (e) => {
    if (e.key !== " " && e.key !== "Enter") return;
    e.preventDefault();
    if (down && !e.repeat) hold();
    if (!down) release();
  };

  return (
    <div className="webcam">
      {error ? <p className="error" role="alert">{error}</p> : (
        <video ref={video} autoPlay muted playsInline data-testid={`${testid}-video`}
               aria-label={`Webcam picture for ${name}`} />
      )}
      {!error && !ready && <Busy testid={`${testid}-camera-opening`}>Opening the webcam…</Busy>}
      <div className="webcam-buttons">
        <button type="button" className="primary" data-testid={`${testid}-hold`} disabled={!ready || busy}
                onPointerDown={hold} onPointerUp={release} onPointerLeave={release} onPointerCancel={release}
                onKeyDown={keys(true)} onKeyUp={keys(false)} onContextMenu={(e) => e.preventDefault()}>
          {held === null ? "Hold to record" : `Recording… ${held}`}
        </button>
        <button type="button" data-testid={`${testid}-snap`} disabled={!ready || busy} onClick={snapOne}>Snap</button>
      </div>
    </div>
  );
}
