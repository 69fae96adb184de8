"""`deepworks demo representation`: why hidden layers matter, on data made up on the spot.

1. Two interleaved spirals in the plane. A straight line (logistic regression) cannot separate them and
   stays near chance. A network with one hidden layer of tanh units learns to; the figures show its
   hidden layer at several points in training, seen along the output layer's direction (x) and the
   strongest other direction (y): the space bends until one vertical line splits the classes, and the
   input grid, carried through the same layer, shows how it was bent.
2. Two rings, one inside the other. Again no straight line works in (x, y); in polar coordinates
   (radius, angle) a single threshold on the radius does: a better representation, chosen by hand.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from . import one_thread

SNAPSHOT_STEPS = (0, 100, 400, 1500)


def spirals(n: int = 400, noise: float = 0.03, turns: float = 2.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals (n points each half), the second the first turned by 180 degrees."""
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.uniform(0.05, 1, n // 2)) * turns * 2 * math.pi
    arm = np.stack([t * np.cos(t), t * np.sin(t)], 1) / (turns * 2 * math.pi)
    x = np.concatenate([arm, -arm]) + rng.normal(0, noise, (2 * len(t), 2))
    y = np.concatenate([np.zeros(len(t)), np.ones(len(t))]).astype(np.int64)
    return x.astype(np.float32), y


def rings(n: int = 400, noise: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_circles

    x, y = make_circles(n, noise=noise, factor=0.45, random_state=seed)
    return x.astype(np.float32), y.astype(np.int64)


def to_polar(x: np.ndarray) -> np.ndarray:
    return np.stack([np.hypot(x[:, 0], x[:, 1]), np.arctan2(x[:, 1], x[:, 0])], 1)


def linear_accuracy(x: np.ndarray, y: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression

    return float(LogisticRegression().fit(x, y).score(x, y))


class OneHidden(nn.Module):
    def __init__(self, hidden: int = 32):
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(2, hidden), nn.Tanh())
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(x)).squeeze(1)


def train_hidden(x: np.ndarray, y: np.ndarray, hidden: int = 32, steps: int = SNAPSHOT_STEPS[-1], seed: int = 0,
                 snapshots: tuple[int, ...] = SNAPSHOT_STEPS) -> tuple[OneHidden, dict[int, dict], float]:
    """Full-batch Adam on the points; the weights at each snapshot step; the final training accuracy."""
    torch.manual_seed(seed)
    model = OneHidden(hidden)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).float()
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    kept = {}
    with one_thread():
        for step in range(steps + 1):
            if step in snapshots:
                kept[step] = {k: v.clone() for k, v in model.state_dict().items()}
            if step == steps:
                break
            loss = nn.functional.binary_cross_entropy_with_logits(model(xt), yt)
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        accuracy = float(((model(xt) > 0).float() == yt).float().mean())
    return model, kept, accuracy


def hidden_view(model: OneHidden, points: np.ndarray, basis: tuple[np.ndarray, np.ndarray] | None = None):
    """Hidden activations seen in 2-D: along the output weights (x; the decision is x > threshold) and along
    the main remaining direction (y). Returns the 2-D points, the basis used, and the threshold."""
    with torch.no_grad():
        h = model.hidden(torch.from_numpy(points.astype(np.float32))).numpy()
        w = model.out.weight[0].numpy().astype(np.float64)
        b = float(model.out.bias[0])
    if basis is None:
        u = w / (np.linalg.norm(w) or 1.0)
        rest = h - np.outer(h @ u, u)
        rest = rest - rest.mean(0)
        v = np.linalg.svd(rest, full_matrices=False)[2][0] if len(rest) > 1 else np.roll(u, 1)
        basis = (u, v)
    u, v = basis
    threshold = -b / (np.linalg.norm(w) or 1.0)
    return np.stack([h @ u, h @ v], 1), basis, threshold


def grid_lines(lo: float = -1.3, hi: float = 1.3, lines: int = 13, points: int = 100) -> list[np.ndarray]:
    ticks, fine = np.linspace(lo, hi, lines), np.linspace(lo, hi, points)
    return ([np.stack([np.full_like(fine, t), fine], 1) for t in ticks]
            + [np.stack([fine, np.full_like(fine, t)], 1) for t in ticks])


def plot_spirals(x, y, model, kept, accuracies, path: Path) -> Path:
    from ..report import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, len(kept) + 1, figsize=(3.4 * (len(kept) + 1), 3.6))
    colors = np.array(["tab:blue", "tab:orange"])
    ax = axes[0]
    xx, yy = np.meshgrid(np.linspace(-1.4, 1.4, 200), np.linspace(-1.4, 1.4, 200))
    with torch.no_grad():
        zz = model(torch.from_numpy(np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float32))).numpy()
    ax.contourf(xx, yy, zz.reshape(xx.shape) > 0, levels=1, colors=["#dbe8f5", "#fde3c8"])
    ax.scatter(x[:, 0], x[:, 1], c=colors[y], s=6)
    ax.set_title(f"input plane\nlinear: {accuracies['linear']:.0%}, hidden layer: {accuracies['hidden']:.0%}",
                 fontsize=9)
    for ax, (step, state) in zip(axes[1:], kept.items()):
        snapshot = OneHidden(model.out.in_features)
        snapshot.load_state_dict(state)
        pts, basis, threshold = hidden_view(snapshot, x)
        for line in grid_lines():
            bent, _, _ = hidden_view(snapshot, line, basis)
            ax.plot(bent[:, 0], bent[:, 1], color="0.85", lw=0.6, zorder=0)
        ax.scatter(pts[:, 0], pts[:, 1], c=colors[y], s=6, zorder=1)
        ax.axvline(threshold, color="k", lw=1, ls="--")
        ax.set_title(f"hidden layer, step {step}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Two spirals: the hidden layer bends the plane until one straight cut (dashed) separates them",
                 fontsize=10)
    save_figure(fig, path)
    return path


def plot_rings(x, y, accuracies, path: Path) -> Path:
    from ..report import pyplot, save_figure

    plt = pyplot()
    colors = np.array(["tab:blue", "tab:orange"])
    polar = to_polar(x)
    fig, axes = plt.subplots(1, 2, figsize=(7.2, 3.6))
    axes[0].scatter(x[:, 0], x[:, 1], c=colors[y], s=6)
    axes[0].set_aspect("equal")
    axes[0].set_title(f"x, y: a straight line gets {accuracies['cartesian']:.0%}", fontsize=9)
    axes[1].scatter(polar[:, 1], polar[:, 0], c=colors[y], s=6)
    cut = (polar[y == 0, 0].min() + polar[y == 1, 0].max()) / 2
    axes[1].axhline(cut, color="k", lw=1, ls="--")
    axes[1].set_xlabel("angle")
    axes[1].set_ylabel("radius")
    axes[1].set_title(f"polar: a straight line gets {accuracies['polar']:.0%}", fontsize=9)
    fig.suptitle("Two rings: the right representation makes the problem easy", fontsize=10)
    save_figure(fig, path)
    return path


def representation_demo(out: str | Path = "demo-representation", seed: int = 0) -> dict:
    """Run both experiments, write the two figures into `out`, return the accuracies and file paths."""
    out = Path(out)
    x, y = spirals(seed=seed)
    model, kept, hidden_acc = train_hidden(x, y, seed=seed)
    spiral_acc = {"linear": linear_accuracy(x, y), "hidden": hidden_acc}
    rx, ry = rings(seed=seed)
    ring_acc = {"cartesian": linear_accuracy(rx, ry), "polar": linear_accuracy(to_polar(rx), ry)}
    return {"spirals": {**spiral_acc, "figure": str(plot_spirals(x, y, model, kept, spiral_acc, out / "spirals.png"))},
            "rings": {**ring_acc, "figure": str(plot_rings(rx, ry, ring_acc, out / "rings.png"))}}
