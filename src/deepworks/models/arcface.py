"""An embedding that puts one person's faces close together: a network ends in D numbers, normalised to length 1,
trained with ArcFace's additive angular margin (Deng et al. 2019). During training each person of the training set
has a direction; the logit of a face for its own person is s * cos(theta + m), where theta is the angle between the
face's embedding and its person's direction, so a face must lie m radians closer to its own person than a plain
softmax would ask. At use only the embedding is kept: faces are compared by the cosine of their embeddings, so people
never seen in training can be enrolled and recognised."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


LITE0_BLOCKS = 11   # EfficientNet-Lite0's blocks kept: to 1/16 of the size (bench/faces.py: the best of 11, 14, 16)
LITE0_SIDE = 160    # the side faces are shown to Lite0 at (its 1/16 is then 10 x 10)
GRID = 3            # features are averaged on a GRID x GRID grid: where on the face a feature is matters


class Lite0Trunk(nn.Module):
    """EfficientNet-Lite0's stem and first LITE0_BLOCKS blocks, named as the whole network's so that its ImageNet
    weights load by name; faces are scaled to LITE0_SIDE pixels first."""

    def __init__(self):
        super().__init__()
        from .efficientnet import EfficientNetLite0

        net = EfficientNetLite0()
        self._conv_stem, self._bn0 = net._conv_stem, net._bn0
        self._blocks = nn.ModuleList(net._blocks[:LITE0_BLOCKS])
        self.channels = net._blocks[LITE0_BLOCKS - 1]._project_conv.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=(LITE0_SIDE, LITE0_SIDE), mode="bilinear", align_corners=False)
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return x


class ScratchTrunk(nn.Module):
    """A small residual network from scratch: a strided stem, then four stages that halve the size (112 -> 7)."""

    def __init__(self, width: int = 32):
        super().__init__()
        from .resnet import BasicBlock

        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        widths = (width, 2 * width, 4 * width, 8 * width)
        self.blocks = nn.Sequential(*(BasicBlock(cin, cout, 1 if i == 0 else 2, "relu")
                                      for i, (cin, cout) in enumerate(zip((width,) + widths[:-1], widths))))
        self.channels = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))


class FaceEmbedder(nn.Module):
    """Pixels (N, 3, S, S), 0-255 -> unit embeddings (N, size): the trunk's features averaged on a `grid` x `grid`
    grid (1: their mean), projected linearly, scaled to length 1. `margin` holds the training people's directions
    (ArcFace), used by training alone."""

    def __init__(self, trunk: nn.Module, channels: int, size: int, people: int, mean, std, grid: int = GRID):
        super().__init__()
        self.backbone, self.grid = trunk, grid
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255)
        self.project = nn.Linear(channels * grid * grid, size)
        self.margin = ArcMargin(size, people)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """What the projection takes: (N, channels x GRID x GRID)."""
        x = (x.float() - self.mean) / self.std
        return F.adaptive_avg_pool2d(self.backbone(x), self.grid).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.project(self.features(x)), dim=1)


class ArcMargin(nn.Module):
    """Logits (N, people) of unit embeddings (N, D) for cross-entropy, the true person's with the angular margin."""

    def __init__(self, size: int, people: int, margin: float = 0.5, scale: float = 30.0):
        super().__init__()
        self.directions = nn.Parameter(torch.empty(people, size))
        nn.init.xavier_uniform_(self.directions)
        self.margin, self.scale = margin, scale

    def forward(self, embeddings: torch.Tensor, people: torch.Tensor) -> torch.Tensor:
        cos = (embeddings @ F.normalize(self.directions, dim=1).T).clamp(-1 + 1e-7, 1 - 1e-7)
        own = cos.gather(1, people[:, None])
        theta = own.acos()
        # cos(theta + m) while theta + m stays below pi (past it the cosine would rise again and reward a worse
        # angle); beyond, a straight continuation that keeps falling (ArcFace's own fix)
        pushed = torch.where(theta + self.margin < math.pi, (theta + self.margin).cos(),
                             own - self.margin * math.sin(self.margin))
        return self.scale * cos.scatter(1, people[:, None], pushed)
