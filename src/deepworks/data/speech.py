"""Recordings with their transcripts, for speech recognition: the readers of the common layouts and the built-in
`fsdd-strings`.

Layouts of a folder (found in this order):
- LJSpeech: `metadata.csv`, rows `ID|transcript[|normalised transcript]` (the last column is used), the audio in
  `wavs/ID.wav` (or `ID.wav` beside the file);
- Common Voice: a `.tsv` with `path` and `sentence` columns (`validated.tsv`, `train.tsv`, ...; a `client_id`
  column names the speaker), the audio in `clips/` (or beside the file);
- pairs: `NAME.wav` (or .flac, .ogg, .mp3) beside `NAME.txt`, anywhere under the folder.

Every recording becomes float32 mono at one rate (the most common one, or --sample-rate). Nothing is dropped
silently: a recording without a transcript, a transcript without a recording, an empty transcript and an unreadable
file are each skipped with a line naming them (--strict stops instead).

`tones:N` makes N strings of tone words, nothing to download: each letter of a-e a 90 ms tone of its own pitch, the
words 2 to 4 letters long, 1 to 3 words an utterance ("bad ace"), seeded; what the tests and a first run train on.

`fsdd-strings` makes spoken digit strings ("three one four") from the Free Spoken Digit Dataset: recordings of one
speaker, trimmed of their silence, joined with short random gaps and light noise, seeded. Its official split builds
the test strings from FSDD's test recordings (0-4 of each speaker and digit) and the others from the rest.
"""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from .arrays import DataWarning
from .audio import SILENCE, UnreadableAudio, read_audio, resample

SPEECH_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
MAX_UTTERANCE_SECONDS = 60.0   # a longer training recording is skipped: cut it into sentences
MIN_UTTERANCE_SECONDS = 0.1    # a shorter one too: not a word, and under a feature frame or two
MAX_TRANSCRIPT_CHARS = 2_000
STRING_DIGITS = (2, 7)         # fsdd-strings: digits per string, at least and at most
GAP_SECONDS = (0.05, 0.25)     # the pause between two digits
NOISE_DB = 35.0                # the light noise under a string, below its peak


@dataclass
class Utterances:
    """Recordings with transcripts: `waves` float32 mono at `rate`, `texts` their transcripts, `names` where each
    came from, `speakers` who spoke (when known), `split` the source's own ({'train': [...], 'test': [...]})."""
    waves: list[np.ndarray]
    texts: list[str]
    rate: int
    names: list[str]
    description: str
    speakers: list[str] | None = None
    split: dict | None = None
    notes: list[str] = field(default_factory=list)


# --- the three layouts ------------------------------------------------------------------------------------------------
def find_pairs(folder: Path) -> tuple[list[tuple[Path, str, str | None]], list[str], str]:
    """(audio file, transcript, speaker) of a folder in whichever layout it has, what was skipped, the layout."""
    if (folder / "metadata.csv").is_file():
        return *ljspeech_pairs(folder / "metadata.csv"), "LJSpeech (metadata.csv)"
    tables = [t for t in sorted(folder.glob("*.tsv")) if "sentence" in header_of(t)]
    if tables:
        table = next((t for t in tables if t.name == "validated.tsv"), tables[0])
        return *common_voice_pairs(table), f"Common Voice ({table.name})"
    return *beside_pairs(folder), "recordings beside their .txt transcripts"


def header_of(table: Path) -> list[str]:
    with table.open(encoding="utf-8", errors="replace", newline="") as f:
        return next(csv.reader(f, delimiter="\t"), [])


def ljspeech_pairs(metadata: Path) -> tuple[list, list[str]]:
    folder, pairs, skipped = metadata.parent, [], []
    audio_dir = folder / "wavs" if (folder / "wavs").is_dir() else folder
    with open_text(metadata) as f:
        for row_number, row in enumerate(csv.reader(f, delimiter="|", quoting=csv.QUOTE_NONE), start=1):
            if len(row) < 2 or not row[0].strip():
                shown = "|".join(row)[:80]
                skipped.append(f"{metadata.name} row {row_number}: expected ID|transcript, received {shown!r}")
                continue
            pairs.append((audio_dir / f"{row[0].strip()}.wav", row[-1], None))
    return pairs, skipped


def common_voice_pairs(table: Path) -> tuple[list, list[str]]:
    folder, pairs, skipped = table.parent, [], []
    audio_dir = folder / "clips" if (folder / "clips").is_dir() else folder
    with open_text(table) as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        if "path" not in (reader.fieldnames or []):
            raise DataError(f"{table}: Expected Common Voice's columns 'path' and 'sentence'. Received: "
                            f"{', '.join(reader.fieldnames or [])}.")
        for row_number, row in enumerate(reader, start=2):
            if not (row.get("path") or "").strip():
                skipped.append(f"{table.name} row {row_number}: no path")
                continue
            pairs.append((audio_dir / row["path"].strip(), row.get("sentence") or "", row.get("client_id") or None))
    return pairs, skipped


def beside_pairs(folder: Path) -> tuple[list, list[str]]:
    audio = sorted(p for p in folder.rglob("*") if p.suffix.lower() in SPEECH_EXTENSIONS and p.is_file())
    transcripts = {p.with_suffix("") for p in folder.rglob("*.txt")}
    pairs = [(p, read_transcript(p.with_suffix(".txt")), None) for p in audio if p.with_suffix("") in transcripts]
    heard = {p.with_suffix("") for p in audio}
    skipped = [f"{p.relative_to(folder)}: no transcript (expected {p.with_suffix('.txt').name} beside it)"
               for p in audio if p.with_suffix("") not in transcripts]
    skipped += [f"{t.relative_to(folder)}.txt: a transcript without a recording" for t in sorted(transcripts - heard)]
    return pairs, skipped


def open_text(path: Path):
    return path.open(encoding="utf-8", errors="strict", newline="")


def read_transcript(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")[:MAX_TRANSCRIPT_CHARS + 1]
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: Expected a UTF-8 transcript. Received a byte that is not UTF-8 at {err.start}. "
                        f"Re-save it as UTF-8.") from None


def load_folder(folder: Path, rate: int | None, strict: bool) -> Utterances:
    """A folder's recordings and transcripts (see the module's docstring), read at one rate."""
    if not folder.is_dir():
        raise DataError(f"'{folder}' is not a folder. Expected a folder of recordings with transcripts (LJSpeech's "
                        f"metadata.csv, a Common Voice .tsv, or NAME.wav beside NAME.txt).")
    pairs, skipped, layout = find_pairs(folder)
    waves, texts, names, speakers = [], [], [], []
    for path, text, speaker in pairs:
        text = " ".join(text.split())
        why = ("an empty transcript" if not text else f"a transcript over {MAX_TRANSCRIPT_CHARS:,} characters"
               if len(text) > MAX_TRANSCRIPT_CHARS else None)
        try:
            if why is None:
                wave, found_rate = read_recording(path)
        except UnreadableAudio as err:
            why = str(err)
        if why is not None:
            skipped.append(f"{path.relative_to(folder) if path.is_relative_to(folder) else path}: {why}")
            continue
        waves.append((wave, found_rate))
        texts.append(text)
        names.append(str(path))
        speakers.append(speaker)
    description = f"{folder} ({layout})"
    notes = skipped_notes(skipped, strict, description)
    if not waves:
        raise DataError(f"{description} has no usable recording with a transcript."
                        + (f" Skipped: {'; '.join(skipped[:5])}" if skipped else ""))
    rates = [r for _, r in waves]
    rate = rate or max(set(rates), key=rates.count)
    known = [s for s in speakers if s]
    return Utterances([resample(w, r, rate) if r != rate else w for w, r in waves], texts, rate, names,
                      description, speakers if len(known) == len(speakers) else None, notes=notes)


def read_recording(path: Path) -> tuple[np.ndarray, int]:
    """One recording as float32 mono and its rate; UnreadableAudio for a missing, silent or too long one."""
    if not path.is_file():
        raise UnreadableAudio("no such file")
    samples, rate = read_audio(path, notes=[])
    wave = samples.mean(1).astype(np.float32) if samples.ndim == 2 else samples.astype(np.float32)
    if len(wave) > MAX_UTTERANCE_SECONDS * rate:
        raise UnreadableAudio(f"{len(wave) / rate:.0f} s long: over {MAX_UTTERANCE_SECONDS:.0f} s, cut it into "
                              f"sentences to train on it")
    if len(wave) < MIN_UTTERANCE_SECONDS * rate:
        raise UnreadableAudio(f"{len(wave) / rate * 1000:.0f} ms long: too short to hold a word (at least "
                              f"{MIN_UTTERANCE_SECONDS * 1000:.0f} ms)")
    if np.abs(wave).max(initial=0.0) < SILENCE:
        raise UnreadableAudio("silence only (every sample under 0.0001)")
    return wave, rate


def skipped_notes(skipped: list[str], strict: bool, description: str) -> list[str]:
    if not skipped:
        return []
    listed = "\n  ".join(skipped[:20]) + (f"\n  ... and {len(skipped) - 20} more" if len(skipped) > 20 else "")
    if strict:
        raise DataError(f"{description}: {len(skipped)} recording(s) or transcript(s) cannot be used "
                        f"(--strict):\n  {listed}")
    message = f"{description}: {len(skipped)} recording(s) or transcript(s) skipped:\n  {listed}"
    warnings.warn(message, DataWarning, stacklevel=3)
    return [message]


# --- fsdd-strings -----------------------------------------------------------------------------------------------------
def loudness(wave: np.ndarray, rate: int) -> np.ndarray:
    """Each sample's level: the root mean square of the 10 ms around it."""
    frame = max(1, rate // 100)
    return np.sqrt(np.convolve(wave ** 2, np.ones(frame) / frame, mode="same"))


def trimmed_digit(wave: np.ndarray, rate: int) -> np.ndarray:
    """A recording without its leading and trailing quiet (frames of 10 ms under a twentieth of the loudest)."""
    energy = loudness(wave, rate)
    loud = np.flatnonzero(energy > 0.05 * energy.max(initial=0.0))
    return wave[loud[0]:loud[-1] + 1] if len(loud) else wave


def make_strings(recordings: dict, count: int, rng: np.random.Generator, rate: int) -> tuple[list, list, list]:
    """`count` strings: a speaker, 2-7 digits, one recording of that speaker for each digit, joined. `recordings`
    maps speaker -> digit -> the recordings' paths, each read (and trimmed) only when first drawn."""
    speakers = sorted(recordings)
    waves, texts, who, read = [], [], [], {}
    for _ in range(count):
        speaker = speakers[int(rng.integers(len(speakers)))]
        digits = rng.integers(0, 10, int(rng.integers(STRING_DIGITS[0], STRING_DIGITS[1] + 1)))
        parts = []
        for d in digits:
            choices = recordings[speaker][int(d)]
            path = choices[int(rng.integers(len(choices)))]
            if path not in read:
                wave, found = read_recording(path)
                read[path] = trimmed_digit(resample(wave, found, rate) if found != rate else wave, rate)
            parts += [read[path], np.zeros(int(rng.uniform(*GAP_SECONDS) * rate), np.float32)]
        wave = np.concatenate([np.zeros(int(0.1 * rate), np.float32)] + parts)
        noise = rng.standard_normal(len(wave)).astype(np.float32) * np.abs(wave).max() * 10 ** (-NOISE_DB / 20)
        waves.append(np.clip(wave + noise, -1, 1))
        texts.append(" ".join(DIGITS[int(d)] for d in digits))
        who.append(speaker)
    return waves, texts, who


def load_fsdd_strings(data_dir: Path, seed: int = 0, train_strings: int = 1500, test_strings: int = 300) -> Utterances:
    """Spoken digit strings from FSDD (see the module's docstring): the train strings from recordings 5-49 of each
    speaker and digit, the test strings from recordings 0-4."""
    from .audio import fsdd_recordings

    folder, recordings = data_dir / "fsdd", fsdd_recordings(data_dir)
    parts = {"train": {}, "test": {}}
    rate = 8000
    for path in sorted(recordings.glob("*.wav")):
        digit, speaker, index = path.stem.split("_")
        part = parts["test" if int(index) < 5 else "train"]
        part.setdefault(speaker, {d: [] for d in range(10)})[int(digit)].append(path)
    rng = np.random.default_rng(seed)
    train = make_strings(parts["train"], train_strings, rng, rate)
    test = make_strings(parts["test"], test_strings, rng, rate)
    n = len(train[0])
    return Utterances(train[0] + test[0], train[1] + test[1], rate,
                      [f"fsdd-strings train #{i}" for i in range(n)] + [f"fsdd-strings test #{i}" for i in
                                                                       range(len(test[0]))],
                      f"fsdd-strings: {n + len(test[0]):,} spoken digit strings from the Free Spoken Digit Dataset "
                      f"({folder}, seed {seed})", train[2] + test[2],
                      {"train": list(range(n)), "test": list(range(n, n + len(test[0])))})


# --- tones -----------------------------------------------------------------------------------------------------------
TONE_LETTERS = "abcde"
TONE_SECONDS, TONE_GAP, WORD_GAP = 0.09, 0.03, 0.15


def make_tone_strings(count: int, seed: int = 0, rate: int = 8000) -> Utterances:
    """`count` utterances of tone words (see the module's docstring), the last fifth for test."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(TONE_SECONDS * rate)) / rate
    ramp = np.minimum(1, np.minimum(t, t[::-1]) / 0.01)  # 10 ms fades: no clicks between letters
    letters = {c: (0.4 * np.sin(2 * np.pi * (300 + 220 * k) * t) * ramp).astype(np.float32)
               for k, c in enumerate(TONE_LETTERS)}
    waves, texts = [], []
    for _ in range(count):
        words = ["".join(rng.choice(list(TONE_LETTERS), int(rng.integers(2, 5)))) for _ in range(rng.integers(1, 4))]
        parts = [np.zeros(int(WORD_GAP * rate), np.float32)]
        for word in words:
            for c in word:
                parts += [letters[c], np.zeros(int(TONE_GAP * rate), np.float32)]
            parts.append(np.zeros(int(WORD_GAP * rate), np.float32))
        wave = np.concatenate(parts)
        waves.append((wave + 0.01 * rng.standard_normal(len(wave))).astype(np.float32))
        texts.append(" ".join(words))
    n_test = max(1, count // 5)
    return Utterances(waves, texts, rate, [f"tones #{i}" for i in range(count)],
                      f"tones: {count:,} generated utterances of tone words (seed {seed})",
                      split={"train": list(range(count - n_test)), "test": list(range(count - n_test, count))})


# --- the alphabet -----------------------------------------------------------------------------------------------------
def alphabet_of(texts: list[str]) -> list[str]:
    """The characters of the (lower-cased) training transcripts, space first: what CTC spells with."""
    chars = sorted({c for t in texts for c in t.lower()} - {" "})
    return [" "] + chars


RARE = 3  # a character of fewer training transcripts than this is named when it joins the alphabet


def characters_note(texts: list[str], names: list[str], alphabet: list[str] | None, what: str) -> str | None:
    """A note on the characters of `texts` outside `alphabet` (None: on the rare ones, which join the alphabet
    the training transcripts make), with their counts and a few transcripts that have each, or None when there
    are none."""
    found: dict[str, list] = {}
    known = set("".join(alphabet)) if alphabet is not None else set()
    for text, name in zip(texts, names):
        for c in set(text.lower()) - {" "}:
            if alphabet is None or c not in known:
                found.setdefault(c, []).append(Path(name).name)
    if alphabet is None:
        found = {c: where for c, where in found.items() if len(where) < RARE}
    if not found:
        return None
    listed = "; ".join(f"{c!r} in {len(where)} ({', '.join(where[:3])}{' ...' if len(where) > 3 else ''})"
                       for c, where in sorted(found.items(), key=lambda kv: -len(kv[1]))[:20])
    if alphabet is None:
        return (f"Characters of fewer than {RARE} training transcripts joined the alphabet: {listed}. A digit or a "
                f"mark the model will rarely write is often better spelled out in the transcript, or left out with "
                f"--alphabet.")
    dropped = ("left out of what the model learns to write" if what == "training"
               else "which the model cannot write, left out of the references it is scored on")
    return f"Characters of the {what} transcripts outside the alphabet, {dropped}: {listed}."
