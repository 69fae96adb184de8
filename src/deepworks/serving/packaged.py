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
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from ..errors import DeepworksError
from ..usage import Option, top_classes
from .served import ServedModel

MANIFEST = "package.json"
PACKAGE_FORMAT = "deepworks-package/1"


class ImageClassifierUse:
    """Image classification's use (tasks/image_face.py ImageFace) over its exported graph: images in (uploads,
    base64, arrays of pixels), class probabilities out. Images are decoded as training decoded them
    (data/decode.py); an array of another size is resized by Pillow, where the full server uses torch (the two
    differ by at most one level in a few pixels)."""

    verb, kind = "predict", "an image classification"
    batchable, max_items, v2_sized_by_input = True, 1024, False

    def __init__(self, card: dict):
        pre = card["preprocessing"]
        self.size, self.channels = int(pre["resize"][0]), 1 if pre["channels"] == "grey" else 3
        self.classes = list(card["classes"])
        self.use_options = {name: Option.described(said) for name, said in card["options"].items()}

    def decode_inputs(self, inputs, options: dict, trusted: bool = False) -> list:
        from ..data.decode import decode_image, set_channels, walk_images

        items = walk_images(inputs, self.max_items, False, lambda source: decode_image(source, self.size),
                            self.from_array)
        return [(name, set_channels(img[None], self.channels)[0]) for name, img in items]

    def from_array(self, array: np.ndarray, n: int) -> list[tuple[str, np.ndarray]]:
        from ..data.decode import array_images

        return [(f"array {n}[{i}]", resized(img, self.size)) for i, img in enumerate(array_images(array, n,
                                                                                                    self.channels))]

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


def resized(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 (C, H, W) -> (C, size, size), Pillow's bilinear (antialiased when it shrinks), channel by channel."""
    from PIL import Image

    if image.shape[1:] == (size, size):
        return image
    return np.stack([np.asarray(Image.fromarray(c).resize((size, size), Image.BILINEAR)) for c in image])


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


def checked_file(folder: Path, manifest: dict, name: str) -> Path:
    """A model file of the package, once its sha256 is the one the manifest records (a file changed or swapped
    after packaging is never loaded)."""
    recorded = manifest.get("files", {}).get(name)
    path = folder / name
    if recorded is None:
        raise DeepworksError(f"'{name}' is not among the files {folder / MANIFEST} records. Package the run again.")
    if not path.is_file():
        raise DeepworksError(f"'{path}' is missing. Expected the file the package was made with; package the run "
                             f"again.")
    found = sha256_of(path)
    if found != recorded:
        raise DeepworksError(f"'{path}' is not the file the package was made with: its sha256 is {found[:16]}..., "
                             f"expected {recorded[:16]}.... Package the run again.")
    return path


class PackagedModel(ServedModel):
    """The model of a package folder, as the server holds a model: its use, its graph in ONNX Runtime (the int8
    graph where the package kept one, unless `runtime` is 'onnx'), and its card."""

    def __init__(self, folder: str | Path, name: str | None = None, runtime: str | None = None,
                 threads: int | None = None):
        from ..sessions import onnx_session

        folder = Path(folder)
        manifest = read_manifest(folder)
        card = json.loads(checked_file(folder, manifest, manifest["card"]).read_text())
        if card.get("task") not in USES:
            raise DeepworksError(f"This runtime serves {', '.join(USES)} packages. Received: a {card.get('task')} "
                                 f"package.")
        self.face = USES[card["task"]](card)
        graph = card["graphs"][0]
        kept = (graph.get("int8") or {}).get("kept", False)
        if runtime not in (None, "onnx", "int8"):
            raise DeepworksError(f"--runtime must be onnx or int8. Received: {runtime!r}.")
        if runtime == "int8" and not kept:
            raise DeepworksError("--runtime int8: this package has no int8 graph. Package the run with --quantize "
                                 "int8, or serve the float graph (--runtime onnx).")
        self.runtime = "int8" if kept and runtime != "onnx" else "onnx"
        file = graph["int8"]["file"] if self.runtime == "int8" else graph["file"]
        self.model = onnx_session(checked_file(folder, manifest, f"model/{file}"), threads)
        self.about = manifest["about"]
        self.start(name or manifest["name"])


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
        if args.threads is not None and args.threads < 1:
            raise DeepworksError(f"--threads must be at least 1. Received: {args.threads}.")
        model = PackagedModel(args.folder, args.name, args.runtime, args.threads)
    except DeepworksError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"serving {model.name} ({model.runtime}) on http://{args.host}:{args.port} (Ctrl-C stops; GET /v1/models "
          f"lists it)", file=sys.stderr, flush=True)
    make_server(make_app([model], token, limits), args.host, args.port, limits, args.log_level).run()
    return 0
