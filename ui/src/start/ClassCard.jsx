// One class of the Start page: its name (edited in place), its samples as a gallery, and the ways to add more:
// drop files, folders or a zip on it, upload files or a folder, the webcam (pictures) or the microphone (sounds).
// Each change shows a spinner at once and the server's message in place when it is refused.
import { useEffect, useRef, useState } from "react";
import Busy from "../Busy.jsx";
import { recordWav } from "../media.js";
import Icon from "./Icon.jsx";
import { droppedFiles, samplesOf } from "./samples.js";
import Webcam from "./Webcam.jsx";

const CLIP_S = 1; // seconds one microphone recording lasts

// Work on the server with a spinner at once and its message in place: [busy words, error, work(words, job)].
function useWork() {
  const [busy, setBusy] = useState("");
  const [error, setError] = useState("");
  async function work(what, job) {
    setBusy(what);
    setError("");
    try {
      await job(setBusy);
    } catch (e) {
      setError(e.message);
      return false;
    } finally {
      setBusy("");
    }
    return true;
  }
  return [busy, error, work];
}

export default function ClassCard({ index, cls, kind, ops, camera, setCamera }) {
  const id = `class-${index}`;
  const [busy, error, work] = useWork();
  const [over, setOver] = useState(false); // files dragged over the card
  const [note, setNote] = useState(""); // the files of a folder that were left out
  const count = (n) => `${n} ${n === 1 ? kind.one : kind.samples}`;
  const add = (files) => files.length > 0 && work(`Adding ${count(files.length)}…`, () => ops.add(cls.name, files));
  function addFolder(files) { // only its samples: a folder's other files are left out, and said so
    const [kept, left] = samplesOf(files, kind);
    setNote(left ? `${left} ${left === 1 ? "file" : "files"} of the folder left out: not ${kind.samples}.` : "");
    if (kept.length) return add(kept);
    work("", () => { throw new Error(`Expected ${kind.samples} in the folder. Received: none of its ${files.length} `
                                     + "files is one."); });
  }
  const addFrames = (blobs) => add(blobs.map((b, i) => new File([b], `webcam-${Date.now()}-${i}.png`,
                                                                { type: "image/png" })));
  function remove() {
    if (cls.count && !window.confirm(`Delete the class ${cls.name} and its ${count(cls.count)}?`)) return;
    work("Deleting…", () => ops.remove(cls.name));
  }
  function drop(e) {
    e.preventDefault();
    setOver(false);
    droppedFiles(e.dataTransfer).then(([files, folder]) => (folder ? addFolder(files) : add(files)));
  }
  return (
    <li className={`class-card${over ? " over" : ""}`} data-testid={id} onDrop={drop}
        onDragOver={(e) => { e.preventDefault(); setOver(true); }} onDragLeave={() => setOver(false)}>
      <div className="class-head">
        <ClassName index={index} cls={cls} work={work} ops={ops} id={id} />
        <span className="class-count" data-testid={`${id}-count`}>{count(cls.count)}</span>
        <button type="button" className="icon-button" data-testid={`${id}-delete`} onClick={remove}
                aria-label={`Delete the class ${cls.name}`} title="Delete this class"><Icon name="trash" /></button>
      </div>
      <Gallery cls={cls} kind={kind} id={id} work={work} ops={ops} />
      {camera && <Webcam name={cls.name} testid={id} onFrames={addFrames} busy={Boolean(busy)} />}
      <AddTools id={id} cls={cls} kind={kind} camera={camera} setCamera={setCamera} busy={busy} work={work} ops={ops}
                add={add} addFolder={addFolder} />
      {busy && <Busy testid={`${id}-busy`}>{busy}</Busy>}
      {note && !busy && <p className="note" data-testid={`${id}-note`}>{note}</p>}
      {error && <p className="error" role="alert" data-testid={`${id}-error`}>{error}</p>}
    </li>
  );
}

// The class's name, edited in place: kept when the field is left or Enter pressed, put back when refused.
function ClassName({ index, cls, work, ops, id }) {
  const [name, setName] = useState(cls.name);
  useEffect(() => setName(cls.name), [cls.name]);
  async function rename() {
    const wanted = name.trim();
    if (!wanted || wanted === cls.name) return setName(cls.name);
    if (!(await work("Renaming…", () => ops.rename(cls.name, wanted)))) setName(cls.name);
  }
  return (
    <label className="class-name-wrap" title="Click to rename this class">
      <input className="class-name" value={name} maxLength={64} data-testid={`${id}-name`}
             aria-label={`Name of class ${index + 1}`} onChange={(e) => setName(e.target.value)} onBlur={rename}
             onFocus={(e) => cls.name.startsWith("Class ") && e.currentTarget.select()}
             onKeyDown={(e) => e.key === "Enter" && e.currentTarget.blur()} />
      <Icon name="pencil" />
    </label>
  );
}

// The ways to add samples: the webcam (pictures), the microphone (sounds), files or zips, a folder.
function AddTools({ id, cls, kind, camera, setCamera, busy, work, ops, add, addFolder }) {
  const picker = useRef(null);
  const folderPicker = useRef(null);
  const record = () => work(`Recording ${CLIP_S} s… make the sound now`, async (say) => {
    const clip = await recordWav(CLIP_S).catch((e) => {
      throw new Error(`The microphone could not be used (${e.message}). Allow this page to use it, or upload clips.`);
    });
    say("Adding the clip…");
    await ops.add(cls.name, [clip]);
  });
  return (
    <div className="class-tools">
      {kind.camera && (
        <button type="button" data-testid={`${id}-webcam`} aria-pressed={camera}
                onClick={() => setCamera(camera ? null : cls.name)}>
          <Icon name={camera ? "close" : "camera"} /> {camera ? "Close webcam" : "Webcam"}
        </button>
      )}
      {kind.microphone && (
        <button type="button" data-testid={`${id}-record`} disabled={Boolean(busy)} onClick={record}>
          <Icon name="mic" /> Record {CLIP_S} s
        </button>
      )}
      <button type="button" data-testid={`${id}-upload`} onClick={() => picker.current.click()}>
        <Icon name="upload" /> Upload
      </button>
      <input ref={picker} type="file" multiple hidden accept={kind.accept} data-testid={`${id}-files`}
             aria-label={`Upload ${kind.samples} or a zip for ${cls.name}`}
             onChange={(e) => { const files = [...e.target.files]; e.target.value = ""; add(files); }} />
      <button type="button" data-testid={`${id}-folder`} onClick={() => folderPicker.current.click()}>
        <Icon name="folder" /> Folder
      </button>
      <input ref={folderPicker} type="file" webkitdirectory="" hidden data-testid={`${id}-folder-files`}
             aria-label={`Upload a folder of ${kind.samples} for ${cls.name}`}
             onChange={(e) => { const files = [...e.target.files]; e.target.value = ""; addFolder(files); }} />
    </div>
  );
}

// The class's newest samples, newest first (the server lists the last few dozen), each with a button that deletes it;
// a clip plays when its tile is pressed.
function Gallery({ cls, kind, id, work, ops }) {
  if (!cls.count) {
    return <p className="gallery-empty" data-testid={`${id}-empty`}>Drop {kind.samples}, a folder or a zip here, or
      add them with the buttons below.</p>;
  }
  const first = cls.count - cls.samples.length; // the samples before those listed
  return (
    <ul className="gallery" data-testid={`${id}-gallery`} aria-label={`${cls.name}: its newest ${kind.samples}`}>
      {cls.samples.map((s, i) => [s, i]).reverse().map(([s, i]) => (
        <li key={s.file} data-testid="sample">
          {kind.camera ? <img src={`${s.url}?thumb=1`} alt={`${kind.one} ${first + i + 1} of ${cls.name}`} width={56}
                              height={56} loading="lazy" />
            : <button type="button" className="clip" onClick={() => new Audio(s.url).play()}
                      aria-label={`Play ${kind.one} ${first + i + 1} of ${cls.name}`}>
                <Icon name="play" /><small aria-hidden="true">{first + i + 1}</small></button>}
          <button type="button" className="remove" aria-label={`Delete ${kind.one} ${first + i + 1} of ${cls.name}`}
                  onClick={() => work("Deleting…", () => ops.removeSample(cls.name, s.file))}>×</button>
        </li>
      ))}
      {first > 0 && <li className="more">+{first}</li>}
    </ul>
  );
}
