"""Speech recognition: recordings in, their transcripts out.

Data (data/speech.py): a folder in LJSpeech's, Common Voice's or the NAME.wav + NAME.txt layout, or a built-in:
`tones` (generated tone words, the default) or `fsdd-strings` (spoken digit strings from FSDD, its test recordings
held out). The alphabet is the training transcripts' characters, lower-cased, space first; CTC's blank is id 0, the
alphabet's characters 1 onwards. A recording too short for its transcript under CTC (fewer output steps than its
characters and their doubled letters) is left out of training with a note. Model (models/asr.py): log-mel features,
strided convolutions, a bidirectional GRU, CTC. Decoding: greedy. Metrics: CTC loss each epoch, with the greedy
word and character error rates (WER, CER, through jiwer) of the validation split; on the test split also per
speaker where the source knows them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..data.speech import alphabet_of, characters_note
from ..errors import ConfigError, DataError
from ..registry import builtin_defaults, builtin_models
from .asr_face import MAX_BEAM, ASRFace
from .asr_report import ASRReport
from .base import Prepared, Task

SPEEDS = (0.9, 1.1)  # --augment speed: how much faster a recording may be played (Ko et al. 2015)
MAX_SYMBOLS = 1000  # a saved run's alphabet at most (characters, or --units pieces:N)
MAX_PIECE_CHARS = 17  # SentencePiece's longest piece (16) and the space that starts a word
PIECES = 256, (8, 1000)  # --units pieces: the default count, and the fewest and most
UNKNOWN_PIECE = 1  # SentencePiece's ids 0 and 1 (padding, unknown) are no symbols: piece j is symbol j - 1
TONE_UTTERANCES, MOST_TONES = 600, 20_000  # tones: the default count, and the most one may ask for (about 1 GB)


def count_of(source: str, default: int) -> int:
    """N of 'tones:N' (the default without it), checked."""
    _, _, n = source.partition(":")
    if not n:
        return default
    if not n.isdigit() or not 10 <= int(n) <= MOST_TONES:
        raise ConfigError(f"Expected tones:N with N from 10 to {MOST_TONES:,}. Received: {source!r}.")
    return int(n)


class Utterances(torch.utils.data.Dataset):
    """A split in memory: (wave, target ids) per utterance, `collate` pads a batch of them; `texts` the
    transcripts as written (lower-cased, spaces collapsed), which the error rates compare with."""

    def __init__(self, waves: list[np.ndarray], targets: list[list[int]], texts: list[str],
                 speakers: list[str] | None = None, names: list[str] | None = None):
        self.waves, self.targets, self.texts, self.speakers, self.names = waves, targets, texts, speakers, names

    def __len__(self) -> int:
        return len(self.waves)

    def __getitem__(self, i: int):
        return self.waves[i], self.targets[i]


def collate(items: list) -> tuple[torch.Tensor, ...]:
    """(waves (B, T) zero-padded, lengths (B,), targets (B, L) zero-padded, target lengths (B,))."""
    waves = torch.zeros(len(items), max(len(w) for w, _ in items))
    targets = torch.zeros(len(items), max(1, max(len(t) for _, t in items)), dtype=torch.long)
    for i, (w, t) in enumerate(items):
        waves[i, :len(w)] = torch.from_numpy(w)
        targets[i, :len(t)] = torch.tensor(t, dtype=torch.long)
    return (waves, torch.tensor([len(w) for w, _ in items]), targets,
            torch.tensor([len(t) for _, t in items]))


def unknown_speakers(description: str, split: str) -> str:
    return (f"--split {split} needs to know who speaks each recording, and {description} does not say. Expected "
            f"fsdd-strings or a Common Voice folder (its client_id column names the speaker).")


def spelled_in(text: str, alphabet: list[str]) -> str:
    """A transcript as the model learns to write it and is scored on: lower-cased, without the characters no symbol
    of `alphabet` has, spaces collapsed (the targets, the references, the language model and the word list alike)."""
    known = set("".join(alphabet))
    return " ".join("".join(c for c in text.lower() if c in known).split())


def pieces_wanted(units: str) -> int:
    """N of --units pieces:N (PIECES[0] for pieces alone), 0 for chars; checked."""
    kind, _, n = units.partition(":")
    low, high = PIECES[1]
    if kind == "chars" and not n:
        return 0
    if kind == "pieces" and (not n or (n.isdigit() and low <= int(n) <= high)):
        return int(n) if n else PIECES[0]
    raise ConfigError(f"Expected --units chars, pieces or pieces:N with N from {low} to {high}. Received: {units!r}.")


def learned_pieces(texts: list[str], count: int) -> dict:
    """A SentencePiece model of the training transcripts (in meta, base64) and its pieces as the alphabet, '▁' (a
    word's start) written as a space."""
    import base64

    from ..data.subwords import load_processor, train_sentencepiece

    characters = len(set("".join(texts)))
    if count < characters:
        raise ConfigError(f"Expected --units pieces:N with N at least the {characters} characters of the training "
                          f"transcripts (each is a piece of its own). Received: pieces:{count}.")
    model = train_sentencepiece(texts, count + UNKNOWN_PIECE + 1)
    processor = load_processor(model)
    return {"pieces": base64.b64encode(model).decode(),
            "alphabet": [processor.id_to_piece(j).replace("\u2581", " ") for j in range(UNKNOWN_PIECE + 1,
                                                                                      processor.get_piece_size())]}


def ctc_steps_needed(ids: list[int]) -> int:
    """The fewest output steps CTC can spell `ids` in: one per symbol, and a blank between two equal ones."""
    return len(ids) + sum(a == b for a, b in zip(ids, ids[1:]))


class SpeechRecognition(Task):
    name = "asr"
    models = builtin_models("asr")
    defaults = builtin_defaults("asr")
    default_monitor = "val_loss"
    headline = "wer"
    unit = ("utterance", 1)
    counted = ("utterances", "utterances")
    augments = ("none", "specaugment", "speed", "specaugment+speed")
    face_class, report_class = ASRFace, ASRReport

    @staticmethod
    def check_meta(meta: dict) -> None:
        alphabet, rate = meta.get("alphabet"), meta.get("rate")
        if not (isinstance(alphabet, list) and 1 <= len(alphabet) <= MAX_SYMBOLS
                and all(isinstance(c, str) and 1 <= len(c) <= MAX_PIECE_CHARS for c in alphabet)):
            raise ConfigError(f"Expected the run's alphabet as a list of 1 to {MAX_SYMBOLS} characters or pieces. "
                              f"Received: {str(alphabet)[:100]}.")
        if not (isinstance(rate, int) and 1000 <= rate <= 192_000):
            raise ConfigError(f"Expected the run's sample rate from 1,000 to 192,000 Hz. Received: {rate!r}.")
        check_decoding(meta)
        if meta.get("pieces") is not None:
            from ..data.subwords import decode_model, load_processor

            load_processor(decode_model(meta["pieces"]))

    # --- data -----------------------------------------------------------------------------------------------
    def read(self):
        from ..data.builtin import default_data_dir
        from ..data.speech import load_folder, load_fsdd_strings, make_tone_strings

        d = self.cfg.data
        if d.source == "fsdd-strings":
            return load_fsdd_strings(Path(d.data_dir) if d.data_dir else default_data_dir(), self.cfg.seed)
        if d.source == "tones" or d.source.startswith("tones:"):
            return make_tone_strings(count_of(d.source, TONE_UTTERANCES), self.cfg.seed)
        return load_folder(Path(d.source), None, d.strict)

    def split_indices(self, found) -> dict[str, np.ndarray]:
        d, rng = self.cfg.data, np.random.default_rng(self.cfg.seed)
        everything = np.arange(len(found.texts))
        if d.split != "source":
            from .audio import speaker_split

            if not found.speakers:
                raise DataError(unknown_speakers(found.description, d.split))
            train, test = speaker_split(found, d.split)
        elif found.split:
            train, test = np.asarray(found.split["train"]), np.asarray(found.split["test"])
        else:
            shuffled = rng.permutation(everything)
            n_test = max(1, int(round(d.test_fraction * len(shuffled))))
            train, test = np.sort(shuffled[n_test:]), np.sort(shuffled[:n_test])
        shuffled = rng.permutation(train)
        n_val = max(1, int(round(d.val_fraction * len(shuffled))))
        if len(shuffled) - n_val < 2:
            raise DataError(f"{found.description} leaves {max(0, len(shuffled) - n_val)} recording(s) to train on. "
                            f"Add recordings, or lower --val-fraction / --test-fraction.")
        return {"train": np.sort(shuffled[n_val:]), "val": np.sort(shuffled[:n_val]), "test": test}

    def speakers_of_data(self) -> list[str]:
        """Who speaks in the data (--split speaker leaves each out in turn)."""
        found = self.read()
        if not found.speakers:
            raise DataError(unknown_speakers(found.description, "speaker"))
        return sorted(set(found.speakers))

    def prepare(self, progress: bool | None = True) -> Prepared:
        import warnings

        from ..data.arrays import DataWarning

        found = self.read()
        parts = self.split_indices(found)
        said: list[str | None] = []  # this step's notes: on the terminal too (the reader warned of its own)
        if self.meta is None:
            self.meta = self.fitted_meta(found, parts["train"], said)
        held = np.concatenate([parts["val"], parts["test"]]).tolist()
        said.append(characters_note([found.texts[i] for i in held], [found.names[i] for i in held],
                                    self.meta["alphabet"], "validation and test"))
        splits = {k: self.split_of(found, idx, said if k == "train" else None) for k, idx in parts.items()}
        for note in filter(None, said):
            warnings.warn(note, DataWarning, stacklevel=2)
        return Prepared(train=splits["train"], val=splits["val"], test=splits["test"], meta=self.meta,
                        notes=list(found.notes) + list(filter(None, said)))

    def fitted_meta(self, found, train: np.ndarray, notes: list) -> dict:
        """The alphabet (--alphabet, or the training transcripts'), the rate, and the character language model and
        word list of the training transcripts, which the beam search decodes with."""
        from ..models.ctc_beam import CharLM, word_list

        given = self.cfg.data.alphabet
        texts, names = [found.texts[i] for i in train], [found.names[i] for i in train]
        alphabet = [" "] + sorted(set(given.lower()) - {" "}) if given else alphabet_of(texts)
        notes.append(characters_note(texts, names, alphabet if given else None, "training"))
        if len(alphabet) > MAX_SYMBOLS:
            raise ConfigError(f"Expected --alphabet of at most {MAX_SYMBOLS} characters. Received "
                              f"{len(alphabet):,}.")
        spelled = [spelled_in(t, alphabet) for t in texts]
        meta = {"alphabet": alphabet, "rate": found.rate, "source": found.description,
                "lm": CharLM.fit(spelled).to_dict(), "words": word_list(spelled)}
        pieces = pieces_wanted(self.cfg.data.units)
        if pieces:
            meta.update(learned_pieces(spelled, pieces))
            if len(meta["alphabet"]) < pieces:
                notes.append(f"--units pieces:{pieces}: SentencePiece found {len(meta['alphabet'])} pieces in the "
                             f"training transcripts, fewer than asked for; the run spells with those.")
        return meta

    def split_of(self, found, idx: np.ndarray, notes: list[str] | None) -> tuple:
        """(Utterances, indices) of one split; in training (`notes` given), recordings too short for their
        transcript are left out and named."""
        from ..models.asr import output_steps

        waves, targets, texts, kept, short = [], [], [], [], []
        for i in idx.tolist():
            ids = self.encode(found.texts[i])
            if notes is not None:  # a recording played faster (--augment speed) has fewer steps
                fastest = SPEEDS[1] if "speed" in (self.cfg.data.augment or "") else 1.0
                if output_steps(int(len(found.waves[i]) / fastest), found.rate) < ctc_steps_needed(ids):
                    short.append(found.names[i])
                    continue
            waves.append(found.waves[i])
            targets.append(ids)
            texts.append(spelled_in(found.texts[i], self.meta["alphabet"]))
            kept.append(i)
        if short:
            notes.append(f"{len(short)} training recording(s) are too short for their transcripts under CTC (fewer "
                         f"40 ms steps than letters) and were left out: {', '.join(short[:5])}"
                         f"{' ...' if len(short) > 5 else ''}.")
        speakers = [found.speakers[i] for i in kept] if found.speakers else None
        return Utterances(waves, targets, texts, speakers, [found.names[i] for i in kept]), np.asarray(kept)

    def encode(self, text: str) -> list[int]:
        """A transcript's symbol ids (1 onwards): its characters, or its SentencePiece pieces (--units pieces)."""
        text = spelled_in(text, self.meta["alphabet"])
        if self.meta.get("pieces"):
            if getattr(self, "processor", None) is None:
                from ..data.subwords import decode_model, load_processor

                self.processor = load_processor(decode_model(self.meta["pieces"]))
            return [j - 1 for j in self.processor.encode(text) if j > UNKNOWN_PIECE]
        index = {c: i + 1 for i, c in enumerate(self.meta["alphabet"])}
        return [index[c] for c in text]

    def batch_source(self, train: tuple):
        from ..training.batches import DatasetBatches

        return DatasetBatches(train[0], self.cfg.train.batch_size, self.cfg.seed, collate=collate)

    # --- model and training -----------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        from ..models.asr import CTCRecognizer

        m = self.cfg.model
        conformer = m.name == "conformer"
        if conformer and (m.width or 144) % 4:
            raise ConfigError(f"Expected --width a multiple of 4 for --model conformer (its four attention heads "
                              f"share it). Received: {m.width}.")
        return CTCRecognizer(self.meta["rate"], len(self.meta["alphabet"]) + 1, width=m.width or (144 if conformer
                                                                                                 else 192),
                             depth=m.depth or (4 if conformer else 2), dropout=m.dropout or 0.1, encoder=m.name)

    def training_step(self, model: nn.Module, batch: tuple):
        from ..models.asr import ctc_loss, played_faster, spec_augment

        waves, lengths, targets, target_lengths = batch
        mode = self.cfg.data.augment if model.training else "none"
        if "speed" in mode:
            waves, lengths = played_faster(waves, lengths, SPEEDS)
        features = model.features(waves)
        if "specaugment" in mode:
            features = spec_augment(features, model.frames(lengths).clamp(max=features.shape[2]))
        log_probs, steps = model.recognise(features, lengths)
        return ctc_loss(log_probs, steps, targets, target_lengths), {}

    # --- after training -------------------------------------------------------------------------------------
    @torch.no_grad()
    def outputs(self, model: nn.Module, utterances: Utterances, device: torch.device,
                batch_size: int = 32) -> tuple[float, list[np.ndarray]]:
        """One pass over a split in batches of similar lengths: its mean CTC loss, and each utterance's
        log-probabilities over its real steps (S, K), in its order."""
        from ..models import evaluating
        from ..models.asr import ctc_loss

        order = np.argsort([len(w) for w in utterances.waves], kind="stable")
        found: list = [None] * len(order)
        total = 0.0
        with evaluating(model):
            for start in range(0, len(order), batch_size):
                chosen = order[start:start + batch_size]
                waves, lengths, targets, target_lengths = (t.to(device) for t in collate(
                    [utterances[int(i)] for i in chosen]))
                log_probs, steps = model(waves, lengths)
                total += float(ctc_loss(log_probs, steps, targets, target_lengths)) * len(chosen)
                for i, lp, n in zip(chosen, log_probs.float().cpu().numpy(), steps.tolist()):
                    found[int(i)] = lp[:n]
        return total / max(len(order), 1), found

    def decoder(self):
        from ..models.ctc_beam import Decoder

        return Decoder(self.meta["alphabet"], self.meta.get("lm"), self.meta.get("words"))

    def decoded(self, model: nn.Module, utterances: Utterances, device: torch.device,
                decoding: dict | None = None) -> tuple[float, list[str]]:
        """A split's mean CTC loss and its transcripts (greedy, or as `decoding` says: beam, lm_weight ...)."""
        loss, log_probs = self.outputs(model, utterances, device)
        return loss, self.decoder().texts(log_probs, **(decoding or {}))

    def evaluate(self, model: nn.Module, split: tuple, device: torch.device) -> dict:
        """The mean CTC loss of a split, and its greedy WER and CER (what each epoch's validation shows)."""
        utterances, _ = split
        loss, said = self.decoded(model, utterances, device)
        return {"loss": loss, **error_rates(utterances.texts, said)}

    def calibrate(self, model: nn.Module, data: Prepared, device: torch.device) -> None:
        """Choose the decoding on the validation split: greedy, the beam search, with the language model at a few
        weights, then the best of those with the word list; the lowest WER wins (the simpler on a tie). Kept in
        meta['decoding'], with what each scored."""
        utterances = data.val[0]
        if not len(utterances):
            self.meta["decoding"] = dict(GREEDY)
            return
        _, log_probs = self.outputs(model, utterances, device)
        log_probs, texts = log_probs[:CALIBRATION_UTTERANCES], utterances.texts[:CALIBRATION_UTTERANCES]
        decoder, tried = self.decoder(), {}

        def score(label: str, decoding: dict) -> None:
            tried[label] = (error_rates(texts, decoder.texts(log_probs, **decoding))["wer"], decoding)

        for label, decoding in decodings(self.meta):
            score(label, decoding)
        best = min(tried, key=lambda k: tried[k][0])  # dicts keep order: the first of equals, the simplest
        if self.meta.get("words"):
            score(f"{best if best != 'greedy' else f'beam {BEAM}'}, word list",
                  {**tried[best][1], "beam": max(BEAM, tried[best][1]["beam"]), "words": True})
            best = min(tried, key=lambda k: tried[k][0])
        self.meta["decoding"] = {**tried[best][1], "chosen": best,
                                 "val_wer": {k: round(w, 4) for k, (w, _) in tried.items()}}

    def test_metrics(self, model: nn.Module, split: tuple, device: torch.device) -> dict:
        return self.tested(model, split[0], device)[0]

    def tested(self, model: nn.Module, utterances: Utterances, device: torch.device) -> tuple[dict, list[str]]:
        """The WER and CER of a split with the run's chosen decoding, its greedy WER beside them, per speaker where
        known; and its transcripts."""
        from .asr_report import per_speaker

        loss, log_probs = self.outputs(model, utterances, device)
        decoder = self.decoder()
        said = decoder.texts(log_probs, **decoding_of(self.meta))
        metrics = {"utterances": len(utterances), "loss": loss, **error_rates(utterances.texts, said),
                   "greedy_wer": error_rates(utterances.texts, decoder.texts(log_probs))["wer"],
                   "decoding": (self.meta.get("decoding") or {}).get("chosen", "greedy")}
        if utterances.speakers:
            metrics["per_speaker"] = per_speaker(utterances.texts, said, utterances.speakers)
        return metrics, said


GREEDY = {"beam": 1, "lm_weight": 0.0, "bonus": 0.0, "words": False}
BEAM = 16
CALIBRATION_UTTERANCES = 200  # of the validation split, at most: the choice's cost stays a minute or so
LM_WEIGHTS = (0.3, 0.6, 1.0)  # the language model's weights tried
BONUS_PER_WEIGHT = 1.5  # a symbol's bonus per unit of the language model's weight: offsets what a symbol costs in it


def bonus_for(lm_weight: float) -> float:
    return round(BONUS_PER_WEIGHT * lm_weight, 4)


def decodings(meta: dict) -> list[tuple[str, dict]]:
    """The decodings `calibrate` tries first (the word list comes after, on the best of them), the simplest first."""
    out = [("greedy", dict(GREEDY)), (f"beam {BEAM}", {**GREEDY, "beam": BEAM})]
    if meta.get("lm"):
        out += [(f"beam {BEAM}, LM {w:g}", {**GREEDY, "beam": BEAM, "lm_weight": w, "bonus": bonus_for(w)})
                for w in LM_WEIGHTS]
    return out


def check_decoding(meta: dict) -> None:
    """A saved run's language model, word list and chosen decoding, range-checked (model.json is a file)."""
    from ..models.ctc_beam import MAX_WORD_CHARS, MAX_WORDS, CharLM

    if meta.get("lm") is not None:
        CharLM.from_dict(meta["lm"])
    words = meta.get("words")
    if words is not None and not (isinstance(words, list) and len(words) <= MAX_WORDS
                                  and all(isinstance(w, str) and 0 < len(w) <= MAX_WORD_CHARS for w in words)):
        raise ConfigError(f"Expected the run's word list as at most {MAX_WORDS:,} words of at most {MAX_WORD_CHARS} "
                          f"characters. Received something else: the run's model.json is damaged.")
    d = meta.get("decoding")
    tried = d.get("val_wer", {}) if isinstance(d, dict) else None
    if d is not None and not (isinstance(d, dict) and isinstance(d.get("beam"), int) and 1 <= d["beam"] <= MAX_BEAM
                              and all(isinstance(d.get(k), (int, float)) and 0 <= d[k] <= 5
                                      for k in ("lm_weight", "bonus")) and isinstance(d.get("words"), bool)
                              and isinstance(d.get("chosen", ""), str) and len(d.get("chosen", "")) <= 100
                              and isinstance(tried, dict) and len(tried) <= 20
                              and all(isinstance(k, str) and len(k) <= 100 and isinstance(v, (int, float))
                                      for k, v in tried.items())):
        raise ConfigError(f"Expected the run's decoding as a beam of 1 to {MAX_BEAM} and weights from 0 to 5. "
                          f"Received: {str(d)[:100]}.")


def decoding_of(meta: dict) -> dict:
    """The run's chosen decoding's settings (greedy for a run saved before there was a choice)."""
    chosen = meta.get("decoding") or GREEDY
    return {k: chosen.get(k, v) for k, v in GREEDY.items()}


def error_rates(texts: list[str], said: list[str]) -> dict:
    """WER and CER (jiwer) of transcripts against their references, references left empty left out."""
    import jiwer

    pairs = [(t, s) for t, s in zip(texts, said) if t.strip()]
    if not pairs:
        return {"wer": 1.0, "cer": 1.0}
    refs, hyps = [t for t, _ in pairs], [s for _, s in pairs]
    return {"wer": float(jiwer.wer(refs, hyps)), "cer": float(jiwer.cer(refs, hyps))}
