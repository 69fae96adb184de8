"""Differentiable augmentation for GANs (the idea of Zhao et al. 2020, "DiffAugment"; written here from the paper).

A discriminator trained on a few thousand images memorises them, and then its judgement tells the generator nothing
useful: the samples collapse. Augmenting the real images alone would teach the generator to make augmented images.
DiffAugment applies the same random transformations to real *and* generated images, every time the discriminator
sees either (in its own step and in the generator's), and the transformations are differentiable, so the
generator's gradient flows back through them.

Policies, joined with '+': translation (a shift of up to 1/8 of the side, filled with 0, the middle grey of
[-1, 1]), cutout (a square of half the side set to 0) and colour (brightness, and contrast; saturation too for
colour images). Each draws from torch's random generator on the images' device, so a seeded run is repeatable, and
none has a backward pass that sums gradients in an order a GPU may change (replicate padding's does).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

POLICIES = ("translation", "cutout", "colour")


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by its own random offset of up to `ratio` of its side, the uncovered border 0."""
    n, _, h, w = x.shape
    p = max(1, round(min(h, w) * ratio))
    padded = F.pad(x, (p, p, p, p)).permute(0, 2, 3, 1)
    dy = torch.randint(-p, p + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-p, p + 1, (n, 1, 1), device=x.device)
    rows = (torch.arange(h, device=x.device).view(1, h, 1) + p + dy).expand(n, h, w)
    cols = (torch.arange(w, device=x.device).view(1, 1, w) + p + dx).expand(n, h, w)
    batch = torch.arange(n, device=x.device).view(n, 1, 1).expand(n, h, w)
    return padded[batch, rows, cols].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Set a square of `ratio` of the side, centred anywhere on each image, to 0 (the middle of [-1, 1])."""
    n, _, h, w = x.shape
    size_h, size_w = max(1, round(h * ratio)), max(1, round(w * ratio))
    cy = torch.randint(0, h, (n, 1, 1), device=x.device)
    cx = torch.randint(0, w, (n, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    dy, dx = ys - cy, xs - cx  # the square spans [-size // 2, size - size // 2) around its centre: size pixels
    inside = (dy >= -(size_h // 2)) & (dy < size_h - size_h // 2) & (dx >= -(size_w // 2)) & (dx < size_w - size_w // 2)
    return x * (~inside).unsqueeze(1).to(x.dtype)


def colour(x: torch.Tensor) -> torch.Tensor:
    """Random brightness (+-0.5) and contrast (x0.5-1.5), and saturation (x0-2) for colour images."""
    n = len(x)
    shape = (n, 1, 1, 1)
    x = x + (torch.rand(shape, device=x.device, dtype=x.dtype) - 0.5)
    if x.shape[1] == 3:
        grey = x.mean(1, keepdim=True)
        x = (x - grey) * (torch.rand(shape, device=x.device, dtype=x.dtype) * 2) + grey
    mean = x.mean((1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(shape, device=x.device, dtype=x.dtype) + 0.5) + mean


FUNCTIONS = {"translation": translation, "cutout": cutout, "colour": colour}


def parse_policy(policy: str | None) -> tuple[str, ...]:
    """'translation+cutout' -> ('translation', 'cutout'); None or 'none' -> ()."""
    if not policy or policy == "none":
        return ()
    names = tuple(policy.split("+"))
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise ValueError(f"Expected DiffAugment policies joined with '+', from: {', '.join(POLICIES)}. "
                         f"Received: {policy!r}.")
    return names


def diff_augment(x: torch.Tensor, policy: tuple[str, ...]) -> torch.Tensor:
    """x (N, C, H, W) in [-1, 1], through each transformation of the policy in the order colour, translation,
    cutout (the paper's)."""
    for name in sorted(policy, key=("colour", "translation", "cutout").index):
        x = FUNCTIONS[name](x)
    return x
