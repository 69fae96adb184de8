"""A fast network for small colour photos, after Keller Jordan's airbench94 (2024): CIFAR-10 to 94 % in under 10
epochs, the fastest recipe of the CIFAR-10 speed runs. deepworks' default for sets of many small photos.

The shape: a 2x2 convolution whose filters are fixed to whiten the training images' patches (each of the 12
directions of pixel variation scaled to unit variance, given as + and -: 24 maps), then three groups of two 3x3
convolutions (the first followed by 2x2 max pooling), each convolution followed by batch norm and GELU, then the
largest value of each map (airbench94's 3x3 max pool, at 32 px), and a linear layer whose output is divided by 9.
The batch norms have no scale of their own, only a shift: a convolution before each can set the scale, so the
network's output does not change when a convolution's weights are multiplied by a constant, and weight decay with a
high learning rate sets how fast they move. The shifts are not scale-free, so they learn `BIAS_LR` times faster
(`parameter_groups`).

`width` w gives w, 4w and 4w maps in the three groups (default 64: airbench94's 64, 256 and 256). An epoch of
CIFAR-10 on two cores of an Intel Xeon took about 170 s in float32 and 50 s in bf16 (AMX); width 32 costs a quarter.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

BIAS_LR = 64.0  # the batch norms' shifts learn this many times faster than the weights (airbench94's bias_scaler)
WHITEN_EPS = 5e-4  # added to each patch direction's variance before scaling by its inverse square root
WHITEN_IMAGES = 5000  # the training images whose 2x2 patches set the whitening filters


class ShiftOnlyNorm(nn.BatchNorm2d):
    """Batch norm with a learned shift and no learned scale (the scale stays 1)."""

    def __init__(self, channels: int):
        super().__init__(channels, eps=1e-12, momentum=0.4)
        self.weight.requires_grad_(False)


def conv3x3(cin: int, cout: int) -> nn.Conv2d:
    """A 3x3 convolution (same size out) whose first `cin` filters start as the identity, so each group starts by
    passing its input on (airbench's Dirac initialisation)."""
    conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
    with torch.no_grad():
        nn.init.dirac_(conv.weight[:min(cin, cout)])
    return conv


class ConvGroup(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1, self.pool, self.norm1 = conv3x3(cin, cout), nn.MaxPool2d(2), ShiftOnlyNorm(cout)
        self.conv2, self.norm2, self.act = conv3x3(cout, cout), ShiftOnlyNorm(cout), nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm1(self.pool(self.conv1(x))))
        return self.act(self.norm2(self.conv2(x)))


class AirBench(nn.Module):
    min_size = 16  # three halvings need at least 2x2 maps after the whitening layer
    # Trains in bf16 where the CPU has bf16 units and --amp is auto (training/engine.py: autocast_for): an epoch of
    # CIFAR-10 took 53 s in bf16 and 169 s in float32 on two cores of an Intel Xeon with AMX.
    bf16_on_cpu = True

    def __init__(self, in_channels: int, num_classes: int, width: int | None = None, mirror: bool = False):
        super().__init__()
        self.mirror = mirror  # trained on mirrored images too: predictions average the image's and its mirror's
        w = width or 64
        whiten_maps = 2 * in_channels * 4
        self.whiten = nn.Conv2d(in_channels, whiten_maps, 2, bias=True)
        self.whiten.weight.requires_grad_(False)
        self.groups = nn.Sequential(ConvGroup(whiten_maps, w), ConvGroup(w, 4 * w), ConvGroup(4 * w, 4 * w))
        self.head = nn.Linear(4 * w, num_classes, bias=False)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits; in eval mode, for a model trained on mirrored images too, the average of the image's and its
        mirror image's (a point more accuracy for twice the work, the same in every use of the model: predict,
        serve and the exported graphs)."""
        if self.training or not self.mirror:
            return self.logits(x)
        return (self.logits(x) + self.logits(x.flip(-1))) / 2

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)  # as the weights are kept (engine.setup): a tenth faster
        x = self.groups(self.act(self.whiten(x)))
        x = F.adaptive_max_pool2d(x, 1).flatten(1)
        return self.head(x) / 9

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor, prepare=None) -> None:
        """Set the whitening filters from training images (N, C, H, W), as `prepare` turns them into the model's
        input (normalised): the eigenvectors of the 2x2 patches' covariance, each divided by the square root of its
        variance, given as + and -."""
        c, k = x.shape[1], self.whiten.kernel_size[0]
        covariance, count = torch.zeros(c * k * k, c * k * k, dtype=torch.float64), 0
        for i in range(0, min(len(x), WHITEN_IMAGES), 100):  # a hundred images at a time: large photos fit too
            batch = x[i:i + 100] if prepare is None else prepare(x[i:i + 100])
            patches = batch.float().unfold(2, k, 1).unfold(3, k, 1).transpose(1, 3).reshape(-1, c * k * k)
            covariance += (patches.T @ patches).double()
            count += len(patches)
        variances, directions = torch.linalg.eigh((covariance / count).float())
        filters = (directions.T / torch.sqrt(variances.clamp_min(0) + WHITEN_EPS)[:, None]).flip(0)
        filters = filters.reshape(c * k * k, c, k, k)
        self.whiten.weight.copy_(torch.cat((filters, -filters)))

    def parameter_groups(self, lr: float, weight_decay: float, optimizer: str) -> list[dict]:
        """With SGD, the batch norms' shifts at BIAS_LR times the rate, with the same decay per step (weight decay /
        BIAS_LR: SGD's decay is multiplied by the rate); everything else as given. Adaptive optimizers (Adam's kind)
        scale each parameter's steps themselves: one group."""
        rest = [p for p in self.parameters() if p.requires_grad]
        if optimizer not in ("sgd", "momentum", "nesterov"):
            return [{"params": rest}]
        shifts = [m.bias for m in self.modules() if isinstance(m, ShiftOnlyNorm)]
        ids = {id(p) for p in shifts}
        rest = [p for p in rest if id(p) not in ids]
        return [{"params": rest, "lr": lr, "weight_decay": weight_decay},  # first: the rate progress shows
                {"params": shifts, "lr": lr * BIAS_LR, "weight_decay": weight_decay / BIAS_LR}]
