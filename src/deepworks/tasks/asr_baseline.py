"""The baseline beside a recogniser of spoken digit strings: what a user could do without one.

deepworks' sound classifier of single spoken digits (`deepworks train --task audio --data fsdd`, trained on FSDD's
own training recordings, the very ones fsdd-strings builds its training strings from) applied to each word of a
string, the words found by their energy: 10 ms frames louder than 15 % of the loudest frame, gaps under 80 ms
closed, pieces under 50 ms dropped (the best of a small grid on 200 strings: these found the right number of words
in 97 % of them). A recogniser that does not beat this has learned nothing a segmenter and a classifier could not.

Only for fsdd-strings with its own split: with --split speaker the classifier would have heard the held-out voice.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ..data.speech import DIGITS, loudness

LOUD, GAP_FRAMES, SHORTEST_FRAMES = 0.15, 8, 5  # of the loudest frame's level; 10 ms frames


def energy_words(wave: np.ndarray, rate: int) -> list[np.ndarray]:
    """The pieces of a recording loud enough to be words, in order."""
    frame = max(1, rate // 100)
    energy = loudness(wave, rate)[::frame]
    loud = energy > LOUD * energy.max(initial=0.0)
    pieces, start, quiet = [], None, 0
    for i, on in enumerate(np.append(loud, False)):
        if on:
            start, quiet = (i if start is None else start), 0
        elif start is not None:
            quiet += 1
            if quiet >= GAP_FRAMES or i == len(loud):
                end = i - quiet + 1
                if end - start >= SHORTEST_FRAMES:
                    pieces.append(wave[start * frame:end * frame])
                start, quiet = None, 0
    return pieces


def segmented_transcripts(classify, waves: list[np.ndarray], rate: int) -> list[str]:
    """Each recording's transcript as `classify` (a list of clips -> one class name each, a digit) hears its
    energy-found words, digits spelled out as fsdd-strings' transcripts spell them."""
    said = []
    for wave in waves:
        pieces = energy_words(wave, rate)
        names = classify(pieces) if pieces else []
        said.append(" ".join(DIGITS[int(n)] if str(n).isdigit() and int(n) < 10 else str(n) for n in names))
    return said


def digit_strings_baseline(data_dir: Path, seed: int, utterances, rate: int) -> dict:
    """Train the digit classifier (about a minute on 2 cores) in a folder of its own, then score the segmented
    transcripts of `utterances` (the test split) as the recogniser is scored."""
    from ..api import train
    from .asr import error_rates

    with tempfile.TemporaryDirectory(prefix="deepworks-asr-baseline-") as tmp:
        classifier = train(task="audio", data="fsdd", data_dir=str(data_dir), seed=seed, runs_dir=tmp,
                           progress=False)
        accuracy = classifier.results["test"]["accuracy"]
        said = segmented_transcripts(lambda clips: [p["predictions"][0]["class"] for p in
                                                    classifier.predict(clips, top_k=1)], utterances.waves, rate)
    return {"model": "FSDD digit classifier over an energy segmentation", "classifier_accuracy": round(accuracy, 4),
            **{k: round(v, 4) for k, v in error_rates(utterances.texts, said).items()}}
