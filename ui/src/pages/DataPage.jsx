// Data: a built-in dataset or a folder / file on this machine, then a look at it before training.
import { useEffect, useRef, useState } from "react";
import { call } from "../api.js";
import Audit from "../Audit.jsx";
import { cardOf } from "../cards.js";

const THUMBNAIL = { boxes: 128, mask: 128 }; // px of a preview image, by what the task gives back (boxes need room); else 56

export default function DataPage({ info, choice, update, go }) {
  const [source, setSource] = useState(choice.data || "");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const builtins = cardOf(info, choice.task).builtins;
  const latest = useRef(0); // the last look asked for: an earlier one that answers later is dropped, not shown

  async function look(data) {
    const asked = ++latest.current;
    setBusy(true);
    setError("");
    try {
      const preview = await call("/api/data/preview", { json: { task: choice.task, data } });
      if (asked === latest.current) update({ data, preview });
    } catch (e) {
      if (asked !== latest.current) return;
      setError(e.message);
      update({ data, preview: null }); // kept: training then says the same, from the worker
    } finally {
      if (asked === latest.current) setBusy(false);
    }
  }

  useEffect(() => { // data chosen before a reload: look at it again
    if (choice.data && !choice.preview) look(choice.data);
  }, []);

  async function upload(file) {
    const form = new FormData();
    form.append("file", file, file.name);
    ++latest.current; // what was being looked at before the upload is no longer wanted
    setBusy(true);
    setError("");
    try {
      const { data } = await call("/api/data/upload", { method: "POST", body: form });
      setSource(data);
      setBusy(false);
      await look(data);
    } catch (e) {
      setError(e.message);
      setBusy(false);
    }
  }

  return (
    <section>
      <h2>Your data</h2>
      <label>
        Task{" "}
        <select data-testid="task" value={choice.task}
                onChange={(e) => update({ task: e.target.value, data: "", preview: null, model: cardOf(info, e.target.value).templates[0].model,
                                         image_size: null })}>
          {info.tasks.map((t) => <option key={t}>{t}</option>)}
        </select>
      </label>
      <p id="data-samples">Try with sample data:</p>
      <div className="choices" role="group" aria-labelledby="data-samples">
        {builtins.map((name) => (
          <button key={name} data-testid={`builtin-${name}`} disabled={busy}
                  onClick={() => { setSource(name); look(name); }}>{name}</button>
        ))}
      </div>
      <p id="data-own">Or your own: {cardOf(info, choice.task).data || "a file or folder"}, as a path on this machine.</p>
      <form onSubmit={(e) => { e.preventDefault(); look(source); }}>
        <input data-testid="data-path" value={source} onChange={(e) => setSource(e.target.value)}
               aria-labelledby="data-own" placeholder="/home/me/photos" size={50} />
        <button data-testid="data-look" disabled={busy || !source}>Look at it</button>
      </form>
      <p>
        <label htmlFor="data-upload">Or upload one (a .zip of class folders, .csv, .npz, text file or .tsv); it is kept
          beside the runs:</label>{" "}
        <input type="file" id="data-upload" data-testid="data-upload" accept=".zip,.csv,.npz,.txt,.tsv,.text,.md" disabled={busy}
               onChange={(e) => e.target.files[0] && upload(e.target.files[0])} />
      </p>
      {busy && <p className="busy" data-testid="data-busy" role="status"><span className="spinner" aria-hidden="true" /> Reading the data…</p>}
      {error && <p className="error" data-testid="data-error" role="alert">{error}</p>}
      {choice.preview && <Preview preview={choice.preview} card={cardOf(info, choice.preview.task)} />}
      {choice.preview && choice.preview.classes && <Audit data={choice.preview.data} />}
      {choice.preview && <button className="next" data-testid="to-model" onClick={() => go("Model")}>Next: the model →</button>}
    </section>
  );
}

function Preview({ preview, card }) {
  const s = preview.splits;
  const sizes = Object.entries(s).map(([k, n]) => `${n.toLocaleString("en-US")} ${k === "val" ? "validation" : k}`).join(", ");
  // what the splits count: a text's characters (it shows an excerpt), sentence pairs, or examples
  const counted = preview.excerpt !== undefined ? "characters" : preview.pairs ? "pairs" : "examples";
  const side = THUMBNAIL[card.outputs[0]] || 56;
  return (
    <div data-testid="data-preview">
      <p>
        <b>{preview.data}</b>: {sizes} {counted}
        {preview.classes && <> in {preview.classes.length} classes, {preview.image_size}×{preview.image_size} pixels,{" "}
          {preview.channels === 1 ? "grey" : "colour"}</>}.
      </p>
      {preview.sound_classes && <p>{preview.sound_classes.length} classes of clips of {preview.seconds} s at{" "}
        {preview.rate.toLocaleString("en-US")} Hz. Each is shown as the model hears it (log-mel bands over time, low
        pitches at the bottom); play it to check its label.</p>}
      {(preview.notes || []).map((n, i) => <p key={i} className="note">{n}</p>)}
      {preview.sound_examples && (
        <table className="grid" data-testid="data-sounds">
          <caption className="sr-only">Examples of each class: spectrograms and their sounds</caption>
          <tbody>
            {preview.sound_examples.map((row) => (
              <tr key={row.class}>
                <th scope="row">{row.class}</th>
                <td>{row.sounds.map((s, i) => (
                  <figure key={i} className="sound">
                    <img src={`data:image/png;base64,${s.spectrogram}`} alt={`${row.class}: its spectrogram`} width={120} height={48} />
                    <audio controls preload="none" aria-label={`${row.class}: play example ${i + 1}`} src={`data:audio/wav;base64,${s.wav}`} />
                  </figure>
                ))}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {preview.examples && (
        <table className="grid">
          <caption className="sr-only">Examples of each class</caption>
          <tbody>
            {preview.examples.map((row) => (
              <tr key={row.class}>
                <th scope="row">{row.class}</th>
                <td>{row.images.map((b64, i) => <img key={i} src={`data:image/png;base64,${b64}`} alt={`${row.class}, example ${i + 1}`} width={side} height={side} />)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {preview.excerpt !== undefined && (
        <>
          <p>{preview.vocabulary} different characters. An excerpt:</p>
          <pre className="excerpt" data-testid="data-excerpt">{preview.excerpt}</pre>
        </>
      )}
      {preview.text_examples && (
        <table className="runs" data-testid="data-texts">
          <caption>{preview.text_classes.length} classes of texts; the first few of each</caption>
          <thead><tr><th scope="col">class (training texts)</th><th scope="col">texts</th></tr></thead>
          <tbody>
            {preview.text_examples.map((row, i) => (
              <tr key={row.class}>
                <th scope="row">{row.class} ({preview.class_counts[i].toLocaleString("en-US")})</th>
                <td><ul className="texts">{row.texts.map((t, k) => <li key={k}>{t}</li>)}</ul></td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {preview.pairs && (
        <table className="runs" data-testid="data-pairs">
          <thead><tr><th scope="col">source ({preview.source_vocabulary} words)</th><th scope="col">target ({preview.target_vocabulary} words)</th></tr></thead>
          <tbody>{preview.pairs.map((p, i) => <tr key={i}><td>{p.source}</td><td>{p.target}</td></tr>)}</tbody>
        </table>
      )}
    </div>
  );
}
