"""COCO annotation files for segmentation: each annotation's polygons or RLE drawn into a mask per image by
pycocotools, class 0 the background, crowd regions left out (IGNORE). The file is checked as the detection reader
checks it (data/coco.py: its JSON, ids, file names inside its folder); each polygon must lie in its image and each
RLE have its image's size, or the annotation is skipped with its place named."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .box_records import Problems, probe_or_skip
from .coco import check_unique, entries, has_id, image_file, known_annotations, load_json
from .masks import IGNORE, LOST, MAX_CLASSES, MaskSet

TOLERANCE = 1.0  # pixels a polygon may reach past its image's edge (rounding), as boxes may
MAX_ANNOTATIONS = 5000  # per image: COCO's busiest images have a few hundred


def read_coco_masks(path: Path, classes: list[str] | None, strict: bool) -> MaskSet:
    """A COCO JSON file whose annotations have 'segmentation' (polygons, or RLE with iscrowd): a mask per image,
    larger objects drawn first so that smaller ones on them stay visible. Images without annotations are all
    background."""
    doc = load_json(path)
    problems = Problems(strict, LOST)
    images = [im for n, im in entries(doc, "images", path, problems) if has_id(im, f"{path}: images[{n}]", problems)]
    check_unique([im["id"] for im in images], path)
    categories = {c["id"]: str(c.get("name")) for n, c in entries(doc, "categories", path, problems)
                  if has_id(c, f"{path}: categories[{n}]", problems)}
    names = list(classes) if classes is not None else ["background", *sorted(set(categories.values()) - {"background"})]
    if len(names) > MAX_CLASSES:
        from ..errors import DataError

        raise DataError(f"{path}: Expected at most {MAX_CLASSES} categories. Received: {len(names) - 1}.")
    by_image = annotations_by_image(doc, path, {im["id"] for im in images}, categories, names, problems)
    kept, masks = [], []
    for im in images:
        where = f"{path}: image id {im['id']!r}"
        file = image_file(path, im.get("file_name"), where, problems)
        size = probe_or_skip(file, problems) if file is not None else None
        if size is None:
            continue
        anns = by_image[im["id"]]
        if len(anns) > MAX_ANNOTATIONS:
            problems.skip(f"{where}: Expected at most {MAX_ANNOTATIONS:,} annotations an image. Received: "
                          f"{len(anns):,}; the image is left out.")
            continue
        kept.append(file)
        masks.append(painted(anns, size, names, problems))
    found = MaskSet(kept, masks, names, f"COCO file {path} ({len(kept)} images with masks)")
    found.problems = problems.finish(str(path))
    return found


def painted(anns: list, size: tuple[int, int], names: list[str], problems: Problems) -> np.ndarray:
    """An image's mask: its annotations' regions, encoded first (RLE is small), then decoded and drawn one at a
    time, the largest first."""
    from pycocotools import mask as coco_mask

    encoded = []
    for seg, name, crowd, where in anns:
        rle = region(seg, *size, where, problems)
        if rle is not None:
            encoded.append((int(coco_mask.area(rle)), rle, IGNORE if crowd else names.index(name)))
    mask = np.zeros((size[1], size[0]), np.uint8)
    for _, rle, value in sorted(encoded, key=lambda t: -t[0]):
        mask[coco_mask.decode(rle).astype(bool)] = value
    return mask


def annotations_by_image(doc: dict, path: Path, ids: set, categories: dict, names: list[str],
                         problems: Problems) -> dict:
    """{image id: [(segmentation, class name, iscrowd, where)]} for the annotations whose image and category are
    known and that have a segmentation."""
    by_image: dict = {i: [] for i in ids}
    for ann, image_id, name, where in known_annotations(doc, path, ids, categories, names, problems, names[1:]):
        if "segmentation" not in ann:
            problems.skip(f"{where}: Expected a 'segmentation' (polygons, or RLE). Received: none (a box alone is "
                          f"for --task detect).")
            continue
        by_image[image_id].append((ann["segmentation"], name, bool(ann.get("iscrowd")), where))
    return by_image


def region(seg, width: int, height: int, where: str, problems: Problems) -> dict | None:
    """An annotation's polygons or RLE -> one RLE of its region, as pycocotools keeps it; None (a problem recorded)
    when it is malformed, leaves its image, or has another size."""
    from pycocotools import mask as coco_mask

    if isinstance(seg, list):
        polygons = checked_polygons(seg, width, height, where, problems)
        return None if polygons is None else coco_mask.merge(coco_mask.frPyObjects(polygons, height, width))
    if isinstance(seg, dict):
        return checked_rle(seg, width, height, where, problems)
    problems.skip(f"{where}: Expected a segmentation as a list of polygons or an RLE object. Received: {seg!r:.80}.")
    return None


def checked_polygons(seg: list, width: int, height: int, where: str, problems: Problems) -> list | None:
    """The polygons of an annotation as floats, each of at least 3 points inside its image (within TOLERANCE);
    None, with the problem recorded, otherwise."""
    polygons = []
    for p in seg:
        if not (isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(float(v)) for v in p)):
            problems.skip(f"{where}: Expected each polygon as [x1, y1, x2, y2, ...] with at least 3 points, in "
                          f"pixels. Received: {p!r:.80}.")
            return None
        xs, ys = np.asarray(p[0::2], dtype=np.float64), np.asarray(p[1::2], dtype=np.float64)
        if xs.min() < -TOLERANCE or ys.min() < -TOLERANCE or xs.max() > width + TOLERANCE or \
                ys.max() > height + TOLERANCE:
            problems.skip(f"{where}: a polygon reaches x {xs.min():g} to {xs.max():g}, y {ys.min():g} to "
                          f"{ys.max():g}, outside its {width}x{height} image. Expected the image's own pixels (not a "
                          f"resized copy's); fix the points, or remove the annotation.")
            return None
        polygons.append([float(v) for v in p])
    if not polygons:
        problems.skip(f"{where}: Expected at least one polygon. Received: an empty list.")
        return None
    return polygons


def checked_rle(seg: dict, width: int, height: int, where: str, problems: Problems) -> dict | None:
    """An RLE of the image's size whose counts add up to its pixels, as pycocotools takes it; None (a problem
    recorded) otherwise. Compressed counts are unpacked here first: pycocotools' decoder writes as many pixels as
    the counts say, without checking them against the size."""
    from pycocotools import mask as coco_mask

    size, counts = seg.get("size"), seg.get("counts")
    if size != [height, width]:
        problems.skip(f"{where}: Expected an RLE of the image's size [{height}, {width}] (height, width). Received: "
                      f"size {size!r:.40}.")
        return None
    if isinstance(counts, str):
        counts = unpacked_counts(counts, width * height)
    if not (isinstance(counts, list) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts)
            and sum(counts) == width * height):
        problems.skip(f"{where}: Expected RLE counts (a list of whole numbers, or pycocotools' string) adding up to "
                      f"the image's {width * height:,} pixels. Received: {str(seg.get('counts'))[:40]!r}.")
        return None
    return coco_mask.frPyObjects({"size": [height, width], "counts": counts}, height, width)


def unpacked_counts(text: str, limit: int) -> list[int] | None:
    """pycocotools' compressed RLE string -> its run lengths (COCO's format: 5 bits a character from '0', a
    continuation bit, a sign bit, and each run after the second stored as the difference from the one two before);
    None when it is malformed or longer than an image of `limit` pixels can need."""
    if not text.isascii() or len(text) > 8 * limit + 16:
        return None
    counts, p = [], 0
    while p < len(text):
        value, shift, more = 0, 0, True
        while more:
            if p >= len(text):
                return None
            c = ord(text[p]) - 48
            if not 0 <= c < 64:
                return None
            value |= (c & 0x1F) << shift
            more = bool(c & 0x20)
            p, shift = p + 1, shift + 5
            if shift > 40:  # no run of an image's pixels needs more bits: stop before the number grows for long
                return None
            if not more and c & 0x10:
                value -= 1 << shift
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
        if value < 0 or value > limit:
            return None
    return counts
