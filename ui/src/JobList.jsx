// The server's latest jobs, each a button that shows its panel (its curves, its leaderboard, Resume): a finished or
// stopped job stays reachable after the page has moved on to another.
import { useEffect, useState } from "react";
import { call } from "./api.js";
import { runOf, searchOf } from "./jobs.js";

const SHOWN = 8;

export default function JobList({ current, show }) {
  const [jobs, setJobs] = useState([]);
  useEffect(() => { call("/api/jobs").then((r) => setJobs(r.jobs.slice(0, SHOWN)), () => {}); }, [current?.state]);
  const others = jobs.filter((j) => j.id !== current?.id);
  if (!others.length) return null;
  return (
    <details className="job-list" data-testid="job-list">
      <summary>Earlier jobs ({others.length})</summary>
      <ul>
        {others.map((j) => (
          <li key={j.id}>
            <button type="button" className="link" data-testid={`job-${j.id}`}
                    onClick={() => show(j.automl ? { search: searchOf(j) } : { job: j.id })}>
              {j.automl ? `AutoML search ${searchOf(j)}` : `${j.resume ? "Resumed" : "Trained"} ${runOf(j) || "(no run)"}`}
            </button>{" "}
            <small>{j.state} · job {j.id}</small>
          </li>
        ))}
      </ul>
    </details>
  );
}
