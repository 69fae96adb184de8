"""Images streamed from disk: folders larger than memory train with flat memory.

`FileImages` stands where a uint8 tensor (N, C, S, S) of decoded images would: it has a length and a shape, and
indexing it (an int, a slice, an array of indices) decodes just those files, in threads. Validation, testing and
the report therefore work on it unchanged. `StreamDataset` makes a training batch of it, decoded and augmented;
the image task hands it to training/batches.py's DataLoader source (`DatasetBatches`, whole batches), whose worker
processes make each batch while the model trains on the one before.

Exact resume holds as for tensors in memory: the order of epoch e comes from (seed, e) as always, and every
augmentation draw of an image comes from a number hashed from (seed, epoch, index), so a batch is the same
whichever worker made it, with any number of workers, and after a restart.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .decode import UnreadableImage, decode_image, rgb_to_grey


class FileImages:
    """Image files seen as a uint8 array (N, C, size, size), decoded on access."""

    def __init__(self, files: list[str], size: int, channels: int):
        self.files, self.size, self.channels = list(files), size, channels

    def __len__(self) -> int:
        return len(self.files)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.files), self.channels, self.size, self.size)

    def decode(self, i: int) -> np.ndarray:
        try:
            x = decode_image(Path(self.files[i]), self.size)
        except UnreadableImage as err:
            raise DataError(f"{self.files[i]}: {err}. It was readable when the run started; restore it, or start the "
                            f"run again so that it is left out.") from None
        return rgb_to_grey(x[None])[0] if self.channels == 1 else x

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, (int, np.integer)):
            return torch.from_numpy(self.decode(int(index)))
        picked = range(len(self))[index] if isinstance(index, slice) else np.asarray(index).reshape(-1).tolist()
        if not len(picked):
            return torch.zeros((0, self.channels, self.size, self.size), dtype=torch.uint8)
        with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) + 1)) as pool:
            return torch.from_numpy(np.stack(list(pool.map(self.decode, picked))))

    def subset(self, index) -> "FileImages":
        return FileImages([self.files[i] for i in np.asarray(index).reshape(-1).tolist()], self.size, self.channels)


def materialize(x) -> torch.Tensor:
    """A split's images as a tensor (decoding them when they are files)."""
    return x if torch.is_tensor(x) else x[:]


MASK64 = (1 << 64) - 1


def mix64(x: int) -> int:
    """splitmix64's finaliser: a well-mixed 64-bit number from any integer (about a microsecond in Python, where a
    torch or numpy generator per image costs tens)."""
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def augment_one(x: np.ndarray, mode: str, draw: int) -> np.ndarray:
    """The image task's crop and flip (tasks/image_augment.augment: pad by 1/8 of the side, crop back; flip half the
    time) for one uint8 image (C, H, W), its choices taken from the 64-bit number `draw`."""
    c, h, w = x.shape
    if "crop" in mode:
        p = max(1, h // 8)
        dy, dx = draw % (2 * p + 1) - p, (draw >> 16) % (2 * p + 1) - p
        out = np.zeros_like(x)
        out[:, max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)] = \
            x[:, max(0, dy):h - max(0, -dy), max(0, dx):w - max(0, -dx)]
        x = out
    if "flip" in mode and (draw >> 40) & 1:
        x = x[:, :, ::-1]
    return x


class StreamDataset(torch.utils.data.Dataset):
    """A batch's [(epoch, index), ...] -> (augmented images, labels), stacked in the worker: one transfer per batch
    and no per-image collation. Each image's crop and flip come from a number hashed from (seed, epoch, index)."""

    def __init__(self, images: FileImages, labels: torch.Tensor, augment: str, seed: int):
        self.images, self.labels, self.augment, self.seed = images, labels, augment, seed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, keys: list[tuple[int, int]]):
        x = torch.empty((len(keys), self.images.channels, self.images.size, self.images.size), dtype=torch.uint8)
        for row, (epoch, i) in enumerate(keys):
            image = self.images.decode(i)
            if self.augment not in (None, "none"):
                image = augment_one(image, self.augment, mix64(mix64(self.seed * 1_000_003 + epoch) ^ i))
            x[row] = torch.from_numpy(np.ascontiguousarray(image))
        return x, self.labels[[i for _, i in keys]]


def decoded_bytes(n: int, size: int, channels: int = 3) -> int:
    return n * channels * size * size


def check_decodes(path: Path, size: int) -> None:
    """Decode an image file's pixels as `decode_image` would (a JPEG at the same reduced scale), without converting
    or resizing them; UnreadableImage, with decode_image's reason, when they stop short or are corrupt."""
    from .decode import open_image

    with open_image(path) as im:
        if im.format == "JPEG":
            im.draft("RGB", (size, size))
        im.load()


def check_all(files: list[Path], size: int, progress: bool) -> list[tuple[str, str]]:
    """The files that do not decode, [(path, why)], each decoded in full (in threads) as the in-memory path does,
    so that both skip the same files with the same warning: a header alone passes a truncated PNG, which would then
    stop the run mid-epoch. The cost is one decoding pass without resizing, a fraction of an epoch's work; on the
    busy 2-core machine, 4,000 small PNGs took 1.0 s (their headers alone 0.7 s) and 1,000 500x375 JPEGs 1.6 to
    2.5 s (headers 0.2 s)."""
    from tqdm.auto import tqdm

    def one(p):
        try:
            check_decodes(p, size)
            return None
        except UnreadableImage as err:
            return str(err)

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) + 1)) as pool:
        results = list(tqdm(pool.map(one, files), total=len(files), desc="checking images", unit="img",
                            disable=not progress or len(files) < 2000, leave=False))
    return [(str(p), r) for p, r in zip(files, results) if r is not None]


def stream_folder(listing: dict, size: int, channels: int | None, strict: bool, progress: bool) -> dict:
    """A listed folder (images.list_folder) ready to stream: the readable files of each split with their labels,
    the channels (grey when a sample of the images is grey and none were asked for), and what was skipped."""
    from .images import looks_grey, unreadable_message

    files = listing["files"]
    skipped = listing["broken"] + check_all(files, size, progress)
    if skipped and strict:
        raise DataError(unreadable_message(skipped, strict=True))
    bad = {p for p, _ in skipped}
    keep = [i for i, p in enumerate(files) if str(p) not in bad]
    if not keep:
        raise DataError(unreadable_message(skipped, strict=True, none_left=True))
    if channels is None:
        sample = np.random.default_rng(0).choice(keep, min(64, len(keep)), replace=False)
        probe = FileImages([str(files[i]) for i in sample], size, 3)
        channels = 1 if looks_grey(probe[:].numpy()) else 3
    splits = {}
    for split in listing["layout"]:
        idx = [i for i in keep if listing["splits"][i] == split]
        splits[split] = (FileImages([str(files[i]) for i in idx], size, channels),
                         torch.tensor([listing["labels"][i] for i in idx], dtype=torch.int64))
    return {"splits": splits, "channels": channels, "skipped": skipped, "classes": listing["classes"],
            "description": listing["description"] + ", streamed from disk"}
