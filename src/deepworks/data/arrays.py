"""Helpers every task that reads arrays of examples shares: seeded splits, and images brought to one size and
channel count. They lived in tasks/image.py while only images used them; translation and the GAN use them too."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F



class DataWarning(UserWarning):
    """Data problems that do not stop a run (skipped files, tiny classes)."""


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held out), holding out about `fraction` of every class; the same for the same seed."""
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        held.append(idx[: int(round(fraction * len(idx)))])
    held_idx = np.sort(np.concatenate(held)) if held else np.array([], dtype=np.int64)
    kept_idx = np.setdiff1d(np.arange(len(y)), held_idx)
    return kept_idx, held_idx


def resize(x: np.ndarray, size: int) -> np.ndarray:
    """uint8 images (N, C, H, W) -> (N, C, size, size), antialiased bilinear."""
    if x.shape[-2:] == (size, size):
        return x
    t = torch.from_numpy(x).float()
    t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return t.round().clamp(0, 255).to(torch.uint8).numpy()


def channel_stats(x: np.ndarray, seed: int, sample: int = 10_000) -> tuple[list[float], list[float]]:
    """Per-channel mean and std in [0, 1], from a seeded sample of at most `sample` images (estimates are enough)."""
    if len(x) > sample:
        x = x[np.sort(np.random.default_rng(seed).choice(len(x), sample, replace=False))]
    flat = x.reshape(len(x), x.shape[1], -1).astype(np.float32) / 255
    return flat.mean(axis=(0, 2)).tolist(), np.maximum(flat.std(axis=(0, 2)), 1e-3).tolist()
