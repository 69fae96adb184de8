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


class Embedder(nn.Module):
    """A backbone that ends in `size` numbers, batch-normalised (as ArcFace's), then scaled to length 1."""

    def __init__(self, backbone: nn.Module, size: int):
        super().__init__()
        self.backbone = backbone
        self.norm = nn.BatchNorm1d(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.norm(self.backbone(x)), dim=1)


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
