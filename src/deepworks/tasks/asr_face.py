"""The use of a trained speech recogniser: recordings in (files, bytes or arrays of samples), transcripts out, each
word with the times it was heard.

Built from the run's meta alone: its sample rate and alphabet. A recording is read as the audio task reads one
(mono, resampled to the run's rate) but keeps its length. A long one is cut into windows of WINDOW seconds that
overlap by OVERLAP; each window is recognised on its own, and each keeps the symbols of its own middle part (half
the overlap away from its ends), so a word cut by one window's edge is whole in the next. The serving model (what
is exported) maps samples and their lengths to per-step log-probabilities; decoding follows it: greedy, or the beam
search with the run's character language model and word list (models/ctc_beam.py), as validation chose, which the
`beam`, `lm_weight` and `words` options change. The model card writes the decoding down, for another runtime.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from ..errors import DataError
from .audio_face import audio_items
from .face import Face

WINDOW, OVERLAP = 8.0, 1.0  # seconds: a long recording's windows (near the length of a training sentence) and how much
# two neighbours share
MAX_SECONDS = 600.0           # a recording longer than 10 minutes is refused: cut it first
MAX_BEAM = 128                # the widest beam a request may ask for (its cost grows with the width)


class ASRServing(nn.Module):
    """(samples (N, T), lengths (N,)) -> (log-probabilities (N, S, symbols), steps (N,)): the recogniser with the
    DFT of its features as a convolution (models/audio.py ConvPower), which ONNX can hold."""

    def __init__(self, model: nn.Module):
        super().__init__()
        from ..models.audio import ConvPower

        self.model = model
        f = model.features
        self.power = ConvPower(f.n_fft, f.hop, f.window)

    def forward(self, waves: torch.Tensor, lengths: torch.Tensor):
        return self.model.recognise(self.model.features.from_power(self.power(waves.float())), lengths)


class ASRFace(Face):
    verb, kind = "transcribe", "a speech recognition"
    batchable = True
    max_items = 64

    @property
    def use_options(self) -> dict:
        from ..usage import Option
        from .asr import decoding_of

        chosen = decoding_of(self.meta)
        return {"beam": Option(int, chosen["beam"], 1, MAX_BEAM, "transcripts the beam search keeps at each step "
                               "(1: greedy decoding, with no language model or word list; default: what "
                               "validation chose)"),
                "lm_weight": Option(float, chosen["lm_weight"], 0.0, 5.0, "how much the character language model of "
                                    "the training transcripts counts (0: not at all)"),
                "words": Option(bool, chosen["words"], help="spell only words of the training transcripts")}

    @property
    def decoder(self):
        if getattr(self, "_decoder", None) is None:  # its language model caches what it computes
            from ..models.ctc_beam import Decoder

            self._decoder = Decoder(self.meta["alphabet"], self.meta.get("lm"), self.meta.get("words"))
        return self._decoder

    def decode_inputs(self, inputs, options: dict, trusted: bool = True) -> list:
        from ..data.audio import mono, resample

        rate = self.meta["rate"]

        def prepared(samples: np.ndarray, found: int) -> np.ndarray:
            wave = mono(samples).astype(np.float32)
            if len(wave) > MAX_SECONDS * found:
                raise DataError(f"A recording of {len(wave) / found:.0f} s is too long. Expected at most "
                                f"{MAX_SECONDS:.0f} s: cut it into parts.")
            wave = resample(wave, found, rate) if found != rate else wave
            shortest = self.shortest()  # a recording under one feature frame is heard as that much, silence after
            return np.pad(wave, (0, shortest - len(wave))) if len(wave) < shortest else wave

        items = audio_items(inputs, rate, self.max_items, trusted, prepared)
        seconds = sum(len(wave) for _, wave in items) / rate
        if not trusted and seconds > MAX_SECONDS:  # a request's work: every window of every recording is decoded
            raise DataError(f"Expected at most {MAX_SECONDS:.0f} s of audio in one request. Received {seconds:.0f} s "
                            f"in {len(items)} recording(s): send them in several requests.")
        return items

    def example_request(self) -> tuple:
        return np.zeros(self.meta["rate"], dtype=np.float32), {}

    def serving_model(self, model: nn.Module) -> nn.Module:
        return ASRServing(model).eval()

    def shortest(self) -> int:
        """Samples of one feature frame at the run's rate."""
        from ..models.audio import frame_sizes

        return frame_sizes(self.meta["rate"])[0]

    def seconds_per_step(self) -> float:
        from ..models.asr import SUBSAMPLING
        from ..models.audio import frame_sizes

        return frame_sizes(self.meta["rate"])[1] * SUBSAMPLING / self.meta["rate"]

    @torch.inference_mode()
    def infer(self, model, items: list, device: torch.device, options: dict) -> list:
        """{'input', 'transcript', 'words': [{'word', 'start', 'end'}] in seconds} per recording."""
        return [self.transcribe(model, name, wave, device, options) for name, wave in items]

    def transcribe(self, model, name: str, wave: np.ndarray, device: torch.device, options: dict) -> dict:
        from .asr import bonus_for, decoding_of

        chosen = decoding_of(self.meta)
        decoding = {k: options.get(k, v) for k, v in chosen.items()}
        if decoding["lm_weight"] != chosen["lm_weight"]:  # a weight of the caller's: its bonus
            decoding["bonus"] = bonus_for(decoding["lm_weight"])
        rate, per_step = self.meta["rate"], self.seconds_per_step()
        size, hop = int(WINDOW * rate), int((WINDOW - OVERLAP) * rate)
        starts = list(range(0, max(1, len(wave) - int(OVERLAP * rate)), hop)) or [0]
        chunks = [wave[s:s + size] for s in starts]
        longest = max(len(c) for c in chunks)
        batch = torch.zeros(len(chunks), max(longest, 1))
        for i, c in enumerate(chunks):
            batch[i, :len(c)] = torch.from_numpy(c)
        log_probs, steps = model(batch.to(device), torch.tensor([max(len(c), 1) for c in chunks]).to(device))
        symbols = []
        rows = [lp[:n] for lp, n in zip(torch.as_tensor(log_probs).float().cpu().numpy(),
                                        torch.as_tensor(steps).tolist())]
        for k, (start, said) in enumerate(zip(starts, self.decoder(rows, **decoding))):
            low = 0.0 if k == 0 else OVERLAP / 2
            high = float("inf") if k == len(starts) - 1 else WINDOW - OVERLAP / 2
            symbols += [(s, start / rate + t * per_step) for s, t in said if low <= t * per_step < high]
        return {"input": name, **words_of(symbols, self.meta["alphabet"], per_step)}

    def encode_result(self, result: dict, options: dict) -> dict:
        return result

    def export_graphs(self, model: nn.Module) -> list:
        from ..inference import Graph

        rate = self.meta["rate"]
        g = torch.Generator().manual_seed(0)
        example = (0.1 * torch.randn(2, rate, generator=g), torch.tensor([rate, rate // 2]))
        check = (0.1 * torch.randn(3, 2 * rate, generator=g), torch.tensor([2 * rate, rate, rate // 3]))
        return [Graph("recogniser", self.serving_model(model), example, check, ["samples", "lengths"],
                      ["log_probs", "steps"], {"samples": {0: "batch", 1: "time"}, "lengths": {0: "batch"},
                                               "log_probs": {0: "batch", 1: "steps"}, "steps": {0: "batch"}},
                      "float32 samples (N, T) at the run's rate and their lengths (N,) in; per-step "
                      "log-probabilities over the blank and the alphabet (N, S, K) and each row's steps (N,) out",
                      # torch 2.13's dynamo exporter fails to decompose these GRUs (a size mismatch of their gates)
                      exporters=("legacy", "dynamo"))]

    def model_card(self) -> dict:
        from .asr import decoding_of

        m = self.meta
        return {"alphabet": m["alphabet"], "blank": 0,
                "inputs": [{"name": "samples", "dtype": "float32", "shape": [None, None], "sample_rate": m["rate"],
                            "range": [-1, 1]}, {"name": "lengths", "dtype": "int64", "shape": [None]}],
                "outputs": [{"name": "log_probs", "dtype": "float32", "shape": [None, None, len(m["alphabet"]) + 1]},
                            {"name": "steps", "dtype": "int64", "shape": [None]}],
                "preprocessing": {"before_graph": f"mono, resampled to {m['rate']} Hz; recordings longer than "
                                                  f"{WINDOW:g} s in windows overlapping by {OVERLAP:g} s",
                                  "after_graph": "greedy CTC decoding: the likeliest symbol per step, repeats "
                                                 "merged, blanks (id 0) removed; symbol i >= 1 is alphabet[i - 1]; "
                                                 f"a step is {self.seconds_per_step() * 1000:g} ms. deepworks' own "
                                                 "use decodes with the beam search in decoding (a prefix search, "
                                                 "Hannun et al. 2014, with a character n-gram model of "
                                                 "the training transcripts, Witten-Bell, and their word list: the "
                                                 "run's model.json keeps both, as meta's lm and words)"},
                "decoding": decoding_of(m), "char_lm_order": (m.get("lm") or {}).get("order"),
                "word_list_size": len(m.get("words") or [])}

    def export_card(self) -> dict:
        m = self.meta
        return {**self.model_card(), "char_lm": m.get("lm"), "words": m.get("words"),
                "beam_search": "a CTC prefix search (Hannun et al. 2014) keeping `decoding.beam` transcripts a step "
                               "(the 32 likeliest symbols tried); a transcript y scores log P_ctc(y) + lm_weight * "
                               "log P_lm(y) + bonus * symbols(y), where P_lm multiplies, for each character c after "
                               "history h (the transcript so far, padded with char_lm.order - 1 newlines; a newline "
                               "ends it), P(c | h) = (count(h, c) + types(h) * P(c | h shortened by one)) / "
                               "(count(h) + types(h)) over the contexts in char_lm.counts, from the longest of "
                               "order - 1 characters down to '', below which every seen character is equally "
                               "likely; with decoding.words, every word must be one of words. The symbols joined, "
                               "leading and trailing spaces removed, are the transcript."}

    def v2_inputs(self) -> list[dict]:
        return [{"name": "samples", "datatype": "FP32", "shape": [-1]}]

    def v2_outputs(self, results: list) -> dict:
        return {"transcripts": np.array([r["transcript"].encode("utf-8") for r in results], dtype=object)}


def words_of(symbols: list[tuple[int, float]], alphabet: list[str], per_step: float) -> dict:
    """The transcript of (symbol, time) pairs (a symbol being a character or a piece of several), and its words with
    their first and last symbols' times."""
    words, current = [], []

    def close():
        if current:
            words.append({"word": "".join(c for c, _ in current), "start": round(current[0][1], 3),
                          "end": round(current[-1][1] + per_step, 3)})
        current.clear()

    for symbol, time in symbols:
        for char in alphabet[symbol - 1]:
            if char == " ":
                close()
            else:
                current.append((char, time))
    close()
    return {"transcript": " ".join(w["word"] for w in words), "words": words}
