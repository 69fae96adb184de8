"""Text generation's face: sampling characters from a trained character-level model.

`generate` / `stream` continue a prime at a temperature, optionally among the top-k likeliest characters only, with
a seeded generator of their own (the same seed writes the same text). The server streams the characters as they
come; export writes the model's one-character step graph, and the model card says how to run the loop around it.
Built from the config and the run's meta alone (the vocabulary and the prime), as every face is.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn as nn

from ..data.text import encode, unknown_characters
from ..errors import DataError, DeepworksError
from ..usage import Option, stop_if_cancelled
from ..models import evaluating
from .face import Face

SUMMARY_TEMPERATURE = 0.8  # the sample after training, and `generate`'s default: varied, rarely misspelt
MAX_LENGTH = 1_000_000  # characters one call may ask for
MIN_TEMPERATURE, MAX_TEMPERATURE = 1e-3, 100.0  # beyond them, logits / temperature overflows to inf and NaN


class Temperature(Option):
    """0, or a number from MIN_TEMPERATURE to MAX_TEMPERATURE: a tinier one (1e-320, a subnormal) divides the
    logits into infinities, and softmax into NaN."""

    def check(self, name: str, value, verb: str):
        out = Option(self.kind, self.default).check(name, value, verb)  # a finite number, or the default
        if out is not None and not (out == 0 or MIN_TEMPERATURE <= out <= MAX_TEMPERATURE):  # said in one form
            raise DataError(f"{verb}: {name} must be 0 (always the likeliest) or from {MIN_TEMPERATURE:g} to "
                            f"{MAX_TEMPERATURE:g}. Received: {value!r}.")
        return out


def check_characters(text: str, vocab: list[str], what: str) -> None:
    """Refuse (DataError) a text with characters outside the model's vocabulary, naming the first 20 of them."""
    unknown = unknown_characters(text, vocab)
    if unknown:
        shown = ", ".join(repr(c) for c in unknown[:20]) + (" ..." if len(unknown) > 20 else "")
        raise DataError(f"{what} has {len(unknown)} character(s) the model never saw in training: {shown}. "
                        f"Leave them out; the model knows {len(vocab)} characters.")


def pick(logits: torch.Tensor, temperature: float, top_k: int | None, generator: torch.Generator) -> int:
    """One character id from the logits of the next character."""
    if temperature == 0:
        return int(logits.argmax())
    if top_k is not None and top_k < logits.numel():
        kth = logits.topk(top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits / temperature, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


class TextFace(Face):
    verb, kind = "generate", "a text generation"
    max_items = 64

    @property
    def prime(self) -> str:
        """What samples start from: the beginning of a line of the text, as its lines begin ('' for older runs)."""
        return (self.meta or {}).get("prime", "")

    @property
    def use_options(self) -> dict:
        return {"length": Option(int, 500, 0, MAX_LENGTH, "characters to write after the prime"),
                "temperature": Temperature(float, SUMMARY_TEMPERATURE, 0, MAX_TEMPERATURE,
                                           "0 always takes the likeliest character; higher invents more"),
                "top_k": Option(int, None, 1, None, "sample only among the k likeliest characters"),
                "seed": Option(int, None, 0, 2 ** 63 - 1, "the same seed writes the same text (default: random)")}

    # --- sampling -----------------------------------------------------------------------
    def start_ids(self, prime: str) -> list[int]:
        vocab = self.meta["vocab"]
        if not prime:
            prime = "\n" if "\n" in vocab else vocab[0]
        check_characters(prime, vocab, "The prime text")
        return encode(prime, vocab).tolist()

    def stream(self, model: nn.Module, prime: str = "", length: int = 500, temperature: float = 0.8,
               top_k: int | None = None, seed: int | None = None, device: torch.device | None = None) -> Iterator[str]:
        """`length` characters, yielded one at a time as they are sampled, continuing `prime` (default: a new line).
        temperature 0 picks the most likely character every time; top_k keeps only the k likeliest.
        The arguments are checked at once, before the first character is asked for."""
        from ..usage import check_options

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

    @torch.inference_mode()
    def samples_at(self, model: nn.Module, prime: str, length: int, temperatures: tuple[float, ...], seed: int,
                   device: torch.device) -> list[str]:
        """One sample per temperature (each above 0), written side by side as one batch: the steps of one sample,
        not of one per temperature, and no wait for each character (what training's report samples use)."""
        vocab, ids = self.meta["vocab"], self.start_ids(prime)
        generator = torch.Generator(device=device).manual_seed(seed)
        temperatures = torch.tensor(temperatures, device=device).view(-1, 1)
        written = []
        with evaluating(model):
            logits, state = model(torch.tensor([ids] * len(temperatures), device=device))
            logits = logits[:, -1]
            for k in range(length):
                nxt = torch.multinomial(torch.softmax(logits.float() / temperatures, -1), 1, generator=generator)[:, 0]
                written.append(nxt)
                if k + 1 < length:
                    logits, state = model.step(nxt, state)
        rows = torch.stack(written, 1).tolist() if written else [[] for _ in temperatures]
        return [prime + "".join(vocab[i] for i in row) for row in rows]

    def generate(self, model: nn.Module, prime: str = "", length: int = 500, temperature: float = 0.8,
                 top_k: int | None = None, seed: int | None = None, device: torch.device | None = None) -> str:
        """The prime followed by `length` sampled characters."""
        return prime + "".join(self.stream(model, prime, length, temperature, top_k, seed, device))

    # --- use: what Trained, the CLI and the server call -------------------------------------
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

    # --- export and the Open Inference Protocol ---------------------------------------------
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

    int8_method = "dynamic"  # the recurrent layer's and the head's weights in int8

    def calibration_feeds(self, graph: str, split: tuple, most: int, model=None,
                          streams: int = 32) -> list[dict] | None:
        """The step graph's inputs over a split's text, read as `streams` parallel streams of about most / streams
        characters each: each step's character ids and the state the trained model had reached there (its own
        answers, step after step, so that every step is checked from the state generation would give it)."""
        from ..models.rnn import CharRNN, CharStep

        ids = split[0][:most]
        steps = len(ids) // streams
        if not isinstance(model, CharRNN) or steps == 0:
            return None
        x, step = ids[:steps * streams].long().view(streams, steps), CharStep(model).eval()
        state = [torch.zeros(step.layers, streams, step.hidden) for _ in step.state_names]
        feeds = []
        with torch.inference_mode():
            for t in range(steps):
                feeds.append({"ids": np.ascontiguousarray(x[:, t].numpy()),
                              **{name: s.numpy().copy() for name, s in zip(step.state_names, state)}})
                state = list(step(x[:, t], *state)[1:])
        return feeds

    def model_card(self) -> dict:
        return {"vocab": self.meta["vocab"], "prime": self.prime,
                "loop": "state = zeros (layers, N, hidden) for each state input; for each character of the prime, "
                        "then for each new one: logits, state = step(ids, state); next id = argmax(logits) at "
                        "temperature 0, else a draw from softmax(logits / temperature) (keeping the top_k largest); "
                        "the text is the vocabulary's characters of those ids."}

    v2_text = ("prime", "text")  # V2: the input tensor and the answers' field, a string per item each

    def v2_inputs(self) -> list[dict]:
        return [{"name": self.v2_text[0], "datatype": "BYTES", "shape": [-1]}]

    def v2_outputs(self, results: list) -> dict:
        key = self.v2_text[1]
        return {key: np.array([r[key] for r in results], dtype=object)}
