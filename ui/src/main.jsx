// deepworks ui: Start (the first-run flow: classes, samples, train, try) and the expert path Data -> Model -> Train ->
// Results -> Try -> Trust -> Export, one page each, sharing what was chosen so far.
import { StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { call } from "./api.js";
import { firstChoice } from "./cards.js";
import { PAGES, useRoute, useStored } from "./route.js";
import StartPage from "./pages/StartPage.jsx";
import DataPage from "./pages/DataPage.jsx";
import ModelPage from "./pages/ModelPage.jsx";
import TrainPage from "./pages/TrainPage.jsx";
import TryPage from "./pages/TryPage.jsx";
import ResultsPage from "./pages/ResultsPage.jsx";
import TrustPage from "./pages/TrustPage.jsx";
import ExportPage from "./pages/ExportPage.jsx";
import "./style.css";

function App() {
  const [where, go, setRun] = useRoute(); // the page, the run, and the job or search shown are in the address
  const { page, run } = where;
  const [info, setInfo] = useState(null);
  const [error, setError] = useState("");
  // the task, data and model chosen so far; the data's preview is asked for again after a reload
  const [choice, setChoice] = useStored("deepworks.choice", null, (c) => c && { ...c, preview: null });
  const update = (change) => setChoice((c) => ({ ...c, ...change }));
  const shown = { job: where.job, search: where.search };

  useEffect(() => {
    call("/api/info").then((i) => {
      setInfo(i);
      setChoice((c) => (c && i.tasks.includes(c.task) ? c : firstChoice(i))); // a kept choice of a task still known
    }, (e) => setError(e.message));
  }, []);

  if (error) return <p className="error" role="alert" data-testid="error">{error}</p>;
  if (!info || !choice) return <p className="busy" role="status"><span className="spinner" aria-hidden="true" /> Loading…</p>;
  // go(page) keeps the run shown; open(page, run) shows a page of a given run (the Start page's links); show({job} or
  // {search}) shows a job's or a search's panel on the Train page
  const props = { info, choice, update, run, setRun, go: (name) => go(name), open: (name, r) => go(name, r), shown,
                  show: (what) => go("Train", run, what) };
  return (
    <>
      <header>
        <h1>deepworks</h1>
        <nav aria-label="Pages">
          {PAGES.map((name, i) => (
            <span key={name} className="nav-item">
              {i === 1 && <span className="nav-group" aria-hidden="true">Expert:</span>}
              <button data-testid={`nav-${name.toLowerCase()}`} className={page === name ? "active" : ""}
                      aria-current={page === name ? "page" : undefined} onClick={() => go(name)}
                      aria-label={i ? `Expert page ${i}: ${name}` : undefined}>
                {name}
              </button>
            </span>
          ))}
          <a className="nav-docs" href="/docs/" data-testid="nav-docs">Docs</a>
        </nav>
        <span className="version">v{info.version}</span>
      </header>
      <main>
        {page === "Start" && <StartPage {...props} />}
        {page === "Data" && <DataPage {...props} />}
        {page === "Model" && <ModelPage {...props} />}
        {page === "Train" && <TrainPage {...props} />}
        {page === "Results" && <ResultsPage {...props} />}
        {page === "Try" && <TryPage {...props} />}
        {page === "Trust" && <TrustPage {...props} />}
        {page === "Export" && <ExportPage {...props} />}
      </main>
    </>
  );
}

createRoot(document.getElementById("root")).render(<StrictMode><App /></StrictMode>);
