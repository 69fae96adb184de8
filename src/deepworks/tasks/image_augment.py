"""The image task's random training augmentation on uint8 batches: crop and flip, on the device, batch by batch
(AugmentedBatches), for images held in memory; images streamed from disk are augmented in DataLoader workers the
same way (data/stream.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..training.batches import TensorBatches


def augment(x: torch.Tensor, mode: str) -> torch.Tensor:
    """Random crop (pad by 1/8 of the side, crop back) and/or horizontal flip, per image, on uint8 batches."""
    n, c, h, w = x.shape
    if "crop" in mode:
        p = max(1, h // 8)
        padded = F.pad(x, (p, p, p, p))
        dy = torch.randint(0, 2 * p + 1, (n, 1), device=x.device)
        dx = torch.randint(0, 2 * p + 1, (n, 1), device=x.device)
        rows = (dy + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (dx + torch.arange(w, device=x.device))[:, None, None, :]
        x = padded[torch.arange(n, device=x.device)[:, None, None, None], torch.arange(c, device=x.device)[None, :, None, None], rows, cols]
    if "flip" in mode:
        flip = torch.rand(n, device=x.device) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x


class AugmentedBatches(TensorBatches):
    """The training images as tensors on the device, sliced per batch as TensorBatches does, each batch then
    augmented there (`augment`, with torch's generator of the device) just before its training step: the part of the
    batch source that DatasetBatches' workers play for images streamed from disk."""

    def __init__(self, tensors: tuple[torch.Tensor, torch.Tensor], batch_size: int, seed: int, mode: str):
        super().__init__(tensors, batch_size, seed)
        self.mode = mode

    def batches(self, epoch: int, first: int, engine):
        for (x, y), size in super().batches(epoch, first, engine):
            yield (augment(x, self.mode), y), size
