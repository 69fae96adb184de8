"""Digits on canvases: scikit-learn's 8x8 digits, enlarged and pasted on noisy grey canvases, written as a YOLO folder.
A detection set whose classes change meaning when mirrored (a flipped 2 is not a 2), for the detection tests and for
measuring the detector's defaults (python tests/digits_canvases.py OUT)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image


def paste_digits(rng: np.random.Generator, by_class: list[np.ndarray], canvas: int) -> tuple[np.ndarray, list, list]:
    """One canvas: grey noise with 1 to 3 digits (8x8 images of 0 to 16 per class), 16 to 24 px, that do not
    overlap -> (pixels, boxes, classes)."""
    picture = np.clip(rng.normal(60, 25, (canvas, canvas)), 0, 255)
    boxes, classes, taken = [], [], np.zeros((canvas, canvas), bool)
    for _ in range(int(rng.integers(1, 4))):
        side = int(rng.integers(16, 25))
        x, y = (int(v) for v in rng.integers(0, canvas - side, 2))
        if taken[y:y + side, x:x + side].any():
            continue
        label = int(rng.integers(10))
        k = int(rng.integers(len(by_class[label])))
        glyph = Image.fromarray((by_class[label][k] * 255 / 16).astype(np.uint8)).resize((side, side), Image.BILINEAR)
        picture[y:y + side, x:x + side] = np.maximum(picture[y:y + side, x:x + side], np.asarray(glyph))
        taken[y:y + side, x:x + side] = True
        boxes.append((x, y, x + side, y + side))
        classes.append(label)
    return picture.astype(np.uint8), boxes, classes


def write_digit_canvases(folder: Path, n: int = 600, seed: int = 0, canvas: int = 64) -> Path:
    """`n` canvases of `canvas` px as a YOLO folder (PNG + .txt per image, classes.txt): 0 to 9."""
    from sklearn.datasets import load_digits

    d = load_digits()
    by_class = [d.images[d.target == c] for c in range(10)]
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "classes.txt").write_text("\n".join(str(c) for c in range(10)) + "\n")
    for i in range(n):
        picture, boxes, classes = paste_digits(rng, by_class, canvas)
        Image.fromarray(picture).save(folder / f"c{i}.png")
        lines = [f"{k} {(x1 + x2) / 2 / canvas:.6f} {(y1 + y2) / 2 / canvas:.6f} {(x2 - x1) / canvas:.6f} "
                 f"{(y2 - y1) / canvas:.6f}" for (x1, y1, x2, y2), k in zip(boxes, classes)]
        (folder / f"c{i}.txt").write_text("\n".join(lines) + "\n")
    return folder


if __name__ == "__main__":
    write_digit_canvases(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 600)
