"""The data page's uploads: a file kept under RUNS/.ui/uploads/ID/, a zip of class folders unpacked there.

A zip is checked whole before one byte is written (its names, their count, what they unpack to against a cap and
the free space), then unpacked into a hidden folder beside the others that is renamed into place once complete: a
failed upload answers a 4xx that names the problem and leaves no folder behind.
"""

from __future__ import annotations

import errno
import io
import secrets
import shutil
import time
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from ..errors import DeepworksError
from ..serving.requests import ClientError

UPLOAD_KINDS = (".zip", ".csv", ".npz", ".txt", ".tsv", ".text", ".md")
MAX_UNZIPPED = 8 * 2 ** 30  # bytes a zip may unpack to
MAX_MEMBERS = 500_000
MAX_PART = 255  # bytes of one file or folder name: what file systems allow
MAX_STEM = 100  # characters of an uploaded file's name kept (its suffix is kept as well)
FREE_RESERVE = 256 * 2 ** 20  # bytes left free on the disk after a zip is unpacked
SKIPPED = ("__MACOSX/",)  # what macOS's Finder adds to a zip


def save_upload(runs_dir: Path, filename: str, data: bytes) -> dict:
    """Keep an uploaded dataset under RUNS/.ui/uploads/ID/ (a zip unpacked there) and answer the path to train on,
    as a user would type it."""
    from ..run import atomic_write_bytes

    name = upload_name(filename)
    uploads = runs_dir / ".ui" / "uploads"
    folder = uploads / (time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3))
    if not name.endswith(".zip"):
        try:
            atomic_write_bytes(folder / name, data)
        except DeepworksError:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return {"data": str(folder / name)}
    archive = open_zip(filename, data)
    members = checked_members(archive, filename)
    check_space(uploads, sum(m.file_size for m in members), filename)
    partial = uploads / f".partial-{folder.name}"
    try:
        partial.mkdir()
        unpack(archive, members, partial / Path(name).stem, filename)
        partial.rename(folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return {"data": str(data_folder(folder / Path(name).stem))}


def upload_name(filename: str) -> str:
    """The name an upload is kept under: its own, made safe and short, with its suffix (which says what it is)."""
    from ..run import Run

    original = Path(filename).name
    suffix = Path(original).suffix.lower()
    if suffix not in UPLOAD_KINDS:
        raise ClientError(400, f"Expected a {', '.join(UPLOAD_KINDS)} file. Received: '{filename}'.")
    return Run.safe_name(Path(original).stem)[:MAX_STEM] + suffix


def open_zip(filename: str, data: bytes) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError):
        raise ClientError(400, f"Expected a zip archive. Received: '{filename}', which does not open as one.") from None


def checked_members(archive: zipfile.ZipFile, filename: str) -> list[zipfile.ZipInfo]:
    """The files to unpack, once every name has been checked: inside the zip's folder, not too long, each once, and
    never both a file and a folder. Their count and what they unpack to are capped."""
    members = [m for m in archive.infolist() if not m.filename.startswith(SKIPPED)
               and not PurePosixPath(m.filename).name.startswith("._")]
    total = sum(m.file_size for m in members)
    if len(members) > MAX_MEMBERS or total > MAX_UNZIPPED:
        raise ClientError(413, f"Expected a zip of at most {MAX_MEMBERS:,} files and {gigabytes(MAX_UNZIPPED)} "
                               f"unpacked. Received: '{filename}', {len(members):,} files, {gigabytes(total)}.")
    files, folders, kept = set(), set(), []
    for m in members:
        parts = member_parts(m.filename, filename)
        if not parts:
            continue
        if m.is_dir():
            folders.add(parts)
        elif parts in files:
            raise ClientError(400, f"Expected each file once in the zip. Received: '{m.filename}' twice in "
                                   f"'{filename}', so one would replace the other.")
        else:
            files.add(parts)
            kept.append(m)
        folders.update(parts[:i] for i in range(1, len(parts)))
    if not files:
        raise ClientError(400, f"Expected a zip of class folders with their files. Received: '{filename}', which "
                               f"holds no file.")
    clash = sorted(files & folders)
    if clash:
        raise ClientError(400, f"Expected each name in the zip to be a file or a folder, not both. Received: "
                               f"'{'/'.join(clash[0])}' as both in '{filename}'.")
    return kept


def member_parts(name: str, filename: str) -> tuple[str, ...]:
    """A member's path as its parts, refused when it would land outside the zip's folder or its names are too long."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise ClientError(400, f"Expected names inside the zip. Received: '{name}', which points outside.")
    long = next((p for p in path.parts if len(p.encode()) > MAX_PART), None)
    if long is not None:
        raise ClientError(400, f"Expected file and folder names of at most {MAX_PART} bytes in the zip. Received: "
                               f"'{long[:40]}…' ({len(long.encode())} bytes) in '{filename}'. Rename it and zip "
                               f"again.")
    return tuple(p for p in path.parts if p not in ("", "."))


def check_space(uploads: Path, size: int, filename: str) -> None:
    """What the zip unpacks to must fit on the disk, with some room left for the runs."""
    uploads.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(uploads).free
    if size + FREE_RESERVE > free:
        raise ClientError(413, f"Expected a zip that fits on the disk. Received: '{filename}', which unpacks to "
                               f"{gigabytes(size)} where {gigabytes(max(0, free - FREE_RESERVE))} is free (keeping "
                               f"{gigabytes(FREE_RESERVE)} spare). Free some space or upload less.")


def unpack(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo], root: Path, filename: str) -> None:
    """Write each member below `root`; a damaged member or a full disk is the client's 4xx, naming the member."""
    for m in members:
        target = root.joinpath(*member_parts(m.filename, filename))
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(m) as source, open(target, "xb") as sink:
                shutil.copyfileobj(source, sink)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as err:
            raise ClientError(400, f"Expected a zip whose files unpack whole. Received: '{m.filename}' in "
                                   f"'{filename}', which does not ({err}). Zip it again.") from None
        except OSError as err:
            raise ClientError(413 if err.errno in (errno.ENOSPC, errno.EDQUOT) else 400, f"Expected '{filename}' to unpack here. "
                              f"Received: '{m.filename}', which could not be written ({err.strerror or err}). "
                              f"Nothing was kept.") from None


def data_folder(root: Path) -> Path:
    """The folder to train on: the zip's one top folder when it holds the class folders, else the zip's own."""
    inside = list(root.iterdir()) if root.is_dir() else []
    if len(inside) == 1 and inside[0].is_dir() and any(c.is_dir() for c in inside[0].iterdir()):
        return inside[0]
    return root


def gigabytes(size: int) -> str:
    return f"{size / 2 ** 30:.1f} GB" if size >= 2 ** 30 / 10 else f"{size / 2 ** 20:.1f} MB"


__all__ = ["MAX_UNZIPPED", "UPLOAD_KINDS", "save_upload"]
