"""A classifier seen from pixels in [0, 1], with its own normalisation inside: what attacks and attributions work
on, and what an exported image model takes."""

from __future__ import annotations

import torch
import torch.nn as nn


class PixelModel(nn.Module):
    """A classifier that takes pixels in [0, 1] and returns logits (normalising with the training split's stats)."""

    def __init__(self, model: nn.Module, mean: list[float], std: list[float]):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


def to_pixels(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> floats in [0, 1]."""
    return x.float() / 255.0
