"""A multi-layer perceptron: flatten, then `depth` hidden layers of `width` units."""

from __future__ import annotations

import torch
import torch.nn as nn

from .layers import activation, init_weights


class MLP(nn.Module):
    min_size = 1

    def __init__(self, in_features: int, num_classes: int, depth: int = 2, width: int = 256,
                 act: str = "relu", init: str = "auto", dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        features = in_features
        for _ in range(depth):
            layers += [nn.Linear(features, width), activation(act)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            features = width
        layers.append(nn.Linear(features, num_classes))
        self.net = nn.Sequential(*layers)
        init_weights(self, init, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
