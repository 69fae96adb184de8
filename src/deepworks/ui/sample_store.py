"""The Start page's samples: pictures or sound clips a user adds class by class (uploads, zips, webcam snapshots,
microphone recordings), kept as a training folder RUNS/.ui/samples/DATASET/CLASS/N.EXT that `deepworks train`
reads as any folder of class sub-folders.

A client names a dataset (a strict id) and a class (a folder name checked here), never a path. Every file is
decoded before anything is kept (an image by Pillow, a clip by the project's own audio reader), their count and
sizes are capped, and an upload is written to a hidden folder first and moved into its class only once every file
passed: a refused upload leaves nothing behind. The dataset's hidden .dataset.json says what kind of samples it
holds and the order of its classes; thumbnails of pictures are in each class's hidden .thumbs/. Hidden files and
folders are never read as data by training.
"""

from __future__ import annotations

import io
import json
import re
import secrets
import shutil
import threading
import unicodedata
import zipfile
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from ..serving.requests import ClientError
from .uploads import FREE_RESERVE, gigabytes

SAMPLES = (".ui", "samples")  # under the runs folder
DATASET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
MAX_CLASS_NAME = 64  # characters of a class name (and at most 255 bytes: a folder name)
MAX_FILES = 2_000  # files one upload may add, a zip's files counted one by one
MAX_FILE = 20 * 2 ** 20  # bytes of one sample
MAX_UPLOAD = 2 ** 30  # bytes one upload may add, its zips unpacked
MAX_PER_CLASS = 5_000  # samples one class may hold
MAX_CLASSES = 100
MAX_DATASETS = 500
SHOWN = 60  # samples of a class a listing names (the newest): a page shows a gallery, not thousands of files
THUMB = 96  # pixels: the longer side of a picture's thumbnail
META, THUMBS, PARTIAL = ".dataset.json", ".thumbs", ".partial-"
IMAGE_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "MPO": ".jpg", "BMP": ".bmp", "GIF": ".gif", "WEBP": ".webp",
                 "TIFF": ".tiff"}  # Pillow's format -> the suffix a file is kept under; others are kept as PNG
AUDIO_HEADS = {b"RIFF": ".wav", b"RIFX": ".wav", b"fLaC": ".flac", b"OggS": ".ogg"}
SAMPLE_FILE = re.compile(r"([0-9]{1,9})(\.(?:png|jpg|bmp|gif|webp|tiff|wav|flac|ogg))")
MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".bmp": "image/bmp", ".gif": "image/gif",
               ".webp": "image/webp", ".tiff": "image/tiff", ".wav": "audio/wav", ".flac": "audio/flac",
               ".ogg": "audio/ogg"}
KIND_WORDS = {"image": "pictures", "audio": "sound clips"}

LOCK = threading.Lock()  # every change of a dataset's folders: numbering, moving, renaming, deleting


# --- names ------------------------------------------------------------------------------------------------------------
def samples_root(runs_dir: Path) -> Path:
    return Path(runs_dir).joinpath(*SAMPLES)


def checked_dataset(dataset) -> str:
    if not isinstance(dataset, str) or not DATASET_ID.fullmatch(dataset):
        raise ClientError(400, f"Expected a dataset id of 1 to 64 letters, digits, '-' or '_', starting with a letter "
                               f"or digit. Received: {str(dataset)[:80]!r}.")
    return dataset


def dataset_folder(runs_dir: Path, dataset, must_exist: bool = True) -> Path:
    folder = samples_root(runs_dir) / checked_dataset(dataset)
    if must_exist and not (folder / META).is_file():
        raise ClientError(404, f"Expected a dataset of this server (GET /api/samples lists them). Received: "
                               f"{dataset!r}, which holds no samples.")
    return folder


def checked_class(name) -> str:
    """A class name is a folder name: trimmed, 1 to 64 characters, no separator, no leading dot, no control
    character, and none of the names training skips as clutter."""
    from ..data.images import is_hidden

    text = name.strip() if isinstance(name, str) else ""
    bad = next((c for c in text if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")), None)
    why = ("it is empty" if not text else f"it is {len(text)} characters long" if len(text) > MAX_CLASS_NAME
           else "it holds '/' or '\\'" if "/" in text or "\\" in text
           else f"it holds the control character U+{ord(bad):04X}" if bad is not None
           else "it starts with a dot" if text.startswith(".")
           else "training skips it as clutter" if is_hidden(text) or len(text.encode()) > 255 else None)
    if why is not None or not isinstance(name, str):
        raise ClientError(400, f"Expected a class name of 1 to {MAX_CLASS_NAME} characters without '/', '\\', a "
                               f"leading dot or control characters. Received: {str(name)[:80]!r}"
                               f"{f', where {why}' if why else ''}.")
    return text


def sample_kind(task) -> str:
    """What a task's samples are ('image' or 'audio'), from its card: a task whose use takes pictures or sounds and
    gives classes back."""
    from ..registry import get_card
    from .routes.common import known_task

    card = get_card(known_task(task))
    if card.inputs[:1] not in (("image",), ("audio",)) or card.outputs[:1] != ("classes",):
        raise ClientError(400, f"Expected a task that takes pictures or sounds and gives classes back. Received: "
                               f"{task!r}, which takes {', '.join(card.inputs) or 'nothing'} and gives "
                               f"{', '.join(card.outputs) or 'nothing'}.")
    return card.inputs[0]


def min_per_class() -> int:
    """The fewest samples per class that leave one of each class to validate on and one to test on, with the
    default --test-fraction and --val-fraction (each class is split by rounding its share)."""
    from ..settings import DataConfig

    d = DataConfig()
    for n in range(2, 1000):
        test = round(d.test_fraction * n)
        if test >= 1 and round(d.val_fraction * (n - test)) >= 1:
            return n
    return 1000


# --- the dataset's own record -----------------------------------------------------------------------------------------
def read_meta(folder: Path) -> dict:
    try:
        meta = json.loads((folder / META).read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def write_meta(folder: Path, meta: dict) -> None:
    from ..run import atomic_write_text

    atomic_write_text(folder / META, json.dumps(meta, indent=1))


def class_folders(folder: Path) -> list[str]:
    """The dataset's classes in the order they were made (the record's), any other class folder after them."""
    there = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if folder.is_dir() else []
    order = [c for c in read_meta(folder).get("classes", []) if c in there]
    return order + [c for c in there if c not in order]


def opened(runs_dir: Path, dataset, kind: str) -> Path:
    """The dataset's folder, made for samples of `kind` when new; one made for the other kind is refused."""
    folder = dataset_folder(runs_dir, dataset, must_exist=False)
    meta = read_meta(folder)
    if meta.get("kind") not in (None, kind):
        held = KIND_WORDS.get(meta["kind"], meta["kind"])
        raise ClientError(409, f"Expected {KIND_WORDS[kind]}: dataset {dataset!r} holds {held}. Received: a task "
                               f"that takes {KIND_WORDS[kind]}. Name another dataset.")
    if not meta:
        root = samples_root(runs_dir)
        if root.is_dir() and sum(1 for p in root.iterdir() if p.is_dir()) >= MAX_DATASETS:
            raise ClientError(413, f"Expected at most {MAX_DATASETS} datasets. Received: one more. Delete one first.")
        folder.mkdir(parents=True, exist_ok=True)
        write_meta(folder, {"kind": kind, "classes": []})
    return folder


def add_class(folder: Path, name: str) -> None:
    """The class's folder, made (and recorded last in the order) when new; under LOCK."""
    classes = class_folders(folder)
    if name in classes:
        return
    if len(classes) >= MAX_CLASSES:
        raise ClientError(413, f"Expected at most {MAX_CLASSES} classes in a dataset. Received: a class more "
                               f"({name!r}).")
    (folder / name).mkdir()
    write_meta(folder, {**read_meta(folder), "classes": classes + [name]})


# --- checking what is uploaded ----------------------------------------------------------------------------------------
def checked_image(data: bytes, filename: str) -> tuple[str, bytes | None, bytes]:
    """(suffix, the bytes to keep (None: the upload's own), a PNG thumbnail) of a picture Pillow decodes whole."""
    from ..data.decode import UnreadableImage, image_to_array, open_image

    try:
        with open_image(data) as im:
            image_to_array(im, 8)  # every pixel decoded: a truncated or corrupt file is refused now, not in training
            suffix = IMAGE_FORMATS.get(im.format)
            kept = None if suffix else png_of(im)
            small = im.convert("RGB")
            small.thumbnail((THUMB, THUMB))
            return suffix or ".png", kept, png_of(small)
    except UnreadableImage as err:
        raise ClientError(415, f"Expected pictures (PNG, JPEG, GIF, BMP, WebP, TIFF), or zips of them. Received: "
                               f"{filename!r}, which is {err}. Nothing was added.") from None


def png_of(im) -> bytes:
    buffer = io.BytesIO()
    (im if im.mode in ("RGB", "RGBA", "L", "LA", "P", "1") else im.convert("RGB")).save(buffer, "PNG")
    return buffer.getvalue()


def checked_clip(data: bytes, filename: str) -> str:
    """The suffix of a clip the project's audio reader decodes, and which is not silence."""
    import numpy as np

    from ..data.audio import SILENCE, UnreadableAudio, read_audio

    try:
        samples, _ = read_audio(data, name=filename, notes=[])
        if samples.size == 0 or np.abs(samples).max() < SILENCE:
            raise UnreadableAudio("silence only: check that the microphone is on and not muted")
    except UnreadableAudio as err:
        raise ClientError(415, f"Expected sound clips (WAV; FLAC or OGG with soundfile), or zips of them. Received: "
                               f"{filename!r}: {err}. Nothing was added.") from None
    return AUDIO_HEADS[data[:4]]


def uploaded_files(uploads: list) -> tuple[list[tuple[str, object]], int]:
    """([(name, reader)] of every sample in an upload: each file, each file of each zip (hidden files and folders
    skipped), and their bytes in all. A reader gives the bytes; the count and sizes are checked before any is read."""
    from ..data.images import is_hidden

    found, total = [], 0
    for up in uploads:
        name = up.filename or "upload"
        if name.lower().endswith(".zip"):
            archive = open_zip(up.file, name)
            for m in archive.infolist():
                parts = PurePosixPath(m.filename.replace("\\", "/")).parts
                if m.is_dir() or not parts or any(is_hidden(p) for p in parts):
                    continue
                found.append((f"{name}:{m.filename}", m.file_size, lambda a=archive, m=m: read_member(a, m)))
        else:
            found.append((name, up.size if up.size is not None else MAX_FILE + 1, lambda up=up: read_upload(up)))
        if len(found) > MAX_FILES:
            raise ClientError(413, f"Expected at most {MAX_FILES:,} files in one upload. Received: more, counting the "
                                   f"files inside zips. Add them in parts.")
    for name, size, _ in found:
        if size > MAX_FILE:
            raise ClientError(413, f"Expected files of at most {MAX_FILE // 2 ** 20} MB each. Received: {name!r}, "
                                   f"{gigabytes(size)}. Nothing was added.")
        total += size
    if total > MAX_UPLOAD:
        raise ClientError(413, f"Expected at most {gigabytes(MAX_UPLOAD)} in one upload. Received: {gigabytes(total)}. "
                               f"Add them in parts.")
    if not found:
        raise ClientError(400, "Expected one or more files in the form field 'files'. Received: no file (or a zip "
                               "holding none).")
    return [(name, read) for name, _, read in found], total


def open_zip(file, name: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise ClientError(400, f"Expected a zip archive. Received: {name!r}, which does not open as one.") from None


def read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> bytes:
    try:
        with archive.open(member) as f:  # reads no more than the size the zip declares (checked against MAX_FILE)
            return f.read(MAX_FILE + 1)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError, ValueError) as err:
        raise ClientError(400, f"Expected a zip whose files unpack whole. Received: {member.filename!r}, which does "
                               f"not ({err}). Nothing was added.") from None


def read_upload(upload) -> bytes:
    upload.file.seek(0)
    data = upload.file.read(MAX_FILE + 1)
    if len(data) > MAX_FILE:
        raise ClientError(413, f"Expected files of at most {MAX_FILE // 2 ** 20} MB each. Received: "
                               f"{upload.filename!r}, larger. Nothing was added.")
    return data


# --- changes ----------------------------------------------------------------------------------------------------------
def add_samples(runs_dir: Path, dataset, name, task, uploads: list) -> dict:
    """Check every file of the upload, then keep them all in the class (numbered after its last sample), or none."""
    kind = sample_kind(task)
    cls = checked_class(name)
    checked_dataset(dataset)
    files, size = uploaded_files(uploads)
    root = samples_root(runs_dir)
    check_space(root, size)
    partial = root / f"{PARTIAL}{secrets.token_hex(4)}"  # hidden beside the datasets, never a dataset's data
    try:
        (partial / THUMBS).mkdir(parents=True)
        staged = [stage(partial, i, kind, filename, read()) for i, (filename, read) in enumerate(files)]
        with LOCK:
            folder = opened(runs_dir, dataset, kind)
            add_class(folder, cls)
            move_in(folder / cls, partial, staged)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return {**listing(runs_dir, dataset), "added": len(staged), "class": cls}


def stage(partial: Path, i: int, kind: str, filename: str, data: bytes) -> str:
    """Check one file and write it (and a picture's thumbnail) into the partial folder as i.SUFFIX."""
    if kind == "image":
        suffix, kept, thumb = checked_image(data, filename)
        (partial / THUMBS / f"{i}.png").write_bytes(thumb)
    else:
        suffix, kept = checked_clip(data, filename), None
    (partial / f"{i}{suffix}").write_bytes(kept if kept is not None else data)
    return f"{i}{suffix}"


def move_in(target: Path, partial: Path, staged: list[str]) -> None:
    """Move the staged files into the class, numbered after its highest number; under LOCK."""
    have = [int(m.group(1)) for p in target.iterdir() if (m := SAMPLE_FILE.fullmatch(p.name))]
    if len(have) + len(staged) > MAX_PER_CLASS:
        raise ClientError(413, f"Expected at most {MAX_PER_CLASS:,} samples in a class. Received: "
                               f"{len(staged):,} more for {target.name!r}, which holds {len(have):,}.")
    n = max(have, default=0)
    (target / THUMBS).mkdir(exist_ok=True)
    for name in staged:
        n += 1
        stem, suffix = name.split(".", 1)
        (partial / name).rename(target / f"{n}.{suffix}")
        thumb = partial / THUMBS / f"{stem}.png"
        if thumb.is_file():
            thumb.rename(target / THUMBS / f"{n}.png")


def check_space(root: Path, size: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(root).free
    if size + FREE_RESERVE > free:
        raise ClientError(413, f"Expected samples that fit on the disk. Received: {gigabytes(size)} where "
                               f"{gigabytes(max(0, free - FREE_RESERVE))} is free. Free some space or add fewer.")


def make_class(runs_dir: Path, dataset, name, task) -> dict:
    kind, cls = sample_kind(task), checked_class(name)
    with LOCK:
        add_class(opened(runs_dir, dataset, kind), cls)
    return listing(runs_dir, dataset)


def known_class(folder: Path, name) -> Path:
    cls = checked_class(name)
    if cls not in class_folders(folder):
        known = ", ".join(repr(c) for c in class_folders(folder)) or "none yet"
        raise ClientError(404, f"Expected a class of dataset {folder.name!r} ({known}). Received: {cls!r}.")
    return folder / cls


def rename_class(runs_dir: Path, dataset, name, new) -> dict:
    folder = dataset_folder(runs_dir, dataset)
    new = checked_class(new)
    with LOCK:
        old = known_class(folder, name)
        classes = class_folders(folder)
        if new != old.name:
            if new in classes:
                raise ClientError(409, f"Expected a name no other class has. Received: {new!r}, which is taken.")
            old.rename(folder / new)
            write_meta(folder, {**read_meta(folder), "classes": [new if c == old.name else c for c in classes]})
    return listing(runs_dir, dataset)


def delete_class(runs_dir: Path, dataset, name) -> dict:
    folder = dataset_folder(runs_dir, dataset)
    with LOCK:
        path = known_class(folder, name)
        shutil.rmtree(path)
        write_meta(folder, {**read_meta(folder), "classes": [c for c in class_folders(folder)]})
    return listing(runs_dir, dataset)


def sample_path(runs_dir: Path, dataset, name, file: str, thumb: bool = False) -> Path:
    folder = known_class(dataset_folder(runs_dir, dataset), name)
    match = SAMPLE_FILE.fullmatch(file) if isinstance(file, str) else None
    path = folder / file if match else None
    if path is None or not path.is_file():
        raise ClientError(404, f"Expected a sample of class {folder.name!r} (GET /api/samples/{dataset} lists "
                               f"them). Received: {str(file)[:80]!r}.")
    small = folder / THUMBS / f"{match.group(1)}.png"
    return small if thumb and small.is_file() else path


def delete_sample(runs_dir: Path, dataset, name, file: str) -> dict:
    with LOCK:
        path = sample_path(runs_dir, dataset, name, file)
        (path.parent / THUMBS / f"{path.stem}.png").unlink(missing_ok=True)
        path.unlink()
    return listing(runs_dir, dataset)


def delete_dataset(runs_dir: Path, dataset) -> dict:
    folder = dataset_folder(runs_dir, dataset)
    with LOCK:
        shutil.rmtree(folder)
    return {"datasets": datasets(runs_dir)}


# --- what a page shows ------------------------------------------------------------------------------------------------
def listing(runs_dir: Path, dataset) -> dict:
    """The dataset's classes (their order, counts and newest samples' addresses), its kind, and the folder to
    train on (as the job API takes it)."""
    folder = dataset_folder(runs_dir, dataset)
    classes = []
    for cls in class_folders(folder):
        files = sorted((p.name for p in (folder / cls).iterdir() if SAMPLE_FILE.fullmatch(p.name)),
                       key=lambda f: int(f.split(".")[0]))
        base = f"/api/samples/{dataset}/{quote(cls, safe='')}/"
        classes.append({"name": cls, "count": len(files),
                        "samples": [{"file": f, "url": base + f} for f in files[-SHOWN:]]})
    return {"dataset": dataset, "kind": read_meta(folder).get("kind"), "data": str(folder), "classes": classes,
            "min_per_class": min_per_class(), "max_file_mb": MAX_FILE // 2 ** 20, "max_files": MAX_FILES}


def datasets(runs_dir: Path) -> list[dict]:
    root = samples_root(runs_dir)
    found = sorted(p for p in root.iterdir() if (p / META).is_file()) if root.is_dir() else []
    return [{"dataset": p.name, "kind": read_meta(p).get("kind"), "classes": len(class_folders(p))} for p in found]


__all__ = ["add_samples", "datasets", "delete_class", "delete_dataset", "delete_sample", "listing", "make_class",
           "rename_class", "sample_path"]
