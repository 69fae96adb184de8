// Export: the run as ONNX or safetensors with its model card, downloaded as a zip; or how to serve it.
import { useState } from "react";
import { call } from "../api.js";
import RunPicker from "../RunPicker.jsx";

export default function ExportPage({ run, setRun }) {
  const [format, setFormat] = useState("onnx");
  const [served, setServed] = useState(null);
  return (
    <section>
      <h2>Export</h2>
      <RunPicker run={run} setRun={setRun} testid="export-run" />{" "}
      <label>
        Format{" "}
        <select data-testid="export-format" value={format} onChange={(e) => setFormat(e.target.value)}>
          <option value="onnx">ONNX (runs in ONNX Runtime, any language)</option>
          <option value="safetensors">safetensors weights with the model card</option>
        </select>
      </label>
      {run && (
        <p>
          <a data-testid="export-download" href={`/api/runs/${encodeURIComponent(run)}/export?format=${format}`}
             download={`${run}-${format}.zip`}>Download {run} as {format}</a>
        </p>
      )}
      {run && (
        <p>
          <button data-testid="serve-go" onClick={() => call(`/api/runs/${encodeURIComponent(run)}/serve`, { method: "POST" }).then(setServed, (e) => setServed({ error: e.message }))}>
            Serve it from this server</button>{" "}
          or on its own: <code>deepworks serve runs/{run}</code>.
        </p>
      )}
      {served && served.error && <p className="error">{served.error}</p>}
      {served && served.route && (
        <p data-testid="served">Serving: <code>POST {location.origin}{served.route}</code> ({served.use}; the card at{" "}
          <a href={`/v1/models/${served.name}`}>/v1/models/{served.name}</a>, every route in <a href="/openapi.json">/openapi.json</a>).</p>
      )}
    </section>
  );
}
