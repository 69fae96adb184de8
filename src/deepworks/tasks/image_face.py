"""The use of a trained image classifier: images in (files, bytes, PIL images or arrays), class probabilities out.

Built from the run's config and meta alone (tasks/face.py): the classes, the image size and channels, and the
training split's per-channel mean and std. `infer` runs the serving model (models/pixel.py ImageServing: uint8
pixels in, the normalisation inside, probabilities out), which is also what an export writes and what ONNX Runtime
can stand in for. The trust tools (trust/tools.py, the web UI's confusion matrix) reach the classifier through
`read_images`, `logits` and `pixel_model`.

`Normalise`, `class_logits` and `pixel_model` are shared with the recipe (tasks/image.py), which trains and tests
with the same normalisation; this module does not import the recipe. `PixelFace` is what ImageFace shares with
detection's face (tasks/detect_face.py): both serve a graph that takes uint8 pixels.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from ..config import Config
from ..models import evaluating
from .face import Face, spread_batches


class Normalise:
    """uint8 images -> the network's input: (x / 255 - mean) / std per channel, with the mean and std of `meta` (the
    training split's). One multiply and one in-place subtract; their scale and shift are made once per device, when
    first needed (a meta without mean and std can be held, not used)."""

    def __init__(self, meta: dict | None):
        self.meta, self.per_device = meta, {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.device not in self.per_device:
            mean = torch.tensor(self.meta["mean"], device=x.device).view(-1, 1, 1)
            std = torch.tensor(self.meta["std"], device=x.device).view(-1, 1, 1)
            self.per_device[x.device] = (1.0 / (255.0 * std), mean / std)
        scale, shift = self.per_device[x.device]
        return (x * scale).sub_(shift)  # uint8 * float32 promotes to float32; then in place: one buffer per batch


@torch.no_grad()
def class_logits(model: nn.Module, x: torch.Tensor, device: torch.device, normalise: Normalise, classes: int,
                 batch_size: int = 1000) -> torch.Tensor:
    """The logits (N, classes) of uint8 images x, in eval mode, `batch_size` images at a time, on the CPU."""
    with evaluating(model):
        out = [model(normalise(x[i:i + batch_size].to(device))).float().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, classes)


def pixel_model(model: nn.Module, meta: dict) -> nn.Module:
    """The model seen from pixels in [0, 1] (what attacks and attributions work on), on the model's device."""
    from ..models.pixel import PixelModel

    return PixelModel(model, meta["mean"], meta["std"]).to(next(model.parameters()).device)


def pixel_feeds(split: tuple, most: int, batch: int = 32) -> list[dict]:
    """A pixel graph's inputs for int8 (Face.calibration_feeds): the uint8 pixels (N, S, S, C) of `most` images spread
    evenly over a split (a folder read in class order would otherwise calibrate on its first classes alone); tensors,
    or images streamed from files: either gives a batch for a list of indices."""
    return [{"images": np.ascontiguousarray(b.transpose(0, 2, 3, 1))} for b in spread_batches(split[0], most, batch)]


class PixelFace(Face):
    """What the faces whose serving graph takes uint8 pixels (N, S, S, C) share, image classification's and
    detection's: that input's shape as the V2 tensor and the model card say it, random images of it to warm a server
    and trace an export with, and the graph run over decoded items a batch at a time."""

    def pixels_shape(self) -> tuple[int, int, int]:
        """(S, S, C): one image as the serving graph takes it."""
        return self.meta["image_size"], self.meta["image_size"], self.meta["channels"]

    def pixels_input(self) -> dict:
        """The model card's entry for the pixels the graph takes."""
        return {"name": "images", "dtype": "uint8", "shape": [None, *self.pixels_shape()], "layout": "NHWC",
                "range": [0, 255]}

    def example_request(self) -> tuple:
        return self.example_images(1, 0).numpy()[0], {}

    def example_images(self, n: int, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.randint(0, 256, (n, *self.pixels_shape()), dtype=torch.uint8, generator=g)

    def serving_batches(self, model, items: list, device: torch.device, batch_size: int):
        """(i, the serving graph's output for items[i:i + batch_size]): each item's pixels (its [1], uint8 (C, S, S))
        go in as NHWC, the layout the graph takes (ONNX Runtime's too)."""
        x = np.stack([item[1] for item in items]).transpose(0, 2, 3, 1)
        for i in range(0, len(x), batch_size):
            yield i, model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size])).to(device))

    def v2_inputs(self) -> list[dict]:
        return [{"name": "images", "datatype": "UINT8", "shape": [-1, *self.pixels_shape()]}]


class ImageFace(PixelFace):
    verb, kind = "predict", "an image classification"
    batchable = True
    fixed_cost_items = True  # one fixed-size input each: a lone request's forward time is known (Face)

    def __init__(self, cfg: Config, meta: dict):
        from ..usage import Option

        super().__init__(cfg, meta)
        self.normalise = Normalise(meta)
        self.use_options = {"top_k": Option(int, self.cfg.eval.top_k, 1, None,
                                            "how many of the likeliest classes to name per image (at most all of "
                                            "them)")}

    # --- what the trust tools take ------------------------------------------------------------
    def read_images(self, paths) -> tuple[torch.Tensor, list[str]]:
        """Images of any form a caller holds (inference.image_items), prepared as the training data was: uint8
        (N, C, S, S) and a name for each."""
        from ..inference import image_items

        items = image_items(paths, self.meta["image_size"], self.meta["channels"], self.max_items)
        return torch.from_numpy(np.stack([a for _, a in items])), [name for name, _ in items]

    def logits(self, model: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 1000) -> torch.Tensor:
        """The logits of uint8 images (N, C, S, S), as in training's evaluation."""
        return class_logits(model, x, device, self.normalise, len(self.meta["classes"]), batch_size)

    def pixel_model(self, model: nn.Module) -> nn.Module:
        return pixel_model(model, self.meta)

    # --- use ------------------------------------------------------------------------------
    def decode_inputs(self, inputs, options: dict, trusted: bool = True) -> list:
        from ..inference import image_items

        return image_items(inputs, self.meta["image_size"], self.meta["channels"], self.max_items, paths=trusted)

    def serving_model(self, model: nn.Module) -> nn.Module:
        from ..models.pixel import ImageServing

        return ImageServing(model, self.meta["mean"], self.meta["std"]).eval()

    @torch.inference_mode()
    def infer(self, model, items: list, device: torch.device, options: dict, batch_size: int = 256) -> list:
        """{'input': name, 'probabilities': (K,) array} per image."""
        batches = self.serving_batches(model, items, device, batch_size)
        probs = np.concatenate([np.asarray(out.cpu()) for _, out in batches])
        return [{"input": name, "probabilities": p} for (name, _), p in zip(items, probs)]

    def encode_result(self, result: dict, options: dict) -> dict:
        from ..usage import top_classes

        return top_classes(result["input"], result["probabilities"], self.meta["classes"], options["top_k"])

    # --- export and the Open Inference Protocol ---------------------------------------------------
    def export_graphs(self, model: nn.Module) -> list:
        from ..inference import Graph

        return [Graph("classifier", self.serving_model(model), (self.example_images(2, 0),), (self.example_images(3, 1),),
                      ["images"], ["probabilities"], {"images": {0: "batch"}, "probabilities": {0: "batch"}},
                      "uint8 pixels (N, H, W, C) in, class probabilities (N, K) out; the normalisation is inside")]

    def calibration_feeds(self, graph: str, split: tuple, most: int, model=None,
                          batch: int = 32) -> list[dict] | None:
        return pixel_feeds(split, most, batch)

    def model_card(self) -> dict:
        m = self.meta
        return {"classes": m["classes"], "inputs": [self.pixels_input()],
                "outputs": [{"name": "probabilities", "dtype": "float32", "shape": [None, len(m["classes"])]}],
                "preprocessing": {"resize": [m["image_size"], m["image_size"]], "resample": "bilinear",
                                  "channels": "grey" if m["channels"] == 1 else "RGB", "mean": m["mean"], "std": m["std"],
                                  "inside_graph": "x / 255, then (x - mean) / std per channel, NHWC to NCHW"}}

    def v2_outputs(self, results: list) -> dict:
        return {"probabilities": np.stack([r["probabilities"] for r in results]).astype(np.float32)}
