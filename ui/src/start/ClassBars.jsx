// A classifier's answer as one bar per class, in the classes' own order (bars that stay in place while a live view
// updates them), the most likely one marked.
import { percent } from "../api.js";

export default function ClassBars({ classes, answer, testid = "live-bars" }) {
  const chance = new Map((answer ? answer.predictions : []).map((p) => [p.class, p.probability]));
  const best = answer && answer.predictions.length ? answer.predictions[0].class : null;
  return (
    <ul className="class-bars" data-testid={testid} aria-live="polite">
      {classes.map((name, i) => {
        const p = chance.get(name) ?? 0;
        return (
          <li key={name} data-testid="live-bar" className={name === best ? "best" : ""}>
            <span className="bar-name">{name}</span>
            <span className="bar-track" aria-hidden="true">
              <span className={`bar-fill colour-${i % 6}`} style={{ width: `${(100 * p).toFixed(1)}%` }} />
            </span>
            <span className="bar-value">{answer ? percent(p) : "–"}</span>
          </li>
        );
      })}
    </ul>
  );
}
