"""Feature visualisation: what a class, or one channel of one layer, responds to; and the first layer's filters.

Activation maximisation starts from grey noise and follows the gradient of the chosen activation with
respect to the pixels. Left alone, that produces high-frequency noise the network happens to like; the
usual regularisers (Olah et al., "Feature Visualization", Distill 2017) keep it readable: the image is
randomly shifted (jitter) before each step, blurred now and then, and its pixels pulled gently towards grey.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from . import one_thread


def layer_names(model: nn.Module) -> list[str]:
    """Names of the layers with parameters or activations worth looking at (convolutions, linear layers, activations)."""
    kinds = (nn.Conv2d, nn.Linear, nn.ReLU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.GELU, nn.ELU, nn.SiLU)
    return [name for name, m in model.named_modules() if name and isinstance(m, kinds)]


def find_layer(model: nn.Module, name: str) -> nn.Module:
    modules = dict(model.named_modules())
    if name not in modules or not name:
        raise ConfigError(f"--layer {name!r} is not a layer of this model. Its layers are: "
                          f"{', '.join(layer_names(model))}.")
    return modules[name]


@contextmanager
def captured(module: nn.Module, inputs: bool = False):
    """Record a module's output (or its input) on each forward pass: `with captured(layer) as seen: ...; seen[0]`."""
    seen: list[torch.Tensor] = []

    def hook(_module, args, output):
        seen[:] = [args[0] if inputs else output]

    handle = module.register_forward_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


def blur(x: torch.Tensor) -> torch.Tensor:
    """A 3x3 binomial blur of every channel."""
    k = torch.tensor([1.0, 2.0, 1.0], device=x.device)
    kernel = (k[:, None] * k[None, :] / 16).expand(x.shape[1], 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=x.shape[1])


def maximise(model: nn.Module, shape: tuple[int, int, int], objective, steps: int = 128, lr: float = 0.01,
             jitter: int = 2, blur_every: int = 4, decay: float = 0.01, seed: int = 0) -> torch.Tensor:
    """Pixels (1, C, H, W) in [0, 1] that make `objective(model, pixels)` (a scalar) large, regularised."""
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    x = (0.5 + 0.02 * torch.randn((1, *shape), generator=g)).to(device).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    with one_thread():
        for step in range(steps):
            dy, dx = (torch.randint(-jitter, jitter + 1, (2,), generator=g).tolist() if jitter else (0, 0))
            shifted = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
            loss = -objective(model, shifted) + decay * ((x - 0.5) ** 2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                if blur_every and step % blur_every == 0 and step < steps - 1:
                    x.copy_(blur(x))
                x.clamp_(0, 1)
    return x.detach()


def class_objective(target: int):
    return lambda model, x: model(x)[0, target]


def channel_objective(layer: nn.Module, channel: int):
    def objective(model, x):
        with captured(layer) as seen:
            model(x)
        out = seen[0]
        if channel >= out.shape[1]:
            raise ConfigError(f"--channel {channel} is out of range: that layer has {out.shape[1]} channels "
                              f"(0 to {out.shape[1] - 1}).")
        return out[0, channel].mean()
    return objective


def first_layer_filters(model: nn.Module, shape: tuple[int, int, int], limit: int = 64) -> tuple[str, np.ndarray]:
    """The first convolution's (or linear layer's) weights as images (K, C, h, w), each scaled to [0, 1].
    For an MLP, each of the first `limit` units' weights is shown as an image of the input `shape`."""
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            w = m.weight.detach().float().cpu()[:limit]
            if isinstance(m, nn.Linear):
                w = w.reshape(-1, *shape)
            lo = w.flatten(1).min(1).values.view(-1, 1, 1, 1)
            hi = w.flatten(1).max(1).values.view(-1, 1, 1, 1)
            return name, ((w - lo) / (hi - lo).clamp_min(1e-12)).numpy()
    raise ConfigError("This model has no convolution or linear layer to show.")


def plot_images(images: list[np.ndarray], titles: list[str], path: Path, title: str, cols: int = 8,
                cmap: str | None = None) -> Path:
    """A grid of float images (C, H, W) in [0, 1] with small titles."""
    from ..report import pyplot, save_figure

    plt = pyplot()
    rows = (len(images) + cols - 1) // cols
    cols = min(cols, len(images))
    fig, axes = plt.subplots(rows, cols, figsize=(1.5 * cols, 1.6 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, t in zip(axes.flat, images, titles):
        pic = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
        ax.imshow(pic, cmap=cmap or ("gray" if img.shape[0] == 1 else None), vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_title(t, fontsize=8)
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path)
    return path
