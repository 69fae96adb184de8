// Model: a template per task, or a design of your own as a stack of layer cards (shapes and parameters as you edit).
import { lazy, Suspense, useEffect, useState } from "react";
import { call } from "../api.js";

// the graph (React Flow) is a part of the script of its own, loaded when the graph is first opened
const GraphView = lazy(() => import("../GraphView.jsx"));
import { cardOf, designsImages } from "../cards.js";

const LENET = [
  { type: "conv", channels: 6, kernel: 5, padding: 2 }, { type: "activation", function: "relu" }, { type: "pool", size: 2 },
  { type: "conv", channels: 16, kernel: 5 }, { type: "activation", function: "relu" }, { type: "pool", size: 2 },
  { type: "dense", units: 120 }, { type: "activation", function: "relu" }, { type: "dense", units: 84 },
  { type: "activation", function: "relu" },
];

export default function ModelPage({ info, choice, update, go }) {
  const card = cardOf(info, choice.task);
  return (
    <section>
      <h2>The model</h2>
      <div className="templates" role="radiogroup" aria-label="model">
        {card.templates.map((t) => (
          <label key={t.model} className={choice.model === t.model ? "template chosen" : "template"}>
            <input type="radio" name="model" data-testid={`template-${t.model}`} checked={choice.model === t.model}
                   onChange={() => update({ model: t.model })} />
            <b>{t.model}</b> <span>{t.about}</span>
          </label>
        ))}
      </div>
      {designsImages(card) && <ImageSize choice={choice} update={update} />}
      {choice.model === "layers" && <Designer info={info} choice={choice} update={update} />}
      <button className="next" data-testid="to-train" onClick={() => go("Train")}>Next: train →</button>
    </section>
  );
}

// The one image size: the designer checks its cards at it and the Train page's --image-size is the same value.
export function ImageSize({ choice, update }) {
  const shown = choice.preview && choice.preview.image_size;
  const fallback = choice.model === "layers"
    ? `${shown ? `${shown} px, ` : ""}the size the Data page shows`
    : `the model's own${shown ? ` (the Data page shows ${shown} px)` : ""}`;
  return (
    <p className="image-size">
      <label>
        Image size{" "}
        <input data-testid="image-size" type="number" min={1} step={1} style={{ width: "6em" }}
               value={choice.image_size ?? ""} placeholder={shown ? String(shown) : "default"}
               onChange={(e) => update({ image_size: e.target.value === "" ? null : Number(e.target.value) })} /> px
      </label>{" "}
      <small>Every image is resized to this square before the model sees it; the designer checks its cards at this
        size and training uses the same (--image-size). Empty: {fallback}.</small>
    </p>
  );
}

function Designer({ info, choice, update }) {
  const layers = choice.layers || [];
  const [answer, setAnswer] = useState(null);
  const [error, setError] = useState("");
  const [yamlText, setYamlText] = useState("");
  const [graphOpen, setGraphOpen] = useState(false);
  // the server works out what the design receives from the data at the page's image size (the job gets the same)
  const images = designsImages(cardOf(info, choice.task));
  const size = images && Number.isInteger(choice.image_size) ? choice.image_size : null;
  const where = choice.data
    ? { task: choice.task, data: choice.data, ...(size ? { image_size: size } : {}) }
    : { input: [1, size || 28, size || 28], classes: 10 };

  useEffect(() => {
    if (!layers.length) { setAnswer(null); setError(""); return; }
    let live = true;
    call("/api/design", { json: { layers, ...where } }).then(
      (a) => { if (live) { setAnswer(a); setError(""); setYamlText(a.yaml); } },
      (e) => { if (live) { setAnswer(null); setError(e.message); } });
    return () => { live = false; };
  }, [JSON.stringify(layers), JSON.stringify(where)]);

  const setLayers = (next) => update({ layers: next });
  const kinds = (info.cards_for && info.cards_for[choice.task]) || Object.keys(info.cards); // the cards this task takes
  async function loadYaml() {
    try {
      const a = await call("/api/design", { json: { yaml: yamlText, ...where } });
      setLayers(a.layers);
    } catch (e) {
      setError(e.message);
    }
  }

  return (
    <div className="designer" data-testid="designer">
      <p data-testid="design-input">
        {answer ? <>Input: {answer.input.join("×")} → {answer.classes}{" "}
          {answer.input[0] === "T" ? "characters scored at every position" : "classes"}. </> : null}
        Each card shows what it outputs; the head (one unit per class) follows the last card.</p>
      <Stack cards={layers} setCards={setLayers} info={info} kinds={kinds} plan={answer && answer.plan} path="card" />
      <div className="palette" role="group" aria-label="add a card">
        Add: {kinds.map((kind) => (
          <button key={kind} data-testid={`add-${kind}`} onClick={() => setLayers([...layers, { type: kind }])}>+ {kind}</button>
        ))}
        {images && <button data-testid="load-lenet" onClick={() => setLayers(LENET)}>LeNet-5 as cards</button>}
        <button data-testid="clear-design" onClick={() => setLayers([])}>Clear</button>
      </div>
      {error && <p className="error" data-testid="design-error">{error}</p>}
      {answer && (
        <p data-testid="design-total">
          Head: {answer.plan[answer.plan.length - 1].output.join("×")} outputs.{" "}
          <b data-testid="design-parameters">{answer.parameters.toLocaleString("en-US")}</b> parameters in all.
        </p>
      )}
      <details data-testid="graph-toggle" onToggle={(e) => setGraphOpen(e.currentTarget.open)}>
        <summary>The same model as a graph</summary>
        {answer && graphOpen && (
          <Suspense fallback={<p className="busy graph-loading"><span className="spinner" aria-hidden="true" /> Drawing the graph…</p>}>
            <GraphView layers={answer.layers} plan={answer.plan} input={answer.input} />
          </Suspense>
        )}
      </details>
      <details open>
        <summary>The design as YAML (what the run saves; paste one here and load it)</summary>
        <textarea data-testid="design-yaml" aria-label="the design as YAML" rows={12} cols={70} value={yamlText}
                  onChange={(e) => setYamlText(e.target.value)} />
        <br />
        <button data-testid="load-yaml" onClick={loadYaml}>Load this YAML</button>
      </details>
    </div>
  );
}

function Stack({ cards, setCards, info, kinds, plan, path }) {
  const change = (i, card) => setCards(cards.map((c, j) => (j === i ? card : c)));
  const move = (i, d) => {
    const next = [...cards];
    [next[i], next[i + d]] = [next[i + d], next[i]];
    setCards(next);
  };
  return (
    <ol className="stack">
      {cards.map((card, i) => {
        const row = plan && plan[i];
        const id = `${path}-${i + 1}`;
        return (
          <li key={i} className="card" data-testid={id}>
            <select data-testid={`${id}-type`} aria-label={`card ${id.split("-").slice(1).join(".")}: kind`} value={card.type} onChange={(e) => change(i, { type: e.target.value })}>
              {kinds.map((k) => <option key={k}>{k}</option>)}
            </select>
            {Object.entries(info.cards[card.type] || {}).filter(([k]) => k !== "layers").map(([key, dflt]) => (
              <label key={key}>
                {key}{" "}
                <CardSetting id={`${id}-${key}`} value={card[key] ?? dflt} dflt={dflt} name={key} type={card.type}
                             onChange={(v) => change(i, { ...card, [key]: v })} />
              </label>
            ))}
            <span className="shape" data-testid={`${id}-shape`}>
              {row ? `→ ${row.output.join("×")} · ${row.parameters.toLocaleString("en-US")} params` : ""}
            </span>
            <span className="tools">
              <button title="up" aria-label={`move card ${i + 1} up`} disabled={i === 0} onClick={() => move(i, -1)}>↑</button>
              <button title="down" aria-label={`move card ${i + 1} down`} disabled={i === cards.length - 1} onClick={() => move(i, 1)}>↓</button>
              <button title="delete" aria-label={`delete card ${i + 1}`} data-testid={`${id}-delete`} onClick={() => setCards(cards.filter((_, j) => j !== i))}>✕</button>
            </span>
            {card.type === "residual" && (
              <div className="inner">
                <Stack cards={card.layers || []} setCards={(inner) => change(i, { ...card, layers: inner })} info={info}
                       kinds={kinds} plan={null} path={id} />
                {kinds.filter((k) => k !== "residual").map((kind) => (
                  <button key={kind} data-testid={`${id}-add-${kind}`}
                          onClick={() => change(i, { ...card, layers: [...(card.layers || []), { type: kind }] })}>+ {kind}</button>
                ))}
              </div>
            )}
          </li>
        );
      })}
    </ol>
  );
}

const OPTIONS = { function: ["relu", "leaky_relu", "gelu", "tanh", "sigmoid"], kind: ["max", "avg"],
                  "recurrent.kind": ["lstm", "gru", "rnn"] };

function CardSetting({ id, value, dflt, name, type, onChange }) {
  const options = OPTIONS[`${type}.${name}`] || OPTIONS[name];
  if (options) {
    return (
      <select data-testid={id} value={value} onChange={(e) => onChange(e.target.value)}>
        {options.map((o) => <option key={o}>{o}</option>)}
      </select>
    );
  }
  const isRate = typeof dflt === "number" && !Number.isInteger(dflt);
  return (
    <input data-testid={id} type="number" step={isRate ? 0.05 : 1} value={value} style={{ width: "5em" }}
           onChange={(e) => onChange(e.target.value === "" ? "" : Number(e.target.value))} />
  );
}
