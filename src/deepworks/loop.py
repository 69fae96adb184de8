"""The one training loop every task shares.

It knows nothing about images or text. A task hands it tensors (the training split
as a tuple, sliced into mini-batches here) and two functions: `training_step(model,
batch) -> (loss, sums)` and `evaluate(model, split) -> metrics`. The loop owns the
rest: data order, optimizer, schedule, mixed precision, gradient clipping, early
stopping, the progress bar, atomic checkpoints and exact resume.

A task whose rows must be seen in order (text, whose hidden state runs on from one
batch to the next) sets `sequential = True`; it may keep state between steps, which
the loop resets with `task.start_epoch()` and checkpoints through `task.state_dict()`.
`task.after_epoch(run, model, epoch, device)` may record more than numbers (text
samples). `task.batch_order(order, train, batch_size, seed)` may regroup the epoch's
shuffled order into batches (translation: sentences of similar length together).
`task.unit = (name, per_row)` names what the progress bar counts. `--ema` keeps an
average of the weights, which validation, samples and the final model use.

A task that trains more than one network against each other (a GAN) gives the loop
its optimizers with `task.optimizers(model) -> [optimizer, ...]` and takes over the
step with `task.train_step(model, batch, optimizers) -> (loss, sums)`, calling
`optimizer_step` for each update (the Keras way: an overridable train_step). The
loop still owns data order, schedules (one per optimizer), checkpoints and resume.

Exact resume rests on three facts: the data order of epoch e is a permutation drawn
from its own generator seeded by (seed, e); every other random draw (dropout,
augmentation) comes from torch's global generator, whose state is checkpointed;
and a checkpoint is only taken between two optimizer steps. Ctrl-C sets a flag that
the loop reads after the current step, so even an interrupted epoch resumes at the
very next batch.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from .config import Config, TrainConfig
from .errors import DeepworksError, Interrupted, TrainingError
from .models import prefer_channels_last
from .run import Run, cpu_state_dict

TARGET_STEPS = 1200  # the default number of epochs aims at about this many optimizer steps


@dataclass
class FitResult:
    epochs: int
    best_epoch: int | None
    best_value: float | None
    stopped_early: bool
    history: list[dict] = field(default_factory=list)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeepworksError(f"--device {name} was asked for, but this machine has no CUDA GPU. Use --device cpu or auto.")
    if name.startswith("cuda:") and int(name[5:]) >= torch.cuda.device_count():
        raise DeepworksError(f"--device {name} was asked for, but this machine has {torch.cuda.device_count()} CUDA "
                             f"GPU(s), numbered from 0. Use --device cuda:0 or auto.")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeepworksError("--device mps was asked for, but this machine has no Apple GPU. Use --device cpu or auto.")
    return torch.device(name)


def steps_per_epoch(n: int, batch_size: int) -> int:
    return max(1, n // batch_size if n % batch_size == 1 else math.ceil(n / batch_size))  # never a batch of 1 (BatchNorm)


def default_epochs(n: int, batch_size: int) -> int:
    return int(min(50, max(3, math.ceil(TARGET_STEPS / steps_per_epoch(n, batch_size)))))


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
    if t.schedule == "onecycle":
        cycle_momentum = t.optimizer in ("momentum", "nesterov", "rmsprop", "adam", "adamw")
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=total,
                                                   cycle_momentum=cycle_momentum)
    raise DeepworksError(f"Unknown schedule '{t.schedule}'.")


def autocast_for(device: torch.device, amp: str):
    """(context manager factory, GradScaler or None) for the requested precision."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return nullcontext, None
    dtype = torch.bfloat16 if amp == "bf16" or (amp == "auto" and torch.cuda.is_bf16_supported()) else torch.float16
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 and device.type == "cuda" else None
    return (lambda: torch.autocast(device.type, dtype=dtype)), scaler


def optimizer_step(opt: torch.optim.Optimizer, loss: torch.Tensor, clip: float | None) -> None:
    """One update of the parameters `opt` holds: backward, optional gradient-norm clipping, step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip:
        nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], clip)
    opt.step()


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


def epoch_order(n: int, seed: int, epoch: int, device: torch.device, shuffle: bool = True) -> torch.Tensor:
    if not shuffle:
        return torch.arange(n, device=device)
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).to(device)


@contextmanager
def ctrl_c_flag():
    """While active, the first Ctrl-C only sets flag['set']; a second one interrupts at once."""
    flag = {"set": False}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag["set"]:
            raise KeyboardInterrupt
        flag["set"] = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


class Progress:
    """A tqdm bar per epoch on a terminal; one summary line per epoch otherwise (or nothing when quiet)."""

    def __init__(self, enabled: bool | None, epochs: int, unit: str = "img"):
        self.enabled, self.epochs, self.unit = enabled, epochs, unit
        self.use_bar = enabled is not False and sys.stderr.isatty()
        self.bar = None

    def start_epoch(self, epoch: int, n: int, done: int) -> None:
        if self.use_bar:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=n, initial=done, unit=self.unit, unit_scale=self.unit != "img",
                            desc=f"epoch {epoch + 1}/{self.epochs}",
                            dynamic_ncols=True, leave=True, mininterval=0.25)

    def update(self, n: int, postfix: dict | None) -> None:
        if self.bar is not None:
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(n)

    def end_epoch(self, record: dict) -> None:
        text = epoch_summary(record, self.unit)
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=True)
            self.bar.close()
            self.bar = None
        elif self.enabled or (self.enabled is None and not self.use_bar):
            print(f"epoch {record['epoch']}/{self.epochs}  {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


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


def accumulate(sums: dict, loss_sum: torch.Tensor, size: int, stats: dict) -> None:
    """Add one batch's totals to the epoch's running sums, without a device sync (count stays a Python int)."""
    sums["count"] = sums.get("count", 0) + size
    sums["loss"] = sums["loss"] + loss_sum if "loss" in sums else loss_sum
    for k, v in stats.items():
        v = v.detach().float()
        sums[k] = sums[k] + v if k in sums else v


def better(value: float, best: float | None, mode: str) -> bool:
    """At least as good as the best so far: on a tie the later epoch wins (it has seen more data, at a lower rate)."""
    return best is None or (value >= best if mode == "max" else value <= best)


def divergence_message(value: float, epoch: int, step: int, lr: float, run: Run, cfg: Config) -> str:
    """`epoch` counts from 0, so it is also the number of epochs whose checkpoint is good."""
    kept = (f"The last good checkpoint (end of epoch {epoch}) is kept in '{run.checkpoint_file}'."
            if epoch > 0 else "It diverged in the first epoch, so there is no checkpoint to keep.")
    clip = "" if cfg.train.clip_grad else " or clip gradients with --clip-grad 1.0"
    return (f"Training stopped: the loss became {value} at epoch {epoch + 1}, step {step + 1} "
            f"(learning rate {lr:.3g}). The likely cause is a learning rate too high for this model and data: "
            f"try --lr {cfg.train.lr / 10:.3g}{clip}. {kept}")


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


def fit(task, model: nn.Module, train: tuple[torch.Tensor, ...], val: tuple[torch.Tensor, ...], cfg: Config,
        run: Run, resume: dict | None = None, progress: bool | None = None) -> FitResult:
    """Train `model` on `train`, evaluating on `val` after each epoch; write checkpoints and metrics to `run`."""
    t = cfg.train
    device = resolve_device(t.device)
    prefer_channels_last(model.to(device))
    train = tuple(x.to(device) for x in train)
    n = len(train[0])
    per_epoch = steps_per_epoch(n, t.batch_size)
    epochs = t.epochs
    own_step = hasattr(task, "train_step")  # the task steps its own optimizers
    opts = task.optimizers(model) if hasattr(task, "optimizers") else [make_optimizer(model.parameters(), t)]
    schedules = [make_schedule(o, t, per_epoch, epochs) for o in opts]
    autocast, scaler = autocast_for(device, t.amp)
    if own_step:  # full precision: the task's step runs its backward passes itself, and autocast must not wrap them
        autocast, scaler = nullcontext, None
    # Weight averaging (Polyak; Keras' use_ema): validation, samples and the final weights use the average.
    ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=ema_with_warmup(t.ema), use_buffers=True) if t.ema else None
    shown = ema.module if ema is not None else model  # the weights that are evaluated and kept
    monitor, mode = t.monitor, task.monitor_mode(t.monitor)
    validate = len(val[0]) > 0
    unit, per_row = getattr(task, "unit", ("img", 1))
    shuffle = not getattr(task, "sequential", False)

    start_epoch, start_step, sums, best, best_epoch, bad_epochs, stopped_early = 0, 0, {}, None, None, 0, False
    if resume is not None:
        model.load_state_dict(resume["model"])
        if ema is not None:
            ema.load_state_dict(resume["ema"])
        for o, state in zip(opts, resume["optimizers"]):
            o.load_state_dict(state)
        for s, state in zip(schedules, resume["schedules"]):
            s.load_state_dict(state)
        if scaler is not None and resume.get("scaler"):
            scaler.load_state_dict(resume["scaler"])
        torch.set_rng_state(resume["rng"])
        if device.type == "cuda" and resume.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(resume["cuda_rng"], device)
        start_epoch, start_step = resume["epoch"], resume["step"]
        sums = {k: int(v) if k == "count" else v.to(device) for k, v in resume["sums"].items()}
        best, best_epoch, bad_epochs = resume["best"], resume["best_epoch"], resume["bad_epochs"]
        stopped_early = resume.get("stopped_early", False)
        if resume.get("task") is not None:
            task.load_state_dict(resume["task"])
    done = start_epoch  # epochs completed
    if stopped_early:
        start_epoch = epochs  # the run had finished: resuming must not train past its early stop

    def checkpoint(epoch: int, step: int, stopped_early: bool = False, weights: dict | None = None) -> None:
        run.save_checkpoint({
            "epoch": epoch, "step": step, "model": weights or cpu_state_dict(model),
            "ema": cpu_state_dict(ema) if ema is not None else None,
            "optimizers": [o.state_dict() for o in opts], "schedules": [s.state_dict() for s in schedules],
            "scaler": scaler.state_dict() if scaler else None,
            "rng": torch.get_rng_state(), "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "sums": {k: v.detach().cpu() if torch.is_tensor(v) else torch.tensor(v) for k, v in sums.items()},
            "best": best, "best_epoch": best_epoch, "bad_epochs": bad_epochs, "stopped_early": stopped_early,
            "task": task.state_dict() if hasattr(task, "state_dict") else None,
        })

    bar = Progress(progress, epochs, unit)
    history, lr = [], opts[0].param_groups[0]["lr"]
    try:
        with ctrl_c_flag() as interrupt:
            for epoch in range(start_epoch, epochs):
                order = epoch_order(n, cfg.seed, epoch, device, shuffle)
                if hasattr(task, "batch_order"):  # e.g. batches of sentences of similar length
                    order = task.batch_order(order, train, t.batch_size, cfg.seed * 1_000_003 + epoch)
                first = start_step if epoch == start_epoch else 0
                if first == 0:
                    sums = {}
                    if hasattr(task, "start_epoch"):
                        task.start_epoch()
                bar.start_epoch(epoch, n * per_row, min(n, first * t.batch_size) * per_row)
                model.train()
                t0, last_refresh, seen = time.perf_counter(), 0.0, 0
                for step in range(first, per_epoch):
                    idx = order[step * t.batch_size:(step + 1) * t.batch_size if step < per_epoch - 1 else n]
                    batch = tuple(x.index_select(0, idx) for x in train)  # faster than x[idx] on the CPU
                    lr = opts[0].param_groups[0]["lr"]  # the rate this step uses, before the schedule moves it
                    if own_step:
                        loss, stats = task.train_step(model, batch, opts)
                    else:
                        with autocast():
                            loss, stats = task.training_step(model, batch)
                        if scaler is None:
                            optimizer_step(opts[0], loss, t.clip_grad)
                        else:
                            opts[0].zero_grad(set_to_none=True)
                            scaler.scale(loss).backward()
                            scaler.unscale_(opts[0])
                            if t.clip_grad:
                                nn.utils.clip_grad_norm_(model.parameters(), t.clip_grad)
                            scaler.step(opts[0])
                            scaler.update()
                    for s in schedules:
                        s.step()
                    if ema is not None:
                        ema.update_parameters(model)
                    size = len(idx)
                    seen += size
                    accumulate(sums, loss.detach().float() * size, size, stats)
                    now = time.perf_counter()
                    postfix = None
                    if now - last_refresh > 0.5 or step == per_epoch - 1 or interrupt["set"]:
                        last_refresh = now
                        means = {k: float(v / sums["count"]) for k, v in sums.items() if k != "count"}
                        if not math.isfinite(means["loss"]):
                            raise TrainingError(divergence_message(means["loss"], epoch, step, lr, run, cfg))
                        left = per_epoch * epochs - (epoch * per_epoch + step + 1)
                        postfix = {**{k: f"{v:.4f}" for k, v in means.items()}, "eta": f"{(now - t0) / (step + 1 - first) * left:.0f}s"}
                    bar.update(size * per_row, postfix)
                    if interrupt["set"]:
                        checkpoint(epoch, step + 1)
                        run.log(kind="interrupted", epoch=epoch, step=step + 1)
                        raise Interrupted(f"Interrupted at epoch {epoch + 1}, step {step + 1}; the state is saved. "
                                          f"Resume with: deepworks train --resume {run.path}")
                seconds = time.perf_counter() - t0
                record = {"kind": "epoch", "epoch": epoch + 1,
                          **{f"train_{k}": float(v / sums["count"]) for k, v in sums.items() if k != "count"},
                          "lr": lr, "seconds": round(seconds, 3),
                          "samples_per_s": round(seen * per_row / max(seconds, 1e-9), 1)}
                if validate:
                    record.update({f"val_{k}": v for k, v in task.evaluate(shown, val, device).items()})
                if hasattr(task, "after_epoch"):
                    task.after_epoch(run, shown, epoch + 1, device)
                weights = cpu_state_dict(shown)
                improved = validate and better(record[monitor], best, mode)
                if improved:
                    best, best_epoch, bad_epochs = record[monitor], epoch + 1, 0
                    run.save_weights(weights, run.best_file)
                elif validate:
                    bad_epochs += 1
                run.log(**record)
                history.append(record)
                bar.end_epoch(record)
                done = epoch + 1
                stopped_early = bool(t.patience and validate and bad_epochs >= t.patience and epoch + 1 < epochs)
                checkpoint(epoch + 1, 0, stopped_early, weights if ema is None else None)
                if stopped_early:
                    run.log(kind="early_stop", epoch=epoch + 1, best_epoch=best_epoch, monitor=monitor, best=best)
                    break
    finally:
        bar.close()
    if ema is not None:
        model.load_state_dict(ema.module.state_dict())  # the average is the trained model
    return FitResult(epochs=done, best_epoch=best_epoch, best_value=best, stopped_early=stopped_early, history=history)
