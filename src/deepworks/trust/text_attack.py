"""Word substitution: can a text classifier's answer be flipped by changing a few words for their neighbours?

A greedy black-box attack in the manner of Alzantot et al. (2018) and TextFooler (Jin et al. 2020), with the
neighbours taken from the model's own embedding space instead of external word vectors (deepworks ships none):

1. rank the text's words by how much deleting each lowers the probability of the true class;
2. for the most important word not yet changed, try its `neighbours` nearest words (cosine, among the words of the
   data) and keep the one that lowers the true class most;
3. repeat up to `max_words` times; the text is flipped when the model's answer is no longer the true class.

A word's vector is the mean of the model's embedding rows of the ids the run's encoder gives that word alone
(a hashed word, SentencePiece or WordPiece pieces). The success rate after 1, 2, ... changed words says how brittle
the model is: a sentiment model flipped by swapping one word for a near-synonym leans on single words.
Only texts the model gets right are attacked. Neighbours in an embedding are related, not always synonyms ("good"
and "bad" are close in many models), so the examples should be read, as the paper's authors read theirs.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from pathlib import Path

import numpy as np

WORD = re.compile(r"[^\W\d_]{2,}")  # a word of two letters or more: what may be replaced
VOCABULARY = 5000       # candidate replacements: the data's most frequent words
MAX_POSITIONS = 48      # words of a text that may be ranked and replaced (its first ones)
SHOWN = 12              # flipped examples kept in the result


def word_vectors(encoder, embedding: np.ndarray, words: list[str]) -> np.ndarray:
    """(len(words), D) unit vectors: each word's ids' embedding rows (the encoder's special ids left out), averaged."""
    special = set(encoder.encode([""])[0].tolist()) - {0}  # [CLS] and [SEP], or the unknown id of an empty text
    ids = encoder.encode(words)
    out = np.zeros((len(words), embedding.shape[1]), dtype=np.float32)
    for i, row in enumerate(ids):
        keep = [t for t in row.tolist() if t != 0 and t not in special]
        if keep:
            out[i] = embedding[keep].mean(0)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def vocabulary(texts: list[str], size: int = VOCABULARY) -> list[str]:
    counts = Counter(w.lower() for text in texts for w in WORD.findall(text))
    return [w for w, _ in counts.most_common(size)]


def replaced(text: str, span: tuple[int, int], word: str) -> str:
    return text[:span[0]] + word + text[span[1]:]


def attack_text(text: str, label: int, probabilities, neighbours_of, max_words: int, neighbours: int) -> dict:
    """One text's greedy attack. `probabilities(texts)` -> (N, K); `neighbours_of(word, k)` -> k words."""
    spans = [m.span() for m in WORD.finditer(text)][:MAX_POSITIONS]
    if not spans:
        return {"flipped_at": None, "text": text}
    deleted = [replaced(text, s, "") for s in spans]
    importance = probabilities([text] + deleted)[:, label]
    order = np.argsort(importance[1:] - importance[0], kind="stable")  # the largest drop first
    current, changed = text, []
    for position in order[:max_words]:
        start, end = spans[position]
        before = sum(len(new) - len(old) for (s, old, new) in changed if s < start)  # earlier changes moved it
        span = (start + before, end + before)
        word = current[span[0]:span[1]]
        options = [w for w in neighbours_of(word.lower(), neighbours + 1) if w != word.lower()][:neighbours]
        if not options:
            continue
        tries = [replaced(current, span, w) for w in options]
        probs = probabilities(tries)
        best = int(np.argmin(probs[:, label]))
        changed.append((start, word, options[best]))
        current = tries[best]
        if int(probs[best].argmax()) != label:
            return {"flipped_at": len(changed), "text": current, "changes": [(w, n) for _, w, n in changed],
                    "now": int(probs[best].argmax()), "confidence": float(probs[best].max())}
    return {"flipped_at": None, "text": current}


def substitution_attack(texts: list[str], labels: np.ndarray, probabilities, encoder, embedding: np.ndarray,
                        vocabulary_texts: list[str], classes: list[str], max_words: int = 3,
                        neighbours: int = 10) -> dict:
    """Attack each text the model gets right; the success rate after each number of changed words, and examples."""
    words = vocabulary(vocabulary_texts)
    table = word_vectors(encoder, embedding, words)
    usable = np.linalg.norm(table, axis=1) > 0
    cache: dict[str, list[str]] = {}

    def neighbours_of(word: str, k: int) -> list[str]:
        if word not in cache:
            v = word_vectors(encoder, embedding, [word])[0]
            scores = np.where(usable, table @ v, -np.inf)
            cache[word] = [words[i] for i in np.argsort(-scores, kind="stable")[:k] if np.isfinite(scores[i])]
        return cache[word][:k]

    first = probabilities(texts).argmax(1)
    right = [i for i in range(len(texts)) if first[i] == labels[i]]
    found = [attack_text(texts[i], int(labels[i]), probabilities, neighbours_of, max_words, neighbours)
             for i in right]
    flipped_at = [f["flipped_at"] for f in found]
    flipped = [sum(1 for a in flipped_at if a is not None and a <= k) for k in range(1, max_words + 1)]
    curve = [{"words": k, "flipped": n, "success_rate": round(n / max(len(right), 1), 4)}
             for k, n in enumerate(flipped, start=1)]
    examples = [{"text": texts[i], "adversarial": f["text"], "label": classes[int(labels[i])],
                 "now": classes[f["now"]], "confidence": round(f["confidence"], 4), "changes": f["changes"]}
                for i, f in zip(right, found) if f["flipped_at"] is not None][:SHOWN]
    return {"method": "word substitution (greedy, neighbours in the model's embedding)", "texts": len(texts),
            "attacked": len(right), "clean_accuracy": round(len(right) / max(len(texts), 1), 4),
            "max_words": max_words, "neighbours": neighbours, "vocabulary": int(usable.sum()), "curve": curve,
            "success_rate": curve[-1]["success_rate"] if curve else 0.0, "examples": examples}


def plot_success(result: dict, path: Path) -> Path:
    from ..report import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    curve = result["curve"]
    ax.plot([0] + [p["words"] for p in curve], [0] + [p["success_rate"] for p in curve], "o-", color="#c44e52")
    ax.set(xlabel="words changed (at most)", ylabel="texts flipped", ylim=(0, 1),
           title=f"Word substitution on {result['attacked']} texts it got right")
    ax.set_xticks(range(0, result["max_words"] + 1))
    ax.grid(alpha=0.3)
    save_figure(fig, path)
    return path


def examples_html(result: dict) -> str:
    """The flipped texts, the changed words marked."""
    rows = []
    for e in result["examples"]:
        shown = html.escape(e["adversarial"])
        for _, new in e["changes"]:
            shown = re.sub(rf"\b{re.escape(html.escape(new))}\b", f"<mark>{html.escape(new)}</mark>", shown, count=1)
        swaps = ", ".join(f"{html.escape(a)} → {html.escape(b)}" for a, b in e["changes"])
        rows.append(f"<tr><td>{shown}</td><td>{swaps}</td><td>{html.escape(e['label'])}</td>"
                    f"<td>{html.escape(e['now'])} ({e['confidence']:.2f})</td></tr>")
    return ("<table><thead><tr><th>text after the attack</th><th>changed</th><th>label</th><th>now said</th></tr>"
            "</thead><tbody>" + "".join(rows) + "</tbody></table>")


def word_attack_run(trained, max_words: int = 3, samples: int = 200, neighbours: int = 10, out=None) -> dict:
    """`deepworks attack RUN --method words` on a text classification run: the first `samples` test texts
    attacked, the success curve and the flipped examples written (into the run's report folder, or `out`)."""
    import torch

    from ..errors import ConfigError, DeepworksError
    from ..run import atomic_write_json, atomic_write_text
    from .tools import output_dir

    trained.require("classify", "attack --method words")
    limits = (("--words", max_words, 10), ("--samples", samples, 5000), ("--neighbours", neighbours, 50))
    for name, value, top in limits:
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= top:
            raise ConfigError(f"Expected {name} from 1 to {top}. Received: {value!r}.")
    table = getattr(trained.model, "embedding", None)
    if not isinstance(table, torch.nn.Embedding):
        raise DeepworksError(f"attack --method words needs the model's token embedding, and '{trained.run.path}' "
                             f"runs an imported ONNX file. Attack the run that trained it.")
    task, face = trained.task, trained.face
    task.prepare(progress=False)
    texts, labels = task.texts["test"][:samples], task.labels["test"][:samples]
    if not texts:
        raise DeepworksError(f"'{trained.run.path}' has no test texts to attack.")
    model = face.serving_model(trained.model)

    def probabilities(batch: list[str]) -> np.ndarray:
        return np.stack([r["probabilities"] for r in face.infer(model, batch, trained.device, {})])

    from ..tasks.textclass_face import encoder_of

    result = substitution_attack(texts, labels, probabilities, encoder_of(face.meta),
                                 table.weight.detach().float().cpu().numpy(), task.texts["train"] + texts,
                                 face.meta["classes"], max_words, neighbours)
    folder = output_dir(trained, out)
    files = {"curve": str(plot_success(result, folder / "attack-words.png")),
             "examples": str(folder / "attack-words.html"), "json": str(folder / "attack-words.json")}
    atomic_write_text(Path(files["examples"]), "<!doctype html><meta charset='utf-8'><title>Word substitution"
                      "</title>" + examples_html(result))
    result["files"] = files
    atomic_write_json(Path(files["json"]), result)
    return result
