"""Adversarial examples: FGSM, PGD (L-infinity and L2, random start, restarts, targeted) and fooling images.

All functions take a `PixelModel` (pixels in [0, 1] -> logits) and return pixels in [0, 1]. They leave
the model's mode alone: call `model.eval()` first to attack a trained model as it is used.

- FGSM (Goodfellow et al. 2015): one step of size eps along the sign of the loss gradient; with
  `random_start`, first a random point of the eps-ball and a step of `step_size` (Wong et al. 2020's
  fast adversarial training).
- PGD (Madry et al. 2018): `steps` steps of `step_size`, each projected back onto the eps-ball and the
  pixel range, from a random point of the ball; with `restarts`, an example counts as broken when any
  restart breaks it.
- A targeted attack lowers the loss of `target` instead of raising the loss of the true class.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from . import one_thread

METHODS = ("fgsm", "pgd")
NORMS = ("linf", "l2")


def check_attack(method: str, eps: float, norm: str = "linf", steps: int = 40) -> None:
    if method not in METHODS:
        raise ConfigError(f"Unknown attack method {method!r}. Choose one of: {', '.join(METHODS)}.")
    if norm not in NORMS:
        raise ConfigError(f"Unknown norm {norm!r}. Choose linf or l2.")
    if method == "fgsm" and norm != "linf":
        raise ConfigError("FGSM is an L-infinity attack; use --method pgd for --norm l2.")
    limit = 1.0 if norm == "linf" else None
    if not (eps >= 0 and (limit is None or eps <= limit)) or math.isnan(eps):
        raise ConfigError(f"--eps {eps} is outside the data range: pixels are scaled to [0, 1], so an L-infinity "
                          f"epsilon must lie between 0 and 1 (0.3 changes each pixel by up to 30% of its range; 8/255 "
                          f"= 0.031 is usual for colour photos)." if norm == "linf" else
                          f"--eps {eps} must be 0 or more (an L2 radius in pixel units; 2.0 is usual for MNIST).")
    if steps < 1:
        raise ConfigError(f"--steps must be at least 1. Received: {steps}.")


def _loss_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, targeted: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradient of the loss to raise (or, targeted, of minus the target's loss), and the per-example loss."""
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x), y, reduction="none")
    if targeted:
        loss = -loss
    grad, = torch.autograd.grad(loss.sum(), x)
    return grad, loss.detach()


def _l2_normalise(v: torch.Tensor) -> torch.Tensor:
    return v / v.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (v.dim() - 1))


def _project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    if norm == "linf":
        return delta.clamp(-eps, eps)
    norms = delta.flatten(1).norm(dim=1).view(-1, *[1] * (delta.dim() - 1))
    return delta * (eps / norms.clamp_min(1e-12)).clamp(max=1.0)


def _random_start(x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    if norm == "linf":
        return torch.empty_like(x).uniform_(-eps, eps)
    direction = _l2_normalise(torch.randn_like(x))
    radius = eps * torch.rand(len(x), device=x.device).pow(1.0 / x[0].numel()).view(-1, *[1] * (x.dim() - 1))
    return direction * radius


def _step(grad: torch.Tensor, size: float, norm: str) -> torch.Tensor:
    return size * (grad.sign() if norm == "linf" else _l2_normalise(grad))


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, target: torch.Tensor | None = None,
         random_start: bool = False, step_size: float | None = None) -> torch.Tensor:
    """Fast gradient sign method; with random_start, FGSM from a random point of the ball (step 1.25 eps)."""
    if eps == 0:
        return x.detach().clone()
    delta = _random_start(x, eps, "linf") if random_start else torch.zeros_like(x)
    grad, _ = _loss_gradient(model, (x + delta).clamp(0, 1), y if target is None else target, target is not None)
    size = step_size if step_size is not None else (1.25 * eps if random_start else eps)
    # The step goes from the unclipped random start, and only the result is clipped to the pixel range. Clipping
    # the start first (as Wong et al.'s code does) turns most of the noise on black or white pixels into a full
    # step of eps, and on MNIST at eps 0.3 that made training lose its robustness to PGD within two epochs
    # (PGD-40 accuracy 10-15 %); from the unclipped start it did not (65 % after one epoch).
    delta = _project(delta + _step(grad, size, "linf"), eps, "linf")
    return (x + delta).clamp(0, 1).detach()


def _pgd_attempt(model: nn.Module, x: torch.Tensor, goal: torch.Tensor, eps: float, steps: int, size: float,
                 norm: str, random_start: bool, targeted: bool) -> torch.Tensor:
    """One run of PGD: `steps` steps of `size` from a random point of the ball (or from x), projected each time."""
    delta = _random_start(x, eps, norm) if random_start else torch.zeros_like(x)
    delta = (x + delta).clamp(0, 1) - x
    for _ in range(steps):
        grad, _ = _loss_gradient(model, x + delta, goal, targeted)
        delta = _project(delta + _step(grad, size, norm), eps, norm)
        delta = (x + delta).clamp(0, 1) - x
    return (x + delta).detach()


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int = 40,
        step_size: float | None = None, norm: str = "linf", random_start: bool = True, restarts: int = 1,
        target: torch.Tensor | None = None) -> torch.Tensor:
    """Projected gradient descent; the worst of `restarts` tries per example (the first that succeeds)."""
    if eps == 0:
        return x.detach().clone()
    size = step_size if step_size is not None else 2.5 * eps / steps
    goal = y if target is None else target

    def attempt() -> torch.Tensor:
        return _pgd_attempt(model, x, goal, eps, steps, size, norm, random_start, target is not None)

    if restarts <= 1:  # nothing to choose between (adversarial training): no scoring pass
        return attempt()
    best = x.detach().clone()
    broken = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    best_loss = torch.full((len(x),), -math.inf, device=x.device)
    for _ in range(restarts):
        adv = attempt()
        with torch.no_grad():
            logits = model(adv)
            loss = F.cross_entropy(logits, goal, reduction="none") * (-1 if target is not None else 1)
            success = logits.argmax(1) == goal if target is not None else logits.argmax(1) != y
        take = (success & ~broken) | (~broken & ~success & (loss > best_loss))
        best[take] = adv[take]
        best_loss = torch.where(take, loss, best_loss)
        broken |= success
        if bool(broken.all()):
            break
    return best


def perturb(model: nn.Module, x: torch.Tensor, y: torch.Tensor, method: str, eps: float, **options) -> torch.Tensor:
    """FGSM or PGD by name, with the options that method takes."""
    if method == "fgsm":
        keep = {k: v for k, v in options.items() if k in ("target", "random_start", "step_size")}
        return fgsm(model, x, y, eps, **keep)
    return pgd(model, x, y, eps, **options)


def attacked_predictions(model: nn.Module, x: torch.Tensor, y: torch.Tensor, method: str, eps: float,
                         batch_size: int = 250, progress=None, **options) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean and adversarial predicted classes for pixel images x (on the model's device), batch by batch."""
    device = next(model.parameters()).device
    clean, adv = [], []
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
        tb = options.get("target")
        opts = {**options, "target": None if tb is None else tb[i:i + batch_size].to(device)}
        with torch.no_grad():
            clean.append(model(xb).argmax(1).cpu())
        xa = perturb(model, xb, yb, method, eps, **opts)
        with torch.no_grad():
            adv.append(model(xa).argmax(1).cpu())
        if progress is not None:
            progress.update(len(xb))
    return torch.cat(clean), torch.cat(adv)


def fooling_image(model: nn.Module, target: int, shape: tuple[int, ...], confidence: float = 0.99,
                  max_steps: int = 1000, lr: float = 0.05, seed: int = 0) -> tuple[torch.Tensor, float, int]:
    """Start from noise and change the pixels until the model gives `target` at least `confidence`.

    Returns the image (1, C, H, W) in [0, 1], the confidence reached, and the steps taken. The pixels are
    optimised through a sigmoid (so they stay in range) with Adam on the target's log-probability.
    """
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    logit = (torch.rand((1, *shape), generator=g) * 0.4 - 0.2).to(device).requires_grad_(True)  # noise around grey
    opt = torch.optim.Adam([logit], lr=lr)
    goal = torch.tensor([target], device=device)
    reached, step = 0.0, 0
    with one_thread():
        for step in range(1, max_steps + 1):
            log_probs = F.log_softmax(model(torch.sigmoid(logit)), 1)
            reached = float(log_probs[0, target].detach().exp())
            if reached >= confidence:
                break
            opt.zero_grad()
            F.nll_loss(log_probs, goal).backward()
            opt.step()
    image = torch.sigmoid(logit).detach()
    with torch.no_grad():
        reached = float(F.softmax(model(image), 1)[0, target])
    return image, reached, step


def plot_triptychs(rows: list[dict], path: Path, title: str) -> Path:
    """One row per image: the original with its prediction, the perturbation (amplified to be seen), and the
    adversarial image with its new prediction. Each row: {'original', 'adversarial'} pixels (C, H, W) in [0, 1],
    'before' and 'after' captions."""
    from ..report import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(len(rows), 3, figsize=(6.6, 2.3 * len(rows)), squeeze=False)

    def show(ax, img, caption, color="black"):
        pic = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
        ax.imshow(pic, cmap="gray" if img.shape[0] == 1 else None, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(caption, fontsize=8, color=color)
        ax.axis("off")

    for ax_row, row in zip(axes, rows):
        delta = row["adversarial"] - row["original"]
        peak = float(np.abs(delta).max()) or 1.0
        show(ax_row[0], row["original"], row["before"])
        show(ax_row[1], delta / (2 * peak) + 0.5, f"perturbation (x{0.5 / peak:.0f})")
        show(ax_row[2], row["adversarial"], row["after"], "red" if row.get("fooled") else "green")
    fig.suptitle(title, fontsize=9)
    save_figure(fig, path)
    return path


def plot_curve(curve: list[dict], path: Path, title: str) -> Path:
    """Accuracy against epsilon."""
    from ..report import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    ax.plot([p["eps"] for p in curve], [p["accuracy"] for p in curve], marker="o")
    ax.set_xlabel("epsilon (pixel units)")
    ax.set_ylabel("accuracy under attack")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    save_figure(fig, path)
    return path
