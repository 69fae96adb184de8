"""Each image model's own recipe: the settings it trains best with, given to the settings the user left unset
(tasks/image.py: data_defaults), and the steps its runs aim at."""

from __future__ import annotations

# A model's own recipe, for the settings the user left unset: label smoothing took the small CNN on MNIST from
# 98.9 % to 99.1 % after its one epoch (bench/image.py), and it learns in fewer steps than the default run aims at
# (loop.TARGET_STEPS), so its runs aim at MODEL_STEPS: one epoch of MNIST, 2.6-5 s to 99 %. Adversarial training
# keeps neither: label smoothing can mask the gradients an attack follows (a robustness that is not there), and
# robustness takes many epochs.
# The airbench model keeps airbench94's recipe (models/airbench.py): SGD with Nesterov momentum 0.85 in batches of
# 1,024, at a high rate (1.5 for the mean loss) with a strong weight decay, label smoothing 0.2, and its schedule
# (--schedule linear). Its lookahead is left out for --ema 0.99, which did its part: after 10 epochs of the CIFAR-10
# JPEGs, 89.2 % test accuracy with it and 88.8 % without (one-cycle's 16 epochs: 89.4 %). 880 steps are 20 epochs
# of CIFAR-10, for 90 % where the JPEG copy costs airbench94's 10 epochs its last points.
MODEL_DEFAULTS = {"smallcnn": {"train.label_smoothing": 0.1},
                  "airbench": {"train.optimizer": "nesterov", "train.momentum": 0.85, "train.lr": 1.5,
                               "train.weight_decay": 1.33e-3, "train.batch_size": 1024, "train.label_smoothing": 0.2,
                               "train.schedule": "linear", "train.ema": 0.99}}
MODEL_STEPS = {"smallcnn": (400, 1), "airbench": (880, 1)}  # model -> (about this many steps, at least these epochs)
RECIPE_KEYS = frozenset(key for recipe in MODEL_DEFAULTS.values() for key in recipe)  # what a recipe may give
WITH_THE_OPTIMIZER = ("train.momentum", "train.lr", "train.weight_decay", "train.schedule")  # tuned for its optimizer
MANY_PHOTOS = 10_000  # colour images from which the airbench model is the default, rather than ResNet-20


def unset_part(recipe: dict, left_unset: set[str]) -> dict:
    """The settings of a model's recipe (its MODEL_DEFAULTS entry) that the user left unset. A recipe's rates,
    momentum, decay and schedule are tuned for its optimizer: with another optimizer chosen, they are left out
    (AdamW at the airbench model's rate of 1.5 would diverge)."""
    if "train.optimizer" in recipe and "train.optimizer" not in left_unset:
        recipe = {k: v for k, v in recipe.items() if k not in WITH_THE_OPTIMIZER}
    return {k: v for k, v in recipe.items() if k in left_unset}
