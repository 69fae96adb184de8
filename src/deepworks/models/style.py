"""Fast neural style transfer (Johnson, Alahi & Fei-Fei 2016): a feed-forward network that paints any photo in one
style, trained with a perceptual loss measured by a frozen, pretrained classifier.

- `StyleNet`, Johnson's image transformation network: a 9x9 convolution, two stride-2 convolutions, residual blocks
  at a quarter of the size, two nearest-neighbour enlargements each followed by a convolution (Odena et al.'s cure
  for the checkerboard of transposed convolutions), a 9x9 convolution to RGB. It adds its answer to the photo and
  its last layer starts at zero, so training starts from the photo itself. Batch norm, as Johnson's first version
  had (not instance norm): at use it is a fixed scale and shift, so a large photo can be painted in tiles with
  margins and join without seams (tasks/restore_face.py), which statistics per tile or per photo would not allow.
- `PerceptualLoss` on EfficientNet-Lite0's ImageNet features, where the classic recipe uses VGG-16's (no VGG
  weights can be had here; deepworks[pretrained] ships Lite0's). The style is the covariance (centred Gram matrix)
  of the activations after three depthwise convolutions, at 1/2, 1/4 and 1/8 of the size; the content is the
  activations at 1/4. Each distance is relative (divided by the target's own magnitude), so the layers weigh alike
  and 1.0 means "as far as nothing at all".
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

STYLE_BLOCKS = (0, 2, 4)  # Lite0's blocks whose inner activations make the style: 1/2, 1/4 and 1/8 of the size
CONTENT_BLOCK = 2            # and the content: 1/4 of the size, 144 channels


def conv(cin: int, cout: int, kernel: int, stride: int = 1, bias: bool = True) -> nn.Sequential:
    return nn.Sequential(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(cin, cout, kernel, stride, bias=bias))


def conv_norm_relu(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """A convolution without bias (the batch norm after it has its own shift: a bias there would get no gradient
    but rounding noise, which Adam would turn into steps), batch norm, ReLU."""
    return nn.Sequential(*conv(cin, cout, kernel, stride, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Residual(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(*conv_norm_relu(width, width, 3), *conv(width, width, 3, bias=False),
                                  nn.BatchNorm2d(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class StyleNet(nn.Module):
    """forward(RGB 0-1 (N, 3, H, W), H and W multiples of 4) -> the painted RGB (N, 3, H, W)."""

    scale = 1
    multiple = 4

    def __init__(self, width: int = 16, blocks: int = 5):
        super().__init__()
        c1, c2, c3 = width, 2 * width, 4 * width
        self.down = nn.Sequential(conv_norm_relu(3, c1, 9), conv_norm_relu(c1, c2, 3, 2), conv_norm_relu(c2, c3, 3, 2))
        self.body = nn.Sequential(*[Residual(c3) for _ in range(blocks)])
        self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv_norm_relu(c3, c2, 3),
                                nn.Upsample(scale_factor=2, mode="nearest"), conv_norm_relu(c2, c1, 3), conv(c1, 3, 9))
        last = self.up[-1][1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        # the margin a tile (its corners on multiples of 4) needs on each side to come out as in one pass: the
        # farthest input pixel the gradient of an output pixel reaches, measured: 24, 32 and 56 pixels for 1, 2 and
        # 5 residual blocks (each adds 2 convolutions at a quarter of the size: 8 pixels)
        self.reach = 16 + 8 * blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.body(self.down(x - 0.5)))


def build_stylenet(width: int | None, depth: int | None) -> StyleNet:
    return StyleNet(width or 16, 5 if depth is None else depth)


def covariance(features: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, C): the channels' covariance over the positions, a centred Gram matrix. Scaled before
    the product, so that its sums of many positions stay small."""
    f = features.flatten(2)
    f = (f - f.mean(2, keepdim=True)) / f.shape[2] ** 0.5
    return f @ f.transpose(1, 2)


def relative(a: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per example, the squared distance of `a` from `target` over the target's own square: 1.0 is as far as zero."""
    dims = tuple(range(1, a.dim()))
    return ((a - target) ** 2).sum(dims) / (target ** 2).sum(dims).clamp_min(1e-8)


class PerceptualLoss(nn.Module):
    """style(y), content(y, x) and their weighted sum, against one style picture, on a frozen Lite0."""

    def __init__(self, lite0: nn.Module, style: torch.Tensor, mean, std):
        """`style`: the style picture, RGB 0-1 (3, H, W); `lite0` with its ImageNet weights, `mean` and `std` its
        input normalisation."""
        super().__init__()
        self.net = lite0.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        with torch.no_grad(), torch.autocast(style.device.type, enabled=False):
            found = self.activations(style[None].float())
        for b in STYLE_BLOCKS:
            self.register_buffer(f"style_{b}", covariance(found[b]))

    def activations(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """RGB 0-1 -> {block: its activations after the depthwise convolution and ReLU6}, up to the last block the
        loss reads. The blocks' own forward (models/efficientnet.py) returns only their projected output, which is
        linear (no ReLU) and narrow; the loss reads the wider, rectified activations inside them."""
        net, wanted = self.net, set(STYLE_BLOCKS) | {CONTENT_BLOCK}
        x = F.relu6(net._bn0(net._conv_stem((x - self.mean) / self.std)))
        found = {}
        for i, block in enumerate(net._blocks[:max(wanted) + 1]):
            inner = F.relu6(block._bn0(block._expand_conv(x))) if block.expand else x
            inner = F.relu6(block._bn1(block._depthwise_conv(inner)))
            if i in wanted:
                found[i] = inner
            out = block._bn2(block._project_conv(inner))
            x = x + out if block.shortcut else out
        return found

    def forward(self, painted: torch.Tensor, photo: torch.Tensor,
                pooled: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(style distance, content distance) per example, for painted and original photos RGB 0-1 (N, 3, H, W).
        pooled: the style's statistics are taken over the whole batch, as over one picture (the style distance is
        then the same for every example). Training uses it: a patch holds too few positions to show a style's
        statistics (a 64-pixel crop of the style picture itself is far from it), a batch of them enough."""
        with torch.autocast(painted.device.type, enabled=False):  # float32: statistics of many positions
            ours = self.activations(painted.float())
            with torch.no_grad():
                theirs = self.activations(photo.float())[CONTENT_BLOCK]
            style = torch.stack([self.style_distance(ours[b], b, pooled) for b in STYLE_BLOCKS]).mean(0)
            return style, relative(ours[CONTENT_BLOCK], theirs)

    def style_distance(self, features: torch.Tensor, block: int, pooled: bool) -> torch.Tensor:
        target = getattr(self, f"style_{block}")
        if not pooled:
            return relative(covariance(features), target.expand(len(features), -1, -1))
        together = features.transpose(0, 1).flatten(1)[None]  # (1, C, N * H * W)
        return relative(covariance(together[..., None]), target).expand(len(features))
