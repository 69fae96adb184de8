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


class ImageServing(nn.Module):
    """A classifier as it is served and exported: uint8 pixels (N, H, W, C), the layout PIL and numpy give, in;
    class probabilities (N, K) out. The channel order and the training split's normalisation are inside, so a user of
    the exported file sends pixels as they are."""

    def __init__(self, model: nn.Module, mean: list[float], std: list[float]):
        super().__init__()
        self.pixels = PixelModel(model, mean, std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float() / 255.0
        return self.pixels(x).float().softmax(1)
