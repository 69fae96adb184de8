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
Use: `generate` / `stream` sample text from a prime at a temperature, optionally top-k.
"""

from __future__ import annotations

import html
import math
import secrets
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import Config
from ..data.text import encode, load_text_source, unknown_characters
from ..errors import DataError, DeepworksError
from ..inference import Option, stop_if_cancelled
from ..models import build_text_model, evaluating
from ..models.rnn import detach_state
from ..report import image_tag, plot_history, table
from .base import Prepared, Task, notes_block
from ..registry import builtin_models

LN2 = math.log(2)
TEMPERATURES = (0.5, 1.0, 1.5)  # the report's samples: cautious, faithful, adventurous
SUMMARY_TEMPERATURE = 0.8  # the sample after training, and `generate`'s default: varied, rarely misspelt
MAX_LENGTH = 1_000_000  # characters one call may ask for
MIN_TEMPERATURE, MAX_TEMPERATURE = 1e-3, 100.0  # beyond them, logits / temperature overflows to inf and NaN
TARGET_CHARS = 2_500_000  # default training length: about two minutes of a 2-layer LSTM on a laptop CPU


class Temperature(Option):
    """0, or a number from MIN_TEMPERATURE to MAX_TEMPERATURE: a tinier one (1e-320, a subnormal) divides the
    logits into infinities, and softmax into NaN."""

    def check(self, name: str, value, verb: str):
        out = Option(self.kind, self.default).check(name, value, verb)  # a finite number, or the default
        if out is not None and not (out == 0 or MIN_TEMPERATURE <= out <= MAX_TEMPERATURE):  # said in one form
            raise DataError(f"{verb}: {name} must be 0 (always the likeliest) or from {MIN_TEMPERATURE:g} to "
                            f"{MAX_TEMPERATURE:g}. Received: {value!r}.")
        return out


def stream_windows(ids: torch.Tensor, streams: int, seq_len: int) -> torch.Tensor:
    """Rows of seq_len + 1 ids (inputs and next-character targets): row step * streams + b is window `step` of
    stream b, where stream b is the b-th of `streams` equal contiguous stretches of `ids`. The windows are a strided
    view of `ids`, copied once into rows (no index tensor eight times the text's size)."""
    per_stream = (len(ids) - 1) // streams
    steps = per_stream // seq_len
    view = ids.contiguous().as_strided((steps, streams, seq_len + 1), (seq_len, per_stream, 1))
    return view.reshape(steps * streams, seq_len + 1)


def bigram_bpc(train: torch.Tensor, test: torch.Tensor, vocab_size: int, alpha: float = 0.5) -> float:
    """Bits per character of an add-alpha smoothed bigram model of `train`, on `test`: what counting pairs gives."""
    counts = np.full((vocab_size, vocab_size), alpha)
    np.add.at(counts, (train[:-1].numpy(), train[1:].numpy()), 1)
    logp = np.log2(counts / counts.sum(1, keepdims=True))
    return float(-logp[test[:-1].numpy(), test[1:].numpy()].mean())


class TextGeneration(Task):
    name = "text"
    models = builtin_models("text")
    defaults = {"data.source": "python-stdlib", "model.name": "lstm", "model.activation": "tanh",
                "train.batch_size": 32, "train.clip_grad": 1.0}
    default_monitor = "val_loss"
    headline = "bpc"
    sequential = True
    counted = ("characters", "characters")
    use, kind = "generate", "a text generation"
    overfit_remedies = "--dropout 0.2, a smaller --width, or more text"

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
            self.check_characters(text, f"'{d.source}'")
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
        self.check_characters(text, f"'{source}'")
        return (torch.from_numpy(encode(text, self.meta["vocab"])),)

    def check_characters(self, text: str, what: str) -> None:
        unknown = unknown_characters(text, self.meta["vocab"])
        if unknown:
            shown = ", ".join(repr(c) for c in unknown[:20]) + (" ..." if len(unknown) > 20 else "")
            raise DataError(f"{what} has {len(unknown)} character(s) the model never saw in training: {shown}. "
                            f"Leave them out; the model knows {len(self.meta['vocab'])} characters.")

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

    # --- sampling -----------------------------------------------------------------------
    def start_ids(self, prime: str) -> list[int]:
        vocab = self.meta["vocab"]
        if not prime:
            prime = "\n" if "\n" in vocab else vocab[0]
        self.check_characters(prime, "The prime text")
        return encode(prime, vocab).tolist()

    def stream(self, model: nn.Module, prime: str = "", length: int = 500, temperature: float = 0.8,
               top_k: int | None = None, seed: int | None = None, device: torch.device | None = None) -> Iterator[str]:
        """`length` characters, yielded one at a time as they are sampled, continuing `prime` (default: a new line).
        temperature 0 picks the most likely character every time; top_k keeps only the k likeliest.
        The arguments are checked at once, before the first character is asked for."""
        from ..inference import check_options

        o = check_options(self.use_options, {"length": length, "temperature": temperature, "top_k": top_k}, "generate")
        ids = self.start_ids(prime)
        device = device or next(model.parameters()).device
        generator = torch.Generator(device=device).manual_seed(secrets.randbits(63) if seed is None else seed)
        return self.sample(model, ids, o["length"], o["temperature"], o["top_k"], generator, device)

    @torch.inference_mode()
    def sample(self, model: nn.Module, ids: list[int], length: int, temperature: float, top_k: int | None,
               generator: torch.Generator, device: torch.device) -> Iterator[str]:
        vocab = self.meta["vocab"]
        with evaluating(model):
            logits, state = model(torch.tensor([ids], device=device))
            logits = logits[:, -1]
            step = torch.empty(1, dtype=torch.long, device=device)
            for _ in range(length):
                stop_if_cancelled()  # a server's request whose client is gone stops here
                nxt = pick(logits[0].float(), temperature, top_k, generator)
                yield vocab[nxt]
                step.fill_(nxt)
                logits, state = model.step(step, state)

    def generate(self, model: nn.Module, prime: str = "", length: int = 500, temperature: float = 0.8,
                 top_k: int | None = None, seed: int | None = None, device: torch.device | None = None) -> str:
        """The prime followed by `length` sampled characters."""
        return prime + "".join(self.stream(model, prime, length, temperature, top_k, seed, device))

    # --- use: the inference face (inference.py) -------------------------------------------
    max_items = 64

    @property
    def use_options(self) -> dict:
        return {"length": Option(int, 500, 0, MAX_LENGTH, "characters to write after the prime"),
                "temperature": Temperature(float, SUMMARY_TEMPERATURE, 0, MAX_TEMPERATURE,
                                           "0 always takes the likeliest character; higher invents more"),
                "top_k": Option(int, None, 1, None, "sample only among the k likeliest characters"),
                "seed": Option(int, None, 0, 2 ** 63 - 1, "the same seed writes the same text (default: random)")}

    def decode_inputs(self, inputs, options: dict, trusted: bool = True) -> list:
        """A prime (text), or a list of primes; None: one sample from the default start."""
        from ..inference import text_items

        primes = text_items("" if inputs is None else inputs, "generate", "prime", self.max_items)
        for prime in primes:
            self.start_ids(prime)  # every prime is checked before any is written
        return primes

    def example_request(self) -> tuple:
        return "", {"length": 4, "seed": 0}

    def infer(self, model: nn.Module, items: list, device: torch.device, options: dict) -> list:
        """{'prime', 'text' (the prime and what follows), 'seed'} per prime."""
        out = []
        for prime in items:
            seed = secrets.randbits(31) if options["seed"] is None else options["seed"]
            chars = self.stream(model, prime, options["length"], options["temperature"], options["top_k"], seed, device)
            out.append({"prime": prime, "text": prime + "".join(chars), "seed": seed})
        return out

    def infer_stream(self, model: nn.Module, items: list, device: torch.device, options: dict):
        """{'prime', 'seed'} first, then {'token': character} as each is sampled, then {'text'}, per prime."""
        for prime in items:
            seed = secrets.randbits(31) if options["seed"] is None else options["seed"]
            yield {"prime": prime, "seed": seed}
            text = prime
            for ch in self.stream(model, prime, options["length"], options["temperature"], options["top_k"], seed, device):
                text += ch
                yield {"token": ch}
            yield {"text": text}

    def export_graphs(self, model: nn.Module) -> list:
        from ..inference import Graph
        from ..models.rnn import CharRNN, CharStep

        if not isinstance(model, CharRNN):
            raise DeepworksError("A text model designed from cards (--model layers) is not exported yet: its "
                                 "state is one tensor per recurrent card. `deepworks serve` and `generate` use it "
                                 "as it is; export works for --model lstm, gru and rnn.")
        step = CharStep(model).eval()
        names = step.state_names

        def example(n: int) -> tuple:
            g = torch.Generator().manual_seed(n)
            ids = torch.randint(0, len(self.meta["vocab"]), (n,), generator=g)
            return (ids, *(torch.randn(step.layers, n, step.hidden, generator=g) * 0.5 for _ in names))

        return [Graph("step", step, example(2), example(3), ["ids", *names], ["logits", *(f"{n}_out" for n in names)],
                      {k: {1 if k.startswith(("h", "c")) else 0: "batch"}
                       for k in ["ids", *names, "logits", *(f"{n}_out" for n in names)]},
                      "one character per call: ids (N,) and the state in, logits (N, V) and the new state out")]

    def card(self) -> dict:
        return {"vocab": self.meta["vocab"], "prime": self.prime,
                "loop": "state = zeros (layers, N, hidden) for each state input; for each character of the prime, "
                        "then for each new one: logits, state = step(ids, state); next id = argmax(logits) at "
                        "temperature 0, else a draw from softmax(logits / temperature) (keeping the top_k largest); "
                        "the text is the vocabulary's characters of those ids."}

    def v2_inputs(self) -> list[dict]:
        return [{"name": "prime", "datatype": "BYTES", "shape": [-1]}]

    def v2_outputs(self, results: list) -> dict:
        return {"text": np.array([r["text"] for r in results], dtype=object)}

    def sample_epochs(self) -> set[int]:
        epochs = self.cfg.train.epochs
        return {int(e) for e in np.linspace(1, epochs, min(epochs, 6)).round()}

    def after_epoch(self, run, model: nn.Module, epoch: int, device: torch.device) -> None:
        """Record samples at a few epochs, so the report shows the writing improve. They use their own seeded
        generator, so training draws the same random numbers with or without them (exact resume holds)."""
        if epoch not in self.sample_epochs():
            return
        for temperature in TEMPERATURES:
            text = self.generate(model, self.prime, 200, temperature, seed=self.cfg.seed + epoch, device=device)
            run.log(kind="sample", epoch=epoch, temperature=temperature, text=text)

    @property
    def prime(self) -> str:
        """What samples start from: the beginning of a line of the text, as its lines begin ('' for older runs)."""
        return (self.meta or {}).get("prime", "")

    # --- after training -------------------------------------------------------------------
    def test_results(self, run, model: nn.Module, data: Prepared, device: torch.device) -> dict:
        vocab = self.meta["vocab"]
        test = self.test_metrics(model, data.test, device) if len(data.test[0]) > 1 else {}
        train_ids = data.train[0][:, :-1].reshape(-1)
        baseline = ({"model": "bigram counts (add-0.5 smoothing)", "bpc": bigram_bpc(train_ids, data.test[0], len(vocab))}
                    if len(data.test[0]) > 1 else None)
        samples = {str(t): self.generate(model, self.prime, 500, t, seed=self.cfg.seed, device=device)
                   for t in TEMPERATURES}
        shown = self.generate(model, self.prime, 400, SUMMARY_TEMPERATURE, seed=self.cfg.seed, device=device)
        return {"test": test, "baseline": baseline, "vocab_size": len(vocab), "samples": samples,
                "sample": {"prime": self.prime, "temperature": SUMMARY_TEMPERATURE, "text": shown}}

    def split_sizes(self, data: Prepared) -> dict:
        return {"train": self.meta["train_chars"], "val": self.meta["val_chars"]}

    def logged_test(self, results: dict) -> dict:
        baseline = results["baseline"]
        return {**results["test"], "baseline_bpc": baseline["bpc"] if baseline else None}

    def report_sections(self, run, model: nn.Module, data: Prepared, results: dict, device) -> list[tuple[str, str]]:
        out = run.report_dir
        records = run.metrics()
        curves = plot_history(records, out / "curves.png", "bpc", "perplexity",
                              titles={"loss": "Loss (nats per character)", "bpc": "Bits per character",
                                      "perplexity": "Perplexity"})
        test, fit, baseline = results["test"], results["fit"], results["baseline"]
        rows = []
        if test:
            rows.append({"model": f"{self.cfg.model.name} (network)", "nats/char": test["loss"], "bits/char": test["bpc"],
                         "perplexity": test["perplexity"], "parameters": results["parameters"]})
        if baseline:
            rows.append({"model": baseline["model"], "nats/char": baseline["bpc"] * LN2, "bits/char": baseline["bpc"],
                         "perplexity": 2 ** baseline["bpc"], "parameters": ""})
        during = [r for r in records if r.get("kind") == "sample"]
        by_epoch: dict[int, dict] = {}
        for r in during:
            by_epoch.setdefault(r["epoch"], {})[r["temperature"]] = r["text"]
        progress_rows = "".join(
            f"<tr><td>{e}</td>" + "".join(f"<td><pre>{html.escape(texts.get(t, ''))}</pre></td>" for t in TEMPERATURES)
            + "</tr>" for e, texts in sorted(by_epoch.items()))
        head = "<tr><th>epoch</th>" + "".join(f"<th>temperature {t}</th>" for t in TEMPERATURES) + "</tr>"
        final = "".join(f"<h3>temperature {t}</h3><pre>{html.escape(s)}</pre>" for t, s in results["samples"].items())
        vocab = "".join(self.meta["vocab"])
        notes = notes_block(data.notes)
        best = fit["best_value"]
        return [
            ("Result on the held-out text", table(rows) + self.notes_html(results) + f"<p>{fit['epochs']} epochs; best validation "
             f"{fit['monitor']} {best if best is None else round(best, 4)} at epoch {fit['best_epoch']}. "
             "Bits per character: how many yes/no questions the model needs, on average, to guess the next character; "
             "lower is better, and a model that guessed uniformly would need "
             f"{math.log2(len(self.meta['vocab'])):.2f}.</p>"),
            ("Samples from the final model", "<p>500 characters each, starting from a new line. Low temperatures "
             "play safe and repeat themselves; high ones invent more and misspell more.</p>" + final),
            ("Samples during training", "<table class='samples'>" + head + progress_rows + "</table>"),
            ("Training curves", image_tag(curves, "loss, bits per character and perplexity per epoch")),
            ("Data", f"<p>{html.escape(self.meta['source'])}</p>" + table([results["splits"]])
             + f"<p>Vocabulary of {len(vocab)} characters: <code>{html.escape(repr(vocab))}</code></p>" + notes),
        ]

    # --- what the CLI prints ----------------------------------------------------------------
    def summary(self, results: dict) -> list[tuple[str, str]]:
        test, base, splits = results["test"], results["baseline"], results["splits"]
        lines = [
            ("data", f"{self.meta['source']}; train {splits['train']:,} / val {splits['val']:,} characters, "
                     f"{results['vocab_size']} distinct"),
            self.model_line(results),
        ]
        if test:
            lines.append(("val", f"{test['loss']:.4f} nats/char  {test['bpc']:.4f} bits/char  "
                                 f"perplexity {test['perplexity']:.2f}"))
        if base:
            lines.append(("baseline", f"{base['bpc']:.4f} bits/char ({base['model']})"))
        shown = results.get("sample") or {"text": results["samples"][str(TEMPERATURES[0])], "temperature": 0.5}
        lines.append(("sample", f"(temperature {shown['temperature']:g})\n" + " " * 10
                      + readable(shown["text"]).replace("\n", "\n" + " " * 10)))
        return lines

    @staticmethod
    def describe_metrics(metrics: dict) -> list[str]:
        return [f"{metrics['loss']:.4f} nats/char  {metrics['bpc']:.4f} bits/char  perplexity {metrics['perplexity']:.2f}"]


def sample_prime(text: str) -> str:
    """The first word of the first line of `text` that starts with a letter, with the space after it ('def ',
    'First '): a sample started there begins as the text's lines do, where a bare new line lets a model of Python
    source write only indentation. '' when no line starts that way."""
    for line in text.splitlines()[1:201]:  # the first line may start mid-line
        word = line.split(" ", 1)[0]
        if word.rstrip(":,;.").isalpha() and " " in line and len(line) >= 12:
            return word + " "
    return ""


def readable(text: str, lines: int = 8, width: int = 100) -> str:
    """A sample as a person can read it in a terminal: no trailing spaces, no runs of blank lines, at most `lines`
    lines of at most `width` characters, tabs shown as four spaces."""
    out, blank = [], False
    for line in text.replace("\t", "    ").split("\n"):
        line = line.rstrip()
        if not line:
            if blank or not out:
                continue
            blank = True
        else:
            blank = False
        out.append(line if len(line) <= width else line[:width - 1] + "…")
        if len(out) == lines:
            break
    return "\n".join(out).strip("\n") or "(only spaces and line breaks)"


def pick(logits: torch.Tensor, temperature: float, top_k: int | None, generator: torch.Generator) -> int:
    """One character id from the logits of the next character."""
    if temperature == 0:
        return int(logits.argmax())
    if top_k is not None and top_k < logits.numel():
        kth = logits.topk(top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits / temperature, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))

