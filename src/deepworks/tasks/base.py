"""The recipe of a task: data -> batches -> model -> loss and update -> metrics. The trainer (training/loop.py), the
API's training path and AutoML call these hooks, each with a default and a docstring: a new task subclasses `Task`,
defines `prepare`, `build_model` and `training_step` (and `evaluate` for metrics beyond the loss), names its face
(tasks/face.py: the use of a trained model) and its report (tasks/report.py: what a finished run shows), and joins
the registry with its card (cards.py; `dw.register_task(cls)` or `--task module:Class` for a task of your own).
tasks/audio.py is a compact example; tests/test_contract.py trains a task defined inside the test file.

Lifetimes: the class is the recipe (defaults, models); `meta` is what the data fixed (classes, vocabulary,
normalisation), saved in model.json so that a trained model's face can be made without its data; per-run training
state goes through `state_dict` (a text model's carried hidden state) or a callback from `callbacks()` (a GAN's
balance watch) into the checkpoint.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..config import Config, fill_defaults
from ..cards import card_of_class, tasks_taking
from ..errors import ConfigError, DeepworksError
from .common import Prepared, notes_block, plural
from .face import Face
from .report import Report


__all__ = ["Prepared", "Task", "notes_block", "plural"]


SHARED_DEFAULTS = {"train.optimizer": "adamw", "train.lr": 0.01, "train.momentum": 0.9, "train.weight_decay": 0.01,
                   "train.schedule": "onecycle"}  # for the settings a task's own `defaults` leave out


class Task:
    """The contract between a task and the rest of deepworks. Override what your task needs; the defaults say what
    happens otherwise."""

    name = ""                     # what --task calls it
    models: tuple[str, ...] = ()  # the --model names it trains
    defaults: dict = {}           # 'section.name' -> value, for settings the user left unset
    default_monitor = "val_loss"  # the validation metric early stopping and the best weights follow
    headline = "loss"             # the test metric `deepworks runs` shows
    learning_curve = "train_loss"  # the per-epoch figure that shows a run learning (the task contract checks it)
    unit: tuple[str, int] = ("sample", 1)  # what the progress bar counts, and how many per example
    counted = ("samples", "examples")      # the key of test_metrics that counts examples, and its word
    sequential = False            # True: examples are seen in order, never shuffled (text's carried state)
    fine_tuning = False           # True: a run from learned weights is fine-tuned (finetune.py; head_features)
    pretrained_models: tuple[str, ...] = ()  # the --model names --pretrained can start from ImageNet weights
    augments: tuple[str, ...] = ("none", "flip", "crop", "crop+flip")  # the --augment values it knows
    face_class: type = Face       # the use of a trained model (tasks/face.py): made from the config and meta alone
    report_class: type = Report   # what a finished run shows (tasks/report.py)

    def make_face(self) -> Face:
        """The use of a model of this task, made from the config and the fitted `meta` alone."""
        return self.face_class(self.cfg, self.meta)

    def make_report(self) -> Report:
        """What a finished run of this task shows (its test, results.json, the summary and the HTML report)."""
        return self.report_class(self)

    def __init__(self, cfg: Config, meta: dict | None = None):
        fill_defaults(cfg, {**SHARED_DEFAULTS, **self.defaults})
        if cfg.model.name is not None and cfg.model.name not in self.models:  # None: the task picks from the data
            raise ConfigError(f"--model {cfg.model.name} does not fit --task {self.name}; choose one of: "
                              f"{', '.join(self.models)}.")
        if cfg.data.augment is not None and cfg.data.augment not in self.augments:
            raise ConfigError(f"--augment {cfg.data.augment} does not fit --task {self.name}; choose one of: "
                              f"{', '.join(self.augments)}.")
        if cfg.data.split != "source" and "data.split" not in card_of_class(type(self)).settings:
            raise ConfigError(f"--split {cfg.data.split} is for {tasks_taking('data.split')}, whose data knows where "
                              f"each example comes from. Received: --task {self.name}; leave --split at source.")
        if cfg.model.pretrained and not self.pretrained_models:
            raise ConfigError(f"--pretrained is for {tasks_taking('model.pretrained')}. Received: --task {self.name}.")
        self.cfg = cfg
        self.meta = meta

    @classmethod
    def from_meta(cls, cfg: Config, meta: dict):
        cls.check_meta(meta)
        return cls(cfg, meta)

    @staticmethod
    def check_meta(meta: dict) -> None:
        """Refuse (ConfigError) a saved run's meta that would size something absurdly, before it sizes anything."""

    # --- data ---------------------------------------------------------------------------------
    def prepare(self, progress: bool | None = True) -> Prepared:
        """Read `cfg.data.source`, split it, and set `self.meta` (json-able: what rebuilding the model needs)."""
        raise NotImplementedError(f"{type(self).__name__} must define prepare(progress) -> Prepared.")

    def audit_warnings(self, data: Prepared) -> list[str]:
        """Quick checks of the prepared data, warned before training and listed in the report."""
        return []

    def default_epochs(self, data: Prepared) -> int:
        """Epochs when --epochs is not given: about 1,200 optimizer steps, between 3 and 50 epochs."""
        from ..training.loop import default_epochs

        return default_epochs(len(data.train[0]), self.cfg.train.batch_size)

    def default_patience(self, epochs: int) -> int | None:
        """Early stopping's patience when --patience is not given (None: no early stopping)."""
        return None

    def batch_source(self, train: tuple):
        """How the training split reaches the loop (batches.py): by default whole tensors sliced per step."""
        from ..training.batches import TensorBatches

        t = self.cfg.train
        return TensorBatches(train, t.batch_size, self.cfg.seed, shuffle=not self.sequential,
                             regroup=lambda order, size, seed: self.batch_order(order, train, size, seed))

    def batch_order(self, order: torch.Tensor, train: tuple, batch_size: int, seed: int) -> torch.Tensor:
        """Regroup an epoch's shuffled order before it is cut into batches (translation: similar lengths)."""
        return order

    # --- model and training -------------------------------------------------------------------
    def check_before_data(self) -> None:
        """Refuse (ConfigError) settings that cannot work, before any data is read: what a job checks before it
        starts a process (an image size below what the model needs). By default nothing."""

    def build_model(self) -> nn.Module:
        """The network, from the config and `self.meta`."""
        raise NotImplementedError(f"{type(self).__name__} must define build_model() -> torch.nn.Module.")

    def start_from(self, model: nn.Module) -> None:
        """Set a new run's starting weights beyond its seeded initialisation (pretrained weights); a resumed run's
        come from its checkpoint instead."""

    def start_from_data(self, model: nn.Module, train: tuple) -> None:
        """A new run's data-dependent initialisation, after `start_from`: layers set from the training split itself
        (the image task's whitening filters). By default nothing."""

    def head_features(self, model: nn.Module, head: nn.Module, train: tuple, device: torch.device):
        """(what reaches `head`, the labels) over the training split, model in eval mode, for fine-tuning's
        head-first step (finetune.py); None: this task has no such step."""
        return None

    def optimizers(self, model: nn.Module) -> list[torch.optim.Optimizer]:
        """The optimizers `update` steps (one schedule each): by default --optimizer over all parameters; when the
        run starts from learned weights, the last layer at --lr and the rest at --body-lr times it; a model with
        `parameter_groups(lr, weight_decay, optimizer)` gives its parts their own rates (the airbench model's
        shifts)."""
        from ..training.finetune import fine_tunes, parameter_groups
        from ..training.loop import make_optimizer

        t = self.cfg.train
        if fine_tunes(self) and self.cfg.model.body_lr != 1:
            return [make_optimizer(parameter_groups(model, t.lr, self.cfg.model.body_lr), t)]
        own_groups = getattr(getattr(model, "module", model), "parameter_groups", None)  # a DDP's network
        if own_groups is not None:
            return [make_optimizer(own_groups(t.lr, t.weight_decay, t.optimizer), t)]
        return [make_optimizer(model.parameters(), t)]

    def training_step(self, model: nn.Module, batch: tuple) -> tuple[torch.Tensor, dict]:
        """(mean loss of the batch, {name: batch total}); the totals are averaged per example over the epoch."""
        raise NotImplementedError(f"{type(self).__name__} must define training_step(model, batch) -> (loss, sums).")

    def update(self, model: nn.Module, batch: tuple, optimizers: list, engine) -> tuple[torch.Tensor, dict]:
        """One update from one batch: `training_step` under the engine's precision, one backward pass, then each of
        `optimizers` steps its own parameters (several when parameters need different optimizers: a table with
        sparse gradients takes Adam's sparse form). A task that trains networks against each other (a GAN)
        overrides this and steps each optimizer with `engine.optimizer_step(opt, loss, clip)`: never
        `loss.backward()` itself."""
        with engine.autocast():
            loss, stats = self.training_step(model, batch)
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        engine.backward(loss)
        for opt in optimizers:
            engine.step(opt, self.cfg.train.clip_grad)
        return loss, stats

    def callbacks(self) -> list:
        """Callbacks (training/callbacks.py) this task's training always runs: per-run state that is not the
        model's (a GAN's balance watch, robust training's checks) lives in them, saved with the checkpoint."""
        return []

    def start_epoch(self) -> None:
        """Reset what is carried from step to step (text's hidden state) at the start of an epoch."""

    def state_dict(self):
        """What is carried between steps, for the checkpoint (None: nothing)."""
        return None

    def load_state_dict(self, state) -> None:
        pass

    def before_resume(self, checkpoint: dict) -> None:
        """Called with an interrupted run's checkpoint after its data is prepared and before its model is rebuilt
        and its config saved again: a task whose model or recipe changed since the run started puts back what the
        checkpoint was made with."""

    def evaluate(self, model: nn.Module, split: tuple, device: torch.device) -> dict:
        """Validation metrics after each epoch (logged as val_*). By default the mean of `training_step`'s loss and
        sums over the split, in eval mode without gradients."""
        from ..models import evaluating

        n, size = len(split[0]), max(1, self.cfg.train.batch_size)
        totals: dict = {}
        with torch.no_grad(), evaluating(model):
            for i in range(0, n, size):
                batch = tuple(torch.as_tensor(x[i:i + size]).to(device) for x in split)
                loss, stats = self.training_step(model, batch)
                for k, v in {"loss": loss.float() * len(batch[0]), **stats}.items():
                    totals[k] = totals.get(k, 0.0) + float(v)
        return {k: v / max(n, 1) for k, v in totals.items()}

    def after_epoch(self, run, model: nn.Module, epoch: int, device: torch.device) -> None:
        """Record more than numbers after an epoch (text samples, image snapshots); only the main process calls it."""

    @classmethod
    def monitor_mode(cls, metric: str | None) -> str:
        return "min" if metric is None or metric.endswith(("loss", "bpc", "perplexity", "wer", "cer")) else "max"

    # --- after training -------------------------------------------------------------------------
    def calibrate(self, model: nn.Module, data: Prepared, device: torch.device) -> None:
        """Measure on the validation split what using the trained model needs (detection: its score threshold) and
        keep it in `self.meta`, before model.json is written; by default nothing."""

    def test_metrics(self, model: nn.Module, split: tuple, device: torch.device) -> dict:
        """The metrics `deepworks evaluate` shows, with the count of examples under `counted[0]`."""
        return {self.counted[0]: len(split[0]), **self.evaluate(model, split, device)}

    def labelled_examples(self, source: str, progress: bool | None = False) -> tuple:
        """Every labelled example of another source, prepared as in training (`deepworks evaluate --data`)."""
        raise DeepworksError(f"--data is not supported for {self.name} runs: evaluate them on their own splits.")

    # --- a look at the data ---------------------------------------------------------------------
    def preview(self, prepared: Prepared, per_class: int = 6) -> dict:
        """A look at prepared data before training, as JSON (the web UI's data page): a few examples per class, an
        excerpt, some pairs. Nothing by default: the page then shows the splits' sizes alone."""
        return {}
