"""Reading a user's images: a folder of class folders, a CSV of path,label, or an .npz of arrays.

Every reader returns an `ImageSet` of uint8 arrays shaped (N, C, H, W). Readers
check what they are given and say what is wrong and how to fix it: a missing
folder, a class folder with no images, a single class, a CSV naming files that
do not exist, arrays whose lengths differ. Files that cannot be decoded (empty,
truncated, not an image, a decompression bomb) are skipped and listed in one
warning, or stop the run when `strict` is set.
"""

from __future__ import annotations

import csv
import errno
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from .decode import UnreadableImage, decode_image, images_to_nchw, rgb_to_grey

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
SPLIT_NAMES = {"train": "train", "test": "test", "val": "val", "valid": "val", "validation": "val"}


@dataclass
class ImageSet:
    """Images as uint8 (N, C, H, W) with integer labels, an optional given test (and val) split, and notes.
    `names` holds, per split, what each image is called where it came from (a file path, or 'x[12]' of an .npz),
    so that findings can name files rather than row numbers."""

    x: np.ndarray
    y: np.ndarray
    classes: list[str]
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    description: str = ""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    names: dict[str, list[str]] = field(default_factory=dict)
    empty_classes: list[str] = field(default_factory=list)  # class folders without images (an audit lists them)

    def name_of(self, split: str, i: int) -> str:
        names = self.names.get(split)
        return names[i] if names is not None and i < len(names) else f"{split} #{i}"


def is_hidden(name: str) -> bool:
    """Dot files (.DS_Store, macOS '._x.jpg' forks) and OS clutter folders are never data."""
    return name.startswith(".") or name in ("__MACOSX", "Thumbs.db", "desktop.ini")


def decode_many(paths: list[Path], size: int, channels: int | None, strict: bool, progress: bool = True):
    """Decode images in parallel; return (array (N,C,H,W), indices of the readable ones, skipped list)."""
    from tqdm.auto import tqdm

    def one(p):
        try:
            return decode_image(p, size)
        except UnreadableImage as err:
            return str(err)

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) + 1)) as pool:
        results = list(tqdm(pool.map(one, paths), total=len(paths), desc="reading images", unit="img",
                            disable=not progress or len(paths) < 2000, leave=False))
    skipped = [(str(p), r) for p, r in zip(paths, results) if isinstance(r, str)]
    if skipped and strict:
        raise DataError(unreadable_message(skipped, strict=True))
    ok = [i for i, r in enumerate(results) if not isinstance(r, str)]
    if not ok:
        raise DataError(unreadable_message(skipped, strict=True, none_left=True))
    x = np.stack([results[i] for i in ok])
    if channels == 1 or (channels is None and looks_grey(x)):
        x = rgb_to_grey(x)
    return x, ok, skipped


def looks_grey(x: np.ndarray, tolerance: int = 3) -> bool:
    """True when every pixel has R = G = B (within JPEG noise): grey scans saved as RGB train on 1 channel."""
    for a, b in ((0, 1), (1, 2)):  # one channel pair at a time: no int16 copy of the whole set
        if np.abs(x[:, a].astype(np.int16) - x[:, b]).max() > tolerance:
            return False
    return True


def unreadable_message(skipped: list[tuple[str, str]], strict: bool = False, none_left: bool = False) -> str:
    shown = "\n".join(f"  {p}: {why}" for p, why in skipped[:10])
    more = f"\n  ... and {len(skipped) - 10} more" if len(skipped) > 10 else ""
    head = f"{len(skipped)} file(s) could not be read as images"
    if none_left:
        return f"{head}, and no readable image is left:\n{shown}{more}\nFix or replace these files."
    if strict:
        return f"{head}:\n{shown}{more}\nFix or remove them, or drop --strict to skip them with a warning."
    return f"{head} and were skipped:\n{shown}{more}\nFix or remove them, or pass --strict to stop on them."


def visible_children(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not is_hidden(p.name))


def image_files(folder: Path) -> list[Path]:
    return find_image_files(folder)[0]


def find_image_files(folder: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """The image files under `folder` (sorted, hidden ones left out), and the links among them that lead nowhere
    (a dangling link, or a loop), as (path, reason) for the skipped-files warning."""
    files, broken = [], []
    for p in sorted(folder.rglob("*")):
        if p.suffix.lower() not in IMAGE_EXTENSIONS or any(is_hidden(part) for part in p.relative_to(folder).parts):
            continue
        if p.is_file():
            files.append(p)
        elif p.is_symlink():
            broken.append((str(p), link_problem(p)))
    return files, broken


def link_problem(path: Path) -> str:
    try:
        os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "a symbolic link that loops back on itself"
    return f"a symbolic link to '{os.readlink(path)}', which does not exist"


def class_folders(root: Path, lenient: bool = False) -> list[Path]:
    """The class sub-folders of `root`, checked: at least two, each with at least one image. `lenient` (the
    audit) drops empty ones instead of refusing them, and accepts a single class."""
    children = visible_children(root)
    folders = [p for p in children if p.is_dir()]
    loose = [p for p in children if p.is_file()]
    if not folders:
        example = f" (for example {loose[0].name})" if loose else ""
        raise DataError(
            f"Expected a folder with one sub-folder per class in '{root}/'. Received: 0 sub-folders, "
            f"{len(loose)} loose file(s){example}. Put the images of each class in a sub-folder named "
            f"after the class, like '{root}/cats/1.jpg' and '{root}/dogs/2.jpg'."
        )
    looping = [f for f in folders if f.is_symlink() and root.resolve().is_relative_to(f.resolve())]
    if looping:
        raise DataError(f"Class folder '{looping[0]}' is a link to '{looping[0].resolve()}', which holds the data "
                        f"folder itself: every image would be read again as that class. Remove the link.")
    empty = [f for f in folders if not image_files(f)]
    if empty and not lenient:
        names = ", ".join(f"'{f}'" for f in empty)
        raise DataError(
            f"Class folder(s) {names} hold no images ({', '.join(IMAGE_EXTENSIONS)}). "
            f"Add images to them or remove them."
        )
    folders = [f for f in folders if f not in empty] if lenient else folders
    if not folders:
        raise DataError(f"No class folder in '{root}/' holds images ({', '.join(IMAGE_EXTENSIONS)}).")
    if len(folders) == 1 and not lenient:
        raise DataError(
            f"Found only one class ('{folders[0].name}') in '{root}/'. Classification needs at least two: "
            f"add a sub-folder for each other class."
        )
    return folders


def split_layout(root: Path) -> dict[str, Path] | None:
    """A folder holding train/ and test/ (and maybe val/) sub-folders, each with class folders."""
    splits = {SPLIT_NAMES[p.name.lower()]: p for p in visible_children(root)
              if p.is_dir() and p.name.lower() in SPLIT_NAMES}
    return splits if "train" in splits and "test" in splits else None


def list_folder(root: str | Path, lenient: bool = False) -> dict:
    """The image files of a folder of class folders (or of train/ val/ test/ folders of them), not yet decoded:
    {'files', 'labels', 'splits' (the split of each file), 'layout' (the splits there are), 'classes', 'broken'
    (dangling links), 'empty_classes', 'description'}."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"No such folder '{root}'. Pass a folder with one sub-folder per class, like photos/cats/*.jpg.")
    if not root.is_dir():
        raise DataError(f"'{root}' is a file, not a folder. Pass a folder of class folders, a .csv or an .npz.")
    layout = split_layout(root) or {"train": root}
    all_folders = {split: [f for f in visible_children(folder) if f.is_dir()] for split, folder in layout.items()}
    class_names = [f.name for f in class_folders(layout["train"], lenient)]
    files, labels, split_of, broken = [], [], [], []
    for split, folder in layout.items():
        folders = class_folders(folder, lenient)
        unknown = [f.name for f in folders if f.name not in class_names]
        if unknown:
            raise DataError(f"'{folder}' has class folder(s) {unknown} that '{layout['train']}' lacks. "
                            f"Use the same class folders in every split.")
        for f in folders:
            found, links = find_image_files(f)
            broken += links
            for p in found:
                files.append(p)
                labels.append(class_names.index(f.name))
                split_of.append(split)
    return {"files": files, "labels": labels, "splits": split_of, "layout": list(layout), "classes": class_names,
            "broken": broken,
            "empty_classes": sorted({str(f) for fs in all_folders.values() for f in fs if not image_files(f)}),
            "description": f"folder '{root}' ({len(files)} images, {len(class_names)} classes)"}


def read_folder(root: str | Path, size: int, channels: int | None = None, strict: bool = False,
                progress: bool = True, lenient: bool = False) -> ImageSet:
    found = list_folder(root, lenient)
    files, broken, class_names = found["files"], found["broken"], found["classes"]
    if broken and strict:
        raise DataError(unreadable_message(broken, strict=True))
    x, ok, skipped = decode_many(files, size, channels, strict, progress)
    y = np.asarray(found["labels"], dtype=np.int64)[ok]
    where = np.asarray(found["splits"])[ok]
    names = np.asarray([str(p) for p in files], dtype=object)[ok]
    out = ImageSet(x[where == "train"], y[where == "train"], class_names, skipped=broken + skipped,
                   description=found["description"])
    out.empty_classes = found["empty_classes"]
    for split in found["layout"]:
        out.names[split] = list(names[where == split])
    if "test" in found["layout"]:
        out.x_test, out.y_test = x[where == "test"], y[where == "test"]
    if "val" in found["layout"]:
        out.x_val, out.y_val = x[where == "val"], y[where == "val"]
    return out


def list_csv(path: str | Path) -> dict:
    """The images a CSV of path,label rows names, checked and not yet decoded, in `list_folder`'s form."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"No such CSV file '{path}'. Pass a CSV with one 'path,label' row per image.")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [(i + 1, row) for i, row in enumerate(csv.reader(f)) if any(c.strip() for c in row)]
    except UnicodeDecodeError as err:
        raise DataError(f"'{path}' is not UTF-8 text ({err}). Save it as UTF-8 CSV.") from None
    if rows and rows[0][1][0].strip().lower() in ("path", "file", "filename", "image", "img"):
        rows = rows[1:]
    if not rows:
        raise DataError(f"'{path}' has no rows. Expected one 'path,label' row per image.")
    bad = [n for n, row in rows if len(row) != 2]
    if bad:
        raise DataError(f"'{path}': line(s) {bad[:10]} do not have exactly two columns. Expected 'path,label' on every line.")
    files = [(path.parent / row[0].strip()) for _, row in rows]
    missing = [(n, row[0]) for (n, row), f in zip(rows, files) if not f.is_file()]
    if missing:
        shown = ", ".join(f"{p} (line {n})" for n, p in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise DataError(f"{len(missing)} file(s) named in '{path}' do not exist: {shown}{more}. "
                        f"Paths are relative to the CSV's folder '{path.parent}'. Fix them or remove those rows.")
    label_names = [row[1].strip() for _, row in rows]
    unlabelled = [n for (n, _), label in zip(rows, label_names) if not label]
    if unlabelled:
        raise DataError(f"'{path}': line(s) {unlabelled[:10]}{' ...' if len(unlabelled) > 10 else ''} have an empty "
                        f"label. Expected 'path,label' with a class name on every line: fill them in or remove them.")
    classes = sorted(set(label_names), key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))
    if len(classes) < 2:
        raise DataError(f"'{path}' names only one class ({classes[0]!r}). Classification needs at least two.")
    return {"files": files, "labels": [classes.index(c) for c in label_names], "splits": ["train"] * len(files),
            "layout": ["train"], "classes": classes, "broken": [], "empty_classes": [],
            "description": f"CSV '{path}' ({len(files)} images, {len(classes)} classes)"}


def read_csv(path: str | Path, size: int, channels: int | None = None, strict: bool = False,
             progress: bool = True) -> ImageSet:
    found = list_csv(path)
    files = found["files"]
    x, ok, skipped = decode_many(files, size, channels, strict, progress)
    y = np.asarray(found["labels"], dtype=np.int64)[ok]
    return ImageSet(x, y, found["classes"], skipped=skipped, names={"train": [str(files[i]) for i in ok]},
                    description=found["description"])


def read_npz(path: str | Path) -> ImageSet:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"No such file '{path}'. Pass an .npz holding arrays 'x' (images) and 'y' (labels).")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as err:
        if "pickle" in str(err).lower() or "object" in str(err).lower():
            raise DataError(f"'{path}' holds Python objects (an object array), which deepworks never loads: unpickling "
                            f"can run code. Save plain numeric arrays: numpy.savez('data.npz', x=images.astype("
                            f"'uint8'), y=labels.astype('int64')), with class_names as a string array.") from None
        raise DataError(f"'{path}' is not a readable .npz file ({err}). Save it with numpy.savez.") from None
    except Exception as err:  # noqa: BLE001 - numpy raises many kinds for a bad file
        raise DataError(f"'{path}' is not a readable .npz file ({err}). Save it with numpy.savez.") from None
    x_key = next((k for k in ("x", "X", "images", "x_train") if k in arrays), None)
    y_key = next((k for k in ("y", "Y", "labels", "y_train", "target") if k in arrays), None)
    if x_key is None or y_key is None:
        raise DataError(f"'{path}' must hold arrays 'x' (images) and 'y' (labels). Found: {', '.join(arrays) or 'none'}.")
    classes_arr = arrays.get("class_names", arrays.get("classes"))
    x, y = images_to_nchw(arrays[x_key], path, x_key), labels_of(arrays[y_key], path, y_key)
    check_lengths(x, y, path, x_key, y_key)
    if len(x) == 0:
        raise DataError(f"'{path}': {x_key} holds no images. Save the images and their labels in it.")
    out = ImageSet(x, y, [], description=f"npz '{path}' ({len(x)} images)",
                   names={"train": [f"{path.name} {x_key}[{i}]" for i in range(len(x))]})
    if "x_test" in arrays and "y_test" in arrays:
        out.x_test = images_to_nchw(arrays["x_test"], path, "x_test")
        out.y_test = labels_of(arrays["y_test"], path, "y_test")
        check_lengths(out.x_test, out.y_test, path, "x_test", "y_test")
        if out.x_test.shape[1:] != x.shape[1:]:
            raise DataError(f"'{path}': x_test images are {out.x_test.shape[1:]} but x images are {x.shape[1:]}. "
                            f"Store both splits at the same size.")
        out.names["test"] = [f"{path.name} x_test[{i}]" for i in range(len(out.x_test))]
    labels = np.concatenate([out.y] + ([out.y_test] if out.y_test is not None else []))
    used = np.unique(labels)
    n_classes = int(used.max()) + 1
    if classes_arr is None and n_classes > 2 * len(used) + 10:
        raise DataError(f"'{path}': the labels are {len(used)} different class ids but go up to {n_classes - 1:,}; "
                        f"labels must number the classes 0, 1, 2, ... Renumber them (numpy.unique(y, "
                        f"return_inverse=True) does it), or save class_names with one name per id.")
    out.classes = [str(c) for c in classes_arr] if classes_arr is not None else [str(i) for i in range(n_classes)]
    if len(out.classes) < n_classes:
        raise DataError(f"'{path}': labels go up to {n_classes - 1} but class_names lists {len(out.classes)} names.")
    if len(used) < 2:
        raise DataError(f"'{path}' holds only one class (label {int(used[0])}). Classification needs at least two.")
    return out


def check_lengths(x: np.ndarray, y: np.ndarray, path: Path, xk: str, yk: str) -> None:
    if len(x) != len(y):
        raise DataError(f"'{path}': {xk} has {len(x)} images but {yk} has {len(y)} labels. "
                        f"Each image needs exactly one label.")


def labels_of(y: np.ndarray, path: Path, key: str) -> np.ndarray:
    y = np.asarray(y).reshape(-1) if np.asarray(y).ndim == 2 and np.asarray(y).shape[1] == 1 else np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"'{path}': {key} must be one label per image, shape (N,). Received shape {y.shape}.")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"'{path}': {key} must hold integer class ids 0, 1, 2, ... Received dtype {y.dtype}.")
    if len(y) and y.min() < 0:
        raise DataError(f"'{path}': {key} must hold class ids 0, 1, 2, ... Received {int(y.min())} at index "
                        f"{int(y.argmin())}.")
    return y.astype(np.int64)


