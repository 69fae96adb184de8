// The data audit's findings, each with what it means and what to do (the same checks as `deepworks audit`).
import { useState } from "react";
import { call } from "./api.js";

export default function Audit({ data }) {
  const [audit, setAudit] = useState(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  async function run() {
    setBusy(true);
    setError("");
    try {
      setAudit(await call("/api/audit", { json: { data } }));
    } catch (e) {
      setError(e.message);
    } finally {
      setBusy(false);
    }
  }
  return (
    <div>
      <button data-testid="audit-go" disabled={busy || !data} onClick={run}>
        {busy ? "Auditing…" : "Audit the data (balance, copies across splits, broken files, shortcuts)"}</button>
      {error && <p className="error" role="alert">{error}</p>}
      {audit && (
        <div data-testid="audit">
          <h3>Audit of {audit.source}</h3>
          <ul>
            {audit.findings.map((f, i) => (
              <li key={i} className={`finding ${f.severity}`}><b>{f.check}</b> ({f.severity}): {f.message}
                {f.advice && <> <i>What to do:</i> {f.advice}</>}</li>
            ))}
          </ul>
        </div>
      )}
    </div>
  );
}
