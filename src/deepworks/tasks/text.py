"""Text generation: a character-level RNN / LSTM / GRU that learns to write like a given text.

Data: the text becomes character ids over its sorted vocabulary (saved with the run).
The last `val_fraction` of the text is held out for validation, as nanoGPT does; it is
also the text the final model is scored on. The training part is cut into `batch_size`
contiguous streams, and step i trains on the i-th `seq_len`-character window of every
stream, so the hidden state left by one batch is the right start for the next:
truncated backpropagation through time over the whole text, with gradients stopped at
window borders. Rows are laid out so that the loop's in-order batches are exactly these
windows (`sequential = True`).
Loss: cross-entropy per character, in nats. Metrics: nats/char, bits per character and
perplexity; a bigram model of the training text is the baseline.
Use (text_face.py): `generate` / `stream` sample text from a prime at a temperature, optionally top-k.
Report (text_report.py): bits per character beside the bigram baseline, and samples during and after training.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import Config
from ..data.text import encode, load_text_source
from ..errors import DataError
from ..models import build_text_model, evaluating
from ..models.rnn import detach_state
from ..registry import builtin_defaults, builtin_models
from .base import Prepared, Task
from .text_face import TextFace, check_characters
from .text_report import LN2, TEMPERATURES, TextReport, readable  # noqa: F401 (readable: also imported from here)

TARGET_CHARS = 2_500_000  # default training length: about two minutes of a 2-layer LSTM on a laptop CPU


def stream_windows(ids: torch.Tensor, streams: int, seq_len: int) -> torch.Tensor:
    """Rows of seq_len + 1 ids (inputs and next-character targets): row step * streams + b is window `step` of
    stream b, where stream b is the b-th of `streams` equal contiguous stretches of `ids`. The windows are a strided
    view of `ids`, copied once into rows (no index tensor eight times the text's size)."""
    per_stream = (len(ids) - 1) // streams
    steps = per_stream // seq_len
    view = ids.contiguous().as_strided((steps, streams, seq_len + 1), (seq_len, per_stream, 1))
    return view.reshape(steps * streams, seq_len + 1)


class TextGeneration(Task):
    name = "text"
    models = builtin_models("text")
    defaults = builtin_defaults("text")
    default_monitor = "val_loss"
    headline = "bpc"
    sequential = True
    counted = ("characters", "characters")
    face_class, report_class = TextFace, TextReport

    def __init__(self, cfg: Config, meta: dict | None = None):
        super().__init__(cfg, meta)
        self.state = None  # the hidden state carried from one training batch to the next
        self.unit = ("char", cfg.data.seq_len)

    # --- data -------------------------------------------------------------------------
    def prepare(self, progress: bool | None = True) -> Prepared:
        d, t = self.cfg.data, self.cfg.train
        source = load_text_source(d.source, d.encoding, d.data_dir, d.download)
        text, seq_len = source.text, d.seq_len
        n_val = int(round(len(text) * d.val_fraction))
        n_train = len(text) - n_val
        if n_train < seq_len + 1:
            raise DataError(f"'{d.source}' is too short to train on: {n_train:,} of its {len(text):,} characters are "
                            f"left for training after the validation part, and one sequence needs {seq_len + 1:,} "
                            f"(--seq-len {seq_len}, plus the character it predicts). Use a longer text, or a smaller "
                            f"--seq-len or --val-fraction.")
        if self.meta:  # a trained model's vocabulary: evaluate its data again with the ids it was trained on
            check_characters(text, self.meta["vocab"], f"'{d.source}'")
        vocab = self.meta["vocab"] if self.meta else sorted(set(text))
        ids = torch.from_numpy(encode(text, vocab))
        notes = [f"Skipped {len(source.skipped)} binary file(s) in the folder."] if source.skipped else []
        streams = min(t.batch_size, (n_train - 1) // seq_len)
        if streams < t.batch_size:
            notes.append(f"The text holds {n_train:,} training characters: room for {streams} stream(s) of "
                         f"{seq_len} characters, so the batch size is {streams} instead of {t.batch_size}.")
            t.batch_size = streams  # the saved config is the resolved one
        self.meta = {"vocab": vocab, "source": source.description, "seq_len": seq_len,
                     "train_chars": n_train, "val_chars": n_val,
                     "prime": (self.meta or {}).get("prime", sample_prime(text[n_train:] or text))}
        windows = stream_windows(ids[:n_train], streams, seq_len)
        val = (ids[n_train:] if n_val >= 2 else ids[:0],)  # one character alone predicts nothing
        return Prepared(train=(windows,), val=val, test=val, meta=self.meta, notes=notes)

    def preview(self, prepared: Prepared, per_class: int = 6) -> dict:
        """The text's size, its characters, and an excerpt (the start of the part held out for validation)."""
        vocab, (val,) = self.meta["vocab"], prepared.val
        return {"characters": self.meta["train_chars"] + self.meta["val_chars"], "vocabulary": len(vocab),
                "excerpt": "".join(vocab[i] for i in val[:600].tolist())}

    def default_epochs(self, data: Prepared) -> int:
        chars = data.train[0].shape[0] * self.cfg.data.seq_len
        return int(min(50, max(1, math.ceil(TARGET_CHARS / max(chars, 1)))))

    def labelled_examples(self, source: str, progress: bool | None = False) -> tuple[torch.Tensor]:
        """All of another text, as ids of this model's vocabulary (for `deepworks evaluate RUN --data FILE`)."""
        text = load_text_source(source, self.cfg.data.encoding, self.cfg.data.data_dir, self.cfg.data.download).text
        check_characters(text, self.meta["vocab"], f"'{source}'")
        return (torch.from_numpy(encode(text, self.meta["vocab"])),)

    # --- model, loss, metrics -------------------------------------------------------------
    def build_model(self) -> nn.Module:
        return build_text_model(self.cfg.model, len(self.meta["vocab"]))

    def start_epoch(self) -> None:
        self.state = None

    def state_dict(self) -> dict:
        state = self.state
        parts = [] if state is None else list(state) if isinstance(state, tuple) else [state]
        return {"state": [p.detach().cpu() for p in parts], "tuple": isinstance(state, tuple)}

    def load_state_dict(self, saved: dict) -> None:
        parts = saved["state"]
        self.state = None if not parts else tuple(parts) if saved["tuple"] else parts[0]

    def training_step(self, model: nn.Module, batch):
        x = batch[0].long()
        state = self.state
        if state is not None and (state[0] if isinstance(state, tuple) else state).device != x.device:
            state = tuple(s.to(x.device) for s in state) if isinstance(state, tuple) else state.to(x.device)
        logits, state = model(x[:, :-1], state)
        self.state = detach_state(state)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), x[:, 1:].flatten())
        return loss, {"bpc": loss.detach() * len(x) / LN2}  # per-row totals, as the loop sums them

    @torch.no_grad()
    def nats_per_char(self, model: nn.Module, ids: torch.Tensor, device: torch.device, chunk: int = 512) -> float:
        """Mean cross-entropy of predicting each character from all before it, read as parallel streams of at least
        about 1,000 characters (carried state, so only each stream's first few characters lack context)."""
        streams = max(1, min(32, (len(ids) - 1) // 1024))
        per_stream = (len(ids) - 1) // streams
        x = ids[:streams * per_stream].view(streams, per_stream).to(device).long()
        y = ids[1:streams * per_stream + 1].view(streams, per_stream).to(device).long()
        state, total = None, 0.0
        with evaluating(model):
            for i in range(0, per_stream, chunk):
                logits, state = model(x[:, i:i + chunk], state)
                total += F.cross_entropy(logits.flatten(0, 1).float(), y[:, i:i + chunk].flatten(),
                                         reduction="sum").item()
        return total / (streams * per_stream)

    def evaluate(self, model: nn.Module, split, device: torch.device) -> dict:
        ids = split[0]
        if len(ids) < 2:
            return {}
        nats = self.nats_per_char(model, ids, device)
        return {"loss": nats, "bpc": nats / LN2, "perplexity": math.exp(nats)}

    def test_metrics(self, model: nn.Module, split, device: torch.device) -> dict:
        ids = split[0]
        if len(ids) < 2:
            raise DataError("There is no held-out text to score the model on (--val-fraction 0). Evaluate it on "
                            "another text with --data FILE.")
        return {"characters": len(ids), **self.evaluate(model, split, device)}

    def sample_epochs(self) -> set[int]:
        epochs = self.cfg.train.epochs
        return {int(e) for e in np.linspace(1, epochs, min(epochs, 6)).round()}

    def after_epoch(self, run, model: nn.Module, epoch: int, device: torch.device) -> None:
        """Record samples at a few epochs, so the report shows the writing improve. They use their own seeded
        generator, so training draws the same random numbers with or without them (exact resume holds)."""
        if epoch not in self.sample_epochs():
            return
        face = self.make_face()
        texts = face.samples_at(model, face.prime, 200, TEMPERATURES, seed=self.cfg.seed + epoch, device=device)
        for temperature, text in zip(TEMPERATURES, texts):
            run.log(kind="sample", epoch=epoch, temperature=temperature, text=text)


def sample_prime(text: str) -> str:
    """The first word of the first line of `text` that starts with a letter, with the space after it ('def ',
    'First '): a sample started there begins as the text's lines do, where a bare new line lets a model of Python
    source write only indentation. '' when no line starts that way."""
    for line in text.splitlines()[1:201]:  # the first line may start mid-line
        word = line.split(" ", 1)[0]
        if word.rstrip(":,;.").isalpha() and " " in line and len(line) >= 12:
            return word + " "
    return ""
