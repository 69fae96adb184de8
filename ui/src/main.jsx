// deepworks ui: Data -> Model -> Train -> Results -> Try -> Trust -> Export, one page each, sharing what was chosen so far.
import { StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { call } from "./api.js";
import { firstChoice } from "./cards.js";
import DataPage from "./pages/DataPage.jsx";
import ModelPage from "./pages/ModelPage.jsx";
import TrainPage from "./pages/TrainPage.jsx";
import TryPage from "./pages/TryPage.jsx";
import ResultsPage from "./pages/ResultsPage.jsx";
import TrustPage from "./pages/TrustPage.jsx";
import ExportPage from "./pages/ExportPage.jsx";
import "./style.css";

const PAGES = ["Data", "Model", "Train", "Results", "Try", "Trust", "Export"];

function App() {
  const [page, setPage] = useState("Data");
  const [info, setInfo] = useState(null);
  const [error, setError] = useState("");
  const [choice, setChoice] = useState(null); // the task, data and model chosen so far: the first task's at first
  const [run, setRun] = useState(null); // the name of the run to try and export
  const update = (change) => setChoice((c) => ({ ...c, ...change }));

  useEffect(() => {
    call("/api/info").then((i) => { setInfo(i); setChoice((c) => c || firstChoice(i)); }, (e) => setError(e.message));
  }, []);

  if (error) return <p className="error" data-testid="error">{error}</p>;
  if (!info || !choice) return <p>Loading…</p>;
  const props = { info, choice, update, run, setRun, go: setPage };
  return (
    <>
      <header>
        <h1>deepworks</h1>
        <nav>
          {PAGES.map((name, i) => (
            <button key={name} data-testid={`nav-${name.toLowerCase()}`} className={page === name ? "active" : ""}
                    onClick={() => setPage(name)}>
              {i + 1}. {name}
            </button>
          ))}
        </nav>
        <span className="version">v{info.version}</span>
      </header>
      <main>
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
