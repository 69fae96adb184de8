"""Where the arithmetic runs: the engine owns device placement, precision, backward, the optimizer step with
gradient clipping, and (when several processes train together) the other processes.

Every task's update goes through it, the GAN's two optimizers included (Accelerate's `backward`, Lightning's
`manual_backward`): a task never calls `loss.backward()` itself, so a GAN gets mixed precision on a GPU and
distributed training with no special case.

    engine = Engine(device, amp="auto")            # one process; DistributedEngine for several
    model = engine.setup(model)                    # on the device, channels-last for convolutions
    with engine.autocast():
        loss = ...
    engine.optimizer_step(opt, loss, clip=1.0)     # zero_grad, backward (scaled), all-reduce, clip, step

A distributed engine averages the gradients of all processes before each step, weighting each by the samples
it saw, in one flat all-reduce per optimizer (what DistributedDataParallel does with its buckets, without the
overlap). That works for any model, whatever its forward looks like, with no wrapper: the GAN's generator and
discriminator are called separately, which DDP's forward hooks would miss.
"""

from __future__ import annotations

import os
from contextlib import nullcontext

import torch
import torch.nn as nn

from ..errors import DeepworksError
from ..models import prefer_channels_last


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


def cpu_has_bf16_units() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (Intel's AMX tiles). There, training the airbench model
    in bf16 took a third of float32's time (an Intel Xeon, two cores); elsewhere bf16 is emulated, and slower."""
    try:
        return bool(torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):  # a torch without the probe
        return False


def autocast_for(device: torch.device, amp: str, model: nn.Module | None = None):
    """(context manager factory, GradScaler or None) for the requested precision. On a CPU, auto means float32,
    but bf16 for a model that says it trains well in bf16 (`bf16_on_cpu`) where the CPU has bf16 units: decided
    where the run runs, so the saved config keeps auto and a run resumed on another machine chooses afresh."""
    if amp == "auto" and device.type == "cpu" and getattr(model, "bf16_on_cpu", False) and cpu_has_bf16_units():
        amp = "bf16"
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return nullcontext, None
    dtype = torch.bfloat16 if amp == "bf16" or (amp == "auto" and torch.cuda.is_bf16_supported()) else torch.float16
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 and device.type == "cuda" else None
    return (lambda: torch.autocast(device.type, dtype=dtype)), scaler


class Engine:
    """One process on one device."""

    rank, world_size = 0, 1

    def __init__(self, device: torch.device, amp: str = "off"):
        self.device, self.amp = device, amp
        self._autocast, self.scaler = autocast_for(device, amp)
        self.samples = 0  # this process's samples in the current batch (set by the batch source)

    @property
    def is_main(self) -> bool:
        """Only the main process writes files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def setup(self, model: nn.Module) -> nn.Module:
        self._autocast, self.scaler = autocast_for(self.device, self.amp, model)  # the model may prefer bf16
        return prefer_channels_last(model.to(self.device))

    def autocast(self):
        return self._autocast()

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def input_gradients(self, output: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """d output.sum() / d inputs with a graph for a second backward (WGAN-GP's penalty). Under float16 the output
        is scaled first so the gradients do not underflow, then unscaled (torch's recipe for gradient penalties)."""
        if self.scaler is None:
            grad, = torch.autograd.grad(output.sum(), inputs, create_graph=True)
            return grad
        grad, = torch.autograd.grad(self.scaler.scale(output.sum()), inputs, create_graph=True)
        return grad / self.scaler.get_scale()

    def step(self, opt: torch.optim.Optimizer, clip: float | None = None) -> None:
        """Apply the gradients `opt`'s parameters hold: combine them across processes, clip their norm, step."""
        params = [p for g in opt.param_groups for p in g["params"]]
        self.reduce_gradients(params)  # before unscaling: every process then sees the same overflow, or none
        if self.scaler is not None:
            self.scaler.unscale_(opt)
        if clip:
            nn.utils.clip_grad_norm_(params, clip)
        if self.scaler is not None:
            self.scaler.step(opt)
            self.scaler.update()  # after every step: a GAN steps two optimizers per batch, the critic several times
        else:
            opt.step()

    def optimizer_step(self, opt: torch.optim.Optimizer, loss: torch.Tensor, clip: float | None = None) -> None:
        """One update of the parameters `opt` holds: zero the gradients, backward, step."""
        opt.zero_grad(set_to_none=True)
        self.backward(loss)
        self.step(opt, clip)

    # --- several processes (no-ops here) -----------------------------------------------------
    def reduce_gradients(self, params: list[torch.Tensor]) -> None:
        """Average the gradients over the processes, each weighted by the samples it saw."""

    def shard(self, idx: torch.Tensor) -> torch.Tensor:
        """This process's part of a batch's indices."""
        return idx

    def all_reduce(self, sums: dict) -> dict:
        """The epoch's running sums added over the processes."""
        return sums

    def barrier(self) -> None:
        pass

    def any(self, *flags: bool) -> tuple[bool, ...]:
        """Each flag, true when any process says so (a stop or Ctrl-C seen by one process stops all at the same
        step)."""
        return flags

    def share(self, value):
        """The main process's value, on every process (the epoch's record, which early stopping decides on)."""
        return value

    def start_epoch(self, seed: int, epoch: int) -> None:
        """Per-process random draws (dropout, augmentation, a GAN's noise) for this epoch. One process keeps torch's
        global generator running on, whose state the checkpoint holds."""

    # --- state for exact resume ---------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
                "scaler": self.scaler.state_dict() if self.scaler is not None else None}

    def load_state_dict(self, state: dict) -> None:
        torch.set_rng_state(state["rng"])
        if self.device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])


class DistributedEngine(Engine):
    """One of several processes (torchrun, Ray Train, Spark's TorchDistributor) in a torch.distributed group: gloo
    on CPUs, NCCL on CUDA. Each process takes a contiguous part of every global batch, so N processes see the same
    samples per step as one; the gradients are averaged before each step, so the parameters stay identical on
    every process. Batch norm's statistics stay per process (SyncBatchNorm runs only on GPUs)."""

    def __init__(self, device: torch.device, amp: str = "off"):
        import torch.distributed as dist

        if not dist.is_initialized():
            raise DeepworksError("A distributed engine needs torch.distributed set up first (deepworks' launchers do "
                                 "this: --engine torchrun, ray or spark).")
        self.dist = dist
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(device)
        super().__init__(device, amp)

    def setup(self, model: nn.Module) -> nn.Module:
        model = super().setup(model)
        with torch.no_grad():  # the same start everywhere, whatever each process's generator did before
            for t in list(model.parameters()) + list(model.buffers()):
                self.dist.broadcast(t.data, 0)
        return model

    def start_epoch(self, seed: int, epoch: int) -> None:
        """Each process draws from its own generator, seeded by (seed, epoch, rank): the parts of one big batch get
        different dropout and noise, and a restart from an epoch's checkpoint, with any number of processes,
        draws exactly what the uninterrupted run drew."""
        torch.manual_seed((seed * 1_000_003 + epoch) * 1009 + self.rank)

    def any(self, *flags: bool) -> tuple[bool, ...]:
        t = torch.tensor([1.0 if f else 0.0 for f in flags], device=self.device)
        self.dist.all_reduce(t, op=self.dist.ReduceOp.MAX)
        return tuple(bool(v) for v in t.tolist())

    def share(self, value):
        box = [value]
        self.dist.broadcast_object_list(box, src=0)
        return box[0]

    def shard(self, idx: torch.Tensor) -> torch.Tensor:
        n, k = len(idx), self.world_size
        start, stop = n * self.rank // k, n * (self.rank + 1) // k
        return idx[start:stop]

    def reduce_gradients(self, params: list[torch.Tensor]) -> None:
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads]).float()
        weight = torch.tensor([float(self.samples)], device=flat.device)
        flat.mul_(weight)
        flat = torch.cat([flat, weight])
        self.dist.all_reduce(flat)
        total = flat[-1].clamp_min(1.0)
        offset = 0
        for p, g in zip(params, grads):
            n = g.numel()
            p.grad = (flat[offset:offset + n] / total).view_as(g).to(g.dtype)
            offset += n

    def all_reduce(self, sums: dict) -> dict:
        keys = sorted(k for k in sums if k != "count")
        values = torch.stack([torch.as_tensor(sums[k], dtype=torch.float64, device=self.device).reshape(())
                              for k in keys] + [torch.tensor(float(sums.get("count", 0)), dtype=torch.float64,
                                                             device=self.device)])
        self.dist.all_reduce(values)
        out = {k: values[i].float() for i, k in enumerate(keys)}
        out["count"] = int(values[-1].item())
        return out

    def barrier(self) -> None:
        self.dist.barrier()
