"""Data sources: read what the user points at into arrays plus metadata, checked and with clear errors."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from .builtin import BUILTINS, default_data_dir, load_builtin
from .images import ImageSet, read_csv, read_folder, read_npz

FILE_IMAGE_SIZE = 32  # default side for decoded image files (folders, CSVs) when none is asked for


def load_image_source(source: str, size: int | None, channels: int | None, data_dir: str | None = None,
                      download: bool = True, strict: bool = False, progress: bool = True,
                      lenient: bool = False) -> ImageSet:
    """Read a folder, CSV, .npz or built-in name. Files are decoded at `size` (default 32); arrays keep theirs.
    `lenient` (the audit) reads a folder with empty class folders, or a single class, instead of refusing it."""
    path = Path(source)
    if source in BUILTINS and not path.exists():
        return load_builtin(source, data_dir, download)
    if path.is_dir():
        return read_folder(path, size or FILE_IMAGE_SIZE, channels, strict, progress, lenient)
    if path.suffix.lower() == ".csv":
        return read_csv(path, size or FILE_IMAGE_SIZE, channels, strict, progress)
    if path.suffix.lower() == ".npz":
        return read_npz(path)
    if not path.exists() and not path.suffix:
        raise DataError(f"No such folder '{source}'. Pass a folder with one sub-folder per class (like photos/cats/1.jpg), "
                        f"a .csv of path,label, an .npz, or a built-in dataset: {', '.join(BUILTINS)}.")
    if not path.exists():
        raise DataError(f"'{source}' is neither a file, a folder nor a built-in dataset. Pass a folder with one "
                        f"sub-folder per class, a .csv of path,label, an .npz, or one of: {', '.join(BUILTINS)}.")
    raise DataError(f"Cannot read '{source}' as image data: expected a folder, a .csv or an .npz file.")


__all__ = ["BUILTINS", "ImageSet", "default_data_dir", "load_image_source", "load_builtin"]
