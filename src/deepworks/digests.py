"""A file's sha256, read in blocks (a model file of gigabytes never sits in memory whole): what every recorded
checksum is compared with, model files, packages, weights and downloads alike. No torch: a package's runtime ships
this module."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
