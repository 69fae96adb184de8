"""What a finished segmentation run shows: the test's mean IoU, the IoU of each class and pixel accuracy beside a
baseline, the summary the CLI prints, and the HTML report: validation images with their true and predicted masks
over them, the worst test images by IoU, the pixel confusion matrix and IoU by object size."""

from __future__ import annotations

import html
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..metrics.masks import IGNORE, colours_for, confusion, object_ious, overlay, scores_of
from .base import Prepared, notes_block
from .report import Report

MAX_OBJECTS = 5000  # objects scored by size at most (the first images' first)
BASELINE_AHEAD = ("the baseline does as well as the network: here each pixel's colour and place tell its class. A "
                  "network earns its cost where shape and context do; more epochs or --pretrained may still help")


def test_scores(task, model: nn.Module, split: tuple, device: torch.device) -> dict:
    """Mean IoU, per-class IoU, pixel accuracy, the pixel confusion matrix, each image's mean IoU and each object's
    IoU with its size, over images segmented as `segment` does."""
    x, masks = split
    classes, background = task.meta["classes"], task.meta["background"]
    predicted = task.predicted(model, x, device)
    task.test_predicted = predicted  # for the report's pictures, made once
    c = len(classes)
    cm, per_image, objects = np.zeros((c, c), np.int64), [], []
    others = [k for k in range(c) if k != background]
    for i, (truth, guess) in enumerate(zip(masks.numpy(), predicted)):
        one = confusion(truth, guess, c)
        cm += one
        per_image.append(round(scores_of(one)["miou"], 4))
        if len(objects) < MAX_OBJECTS:
            objects += [(k, a, round(v, 4)) for k, a, v in object_ious(truth, guess, others)]
    s = scores_of(cm)
    return {"images": len(x), "miou": s["miou"], "pixel_accuracy": s["pixel_accuracy"],
            "per_class": [{"class": name, "iou": None if np.isnan(s["iou"][k]) else round(float(s["iou"][k]), 4),
                           "pixels": int(cm[k].sum())} for k, name in enumerate(classes)],
            "confusion": cm.tolist(), "per_image": per_image, "objects": objects[:MAX_OBJECTS]}


TEST_PIXELS = 500_000  # the baseline is scored on at most about this many test pixels (an even grid of them)


def baseline(task, train: tuple, test: tuple) -> dict:
    """The stronger on test mean IoU of a per-pixel random forest on colour and position (50 trees, trained on up
    to eval.baseline_samples labelled pixels drawn at random, scored on an even grid of at most TEST_PIXELS test
    pixels) and the majority class everywhere."""
    from sklearn.ensemble import RandomForestClassifier

    t0 = time.perf_counter()
    c, background, seed = len(task.meta["classes"]), task.meta["background"], task.cfg.seed
    y = train[1].reshape(-1)  # a view: the labels are not copied
    cap = task.cfg.eval.baseline_samples or 20000
    drawn = np.unique(np.random.default_rng(seed).integers(0, len(y), 4 * cap))
    pick = drawn[(y[torch.from_numpy(drawn)] != IGNORE).numpy()][:cap]
    forest = RandomForestClassifier(n_estimators=50, max_depth=16, n_jobs=-1, random_state=seed)
    forest.fit(pixel_features(train[0], pick), y[torch.from_numpy(pick)].numpy())
    step = max(1, math.ceil(math.sqrt(test[1].numel() / TEST_PIXELS)))
    tx, ty = pixel_features(test[0][:, :, ::step, ::step]), test[1][:, ::step, ::step].numpy().reshape(-1)
    forest_cm = confusion(ty, forest.predict(tx), c)
    majority_cm = confusion(ty, np.full_like(ty, background), c)
    forest_s, majority_s = scores_of(forest_cm), scores_of(majority_cm)
    if forest_s["miou"] >= majority_s["miou"]:
        best, name = forest_s, "random forest (50 trees) on each pixel's colour and position"
    else:
        best, name = majority_s, f"majority class ({task.meta['classes'][background]}) everywhere"
    return {"model": name, "miou": best["miou"], "pixel_accuracy": best["pixel_accuracy"],
            "forest_miou": forest_s["miou"], "majority_miou": majority_s["miou"], "train_pixels": len(pick),
            "test_pixels": len(ty),
            "seconds": round(time.perf_counter() - t0, 2)}


def pixel_features(x: torch.Tensor, pick: np.ndarray | None = None) -> np.ndarray:
    """uint8 images (N, 3, H, W) -> (N * H * W, 5), or the rows `pick` (flat pixel numbers) of it: each pixel's
    colour (0 to 1) and its place (0 to 1 down, across)."""
    n, _, h, w = x.shape
    pick = np.arange(n * h * w) if pick is None else pick
    image, rest = np.divmod(pick, h * w)
    row, col = np.divmod(rest, w)
    colour = x.numpy()[image, :, row, col].astype(np.float32) / 255
    return np.concatenate([colour, (row / max(h - 1, 1))[:, None], (col / max(w - 1, 1))[:, None]], 1,
                          dtype=np.float32)


class SegmentReport(Report):
    """A segmentation run's test, summary and report."""

    overfit_remedies = "--pretrained, more images, --augment crop+flip+colour, or fewer --epochs"

    def test_results(self, run, model: nn.Module, data: Prepared, device: torch.device) -> dict:
        found = super().test_results(run, model, data, device)
        if self.cfg.eval.baseline and len(data.test[0]):
            found["baseline"] = baseline(self.task, data.train, data.test)
        return found

    def logged_test(self, results: dict) -> dict:
        return {k: v for k, v in results["test"].items() if not isinstance(v, list)}

    def summary(self, results: dict) -> list[tuple[str, str]]:
        test, splits, base = results["test"], results["splits"], results.get("baseline")
        lines = [("data", f"{self.meta['source']}; train {splits['train']} / val {splits['val']} / test "
                          f"{splits['test']}; worked on at {self.meta['side']} px, in tiles of "
                          f"{self.meta['image_size']}"),
                 self.model_line(results),
                 ("test", f"mean IoU {test['miou']:.4f}  pixel accuracy {test['pixel_accuracy']:.4f}  "
                          f"({test['images']} images)")]
        if base:
            lines.append(("baseline", f"mean IoU {base['miou']:.4f}  pixel accuracy {base['pixel_accuracy']:.4f}  "
                                      f"({base['model']})"))
            if base["miou"] >= test["miou"]:
                lines.append(("note", BASELINE_AHEAD))
        return lines

    @staticmethod
    def describe_metrics(metrics: dict) -> list[str]:
        lines = [f"mean IoU {metrics['miou']:.4f}  pixel accuracy {metrics['pixel_accuracy']:.4f}"]
        if "per_class" in metrics:
            lines.append(f"{'class':<20} {'IoU':>8} {'pixels':>12}")
            lines += [f"{r['class'][:20]:<20} {'-' if r['iou'] is None else format(r['iou'], '.4f'):>8} "
                      f"{r['pixels']:>12,}" for r in metrics["per_class"]]
        return lines

    def report_sections(self, run, model: nn.Module, data: Prepared, results: dict, device) -> list[tuple[str, str]]:
        from ..report import image_tag, plot_confusion, plot_history, table

        out, test, fit, base = run.report_dir, results["test"], results["fit"], results.get("baseline")
        classes = self.meta["classes"]
        curves = plot_history(run.metrics(), out / "curves.png", "miou", "pixel_accuracy",
                              titles={"miou": "mean IoU", "pixel_accuracy": "pixel accuracy"})
        rows = [{"model": self.cfg.model.name, "mean IoU": test["miou"], "pixel accuracy": test["pixel_accuracy"],
                 "parameters": results["parameters"]}]
        ahead = f"<p class='note'>{BASELINE_AHEAD}.</p>" if base and base["miou"] >= test["miou"] else ""
        if base:
            rows.append({"model": base["model"], "mean IoU": base["miou"], "pixel accuracy": base["pixel_accuracy"],
                         "parameters": ""})
        val = data.val if len(data.val[0]) else data.test
        val_pred = self.task.predicted(model, val[0][:6], device)
        worst = np.argsort(test["per_image"], kind="stable")[:6]
        names = self.task.names.get("test", [])
        worst_rows = [{"image": Path(names[i]).name if i < len(names) else f"image {i}",
                       "mean IoU": test["per_image"][i]} for i in worst]
        return [
            ("Result on the test split", table(rows) + ahead + self.notes_html(results) + notes_block(data.notes)
             + f"<p>{fit['epochs']} epochs; best validation {fit['monitor']} "
               f"{fit['best_value'] if fit['best_value'] is None else round(fit['best_value'], 4)} at epoch "
               f"{fit['best_epoch']}. IoU: a class's pixels predicted right over the pixels that are that class or "
               f"predicted as it; the mean is over the classes present.</p>"),
            ("Data", f"<p>{html.escape(self.meta['source'])}</p>" + table([results["splits"]])),
            ("Training curves", image_tag(curves, "loss and mean IoU per epoch")),
            ("IoU per class", table(test["per_class"])),
            ("Validation images", "<p>Each: the image, the true mask over it, the predicted mask over it. "
             + self.legend() + "</p>" + image_tag(self.triples(val[0][:6], val[1][:6], val_pred, out / "predictions.png"), "masks")),
            ("The worst test images", table(worst_rows) + image_tag(
                self.triples(data.test[0][worst], data.test[1][worst], self.task.test_predicted[worst],
                             out / "worst.png"), "the worst test images")),
            ("Pixel confusion matrix", image_tag(plot_confusion(np.asarray(test["confusion"]), classes,
                                                                out / "confusion.png"), "pixel confusion matrix")),
            ("IoU by object size", "<p>Each object (a connected region of one class, the background left out) against "
             "the predicted regions of its class that touch it.</p>"
             + image_tag(plot_object_sizes(test["objects"], classes, out / "object-sizes.png"), "IoU by object size")),
        ]

    def legend(self) -> str:
        """Each class's colour in the pictures, as HTML swatches (the background is not tinted)."""
        background = self.meta["background"]
        colours = colours_for(len(self.meta["classes"]), self.meta.get("colours"), background)
        return "Colours: " + ", ".join(
            f"<span style='background: rgb{tuple(c)}; display: inline-block; width: 1em; height: 1em'></span> "
            f"{html.escape(name)}" for k, (name, c) in enumerate(zip(self.meta["classes"], colours))
            if k != background) + f" ({html.escape(self.meta['classes'][background])}: not tinted)."

    def triples(self, x: torch.Tensor, truth: torch.Tensor, predicted: np.ndarray, path: Path) -> Path | None:
        """Rows of (image, true mask over it, predicted mask over it), tiled into one PNG."""
        from .detect_report import save_tiles

        if not len(x):
            return None
        background = self.meta["background"]
        colours = colours_for(len(self.meta["classes"]), self.meta.get("colours"), background)
        tiles = []
        for image, t, p in zip(x, truth, predicted):
            a = image.numpy().transpose(1, 2, 0)
            gap = np.full((a.shape[0], 4, 3), 255, np.uint8)
            tiles.append(np.concatenate([a, gap, overlay(a, t.numpy(), colours, background), gap,
                                         overlay(a, p, colours, background)], 1))
        return save_tiles(tiles, path, cols=2 if tiles[0].shape[1] < 600 else 1)


def plot_object_sizes(objects: list, classes: list[str], path: Path) -> Path | None:
    """Each object's IoU against its area (log scale), a colour per class, with the mean IoU per size band."""
    from ..report import pyplot, save_figure

    if not objects:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    a = np.asarray(objects, dtype=np.float64)
    for k in np.unique(a[:, 0]).astype(int)[:12]:
        pick = a[:, 0] == k
        ax.scatter(a[pick, 1], a[pick, 2], s=8, alpha=0.5, label=classes[k])
    edges = np.unique(np.quantile(a[:, 1], np.linspace(0, 1, 7)))
    if len(edges) > 2:
        band = np.clip(np.searchsorted(edges, a[:, 1], side="right") - 1, 0, len(edges) - 2)
        filled = [b for b in range(len(edges) - 1) if (band == b).any()]
        ax.step(edges[filled], [a[band == b, 2].mean() for b in filled], where="post", color="black",
                label="mean by size")
    ax.set(xscale="log", xlabel="object area (pixels, at the working size)", ylabel="IoU", ylim=(-0.02, 1.02),
           title="IoU by object size (test)")
    ax.legend(fontsize=7, loc="lower right")
    save_figure(fig, path)
    return path
