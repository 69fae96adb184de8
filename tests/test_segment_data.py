"""Segmentation data: each reader (images/ + masks/, Pascal VOC, COCO polygons and RLE, the built-ins) gives the
class of every pixel, and each kind of bad mask is named with its fix, skipped in one warning, or refused with
--strict. No training here."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from PIL import Image, ImageDraw

from deepworks.data.arrays import DataWarning
from deepworks.data.coco_masks import unpacked_counts
from deepworks.data.masks import IGNORE, empty_class_note, letterbox_mask
from deepworks.data.segmentation import read_masks, shapes_seg_splits
from deepworks.errors import DataError

from conftest import shared


def square_pair(size=(40, 30), box=(10, 5, 25, 20), value=1):
    """An RGB image with a white square, and its index mask (value inside the square, 0 elsewhere)."""
    image = Image.new("RGB", size, (20, 40, 60))
    ImageDraw.Draw(image).rectangle(box, fill=(255, 255, 255))
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rectangle(box, fill=value)
    return image, mask


def folder(tmp_path, pairs: dict, classes: str | None = None):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for name, (image, mask) in pairs.items():
        if image is not None:
            image.save(tmp_path / "images" / f"{name}.png")
        if mask is not None:
            mask.save(tmp_path / "masks" / f"{name}.png")
    if classes is not None:
        (tmp_path / "classes.txt").write_text(classes)
    return tmp_path


def read(path, strict=False):
    return read_masks(str(path), path, strict)


def test_index_masks_with_classes_txt_give_each_pixel_its_class(tmp_path):
    root = folder(tmp_path, {"a": square_pair(value=2), "b": square_pair(value=1)}, "sky\nroad\ncar\n")
    found = read(root)
    assert found.classes == ["sky", "road", "car"] and len(found) == 2
    a = found.masks[0]
    assert a.shape == (30, 40) and a[10, 15] == 2 and a[0, 0] == 0 and found.masks[1][10, 15] == 1


def test_palette_masks_keep_their_indices_and_colours(tmp_path):
    image, mask = square_pair(value=1)
    p = mask.convert("P")
    p.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    root = folder(tmp_path, {"a": (image, p), "b": (image, p)})
    found = read(root)
    assert found.classes == ["class 0", "class 1"] and found.colours[:2] == [(0, 0, 0), (200, 10, 10)]
    assert found.masks[0][10, 15] == 1


def test_binary_masks_of_0_and_255_are_background_and_object(tmp_path):
    root = folder(tmp_path, {"a": square_pair(value=255), "b": square_pair(value=255)})
    found = read(root)
    assert found.classes == ["background", "object"] and set(np.unique(found.masks[0])) == {0, 1}


def test_rgb_masks_with_anti_aliased_edges_are_counted_and_left_out(tmp_path):
    image, _ = square_pair()
    mask = Image.new("RGB", (40, 30), (0, 0, 0))
    ImageDraw.Draw(mask).rectangle((10, 5, 25, 20), fill=(128, 64, 128))
    for x in range(10, 26):  # a smoothed edge: colours between the two
        mask.putpixel((x, 4), (64, 32, 64))
    root = folder(tmp_path, {"a": (image, mask), "b": (image, mask)}, "background 0 0 0\nroad 128 64 128\n")
    with pytest.warns(DataWarning, match=r"2 mask\(s\) hold 32 pixels .* colours that are no class's nor a shade .*"
                                         r"rgb\(64, 32, 64\) 32.*anti-aliased.*nearest neighbour"):
        found = read(root)
    assert found.masks[0][4, 15] == IGNORE and found.masks[0][10, 15] == 1 and found.masks[0][0, 0] == 0
    with pytest.raises(DataError, match="--strict"):
        read(root, strict=True)


def test_rgb_masks_without_colours_take_the_colours_that_cover_them_and_their_shades(tmp_path):
    image, _ = square_pair()
    mask = Image.new("RGB", (40, 30), (0, 0, 0))
    ImageDraw.Draw(mask).rectangle((10, 5, 25, 20), fill=(0, 200, 0))
    ImageDraw.Draw(mask).rectangle((10, 5, 25, 8), fill=(0, 180, 10))  # a smoothed band: a shade, not a class
    mask.putpixel((0, 0), (20, 0, 3))
    found = read(folder(tmp_path, {"a": (image, mask)}))
    assert found.classes == ["#000000", "#00c800"] and found.masks[0][10, 15] == 1 and found.masks[0][6, 15] == 1
    assert found.masks[0][0, 0] == 0


def test_jpeg_masks_are_refused_with_why(tmp_path):
    image, mask = square_pair(value=1)
    root = folder(tmp_path, {"a": (image, None)})
    mask.save(tmp_path / "masks" / "a.jpg")
    with pytest.raises(DataError, match="a.jpg: JPEG masks. Expected PNG masks: JPEG's lossy compression"):
        read(root)


def test_each_bad_pair_is_named_with_its_fix_in_one_warning(tmp_path):
    good = square_pair(value=1)
    wrong_size = (good[0], good[1].resize((20, 15)))
    outside = square_pair(value=7)
    root = folder(tmp_path, {"a": good, "b": good, "c": wrong_size, "d": outside, "e": (good[0], None),
                             "f": (None, good[1])}, "background\nthing\n")
    with pytest.warns(DataWarning) as caught:
        found = read(root)
    message = "\n".join(str(w.message) for w in caught)
    assert len(found) == 2 and "skipped 4" in message
    assert "c.png: 20x15, but its image c.png is 40x30" in message and "nearest neighbour" in message
    assert "d.png: values 7 are outside the class map (0 to 1" in message and "classes.txt" in message
    assert "e.png: no mask. Expected" in message and "f.png: no image of that name" in message
    with pytest.raises(DataError, match="4 problem"):
        read(root, strict=True)


def test_masks_of_odd_modes_and_values_are_named_not_wrapped(tmp_path):
    image, _ = square_pair()
    wide = Image.fromarray(np.full((30, 40), 300, np.uint16))  # 16 bit: 300 must not become 44
    root = folder(tmp_path, {"a": square_pair(value=1), "b": (image, wide), "c": (image, None), "d": (image, None)},
                  "background\nthing\n")
    Image.fromarray(np.full((30, 40), -5, np.int32), mode="I").save(tmp_path / "masks" / "c.tif")
    Image.new("CMYK", (40, 30)).save(tmp_path / "masks" / "d.tif")
    with pytest.warns(DataWarning) as caught:
        found = read(root)
    message = "\n".join(str(w.message) for w in caught)
    assert len(found) == 1 and "b.png: values 300 are outside the class map" in message
    assert "c.tif: values -5 are outside" in message and "d.tif: Expected a palette, greyscale" in message
    (tmp_path / "classes.txt").unlink()
    for name in "bcd":
        for f in (tmp_path / "masks").glob(f"{name}.*"):
            f.unlink()
    Image.fromarray(np.full((30, 40), 254, np.uint8)).save(tmp_path / "masks" / "a.png")
    with pytest.raises(DataError, match="Expected class indices 0 to 253 .* Received: 254"):
        read(root)


def test_a_16_bit_image_is_stretched_not_clipped_to_white():
    from deepworks.metrics.boxes import letterbox

    a, _ = letterbox(Image.fromarray(np.linspace(1000, 3000, 64 * 64).reshape(64, 64).astype(np.uint16)), 32)
    assert a.min() <= 5 and a.max() >= 250 and len(np.unique(a)) > 100


def test_a_folder_of_neither_layout_and_mixed_masks_are_refused(tmp_path):
    (tmp_path / "photos").mkdir()
    with pytest.raises(DataError, match="neither images/ and masks/ .* SegmentationClass"):
        read(tmp_path)
    image, mask = square_pair(value=1)
    coloured = Image.merge("RGB", [mask.point(lambda v: v * 90), mask, mask])
    (tmp_path / "mixed").mkdir()
    root = folder(tmp_path / "mixed", {"a": (image, mask), "b": (image, coloured)})
    with pytest.raises(DataError, match="Some masks are colour .* one kind"):
        read(root)


def test_voc_layout_reads_its_split_and_its_21_names(tmp_path):
    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "SegmentationClass").mkdir()
    (tmp_path / "ImageSets" / "Segmentation").mkdir(parents=True)
    for name in ("x1", "x2", "x3"):
        image, mask = square_pair(value=15)
        mask.paste(255, (0, 0, 40, 1))  # VOC's void border
        image.save(tmp_path / "JPEGImages" / f"{name}.jpg")
        mask.save(tmp_path / "SegmentationClass" / f"{name}.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "JPEGImages" / "unlabelled.jpg")  # VOC images without masks: not data
    (tmp_path / "ImageSets" / "Segmentation" / "train.txt").write_text("x1\nx3\n")
    (tmp_path / "ImageSets" / "Segmentation" / "val.txt").write_text("x2\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        found = read(tmp_path)
    assert len(found.classes) == 21 and found.classes[15] == "person" and found.split == {"train": [0, 2], "val": [1]}
    assert found.masks[0][0, 5] == IGNORE and found.masks[0][10, 15] == 15


def test_coco_polygons_and_rle_become_masks_and_bad_ones_are_named(tmp_path):
    from pycocotools import mask as coco_mask

    Image.new("RGB", (40, 30)).save(tmp_path / "a.png")
    square = np.zeros((30, 40), np.uint8)
    square[5:10, 30:35] = 1
    code = coco_mask.encode(np.asfortranarray(square))
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
           "categories": [{"id": 3, "name": "cat"}, {"id": 4, "name": "dog"}],
           "annotations": [
               {"id": 1, "image_id": 1, "category_id": 3, "segmentation": [[2, 2, 20, 2, 20, 20, 2, 20]]},
               {"id": 2, "image_id": 1, "category_id": 4, "iscrowd": 0,
                "segmentation": {"size": [30, 40], "counts": code["counts"].decode()}},
               {"id": 3, "image_id": 1, "category_id": 4, "segmentation": [[2, 2, 90, 2, 90, 20]]},
               {"id": 4, "image_id": 1, "category_id": 4, "segmentation": {"size": [30, 40], "counts": "zzzzzz"}},
               {"id": 5, "image_id": 1, "category_id": 4, "segmentation": {"size": [30, 40], "counts": [5, 7]}}]}
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(doc))
    with pytest.warns(DataWarning) as caught:
        found = read_masks(str(path), tmp_path, False)
    message = "\n".join(str(w.message) for w in caught)
    assert found.classes == ["background", "cat", "dog"]
    m = found.masks[0]
    assert m[10, 10] == 1 and m[7, 32] == 2 and m[25, 38] == 0
    assert "annotations[2]: a polygon reaches x 2 to 90" in message and "outside its 40x30 image" in message
    assert "annotations[3]" in message and "annotations[4]: Expected RLE counts" in message


def test_compressed_rle_is_unpacked_as_pycocotools_packs_it():
    from pycocotools import mask as coco_mask

    rng = np.random.default_rng(0)
    for _ in range(20):
        h, w = (int(v) for v in rng.integers(1, 30, 2))
        m = (rng.random((h, w)) < rng.random()).astype(np.uint8)
        counts = unpacked_counts(coco_mask.encode(np.asfortranarray(m))["counts"].decode(), h * w)
        assert sum(counts) == h * w
        assert (coco_mask.decode(coco_mask.frPyObjects({"size": [h, w], "counts": counts}, h, w)) == m).all()
    assert unpacked_counts("0" * 10 + "\x7f", 100) is None and unpacked_counts("P", 100) is None  # bad, unfinished
    assert unpacked_counts("o" * 800_000, 10 ** 9) is None  # a number without end: refused at once, not in hours


def test_letterboxed_masks_keep_classes_and_pad_with_ignore():
    mask = np.zeros((30, 60), np.uint8)
    mask[:, 30:] = 3
    out = letterbox_mask(mask, 32)
    assert out.shape == (32, 32) and set(np.unique(out[:16])) == {0, 3} and (out[16:] == IGNORE).all()


def test_a_class_no_training_mask_shows_is_named():
    masks = [np.zeros((4, 4), np.uint8), np.full((4, 4), 2, np.uint8)]
    note = empty_class_note(["sky", "road", "car"], masks)
    assert note.startswith("No training mask holds a pixel of 'road'") and "remove it from classes.txt" in note
    assert empty_class_note(["sky", "car"], [np.array([[0, 1]], np.uint8)]) is None


def test_shapes_seg_masks_are_the_shapes_drawn():
    parts = shapes_seg_splits("shapes-seg:10", 0)
    train = parts["train"]
    assert len(train) == 10 and len(parts["val"]) == 8 and train.classes[0] == "background"
    image, mask = train.images[0], train.masks[0]
    assert image.shape == (3, 96, 96) and mask.shape == (96, 96) and set(np.unique(mask)) - {0} <= {1, 2, 3}
    inside = image[:, mask > 0].astype(int)
    assert np.abs(inside - np.median(inside, 1, keepdims=True)).max() == 0  # every shape pixel is the shape's colour


def test_isbi2012_reads_30_slices_with_membranes_and_cells():
    data = shared("isbi2012_em", "isbi2012_train.tar.gz").parent.parent
    found = read_masks("isbi2012", data, False)
    assert len(found) == 30 and found.classes == ["membrane", "cell"] and found.split["val"] == [25, 26, 27, 28, 29]
    share = np.mean([m.mean() for m in found.masks])
    assert 0.75 < share < 0.81  # 78 % of the pixels are inside cells


def test_isbi2012_missing_says_where_it_was_looked_for(tmp_path):
    with pytest.raises(DataError, match="isbi2012_train.tar.gz .* research use only"):
        read_masks("isbi2012", tmp_path, False)
