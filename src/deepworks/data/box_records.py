"""What every reader of detection data shares: the `BoxSet` it gives, the `Problems` it collects (a box or an image
lost, each with its file and line, warned about once or refused with --strict), and the checks of one box and one
image (detection.py, coco.py)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from .arrays import DataWarning


@dataclass
class BoxSet:
    """Images with their boxes. `images` holds paths, or uint8 (3, H, W) arrays for generated data; `boxes[i]` is a
    float (k, 4) array in the image's pixels, `labels[i]` the (k,) class indices; `sizes[i]` is (width, height)."""
    images: list
    sizes: list[tuple[int, int]]
    boxes: list[np.ndarray]
    labels: list[np.ndarray]
    classes: list[str]
    description: str
    problems: list[str] = field(default_factory=list)  # what was skipped, one line each
    split: dict | None = None  # {'train': [...], 'val': [...]} indices when the source fixes its split

    def __len__(self) -> int:
        return len(self.images)

    def name_of(self, i: int) -> str:
        item = self.images[i]
        return str(item) if isinstance(item, (str, Path)) else f"image {i}"


class Problems:
    """What a reader found wrong, each with its place. `skip` records a problem that loses one box or image;
    `finish` warns once about all of them, or with strict=True raises with them instead."""

    def __init__(self, strict: bool, lost: str = "box(es) or image(s)"):
        self.strict, self.lines, self.lost = strict, [], lost  # lost: what a problem loses, for the warning

    def skip(self, message: str) -> None:
        self.lines.append(message)

    def finish(self, what: str) -> list[str]:
        if not self.lines:
            return []
        listed = "\n  ".join(self.lines[:20]) + (f"\n  ... and {len(self.lines) - 20} more" if len(self.lines) > 20 else "")
        if self.strict:
            raise DataError(f"{what}: {len(self.lines)} problem(s) (--strict):\n  {listed}")
        message = (f"{what}: skipped {len(self.lines)} {self.lost} with problems (--strict stops on them "
                   f"instead):\n  {listed}")
        warnings.warn(message, DataWarning, stacklevel=3)
        return [message]


def check_box(box: list[float], width: int, height: int, where: str, problems: Problems,
              tolerance: float = 1.0) -> list[float] | None:
    """A box in pixels, checked against its image: None (and a problem recorded) when it has no area or lies outside
    the image by more than `tolerance` pixels; a box a pixel over the edge (VOC's 1-based corners) is clipped."""
    try:
        x1, y1, x2, y2 = (float(v) for v in box)
    except OverflowError:  # a JSON integer of hundreds of digits
        x1 = y1 = x2 = y2 = float("inf")
    if not all(np.isfinite([x1, y1, x2, y2])):
        problems.skip(f"{where}: Expected finite coordinates. Received: {str(box)[:120]}.")
        return None
    if x2 <= x1 or y2 <= y1:
        problems.skip(f"{where}: Expected a box with x2 > x1 and y2 > y1 (an area). Received: x1 {x1:g}, y1 {y1:g}, "
                      f"x2 {x2:g}, y2 {y2:g}.")
        return None
    if x1 < -tolerance or y1 < -tolerance or x2 > width + tolerance or y2 > height + tolerance:
        problems.skip(f"{where}: Expected a box inside the {width}x{height} image. Received: x1 {x1:g}, y1 {y1:g}, "
                      f"x2 {x2:g}, y2 {y2:g}.")
        return None
    return [max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2)]


def probe_or_skip(image: Path, problems: Problems) -> tuple[int, int] | None:
    """An image file's (width, height) from its header; None, with the problem recorded, when it cannot be read."""
    from .decode import UnreadableImage, probe_image

    try:
        return probe_image(image)[0]
    except UnreadableImage as err:
        problems.skip(f"{image}: cannot be read ({err}).")
        return None


def normalised_looking(boxes: list[list[float]]) -> bool:
    """Whether pixel coordinates look like fractions of the image instead: every one within [0, 1] (a real box in
    pixels of at most 1x1 is not an object)."""
    return bool(boxes) and all(0 <= v <= 1 for b in boxes for v in b)


# --- Pascal VOC -------------------------------------------------------------------------------------------------------


def box_set(records: list, classes: list[str], description: str, notes: list[str]) -> BoxSet:
    index = {c: i for i, c in enumerate(classes)}
    return BoxSet(images=[r[0] for r in records], sizes=[r[1] for r in records],
                  boxes=[np.asarray(r[2], dtype=np.float32).reshape(-1, 4) for r in records],
                  labels=[np.asarray([index[c] for c in r[3]], dtype=np.int64) for r in records],
                  classes=classes, description=description, problems=notes)
