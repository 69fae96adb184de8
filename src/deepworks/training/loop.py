"""The one training loop every task shares: a small trainer with explicit seams.

It knows nothing about images or text. Four seams carry everything else:

- the **task** (tasks/base.py declares its recipe): data, model, `training_step(model, batch) -> (loss,
  sums)` or its own `update(model, batch, optimizers, engine)` (a GAN's two networks), `evaluate` after each epoch;
- the **batch source** the task hands over (batches.py): in-memory tensors sliced per step by default, or files
  streamed through worker processes;
- the **engine** (engine.py): device, precision, backward, the optimizer step with clipping, the other processes;
- **callbacks** (callbacks.py): every optional feature (weight averaging, early stopping and best weights, the
  progress bar, the divergence guard, the metrics log, checkpoints, Ctrl-C, TensorBoard) and your own.

The trainer itself keeps the order of things: for each epoch, the task's `start_epoch`, then for each step one
update, the schedules, the running sums; then validation, the task's `after_epoch`, and the callbacks' epoch end.

Exact resume rests on three facts: the data order of epoch e is a permutation drawn from its own generator seeded
by (seed, e); every other random draw (dropout, augmentation) comes from torch's global generator, whose state is
checkpointed; and a checkpoint is only taken between two optimizer steps. The checkpoint holds what registered for
it: the loop's counters, the model, optimizers, schedules, the engine (random state, gradient scaler), the task's
carried state and every stateful callback. Ctrl-C and a callback's stop are read after the current step, so even
an interrupted epoch resumes at the very next batch.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from functools import partial

import torch
import torch.nn as nn

from .batches import BatchSource, TensorBatches, epoch_order, steps_per_epoch
from .callbacks import (BestWeights, Callbacks, Checkpoint, CtrlC, DivergenceGuard, FrozenBody, MetricsLog,
                        ProgressBar, TensorBoard, WeightAverage, better, ema_with_warmup)
from ..config import Config, TrainConfig
from .engine import Engine, resolve_device
from ..errors import DeepworksError, Interrupted
from .finetune import KeepNormStatistics, fine_tunes
from ..run import Run, cpu_state_dict

__all__ = ["BatchSource", "Engine", "FitResult", "Interrupted", "TensorBatches", "Trainer", "better", "check_resume",
           "default_callbacks", "default_epochs", "ema_with_warmup", "epoch_order", "fit", "make_optimizer",
           "make_schedule", "resolve_device", "steps_per_epoch"]

TARGET_STEPS = 1200  # the default number of epochs aims at about this many optimizer steps
CHECKPOINT_FORMAT = 2
SYNC_EVERY = 8  # steps between two comparisons of the stop flags of a distributed run's processes


@dataclass
class FitResult:
    epochs: int
    best_epoch: int | None
    best_value: float | None
    stopped_early: bool
    history: list[dict] = field(default_factory=list)
    stop_reason: str | None = None


def default_epochs(n: int, batch_size: int, steps: int | None = None, least: int = 3) -> int:
    """Epochs for about `steps` optimizer steps (default TARGET_STEPS), between `least` and 50."""
    return int(min(50, max(least, math.ceil((steps or TARGET_STEPS) / steps_per_epoch(n, batch_size)))))


def make_optimizer(params, t: TrainConfig, lr: float | None = None) -> torch.optim.Optimizer:
    """The optimizer --optimizer names, at --lr unless `lr` is given."""
    wd, lr = t.weight_decay, lr or t.lr
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=wd)
    if t.optimizer in ("momentum", "nesterov"):
        return torch.optim.SGD(params, lr=lr, momentum=t.momentum, nesterov=t.optimizer == "nesterov", weight_decay=wd)
    if t.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=wd)
    if t.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=t.momentum, weight_decay=wd)
    if t.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(t.momentum, 0.999), weight_decay=wd)
    if t.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=(t.momentum, 0.999), weight_decay=wd)
    raise DeepworksError(f"Unknown optimizer '{t.optimizer}'.")


def linear_warmup_and_decay(step: int, total: int, warmup: float = 0.23, start: float = 0.2,
                            end: float = 0.07) -> float:
    """The rate's factor at `step` of `total`: up from `start` over the first `warmup` of the steps, then straight
    down to `end` (airbench94's schedule; momentum is not cycled, unlike one-cycle's)."""
    warm = max(1, int(warmup * total))
    if step < warm:
        return start + (1 - start) * step / warm
    return max(end, 1 - (1 - end) * (step - warm) / max(1, total - warm))


def make_schedule(opt: torch.optim.Optimizer, t: TrainConfig, per_epoch: int, epochs: int):
    """A scheduler stepped once per optimizer step (so every schedule resumes the same way). One-cycle peaks at each
    parameter group's own rate, so optimizers with different rates (a GAN's two networks) keep their ratio."""
    total = per_epoch * epochs
    if t.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    if t.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, t.step_epochs * per_epoch), gamma=t.gamma)
    if t.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    if t.schedule == "linear":
        return torch.optim.lr_scheduler.LambdaLR(opt, partial(linear_warmup_and_decay, total=total))
    if t.schedule == "onecycle":
        cycle_momentum = t.optimizer in ("momentum", "nesterov", "rmsprop", "adam", "adamw")
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=total,
                                                   cycle_momentum=cycle_momentum)
    raise DeepworksError(f"Unknown schedule '{t.schedule}'.")


def accumulate(sums: dict, loss_sum: torch.Tensor, size: int, stats: dict) -> None:
    """Add one batch's totals to the epoch's running sums, without a device sync (count stays a Python int)."""
    sums["count"] = sums.get("count", 0) + size
    sums["loss"] = sums["loss"] + loss_sum if "loss" in sums else loss_sum
    for k, v in stats.items():
        v = v.detach().float()
        sums[k] = sums[k] + v if k in sums else v


def check_resume(state: dict, cfg: Config, n: int, run: Run) -> None:
    """Before a resumed run writes anything: a checkpoint's schedule continues only the run length it was made for
    (a one-cycle schedule cannot step past its end). A config.yaml edited since the run started, or changed by an
    older version's resume, is named with the fix."""
    per_epoch = steps_per_epoch(n, cfg.train.batch_size)
    now = per_epoch * cfg.train.epochs
    for saved in state["schedules"]:
        total = saved.get("total_steps", saved.get("T_max")) if isinstance(saved, dict) else None
        if total is None or total == now:
            continue
        epochs = total / per_epoch
        fix = f"set epochs back to {epochs:.0f} in it" if epochs.is_integer() else "restore the settings it began with"
        raise DeepworksError(f"'{run.checkpoint_file}' was made for a schedule of {total:,} steps, but "
                             f"'{run.config_file}' asks for {now:,} ({cfg.train.epochs} epochs of {per_epoch} steps): "
                             f"the settings changed after the run started. To resume it, {fix}; to train longer, start "
                             f"a new run.")


def default_callbacks(task, cfg: Config, validate: bool, progress: bool | None, extra: list | None = None) -> list:
    """The loop's own features as callbacks, in the order they run, with the user's before the checkpoint (so that
    their state is saved with the epoch that set it)."""
    t = cfg.train
    monitor = t.monitor if validate else None
    own = [CtrlC(), *([WeightAverage(t.ema)] if t.ema else []), DivergenceGuard(), ProgressBar(progress),
           MetricsLog(), BestWeights(monitor, task.monitor_mode(monitor), t.patience)]
    if t.tensorboard:
        own.append(TensorBoard())
    if t.track == "mlflow":
        from .tracking import MlflowTracker

        own.append(MlflowTracker())
    if cfg.model.freeze:
        own.append(FrozenBody())
    elif fine_tunes(task):
        own.append(KeepNormStatistics())
    return own + list(task.callbacks()) + list(extra or []) + [Checkpoint()]


class Trainer:
    """Runs the epochs of one run. What callbacks read: `model` (the network being trained), `shown` (the one that
    is evaluated and kept: the weight average with --ema), `epoch` (epochs done), `step` (steps done in this
    epoch), `steps` and `epochs` (their totals), `loss`, `lr`, `sums`, `run`, `cfg`, `task`, `engine`; what they
    may set: `stop_training` (with `stop_reason`)."""

    def __init__(self, task, model: nn.Module, source: BatchSource, val, cfg: Config, run: Run, engine: Engine,
                 callbacks: list):
        self.task, self.source, self.val, self.cfg, self.run, self.engine = task, source, val, cfg, run, engine
        self.model = engine.setup(model)
        self.shown = self.model
        self.optimizers = task.optimizers(self.model)
        self.steps, self.epochs = source.steps, cfg.train.epochs
        self.schedules = [make_schedule(o, cfg.train, self.steps, self.epochs) for o in self.optimizers]
        self.callbacks = Callbacks(callbacks)
        self.validate = val is not None and len(val[0]) > 0
        self.unit = task.unit
        self.epoch = self.step = 0
        self.sums: dict = {}
        self.loss = None
        self.lr = self.optimizers[0].param_groups[0]["lr"]
        self.batch_size_seen, self.seen, self.t0 = 0, 0, 0.0  # the last batch's size; this epoch's samples, start
        self.stop_training, self.stop_reason, self.interrupted, self.finished = False, None, False, False
        self.history: list[dict] = []
        self._weights = None

    # --- what the checkpoint holds ------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"format": CHECKPOINT_FORMAT, "epoch": self.epoch, "step": self.step,
                "sums": {k: v.detach().cpu() if torch.is_tensor(v) else torch.tensor(v) for k, v in self.sums.items()},
                "model": self._weights if self._weights is not None and self.shown is self.model
                else cpu_state_dict(self.model),
                "optimizers": [o.state_dict() for o in self.optimizers],
                "schedules": [s.state_dict() for s in self.schedules],
                "engine": self.engine.state_dict(), "task": self.task.state_dict(),
                "callbacks": self.callbacks.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        for o, saved in zip(self.optimizers, state["optimizers"]):
            o.load_state_dict(saved)
        for s, saved in zip(self.schedules, state["schedules"]):
            s.load_state_dict(saved)
        self.engine.load_state_dict(state["engine"])
        self.epoch, self.step = state["epoch"], state["step"]
        self.sums = {k: int(v) if k == "count" else v.to(self.engine.device) for k, v in state["sums"].items()}
        if state.get("task") is not None:
            self.task.load_state_dict(state["task"])
        self.callbacks.load_state_dict(state["callbacks"])

    def save_checkpoint(self) -> None:
        state = self.state_dict()
        if self.engine.is_main:
            self.run.save_checkpoint(state)
        self.engine.barrier()

    def epoch_weights(self) -> dict:
        """The kept model's weights on the CPU at the end of this epoch (made once, shared by the best file and the
        checkpoint)."""
        if self._weights is None:
            self._weights = cpu_state_dict(self.shown)
        return self._weights

    def running_means(self) -> dict:
        return {k: float(v / self.sums["count"]) for k, v in self.sums.items() if k != "count"}

    # --- the loop ---------------------------------------------------------------------------
    def fit(self, resume: dict | None = None) -> FitResult:
        if resume is not None:
            self.load_state_dict(resume)
        try:
            self.callbacks("on_fit_start", self)
            while self.epoch < self.epochs and not self.finished and not self.stop_training:
                self.train_epoch()
                if self.interrupted:
                    self.save_checkpoint()
                    self.run.log(kind="interrupted", epoch=self.epoch, step=self.step)
                    raise Interrupted(f"Interrupted at epoch {self.epoch + 1}, step {self.step}; the state is saved. "
                                      f"Resume with: deepworks train --resume {self.run.path}")
                if 0 < self.step < self.steps and not self.interrupted:  # stopped mid-epoch: resumable from here
                    self.save_checkpoint()
                    self.run.log(kind="stopped", epoch=self.epoch, step=self.step, reason=self.stop_reason)
                    break
                self.end_epoch()
            self.stop_if_asked()
            self.callbacks("on_fit_end", self)
        finally:
            self.callbacks.close()
            self.source.close()
        best = self.callbacks.find(BestWeights)
        return FitResult(epochs=self.epoch, best_epoch=best.best_epoch if best else None,
                         best_value=best.best if best else None,
                         stopped_early=bool(best and best.stopped_early), history=self.history,
                         stop_reason=self.stop_reason)

    def train_epoch(self) -> None:
        if self.step == 0:
            self.sums = {}
            self.task.start_epoch()
            self.engine.start_epoch(self.cfg.seed, self.epoch)
        self._weights = None
        self.model.train()
        self.callbacks("on_epoch_start", self)  # after train(): a callback may keep parts in eval mode
        self.t0, self.seen = time.perf_counter(), 0
        for batch, size in self.source.batches(self.epoch, self.step, self.engine):
            self.lr = self.optimizers[0].param_groups[0]["lr"]  # the rate this step uses, before the schedule moves it
            loss, stats = self.task.update(self.model, batch, self.optimizers, self.engine)
            self.step_schedules()
            local = self.engine.samples
            accumulate(self.sums, loss.detach().float() * local, local, stats)
            self.loss, self.step, self.batch_size_seen = loss, self.step + 1, size
            self.seen += size
            self.callbacks("on_step_end", self)
            if self.engine.distributed:  # all processes stop at the same step, or none: they compare their flags
                if self.step % SYNC_EVERY and self.step < self.steps:  # every few steps, which costs a round trip
                    continue
                self.interrupted, self.stop_training = self.engine.any(self.interrupted, self.stop_training)
            if self.interrupted or self.stop_training:
                return

    def stop_if_asked(self) -> None:
        """A Ctrl-C (or the web UI's Stop) that came after the last step looked for one, in the last validation say,
        still stops the run, its last epoch saved: handing the handler back would lose it, and an AutoML search would
        go on to its next trial."""
        ctrl = self.callbacks.find(CtrlC)
        if ctrl is not None and ctrl.pressed:
            self.run.log(kind="interrupted", epoch=self.epoch, step=self.step)
            raise Interrupted(f"Interrupted after epoch {self.epoch}; the state is saved. Resume with: deepworks train "
                              f"--resume {self.run.path}")

    def step_schedules(self) -> None:
        """Move every schedule one batch on. A task that steps an optimizer on some batches only (a WGAN-GP's
        generator, once per five critic steps) still moves its schedule per batch; torch's warning that a schedule
        moved before its optimizer first stepped says nothing a user could act on, so it is not shown."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", r"Detected call of `lr_scheduler\.step\(\)` before", UserWarning)
            for s in self.schedules:
                s.step()

    def end_epoch(self) -> None:
        seconds = time.perf_counter() - self.t0
        sums = self.engine.all_reduce(self.sums)
        record = {"kind": "epoch", "epoch": self.epoch + 1,
                  **{f"train_{k}": float(v / sums["count"]) for k, v in sums.items() if k != "count"},
                  "lr": self.lr, "seconds": round(seconds, 3),
                  "samples_per_s": round(self.seen * self.unit[1] / max(seconds, 1e-9), 1)}
        device = self.engine.device
        if self.engine.is_main:  # the other processes take its record, so they decide early stopping alike
            if self.validate:
                record.update({f"val_{k}": v for k, v in self.task.evaluate(self.shown, self.val, device).items()})
            self.task.after_epoch(self.run, self.shown, self.epoch + 1, device)
        record = self.engine.share(record)
        self.epoch, self.step = self.epoch + 1, 0
        self.history.append(record)
        self.callbacks("on_epoch_end", self, record)


def fit(task, model: nn.Module, train, val, cfg: Config, run: Run, resume: dict | None = None,
        progress: bool | None = None, callbacks: list | None = None, engine: Engine | None = None) -> FitResult:
    """Train `model` on `train` (a batch source, or the training split as a tuple of tensors), evaluating on `val`
    after each epoch; write checkpoints and metrics to `run`."""
    engine = engine or Engine(resolve_device(cfg.train.device), cfg.train.amp)
    source = train if isinstance(train, BatchSource) else task.batch_source(train)
    validate = val is not None and len(val[0]) > 0
    trainer = Trainer(task, model, source, val, cfg, run, engine,
                      default_callbacks(task, cfg, validate, progress, callbacks))
    return trainer.fit(resume)
