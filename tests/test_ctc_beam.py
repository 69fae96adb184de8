"""CTC beam search against every alignment of small cases, and the character language model's probabilities."""

import itertools
import math

import numpy as np
import pytest

from deepworks.errors import ConfigError
from deepworks.models.ctc_beam import BOUNDARY, CharLM, Lexicon, beam_search, word_list
from deepworks.models.asr import greedy

ALPHABET = [" ", "a", "b"]


def collapsed(path: tuple) -> tuple:
    out, previous = [], 0
    for s in path:
        if s != previous and s != 0:
            out.append(s)
        previous = s
    return tuple(out)


def brute_force(log_probs: np.ndarray, lm, weight: float, bonus: float, lexicon) -> tuple[str, float]:
    """The best transcript by its summed alignments' probability, scored as the search scores it."""
    totals: dict[tuple, float] = {}
    for path in itertools.product(range(log_probs.shape[1]), repeat=len(log_probs)):
        p = float(sum(log_probs[t, s] for t, s in enumerate(path)))
        y = collapsed(path)
        totals[y] = np.logaddexp(totals.get(y, -math.inf), p)
    best = (-math.inf, "")
    for y, p in totals.items():
        text = "".join(ALPHABET[s - 1] for s in y)
        if lexicon is not None and not spelled_from(text, lexicon.words):
            continue
        score = p + bonus * len(y) + (weight * lm.score(text) if lm is not None else 0.0)
        best = max(best, (score, text))
    return best[1], best[0]


def spelled_from(text: str, words) -> bool:
    """Listed words, one space between two (one before the first and after the last allowed)."""
    return "  " not in text and all(w in words for w in text.split())


@pytest.mark.parametrize("seed", range(6))
def test_the_widest_search_finds_the_best_transcript_of_all(seed):
    rng = np.random.default_rng(seed)
    log_probs = np.log(rng.dirichlet(np.full(4, 0.6), size=6))
    lm = CharLM.fit(["ab a", "ba", "aab b", "b"], order=3)
    cases = [(None, 0.0, 0.0, None), (lm, 0.8, 0.4, None), (lm, 0.5, 0.0, Lexicon(["ab", "b", "ba"]))]
    for lm_, weight, bonus, lexicon in cases:
        found, score = beam_search(log_probs, ALPHABET, width=100_000, lm=lm_, weight=weight, bonus=bonus,
                                   lexicon=lexicon, floor=-math.inf)
        text = "".join(ALPHABET[s - 1] for s, _ in found)
        expected, best = brute_force(log_probs, lm_, weight, bonus, lexicon)
        assert score == pytest.approx(best, abs=1e-9), (seed, lexicon)
        assert text == expected or score == pytest.approx(brute_force_score(log_probs, text, lm_, weight, bonus))


def brute_force_score(log_probs, text, lm, weight, bonus):
    target = tuple(ALPHABET.index(c) + 1 for c in text)
    total = -math.inf
    for path in itertools.product(range(log_probs.shape[1]), repeat=len(log_probs)):
        if collapsed(path) == target:
            total = np.logaddexp(total, float(sum(log_probs[t, s] for t, s in enumerate(path))))
    return total + bonus * len(target) + (weight * lm.score(text) if lm is not None else 0.0)


def test_a_word_list_keeps_every_word_whole():
    rng = np.random.default_rng(3)
    log_probs = np.log(rng.dirichlet(np.full(4, 0.3), size=12))
    found, _ = beam_search(log_probs, ALPHABET, width=8, lexicon=Lexicon(["ab", "ba"]))
    text = "".join(ALPHABET[s - 1] for s, _ in found)
    assert text.strip() and spelled_from(text, {"ab", "ba"})


def test_the_search_agrees_with_greedy_where_one_alignment_dominates():
    import torch

    path = [2, 2, 0, 3, 0, 1, 0, 2, 0]
    log_probs = np.full((len(path), 4), math.log(0.01))
    for t, s in enumerate(path):
        log_probs[t, s] = math.log(0.97)
    found, _ = beam_search(log_probs, ALPHABET, width=4)
    assert found == greedy(torch.from_numpy(log_probs)[None], torch.tensor([len(path)]))[0]


def test_the_language_model_gives_probabilities_that_sum_to_one():
    lm = CharLM.fit(["one two", "two one one", "three"], order=4)
    symbols = sorted(set("one two three") | {BOUNDARY})
    for history in ("", "o", "two on", "zz"):
        assert sum(math.exp(lm.log_prob(history, c)) for c in symbols) == pytest.approx(1.0)
    assert lm.score("one two") > lm.score("owt eno")
    again = CharLM.from_dict(lm.to_dict())
    assert again.score("two one") == lm.score("two one")


@pytest.mark.parametrize("bad", [None, {"order": 0, "counts": {}}, {"order": 3, "counts": {"abc": {"a": 1}}},
                                 {"order": 3, "counts": {"a": {"ab": 1}}}, {"order": 3, "counts": {"a": {"b": -1}}},
                                 {"order": 3, "counts": {"": {}}}])
def test_a_damaged_language_model_is_refused(bad):
    with pytest.raises(ConfigError, match="character language model"):
        CharLM.from_dict(bad)


def test_the_word_list_keeps_the_most_frequent_words():
    assert word_list(["b a", "a c", "a"]) == ["a", "b", "c"]
