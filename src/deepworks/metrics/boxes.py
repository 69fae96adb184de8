"""Boxes: the geometry object detection shares, in plain torch (torchvision cannot be installed beside this torch).

Boxes are (x1, y1, x2, y2) in pixels, continuous coordinates: a box covering pixel columns 0..9 is x1 0, x2 10.
A batch of images carries its boxes padded to the most boxes of any image: a (N, M, 5) tensor of x1, y1, x2, y2 and
the class, the class -1 where there is no box. That tensor is sliced like any other (batches.py), so detection needs
no batch source of its own.

Images reach a detector letterboxed: scaled so that the longer side fits the model's square, the aspect ratio kept,
and padded at the bottom and right. A box maps to the letterboxed image by the same two scale factors and back.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

PAD_VALUE = 114  # the grey a letterbox pads with (YOLO's): neither black nor white, which objects often are


# --- geometry -------------------------------------------------------------------------------------------------------
def box_area(b: torch.Tensor) -> torch.Tensor:
    return (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over union of every box of a (N, 4) with every box of b (M, 4): (N, M)."""
    return box_overlap(a, b)


def box_overlap(a: torch.Tensor, b: torch.Tensor, over: str = "union") -> torch.Tensor:
    """(N, M) overlaps of boxes a (N, 4) and b (M, 4): their intersection over their union, or with over="smaller"
    over the smaller box's area (a box inside a bigger one overlaps it wholly)."""
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)
    if over == "smaller":
        base = torch.minimum(box_area(a)[:, None], box_area(b)[None, :])
    else:
        base = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return inter / base.clamp(min=1e-9)


NMS_BLOCK = 1 << 22  # overlaps NMS holds at once, at most (16 MB): a face detector's first stage gives thousands


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou: float = 0.5, classes: torch.Tensor | None = None,
        over: str = "union") -> torch.Tensor:
    """Greedy non-maximum suppression: the indices of the boxes kept, best score first. A box is dropped when it
    overlaps a better kept box by more than `iou` (box_overlap's `over`: by union, or by the smaller box, as MTCNN's
    last stage merges); with `classes`, only boxes of the same class suppress each other (the boxes are moved apart
    per class, the usual trick). The overlaps are computed a block of rows at a time, at most NMS_BLOCK numbers."""
    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    if classes is not None:
        shift = (boxes.max() - boxes.min() + 1) * classes.to(boxes.dtype)
        boxes = boxes + shift[:, None]
    order = scores.argsort(descending=True, stable=True)
    ranked, n = boxes[order], len(order)
    keep = np.ones(n, dtype=bool)
    rows = max(1, NMS_BLOCK // n)
    for start in range(0, n, rows):
        alive = np.flatnonzero(keep[start:start + rows]) + start  # the rows no better box has silenced yet
        overlaps = (box_overlap(ranked[torch.from_numpy(alive).to(order.device)], ranked, over) > iou).cpu().numpy()
        for row, i in enumerate(alive):  # each kept box silences the later ones it overlaps
            if keep[i]:
                keep[i + 1:] &= ~overlaps[row, i + 1:]
    return order[torch.from_numpy(keep).to(order.device)]


def one_box_per_object(boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, iou: float = 0.6,
                       class_iou: float = 0.7) -> torch.Tensor:
    """The indices of the boxes kept, best score first: per-class NMS at `iou`, then across classes: a box that
    overlaps a better kept box of another class by more than `class_iou` is dropped. A detector that hesitates
    between classes (a 7 or a 1?) gives one object a box per class; the most confident one names it. Objects of
    different classes side by side overlap far less and are kept. `class_iou` 1 keeps every class's box."""
    kept = nms(boxes, scores, iou, classes)
    if class_iou >= 1 or len(kept) < 2:
        return kept
    return kept[nms(boxes[kept], scores[kept], class_iou)]


def clip_boxes(b: torch.Tensor, width: float, height: float) -> torch.Tensor:
    x = b[..., 0::2].clamp(0, width)
    y = b[..., 1::2].clamp(0, height)
    return torch.stack([x[..., 0], y[..., 0], x[..., 1], y[..., 1]], -1)


# --- letterbox ------------------------------------------------------------------------------------------------------
def letterbox_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(width, height) of an image scaled so that its longer side is `size`, the aspect ratio kept."""
    scale = size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def letterbox(image, size: int) -> tuple[np.ndarray, tuple[float, float]]:
    """A PIL image -> (uint8 (3, size, size), (sx, sy)): scaled into the square, padded bottom and right with grey.
    A box (x1, y1, x2, y2) of the original lands at (x1 * sx, y1 * sy, x2 * sx, y2 * sy)."""
    from PIL import Image

    from ..data.decode import eight_bit

    im = eight_bit(image).convert("RGB")
    w, h = letterbox_size(im.width, im.height, size)
    canvas = Image.new("RGB", (size, size), (PAD_VALUE,) * 3)
    canvas.paste(im.resize((w, h), Image.BILINEAR), (0, 0))
    return np.asarray(canvas).transpose(2, 0, 1).copy(), (w / im.width, h / im.height)


# --- augmentation that moves the boxes with the pixels ---------------------------------------------------------------
def random_affine(n: int, h: int, w: int, flip: bool, scale: tuple[float, float] | None, device, dtype):
    """Per image a random horizontal flip and a random zoom (scale in `scale`) with a random shift that keeps the
    zoomed image over the frame (or the frame inside it): (flipped (n,) bool, s, tx, ty (n,) in pixels, and the
    inverse map as grid_sample's theta (n, 2, 3)). Draws from torch's global generator, which checkpoints keep."""
    flipped = (torch.rand(n, device=device) < 0.5) if flip else torch.zeros(n, dtype=torch.bool, device=device)
    if scale is not None:
        s = torch.empty(n, device=device).uniform_(*scale)
        room_x, room_y = w - s * w, h - s * h  # where the scaled image may go: a shift in [min(0, room), max(0, room)]
        tx = torch.minimum(room_x, torch.zeros_like(room_x)) + torch.rand(n, device=device) * room_x.abs()
        ty = torch.minimum(room_y, torch.zeros_like(room_y)) + torch.rand(n, device=device) * room_y.abs()
    else:
        s = torch.ones(n, device=device)
        tx = ty = torch.zeros(n, device=device)
    sign = 1 - 2 * flipped.to(dtype)  # -1 where flipped
    # output pixel c_out comes from c_in = flip((c_out - t) / s), in grid_sample's [-1, 1] coordinates
    theta = torch.zeros(n, 2, 3, device=device, dtype=dtype)
    theta[:, 0, 0] = sign / s
    theta[:, 0, 2] = sign * ((1 - 2 * tx / w) / s - 1)
    theta[:, 1, 1] = 1 / s
    theta[:, 1, 2] = (1 - 2 * ty / h) / s - 1
    return flipped, s, tx, ty, theta


def warp(images: torch.Tensor, theta: torch.Tensor, fill: float, mode: str = "bilinear") -> torch.Tensor:
    """Images (N, C, H, W) float moved by `random_affine`'s map; what comes from outside the frame is `fill`."""
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images - fill, grid, mode=mode, padding_mode="zeros", align_corners=False) + fill


def augment(images: torch.Tensor, boxes: torch.Tensor, flip: bool = True, scale: tuple[float, float] | None = (0.6, 1.4),
            min_visible: float = 0.4) -> tuple[torch.Tensor, torch.Tensor]:
    """Random horizontal flip, and random zoom (scale in `scale`) with a random shift, per image: zooming in crops,
    zooming out pads with grey. Images (N, C, S, S) float in [0, 255]; boxes (N, M, 5) as the batch carries them. One
    affine map moves pixels and boxes alike (grid_sample with the inverse map); a box less than `min_visible` of
    which stays in the image is dropped (class -1). Draws from torch's global generator, which checkpoints keep."""
    n, _, h, w = images.shape
    flipped, s, tx, ty, theta = random_affine(n, h, w, flip, scale, images.device, images.dtype)
    out = warp(images, theta, PAD_VALUE)

    b, cls = boxes[..., :4], boxes[..., 4]
    x1, x2 = b[..., 0], b[..., 2]
    f = flipped[:, None]
    x1, x2 = torch.where(f, w - x2, x1), torch.where(f, w - x1, x2)
    moved = torch.stack([x1, b[..., 1], x2, b[..., 3]], -1) * s[:, None, None]
    moved = moved + torch.stack([tx, ty, tx, ty], -1)[:, None, :]
    kept = clip_boxes(moved, w, h)
    visible = box_area(kept) >= min_visible * box_area(moved).clamp(min=1e-9)
    valid = (cls >= 0) & visible & (kept[..., 2] - kept[..., 0] >= 1) & (kept[..., 3] - kept[..., 1] >= 1)
    cls = torch.where(valid, cls, torch.full_like(cls, -1))
    return out, torch.cat([torch.where(valid[..., None], kept, torch.zeros_like(kept)), cls[..., None]], -1)


def pad_boxes(per_image: list[np.ndarray], labels: list[np.ndarray]) -> torch.Tensor:
    """The collate of boxes: a list of (k_i, 4) boxes and (k_i,) classes -> (N, max k_i (at least 1), 5), class -1
    where an image has fewer boxes."""
    m = max([len(b) for b in per_image] + [1])
    out = torch.zeros(len(per_image), m, 5)
    out[..., 4] = -1
    for i, (b, c) in enumerate(zip(per_image, labels)):
        if len(b):
            out[i, :len(b), :4] = torch.as_tensor(np.asarray(b, dtype=np.float32))
            out[i, :len(b), 4] = torch.as_tensor(np.asarray(c, dtype=np.float32))
    return out


def unpad_boxes(padded: torch.Tensor) -> list[tuple[np.ndarray, np.ndarray]]:
    """(N, M, 5) -> [(boxes (k, 4), classes (k,))] per image, the padding gone."""
    out = []
    for row in padded.cpu().numpy():
        real = row[:, 4] >= 0
        out.append((row[real, :4], row[real, 4].astype(np.int64)))
    return out


# --- the metric: COCO's mean average precision, computed by pycocotools --------------------------------------------------
def coco_documents(truth: list[tuple[np.ndarray, np.ndarray]], found: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                   num_classes: int) -> tuple[dict, list[dict]]:
    """Ground truth [(boxes, classes)] and detections [(boxes, scores, classes)] per image -> COCO's ground-truth
    document and detection list (bbox as x, y, width, height)."""
    def xywh(b) -> list[float]:
        return [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]

    images = [{"id": i} for i in range(len(truth))]
    annotations = [{"id": len_ + 1, "image_id": i, "category_id": int(c), "bbox": xywh(b), "iscrowd": 0,
                    "area": float((b[2] - b[0]) * (b[3] - b[1]))}
                   for len_, (i, b, c) in enumerate((i, b, c) for i, (bs, cs) in enumerate(truth) for b, c in zip(bs, cs))]
    gt = {"images": images, "annotations": annotations, "categories": [{"id": k} for k in range(num_classes)]}
    dt = [{"image_id": i, "category_id": int(c), "bbox": xywh(b), "score": float(s)}
          for i, (bs, ss, cs) in enumerate(found) for b, s, c in zip(bs, ss, cs)]
    return gt, dt


def mean_average_precision(truth: list, found: list, num_classes: int, backend: str = "pycocotools") -> dict:
    """COCO's box metrics: 'map' (AP averaged over IoU 0.50:0.05:0.95), 'map50', 'map75', and per class 'ap' and
    'ap50', with the precision of each class at IoU 0.5 over recall 0:0.01:1 ('pr50') for the curves. backend
    'faster_coco_eval' computes the same with the second implementation (the tests compare them)."""
    import contextlib
    import io

    gt_doc, dt_doc = coco_documents(truth, found, num_classes)
    if backend == "faster_coco_eval":
        from faster_coco_eval import COCO, COCOeval_faster as COCOeval
    else:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):  # both print their progress and table
        gt = COCO()
        gt.dataset = gt_doc
        gt.createIndex()
        if not dt_doc:
            empty = {"map": 0.0, "map50": 0.0, "map75": 0.0}
            return {**empty, "ap": [0.0] * num_classes, "ap50": [0.0] * num_classes,
                    "pr50": [[0.0] * 101 for _ in range(num_classes)]}
        dt = gt.loadRes(dt_doc)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    precision = np.asarray(ev.eval["precision"])[:, :, :, 0, -1]  # IoU, recall, class at all areas, 100 detections

    def mean_valid(p: np.ndarray) -> float:
        p = p[p > -1]
        return float(p.mean()) if p.size else 0.0

    return {"map": float(ev.stats[0]), "map50": float(ev.stats[1]), "map75": float(ev.stats[2]),
            "ap": [mean_valid(precision[:, :, k]) for k in range(num_classes)],
            "ap50": [mean_valid(precision[0, :, k]) for k in range(num_classes)],
            "pr50": [np.clip(precision[0, :, k], 0, None).round(6).tolist() for k in range(num_classes)]}


def matched_by_score(truth: list, found: list, iou: float = 0.5) -> tuple[np.ndarray, np.ndarray, int]:
    """Every detection, best score first, and whether it finds an object: (scores, hits (bool), the number of true
    objects). A detection is a hit when it overlaps by `iou` or more a true box of its class that no better detection
    of that image has taken (COCO's greedy matching, at one IoU). truth: [(boxes, classes)], found: [(boxes, scores,
    classes)] per image."""
    scores, hits = [], []
    for (tb, tc), (fb, fs, fc) in zip(truth, found):
        overlap = box_iou(torch.as_tensor(fb).reshape(-1, 4), torch.as_tensor(tb).reshape(-1, 4)).numpy()
        taken = np.zeros(len(tb), bool)
        for j in np.argsort(-np.asarray(fs), kind="stable"):
            candidates = (overlap[j] >= iou) & (np.asarray(tc) == fc[j]) & ~taken
            if candidates.any():
                taken[int(np.argmax(np.where(candidates, overlap[j], -1)))] = True
            scores.append(float(fs[j]))
            hits.append(bool(candidates.any()))
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    objects = sum(len(tb) for tb, _ in truth)
    return np.asarray(scores, dtype=np.float64)[order], np.asarray(hits, bool)[order], objects


def best_f1_threshold(truth: list, found: list, iou: float = 0.5) -> dict | None:
    """The score threshold whose boxes best balance precision and recall (the highest F1) on a labelled split, rounded
    down to 0.01, with the precision, recall and F1 at it; None when the split has no object or no hit."""
    scores, hits, objects = matched_by_score(truth, found, iou)
    if not objects or not hits.any():
        return None
    tp = np.cumsum(hits)
    precision, recall = tp / np.arange(1, len(hits) + 1), tp / objects
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    best = int(np.argmax(f1))
    threshold = np.floor(scores[best] * 100) / 100
    return {"threshold": float(threshold), **precision_recall_at(truth, found, threshold, iou)}


def precision_recall_at(truth: list, found: list, threshold: float, iou: float = 0.5) -> dict:
    """{'precision', 'recall', 'f1', 'objects'} of the boxes scoring `threshold` or more (IoU `iou`, right class)."""
    scores, hits, objects = matched_by_score(truth, found, iou)
    shown = scores >= threshold
    tp = int(hits[shown].sum())
    precision, recall = tp / max(int(shown.sum()), 1), tp / max(objects, 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4), "objects": objects}


# --- drawing ----------------------------------------------------------------------------------------------------------
PALETTE = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
           (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128))


def draw_boxes(image, boxes, labels: list[str], colours: list[tuple] | None = None, width: int | None = None):
    """A copy of a PIL image with each box (x1, y1, x2, y2 in its pixels) outlined and labelled above its corner."""
    from PIL import ImageDraw

    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    line = width or max(1, round(max(out.size) / 200))
    for i, (b, text) in enumerate(zip(boxes, labels)):
        colour = colours[i] if colours else PALETTE[i % len(PALETTE)]
        x1, y1, x2, y2 = (float(v) for v in b)
        draw.rectangle([x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)], outline=colour, width=line)
        if text:
            left, top, right, bottom = draw.textbbox((x1, y1), text)
            lift = bottom - top + 2
            y = y1 - lift if y1 >= lift else y1
            draw.rectangle([x1, y, x1 + right - left + 3, y + lift], fill=colour)
            draw.text((x1 + 2, y), text, fill=(255, 255, 255))
    return out
