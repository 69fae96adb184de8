"""CTC beam search with a character language model and a word list, both fitted to the training transcripts.

The search is the prefix search of Hannun et al. (2014, "First-pass large vocabulary continuous speech recognition
using bi-directional recurrent DNNs"): it keeps the `width` likeliest transcripts so far (prefixes), each with the
probability of its alignments that end in a blank and of those that end in its last symbol, so that every alignment
of a transcript counts towards it (greedy decoding follows only the likeliest alignment). A transcript y scores

    log P_ctc(y | audio) + weight * log P_lm(y) + bonus * len(y)

where P_lm is a character n-gram model (`CharLM`, Witten-Bell interpolated, its end of transcript included) and the
bonus offsets the language model's pull towards short transcripts. With a word list, a word may only be spelled
as one of the listed words (every prefix of a word is checked, so a wrong word is never started). Symbols may be
characters or SentencePiece pieces (several characters, a leading space starting a word). With a width
that keeps every prefix, the search returns the best-scoring transcript of all (tests/test_ctc_beam.py checks it
against every alignment of small cases).

pyctcdecode does the same with KenLM's word models; KenLM builds from C++ sources that this project cannot install
everywhere, and a character model of the training transcripts is what a small corpus supports.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError

BOUNDARY = "\n"        # the language model's start and end of a transcript (whitespace is collapsed to spaces)
MAX_ORDER = 8
MAX_CONTEXTS = 20_000  # the most contexts a saved model keeps (the most frequent): its size in model.json
MAX_WORDS = 20_000     # the most words a word list keeps (the most frequent)
MAX_WORD_CHARS = 40    # a longer word is left out of a word list
MAX_NEXT = 2_000       # the most characters one context of a saved model may count
MAX_CACHED = 1_000_000  # a server's language model forgets what it computed beyond this many answers
TOP_SYMBOLS = 32       # the most symbols the search tries at a step (pyctcdecode's cutoff_top_n)
NEG = -math.inf


class CharLM:
    """P(next character | the `order` - 1 before it), Witten-Bell interpolated down to a uniform distribution over
    the characters seen and the boundary."""

    def __init__(self, order: int, counts: dict[str, dict[str, int]]):
        self.order, self.counts = order, counts
        self.totals = {h: sum(d.values()) for h, d in counts.items()}
        self.uniform = 1.0 / max(1, len({c for d in counts.values() for c in d}))
        self.cache: dict[tuple[str, str], float] = {}

    @classmethod
    def fit(cls, texts: list[str], order: int = 5) -> CharLM:
        counts: dict[str, dict[str, int]] = {}
        for text in texts:
            padded = BOUNDARY * (order - 1) + text + BOUNDARY
            for i in range(order - 1, len(padded)):
                for k in range(order):
                    d = counts.setdefault(padded[i - k:i], {})
                    d[padded[i]] = d.get(padded[i], 0) + 1
        if len(counts) > MAX_CONTEXTS:  # a context is never more frequent than its suffix: suffixes stay
            kept = sorted(counts, key=lambda h: (-sum(counts[h].values()), len(h), h))[:MAX_CONTEXTS]
            counts = {h: counts[h] for h in kept}
        return cls(order, counts)

    def log_prob(self, history: str, char: str) -> float:
        """log P(char | history), history being the transcript so far (without the start's padding)."""
        h = (BOUNDARY * (self.order - 1) + history)[-(self.order - 1):] if self.order > 1 else ""
        found = self.cache.get((h, char))
        if found is None:
            p = self.uniform
            for k in range(self.order):
                context = h[len(h) - k:]
                d = self.counts.get(context)
                if d is None:
                    break
                p = (d.get(char, 0) + len(d) * p) / (self.totals[context] + len(d))
            if len(self.cache) >= MAX_CACHED:
                self.cache.clear()
            found = self.cache[(h, char)] = math.log(p)
        return found

    def score(self, text: str) -> float:
        """log P_lm(text), its end included."""
        return sum(self.log_prob(text[:i], c) for i, c in enumerate(text + BOUNDARY))

    def to_dict(self) -> dict:
        return {"order": self.order, "counts": self.counts}

    @classmethod
    def from_dict(cls, found) -> CharLM:
        """A saved model, checked (it comes from a file)."""
        order = found.get("order") if isinstance(found, dict) else None
        counts = found.get("counts") if isinstance(found, dict) else None
        if not (isinstance(order, int) and 1 <= order <= MAX_ORDER and isinstance(counts, dict)
                and len(counts) <= MAX_CONTEXTS + 1 and all(
                    isinstance(h, str) and len(h) < order and isinstance(d, dict) and 1 <= len(d) <= MAX_NEXT
                    and all(isinstance(c, str) and len(c) == 1 and isinstance(n, int) and 0 < n < 2 ** 40
                            for c, n in d.items()) for h, d in counts.items())):
            raise ConfigError(f"Expected the run's character language model as an order from 1 to {MAX_ORDER} and "
                              f"at most {MAX_CONTEXTS:,} contexts of counts. Received something else: the run's "
                              f"model.json is damaged.")
        return cls(order, counts)


def word_list(texts: list[str]) -> list[str]:
    """The training transcripts' words, the most frequent first, at most MAX_WORDS."""
    counts: dict[str, int] = {}
    for text in texts:
        for word in text.split():
            counts[word] = counts.get(word, 0) + 1
    return sorted((w for w in counts if len(w) <= MAX_WORD_CHARS), key=lambda w: (-counts[w], w))[:MAX_WORDS]


class Lexicon:
    """A word list's words and every prefix of them."""

    def __init__(self, words: list[str]):
        self.words = set(words)
        self.prefixes = {w[:i] for w in words for i in range(1, len(w) + 1)}

    def allows(self, partial: str, char: str) -> bool:
        """Whether `char` may follow `partial`, the word being spelled ('' after a space)."""
        if char == " ":
            return partial in self.words
        return partial + char in self.prefixes


def beam_search(log_probs: np.ndarray, alphabet: list[str], width: int = 16, lm: CharLM | None = None,
                weight: float = 0.0, bonus: float = 0.0, lexicon: Lexicon | None = None,
                floor: float = -8.0) -> tuple[list[tuple[int, int]], float]:
    """The best transcript of one utterance's log-probabilities (S, K) (blank id 0, symbol i >= 1 being
    alphabet[i - 1]): its (symbol, first step) pairs and its score. At a step, only the TOP_SYMBOLS likeliest
    symbols over `floor` are tried (-inf tries all: what the exactness tests use)."""
    # prefix -> [log P(ending in blank), log P(ending in its symbol), extra, steps, log P of the likeliest single
    # contribution, whose steps it keeps: each symbol's step is where the strongest alignments put it]
    beams = {(): [0.0, NEG, 0.0, (), 0.0]}
    top = min(TOP_SYMBOLS, log_probs.shape[1] - 1) if np.isfinite(floor) else log_probs.shape[1] - 1
    for t, row in enumerate(log_probs.tolist()):
        likeliest = sorted(range(1, len(row)), key=lambda k: -row[k])[:top]
        tried = [s for s in likeliest if row[s] >= floor]
        after: dict[tuple, list] = {}
        for prefix, (pb, pnb, extra, steps, _) in beams.items():
            total = np.logaddexp(pb, pnb)
            same = after.setdefault(prefix, [NEG, NEG, extra, steps, NEG])
            same[0] = np.logaddexp(same[0], total + row[0])
            stronger(same, total + row[0], steps)
            for s in tried:
                if prefix and prefix[-1] == s:
                    same[1] = np.logaddexp(same[1], pnb + row[s])
                    stronger(same, pnb + row[s], steps)
                    into = pb + row[s]
                else:
                    into = total + row[s]
                longer = prefix + (s,)
                entry = after.get(longer)
                if entry is None and longer in beams:  # a beam already: its score's extra is known
                    entry = after[longer] = [NEG, NEG, beams[longer][2], beams[longer][3], NEG]
                elif entry is None:
                    added = extension(prefix, s, alphabet, lm, weight, bonus, lexicon)
                    if added is None:
                        continue
                    entry = after[longer] = [NEG, NEG, extra + added, steps + (t,), NEG]
                entry[1] = np.logaddexp(entry[1], into)
                stronger(entry, into, steps + (t,))
        beams = dict(sorted(after.items(), key=lambda kv: -(np.logaddexp(kv[1][0], kv[1][1]) + kv[1][2]))[:width])
    return best_ending(beams, alphabet, lm, weight, lexicon)


def stronger(entry: list, score: float, steps: tuple) -> None:
    """Keep `steps` as the prefix's symbols' steps if they come with its strongest contribution so far."""
    if score > entry[4]:
        entry[3], entry[4] = steps, score


def extension(prefix: tuple, symbol: int, alphabet: list[str], lm: CharLM | None, weight: float, bonus: float,
              lexicon: Lexicon | None) -> float | None:
    """What spelling `symbol` (a character, or a SentencePiece piece of several) after `prefix` adds to its score,
    or None where the word list forbids it. A space at the very start is allowed (a piece starts a word with one)."""
    text = "".join(alphabet[s - 1] for s in prefix)
    added = bonus
    for char in alphabet[symbol - 1]:
        if lexicon is not None and text and not lexicon.allows(text[text.rfind(" ") + 1:], char):
            return None
        if lm is not None and weight:
            added += weight * lm.log_prob(text, char)
        text += char
    return added


def best_ending(beams: dict, alphabet: list[str], lm: CharLM | None, weight: float,
                lexicon: Lexicon | None) -> tuple[list[tuple[int, int]], float]:
    """The best of the last beams, the language model's end of transcript added; with a word list, only those whose
    last word is whole (all of them when none is)."""
    scored = []
    for prefix, (pb, pnb, extra, steps, _) in beams.items():
        text = "".join(alphabet[s - 1] for s in prefix)
        whole = lexicon is None or text[text.rfind(" ") + 1:] in lexicon.words or not text or text.endswith(" ")
        end = weight * lm.log_prob(text, BOUNDARY) if lm is not None and weight else 0.0
        scored.append((not whole, -(np.logaddexp(pb, pnb) + extra + end), prefix, steps))
    flag, negative, prefix, steps = min(scored)
    return list(zip(prefix, steps)), -negative


class Decoder:
    """A run's decoding: greedy, or the beam search with its language model and word list (from its meta)."""

    def __init__(self, alphabet: list[str], lm: dict | None = None, words: list[str] | None = None):
        self.alphabet, self.saved = alphabet, (lm, words)
        self.made: tuple | None = None  # (CharLM, Lexicon), made when a beam search first needs them

    def __call__(self, log_probs: list[np.ndarray], beam: int = 1, lm_weight: float = 0.0, bonus: float = 0.0,
                 words: bool = False) -> list[list[tuple[int, int]]]:
        """Each utterance's (symbol, first step) pairs from its log-probabilities (S, K) over its real steps; a beam
        of 1 is greedy decoding, whatever the language model's weight."""
        import torch

        from .asr import greedy

        if beam <= 1:
            return [greedy(torch.from_numpy(lp)[None], torch.tensor([len(lp)]))[0] for lp in log_probs]
        if self.made is None:
            lm, listed = self.saved
            self.made = (CharLM.from_dict(lm) if lm else None, Lexicon(listed) if listed else None)
        lm, lexicon = self.made
        return [beam_search(lp, self.alphabet, beam, lm, lm_weight, bonus, lexicon if words else None)[0]
                for lp in log_probs]

    def texts(self, log_probs: list[np.ndarray], **decoding) -> list[str]:
        return ["".join(self.alphabet[s - 1] for s, _ in found).strip() for found in self(log_probs, **decoding)]
