"""The data audit's checks for text classification, before every training run: the problems that make a text model
look better (or worse) than it is.

- class balance, as for images (data/audit.py);
- the same text within a split and across splits (leakage: a test text the model trained on inflates its score),
  compared after lower-casing and collapsing white space, so that a copy with another capital or line break counts;
- the same text under two labels;
- words that alone predict a class: a word in at least 1 % of the training texts (and 20 of them) whose texts all
  but 1 % have one class. Most are honest (a German word in a language identifier), and the list says what a model
  can lean on; a word that is the class's own name (a label written into the text) is a warning.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

import numpy as np

from .audit import Finding, class_balance, exact_duplicates, label_conflicts

WORD = re.compile(r"\w+")
SHORTCUT_SHARE, SHORTCUT_TEXTS, SHORTCUT_PURITY = 0.01, 20, 0.99
SHOWN_WORDS = 8


def normal(text: str) -> str:
    return " ".join(text.lower().split())


def text_groups(splits: dict[str, list[str]]) -> dict[str, list[tuple[str, int]]]:
    """Normalised text -> every (split, index) holding it."""
    where: dict[str, list[tuple[str, int]]] = {}
    for split, texts in splits.items():
        for i, text in enumerate(texts):
            where.setdefault(normal(text), []).append((split, i))
    return where


def shortcut_words(texts: list[str], labels: np.ndarray, classes: list[str]) -> list[Finding]:
    """The words that alone tell a class in the training texts (see the module)."""
    seen: dict[str, Counter] = defaultdict(Counter)
    for text, label in zip(texts, labels):
        for word in set(WORD.findall(text.lower())):
            seen[word][int(label)] += 1
    least = max(SHORTCUT_TEXTS, int(SHORTCUT_SHARE * len(texts)))
    found = []
    for word, counts in seen.items():
        total = sum(counts.values())
        label, top = counts.most_common(1)[0]
        if total >= least and top >= SHORTCUT_PURITY * total:
            found.append((total, word, classes[label], top))
    if not found:
        return []
    found.sort(reverse=True)
    leaks = [(w, c) for _, w, c, _ in found if w == normal(c)]
    shown = ", ".join(f"'{w}' ({c}: {top:,} of {total:,} texts)" for total, w, c, top in found[:SHOWN_WORDS])
    details = {"words": [{"word": w, "class": c, "texts": total, "of_class": top} for total, w, c, top in found[:50]]}
    if leaks:
        return [Finding("shortcut", "warning",
                        f"The class's own name is written in its texts: {', '.join(repr(w) for w, _ in leaks[:5])}.",
                        "A model learns to read the label rather than the text: remove it from the texts.", details)]
    return [Finding("shortcut", "info", f"{len(found)} word(s) alone tell a class in the training texts: {shown}.",
                    "A model can lean on them: check they are not a leak (a source's signature, a template).",
                    details)]


def audit_texts(texts: dict[str, list[str]], labels: dict[str, np.ndarray], classes: list[str]) -> list[Finding]:
    """Every check, over the splits' texts and labels (split -> list, split -> int array)."""
    def name(split: str, i: int) -> str:
        text = texts[split][i]
        return f"{split} #{i} ({text[:40]}{'…' if len(text) > 40 else ''})"

    where = text_groups(texts)
    return (class_balance(labels["train"], classes, noun="text") + exact_duplicates(where, name, noun="text")
            + label_conflicts(where, labels, classes, name, noun="text")
            + shortcut_words(texts["train"], labels["train"], classes))
