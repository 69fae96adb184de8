"""Tasks: one module per breakthrough. A task knows its data, models, loss, metrics and how a trained model is used.

The contract the run loop and the API rely on (tasks/image.py and tasks/text.py are full examples):

    task = get_task(name)(config)                 fills the settings left unset with the task's `defaults`
    data = task.prepare(progress)                 -> Prepared (splits as tensor tuples, json-able meta)
    model = task.build_model()                    -> torch.nn.Module (also from saved meta: task.from_meta)
    loss, sums = task.training_step(model, batch) -> sums are per-batch totals (e.g. correct predictions)
    metrics = task.evaluate(model, split, device) -> {'loss': ..., 'accuracy': ...}
    task.monitor_mode(metric)                     -> 'min' or 'max'
    results = task.finish(run, model, data, fit_info, device) -> test metrics, baselines, the report
    task.summary(results)                         -> [(label, text)] lines the CLI prints after training
    task.test_metrics(model, split, device)       -> the metrics `deepworks evaluate` shows
    Task.describe_metrics(metrics)                -> the lines it prints for them

Optional hooks of the loop (sequential data, carried state, per-epoch samples) are described in loop.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..config import Config, fill_defaults
from ..errors import ConfigError


SHARED_DEFAULTS = {"train.optimizer": "adamw", "train.lr": 0.01, "train.momentum": 0.9, "train.weight_decay": 0.01,
                   "train.schedule": "onecycle"}  # for the settings a task's own `defaults` leave out


@dataclass
class Prepared:
    train: tuple[torch.Tensor, ...]
    val: tuple[torch.Tensor, ...]
    test: tuple[torch.Tensor, ...]
    meta: dict
    notes: list[str] = field(default_factory=list)


class Task:
    """What every task shares: its defaults applied to the config, and a check that the model suits the task."""

    name = ""
    models: tuple[str, ...] = ()
    defaults: dict = {}  # 'section.name' -> value, for settings the user left unset
    default_monitor = "val_loss"
    headline = "loss"  # the test metric `deepworks runs` shows

    def __init__(self, cfg: Config, meta: dict | None = None):
        fill_defaults(cfg, {**SHARED_DEFAULTS, **self.defaults})
        if cfg.model.name is not None and cfg.model.name not in self.models:  # None: the task picks from the data
            raise ConfigError(f"--model {cfg.model.name} does not fit --task {self.name}; choose one of: "
                              f"{', '.join(self.models)}.")
        self.cfg = cfg
        self.meta = meta

    @classmethod
    def from_meta(cls, cfg: Config, meta: dict):
        cls.check_meta(meta)
        return cls(cfg, meta)

    @staticmethod
    def check_meta(meta: dict) -> None:
        """Refuse (ConfigError) a saved run's meta that would size something absurdly, before it sizes anything."""

    def describe_model(self) -> str:
        return self.cfg.model.name

    def model_line(self, results: dict) -> tuple[str, str]:
        """The summary's 'model' line: which model, how big, and how long it trained."""
        fit = results["fit"]
        total = fit.get("total_seconds")
        return ("model", f"{self.describe_model()}, {results['parameters']:,} parameters, {plural(fit['epochs'], 'epoch')} in "
                         f"{fit['train_seconds']:.1f} s" + (" (stopped early)" if fit["stopped_early"] else "")
                         + (f"; {total:.1f} s in all, with reading the data, testing and the report"
                            if total is not None else ""))

    # --- overfitting -------------------------------------------------------------------
    overfit_remedies = "more data, --dropout 0.3, or fewer --epochs"

    def overfit_note(self, records: list[dict], best_epoch: int | None) -> str | None:
        """A note when the validation loss rose well above its lowest point (by 30 % and 0.1 at least) while the
        training loss went on falling, and the best epoch was not the last: the model learned its training examples
        rather than the task, and the weights kept are not the final ones. None when it did not."""
        epochs = [r for r in records if r.get("kind") == "epoch" and "val_loss" in r and "train_loss" in r]
        if len(epochs) < 4:
            return None
        low = min(epochs, key=lambda r: r["val_loss"])
        last = epochs[-1]
        rose = (last["val_loss"] >= 1.3 * low["val_loss"] and last["val_loss"] - low["val_loss"] >= 0.1
                and last["epoch"] - low["epoch"] >= 3)
        if not rose or last["train_loss"] >= low["train_loss"] or best_epoch == last["epoch"]:
            return None
        kept = f" The weights of epoch {best_epoch}, the best on validation, were kept." if best_epoch else ""
        return (f"The model overfit: its validation loss fell to {low['val_loss']:.3f} at epoch {low['epoch']}, then "
                f"rose to {last['val_loss']:.3f} by epoch {last['epoch']} while the training loss went on falling "
                f"({low['train_loss']:.3f} to {last['train_loss']:.3f}).{kept} To do better, try "
                f"{self.overfit_remedies}.")

    @staticmethod
    def notes_html(results: dict) -> str:
        """The run's notes (overfitting) for the report, as note boxes."""
        import html

        note = results.get("fit", {}).get("overfit")
        return f"<p class='note'>{html.escape(note)}</p>" if note else ""

    @classmethod
    def monitor_mode(cls, metric: str | None) -> str:
        return "min" if metric is None or metric.endswith(("loss", "bpc", "perplexity")) else "max"


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def get_task(name: str) -> type[Task]:
    from .gan import GanTraining
    from .image import ImageClassification
    from .text import TextGeneration
    from .translate import Translation

    tasks = {"image": ImageClassification, "text": TextGeneration, "translate": Translation, "gan": GanTraining}
    if name not in tasks:
        raise ConfigError(f"Unknown task '{name}'. Choose one of: {', '.join(tasks)}.")
    return tasks[name]
