"""MTCNN (Zhang et al. 2016): three small networks in a cascade find faces and five landmarks (the eyes, the nose,
the corners of the mouth), and a similarity transform on the landmarks aligns each face to 112 x 112.

The networks are defined here with the parameter names of the weights that ship in the `facenet-pytorch` wheel
(MIT; a port of the authors' Caffe models), read by models/face_weights.py without installing that wheel (it pins an
old torch). deepworks writes the cascade itself; its non-maximum suppression is detection's (metrics/boxes.py):
torchvision, which holds the usual one, cannot be installed beside this torch.

The cascade, for one photo (uint8 RGB):
1. PNet, a fully convolutional net, runs over a pyramid of the photo (each level 0.709 times the last, the first
   scaled so that the smallest face asked for is 12 pixels): every 12 x 12 window it believes a face (probability
   over thresholds[0]) becomes a box, refined by PNet's regression; overlapping boxes are merged (NMS).
2. RNet looks again at each candidate, cut out and resized to 24 x 24, and keeps those over thresholds[1].
3. ONet looks at 48 x 48 cuts, keeps those over thresholds[2], and places the five landmarks.
Pixels are scaled as the networks were trained: (p - 127.5) / 128. Boxes are (x1, y1, x2, y2) in the photo's
pixels, landmarks (x, y).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..metrics.boxes import nms

MIN_FACE = 20                  # the smallest face, in pixels, looked for by default
THRESHOLDS = (0.6, 0.7, 0.9)   # each stage's face probability to keep a box: the authors' 0.6 and 0.7, then 0.9
                               # for the last (bench/faces.py: the same recall as 0.7, a third of the false faces)
PYRAMID_STEP = 0.709           # each pyramid level's size against the one before (about 1/sqrt(2))
MAX_CANDIDATES = 5000          # boxes at most that go from one stage to the next (the most probable)


def conv_prelu(cin: int, cout: int, kernel: int) -> list:
    return [nn.Conv2d(cin, cout, kernel), nn.PReLU(cout)]


class PNet(nn.Module):
    """(N, 3, H, W) scaled pixels -> (box regression (N, 4, h, w), face probability (N, h, w)): one answer per
    12 x 12 window at a stride of 2."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = conv_prelu(3, 10, 3)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = conv_prelu(10, 16, 3)
        self.conv3, self.prelu3 = conv_prelu(16, 32, 3)
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), self.conv4_1(x).softmax(1)[:, 1]


class RNet(nn.Module):
    """(N, 3, 24, 24) -> (box regression (N, 4), face probability (N,))."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = conv_prelu(3, 28, 3)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = conv_prelu(28, 48, 3)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = conv_prelu(48, 64, 2)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = self.prelu4(self.dense4(caffe_flatten(x)))
        return self.dense5_2(x), self.dense5_1(x).softmax(1)[:, 1]


class ONet(nn.Module):
    """(N, 3, 48, 48) -> (box regression (N, 4), landmarks (N, 10): five x then five y as shares of the box, face
    probability (N,))."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = conv_prelu(3, 32, 3)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = conv_prelu(32, 64, 3)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = conv_prelu(64, 64, 3)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = conv_prelu(64, 128, 2)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu5(self.dense5(caffe_flatten(self.prelu4(self.conv4(x)))))
        return self.dense6_2(x), self.dense6_3(x), self.dense6_1(x).softmax(1)[:, 1]


def caffe_flatten(x: torch.Tensor) -> torch.Tensor:
    """Flatten as the Caffe models' dense layers were trained to read: width before height."""
    return x.permute(0, 3, 2, 1).flatten(1)


def counted(boxes: torch.Tensor) -> torch.Tensor:
    """MTCNN's boxes count their last row and column in (Caffe's convention: x2 - x1 + 1 pixels wide): the same boxes
    as the shared NMS measures them, their far edges one pixel on."""
    return boxes + torch.tensor([0.0, 0.0, 1.0, 1.0], device=boxes.device)


def squared(boxes: torch.Tensor) -> torch.Tensor:
    """Each box made square about its centre, on its longer side."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    x1 = boxes[:, 0] + (w - side) / 2
    y1 = boxes[:, 1] + (h - side) / 2
    return torch.stack([x1, y1, x1 + side, y1 + side], 1)


def regressed(boxes: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Boxes moved by a network's regression: each side by its share of the box's width or height."""
    w = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
    h = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
    return boxes + offsets * torch.cat([w, h, w, h], 1)


def window_boxes(offsets: torch.Tensor, probability: torch.Tensor, scale: float, threshold: float) -> torch.Tensor:
    """PNet's answers on one pyramid level -> (K, 9) boxes in the photo's pixels: x1, y1, x2, y2, probability and the
    four offsets, one per 12 x 12 window (stride 2) over `threshold`."""
    ys, xs = torch.nonzero(probability >= threshold, as_tuple=True)
    corner = torch.stack([xs, ys], 1).float()
    start = ((2 * corner + 1) / scale).floor()
    end = ((2 * corner + 12) / scale).floor()
    return torch.cat([start, end, probability[ys, xs, None], offsets[:, ys, xs].T], 1)


def crops(photo: torch.Tensor, boxes: torch.Tensor, side: int) -> torch.Tensor:
    """Each box of the scaled photo (3, H, W) cut out (black beyond the photo's edge, as MTCNN was trained) and
    resized to side x side by area averaging: (K, 3, side, side)."""
    _, h, w = photo.shape
    out = []
    for x1, y1, x2, y2 in boxes[:, :4].round().long().tolist():
        bw, bh = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
        canvas = photo.new_full((3, bh, bw), -127.5 / 128)
        sx, sy, ex, ey = max(x1, 0), max(y1, 0), min(x2 + 1, w), min(y2 + 1, h)
        if ex > sx and ey > sy:
            canvas[:, sy - y1:ey - y1, sx - x1:ex - x1] = photo[:, sy:ey, sx:ex]
        out.append(F.interpolate(canvas[None], size=(side, side), mode="area"))
    return torch.cat(out) if out else photo.new_zeros((0, 3, side, side))


class MTCNN(nn.Module):
    """The cascade. `find(photo)`: uint8 RGB (H, W, 3) -> (boxes (K, 5): x1, y1, x2, y2 and probability, landmarks
    (K, 5, 2)), the most probable face first."""

    def __init__(self):
        super().__init__()
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()
        self.eval()

    @torch.inference_mode()
    def find(self, photo, min_face: int = MIN_FACE, thresholds=THRESHOLDS) -> tuple[torch.Tensor, torch.Tensor]:
        device = next(self.parameters(), torch.zeros(0)).device  # networks swapped for exported ones: the CPU
        x = (torch.tensor(np.asarray(photo), device=device).permute(2, 0, 1).float() - 127.5) / 128
        boxes = self.proposals(x, min_face, thresholds[0])
        boxes = self.refined(x, boxes, thresholds[1])
        return self.placed(x, boxes, thresholds[2])

    def proposals(self, x: torch.Tensor, min_face: int, threshold: float) -> torch.Tensor:
        """Stage 1: PNet over the pyramid -> squared candidate boxes (K, 5)."""
        h, w = x.shape[1:]
        scale, found = 12 / min_face, []
        while min(h, w) * scale >= 12:
            level = F.interpolate(x[None], size=(int(h * scale + 1), int(w * scale + 1)), mode="area")
            offsets, probability = self.pnet(level)
            boxes = window_boxes(offsets[0], probability[0], scale, threshold)
            found.append(boxes[nms(counted(boxes[:, :4]), boxes[:, 4], 0.5)])
            scale *= PYRAMID_STEP
        boxes = torch.cat(found) if found else x.new_zeros((0, 9))
        boxes = boxes[nms(counted(boxes[:, :4]), boxes[:, 4], 0.7)][:MAX_CANDIDATES]
        return torch.cat([squared(regressed(boxes[:, :4], boxes[:, 5:])), boxes[:, 4:5]], 1)

    def refined(self, x: torch.Tensor, boxes: torch.Tensor, threshold: float) -> torch.Tensor:
        """Stage 2: RNet on 24 x 24 cuts -> the boxes it keeps, moved and squared."""
        if not len(boxes):
            return boxes
        offsets, probability = batched(self.rnet, crops(x, boxes, 24))
        keep = probability > threshold
        boxes, offsets, probability = boxes[keep], offsets[keep], probability[keep]
        pick = nms(counted(boxes[:, :4]), probability, 0.7)
        boxes = squared(regressed(boxes[pick, :4], offsets[pick]))
        return torch.cat([boxes, probability[pick, None]], 1)

    def placed(self, x: torch.Tensor, boxes: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage 3: ONet on 48 x 48 cuts -> the faces it keeps, with their five landmarks."""
        if not len(boxes):
            return boxes.new_zeros((0, 5)), boxes.new_zeros((0, 5, 2))
        offsets, points, probability = batched(self.onet, crops(x, boxes, 48))
        keep = probability > threshold
        boxes, offsets, points, probability = boxes[keep, :4], offsets[keep], points[keep], probability[keep]
        size = (boxes[:, 2:] - boxes[:, :2] + 1)
        landmarks = boxes[:, None, :2] + torch.stack([points[:, :5], points[:, 5:]], 2) * size[:, None]
        boxes = regressed(boxes, offsets)
        pick = nms(counted(boxes), probability, 0.7, over="smaller")
        return torch.cat([boxes[pick], probability[pick, None]], 1).cpu(), landmarks[pick].cpu()


def batched(net: nn.Module, x: torch.Tensor, size: int = 512) -> tuple:
    """`net` over `x` in batches of `size` (a busy photo makes thousands of candidates), its answers joined."""
    parts = [net(x[i:i + size]) for i in range(0, len(x), size)]
    return tuple(torch.cat(p) for p in zip(*parts))


# Where the five landmarks of a face aligned to 112 x 112 lie (the ArcFace / InsightFace reference): the eyes, the
# tip of the nose, the corners of the mouth, as (x, y).
REFERENCE = torch.tensor([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
                          [70.7299, 92.2041]])
ALIGNED = 112


def similarity(points: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The 2 x 3 similarity transform (rotation, one scale, shift) that best maps `points` (K, 2) onto `target`,
    by least squares."""
    x, y = points[:, 0].double(), points[:, 1].double()
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rows = torch.cat([torch.stack([x, -y, one, zero], 1), torch.stack([y, x, zero, one], 1)])
    a, b, tx, ty = torch.linalg.lstsq(rows, torch.cat([target[:, 0], target[:, 1]]).double()[:, None]).solution[:, 0]
    return torch.stack([torch.stack([a, -b, tx]), torch.stack([b, a, ty])]).float()


def aligned(photo: torch.Tensor, landmarks: torch.Tensor, side: int = ALIGNED,
            reference: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 RGB (H, W, 3) and one face's landmarks (5, 2) -> the face, uint8 (side, side, 3), turned, scaled and
    moved so that its landmarks fall on `reference` (in the face's pixels; default ArcFace's, scaled to `side`)
    (bilinear; black beyond the photo)."""
    h, w = photo.shape[:2]
    target = REFERENCE * side / ALIGNED if reference is None else torch.as_tensor(reference, dtype=torch.float32)
    forward = similarity(landmarks.float(), target)
    back = torch.linalg.inv(torch.cat([forward, torch.tensor([[0.0, 0.0, 1.0]])]))[:2]
    v, u = torch.meshgrid(torch.arange(side, dtype=torch.float32), torch.arange(side, dtype=torch.float32),
                          indexing="ij")
    source = torch.stack([u, v, torch.ones_like(u)], -1) @ back.T  # (side, side, 2): x, y in the photo
    grid = torch.stack([(2 * source[..., 0] + 1) / w - 1, (2 * source[..., 1] + 1) / h - 1], -1)
    image = torch.tensor(np.asarray(photo)).permute(2, 0, 1).float()[None]
    out = F.grid_sample(image, grid[None], mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8)
