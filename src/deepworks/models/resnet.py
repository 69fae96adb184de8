"""A small residual network in the style of He et al. 2016's CIFAR ResNet-20.

Three stages of `n` basic blocks with `width`, 2x and 4x channels, the second and
third halving the resolution; depth = 6n + 2. Each block adds its input back to
its output (the shortcut connection), so a deep stack can start as an identity
and gradients reach early layers undiminished. Where the shape changes, the
shortcut is a strided 1x1 convolution (option B in the paper).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .layers import activation, conv2d, init_weights


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, act: str):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), activation(act),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
        )
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class ResNet(nn.Module):
    min_size = 8

    def __init__(self, in_channels: int, num_classes: int, depth: int = 20, width: int = 16,
                 act: str = "relu", init: str = "auto", dropout: float = 0.0):
        super().__init__()
        if (depth - 2) % 6 or depth < 8:
            raise ValueError(f"ResNet depth must be 6n+2 (8, 14, 20, 32, ...). Received: {depth}.")
        n = (depth - 2) // 6
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), activation(act))
        blocks, cin = [], width
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            for i in range(n):
                blocks.append(BasicBlock(cin, cout, 2 if stage > 0 and i == 0 else 1, act))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, num_classes))
        init_weights(self, init, act)
        for m in self.modules():  # start every residual branch as a near-identity (zero last BN scale)
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.body[-1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


class ImageNetBlock(nn.Module):
    """ResNet-18's basic block, its parts named as torchvision names them (conv1, bn1, conv2, bn2, downsample), so
    that a torchvision checkpoint loads key for key."""

    def __init__(self, cin: int, cout: int, stride: int, act: str):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = activation(act)
        self.downsample = None if stride == 1 and cin == cout else nn.Sequential(
            conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + shortcut)


class ResNet18(nn.Module):
    """He et al. 2016's ImageNet ResNet-18 (11.7 M parameters): a 7x7 stride-2 stem and max pooling, then four
    stages of two basic blocks with 64, 128, 256 and 512 channels. For --init-from a torchvision checkpoint
    (resnet18-f37072fd.pth and its like): the names and shapes are torchvision's, the head (fc) is new."""
    min_size = 32

    def __init__(self, in_channels: int, num_classes: int, act: str = "relu", init: str = "auto",
                 dropout: float = 0.0):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = activation(act)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64
        for i, cout in enumerate((64, 128, 256, 512), 1):
            setattr(self, f"layer{i}", nn.Sequential(ImageNetBlock(cin, cout, 1 if i == 1 else 2, act),
                                                     ImageNetBlock(cout, cout, 1, act)))
            cin = cout
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(512, num_classes)
        init_weights(self, init, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))
