"""A model designed as a stack of layer cards (`--model layers`, the web UI's designer): the spec is a list in the
run's YAML, every card a mapping with its `type` and settings, and a residual card holding a stack of its own.

    model:
      name: layers
      layers:
        - {type: conv, channels: 6, kernel: 5, padding: 2}
        - {type: activation, function: relu}
        - {type: pool, size: 2}
        - {type: conv, channels: 16, kernel: 5}
        - {type: activation, function: relu}
        - {type: pool, size: 2}
        - {type: dense, units: 120}
        - {type: activation, function: relu}
        - {type: dense, units: 84}
        - {type: activation, function: relu}

is LeNet-5 (61,706 parameters on 28x28 digits). The head, a dense layer with one unit per class, is added after
the last card; a dense card flattens what it receives. A text model (`--task text --model layers`) is designed the
same way from an embedding, recurrent (lstm, gru or rnn), dense, activation and dropout cards, each applied at every
position of the sequence, its head scoring the next character:

        - {type: embedding, size: 64}
        - {type: recurrent, kind: lstm, units: 256}
        - {type: dropout, rate: 0.2}
        - {type: recurrent, kind: gru, units: 128}
 `plan` walks the stack with an input's shape and gives each
card's output shape and parameter count, or says which card does not fit and what to change; `normalise` writes
every card with all its settings in a fixed order, so a design saved, edited and loaded again builds the same model.
"""

from __future__ import annotations

import difflib
import math
import reprlib

import torch
import torch.nn as nn

from ..errors import ConfigError
from .layers import ACTIVATIONS, activation, conv2d, init_weights

CARDS: dict[str, dict] = {  # each card's settings and their defaults, in the order a saved design writes them
    "conv": {"channels": 16, "kernel": 3, "stride": 1, "padding": 0},
    "pool": {"kind": "max", "size": 2},
    "batchnorm": {},
    "activation": {"function": "relu"},
    "dropout": {"rate": 0.5},
    "flatten": {},
    "dense": {"units": 64},
    "residual": {"layers": []},
    "embedding": {"size": 64},
    "recurrent": {"kind": "lstm", "units": 128},
}
IMAGE_CARDS = ("conv", "pool", "batchnorm", "activation", "dropout", "flatten", "dense", "residual")
TEXT_CARDS = ("embedding", "recurrent", "dense", "activation", "dropout")  # every position of a sequence alike
RECURRENT_KINDS = {"lstm": 4, "gru": 3, "rnn": 1}  # and their gates: a layer's weights are that many times one RNN's
TOKENS = ("T",)  # a text model's input: T character ids; what a card makes of it is (T, features)
OTHER_NAMES = {"convolution": "conv", "conv2d": "conv", "linear": "dense", "fc": "dense", "fully_connected": "dense",
               "maxpool": "pool", "avgpool": "pool", "pooling": "pool", "bn": "batchnorm", "batch_norm": "batchnorm",
               "relu": "activation", "tanh": "activation", "sigmoid": "activation", "block": "residual",
               "embed": "embedding", "lstm": "recurrent", "gru": "recurrent", "rnn": "recurrent"}
MAX_CARDS = 200  # a design with more cards than this is a mistake, not a model for a CPU
MAX_WIDTH = 65536  # channels or units of one card


def normalise(spec, where: str = "model.layers") -> list[dict]:
    """The design with every card complete ({'type': ..., then its settings in CARDS' order}), each setting checked;
    a message naming the card ('card 3 (conv)') and the fix for anything wrong."""
    if not isinstance(spec, list) or not spec:
        raise ConfigError(f"{where} must be a list of layer cards, such as [{{type: conv, channels: 6, kernel: 5}}, "
                          f"{{type: activation}}]. Received: {reprlib.repr(spec)}.")
    if count_cards(spec) > MAX_CARDS:
        raise ConfigError(f"{where} has more than {MAX_CARDS} cards. Expected a smaller design.")
    return [normal_card(card, f"{where}, card {i}") for i, card in enumerate(spec, 1)]


def count_cards(spec) -> int:
    return sum(1 + (count_cards(c.get("layers")) if isinstance(c, dict) and isinstance(c.get("layers"), list) else 0)
               for c in spec)


def normal_card(card, where: str) -> dict:
    if not isinstance(card, dict) or "type" not in card:
        raise ConfigError(f"{where}: expected a mapping with a type ({', '.join(CARDS)}). Received: "
                          f"{reprlib.repr(card)}.")  # reprlib: a huge value is shown in a line, not in full
    kind = card["type"]
    if not isinstance(kind, str) or kind not in CARDS:
        close = [OTHER_NAMES[kind]] if isinstance(kind, str) and kind in OTHER_NAMES else difflib.get_close_matches(str(kind), list(CARDS), n=1)
        raise ConfigError(f"{where}: unknown type {reprlib.repr(kind)}."
                          f"{f' Did you mean {close[0]!r}?' if close else ''} "
                          f"Expected one of: {', '.join(CARDS)}.")
    where = f"{where} ({kind})"
    defaults = CARDS[kind]
    unknown = [k for k in card if k != "type" and k not in defaults]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), list(defaults), n=1)
        raise ConfigError(f"{where}: unknown setting {unknown[0]!r}.{f' Did you mean {close[0]!r}?' if close else ''} "
                          f"A {kind} card takes: {', '.join(defaults) or 'no settings'}.")
    out = {"type": kind}
    for key, default in defaults.items():
        value = card.get(key, default)
        out[key] = checked_setting(kind, key, value, where)
    return out


def checked_setting(kind: str, key: str, value, where: str):
    if key == "layers":
        return normalise(value, where) if value else []
    if key == "function":
        if value not in ACTIVATIONS:
            raise ConfigError(f"{where}: function must be one of {', '.join(ACTIVATIONS)}. Received: "
                              f"{reprlib.repr(value)}.")
        return value
    if key == "kind":
        kinds = tuple(RECURRENT_KINDS) if kind == "recurrent" else ("max", "avg")
        if value not in kinds:
            raise ConfigError(f"{where}: kind must be {' or '.join(kinds)}. Received: {reprlib.repr(value)}.")
        return value
    if key == "rate":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise ConfigError(f"{where}: rate must be a number from 0 to below 1. Received: {reprlib.repr(value)}.")
        return float(value)
    low = 0 if key == "padding" else 1
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_WIDTH:
        raise ConfigError(f"{where}: {key} must be a whole number from {low} to {MAX_WIDTH:,}. Received: "
                          f"{reprlib.repr(value)}.")
    return value


# --- shapes and parameters ------------------------------------------------------------------------------------
def plan(spec: list[dict], input_shape: tuple, classes: int) -> list[dict]:
    """Each card's output shape and parameters, then the head's; ConfigError for the first card that does not fit.
    `input_shape` is (channels, height, width) for images, TOKENS for text, where `classes` is the vocabulary (the
    head scores every character at every position)."""
    rows, shape = [], tuple(input_shape)
    for i, card in enumerate(spec, 1):
        shape, params = card_output(card, shape, f"Card {i} ({card['type']})", classes)
        rows.append({"card": i, "type": card["type"], "output": list(shape), "parameters": params})
    if is_sequence(shape):
        head = {"output": ["T", classes], "parameters": shape[-1] * classes + classes}
    else:
        head = {"output": [classes], "parameters": math.prod(shape) * classes + classes}
    rows.append({"card": len(spec) + 1, "type": "head", **head})
    return rows


def is_sequence(shape: tuple) -> bool:
    return shape[:1] == TOKENS


def card_output(card: dict, shape: tuple, where: str, vocab: int = 0) -> tuple[tuple, int]:
    kind = card["type"]
    if is_sequence(shape):
        return sequence_output(card, shape, where, vocab)
    if kind in ("embedding", "recurrent"):
        raise ConfigError(f"{where} works on text (a sequence of characters). An image model takes "
                          f"{', '.join(IMAGE_CARDS)} cards.")
    if kind in ("conv", "pool", "batchnorm") and len(shape) != 3:
        raise ConfigError(f"{where} needs images (channels x height x width), but it receives {fmt(shape)} values "
                          f"in a row. Move it before the first dense or flatten card.")
    if kind == "conv":
        c, h, w = shape
        k, s, p = card["kernel"], card["stride"], card["padding"]
        if h + 2 * p < k or w + 2 * p < k:
            raise ConfigError(f"{where}: a {k}x{k} kernel does not fit the {h}x{w} it receives. Use a kernel of at "
                              f"most {min(h, w) + 2 * p}, padding {math.ceil((k - min(h, w)) / 2)} or more, or fewer "
                              f"pooling cards before it.")
        return (card["channels"], (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1), \
            card["channels"] * (c * k * k + 1)
    if kind == "pool":
        c, h, w = shape
        if h < card["size"] or w < card["size"]:
            raise ConfigError(f"{where}: pooling {card['size']}x{card['size']} does not fit the {h}x{w} it "
                              f"receives. Use a smaller size, or drop a pooling card before it.")
        return (c, h // card["size"], w // card["size"]), 0
    if kind == "batchnorm":
        return shape, 2 * shape[0]
    if kind in ("activation", "dropout"):
        return shape, 0
    if kind == "flatten":
        return (math.prod(shape),), 0
    if kind == "dense":
        return (card["units"],), math.prod(shape) * card["units"] + card["units"]
    # residual: the inner stack's output is added to its input, so it must keep the shape (or a 1x1 convolution
    # shortcut adapts the channels and resolution of images)
    inner, params = shape, 0
    for j, sub in enumerate(card["layers"], 1):
        inner, p = card_output(sub, inner, f"{where}, inner card {j} ({sub['type']})", vocab)
        params += p
    if inner == shape:
        return inner, params
    if shortcut_stride(shape, inner):
        return inner, params + inner[0] * shape[0]  # the shortcut's 1x1 convolution, no bias
    raise ConfigError(f"{where}: its cards turn {fmt(shape)} into {fmt(inner)}, which cannot be added back to its "
                      f"input. Keep the shape inside a residual card, or change the resolution by a whole factor.")


def sequence_output(card: dict, shape: tuple, where: str, vocab: int) -> tuple[tuple, int]:
    """A text card's output (T, features) and parameters: each position of the sequence goes through it alike."""
    kind = card["type"]
    if kind not in TEXT_CARDS:
        raise ConfigError(f"{where} works on images. A text model takes {', '.join(TEXT_CARDS)} cards.")
    if kind == "embedding":
        if shape != TOKENS:
            raise ConfigError(f"{where}: an embedding turns characters into vectors, so it comes first, once.")
        return ("T", card["size"]), vocab * card["size"]
    if shape == TOKENS:
        raise ConfigError(f"{where} receives characters: put an embedding card before it.")
    features = shape[-1]
    if kind == "recurrent":
        units = card["units"]
        return ("T", units), RECURRENT_KINDS[card["kind"]] * (units * (features + units) + 2 * units)
    if kind == "dense":
        return ("T", card["units"]), features * card["units"] + card["units"]
    return shape, 0  # activation, dropout


def shortcut_stride(shape: tuple, inner: tuple) -> int | None:
    """The stride of a 1x1 convolution that takes images of `shape` to the resolution of `inner`, if one does."""
    if len(shape) != 3 or len(inner) != 3:
        return None
    return next((s for s in range(1, shape[1] + 1)
                 if (shape[1] - 1) // s + 1 == inner[1] and (shape[2] - 1) // s + 1 == inner[2]), None)


def fmt(shape: tuple) -> str:
    return "x".join(str(s) for s in shape)


# --- the network ------------------------------------------------------------------------------------------------
class Residual(nn.Module):
    def __init__(self, body: nn.Sequential, shortcut: nn.Module):
        super().__init__()
        self.body, self.shortcut = body, shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


def build_cards(spec: list[dict], shape: tuple) -> tuple[nn.Sequential, tuple]:
    modules = []
    for card in spec:
        out, _ = card_output(card, shape, card["type"])
        modules.append(card_module(card, shape, out))
        shape = out
    return nn.Sequential(*modules), shape


def card_module(card: dict, shape: tuple, out: tuple) -> nn.Module:
    kind = card["type"]
    if kind == "conv":
        return conv2d(shape[0], card["channels"], card["kernel"], card["stride"], card["padding"])
    if kind == "pool":
        return (nn.MaxPool2d if card["kind"] == "max" else nn.AvgPool2d)(card["size"])
    if kind == "batchnorm":
        return nn.BatchNorm2d(shape[0])
    if kind == "activation":
        return activation(card["function"])
    if kind == "dropout":
        return nn.Dropout(card["rate"])
    if kind == "flatten":
        return nn.Flatten()
    if kind == "dense":
        return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(shape), card["units"]))
    body, _ = build_cards(card["layers"], shape)
    shortcut = nn.Identity() if out == shape else conv2d(shape[0], out[0], 1, shortcut_stride(shape, out), bias=False)
    return Residual(body, shortcut)


class Stack(nn.Module):
    """The network a design describes: its cards in order, then the head (one unit per class)."""
    min_size = 1

    def __init__(self, spec: list[dict], in_channels: int, image_size: int, num_classes: int, init: str = "auto"):
        super().__init__()
        spec = normalise(spec)
        plan(spec, (in_channels, image_size, image_size), num_classes)  # a card that does not fit, said first
        self.cards, shape = build_cards(spec, (in_channels, image_size, image_size))
        self.head = nn.Linear(math.prod(shape), num_classes)
        init_weights(self, init, "relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.cards(x), 1))


RECURRENT = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


class SequenceStack(nn.Module):
    """A text model designed from cards: an embedding, then recurrent, dense, activation and dropout cards over every
    position, then the head scoring each character of the vocabulary. `forward(x, state)` -> (logits, state), as the
    char-level RNN's: the state is a tuple of tensors (each recurrent card's h, and c for an LSTM), which the text
    task carries from batch to batch and saves in its checkpoint as it does the RNN's."""

    def __init__(self, spec: list[dict], vocab_size: int, init: str = "auto"):
        super().__init__()
        spec = normalise(spec)
        plan(spec, TOKENS, vocab_size)  # a card that does not fit, said first
        layers, shape = [], TOKENS
        for card in spec:
            out, _ = card_output(card, shape, card["type"], vocab_size)
            layers.append(sequence_module(card, shape, out, vocab_size))
            shape = out
        self.cards = nn.ModuleList(layers)
        self.kinds = [card["kind"] if card["type"] == "recurrent" else None for card in spec]
        self.head = nn.Linear(shape[-1], vocab_size)
        init_weights(self.head, init, "relu")

    def forward(self, x: torch.Tensor, state: tuple | None = None) -> tuple[torch.Tensor, tuple]:
        """x: (batch, time) character ids -> logits (batch, time, vocab) and the state after the last step."""
        given, carried = list(state or ()), []
        for layer, kind in zip(self.cards, self.kinds):
            if kind is None:
                x = layer(x)
                continue
            parts = 2 if kind == "lstm" else 1
            start = (tuple(given[:parts]) if parts == 2 else given[0]) if given else None
            given = given[parts:]
            x, new = layer(x, start)
            carried.extend(new if parts == 2 else (new,))
        return self.head(x), tuple(carried)

    def step(self, ids: torch.Tensor, state: tuple | None = None) -> tuple[torch.Tensor, tuple]:
        """One time step, for sampling: ids (batch,) -> logits (batch, vocab) and the new state."""
        logits, state = self(ids[:, None], state)
        return logits[:, 0], state


def sequence_module(card: dict, shape: tuple, out: tuple, vocab: int) -> nn.Module:
    kind = card["type"]
    if kind == "embedding":
        return nn.Embedding(vocab, card["size"])
    if kind == "recurrent":
        return RECURRENT[card["kind"]](shape[-1], card["units"], batch_first=True)
    if kind == "dense":
        return nn.Linear(shape[-1], card["units"])
    if kind == "activation":
        return activation(card["function"])
    return nn.Dropout(card["rate"])
