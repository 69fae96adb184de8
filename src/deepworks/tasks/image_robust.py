"""Adversarial training of the image classifier (--adversarial fgsm or pgd): the attacked images each training step
learns from, the accuracy under attack that validation and the test measure, and the watch for a collapse of
robustness during training.

`AdversarialTraining` is the part of the recipe (tasks/image.py ImageClassification) that --adversarial adds; it uses
the recipe's `cfg` and `pixel_model`. Its per-run state, the accuracies under attack seen so far, lives in the
training callback `RobustnessWatch`, which the checkpoint saves.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn as nn

from ..models import evaluating


class RobustnessWarning(UserWarning):
    """Adversarial training that lost its robustness."""


class RobustnessWatch:
    """A training callback of adversarially trained runs: warns once when the validation accuracy under attack
    falls to less than half its best so far (of 20 % at least) in one epoch. What it has seen is saved with the
    checkpoint, so a resumed run goes on comparing with the epochs before."""

    key = "robustness"

    def __init__(self):
        self.seen, self.warned = [], False  # validation accuracy under attack, per epoch; whether it warned

    def on_epoch_end(self, trainer, record: dict) -> None:
        if trainer.engine.is_main and "val_robust_accuracy" in record:  # the process that validated
            self.check(record["val_robust_accuracy"])

    def check(self, robust: float) -> None:
        best = max(self.seen, default=0.0)
        self.seen.append(robust)
        if best >= 0.2 and robust < best / 2 and not self.warned:
            self.warned = True
            warnings.warn(f"Accuracy under attack fell from {best:.1%} to {robust:.1%} in one epoch: catastrophic "
                          f"overfitting, where single-step training stops resisting multi-step attacks. The most "
                          f"robust epoch's weights are kept; for more, use --adversarial pgd, or a lower --lr.",
                          RobustnessWarning, stacklevel=2)

    def state_dict(self) -> dict:
        return {"seen": list(self.seen), "warned": self.warned}

    def load_state_dict(self, state: dict) -> None:
        self.seen, self.warned = list(state["seen"]), bool(state["warned"])


class AdversarialTraining:
    """What --adversarial adds to the image recipe: attacked training images, robust accuracy, and its watch."""

    def adversarial(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, method: str, steps: int) -> torch.Tensor:
        """Pixels of adversarial versions of uint8 images x, at the run's --eps (FGSM from a random start, or PGD)."""
        from ..models.pixel import to_pixels
        from ..trust.attacks import fgsm, pgd

        pixels, eps = to_pixels(x), self.cfg.train.eps
        if method == "fgsm":
            return fgsm(self.pixel_model(model), pixels, y, eps, random_start=True)
        return pgd(self.pixel_model(model), pixels, y, eps, steps=steps)

    @property
    def robust_steps(self) -> int:
        """PGD steps of the reported robust accuracy: --robust-steps, else at least 20 whatever the training used."""
        return self.cfg.eval.robust_steps or max(20, self.cfg.train.attack_steps)

    def robust_accuracy(self, model: nn.Module, split, device: torch.device, method: str) -> float:
        """Accuracy under attack (PGD with robust_steps, or FGSM) at --eps, on the first --robust-samples images."""
        from ..models.pixel import to_pixels
        from ..trust.attacks import attacked_predictions

        n = self.cfg.eval.robust_samples
        x, y = split[0][:n], split[1][:n]
        if len(x) == 0:
            return float("nan")
        t = self.cfg.train
        options = {"steps": self.robust_steps} if method == "pgd" else {}
        with evaluating(model):
            _, adv = attacked_predictions(self.pixel_model(model), to_pixels(x), y, method, t.eps, **options)
        return (adv == y).float().mean().item()

    def robust_metrics(self, model: nn.Module, split, device: torch.device) -> dict:
        """For adversarially trained runs: accuracy under PGD and FGSM at the training epsilon."""
        t = self.cfg.train
        if t.adversarial == "none":
            return {}
        return {"robust": {"eps": t.eps, "samples": min(len(split[0]), self.cfg.eval.robust_samples),
                           f"pgd{self.robust_steps}_accuracy": self.robust_accuracy(model, split, device, "pgd"),
                           "fgsm_accuracy": self.robust_accuracy(model, split, device, "fgsm")}}

    def callbacks(self) -> list:
        """Adversarial training watches its validation accuracy under attack for a collapse (RobustnessWatch)."""
        return [RobustnessWatch()] if self.cfg.train.adversarial != "none" else []
