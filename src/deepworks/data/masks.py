"""Masks for segmentation: a class index per pixel. What every reader of segmentation data shares
(data/segmentation.py): the `MaskSet` it gives, how a mask file becomes class indices (palette PNGs, index PNGs,
binary 0/255 masks, RGB masks by their colours), the class map a `classes.txt` gives, and how a mask is resized with
its image.

Pixels no class is learned or scored on (Pascal VOC's void border, anti-aliased colours, the letterbox's padding) hold
IGNORE. Every mask is checked against its image and its class map; what is wrong is a problem (box_records.Problems):
the pair is skipped and named in one warning, or --strict stops on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from .box_records import Problems

IGNORE = 255          # a pixel neither learned nor scored
MAX_CLASSES = 254     # class indices 0 to 253 (255 is IGNORE; 254 stays free so a 255-class map cannot hide it)
COLOUR_SHARE = 0.002  # RGB masks without a colour map: a colour is a class where it covers this much of some mask
MAX_COLOURS = 64      # more colours than this each covering a share of some RGB mask: photos, not masks
LOST = "image(s), annotation(s) or stray pixels"  # what a problem of segmentation data loses, for its warning
NEAR = 48             # a colour within this of a class's (on every channel) is that class, smoothed or compressed
INDEX_MODES = ("P", "L", "1", "I", "I;16", "I;16L", "I;16B", "LA", "PA")  # the modes a mask of class indices comes in


@dataclass
class MaskSet:
    """Images with a mask each. `images[i]` is a path, or a uint8 (3, H, W) array for generated data; `masks[i]` is
    a uint8 (H, W) array of class indices (IGNORE where none), the image's size."""
    images: list
    masks: list[np.ndarray]
    classes: list[str]
    description: str
    problems: list[str] = field(default_factory=list)
    split: dict | None = None  # {'train': [...], 'val': [...]} indices when the source fixes its split
    colours: list | None = None  # a colour per class when the masks gave them (a palette, RGB masks)

    def __len__(self) -> int:
        return len(self.images)

    def name_of(self, i: int) -> str:
        item = self.images[i]
        return str(item) if isinstance(item, (str, Path)) else f"image {i}"

    def take(self, indices) -> "MaskSet":
        pick = list(indices)
        return MaskSet([self.images[i] for i in pick], [self.masks[i] for i in pick], self.classes, self.description,
                       colours=self.colours)


# --- the class map -------------------------------------------------------------------------------------------------
def read_class_file(path: Path) -> tuple[list[str], list[tuple[int, int, int]] | None]:
    """classes.txt: one class a line, in index order ('road'), or with its colour in RGB masks ('road 128 64 128').
    Blank lines and lines starting with # are skipped. -> (names, colours or None)."""
    names, colours = [], []
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"(.+?)[\s,]+(\d{1,3})[\s,]+(\d{1,3})[\s,]+(\d{1,3})", line)
        if m and all(int(v) <= 255 for v in m.groups()[1:]):
            names.append(m.group(1).strip())
            colours.append(tuple(int(v) for v in m.groups()[1:]))
        else:
            names.append(line)
    if not names:
        raise DataError(f"{path}: Expected one class name a line (optionally with its colour: 'road 128 64 128'). "
                        f"Received: no names.")
    if len(names) > MAX_CLASSES:
        raise DataError(f"{path}: Expected at most {MAX_CLASSES} classes. Received: {len(names)}.")
    if len(set(names)) < len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise DataError(f"{path}: Expected each class once. Received: '{twice}' {names.count(twice)} times.")
    if colours and len(colours) != len(names):
        raise DataError(f"{path}: Expected a colour on every line or on none. Received: {len(colours)} of "
                        f"{len(names)} lines with a colour.")
    return names, (colours or None)


# --- mask files ----------------------------------------------------------------------------------------------------
def open_mask(path: Path, problems: Problems):
    """A mask file, loaded (its size checked as images' are); None, with the problem recorded, when it cannot be
    read."""
    from .decode import UnreadableImage, open_image

    try:
        with open_image(path) as im:
            im.load()
            return im.copy()
    except UnreadableImage as err:
        problems.skip(f"{path}: cannot be read ({err}). Expected a PNG mask; remove the file or its image.")
        return None


def mask_values(im) -> tuple[str, np.ndarray | None]:
    """(kind, values) of an opened mask: 'index' (H, W) values for palette, greyscale and 16-bit masks, 'rgb' (H, W, 3)
    for colour masks; ('unknown', None) for any other mode (CMYK, floats ...)."""
    if im.mode not in INDEX_MODES + ("RGB", "RGBA"):
        return "unknown", None
    if im.mode in ("RGB", "RGBA"):
        return "rgb", np.asarray(im.convert("RGB"))
    if im.mode == "1":
        return "index", np.asarray(im, dtype=np.uint8)
    if im.mode in ("LA", "PA"):
        im = im.getchannel(0)
    a = np.asarray(im)
    return "index", a.astype(np.int64) if a.dtype != np.uint8 else a


def palette_of(im, count: int) -> list[tuple[int, int, int]] | None:
    """The first `count` colours of a palette mask's palette (its classes' colours), else None."""
    if im.mode != "P" or im.getpalette() is None:
        return None
    flat = im.getpalette()[:3 * count]
    return [tuple(flat[i:i + 3]) for i in range(0, len(flat) - 2, 3)]


def binary_looking(values: list[np.ndarray]) -> bool:
    """Whether index masks only ever hold 0 and 255: a binary mask (255 the object), not VOC's void border."""
    seen = set()
    for v in values:
        seen.update(np.unique(v).tolist())
        if not seen <= {0, 255}:
            return False
    return 255 in seen


def classes_from_colours(masks: list[np.ndarray]) -> list[tuple[int, int, int]]:
    """The colours of RGB masks that are classes: those covering COLOUR_SHARE of some mask (the rest are taken for
    anti-aliased edges) and not within NEAR of a commoner one (a shade of it), black first, then by how many pixels
    hold them."""
    totals: dict = {}
    for m in masks:
        flat = m.reshape(-1, 3)
        colours, counts = np.unique(flat, axis=0, return_counts=True)
        for c, k in zip(map(tuple, colours.tolist()), counts.tolist()):
            if k >= max(16, COLOUR_SHARE * len(flat)):
                totals[c] = totals.get(c, 0) + k
    kept: list = []
    for c in sorted(totals, key=lambda c: -totals[c]):
        if all(max(abs(a - b) for a, b in zip(c, k)) > NEAR for k in kept):
            kept.append(c)
    return sorted(kept, key=lambda c: (c != (0, 0, 0), -totals[c]))


def colours_to_indices(mask: np.ndarray, colours: list) -> tuple[np.ndarray, int, dict]:
    """An RGB mask (H, W, 3) -> (class indices (H, W): a class's colour, or a shade within NEAR of it, is that class;
    IGNORE where the colour is no class's (an anti-aliased edge between two); how many such pixels; {colour: count}
    of the commonest of them)."""
    key = (mask[..., 0].astype(np.int64) << 16) | (mask[..., 1].astype(np.int64) << 8) | mask[..., 2]
    table = {(r << 16) | (g << 8) | b: i for i, (r, g, b) in enumerate(colours)}
    out = np.full(key.shape, IGNORE, np.uint8)
    for k, i in table.items():
        out[key == k] = i
    stray = out == IGNORE
    if stray.any():
        distance = np.abs(mask[stray][:, None, :].astype(np.int64) - np.asarray(colours, np.int64)[None]).max(-1)
        nearest = distance.argmin(1)
        near = distance[np.arange(len(nearest)), nearest] <= NEAR
        out.reshape(-1)[np.flatnonzero(stray)[near]] = nearest[near]  # a view: out changes
        stray = out == IGNORE
    found: dict = {}
    if stray.any():
        values, counts = np.unique(key[stray], return_counts=True)
        for v, k in sorted(zip(values.tolist(), counts.tolist()), key=lambda t: -t[1])[:3]:
            found[(v >> 16, (v >> 8) & 255, v & 255)] = k
    return out, int(stray.sum()), found


def check_indices(values: np.ndarray, count: int, where: str, problems: Problems) -> np.ndarray | None:
    """Index values (H, W) -> uint8 class indices, IGNORE kept; None (a problem recorded) when some value is no
    class."""
    bad = ((values < 0) | (values >= count)) & (values != IGNORE)
    if bad.any():
        odd = np.unique(values[bad])[:5].tolist()
        problems.skip(f"{where}: values {', '.join(map(str, odd))} are outside the class map (0 to {count - 1}, "
                      f"{IGNORE} left out). Add their classes to classes.txt, or fix the mask.")
        return None
    return values.astype(np.uint8)


# --- resizing with the image -----------------------------------------------------------------------------------------
def letterbox_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """A (H, W) mask scaled as `metrics.boxes.letterbox` scales its image (longer side to `size`, nearest neighbour,
    so that every pixel keeps a class of the original), padded bottom and right with IGNORE -> (size, size)."""
    from PIL import Image

    from ..metrics.boxes import letterbox_size

    h, w = mask.shape
    nw, nh = letterbox_size(w, h, size)
    out = np.full((size, size), IGNORE, np.uint8)
    out[:nh, :nw] = np.asarray(Image.fromarray(mask).resize((nw, nh), Image.NEAREST))
    return out


def empty_class_note(classes: list[str], masks: list[np.ndarray]) -> str | None:
    """A note naming the classes no training mask holds a pixel of: their IoU cannot be learned."""
    counts = np.zeros(256, np.int64)
    for m in masks:
        counts += np.bincount(m.reshape(-1), minlength=256)
    empty = [name for k, name in enumerate(classes) if counts[k] == 0]
    if not empty:
        return None
    return (f"No training mask holds a pixel of {', '.join(repr(e) for e in empty[:10])}"
            f"{' and more' if len(empty) > 10 else ''}: the model cannot learn "
            f"{'it' if len(empty) == 1 else 'them'}. Add images that show {'it' if len(empty) == 1 else 'them'}, or "
            f"remove {'it' if len(empty) == 1 else 'them'} from classes.txt.")
