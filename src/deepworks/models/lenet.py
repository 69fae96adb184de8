"""LeNet-5 (LeCun, Bottou, Bengio, Haffner 1998), adapted to 28 and 32 px input.

Two 5x5 convolutions (6 and 16 maps), each followed by 2x2 pooling, then fully
connected layers of 120, 84 and one unit per class. The paper's input is 32 px;
for 28 px (MNIST) the first convolution pads by 2 so the feature maps keep the
paper's sizes (28 -> 14 -> 10 -> 5). The 1998 network used scaled tanh and
average pooling; the defaults here (ReLU, max pooling) train faster, and
`activation='tanh', pool='avg'` gives the original flavour. `width` w widens it to w and 2w maps and dense
layers of 8w and 4w units (robust training needs the capacity: Madry et al. 2018).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .layers import activation, init_weights


class LeNet5(nn.Module):
    min_size = 28

    def __init__(self, in_channels: int, num_classes: int, image_size: int = 28, act: str = "relu",
                 init: str = "auto", dropout: float = 0.0, pool: str = "max", width: int | None = None):
        super().__init__()
        pad = 2 if image_size < 32 else 0
        side = ((image_size + 2 * pad - 4) // 2 - 4) // 2
        Pool = nn.MaxPool2d if pool == "max" else nn.AvgPool2d
        c1, c2, f1, f2 = (6, 16, 120, 84) if width is None else (width, 2 * width, 8 * width, 4 * width)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 5, padding=pad), activation(act), Pool(2),
            nn.Conv2d(c1, c2, 5), activation(act), Pool(2),
            nn.Flatten(),
        )
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(c2 * side * side, f1), activation(act),
            nn.Dropout(dropout), nn.Linear(f1, f2), activation(act),
            nn.Linear(f2, num_classes),
        )
        init_weights(self, init, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
