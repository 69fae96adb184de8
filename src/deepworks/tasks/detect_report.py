"""The detection report's pictures and tables: the most confident false positives and the missed objects, the
precision-recall curves, and images with their boxes drawn, tiled into one PNG."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..metrics.boxes import box_iou, draw_boxes


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
    from ..report import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    recall = np.linspace(0, 1, 101)
    for k, name in enumerate(classes[:20]):
        ax.plot(recall, pr50[k], label=f"{name} (AP50 {np.mean(pr50[k]):.2f})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="Precision-recall at IoU 0.5")
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
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
