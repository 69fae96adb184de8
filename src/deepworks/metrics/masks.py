"""What segmentation is scored and shown with: the pixel confusion matrix and the IoU it gives, each object's IoU by
its size, the Rand error of ISBI 2012, masks as COCO's RLE and as palette PNGs, and masks drawn over images."""

from __future__ import annotations

import io

import numpy as np

from ..data.masks import IGNORE

PALETTE = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
           (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255), (170, 110, 40))


def confusion(truth: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) pixel counts, rows the true class and columns the predicted one, over pixels whose truth is not IGNORE."""
    t, p = truth.reshape(-1).astype(np.int64), predicted.reshape(-1).astype(np.int64)
    keep = t != IGNORE
    return np.bincount(t[keep] * num_classes + p[keep], minlength=num_classes ** 2).reshape(num_classes, num_classes)


def ious(cm: np.ndarray) -> np.ndarray:
    """Each class's IoU, true positives over the union of true and predicted pixels; NaN for a class neither in the
    truth nor predicted."""
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def scores_of(cm: np.ndarray) -> dict:
    """mean IoU (over the classes present in truth or prediction), the IoU of each class, and pixel accuracy."""
    per_class = ious(cm)
    present = ~np.isnan(per_class)
    return {"miou": float(per_class[present].mean()) if present.any() else 0.0, "iou": per_class,
            "pixel_accuracy": float(np.trace(cm) / max(cm.sum(), 1))}


def object_ious(truth: np.ndarray, predicted: np.ndarray, classes: list[int]) -> list[tuple[int, int, float]]:
    """[(class, area in pixels, IoU)] per object of one image: an object is a connected region of one class in the
    truth; its IoU is against the predicted regions of that class that touch it."""
    from scipy import ndimage

    found = []
    for c in classes:
        objects, n = ndimage.label(truth == c)
        if not n:
            continue
        guessed, _ = ndimage.label(predicted == c)
        sizes = np.bincount(guessed.reshape(-1))  # each predicted region's pixels
        for k, box in enumerate(ndimage.find_objects(objects), 1):
            obj = objects[box] == k  # the object, within its bounding box
            under = guessed[box][obj]  # the predicted region under each of its pixels (0: none)
            touching = np.unique(under[under > 0])
            inter = int(np.isin(under, touching).sum())
            union = int(obj.sum()) + int(sizes[touching].sum()) - inter
            found.append((c, int(obj.sum()), float(inter / union)))
    return found


def rand_error(truth: np.ndarray, predicted: np.ndarray, boundary: int = 0) -> float:
    """ISBI 2012's Rand error (1 - the foreground-restricted Rand F-score, Arganda-Carreras et al. 2015): the regions
    are the connected components of the non-boundary pixels, in the truth and in the prediction; pixels on a true
    boundary are not counted, predicted boundary pixels count as regions of their own size one."""
    from scipy import ndimage
    from scipy.sparse import coo_matrix

    a, _ = ndimage.label(truth != boundary)
    b, nb = ndimage.label(predicted != boundary)
    keep = a.reshape(-1) > 0
    seg_a = a.reshape(-1)[keep]
    seg_b = b.reshape(-1)[keep].astype(np.int64)
    on_line = seg_b == 0
    seg_b[on_line] = nb + 1 + np.arange(on_line.sum())  # each predicted boundary pixel its own region
    n = len(seg_a)
    if not n:
        return 0.0
    p = coo_matrix((np.ones(n), (seg_a, seg_b))).tocsr() / n
    sum_p2 = p.multiply(p).sum()
    a_i = np.asarray(p.sum(1)).ravel()
    b_j = np.asarray(p.sum(0)).ravel()
    precision, recall = sum_p2 / (b_j ** 2).sum(), sum_p2 / (a_i ** 2).sum()
    return float(1 - 2 * precision * recall / (precision + recall))


# --- masks as files and pictures ------------------------------------------------------------------------------------
def colours_for(num_classes: int, given: list | None = None, background: int | None = None) -> list[tuple]:
    """A colour per class: the data's own (a palette, classes.txt), else PALETTE in turn; the background black."""
    if given and len(given) >= num_classes:
        return [tuple(int(v) for v in c) for c in given[:num_classes]]
    out = [PALETTE[k % len(PALETTE)] for k in range(num_classes)]
    if background is not None:
        out[background] = (0, 0, 0)
    return out


def mask_png(mask: np.ndarray, colours: list[tuple], background: int | None = None) -> bytes:
    """A palette PNG of class indices: its pixels are the classes (np.asarray(Image.open(f)) gives them back) and
    its palette shows each in its colour, the background class transparent."""
    from PIL import Image

    im = Image.fromarray(mask.astype(np.uint8), mode="P")
    flat = [v for c in colours for v in c]
    im.putpalette(flat + [0] * (768 - len(flat)))
    buf = io.BytesIO()
    im.save(buf, format="PNG", **({"transparency": background} if background is not None else {}))
    return buf.getvalue()


def overlay(image: np.ndarray, mask: np.ndarray, colours: list[tuple], background: int | None,
            opacity: float = 0.5) -> np.ndarray:
    """uint8 (H, W, 3) image with each pixel of a class other than the background tinted its colour."""
    tint = np.asarray(colours, dtype=np.float32)[np.minimum(mask, len(colours) - 1)]
    shown = mask != IGNORE
    if background is not None:
        shown &= mask != background
    out = image.astype(np.float32)
    out[shown] = (1 - opacity) * out[shown] + opacity * tint[shown]
    return out.round().astype(np.uint8)


def rle(mask: np.ndarray) -> list[dict]:
    """COCO's compressed RLE of each class present (pycocotools.mask.decode reads it back): [{'class', 'size': [H,
    W], 'counts'}]."""
    from pycocotools import mask as coco_mask

    out = []
    for c in np.unique(mask).tolist():
        code = coco_mask.encode(np.asfortranarray((mask == c).astype(np.uint8)))
        out.append({"class": c, "size": [int(v) for v in code["size"]], "counts": code["counts"].decode("ascii")})
    return out
