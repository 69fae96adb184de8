"""The one way a trained model is used: decode what a caller gives, predict, encode a JSON-able answer.

Every task has a face (tasks/face.py `Face`, made from the run's config and meta): `verb` (predict, generate,
translate, sample ...), `use_options` (the settings that verb takes, each an `Option`), `decode_inputs`, `infer`,
`encode_result`, `infer_stream`, and for export `serving_model` and `export_graphs`. The API's `Trained`, the
CLI, the HTTP server and the exporter call only these, so a new task adds no method to `Trained` and no branch to
the server.

This module holds what the faces share: option checking, the `Graph` an exporter writes, and the decoding of
images from paths, bytes, PIL images and arrays with the same limits training uses.
"""

from __future__ import annotations

import base64
import io
import math
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .errors import DataError


@dataclass(frozen=True)
class Option:
    """One setting of a use (top_k, temperature, beam ...): its type, default, bounds and help, checked the same way
    from the API, the CLI and an HTTP request."""
    kind: type
    default: object = None
    low: float | None = None
    high: float | None = None
    help: str = ""
    choices: tuple = ()

    def check(self, name: str, value, verb: str):
        if value is None:
            return self.default
        try:
            if self.kind is bool and not isinstance(value, (bool, str)):
                raise TypeError
            if self.kind is int and (isinstance(value, bool) or (isinstance(value, float) and not value.is_integer())):
                raise TypeError
            out = self.kind(value)
        except (TypeError, ValueError):
            raise DataError(f"{verb}: {name} must be {KIND_WORDS[self.kind]}. Received: {value!r}.") from None
        if self.kind is bool and isinstance(value, str):  # a form field or query string: bool("false") is True
            said = value.strip().lower()
            if said not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise DataError(f"{verb}: {name} must be true or false. Received: {value!r}.")
            out = said in ("1", "true", "yes", "on")
        if self.kind is float and not math.isfinite(out):
            raise DataError(f"{verb}: {name} must be a finite number. Received: {value!r}.")
        if self.choices and out not in self.choices:
            raise DataError(f"{verb}: {name} must be one of {', '.join(map(str, self.choices))}. Received: {value!r}.")
        if (self.low is not None and out < self.low) or (self.high is not None and out > self.high):
            raise DataError(f"{verb}: {name} must be {bounds(self.low, self.high)}. Received: {value!r}.")
        return out

    def describe(self) -> dict:
        """The option as JSON (the server's model card and OpenAPI text)."""
        return {"type": self.kind.__name__, "default": self.default, "minimum": self.low, "maximum": self.high,
                "choices": list(self.choices) or None, "help": self.help}


KIND_WORDS = {int: "a whole number", float: "a number", str: "text", bool: "true or false"}


def bounds(low, high) -> str:
    if low is not None and high is not None:
        return f"from {low:,} to {high:,}"
    return f"at least {low:,}" if low is not None else f"at most {high:,}"


def check_options(declared: dict[str, Option], options: dict, verb: str) -> dict:
    """Every declared option with its checked value (or default); an option the verb does not take is refused with
    the list of those it does."""
    unknown = [k for k in options if k not in declared]
    if unknown:
        known = ", ".join(declared) or "none"
        raise DataError(f"{verb} takes no option '{unknown[0]}'. Expected one of: {known}.")
    return {name: option.check(name, options.get(name), verb) for name, option in declared.items()}


class Cancelled(Exception):
    """The work was stopped between two steps: nobody waits for its answer any more (the client went away, or its
    time ran out). Not a DeepworksError: it is never a message for the user."""


_cancel = threading.local()


@contextmanager
def cancellable(event: threading.Event | None):
    """Within it, `stop_if_cancelled()` (which long loops call between steps) raises Cancelled once `event` is set:
    the server sets it when a request's client is gone or its time is up, so the model's thread is free again."""
    previous = getattr(_cancel, "event", None)
    _cancel.event = event
    try:
        yield
    finally:
        _cancel.event = previous


def stop_if_cancelled() -> None:
    event = getattr(_cancel, "event", None)
    if event is not None and event.is_set():
        raise Cancelled("stopped: nobody waits for this answer any more")


@dataclass
class Graph:
    """One graph of an exported model: a module of tensors in and tensors out, with what the exporter needs.
    `example` are the inputs it is traced with; `check` are inputs of another batch size (and length) that the
    exported file must answer as torch does."""
    name: str
    module: nn.Module
    example: tuple
    check: tuple
    inputs: list[str]
    outputs: list[str]
    dynamic: dict[str, dict[int, str]] = field(default_factory=dict)
    doc: str = ""
    exporters: tuple[str, ...] = ("dynamo", "legacy")  # the ONNX exporters --exporter auto tries, in this order


# --- images from anything a caller holds ----------------------------------------------------------------------
def image_items(inputs, size: int, channels: int, limit: int, paths: bool = True) -> list[tuple[str, np.ndarray]]:
    """Paths (files or folders), bytes, PIL images, numpy arrays or tensors, or a list of them -> [(name, uint8
    (channels, size, size))], each prepared as the training images were. At most `limit` images. With
    paths=False (what a server receives) text is refused rather than read as a file of this machine."""
    from .data.images import decode_image, images_to_nchw
    from .data.arrays import resize, set_channels

    def from_array(array: np.ndarray, n: int) -> list[tuple[str, np.ndarray]]:
        x = images_to_nchw(one_or_many(array, f"input {n}", channels), f"input {n}", "the array")
        if x.shape[0] and 0 in x.shape[2:]:
            raise DataError(f"input {n} has shape {tuple(np.shape(array))}: images with no pixels. Expected images "
                            f"of at least 1 x 1 pixels.")
        return [(f"array {n}[{i}]", img) for i, img in enumerate(resize(x, size))]

    items = walk_images(inputs, limit, paths, lambda source: decode_image(source, size), from_array)
    return [(name, set_channels(img[None], channels)[0]) for name, img in items]


def walk_images(inputs, limit: int, paths: bool, decode, from_array) -> list[tuple[str, object]]:
    """What every image face shares: paths (files or folders), bytes, PIL images, numpy arrays or tensors, or a list
    of them -> [(name, item)], each file, bytes or PIL image made an item by `decode(source)` and each array by
    `from_array(array, n)` (-> a list of (name, item)); at most `limit`; with paths=False text is refused rather
    than read as a file of this machine. A user's mistake is a DataError that says what was expected."""
    from PIL import Image

    from .data.images import IMAGE_EXTENSIONS, UnreadableImage, image_files

    if inputs is None:
        inputs = []
    if isinstance(inputs, (str, Path, bytes, bytearray, Image.Image, np.ndarray)) or torch.is_tensor(inputs):
        inputs = [inputs]
    if not isinstance(inputs, (list, tuple)):
        raise DataError(f"Cannot use a {type(inputs).__name__} as images. Expected a file path, the bytes of an image "
                        f"file, a PIL image, an array of pixels, or a list of them.")
    items: list[tuple[str, object]] = []
    for n, value in enumerate(inputs):
        if isinstance(value, (str, Path)) and not paths:
            raise DataError(f"Input {n} is text. Expected an image: a file upload, {{\"base64\": the file's bytes in "
                            f"base64}}, or an array of pixels (the server never reads paths on its own disk).")
        if isinstance(value, (str, Path)):
            path = Path(value)
            if path.is_dir():
                files = image_files(path)
                if not files:
                    raise DataError(f"No images found in '{path}'. Expected image files ({', '.join(IMAGE_EXTENSIONS)}).")
            elif not path.exists():
                raise DataError(f"No such image file '{path}'. Check the path.")
            else:
                files = [path]
            for f in files:
                try:
                    items.append((str(f), decode(f)))
                except UnreadableImage as err:
                    raise DataError(f"Cannot read '{f}' as an image: {err}. Expected a JPEG, PNG or other image "
                                    f"file.") from None
        elif isinstance(value, (bytes, bytearray, Image.Image)):
            name = f"image {n}"
            try:
                items.append((name, decode(value if isinstance(value, Image.Image) else bytes(value))))
            except UnreadableImage as err:
                raise DataError(f"Cannot read {name} as an image: {err}. Expected the bytes of a JPEG, PNG or other "
                                f"image file.") from None
        elif isinstance(value, np.ndarray) or torch.is_tensor(value):
            items += from_array(np.asarray(value.detach().cpu() if torch.is_tensor(value) else value), n)
        else:
            raise DataError(f"Cannot use a {type(value).__name__} as an image. Expected a file path, the bytes of an "
                            f"image file, a PIL image, or a numpy array or tensor of pixels.")
        if len(items) > limit:
            raise DataError(f"Too many images in one call: more than {limit:,}. Send them in smaller batches.")
    if not items:
        raise DataError("No images were given. Expected a path, bytes, a PIL image or an array of pixels.")
    return items


def text_items(inputs, verb: str, noun: str, limit: int) -> list[str]:
    """A text or a list of texts (primes, sentences) -> the list, each checked to be text, at most `limit` of them."""
    texts = [inputs] if isinstance(inputs, str) else list(inputs) if isinstance(inputs, (list, tuple)) else None
    if texts is None:
        raise DataError(f"{verb}: expected a {noun} (text) or a list of them. Received: a {type(inputs).__name__}.")
    bad = next((type(t) for t in texts if not isinstance(t, str)), None)
    if bad is not None:
        raise DataError(f"{verb}: each {noun} must be text. Received: a {bad.__name__}.")
    if len(texts) > limit:
        raise DataError(f"{verb}: at most {limit:,} {noun}s in one call. Received: {len(texts):,}.")
    return texts


def one_or_many(x: np.ndarray, what: str, channels: int) -> np.ndarray:
    """A single image (H, W), (H, W, C) or (C, H, W) gets a batch axis; a batch (N, ...) is kept. A 3-D array is
    one image when its last axis holds 1, 3 or 4 channels, or its first axis the model's own number of channels;
    else it is a batch of grey images (N, H, W)."""
    if x.ndim == 2 or (x.ndim == 3 and (x.shape[-1] in (1, 3, 4) or x.shape[0] == channels)):
        return x[None]
    if x.ndim in (3, 4):
        return x
    raise DataError(f"{what} has shape {tuple(x.shape)}. Expected one image (H, W), (H, W, C) or (C, H, W), or a "
                    f"batch (N, H, W, C) or (N, C, H, W).")


def top_classes(name: str, probs: np.ndarray, classes: list[str], k: int) -> dict:
    """A classifier's answer: the k likeliest classes with their probabilities (ties in class order)."""
    top = np.argsort(-probs, kind="stable")[:k]
    return {"input": name, "predictions": [{"class": classes[i], "probability": round(float(probs[i]), 6)} for i in top]}


def png_bytes(image: np.ndarray | torch.Tensor) -> bytes:
    """uint8 (C, H, W) -> PNG file bytes."""
    from PIL import Image

    a = np.asarray(image)
    a = a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)
    buffer = io.BytesIO()
    Image.fromarray(a).save(buffer, format="PNG")
    return buffer.getvalue()


def png_base64(image) -> str:
    return base64.b64encode(png_bytes(image)).decode("ascii")
