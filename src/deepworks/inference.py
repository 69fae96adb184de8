"""The one way a trained model is used: decode what a caller gives, predict, encode a JSON-able answer.

Every task has a face (tasks/face.py `Face`, made from the run's config and meta): `verb` (predict, generate,
translate, sample ...), `use_options` (the settings that verb takes, each an `Option`), `decode_inputs`, `infer`,
`encode_result`, `infer_stream`, and for export `serving_model` and `export_graphs`. The API's `Trained`, the
CLI, the HTTP server and the exporter call only these, so a new task adds no method to `Trained` and no branch to
the server.

This module holds what the faces share and torch touches: the `Graph` an exporter writes, the decoding of images
from paths, bytes, PIL images and arrays with the same limits and resizing training uses, and PNGs. Options and
cancellation are in usage.py, and one image's decoding in data/decode.py: both without torch, for a package's
runtime.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn

from .errors import DataError


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
    from .data.arrays import resize
    from .data.decode import array_images, decode_image, set_channels, walk_images

    def from_array(array: np.ndarray, n: int) -> list[tuple[str, np.ndarray]]:
        return [(f"array {n}[{i}]", img) for i, img in enumerate(resize(array_images(array, n, channels), size))]

    items = walk_images(inputs, limit, paths, lambda source: decode_image(source, size), from_array)
    return [(name, set_channels(img[None], channels)[0]) for name, img in items]


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
