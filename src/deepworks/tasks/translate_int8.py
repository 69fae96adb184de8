"""--quantize int8 for translation (exporting/quantize.py): the encoder's and the decoder step's weights in int8
(dynamic quantisation), each graph checked on the test split's first references (about MOST_CHECKED words),
teacher-forced: at every word of a reference, the next word the decoder step gives, from the state the trained model
reached on the reference's words before. The decoder step is checked on its own outputs; the encoder on what the
model's own (float) decoder steps make of its outputs. The float and int8 next words must agree
(exporting/quantize.py's AGREEMENT) and be the reference's as often (ACCURACY_DROP). Each step starts from the float
model's state, so a drift that builds up over a whole sentence is not seen here: bench/quantize.py measures whole
translations' BLEU."""

from __future__ import annotations

import numpy as np
import torch

from ..models import evaluating
from ..models.seq2seq import EncoderGraph, StepGraph
from .translate_face import trim


def forced_steps(split: tuple, most: int | None, batch: int = 64):
    """(rows, steps) of a split's (source ids, target ids): a batch of sentences at a time, a step for each word of
    its longest reference after <s>, until about `most` words are covered (None: the whole split)."""
    covered = 0
    for start in range(0, len(split[0]), batch):
        if most is not None and covered >= most:
            return
        rows = slice(start, start + batch)
        steps = int((split[1][rows] != 0).sum(1).max()) - 1
        covered += int((split[1][rows][:, 1:] != 0).sum())
        yield rows, steps


def batch_sources(split: tuple, most: int) -> list[dict]:
    """The encoder's inputs over forced_steps' batches: {'src': ids (N, S)}."""
    return [{"src": trim(split[0][rows]).numpy()} for rows, _ in forced_steps(split, most)]


def teacher_forced(model, split: tuple, most: int | None, encoded: list | None = None):
    """(the decoder step's feed, the model's logits there) at each step of forced_steps, from the model's own encoder
    or from the encoder outputs in `encoded` (one list of arrays per batch, as the encoder graph gives them)."""
    names = list(model.step_needs)
    batches = forced_steps(split, most if encoded is None else None)
    with torch.no_grad(), evaluating(model):
        for b, (rows, steps) in enumerate(batches):
            if encoded is not None and b == len(encoded):
                return
            src, tgt = trim(split[0][rows]), split[1][rows]
            out = EncoderGraph(model, names)(src) if encoded is None else [torch.from_numpy(a) for a in encoded[b]]
            tensors, state = out[:len(names)], out[len(names):]
            step = StepGraph(model, names, len(state))
            for t in range(steps):
                feed = {"prev": tgt[:, t].numpy(), "src": src.numpy(), **{n: v.numpy() for n, v in zip(names, tensors)},
                        **{f"state{i}": s.numpy() for i, s in enumerate(state)}}
                result = step(tgt[:, t], src, *tensors, *state)
                state = result[1:1 + len(state)]
                yield feed, result[0].numpy()


def next_words(split: tuple, count: int) -> np.ndarray:
    """The reference's next word at each of the first `count` teacher-forced steps' rows (0: the sentence ended)."""
    words = [split[1][rows][:, t + 1].numpy() for rows, steps in forced_steps(split, None) for t in range(steps)]
    return np.concatenate(words)[:count]


def compared(logits: dict, nexts: np.ndarray) -> dict:
    """The float and int8 next words ({'float': logits (N, V), 'int8': ...}) against each other and the reference's,
    where the reference has a next word (exporting/quantize.py's top_answers)."""
    from ..exporting.quantize import top_answers

    real = nexts != 0
    return {**top_answers({key: value[real] for key, value in logits.items()}, nexts[real]),
            "of": "words of the test references (the next word, teacher-forced)"}


def int8_check(graph: str, runs: dict, split: tuple, model) -> dict:
    """compared() for the encoder (its outputs through the model's decoder steps) or the decoder step graph (its
    logits); `runs`: {'float': [each feed's outputs], 'int8': [...]}."""
    if graph == "encoder":
        logits = {key: np.concatenate([out for _, out in teacher_forced(model, split, None, outputs)])
                  for key, outputs in runs.items()}
    else:
        logits = {key: np.concatenate([out[0] for out in outputs]) for key, outputs in runs.items()}
    return compared(logits, next_words(split, len(logits["float"])))

