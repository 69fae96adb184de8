"""Every kind of bad image input named in the foundation issue gets a clear message, and good input of any mode loads."""

import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from deepworks.data import load_image_source
from deepworks.data.images import read_csv, read_folder, read_npz
from deepworks.errors import DataError
from deepworks.tasks.image import DataWarning


def png_header_only(path, width, height):
    """A tiny PNG whose header claims width x height pixels (the shape of a decompression bomb)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_folder_of_mixed_sizes_and_modes_loads_as_grey(image_folder):
    images = read_folder(image_folder, 28)
    assert images.x.shape == (60, 1, 28, 28)  # all pictures are grey in content, whatever their mode
    assert images.classes == ["hbar", "square", "vbar"]
    assert np.bincount(images.y).tolist() == [20, 20, 20]


def test_colour_images_stay_colour(tmp_path):
    for cls, color in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
        (tmp_path / "c" / cls).mkdir(parents=True)
        Image.new("RGB", (50, 30), color).save(tmp_path / "c" / cls / "a.jpg")
        Image.new("CMYK", (20, 20), (0, 0, 0, 0)).save(tmp_path / "c" / cls / "b.jpg")
    images = read_folder(tmp_path / "c", 16)
    assert images.x.shape == (4, 3, 16, 16)


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match=r"No such folder '.*nowhere'\. Pass a folder with one sub-folder per class"):
        load_image_source(str(tmp_path / "nowhere"), 28, None)


def test_empty_folder_and_loose_files(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"Received: 0 sub-folders, 0 loose file"):
        read_folder(tmp_path / "empty", 28)
    for i in range(12):
        Image.new("L", (8, 8)).save(tmp_path / "empty" / f"{i}.png")
    with pytest.raises(DataError, match=r"Expected a folder with one sub-folder per class in '.*empty/'\. "
                                        r"Received: 0 sub-folders, 12 loose file\(s\)"):
        read_folder(tmp_path / "empty", 28)


def test_class_folder_without_images(image_folder):
    (image_folder / "dogs").mkdir()
    (image_folder / "dogs" / "notes.txt").write_text("no pictures here")
    with pytest.raises(DataError, match=r"Class folder\(s\) '.*dogs' hold no images .* Add images to them or remove them"):
        read_folder(image_folder, 28)


def test_only_one_class(tmp_path):
    (tmp_path / "one" / "cats").mkdir(parents=True)
    Image.new("L", (8, 8)).save(tmp_path / "one" / "cats" / "a.png")
    with pytest.raises(DataError, match=r"only one class \('cats'\).*at least two"):
        read_folder(tmp_path / "one", 28)


def test_unreadable_files_are_skipped_with_one_warning_or_stop_when_strict(image_folder):
    bad = image_folder / "hbar"
    (bad / "zero.png").write_bytes(b"")
    good = (image_folder / "vbar" / "0.png").read_bytes()
    (bad / "truncated.png").write_bytes(good[: len(good) // 2])
    (bad / "text.jpg").write_text("this is not a picture")
    png_header_only(bad / "bomb.png", 40000, 40000)
    (bad / ".DS_Store").write_bytes(b"\x00\x01junk")
    (bad / "._0.png").write_bytes(b"mac resource fork")
    images = read_folder(image_folder, 28)
    assert len(images.x) == 60  # the four bad files are skipped, the hidden ones ignored
    reasons = dict(images.skipped)
    assert sorted(p.split("/")[-1] for p in reasons) == ["bomb.png", "text.jpg", "truncated.png", "zero.png"]
    assert "empty file" in reasons[str(bad / "zero.png")]
    assert "not an image" in reasons[str(bad / "text.jpg")]
    assert "truncated" in reasons[str(bad / "truncated.png")]
    assert "too large" in reasons[str(bad / "bomb.png")] and "decompression bomb" in reasons[str(bad / "bomb.png")]
    with pytest.raises(DataError, match=r"4 file\(s\) could not be read as images:(.|\n)*zero.png(.|\n)*drop --strict"):
        read_folder(image_folder, 28, strict=True)


def test_skipped_files_warn_once_through_the_task(image_folder):
    from deepworks.config import Config
    from deepworks.tasks.image import ImageClassification

    (image_folder / "hbar" / "zero.png").write_bytes(b"")
    (image_folder / "vbar" / "bad.png").write_text("nope")
    cfg = Config()
    cfg.data.source = str(image_folder)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepared = ImageClassification(cfg).prepare(progress=False)
    messages = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert len(messages) == 1 and "zero.png" in messages[0] and "bad.png" in messages[0] and "--strict" in messages[0]
    assert prepared.notes == messages  # the report lists the same files


def test_train_test_layout_is_kept(tmp_path, image_folder):
    root = tmp_path / "split"
    for split in ("train", "test"):
        for cls in ("hbar", "vbar"):
            (root / split / cls).mkdir(parents=True)
            for f in sorted((image_folder / cls).iterdir())[: 10 if split == "train" else 4]:
                (root / split / cls / f.name).write_bytes(f.read_bytes())
    images = read_folder(root, 28)
    assert len(images.x) == 20 and len(images.x_test) == 8


def test_csv_naming_missing_files(tmp_path, image_folder):
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label\nphotos/hbar/0.png,h\nphotos/hbar/missing.png,h\nphotos/vbar/gone.png,v\n")
    with pytest.raises(DataError, match=r"2 file\(s\) named in '.*labels.csv' do not exist: photos/hbar/missing.png "
                                        r"\(line 3\), photos/vbar/gone.png \(line 4\)\. Paths are relative to the CSV's folder"):
        read_csv(csv, 28)


def test_csv_reads_and_checks_columns(tmp_path, image_folder):
    csv = tmp_path / "labels.csv"
    rows = [f"photos/{c}/{i}.png,{c}" for c in ("hbar", "vbar") for i in range(5)]
    csv.write_text("\n".join(rows) + "\n")
    images = read_csv(csv, 28)
    assert len(images.x) == 10 and images.classes == ["hbar", "vbar"]
    csv.write_text("photos/hbar/0.png,hbar,extra\n")
    with pytest.raises(DataError, match=r"line\(s\) \[1\] do not have exactly two columns"):
        read_csv(csv, 28)


def test_npz_with_mismatched_shapes(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((100, 28, 28), np.uint8), y=np.zeros(90, np.int64))
    with pytest.raises(DataError, match=r"'.*d.npz': x has 100 images but y has 90 labels"):
        read_npz(tmp_path / "d.npz")
    np.savez(tmp_path / "e.npz", a=np.zeros(3), b=np.zeros(3))
    with pytest.raises(DataError, match=r"must hold arrays 'x' \(images\) and 'y' \(labels\)\. Found: a, b"):
        read_npz(tmp_path / "e.npz")
    np.savez(tmp_path / "f.npz", x=np.zeros((4, 5, 6, 7, 8)), y=np.zeros(4, np.int64))
    with pytest.raises(DataError, match=r"has shape \(4, 5, 6, 7, 8\)\. Expected \(N, H, W\)"):
        read_npz(tmp_path / "f.npz")


def test_npz_layouts_and_float_ranges(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "hwc.npz", x=rng.random((6, 10, 10, 3)), y=np.arange(6) % 2, class_names=np.array(["a", "b"]))
    images = read_npz(tmp_path / "hwc.npz")
    assert images.x.shape == (6, 3, 10, 10) and images.x.dtype == np.uint8 and images.classes == ["a", "b"]


def test_unknown_source_and_wrong_file_kind(tmp_path):
    with pytest.raises(DataError, match=r"No such folder 'imagenet'.*built-in dataset: digits, mnist"):
        load_image_source("imagenet", 28, None)
    with pytest.raises(DataError, match="'data.bin' is neither a file, a folder nor a built-in dataset"):
        load_image_source("data.bin", 28, None)
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match="expected a folder, a .csv or an .npz"):
        load_image_source(str(tmp_path / "notes.txt"), 28, None)


def test_augmentation_crops_and_flips_each_image_on_its_own():
    import torch

    from deepworks.tasks.image import augment

    torch.manual_seed(0)
    x = torch.zeros(64, 1, 16, 16, dtype=torch.uint8)
    x[:, :, 4:8, 2:5] = 255  # an off-centre block
    flipped = augment(x, "flip")
    mirrored = (flipped == x.flip(3)).flatten(1).all(1)
    assert 16 < int(mirrored.sum()) < 48  # about half of them, each image decided on its own
    assert torch.equal(flipped[~mirrored], x[~mirrored])
    cropped = augment(x, "crop")
    assert cropped.shape == x.shape and cropped.dtype == torch.uint8
    assert (cropped != x).flatten(1).any(1).float().mean() > 0.7  # most are shifted
    assert set(cropped.sum(dim=(1, 2, 3)).tolist()) <= {255 * n for n in range(13)}  # shifted, not blurred


def test_cifar10_from_jpeg_tarballs(tmp_path):
    import io
    import tarfile

    from deepworks.data.builtin import CIFAR_CLASSES, load_cifar10

    folder = tmp_path / "cifar10_jpeg"
    folder.mkdir()
    for split, per_class in (("train", 3), ("test", 1)):
        with tarfile.open(folder / f"{split}.tar.gz", "w:gz") as tar:
            for c, name in enumerate(CIFAR_CLASSES):
                for i in range(per_class):
                    buf = io.BytesIO()
                    Image.new("RGB", (32, 32), (c * 25, 100, 200)).save(buf, "JPEG", quality=95)
                    info = tarfile.TarInfo(f"{split}/{name}/{i:04d}.jpg")
                    info.size = len(buf.getvalue())
                    tar.addfile(info, io.BytesIO(buf.getvalue()))
    images = load_cifar10(tmp_path, download=False)
    assert images.x.shape == (30, 3, 32, 32) and images.x_test.shape == (10, 3, 32, 32)
    assert np.bincount(images.y).tolist() == [3] * 10 and images.classes[3] == "cat"
    assert abs(int(images.x[images.y == 4][0, 0].mean()) - 100) < 20  # the red channel of class 4 (deer) is 4 * 25
