"""A package made by `deepworks package` (exporting/package.py), served without torch: its ONNX graph in ONNX
Runtime behind the same routes, limits, errors, metrics and health probes as `deepworks serve`.

A package ships this module with the torch-free ones it imports (serving's routes, usage.py, data/decode.py,
sessions.py, errors.py) unchanged, under the name `deepworks_runtime`; `python -m deepworks_runtime` in the package's
folder calls `main`. Each task a package can hold has a use here (`USES`, by the card's task): the face of
tasks/*_face.py again, in numpy, reading its sizes and classes from the exported card. The package's manifest
(package.json) records each model file's sha256, checked before a graph is loaded.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

from ..digests import sha256_of
from ..errors import DeepworksError
from ..usage import Option, top_classes
from .served import ServedModel

MANIFEST = "package.json"
PACKAGE_FORMAT = "deepworks-package/1"


class ImageClassifierUse:
    """Image classification's use (tasks/image_face.py ImageFace) over its exported graph: images in (uploads,
    base64, arrays of pixels), class probabilities out. Images are decoded as training decoded them
    (data/decode.py); an array of another size is resized in numpy as torch resizes it for `deepworks serve`
    (data/decode.py resize_like_torch)."""

    verb, kind = "predict", "an image classification"
    batchable, max_items, v2_sized_by_input = True, 1024, False
    fixed_cost_items = True  # one fixed-size image each (as the image face's)
    card_keys = ("classes", "inputs", "outputs", "preprocessing")  # what GET /v1/models shows of the card, as serve

    def __init__(self, card: dict):
        pre = card["preprocessing"]
        size, channels, classes = pre["resize"][0], pre["channels"], card["classes"]
        if not (type(size) is int and 1 <= size <= 4096 and channels in ("grey", "RGB") and isinstance(classes, list)
                and classes and all(isinstance(c, str) for c in classes)):
            raise TypeError(f"image size {size!r}, channels {channels!r}, {type(classes).__name__} of classes")
        self.size, self.channels, self.classes = size, 1 if channels == "grey" else 3, classes
        self.use_options = {name: Option.described(said) for name, said in card["options"].items()}

    def check_graph(self, session, card: Path) -> None:
        """The graph takes the card's images and gives a probability per class of the card's, or the package is
        refused (a card and a graph of different models)."""
        given, made = session.get_inputs()[0].shape, session.get_outputs()[0].shape
        if list(given[1:]) != [self.size, self.size, self.channels] or made[-1] != len(self.classes):
            raise DeepworksError(f"'{card}' does not describe its graph: it says {self.size}x{self.size}x"
                                 f"{self.channels} images and {len(self.classes)} classes; the graph takes "
                                 f"{given} and gives {made}. Package the run again.")

    def decode_inputs(self, inputs, options: dict, trusted: bool = False) -> list:
        from ..data.decode import decode_image, set_channels, walk_images

        items = walk_images(inputs, self.max_items, False, lambda source: decode_image(source, self.size),
                            self.from_array)
        return [(name, set_channels(img[None], self.channels)[0]) for name, img in items]

    def from_array(self, array: np.ndarray, n: int) -> list[tuple[str, np.ndarray]]:
        from ..data.decode import array_images, resize_like_torch

        images = resize_like_torch(array_images(array, n, self.channels), self.size)
        return [(f"array {n}[{i}]", img) for i, img in enumerate(images)]

    def infer(self, session, items: list, device, options: dict, batch_size: int = 256) -> list:
        """{'input': name, 'probabilities': (K,) array} per image: uint8 NHWC through the graph, a batch at a time."""
        x = np.stack([img for _, img in items]).transpose(0, 2, 3, 1)
        probs = [session.run(None, {"images": np.ascontiguousarray(x[i:i + batch_size])})[0]
                 for i in range(0, len(x), batch_size)]
        return [{"input": name, "probabilities": p} for (name, _), p in zip(items, np.concatenate(probs))]

    def infer_stream(self, session, items: list, device, options: dict):
        for result in self.infer(session, items, device, options):
            yield self.encode_result(result, options)

    def encode_result(self, result: dict, options: dict) -> dict:
        return top_classes(result["input"], result["probabilities"], self.classes, options["top_k"])

    def as_png(self, results: list) -> None:
        return None

    def example_request(self) -> tuple:
        pixels = np.random.default_rng(0).integers(0, 256, (self.size, self.size, self.channels), dtype=np.uint8)
        return pixels, {}

    def v2_inputs(self) -> list[dict]:
        return [{"name": "images", "datatype": "UINT8", "shape": [-1, self.size, self.size, self.channels]}]

    def v2_outputs(self, results: list) -> dict:
        return {"probabilities": np.stack([r["probabilities"] for r in results]).astype(np.float32)}


USES = {"image": ImageClassifierUse}  # the card's task -> its use without torch


def read_manifest(folder: Path) -> dict:
    """The package's manifest, its format checked."""
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except OSError as err:
        raise DeepworksError(f"Cannot read '{path}' ({err.strerror or err}). Expected the folder `deepworks package` "
                             f"wrote, with its {MANIFEST}.") from None
    except ValueError:
        raise DeepworksError(f"'{path}' is not JSON. Expected the manifest `deepworks package` wrote; package the "
                             f"run again.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != PACKAGE_FORMAT:
        raise DeepworksError(f"'{path}' is not a deepworks package's manifest. Expected format {PACKAGE_FORMAT}. "
                             f"Received: {manifest.get('format') if isinstance(manifest, dict) else 'another shape'}.")
    return manifest


def checked_file(folder: Path, manifest: dict, file: str) -> Path:
    """model/FILE of the package, once its sha256 is the one the manifest records: a model file damaged or changed
    after packaging is never loaded (one changed together with the manifest is not caught here: pin the image by
    its digest for that)."""
    recorded = manifest.get("files")
    recorded = recorded.get(f"model/{file}") if isinstance(recorded, dict) else None
    if not isinstance(file, str) or not re.fullmatch(r"[\w.-]+", file) or not isinstance(recorded, str):
        raise DeepworksError(f"model/{file} is not among the model files {folder / MANIFEST} records. Expected the "
                             f"package as `deepworks package` wrote it; package the run again.")
    path = folder / "model" / file
    if not path.is_file():
        raise DeepworksError(f"'{path}' is missing. Expected the file the package was made with; package the run "
                             f"again.")
    found = sha256_of(path)
    if found != recorded:
        raise DeepworksError(f"'{path}' is not the file the package was made with: its sha256 is {found[:16]}..., "
                             f"expected {recorded[:16]}.... Package the run again.")
    return path


NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # a model's name in the routes


def checked_name(name, where: str) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise DeepworksError(f"{where} must be a name of letters, digits, '.', '_' and '-' (at most 100), to stand in "
                             f"the routes. Received: {name!r}.")
    return name


class PackagedModel(ServedModel):
    """The model of a package folder, as the server holds a model: its use, its graph in ONNX Runtime (the int8
    graph where the package kept one, unless `runtime` is 'onnx'), and its card (model/model.json, checked by its
    sha256 like the graphs, and what GET /v1/models says of the model)."""

    def __init__(self, folder: str | Path, name: str | None = None, runtime: str | None = None,
                 threads: int | None = None):
        if runtime not in (None, "onnx", "int8"):
            raise DeepworksError(f"--runtime must be onnx or int8. Received: {runtime!r}.")
        folder = Path(folder)
        manifest = read_manifest(folder)
        card_path = checked_file(folder, manifest, "model.json")
        try:
            card = json.loads(card_path.read_text())
            self.face = USES[card["task"]](card)
            graph = card["graphs"][0]
            kept = graph.get("int8", {}).get("kept", False) is True
            file = graph["int8"]["file"] if kept and runtime != "onnx" else graph["file"]
            self.about = {"task": card["task"], "model": card["model"]["name"], "run": card["run"],
                          "test_metrics": dict(card.get("test_metrics") or {}),
                          **{key: card[key] for key in self.face.card_keys}}
        except DeepworksError:
            raise
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as err:
            raise DeepworksError(f"'{card_path}' does not describe a model this runtime serves ({type(err).__name__}: "
                                 f"{str(err)[:120]}). Expected the card `deepworks package` wrote for an "
                                 f"{' or '.join(USES)} run; package the run again.") from None
        if runtime == "int8" and not kept:
            raise DeepworksError("--runtime int8: this package has no int8 graph. Package the run with --quantize "
                                 "int8, or serve the float graph (--runtime onnx).")
        self.runtime = "int8" if kept and runtime != "onnx" else "onnx"
        self.model = opened(checked_file(folder, manifest, file), threads, self.face.fixed_cost_items)
        self.face.check_graph(self.model, card_path)
        self.start(checked_name(name, "--name") if name else checked_name(manifest.get("name"), "The package's name"))


def opened(path: Path, threads: int | None, lone: bool):
    """The graph in ONNX Runtime, or a message where ONNX Runtime cannot read it."""
    from ..sessions import ServingSession

    try:
        return ServingSession(path, threads, lone)
    except Exception as err:  # onnxruntime's own errors (a damaged file) have no common class
        raise DeepworksError(f"ONNX Runtime cannot load '{path}' ({str(err).strip()[:160]}). Package the run "
                             f"again.") from None


def parser() -> argparse.ArgumentParser:
    from .flags import add_exposure_flags, add_limit_flags

    p = argparse.ArgumentParser(prog="python -m deepworks_runtime",
                                description="Serve this package's model without torch: the routes of `deepworks serve` "
                                            "(GET /v1/models, POST /v1/models/NAME/VERB, the V2 protocol, /metrics).")
    p.add_argument("folder", nargs="?", default=str(Path(__file__).resolve().parents[2]),
                   help="the package's folder [default: the one this runtime is in]")
    p.add_argument("--name", help="the model's name in the routes [default: the run's]")
    p.add_argument("--runtime", choices=("onnx", "int8"),
                   help="the graph to serve [default: int8 where the package kept one, else onnx]")
    p.add_argument("--threads", type=int, help="ONNX Runtime's threads [default: one per core]")
    add_exposure_flags(p, 8080, "every request but the health probes")
    add_limit_flags(p)
    return p


def main(argv: list[str] | None = None) -> int:
    """Serve until Ctrl-C or SIGTERM. A user's mistake (a flag out of range, a changed model file) is one line on
    stderr and exit status 2, as in the deepworks CLI."""
    import os

    from .app import make_app
    from .flags import limits_from
    from .net import check_exposure, check_token_length, make_server

    args = parser().parse_args(argv)
    try:
        limits = limits_from(args)
        token = args.token or os.environ.get("DEEPWORKS_TOKEN") or None
        check_token_length(token)
        check_exposure(args.host, token, args.insecure)
        if args.threads is not None and not 1 <= args.threads <= 256:
            raise DeepworksError(f"--threads must be from 1 to 256. Received: {args.threads}.")
        model = PackagedModel(args.folder, args.name, args.runtime, args.threads)
    except DeepworksError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"serving {model.name} ({model.runtime}) on http://{args.host}:{args.port} (Ctrl-C stops; GET /v1/models "
          f"lists it)", file=sys.stderr, flush=True)
    make_server(make_app([model], token, limits), args.host, args.port, limits, args.log_level).run()
    return 0
