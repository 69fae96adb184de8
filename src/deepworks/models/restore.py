"""Image-to-image networks: a degraded photo in, the clean photo out (RGB in 0-1 both ways; tasks/restore.py).

- `espcn` (Shi et al. 2016): three convolutions on the small image, the last making scale^2 sub-pixel maps that
  `PixelShuffle` lays out at the large size. Tiny and fast.
- `edsr` (Lim et al. 2017, the baseline): residual blocks without batch norm on the small image, sub-pixel upsampling
  (x4 as two x2 steps), a convolution to RGB.
- `unet` for denoising, JPEG artefacts and colourisation: models/unet.py's U-Net (three levels by default). It
  predicts the correction of a noisy or blocky image, and for colourisation the a* and b* of CIE L*a*b* from L*
  alone, so that the lightness of the result is the grey image's own.

Both upscalers add their output to the bicubic enlargement of their input (VDSR's global residual, Kim et al.
2016): they learn what bicubic misses, which is less, and learn it sooner. `reach` is how far, in input pixels, an
output pixel sees: tiling (tasks/restore_face.py) gives each tile that much of its neighbours, so tiles join
without seams.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..metrics.pixels import lab_to_rgb, rgb_to_lab
from .unet import UNet


def bicubic(x: torch.Tensor, scale: int) -> torch.Tensor:
    return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)


def start_at_bicubic(layer: nn.Module) -> None:
    """Zero the last layer of a network that adds to its input (or its bicubic enlargement): training starts from
    the classical answer and moves away from it only where that helps."""
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)


class ESPCN(nn.Module):
    """forward(RGB 0-1 (N, 3, h, w)) -> RGB (N, 3, h * scale, w * scale)."""

    multiple = 1

    def __init__(self, scale: int, width: int = 64):
        super().__init__()
        self.scale = scale
        self.body = nn.Sequential(nn.Conv2d(3, width, 5, padding=2), nn.Tanh(),
                                  nn.Conv2d(width, width // 2, 3, padding=1), nn.Tanh(),
                                  nn.Conv2d(width // 2, 3 * scale ** 2, 3, padding=1), nn.PixelShuffle(scale))
        self.reach = 6
        start_at_bicubic(self.body[4])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return bicubic(x, self.scale) + self.body(x - 0.5)


class ResBlock(nn.Module):
    def __init__(self, width: int, res_scale: float):
        super().__init__()
        self.convs = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
                                   nn.Conv2d(width, width, 3, padding=1))
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.convs(x)


class EDSR(nn.Module):
    """forward(RGB 0-1 (N, 3, h, w)) -> RGB (N, 3, h * scale, w * scale)."""

    multiple = 1

    def __init__(self, scale: int, width: int = 64, blocks: int = 16):
        super().__init__()
        self.scale = scale
        self.head = nn.Conv2d(3, width, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(width, 0.1 if width > 64 else 1.0) for _ in range(blocks)],
                                  nn.Conv2d(width, width, 3, padding=1))
        steps = [2, 2] if scale == 4 else [scale]
        up = []
        for s in steps:
            up += [nn.Conv2d(width, width * s * s, 3, padding=1), nn.PixelShuffle(s)]
        self.up = nn.Sequential(*up, nn.Conv2d(width, 3, 3, padding=1))
        self.reach = 2 * blocks + 6
        start_at_bicubic(self.up[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.head(x - 0.5)
        return bicubic(x, self.scale) + self.up(features + self.body(features))


class RestoreUNet(nn.Module):
    """forward(RGB 0-1 (N, 3, H, W)) -> RGB (N, 3, H, W): the input plus the U-Net's correction, or, to colourise,
    the input's own L* with the a* and b* the U-Net gives it."""

    scale = 1

    def __init__(self, width: int = 32, depth: int = 3, colourise: bool = False):
        super().__init__()
        self.colourise = colourise
        self.net = UNet(2 if colourise else 3, width, in_channels=1 if colourise else 3, depth=depth)
        self.multiple = 2 ** (depth - 1)
        self.reach = 6 * self.multiple + 2 ** depth  # 16, 32, 64, 128 at depths 2-5; measured 10, 26, 58, 122
        start_at_bicubic(self.net.head.linear)  # the input as it is; to colourise, grey (a* = b* = 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.colourise:
            return x + self.net(x - 0.5)
        lightness = rgb_to_lab(x.clamp(0, 1))[:, :1]
        ab = self.net(lightness / 50 - 1) * 100
        return lab_to_rgb(torch.cat([lightness, ab], 1))


def build_restorer(name: str, mode: str, scale: int, width: int | None, depth: int | None) -> nn.Module:
    if name == "espcn":
        return ESPCN(scale, width or 64)
    if name == "edsr":
        return EDSR(scale, width or 32, 8 if depth is None else depth)
    return RestoreUNet(width or 32, depth or 3, colourise=mode == "colorize")


def halo_of(model: nn.Module) -> int:
    """The context a tile needs on each side, in input pixels: the model's reach, a multiple of its pooling's."""
    m = getattr(model, "multiple", 1)
    return int(m * math.ceil(model.reach / m))


class RestorerServing(nn.Module):
    """What a trained restorer serves and exports: uint8 pixels (N, h, w, 3) in, h and w multiples of the model's
    pooling step; uint8 pixels (N, h * scale, w * scale, 3) out. Tiling is not inside (restore_face.py)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float() / 255
        y = self.model(x.contiguous()).float()
        return (y * 255).clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1)
