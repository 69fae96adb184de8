"""What a finished detection run shows: the test's mAP and the precision and recall at the calibrated threshold,
the summary the CLI prints, and the HTML report with its pictures and tables (the most confident false positives and
the missed objects, the precision-recall curves, and images with their boxes drawn, tiled into one PNG)."""

from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..metrics.boxes import box_iou, draw_boxes, unpad_boxes
from .base import Prepared, notes_block
from .detect_face import THRESHOLD
from .report import Report


class DetectReport(Report):
    """A detection run's test, summary and report. The recipe (`self.task`) scores the boxes and keeps what
    `calibrate` found (`calibration`) and the images' file names (`names`)."""

    overfit_remedies = "--pretrained, more images, or fewer --epochs"

    def test_results(self, run, model: nn.Module, data: Prepared, device: torch.device) -> dict:
        return {**super().test_results(run, model, data, device), "threshold": self.task.calibration}

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

        out, threshold = run.report_dir, self.task.threshold
        test, fit, classes = results["test"], results["fit"], self.meta["classes"]
        curves = plot_history(run.metrics(), out / "curves.png", "map", "map50",
                              titles={"map": "mAP@[.5:.95]", "map50": "mAP@0.5"})
        x, padded = data.val if len(data.val[0]) else data.test
        truth, found = unpad_boxes(padded), self.task.detections(model, x, device)
        pr = plot_precision_recall(test["pr50"], classes, out / "precision-recall.png")
        side = side_by_side(x, truth, found, classes, threshold, out / "predictions.png")
        wrong, missed = mistakes(truth, found, classes, self.task.names["val" if len(data.val[0]) else "test"],
                                 threshold=threshold)
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
            ("Validation images", f"<p>Left: the true boxes. Right: what the model found (score {threshold:.2f} "
             f"and above).</p>"
             + image_tag(side, "true and predicted boxes")),
            ("Most confident false positives", mistake_grid(x, wrong, out / "false-positives.png",
                                                            f"no false positive above {threshold:.2f}")),
            ("Missed objects", mistake_grid(x, missed, out / "missed.png", "every object was found")),
        ]


def side_by_side(x: torch.Tensor, truth: list, found: list, classes: list[str], threshold: float, path: Path,
                 n: int = 8) -> Path | None:
    """The first `n` letterboxed images, each with its true boxes (left) and the boxes found scoring `threshold` or
    more (right), tiled into one PNG."""
    tiles = []
    for i in range(min(n, len(x))):
        b, c = truth[i]
        fb, fs, fc = found[i]
        keep = fs >= threshold
        left = shown(x[i], b, [classes[k] for k in c], c)
        right = shown(x[i], fb[keep], [f"{classes[k]} {s:.2f}" for k, s in zip(fc[keep], fs[keep])], fc[keep])
        tiles.append(np.concatenate([left, np.full((left.shape[0], 4, 3), 255, np.uint8), right], 1))
    return save_tiles(tiles, path, cols=2) if tiles else None


def mistake_grid(x: torch.Tensor, items: list[dict], path: Path, none: str) -> str:
    """A table of the first 8 mistakes (`mistakes`' rows) and their boxes drawn on their images, as HTML."""
    from ..report import image_tag, table

    if not items:
        return f"<p>None: {none}.</p>"
    tiles = [shown(x[it["image"]], [it["box"]], [it["label"]], [-1]) for it in items[:8]]
    return (table([{k: v for k, v in it.items() if k not in ("box", "image", "label")} for it in items[:8]])
            + image_tag(save_tiles(tiles, path, cols=4), path.stem))


def mistakes(truth: list, found: list, classes: list[str], names: list[str], iou: float = 0.5,
             threshold: float = 0.3) -> tuple[list, list]:
    """(the most confident false positives, the missed objects) at IoU 0.5: a detection above `threshold` that
    matches no true box of its class, and a true box that no such detection matches, biggest first."""
    wrong, missed = [], []
    for i, ((tb, tc), (fb, fs, fc)) in enumerate(zip(truth, found)):
        keep = fs >= threshold
        fb, fs, fc = fb[keep], fs[keep], fc[keep]
        overlap = box_iou(torch.from_numpy(fb).reshape(-1, 4), torch.from_numpy(tb).reshape(-1, 4)).numpy()
        same = fc[:, None] == tc[None, :]
        hit = (overlap >= iou) & same
        for j in np.flatnonzero(~hit.any(1)):
            near = int(overlap[j].argmax()) if overlap.shape[1] else -1
            why = (f"overlaps a {classes[tc[near]]}" if near >= 0 and overlap[j, near] >= iou else
                   f"IoU {overlap[j, near]:.2f} with the nearest object" if near >= 0 else "no object in the image")
            wrong.append({"image": i, "file": Path(names[i]).name, "label": f"{classes[fc[j]]} {fs[j]:.2f}", "class": classes[fc[j]],
                          "score": round(float(fs[j]), 4), "why": why, "box": fb[j]})
        for k in np.flatnonzero(~hit.any(0)):
            area = float((tb[k, 2] - tb[k, 0]) * (tb[k, 3] - tb[k, 1]))
            missed.append({"image": i, "file": Path(names[i]).name, "label": classes[tc[k]], "class": classes[tc[k]],
                           "area": round(area, 1),
                           "box": tb[k]})
    wrong.sort(key=lambda r: -r["score"])
    missed.sort(key=lambda r: -r["area"])
    return wrong, missed


def plot_precision_recall(pr50: list, classes: list[str], path: Path) -> Path:
    from ..report import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    recall = np.linspace(0, 1, 101)
    for k, name in enumerate(classes[:20]):
        ax.plot(recall, pr50[k], label=f"{name} (AP50 {np.mean(pr50[k]):.2f})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="Precision-recall at IoU 0.5")
    ax.legend(fontsize=7, loc="lower left")
    save_figure(fig, path)
    return path


def shown(image: torch.Tensor, boxes, labels: list[str], classes, at_least: int = 240) -> np.ndarray:
    """A letterboxed uint8 (3, S, S) image, enlarged to at least `at_least` px so that labels stay readable, with its
    boxes drawn in their classes' colours (class -1: red) -> (H, W, 3)."""
    from PIL import Image

    from ..metrics.boxes import PALETTE

    im = Image.fromarray(image.numpy().transpose(1, 2, 0))
    zoom = max(1, math.ceil(at_least / im.width))
    im = im.resize((im.width * zoom, im.height * zoom), Image.NEAREST)
    colours = [(230, 25, 75) if int(k) < 0 else PALETTE[int(k) % len(PALETTE)] for k in classes]
    return np.asarray(draw_boxes(im, np.asarray(boxes, dtype=np.float32).reshape(-1, 4) * zoom, labels, colours))


def save_tiles(tiles: list[np.ndarray], path: Path, cols: int) -> Path:
    """(H, W, 3) uint8 tiles of one height into a grid PNG with white gaps."""
    from PIL import Image

    h = max(t.shape[0] for t in tiles)
    w = max(t.shape[1] for t in tiles)
    rows = math.ceil(len(tiles) / cols)
    sheet = np.full((rows * (h + 6), cols * (w + 6), 3), 255, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        sheet[r * (h + 6):r * (h + 6) + t.shape[0], c * (w + 6):c * (w + 6) + t.shape[1]] = t
    Image.fromarray(sheet).save(path)
    return path
