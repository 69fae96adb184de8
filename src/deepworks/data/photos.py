"""Clean photos for the tasks that learn to restore or transform images: no labels, the photos are the targets.

Sources (`read_photos`):
- a folder of images, searched recursively (JPEG, PNG, BMP, WebP, TIFF, GIF): split into train, validation and test
  by image (seeded), or by train/ val/ test/ sub-folders when it has them;
- `photos` (the default): colour photos that ship inside scikit-image and scikit-learn (an astronaut, a rocket, a
  motorcycle, a flower ...), so that a run needs no data at all: two are the test images, one validates;
- `sr-benchmarks`: super-resolution's standard sets from DATA_DIR/sr_benchmarks (T91 to train, Set5 to validate,
  Set14 to test; research use only, never shipped);
- `cifar10`: CIFAR-10's 32 x 32 photos (its test split tests, at most TEST_CAP of them).

Every image becomes uint8 RGB (H, W, 3): 16-bit images are stretched into 8 bits, palettes expanded, and transparent
pixels laid on white. Unreadable files are skipped with one warning (--strict stops on them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError

SR_SHA256 = {"set5_set14.tar.gz": "8d4de4aa6a6a1d45897b4b21938832b12229908f2a69afb46d5bbc84fe5a2449",
             "t91.tar.gz": "a911a5e6a4f543e075ceec43e958dd9b1376325e0f5bde260b1924192e804edc"}
SHIPPED = {"train": ["skimage:astronaut.png", "skimage:rocket.jpg", "skimage:motorcycle_left.png",
                     "skimage:motorcycle_right.png", "skimage:ihc.png", "sklearn:flower.jpg"],
           "val": ["skimage:chelsea.png"], "test": ["skimage:coffee.png", "sklearn:china.jpg"]}
MAX_TOTAL_PIXELS = 300_000_000  # photos held in memory at most (900 MB as uint8 RGB)
TEST_CAP = 1000                  # CIFAR-10 test images scored at most
BUILTINS = ("photos", "sr-benchmarks", "cifar10")


@dataclass
class PhotoSet:
    """uint8 RGB photos (H, W, 3) of any sizes with their names, the source's own split (None: split by seed),
    and the files that could not be read."""
    images: list
    names: list[str]
    description: str
    split: dict | None = None
    problems: list[str] = field(default_factory=list)

    def take(self, index) -> "PhotoSet":
        return PhotoSet([self.images[i] for i in index], [self.names[i] for i in index], self.description)

    def __len__(self) -> int:
        return len(self.images)


def builtin_name(source: str) -> str:
    return source.partition(":")[0]


def read_photos(source: str, data_dir: Path, strict: bool = False) -> PhotoSet:
    """The photos `source` names (a built-in, or a folder), as uint8 RGB arrays."""
    name = builtin_name(source)
    if name == "photos":
        return shipped_photos()
    if name == "sr-benchmarks":
        return sr_benchmarks(data_dir)
    if name == "cifar10":
        return cifar_photos(data_dir)
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"--data {source}: no such file or folder. Expected a folder of photos, or a built-in: "
                        f"{', '.join(BUILTINS)}.")
    if not path.is_dir():
        raise DataError(f"--data {source} is a file. Expected a folder of photos (JPEG, PNG, ...); their clean pixels "
                        f"are what the model learns to make.")
    return folder_photos(path, strict)


def decoded(path: Path) -> np.ndarray:
    """One image file as uint8 RGB (H, W, 3); UnreadableImage when it cannot be."""
    from .decode import open_image

    with open_image(path) as im:
        return rgb_array(im)


def rgb_array(im) -> np.ndarray:
    """A PIL image of any mode as uint8 RGB (H, W, 3): 16-bit stretched, palette expanded, alpha laid on white."""
    from .decode import UnreadableImage, on_white

    try:
        return np.asarray(on_white(im), dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise UnreadableImage(f"corrupt or truncated ({err})") from None


def folder_photos(root: Path, strict: bool) -> PhotoSet:
    from .images import find_image_files, unreadable_message
    from .decode import UnreadableImage

    from .images import SPLIT_NAMES

    layout = {SPLIT_NAMES[p.name.lower()]: p for p in root.iterdir() if p.is_dir() and p.name.lower() in SPLIT_NAMES}
    files, broken = find_image_files(root)
    if not files:
        raise DataError(f"{root}: no images found. Expected a folder of photos (JPEG, PNG, BMP, WebP or TIFF), in "
                        f"sub-folders or not.")
    images, names, skipped, total = [], [], list(broken), 0
    for f in files:
        try:
            a = decoded(f)
        except UnreadableImage as err:
            skipped.append((str(f), str(err)))
            continue
        total += a.shape[0] * a.shape[1]
        if total > MAX_TOTAL_PIXELS:
            raise DataError(f"{root}: Expected at most {MAX_TOTAL_PIXELS:,} pixels of photos in memory. Received more "
                            f"by {f.name}; train on a folder of fewer or smaller photos.")
        images.append(a)
        names.append(str(f))
    if skipped and (strict or not images):
        raise DataError(unreadable_message(skipped, strict, none_left=not images))
    split = None
    problems = [unreadable_message(skipped)] if skipped else []
    if layout:  # train/ val/ test/ (valid/, validation/): photos outside them train unless train/ is there
        split = {k: [i for i, n in enumerate(names) if Path(n).is_relative_to(p)] for k, p in layout.items()}
        outside = [i for i, n in enumerate(names) if not any(Path(n).is_relative_to(p) for p in layout.values())]
        if "train" not in layout:
            split["train"] = outside
        elif outside:
            problems.append(f"{len(outside)} photo(s) outside {', '.join(p.name + '/' for p in layout.values())} "
                            f"were left out ({names[outside[0]]} ...): move them into one of those folders.")
    return PhotoSet(images, names, str(root), split, problems)


def shipped_photos() -> PhotoSet:
    """The colour photos inside scikit-image's and scikit-learn's packages, read where they are installed."""
    import sklearn.datasets
    import skimage.data

    homes = {"skimage": Path(skimage.data.__file__).parent,
             "sklearn": Path(sklearn.datasets.__file__).parent / "images"}
    order = [n for k in ("train", "val", "test") for n in SHIPPED[k]]
    images = []
    for name in order:
        package, _, file = name.partition(":")
        path = homes[package] / file
        if not path.is_file():
            raise DataError(f"The built-in photos need {path}, which this {package} install lacks. Reinstall "
                            f"scikit-image and scikit-learn, or give --data a folder of photos.")
        images.append(decoded(path))
    sizes = {k: len(v) for k, v in SHIPPED.items()}
    split = {"train": list(range(sizes["train"])), "val": [sizes["train"]],
             "test": list(range(sizes["train"] + 1, len(order)))}
    return PhotoSet(images, order, "photos (shipped with scikit-image and scikit-learn)", split)


def sr_benchmarks(data_dir: Path) -> PhotoSet:
    """T91 (train), Set5 (validation) and Set14 (test) from DATA_DIR/sr_benchmarks, checked and unpacked once."""
    from .builtin import unpacked

    folder = data_dir / "sr_benchmarks"
    missing = [f for f in SR_SHA256 if not (folder / f).is_file()]
    if missing:
        raise DataError(f"The super-resolution benchmarks are not in {folder}. Expected {', '.join(missing)} there "
                        f"(research use only, so never downloaded by deepworks); --data-dir names the folder that "
                        f"holds sr_benchmarks/.")
    tests = unpacked(folder / "set5_set14.tar.gz", SR_SHA256["set5_set14.tar.gz"], "Set5 and Set14")
    train = unpacked(folder / "t91.tar.gz", SR_SHA256["t91.tar.gz"], "T91")
    parts = {"train": sorted((train / "T91").glob("*.png")), "val": sorted((tests / "Set5").glob("*.png")),
             "test": sorted((tests / "Set14").glob("*.png"))}
    files = [f for k in ("train", "val", "test") for f in parts[k]]
    n_train, n_val = len(parts["train"]), len(parts["val"])
    split = {"train": list(range(n_train)), "val": list(range(n_train, n_train + n_val)),
             "test": list(range(n_train + n_val, len(files)))}
    return PhotoSet([decoded(f) for f in files], [str(f) for f in files], "sr-benchmarks (T91 / Set5 / Set14)", split)


def cifar_photos(data_dir: Path) -> PhotoSet:
    from .builtin import load_builtin

    found = load_builtin("cifar10", data_dir)
    train = [a.transpose(1, 2, 0) for a in found.x]
    test = [a.transpose(1, 2, 0) for a in found.x_test[:TEST_CAP]]
    names = [f"cifar10 train {i}" for i in range(len(train))] + [f"cifar10 test {i}" for i in range(len(test))]
    return PhotoSet(train + test, names, "CIFAR-10 (32 x 32 photos)",
                    {"train": list(range(len(train))), "test": list(range(len(train), len(names)))})


def is_grey(a: np.ndarray, tolerance: int = 3) -> bool:
    """True when every pixel has R = G = B (within JPEG noise)."""
    return bool(np.abs(a[..., 0].astype(np.int16) - a[..., 1]).max() <= tolerance
                and np.abs(a[..., 1].astype(np.int16) - a[..., 2]).max() <= tolerance)

