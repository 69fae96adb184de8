"""Representations: how a hidden layer arranges the test images, projected to 2-D, at several epochs.

Early in training the classes overlap in every layer; as the network learns, the last hidden layer pulls
each class into its own cluster, which is what lets the final linear layer separate them. The image task
keeps a copy of the weights at epochs 1, 2, 4, 8, ... (`RUN/snapshots/`) so this can be watched afterwards.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..errors import ConfigError
from .features import captured, find_layer

METHODS = ("pca", "tsne")


def last_linear(model: nn.Module) -> tuple[str, nn.Module]:
    linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError("This model has no linear output layer; pass --layer to choose one.")
    return linears[-1]


@torch.no_grad()
def hidden_activations(model: nn.Module, pixels: torch.Tensor, layer: str | None = None,
                       batch_size: int = 500) -> np.ndarray:
    """(N, D) activations of `layer` (default: what the output layer receives, the last hidden representation)."""
    inner = getattr(model, "model", model)  # a PixelModel's classifier: layer names as the user sees them
    module, inputs = (last_linear(inner)[1], True) if layer is None else (find_layer(inner, layer), False)
    device = next(model.parameters()).device
    out = []
    with captured(module, inputs=inputs) as seen:
        for i in range(0, len(pixels), batch_size):
            model(pixels[i:i + batch_size].to(device))
            out.append(seen[0].flatten(1).float().cpu())
    return torch.cat(out).numpy()


def project(activations: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """(N, D) -> (N, 2) by PCA, or by t-SNE (slower, keeps neighbourhoods rather than distances)."""
    if method not in METHODS:
        raise ConfigError(f"Unknown projection {method!r}. Choose pca or tsne.")
    if activations.shape[1] < 2:
        return np.pad(activations, ((0, 0), (0, 2 - activations.shape[1])))
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(activations)
    from sklearn.manifold import TSNE

    perplexity = min(30.0, max(2.0, (len(activations) - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(activations)


def separability(activations: np.ndarray, labels: np.ndarray, seed: int = 0) -> float:
    """Accuracy of a linear classifier on half the points, scored on the other half: how linearly
    separable the classes are in this representation."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    half = len(order) // 2
    fit, held = order[:half], order[half:]
    if len(np.unique(labels[fit])) < 2:
        return float("nan")
    clf = LogisticRegression(max_iter=500).fit(activations[fit], labels[fit])
    return float(clf.score(activations[held], labels[held]))


def plot_projections(panels: list[dict], labels: np.ndarray, classes: list[str], path: Path, title: str) -> Path:
    """One scatter per panel ({'title', 'points'}), coloured by true class, with a shared legend."""
    from ..report import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.8), squeeze=False)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for ax, panel in zip(axes[0], panels):
        for c in range(len(classes)):
            pts = panel["points"][labels == c]
            ax.scatter(pts[:, 0], pts[:, 1], s=5, color=cmap(c % cmap.N), label=classes[c], alpha=0.7)
        ax.set_title(panel["title"], fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if len(classes) <= 20:
        axes[0][-1].legend(fontsize=7, markerscale=2, loc="center left", bbox_to_anchor=(1, 0.5))
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path)
    return path
