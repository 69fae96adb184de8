"""Images streamed from disk: folders larger than memory train with flat memory.

`FileImages` stands where a uint8 tensor (N, C, S, S) of decoded images would: it has a length and a shape, and
indexing it (an int, a slice, an array of indices) decodes just those files, in threads. Validation, testing and
the report therefore work on it unchanged. `StreamingBatches` feeds the training loop from it through torch's
DataLoader: worker processes decode and augment each batch while the model trains on the one before.

Exact resume holds as for tensors in memory: the order of epoch e comes from (seed, e) as always, and every
augmentation draw of an image comes from a generator seeded by (seed, epoch, index), so a batch is the same
whichever worker made it, with any number of workers, and after a restart.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..batches import BatchSource, step_indices
from ..errors import DataError
from .images import UnreadableImage, decode_image, rgb_to_grey


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
            raise DataError(f"{err} It was readable when the run started; restore it, or start the run again "
                            f"so that it is left out.") from None
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


def augment_one(x: torch.Tensor, mode: str, g: torch.Generator) -> torch.Tensor:
    """The image task's crop and flip (tasks/image.augment) for one uint8 image, drawing from `g`."""
    c, h, w = x.shape
    if "crop" in mode:
        p = max(1, h // 8)
        dy, dx = (int(v) for v in torch.randint(0, 2 * p + 1, (2,), generator=g))
        x = F.pad(x, (p, p, p, p))[:, dy:dy + h, dx:dx + w]
    if "flip" in mode and bool(torch.rand((), generator=g) < 0.5):
        x = x.flip(2)
    return x.contiguous()


class StreamDataset(torch.utils.data.Dataset):
    """(epoch, index) -> (augmented image, label); the draws seeded by (seed, epoch, index)."""

    def __init__(self, images: FileImages, labels: torch.Tensor, augment: str, seed: int):
        self.images, self.labels, self.augment, self.seed = images, labels, augment, seed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: tuple[int, int]):
        epoch, i = key
        x = torch.from_numpy(self.images.decode(i))
        if self.augment not in (None, "none"):
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) * 10_000_019 + i)
            x = augment_one(x, self.augment, g)
        return x, self.labels[i]


class StreamingBatches(BatchSource):
    """Batches decoded (and augmented) by DataLoader worker processes, `workers` of them (0: in this process)."""

    def __init__(self, images: FileImages, labels: torch.Tensor, batch_size: int, seed: int, augment: str,
                 workers: int):
        super().__init__(len(images), batch_size, seed)
        self.dataset = StreamDataset(images, labels, augment, seed)
        self.workers = workers

    def batches(self, epoch: int, first: int, engine):
        order = self.order(epoch, torch.device("cpu"))
        steps = [engine.shard(step_indices(order, s, self.steps, self.batch_size)) for s in range(first, self.steps)]
        sizes = [len(step_indices(order, s, self.steps, self.batch_size)) for s in range(first, self.steps)]
        keys = [[(epoch, int(i)) for i in idx] for idx in steps]
        loader = torch.utils.data.DataLoader(self.dataset, batch_sampler=keys, num_workers=self.workers,
                                             pin_memory=engine.device.type == "cuda",
                                             prefetch_factor=4 if self.workers else None,
                                             multiprocessing_context="spawn" if self.workers and engine.device.type == "cuda" else None)
        for (x, y), size in zip(loader, sizes):
            engine.samples = len(x)
            yield (x.to(engine.device, non_blocking=True), y.to(engine.device, non_blocking=True)), size


def default_workers() -> int:
    from ..threads import free_cores

    return max(1, min(4, free_cores()))


def decoded_bytes(n: int, size: int, channels: int = 3) -> int:
    return n * channels * size * size


def probe_all(files: list[Path], progress: bool) -> list[tuple[str, str]]:
    """The files that do not open as images (header only, in threads): [(path, why)]."""
    from tqdm.auto import tqdm

    from .images import probe_image

    def one(p):
        try:
            probe_image(p)
            return None
        except UnreadableImage as err:
            return str(err)

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) + 1)) as pool:
        results = list(tqdm(pool.map(one, files), total=len(files), desc="checking images", unit="img",
                            disable=not progress or len(files) < 5000, leave=False))
    return [(str(p), r) for p, r in zip(files, results) if r is not None]


def stream_folder(listing: dict, size: int, channels: int | None, strict: bool, progress: bool) -> dict:
    """A listed folder (images.list_folder) ready to stream: the readable files of each split with their labels,
    the channels (grey when a sample of the images is grey and none were asked for), and what was skipped."""
    from .images import looks_grey, unreadable_message

    files = listing["files"]
    skipped = listing["broken"] + probe_all(files, progress)
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
