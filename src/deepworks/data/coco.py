"""COCO annotation files for detection. Everything in the file comes from outside and is checked before use: the
JSON itself (a file nested past Python's recursion limit is an error, not a traceback), each entry's type and id,
each bbox (four finite numbers: a 400-digit integer loses its box with a warning like any bad box), and each
file_name, which must name a file inside the annotation file's folder, as COCO's own files do: an absolute path or
one with '..' is skipped with a warning and never opened. Every image is opened (its header) when read, so an
unreadable one is skipped with the warning the VOC and YOLO readers give."""

from __future__ import annotations

import json
import warnings
from pathlib import Path, PurePosixPath, PureWindowsPath

from ..errors import DataError
from .arrays import DataWarning
from .box_records import BoxSet, Problems, box_set, check_box, normalised_looking, probe_or_skip


def read_coco_file(path: Path, classes: list[str] | None, strict: bool) -> BoxSet:
    """A COCO JSON file: 'images' (id, file_name, width, height), 'annotations' (image_id, category_id, bbox as
    x, y, width, height in pixels) and 'categories' (id, name). Images are looked for beside the file and in its
    images/ folder; images without annotations are negatives. An image's size is its file's own."""
    doc = load_json(path)
    problems = Problems(strict)
    images = [im for n, im in entries(doc, "images", path, problems) if has_id(im, f"{path}: images[{n}]", problems)]
    ids = [im["id"] for im in images]
    check_unique(ids, path)
    categories = {c["id"]: str(c.get("name")) for n, c in entries(doc, "categories", path, problems)
                  if has_id(c, f"{path}: categories[{n}]", problems)}
    names = list(classes) if classes is not None else sorted(set(categories.values()))
    by_image = boxes_by_image(doc, path, set(ids), categories, names, problems)
    all_boxes = [b for anns in by_image.values() for b, _, _ in anns]
    if normalised_looking(all_boxes):
        raise DataError(f"{path}: every bbox is within 0 to 1: they look normalised. Expected COCO bboxes in pixels "
                        f"[x, y, width, height]. Received: {all_boxes[0]}.")
    records, mismatched = [], []
    for im in images:
        where = f"{path}: image id {im['id']!r}"
        file = image_file(path, im.get("file_name"), where, problems)
        size = probe_or_skip(file, problems) if file is not None else None
        if size is None:
            continue
        if (im.get("width"), im.get("height")) not in (size, (None, None)):
            mismatched.append(f"{where}: width {short(im.get('width'))}, height {short(im.get('height'))}, its file "
                              f"{size[0]}x{size[1]}")
        kept, labels = [], []
        for (x, y, bw, bh), name, ann_where in by_image[im["id"]]:
            fixed = check_box([x, y, x + bw, y + bh], *size, ann_where, problems)
            if fixed is not None:
                kept.append(fixed)
                labels.append(name)
        records.append((file, size, kept, labels))
    warn_sizes(path, mismatched)
    notes = problems.finish(str(path))
    return box_set(records, names, f"COCO file {path}", notes)


def load_json(path: Path) -> dict:
    """The file's JSON object, with its three lists; a DataError naming the file when it is not one."""
    try:
        doc = json.loads(path.read_text())
    except RecursionError:
        raise DataError(f"{path}: Expected a COCO annotation file nested a few levels deep. Received: JSON nested too "
                        f"deeply to read (past Python's limit of about 1,000 levels).") from None
    except (UnicodeDecodeError, ValueError) as err:  # json.JSONDecodeError, and an integer over 4,300 digits
        raise DataError(f"{path}: not valid JSON ({err}). Expected a COCO annotation file.") from None
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), list) for k in ("images", "annotations", "categories")):
        raise DataError(f"{path}: Expected a COCO file: an object with lists 'images', 'annotations' and "
                        f"'categories'. Received: keys {sorted(doc)[:8] if isinstance(doc, dict) else type(doc).__name__}.")
    return doc


def entries(doc: dict, key: str, path: Path, problems: Problems) -> list[tuple[int, dict]]:
    """(position, entry) for the entries of doc[key] that are objects; any other is skipped as a problem."""
    found = []
    for n, entry in enumerate(doc[key]):
        if isinstance(entry, dict):
            found.append((n, entry))
        else:
            problems.skip(f"{path}: {key}[{n}]: Expected an object. Received: {entry!r:.80}.")
    return found


def has_id(entry: dict, where: str, problems: Problems) -> bool:
    """Whether an image or category has an id COCO allows (a whole number or a string), recording it when not."""
    ok = isinstance(entry.get("id"), (int, str)) and not isinstance(entry.get("id"), bool)
    if not ok:
        problems.skip(f"{where}: Expected an id (a whole number or a string). Received: {entry.get('id')!r:.80}.")
    return ok


def check_unique(ids: list, path: Path) -> None:
    seen, duplicates = set(), []
    for i in ids:
        if i in seen:
            duplicates.append(i)
        seen.add(i)
    if duplicates:
        raise DataError(f"{path}: Expected each image id once in 'images'. Received: id {duplicates[0]!r} "
                        f"{ids.count(duplicates[0])} times ({len(duplicates)} duplicate(s) in all).")


def known_annotations(doc: dict, path: Path, ids: set, categories: dict, names: list[str], problems: Problems,
                      listed: list[str] | None = None):
    """(annotation, image id, class name, where) for each annotation whose image is in 'images' and whose category
    is in the label map (`names`; `listed`, where given, is how the message names it); each other one recorded as
    a problem. The detection and segmentation readers share it."""
    for n, ann in entries(doc, "annotations", path, problems):
        where = f"{path}: annotations[{n}]"
        image_id, category_id = ann.get("image_id"), ann.get("category_id")
        if not is_key(image_id) or image_id not in ids:
            problems.skip(f"{where}: Expected an image_id listed in 'images'. Received: {image_id!r:.80}.")
            continue
        name = categories.get(category_id) if is_key(category_id) else None
        if name is None or name not in names:
            problems.skip(f"{where}: Expected a category of the label map ({', '.join(listed or names)}). Received: "
                          f"category_id {category_id!r:.80}" + (f" ('{name}')" if name else "") + ".")
            continue
        yield ann, image_id, name, where


def boxes_by_image(doc: dict, path: Path, ids: set, categories: dict, names: list[str], problems: Problems) -> dict:
    """{image id: [(bbox, class name, where), ...]} for the annotations whose image, category and bbox are usable."""
    by_image: dict = {i: [] for i in ids}
    for ann, image_id, name, where in known_annotations(doc, path, ids, categories, names, problems):
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox)):
            problems.skip(f"{where}: Expected bbox [x, y, width, height] in pixels. Received: {bbox!r:.120}.")
            continue
        by_image[image_id].append((bbox, name, where))
    return by_image


def is_key(value) -> bool:
    """Whether a value can be looked up among ids (a list or an object in its place cannot)."""
    return not isinstance(value, (list, dict))


def image_file(path: Path, name, where: str, problems: Problems) -> Path | None:
    """The image an entry's file_name names, beside the annotation file or in its images/ folder. The name must lead
    inside that folder: an absolute path or a '..' is recorded as a problem and never opened. (Links already in the
    folder are followed: whoever made the folder put them there.)"""
    root = path.absolute().parent
    if not isinstance(name, str) or not name.strip():
        problems.skip(f"{where}: Expected a file_name, the image's path relative to {root}. Received: {name!r:.80}.")
        return None
    parts = PurePosixPath(name.replace("\\", "/"))
    if parts.is_absolute() or PureWindowsPath(name).anchor or ".." in parts.parts:
        problems.skip(f"{where}: Expected a file_name inside {root} (relative to the folder of {path.name}). "
                      f"Received: {name!r:.200}, which leads outside it; move the image into that folder and name it "
                      f"from there.")
        return None
    for folder in (root, root / "images"):
        candidate = folder / parts
        if candidate.is_file():
            return candidate
    problems.skip(f"{where}: Expected the image '{name:.200}' beside {path.name} or in its images/ folder. Received: "
                  f"no such file.")
    return None


def short(value) -> str:
    text = repr(value)
    return text if len(text) <= 20 else text[:17] + "..."


def warn_sizes(path: Path, mismatched: list[str]) -> None:
    """One warning for the images whose width and height in the file are not their files' own sizes."""
    if mismatched:
        more = f"\n  ... and {len(mismatched) - 10} more" if len(mismatched) > 10 else ""
        listed = "\n  ".join(mismatched[:10]) + more
        warnings.warn(f"{path}: Expected each image's width and height to be its file's size. Received other values "
                      f"for {len(mismatched)} image(s); their files' own sizes are used:\n  {listed}", DataWarning,
                      stacklevel=4)
