"""Segmentation data: images with a mask each (a class per pixel), read into a `MaskSet` (data/masks.py).

- a folder with `images/` and `masks/` matched by name (cat.jpg and cat.png), masks as palette, index or RGB PNGs,
  with an optional `classes.txt` naming the classes (and their colours, for RGB masks);
- a Pascal VOC folder (`JPEGImages/`, `SegmentationClass/`, and `ImageSets/Segmentation/train.txt` and `val.txt`
  for its split), with VOC's 21 class names unless a classes.txt says otherwise;
- a COCO JSON file whose annotations have polygons or RLE (pycocotools draws them), class 0 the background;
- built-ins: `shapes-seg` (the detection shapes, a mask drawn with each) and `isbi2012` (the ISBI 2012 membranes,
  research use only, from the data folder).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .box_records import Problems, probe_or_skip
from .images import IMAGE_EXTENSIONS, is_hidden
from .masks import (IGNORE, LOST, MAX_CLASSES, MAX_COLOURS, MaskSet, binary_looking, check_indices,
                    classes_from_colours, colours_to_indices, mask_values, open_mask, palette_of, read_class_file)

VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
MASK_EXTENSIONS = (".png", ".bmp", ".gif", ".tif", ".tiff")


def read_masks(source: str, data_dir: Path, strict: bool, classes: list[str] | None = None,
               colours: list | None = None) -> MaskSet:
    """A segmentation source by path, or the ISBI 2012 membranes (the shapes are made by `shapes_seg_splits`).
    `classes` and `colours`: a saved run's class map, which its data is read by again."""
    if source == "isbi2012":
        return load_isbi(data_dir)
    path = Path(source)
    if not path.exists():
        raise DataError(f"No such file or folder '{source}'. Expected a folder with images/ and masks/, a Pascal VOC "
                        f"folder, a COCO .json file, or a built-in: shapes-seg, isbi2012.")
    if path.is_file():
        if path.suffix.lower() != ".json":
            raise DataError(f"'{path}' is a file. Expected a COCO .json file with polygons or RLE, or a folder.")
        from .coco_masks import read_coco_masks

        return read_coco_masks(path, classes, strict)
    given = (list(classes), [tuple(c) for c in colours] if colours else None) if classes is not None else None
    if (path / "SegmentationClass").is_dir():
        return read_voc_masks(path, given, strict)
    if (path / "images").is_dir() and (path / "masks").is_dir():
        return read_mask_folder(path, given, strict)
    raise DataError(f"'{path}' holds neither images/ and masks/ folders nor Pascal VOC's SegmentationClass/. Expected "
                    f"images/NAME.jpg beside masks/NAME.png (a class index per pixel), or give a COCO .json file.")


def files_by_stem(folder: Path, extensions: tuple) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir())
            if p.is_file() and p.suffix.lower() in extensions and not is_hidden(p.name)}


def read_mask_folder(root: Path, given: tuple | None, strict: bool) -> MaskSet:
    """images/ and masks/, paired by file name without its extension; either one alone is a problem."""
    problems = Problems(strict, LOST)
    refuse_lossy(root / "masks")
    images, masks = files_by_stem(root / "images", IMAGE_EXTENSIONS), files_by_stem(root / "masks", MASK_EXTENSIONS)
    for stem in sorted(set(images) - set(masks)):
        problems.skip(f"{images[stem]}: no mask. Expected {root / 'masks' / stem}.png; add it, or remove the image.")
    for stem in sorted(set(masks) - set(images)):
        problems.skip(f"{masks[stem]}: no image of that name in {root / 'images'}; add it, or remove the mask.")
    pairs = [(images[s], masks[s]) for s in sorted(set(images) & set(masks))]
    names, colours = given or class_file(root)
    found = decode_pairs(pairs, names, colours, problems, voc=False, what=str(root))
    found.description = f"the folder {root} ({len(found)} images with masks)"
    found.problems = problems.finish(str(root))
    return found


def refuse_lossy(folder: Path) -> None:
    """JPEG (or WebP) masks: refused at once, since lossy compression blurs the class values at every edge."""
    lossy = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".webp") and
                   not is_hidden(p.name))
    if lossy:
        raise DataError(f"{lossy[0]}{f' and {len(lossy) - 1} more' if len(lossy) > 1 else ''}: JPEG masks. Expected "
                        f"PNG masks: JPEG's lossy compression changes the class values along every edge. Save the "
                        f"masks as PNG from the program that drew them.")


def read_voc_masks(root: Path, given: tuple | None, strict: bool) -> MaskSet:
    """Pascal VOC's segmentation layout: a mask per image that has one (most of JPEGImages has none, and is not
    listed), split by ImageSets/Segmentation/train.txt and val.txt when they are there (val also tests)."""
    problems = Problems(strict, LOST)
    images, masks = files_by_stem(root / "JPEGImages", IMAGE_EXTENSIONS) if (root / "JPEGImages").is_dir() else {}, \
        files_by_stem(root / "SegmentationClass", MASK_EXTENSIONS)
    for stem in sorted(set(masks) - set(images)):
        problems.skip(f"{masks[stem]}: no image {root / 'JPEGImages' / stem}.jpg; add it, or remove the mask.")
    stems = sorted(set(images) & set(masks))
    names, colours = given or class_file(root)
    found = decode_pairs([(images[s], masks[s]) for s in stems], names, colours, problems, voc=True, what=str(root))
    found.split = voc_split(root, [Path(p).stem for p in found.images])
    found.description = f"the Pascal VOC folder {root} ({len(found)} images with masks)"
    found.problems = problems.finish(str(root))
    return found


def voc_split(root: Path, stems: list[str]) -> dict | None:
    lists = root / "ImageSets" / "Segmentation"
    if not ((lists / "train.txt").is_file() and (lists / "val.txt").is_file()):
        return None
    where = {s: i for i, s in enumerate(stems)}
    split = {k: [where[s] for s in (lists / f"{k}.txt").read_text().split() if s in where] for k in ("train", "val")}
    return split if split["train"] and split["val"] else None


def class_file(root: Path) -> tuple[list[str] | None, list | None]:
    """(names, colours) from ROOT/classes.txt, else (None, None)."""
    path = root / "classes.txt"
    return read_class_file(path) if path.is_file() else (None, None)


def decode_pairs(pairs: list, names: list[str] | None, colours: list | None, problems: Problems,
                 voc: bool, what: str) -> MaskSet:
    """(image path, mask path) pairs -> a MaskSet: each mask opened and checked against its image's size, then all of
    them turned into class indices by one class map (`index_masks`, `rgb_masks`)."""
    kept = []
    for image, mask_path in pairs:
        size = probe_or_skip(image, problems)
        im = open_mask(mask_path, problems) if size is not None else None
        if im is None:
            continue
        if im.size != size:
            problems.skip(f"{mask_path}: {im.size[0]}x{im.size[1]}, but its image {image.name} is {size[0]}x{size[1]}. "
                          f"Expected a mask the image's size: resize it with nearest neighbour (never smoothing), "
                          f"or remove the pair.")
            continue
        kind, values = mask_values(im)
        if kind == "unknown":
            problems.skip(f"{mask_path}: Expected a palette, greyscale (8 or 16 bit) or RGB mask. Received: mode "
                          f"{im.mode}. Save it as a PNG of class indices.")
            continue
        if kind == "rgb" and (values[..., 0] == values[..., 1]).all() and (values[..., 1] == values[..., 2]).all():
            kind, values = "index", values[..., 0]  # an index mask saved as grey RGB
        kept.append((image, mask_path, kind, values, im if not kept else None))  # the first's palette names colours
    if not kept:
        problems.finish(what)
        raise DataError("No image with a usable mask. Expected images/NAME.jpg with masks/NAME.png of the same size.")
    kinds = {k for _, _, k, _, _ in kept}
    if kinds == {"index", "rgb"}:
        raise DataError(f"Some masks are colour (RGB) masks and some hold class indices, for example "
                        f"{next(m for _, m, k, _, _ in kept if k == 'rgb')} and "
                        f"{next(m for _, m, k, _, _ in kept if k == 'index')}. Expected one kind: save them all as "
                        f"index (or palette) PNGs, or all in the colours of classes.txt.")
    if kinds == {"rgb"}:
        return rgb_masks(kept, names, colours, problems)
    return index_masks(kept, names, colours, problems, voc)


def index_masks(kept: list, names, colours, problems: Problems, voc: bool) -> MaskSet:
    """Index masks: values are classes, except a set of only 0 and 255 (a binary mask: 255 is the object)."""
    values = [v for _, _, _, v, _ in kept]
    binary = binary_looking(values) and (names is None or len(names) == 2)
    if binary:
        values = [(v // 255).astype(np.uint8) for v in values]
        names = names or ["background", "object"]
    if names is None:
        top = max(int(np.where(v == IGNORE, -1, v.astype(np.int64)).max()) for v in values)
        if top >= MAX_CLASSES:
            where = next(m for (_, m, *_), v in zip(kept, values) if (np.where(v == IGNORE, -1, v) == top).any())
            raise DataError(f"{where}: Expected class indices 0 to {MAX_CLASSES - 1} ({IGNORE} for pixels left out). "
                            f"Received: {top}. Save the masks with one value per class, counting from 0.")
        names = list(VOC_CLASSES) if voc and top < len(VOC_CLASSES) else [f"class {k}" for k in range(top + 1)]
    images, masks = [], []
    for (image, mask_path, *_), v in zip(kept, values):
        checked = check_indices(v, len(names), str(mask_path), problems)
        if checked is not None:
            images.append(image)
            masks.append(checked)
    return MaskSet(images, masks, names, "", colours=colours or palette_of(kept[0][4], len(names)))


def rgb_masks(kept: list, names, colours, problems: Problems) -> MaskSet:
    """Colour masks: each colour of the class map (classes.txt's, else the colours that cover a share of some mask)
    is a class; any other colour (anti-aliased edges) is left out of training and scoring, counted in one problem."""
    if colours is None:
        if names is not None:
            raise DataError(f"The masks are colour (RGB) masks, and the class map names {len(names)} classes without "
                            f"their colours. Expected a colour on each line of classes.txt: 'road 128 64 128'.")
        colours = classes_from_colours([v for _, _, _, v, _ in kept])
        if len(colours) > MAX_COLOURS:
            raise DataError(f"The colour masks hold {len(colours)} colours that each cover part of a mask. Expected at "
                            f"most {MAX_COLOURS} classes: are photos in masks/? Save one flat colour per class, or "
                            f"index PNGs.")
        names = ["#%02x%02x%02x" % c for c in colours]
    images, masks, stray, examples, files = [], [], 0, {}, 0
    for image, mask_path, _, values, _ in kept:
        m, n, found = colours_to_indices(values, colours)
        images.append(image)
        masks.append(m)
        stray, files = stray + n, files + (n > 0)
        for c, k in found.items():
            examples[c] = examples.get(c, 0) + k
    if stray:
        total = sum(m.size for m in masks)
        common = ", ".join(f"rgb{c} {k:,}" for c, k in sorted(examples.items(), key=lambda t: -t[1])[:3])
        problems.skip(f"{files} mask(s) hold {stray:,} pixels ({stray / total:.2%}) of colours that are no class's "
                      f"nor a shade of one (for example {common}), most likely anti-aliased edges between two: they "
                      f"are left out of training and scoring. Save masks without smoothing (nearest neighbour) or "
                      f"as index PNGs.")
    return MaskSet(images, masks, names, "", colours=list(colours))


# --- built-ins --------------------------------------------------------------------------------------------------------
SHAPES_SEG_TRAIN = 1000
SHAPES_SEG_SIZE = 96
ISBI_SHA256 = "7ccdc0094e5c3f49edca2272ade7d4196a0c6051b7e135695d2b6cbdfbc098d1"
ISBI_CLASSES = ["membrane", "cell"]


def shapes_seg_count(source: str) -> int | None:
    """The training images `shapes-seg` (1,000) or `shapes-seg:N` asks for; None for another source."""
    from .builtin import built_in_size

    name, _, count = source.partition(":")
    if name != "shapes-seg":
        return None
    return built_in_size(source, count, 8, 100_000, "training images") if count else SHAPES_SEG_TRAIN


def shapes_seg_splits(source: str, seed: int) -> dict[str, MaskSet]:
    """The detection shapes at 96x96 with a mask each (0 background, then circle, square, triangle): N to train, 15 %
    of N each to validate and to test (at least 8), each split from its own seed."""
    from .detection import SHAPES, make_shapes

    n = shapes_seg_count(source)
    held = max(8, round(n * 0.15))
    parts = {}
    for k, (count, s) in {"train": (n, seed), "val": (held, seed + 1), "test": (held, seed + 2)}.items():
        boxes, masks = make_shapes(count, s, SHAPES_SEG_SIZE, SHAPES_SEG_SIZE, masks=True)
        parts[k] = MaskSet(boxes.images, masks, ["background", *SHAPES], f"generated shapes with masks ({n} to train, "
                           f"seed {seed})")
    return parts


def load_isbi(data_dir: Path) -> MaskSet:
    """The ISBI 2012 membranes from DATA_DIR/isbi2012_em/isbi2012_train.tar.gz (checked, unpacked once): 30 slices of
    512x512, membrane (0) or cell (1) per pixel; slices 0 to 24 train, 25 to 29 validate and test (the challenge's
    test masks were never released)."""
    from PIL import Image

    from .builtin import unpacked

    archive = data_dir / "isbi2012_em" / "isbi2012_train.tar.gz"
    if not archive.is_file():
        raise DataError(f"The ISBI 2012 membranes are not in {archive.parent}. Expected isbi2012_train.tar.gz there "
                        f"(the challenge's 30 training slices and labels; research use only). Point --data-dir at "
                        f"the folder that holds isbi2012_em/.")
    root = unpacked(archive, ISBI_SHA256, "the ISBI 2012 membranes") / "isbi2012" / "train"
    images, masks = [], []
    for i in range(30):
        images.append(root / "image" / f"{i}.png")
        with Image.open(root / "label" / f"{i}.png") as im:
            masks.append((np.asarray(im.convert("L")) > 127).astype(np.uint8))
    found = MaskSet(images, masks, list(ISBI_CLASSES), f"the ISBI 2012 membranes ({archive}, 30 slices of 512x512, "
                    f"25 train / 5 validation and test; research use only)", colours=[(255, 0, 255), (0, 0, 0)])
    found.split = {"train": list(range(25)), "val": list(range(25, 30))}
    return found
