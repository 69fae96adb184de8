"""Fine-tuning a model that starts from learned weights (--pretrained, --init-from) on a CPU, in three parts:

1. **The head first, on cached features.** Before the first epoch the body runs once over the training images
   (and their mirror images) and the new last layer is fitted to what reaches it: a regularised logistic regression
   solved by L-BFGS in about a second. The body's features are computed once, not once per epoch, so this costs
   two forward passes; the epochs then start from a head that already classifies instead of a random one, whose
   large early gradients would otherwise wreck the pretrained features.
2. **Discriminative learning rates.** Every layer but the last learns at --body-lr times --lr (default a tenth):
   the pretrained layers move less than the new head.
3. **Batch-norm statistics kept.** With a few hundred images in batches of 32, the statistics of one batch are a
   poor estimate of the data's; the pretrained running statistics are kept (batch norm in eval mode, its scale and
   shift still learning), as Keras' fine-tuning guide does.

A task opts in with `fine_tuning = True` and its `head_features`. `--freeze` keeps the body fixed altogether (callbacks.FrozenBody): the head-first step, then epochs that train the
head alone on augmented images.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F


HEAD_WEIGHT_DECAY = 1e-3  # L2 on the head's weights, per example: flat between 1e-4 and 1e-2 on CIFAR-10 features
HEAD_ITERATIONS = 200


def fine_tunes(task) -> bool:
    """Whether a run of `task` fine-tunes: it starts from learned weights and the task takes the steps above (image
    classification; a GAN, whose batch norm must follow its generator, does not)."""
    return bool(task.fine_tuning and (task.cfg.model.pretrained or task.cfg.model.init_from))


def head_of(model: nn.Module) -> tuple[str, nn.Linear]:
    from ..models import head_name

    name = head_name(model).rstrip(".")
    return name, model.get_submodule(name)


@contextmanager
def captured_inputs(module: nn.Module):
    """The inputs `module` receives while the block runs, in order (a list filled as the model is called)."""
    seen: list[torch.Tensor] = []
    handle = module.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().float().cpu()))
    try:
        yield seen
    finally:
        handle.remove()


def fit_head(head: nn.Linear, features: torch.Tensor, labels: torch.Tensor,
             weight_decay: float = HEAD_WEIGHT_DECAY) -> float:
    """Set `head` to the multinomial logistic regression of labels on features (full-batch L-BFGS from zero, so the
    same features give the same head on any machine's rounding to within a tolerance, and no seed is drawn).
    Returns the training accuracy."""
    w = torch.zeros(head.out_features, head.in_features, requires_grad=True)
    b = torch.zeros(head.out_features, requires_grad=True)
    solver = torch.optim.LBFGS([w, b], lr=1, max_iter=HEAD_ITERATIONS, history_size=20,
                               line_search_fn="strong_wolfe")

    def closure():
        solver.zero_grad()
        loss = F.cross_entropy(features @ w.T + b, labels) + weight_decay * w.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        solver.step(closure)
    with torch.no_grad():
        head.weight.copy_(w.to(head.weight))
        head.bias.copy_(b.to(head.bias))
        return (features @ w.T + b).argmax(1).eq(labels).float().mean().item()


def head_first(task, model: nn.Module, train: tuple, device: torch.device) -> str | None:
    """Step 1 above, for a task whose `head_features` can give the features; what was done, for the run's notes."""
    name, head = head_of(model)
    if not isinstance(head, nn.Linear) or head.bias is None or getattr(model, "mirror", False):
        return None  # the fit sets a weight and a bias from one view per image (the airbench model has neither)
    t0 = time.perf_counter()
    found = task.head_features(model.to(device), head, train, device)
    if found is None:
        return None
    features, labels = found
    accuracy = fit_head(head, features, labels.cpu())
    return (f"The new last layer ({name}) was first fitted to the body's features of {len(features):,} training "
            f"{getattr(task, 'head_first_noun', 'views')}, computed once ({time.perf_counter() - t0:.0f} s; training accuracy {accuracy:.1%}).")


def parameter_groups(model: nn.Module, lr: float, body_lr: float) -> list[dict]:
    """Step 2 above: the head at lr, the rest at lr * body_lr (parameters that do not learn are left out)."""
    prefix = head_of(model)[0] + "."
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    body = [p for n, p in named if not n.startswith(prefix)]
    head = [p for n, p in named if n.startswith(prefix)]
    return [g for g in ({"params": body, "lr": lr * body_lr}, {"params": head, "lr": lr}) if g["params"]]


class KeepNormStatistics:
    """Step 3 above: batch-norm layers stay in eval mode during training (their running statistics are kept; their
    scale and shift still learn). A model whose pretrained part is its `backbone` (a segmenter's encoder) keeps
    only that part's: its new decoder learns its own statistics."""

    def on_epoch_start(self, trainer) -> None:
        from ..models import norms_in_eval

        model = getattr(trainer.model, "module", trainer.model)  # a DistributedDataParallel's network
        norms_in_eval(getattr(model, "backbone", model))
