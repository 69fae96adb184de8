"""Callbacks: every optional feature of the loop, and the way in for your own code.

A callback is an object with any of these methods, each called with the trainer (Keras' and fastai's events):

    on_fit_start(trainer)              before the first step (after a resume's state is restored)
    on_epoch_start(trainer)            trainer.epoch counts the epochs done before this one
    on_step_end(trainer)               after each optimizer update: trainer.step, trainer.loss, trainer.sums
    on_epoch_end(trainer, record)      record: the epoch's metrics (train_loss, val_accuracy, lr, ...), as logged
    on_fit_end(trainer)                after the last epoch, or a stop (not after an error)

A `close()` method, when there is one, is called however fit ends (an error included): close files there.

A method whose name starts with `on_` but is not one of these is refused when training starts, so a typo cannot
fail silently. Setting `trainer.stop_training = True` from any event stops the run after the current step: its
state is checkpointed (so `--resume` goes on from there) and the model trained so far is tested and reported, as
after early stopping. `trainer.stop_reason` says why, in the results. A callback with `state_dict()` and
`load_state_dict(state)` is saved in the checkpoint under its `key` (default: its class name) and restored on
resume (Accelerate's `register_for_checkpointing`).

    class PrintLoss:
        def on_epoch_end(self, trainer, record):
            print(record["epoch"], record["train_loss"])

    dw.train(data="digits", callbacks=[PrintLoss()])

The built-in ones below are what the loop itself is made of; `default_callbacks` lists them in order.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from pathlib import Path

import torch

from ..errors import ConfigError, TrainingError, did_you_mean
from ..run import atomic_write_text, cpu_state_dict

EVENTS = ("on_fit_start", "on_epoch_start", "on_step_end", "on_epoch_end", "on_fit_end")


def check_callback(cb) -> None:
    wrong = [name for name in dir(cb) if name.startswith("on_") and name not in EVENTS and callable(getattr(cb, name))]
    if wrong:
        hints = "".join(did_you_mean(w, EVENTS) for w in wrong)
        raise ConfigError(f"Callback {type(cb).__name__} defines {', '.join(wrong)}, which is not an event.{hints} "
                          f"The events are: {', '.join(EVENTS)}.")


def callback_key(cb) -> str:
    return getattr(cb, "key", type(cb).__name__)


class Callbacks:
    """The callbacks of one run, called in order."""

    def __init__(self, callbacks: list):
        for cb in callbacks:
            check_callback(cb)
        keys = [callback_key(cb) for cb in callbacks if hasattr(cb, "state_dict")]
        if len(set(keys)) != len(keys):
            raise ConfigError(f"Two stateful callbacks share the key {sorted(k for k in keys if keys.count(k) > 1)[0]!r}; "
                              f"give each its own `key` attribute.")
        self.items = list(callbacks)

    def __call__(self, event: str, trainer, *args) -> None:
        for cb in self.items:
            method = getattr(cb, event, None)
            if method is not None:
                method(trainer, *args)

    def state_dict(self) -> dict:
        return {callback_key(cb): cb.state_dict() for cb in self.items if hasattr(cb, "state_dict")}

    def load_state_dict(self, state: dict) -> None:
        for cb in self.items:
            if hasattr(cb, "load_state_dict") and callback_key(cb) in state:
                cb.load_state_dict(state[callback_key(cb)])

    def close(self) -> None:
        """Always called when fit ends, however it ends: bars closed, signal handlers given back, files flushed."""
        for cb in self.items:
            if hasattr(cb, "close"):
                cb.close()

    def find(self, kind: type):
        return next((cb for cb in self.items if isinstance(cb, kind)), None)


def ema_with_warmup(decay: float):
    """An exponential moving average whose decay grows as min(decay, (1 + n) / (10 + n)) over the n updates so far
    (TensorFlow's ExponentialMovingAverage with num_updates), so a short run's average is not mostly its random start."""

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n: torch.Tensor) -> None:
        d = min(decay, (1 + float(n)) / (10 + float(n)))
        for a, c in zip(averaged, current):
            if a.is_floating_point():
                a.lerp_(c, 1 - d)
            else:
                a.copy_(c)  # counters such as batch norm's num_batches_tracked: the latest

    return update


class WeightAverage:
    """--ema: a moving average of the weights (Polyak; Keras' use_ema), which validation, samples and the final
    model use. It becomes `trainer.shown`, the model that is evaluated and kept."""

    key = "ema"

    def __init__(self, decay: float):
        self.decay, self.average, self.pending = decay, None, None

    def on_fit_start(self, trainer) -> None:
        self.average = torch.optim.swa_utils.AveragedModel(trainer.model, multi_avg_fn=ema_with_warmup(self.decay),
                                                           use_buffers=True)
        if self.pending is not None:  # resumed: the average as the checkpoint kept it
            self.average.load_state_dict(self.pending)
            self.pending = None
        trainer.shown = self.average.module

    def on_step_end(self, trainer) -> None:
        self.average.update_parameters(trainer.model)

    def on_fit_end(self, trainer) -> None:
        trainer.model.load_state_dict(self.average.module.state_dict())  # the average is the trained model

    def state_dict(self) -> dict:
        return cpu_state_dict(self.average)

    def load_state_dict(self, state: dict) -> None:
        self.pending = state


class DivergenceGuard:
    """Stop with a clear message when the running loss is no longer finite (checked when the progress refreshes,
    so it costs no device sync per step)."""

    def __init__(self, every: float = 0.5):
        self.every, self.last = every, 0.0

    def on_epoch_start(self, trainer) -> None:
        self.last = 0.0

    def on_step_end(self, trainer) -> None:
        now = time.perf_counter()
        if now - self.last > self.every or trainer.step == trainer.steps or trainer.stop_training or trainer.interrupted:
            self.last = now
            value = trainer.running_means()["loss"]
            if not math.isfinite(value):
                raise TrainingError(divergence_message(value, trainer))


def divergence_message(value: float, trainer) -> str:
    run, cfg, epoch, step = trainer.run, trainer.cfg, trainer.epoch, trainer.step - 1
    kept = (f"The last good checkpoint (end of epoch {epoch}) is kept in '{run.checkpoint_file}'."
            if epoch > 0 else "It diverged in the first epoch, so there is no checkpoint to keep.")
    clip = "" if cfg.train.clip_grad else " or clip gradients with --clip-grad 1.0"
    return (f"Training stopped: the loss became {value} at epoch {epoch + 1}, step {step + 1} "
            f"(learning rate {trainer.lr:.3g}). The likely cause is a learning rate too high for this model and data: "
            f"try --lr {cfg.train.lr / 10:.3g}{clip}. {kept}")


class ProgressBar:
    """A tqdm bar per epoch on a terminal; one summary line per epoch otherwise (or nothing when quiet)."""

    def __init__(self, enabled: bool | None, every: float = 0.5):
        self.enabled, self.every = enabled, every
        self.use_bar = enabled is not False and sys.stderr.isatty()
        self.bar, self.t0, self.last, self.first = None, 0.0, 0.0, 0

    def on_epoch_start(self, trainer) -> None:
        self.t0, self.last, self.first = time.perf_counter(), 0.0, trainer.step
        if self.use_bar:
            from tqdm.auto import tqdm

            unit, per_row = trainer.unit
            n = trainer.source.n
            self.bar = tqdm(total=n * per_row, initial=min(n, trainer.step * trainer.cfg.train.batch_size) * per_row,
                            unit=unit, unit_scale=unit != "img", desc=f"epoch {trainer.epoch + 1}/{trainer.epochs}",
                            dynamic_ncols=True, leave=True, mininterval=0.25)

    def on_step_end(self, trainer) -> None:
        if self.bar is None:
            return
        now = time.perf_counter()
        postfix = None
        if now - self.last > self.every or trainer.step == trainer.steps:
            self.last = now
            eta = eta_seconds(trainer, self.t0, self.first, now)
            postfix = {**{k: f"{v:.4f}" for k, v in trainer.running_means().items()}, "eta": f"{eta:.0f}s"}
            self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(trainer.batch_size_seen * trainer.unit[1])

    def on_epoch_end(self, trainer, record: dict) -> None:
        text = epoch_summary(record, trainer.unit[0])
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=True)
            self.bar.close()
            self.bar = None
        elif self.enabled or (self.enabled is None and not self.use_bar):
            print(f"epoch {record['epoch']}/{trainer.epochs}  {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def eta_seconds(trainer, t0: float, first_step: int, now: float) -> float:
    """The time the rest of the schedule takes at this epoch's pace so far (its steps since `first_step`, from
    `t0`): what a progress bar and the web UI show as time left."""
    left = trainer.steps * trainer.epochs - (trainer.epoch * trainer.steps + trainer.step)
    return (now - t0) / max(1, trainer.step - first_step) * left


def epoch_summary(record: dict, unit: str = "img") -> str:
    """'loss 0.12 accuracy 0.97 | val loss 0.15 accuracy 0.96 | lr 1e-03 | 12,000 img/s'"""
    parts = []
    for prefix in ("train_", "val_"):
        items = [f"{k[len(prefix):]} {v:.4g}" for k, v in record.items() if k.startswith(prefix)]
        if items:
            parts.append(("val " if prefix == "val_" else "") + " ".join(items))
    parts.append(f"lr {record['lr']:.2g}")
    parts.append(f"{record['samples_per_s']:,.0f} {unit}/s")
    return " | ".join(parts)


class MetricsLog:
    """Append each epoch's record to RUN/metrics.jsonl."""

    def on_epoch_end(self, trainer, record: dict) -> None:
        trainer.run.log(**record)


def better(value: float, best: float | None, mode: str) -> bool:
    """At least as good as the best so far: on a tie the later epoch wins (it has seen more data, at a lower rate)."""
    return best is None or (value >= best if mode == "max" else value <= best)


class BestWeights:
    """Keep the weights of the best epoch on validation (RUN/best.safetensors) and stop early after --patience
    epochs without a better one."""

    key = "best"

    def __init__(self, monitor: str | None, mode: str, patience: int | None):
        self.monitor, self.mode, self.patience = monitor, mode, patience
        self.best, self.best_epoch, self.bad_epochs, self.stopped_early = None, None, 0, False

    def on_fit_start(self, trainer) -> None:
        if self.stopped_early:
            trainer.finished = True  # the run had finished: resuming must not train past its early stop

    def on_epoch_end(self, trainer, record: dict) -> None:
        if not trainer.validate:
            return
        if better(record[self.monitor], self.best, self.mode):
            self.best, self.best_epoch, self.bad_epochs = record[self.monitor], record["epoch"], 0
            trainer.run.save_weights(trainer.epoch_weights(), trainer.run.best_file)
        else:
            self.bad_epochs += 1
        if self.patience and self.bad_epochs >= self.patience and record["epoch"] < trainer.epochs:
            self.stopped_early = True
            trainer.stop_training, trainer.stop_reason = True, "early stopping"
            trainer.run.log(kind="early_stop", epoch=record["epoch"], best_epoch=self.best_epoch,
                            monitor=self.monitor, best=self.best)

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
                "stopped_early": self.stopped_early}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.bad_epochs, self.stopped_early = state["bad_epochs"], state["stopped_early"]


class Checkpoint:
    """Write RUN/checkpoint.pt at the end of every epoch and when the run is stopped mid-epoch: everything the
    trainer registered (model, optimizers, schedules, engine, task, stateful callbacks), atomically."""

    def on_epoch_end(self, trainer, record: dict) -> None:
        trainer.save_checkpoint()


class FrozenBody:
    """--freeze: only the model's last layer (its head) learns. The rest keeps its weights (no gradients are taken
    for them) and its batch-norm statistics (kept in eval mode, which matters with a few hundred images in small
    batches): the cheap first stage of fine-tuning pretrained weights, several times faster per step."""

    def on_fit_start(self, trainer) -> None:
        from ..models import head_name

        self.head = head_name(trainer.model)
        for name, p in trainer.model.named_parameters():
            p.requires_grad_(name.startswith(self.head))

    def on_epoch_start(self, trainer) -> None:
        for name, m in trainer.model.named_modules():
            if name and not (name + ".").startswith(self.head) and not list(m.children()):
                m.eval()


class StopButton:
    """Stop a run from another thread (a web UI's stop button): `button.press()`; the run stops after the current
    step, checkpointed, and is tested and reported on the weights so far. `--resume` goes on from there.

        stop = dw.StopButton()
        threading.Thread(target=dw.train, kwargs=dict(data="digits", callbacks=[stop])).start()
        ...
        stop.press()
    """

    def __init__(self):
        self.event = threading.Event()

    def press(self) -> None:
        self.event.set()

    def on_step_end(self, trainer) -> None:
        if self.event.is_set() and not trainer.stop_training:
            trainer.stop_training, trainer.stop_reason = True, "stopped by the user"


class TensorBoard:
    """--tensorboard: each epoch's metrics (and the learning rate) as TensorBoard event files in RUN/tensorboard,
    for `tensorboard --logdir runs`. Needs the tensorboard package (pip install "deepworks[tensorboard]")."""

    def __init__(self, folder=None):
        self.folder, self.writer = folder, None

    def on_fit_start(self, trainer) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError('--tensorboard needs the tensorboard package. Install it with: pip install '
                              '"deepworks[tensorboard]" (or pip install tensorboard).') from None
        self.writer = SummaryWriter(str(self.folder or trainer.run.path / "tensorboard"), purge_step=trainer.epoch + 1)

    def on_epoch_end(self, trainer, record: dict) -> None:
        for k, v in record.items():
            if k.startswith(("train_", "val_")) and isinstance(v, (int, float)):
                self.writer.add_scalar(k.replace("_", "/", 1), v, record["epoch"])
        self.writer.add_scalar("lr", record["lr"], record["epoch"])
        self.writer.add_scalar("samples_per_s", record["samples_per_s"], record["epoch"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


STOP_ASKED = threading.Event()  # a stop noted outside any fit (the web UI worker's handler): the next fit stops at once


class CtrlC:
    """The first Ctrl-C asks the run to stop after the current step (checkpointed, then Interrupted is raised with
    the resume command); a second one interrupts at once. Only in the main thread, where signals arrive. A stop
    noted before the fit began (STOP_ASKED) counts as pressed: its KeyboardInterrupt may have been raised where
    Python ignores exceptions (a weakref callback), and an AutoML search would otherwise go on."""

    def __init__(self):
        self.pressed, self.previous = False, None

    def on_fit_start(self, trainer) -> None:
        import signal

        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum, frame):
            if self.pressed:
                raise KeyboardInterrupt
            self.pressed = True

        self.previous = signal.signal(signal.SIGINT, handler)
        self.pressed = self.pressed or STOP_ASKED.is_set()

    def on_step_end(self, trainer) -> None:
        if self.pressed:
            trainer.interrupted = True

    def close(self) -> None:
        if self.previous is not None:
            import signal

            signal.signal(signal.SIGINT, self.previous)
            self.previous = None


PROGRESS_EVERY_S = 0.5  # how often the feed writes the position, in seconds


class ProgressFeed:
    """A callback that writes the trainer's position to `progress.json`: what the page's progress bar shows."""

    def __init__(self, path: Path, every: float = PROGRESS_EVERY_S):
        self.path, self.every, self.last, self.t0, self.first = path, every, 0.0, 0.0, 0

    def on_epoch_start(self, trainer) -> None:
        self.t0, self.first = time.perf_counter(), trainer.step
        self.write(trainer)

    def on_step_end(self, trainer) -> None:
        now = time.perf_counter()
        if now - self.last >= self.every or trainer.step == trainer.steps:
            self.write(trainer, now)

    def on_epoch_end(self, trainer, record: dict) -> None:
        self.write(trainer)

    def write(self, trainer, now: float | None = None) -> None:
        now = now or time.perf_counter()
        self.last = now
        done = trainer.epoch * trainer.steps + trainer.step
        eta = eta_seconds(trainer, self.t0, self.first, now) if trainer.step > self.first else None
        atomic_write_text(self.path, json.dumps({
            "epoch": trainer.epoch + 1, "epochs": trainer.epochs, "step": trainer.step, "steps": trainer.steps,
            "fraction": round(done / max(1, trainer.steps * trainer.epochs), 4),
            "eta_s": round(eta, 1) if eta is not None else None,
            "running": {k: round(v, 5) for k, v in trainer.running_means().items()},
            "run": str(trainer.run.path)}))
