"""Attributions: which pixels made the model say a class, through Captum.

Integrated gradients (Sundararajan et al. 2017) average the gradient along the straight path from a
baseline (black, by default) to the image and multiply by the difference; the attributions of all
pixels add up to the change of the class's logit between baseline and image (completeness), which
`attribute` reports as the convergence delta. Gradient x input is the one-step version: quick, noisier.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

METHODS = {"integrated-gradients": "integrated gradients", "gradient-x-input": "gradient x input"}


def attribute(model: nn.Module, pixels: torch.Tensor, target: int, method: str = "integrated-gradients",
              steps: int = 64, baseline: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
    """Per-pixel attributions (same shape as pixels (1, C, H, W)) to the logit of `target`, and the
    completeness gap: attributions' sum minus (logit(image) - logit(baseline)); about 0 for integrated gradients."""
    from captum.attr import InputXGradient, IntegratedGradients

    base = torch.zeros_like(pixels) if baseline is None else baseline
    if method == "integrated-gradients":
        attr, delta = IntegratedGradients(model).attribute(pixels, baselines=base, target=target, n_steps=steps,
                                                           method="gausslegendre", return_convergence_delta=True)
        return attr.detach(), float(delta.abs().max())
    if method == "gradient-x-input":
        attr = InputXGradient(model).attribute(pixels.clone().requires_grad_(True), target=target).detach()
        with torch.no_grad():
            change = float(model(pixels)[0, target] - model(base)[0, target])
        return attr, float(attr.sum()) - change
    raise ValueError(f"unknown attribution method {method!r}")


def heat(attr: torch.Tensor) -> np.ndarray:
    """Attributions (1, C, H, W) -> an (H, W) map in [-1, 1]: summed over channels, scaled by the 99th percentile
    of its magnitude so that one extreme pixel does not wash out the rest."""
    a = attr[0].sum(0).cpu().numpy()
    scale = np.percentile(np.abs(a), 99) or 1.0
    return np.clip(a / scale, -1, 1)


def plot_explanation(image: np.ndarray, rows: list[dict], path: Path, title: str) -> Path:
    """One row per (method, class): the image, the attribution map (red for, blue against), and an overlay."""
    from ..report import pyplot, save_figure

    plt = pyplot()
    picture = image.transpose(1, 2, 0).squeeze(-1) if image.shape[0] == 1 else image.transpose(1, 2, 0)
    cmap = "gray" if picture.ndim == 2 else None
    fig, axes = plt.subplots(len(rows), 3, figsize=(7.5, 2.6 * len(rows)), squeeze=False)
    for ax_row, row in zip(axes, rows):
        ax_row[0].imshow(picture, cmap=cmap, vmin=0, vmax=255)
        ax_row[0].set_title(row["caption"], fontsize=9)
        ax_row[1].imshow(row["map"], cmap="bwr", vmin=-1, vmax=1)
        ax_row[1].set_title(f"{row['method']}: {row['class']}", fontsize=9)
        ax_row[2].imshow(picture, cmap=cmap, vmin=0, vmax=255)
        ax_row[2].imshow(np.clip(row["map"], 0, 1), cmap="Reds", alpha=0.6, vmin=0, vmax=1)
        ax_row[2].set_title("evidence for the class", fontsize=9)
        for ax in ax_row:
            ax.axis("off")
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path)
    return path
