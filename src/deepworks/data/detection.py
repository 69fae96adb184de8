"""Object-detection data: images with boxes, from Pascal VOC XML folders, COCO JSON files, YOLO folders, or a
built-in (`shapes`, generated on the spot; `raccoon`, the 200-photo VOC set).

Every reader gives a `BoxSet`: per image its file (or pixels, for generated data), its size, its boxes in pixels
(x1, y1, x2, y2) and their classes. A reader checks what it reads. A problem that loses one box or one image (a box
outside its image, of zero area or with a coordinate that is not a finite number, a class not in the label map, an
image that is missing or cannot be read, a COCO file_name outside the annotation file's folder) is skipped with one
warning listing every such problem, each with its file and line; `--strict` makes it an error. A problem with the
file as a whole (not XML, a COCO file with duplicate image ids or nested too deeply, coordinates in the wrong units)
is an error at once. Nothing is half-loaded in silence. An image's size is always its file's own; a different size
written in the annotations is warned about."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from ..errors import DataError
from .arrays import DataWarning
from .builtin import built_in_size
from .box_records import BoxSet, Problems, box_set, check_box, normalised_looking, probe_or_skip  # noqa: F401
from .coco import read_coco_file
from .images import IMAGE_EXTENSIONS, is_hidden

SHAPES = ("circle", "square", "triangle")


def line_of(text: str, needle: str, start: int = 0) -> int:
    at = text.find(needle, start)
    return text.count("\n", 0, at) + 1 if at >= 0 else 0


def read_voc(root: Path, classes: list[str] | None, strict: bool) -> BoxSet:
    """A folder of VOC XML files (anywhere below it) and their images: each XML's <filename> is looked for beside
    it, in the folder, and in its JPEGImages/ or images/ sub-folder. Images without an XML are negatives."""
    problems = Problems(strict)
    classes = classes or yolo_names(root)  # a classes.txt beside the XML files is the label map
    xmls = sorted(p for p in root.rglob("*.xml") if not any(is_hidden(part) for part in p.relative_to(root).parts))
    image_files = {p.name: p for p in sorted(root.rglob("*")) if p.suffix.lower() in IMAGE_EXTENSIONS
                   and not any(is_hidden(part) for part in p.relative_to(root).parts)}
    found_classes: list[str] = list(classes or [])
    records, used = [], set()
    for xml in xmls:
        text = xml.read_text(errors="replace")
        tree = parse_voc_xml(xml, text)
        if tree.tag != "annotation":
            continue  # some other XML file in the folder
        name = (tree.findtext("filename") or "").strip()
        path = image_files.get(name) or image_files.get(Path(name).name)
        if not name or path is None:
            problems.skip(f"{xml}: line {line_of(text, '<filename')}: Expected the image '{name}' beside the XML or "
                          f"under {root}. Received: no such image file.")
            continue
        used.add(path.name)
        if (size := probe_or_skip(path, problems)) is None:
            continue
        check_said_size(tree, size, path, xml, text)
        kept, kept_labels = voc_boxes(tree, text, xml, tuple(size), classes, found_classes, problems)
        records.append((path, tuple(size), kept, kept_labels))
    if not xmls:
        raise DataError(f"No Pascal VOC XML files found under '{root}'. Expected a folder of .xml annotations with "
                        f"their images, a COCO .json file, or a YOLO folder (images with one .txt per image and a "
                        f"classes.txt).")
    for name, path in image_files.items():
        if name not in used and (size := probe_or_skip(path, problems)) is not None:  # no annotation: a negative
            records.append((path, size, [], []))
    found_classes = sorted(found_classes) if classes is None else found_classes
    notes = problems.finish(str(root))
    return box_set(records, found_classes, f"Pascal VOC folder {root}", notes)


def parse_voc_xml(xml: Path, text: str):
    """The XML's root element; a file that is not XML at all is an error, with its line."""
    import xml.etree.ElementTree as ET

    try:
        return ET.fromstring(text)
    except ET.ParseError as err:
        raise DataError(f"{xml}: line {err.position[0]}: not valid XML ({err.msg}). Expected a Pascal VOC "
                        f"annotation (<annotation> with <filename>, <size> and <object>s).") from None


def voc_boxes(tree, text: str, xml: Path, size: tuple[int, int], classes: list[str] | None,
              found_classes: list[str], problems: Problems) -> tuple[list, list[str]]:
    """(boxes, labels) of one annotation's <object>s that pass the checks, each problem skipped with its line; a
    class met for the first time joins `found_classes` unless the label map is given."""
    import xml.etree.ElementTree as ET

    width, height = size
    boxes, pos = [], 0
    for obj in tree.iter("object"):
        pos = text.find("<object", pos) + 1
        line = text.count("\n", 0, pos) + 1
        label = (obj.findtext("name") or "").strip()
        bnd = obj.find("bndbox")
        where = f"{xml}: line {line}"
        try:
            box = [float(bnd.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
        except (TypeError, ValueError, AttributeError):
            problems.skip(f"{where}: Expected <bndbox> with numbers xmin, ymin, xmax, ymax. Received: "
                          f"{ET.tostring(bnd).decode()[:120] if bnd is not None else 'no <bndbox>'}.")
            continue
        if label not in found_classes:
            if classes is not None:
                problems.skip(f"{where}: Expected a class of the label map ({', '.join(classes)}). Received: "
                              f"'{label}'.")
                continue
            found_classes.append(label)
        boxes.append((box, label, where))
    pixel_boxes = [b for b, _, _ in boxes]
    if normalised_looking(pixel_boxes) and max(width, height) > 2:
        raise DataError(f"{xml}: the boxes look normalised (every coordinate within 0 to 1). Expected VOC "
                        f"coordinates in pixels of the {width}x{height} image. Received: {pixel_boxes[0]}.")
    kept, kept_labels = [], []
    for box, label, where in boxes:
        fixed = check_box(box, width, height, where, problems)
        if fixed is not None:
            kept.append(fixed)
            kept_labels.append(label)
    return kept, kept_labels


def check_said_size(tree, size: tuple[int, int], path: Path, xml: Path, text: str) -> None:
    """Warn when the XML's <size> is not the image's own (which is used): another size, 0x0, or not numbers."""
    said = tree.find("size")
    if said is None:
        return
    texts = [(said.findtext(k) or "").strip()[:20] for k in ("width", "height")]
    try:
        if tuple(int(float(t)) for t in texts) == size:
            return
    except (ValueError, OverflowError):  # not a number, NaN, infinite
        pass
    warnings.warn(f"{xml}: line {line_of(text, '<size')}: Expected <size> to give the size of {path.name}, "
                  f"{size[0]}x{size[1]}. Received: width {texts[0] or '(none)'}, height {texts[1] or '(none)'}; the "
                  f"image's own size is used.", DataWarning, stacklevel=4)


# --- COCO -------------------------------------------------------------------------------------------------------------
def read_coco(path: Path, classes: list[str] | None, strict: bool) -> BoxSet:
    """A COCO JSON file (see coco.py)."""
    return read_coco_file(path, classes, strict)


# --- YOLO -------------------------------------------------------------------------------------------------------------
def read_yolo(root: Path, classes: list[str] | None, strict: bool) -> BoxSet:
    """A YOLO folder: images, each with a .txt of the same name beside it or in a labels/ folder parallel to
    images/, one line per box: class x_centre y_centre width height, as fractions of the image; class names in
    classes.txt (or data.yaml's names), else the numbers. An image without a .txt is a negative."""
    problems = Problems(strict)
    names = classes or yolo_names(root)
    images = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS
                    and not any(is_hidden(part) for part in p.relative_to(root).parts))
    records, numbered = [], names is None
    names = list(names or [])
    for image in images:
        if (size := probe_or_skip(image, problems)) is None:
            continue
        w, h = size
        label_file = yolo_label_file(image)
        kept, labels = [], []
        if label_file is not None:
            for n, line in enumerate(label_file.read_text(errors="replace").splitlines(), 1):
                where = f"{label_file}: line {n}"
                fields = line.split()
                if not fields:
                    continue
                if len(fields) != 5:
                    problems.skip(f"{where}: Expected 5 fields (class x_centre y_centre width height). Received "
                                  f"{len(fields)}: '{line.strip()[:80]}'.")
                    continue
                try:
                    cls = int(fields[0])
                    xc, yc, bw, bh = (float(v) for v in fields[1:])
                except ValueError:
                    problems.skip(f"{where}: Expected a whole class number and four numbers. Received: "
                                  f"'{line.strip()[:80]}'.")
                    continue
                if max(xc, yc, bw, bh) > 1.5:
                    raise DataError(f"{where}: Expected coordinates as fractions of the image (0 to 1), as YOLO "
                                    f"files have them. Received: {xc:g} {yc:g} {bw:g} {bh:g}, which look like pixels.")
                if numbered:
                    while len(names) <= cls:
                        names.append(str(len(names)))
                if not 0 <= cls < len(names):
                    problems.skip(f"{where}: Expected a class from 0 to {len(names) - 1} ({', '.join(names)}). "
                                  f"Received: {cls}.")
                    continue
                box = [(xc - bw / 2) * w, (yc - bh / 2) * h, (xc + bw / 2) * w, (yc + bh / 2) * h]
                fixed = check_box(box, w, h, where, problems)
                if fixed is not None:
                    kept.append(fixed)
                    labels.append(names[cls])
        records.append((image, (w, h), kept, labels))
    if not images:
        raise DataError(f"No images found under '{root}'. Expected a YOLO folder: images, each with a .txt of boxes.")
    notes = problems.finish(str(root))
    return box_set(records, names, f"YOLO folder {root}", notes)


def yolo_label_file(image: Path) -> Path | None:
    beside = image.with_suffix(".txt")
    if beside.is_file():
        return beside
    parts = list(image.parts)
    if "images" in parts:
        i = len(parts) - 1 - parts[::-1].index("images")
        parallel = Path(*parts[:i], "labels", *parts[i + 1:]).with_suffix(".txt")
        if parallel.is_file():
            return parallel
    return None


def yolo_names(root: Path) -> list[str] | None:
    for name in ("classes.txt", "obj.names"):
        f = root / name
        if f.is_file():
            return [line.strip() for line in f.read_text().splitlines() if line.strip()]
    f = root / "data.yaml"
    if f.is_file():
        import yaml

        found = (yaml.safe_load(f.read_text()) or {}).get("names")
        if isinstance(found, dict):
            return [str(found[k]) for k in sorted(found)]
        if isinstance(found, list):
            return [str(n) for n in found]
    return None


def detect_format(root: Path) -> str:
    """'coco', 'voc' or 'yolo' for a path, from what it holds."""
    if root.is_file():
        if root.suffix.lower() == ".json":
            return "coco"
        raise DataError(f"'{root}' is a file. Expected a COCO .json file, or a folder of VOC XML files or YOLO .txt "
                        f"files with their images.")
    if any(root.rglob("*.xml")):
        return "voc"
    if any(p.name not in ("classes.txt", "obj.names") for p in root.rglob("*.txt")):
        return "yolo"
    raise DataError(f"'{root}' holds no annotations. Expected Pascal VOC .xml files, YOLO .txt files (one per "
                    f"image), or give a COCO .json file.")


READERS = {"voc": read_voc, "coco": read_coco, "yolo": read_yolo}


# --- built-ins --------------------------------------------------------------------------------------------------------
def make_shapes(n: int, seed: int, low: int = 64, high: int = 128, masks: bool = False):
    """n images of `low` to `high` pixels a side, each with 1 to 3 circles, squares and triangles of several sizes
    and colours (overlapping little) on a noisy background; the same for the same seed. masks=True: (the BoxSet,
    a uint8 (H, W) mask per image: 0 background, 1 + the shape's class where it was drawn)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    images, sizes, boxes, labels, drawn_masks = [], [], [], [], []
    for _ in range(n):
        w, h = (int(v) for v in rng.integers(low, high + 1, 2))
        background = rng.integers(0, 256, 3)
        noise = rng.normal(0, 18, (h, w, 3))
        canvas = Image.fromarray(np.clip(background + noise, 0, 255).astype(np.uint8))
        mask = Image.new("L", (w, h), 0)
        draw, pen = ImageDraw.Draw(canvas), ImageDraw.Draw(mask)
        placed, kinds = [], []
        for _ in range(int(rng.integers(1, 4))):
            for _attempt in range(20):
                side = int(rng.uniform(0.18, 0.42) * min(w, h))
                x1, y1 = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
                box = [x1, y1, x1 + side, y1 + side]
                if all(overlap(box, other) < 0.15 for other in placed):
                    break
            else:
                continue
            colour = contrasting(rng, background)
            kind = int(rng.integers(0, 3))
            corners = [x1, y1, x1 + side - 1, y1 + side - 1]
            for d, fill in ((draw, colour), (pen, kind + 1)):
                if kind == 0:
                    d.ellipse(corners, fill=fill)
                elif kind == 1:
                    d.rectangle(corners, fill=fill)
                else:
                    d.polygon([(x1, y1 + side - 1), (x1 + side - 1, y1 + side - 1), (x1 + (side - 1) / 2, y1)],
                              fill=fill)
            placed.append(box)
            kinds.append(kind)
        images.append(np.asarray(canvas).transpose(2, 0, 1).copy())
        sizes.append((w, h))
        boxes.append(np.asarray(placed, dtype=np.float32).reshape(-1, 4))
        labels.append(np.asarray(kinds, dtype=np.int64))
        drawn_masks.append(np.asarray(mask))
    found = BoxSet(images, sizes, boxes, labels, list(SHAPES), f"generated shapes ({n} images, seed {seed})")
    return (found, drawn_masks) if masks else found


def overlap(a: list, b: list) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def contrasting(rng, background: np.ndarray) -> tuple:
    while True:
        colour = rng.integers(0, 256, 3)
        if np.abs(colour - background).sum() > 200:
            return tuple(int(c) for c in colour)


RACCOON_SHA256 = "73fb47bb7a6a432d7dc47a4933907c15efa538138575fe7b0274e4f1c6df3642"


def load_raccoon(data_dir: Path, strict: bool) -> BoxSet:
    """The raccoon set (datitran/raccoon_dataset, MIT: 200 photos, one class) from DATA_DIR/raccoon: its folder
    (images/, annotations/), or raccoon.tar.gz, checked and unpacked once into deepworks' cache. Split as its
    README: 160 photos to train, 40 to validate (seeded)."""
    from .builtin import unpacked

    folder = data_dir / "raccoon"
    if not (folder / "annotations").is_dir():
        archive = folder / "raccoon.tar.gz"
        if not archive.is_file():
            raise DataError(f"The raccoon set is not in {folder}. Expected images/ and annotations/ there, or "
                            f"raccoon.tar.gz (a copy of github.com/datitran/raccoon_dataset's images/ and "
                            f"annotations/ folders). Point --data-dir at the folder that holds raccoon/.")
        folder = unpacked(archive, RACCOON_SHA256, "the raccoon set")
    found = read_voc(folder, ["raccoon"], strict)
    order = np.random.default_rng(0).permutation(len(found))
    found.split = {"train": sorted(order[:160].tolist()), "val": sorted(order[160:].tolist())}
    found.description = f"the raccoon set ({data_dir / 'raccoon'}, 200 photos, 160 train / 40 validation)"
    return found


SHAPES_TRAIN = 2000


def shapes_count(source: str) -> int | None:
    """The training images `shapes` (2,000) or `shapes:N` asks for; None for another source."""
    name, _, count = source.partition(":")
    if name != "shapes":
        return None
    return built_in_size(source, count, 20, 100_000, "training images") if count else SHAPES_TRAIN


def shapes_splits(source: str, seed: int) -> dict[str, BoxSet]:
    """The generated shapes: N training images, and 15 % of N (300 for the default 2,000) each to validate and to
    test, each split from its own seed."""
    n = shapes_count(source)
    held = max(20, round(n * 0.15))
    return {"train": make_shapes(n, seed), "val": make_shapes(held, seed + 1), "test": make_shapes(held, seed + 2)}


def read_boxes(source: str, data_dir: Path, strict: bool, classes: list[str] | None = None) -> BoxSet:
    """A detection source by path, or the raccoon set (the shapes are made by `shapes_splits`)."""
    if source == "raccoon":
        return load_raccoon(data_dir, strict)
    path = Path(source)
    if not path.exists():
        raise DataError(f"No such file or folder '{source}'. Expected a Pascal VOC folder, a COCO .json file, a YOLO "
                        f"folder, or a built-in: shapes, raccoon.")
    return READERS[detect_format(path)](path, classes, strict)


def class_names_ok(names: list[str]) -> None:
    bad = [n for n in names if not re.fullmatch(r"[^\x00-\x1f]{1,100}", n)]
    if bad:
        raise DataError(f"Class name {bad[0]!r}: Expected 1 to 100 printable characters.")
