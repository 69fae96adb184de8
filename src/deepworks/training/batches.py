"""Batch sources: how an epoch's mini-batches reach the loop. A task owns its source (`Task.batch_source`).

The default, `TensorBatches`, keeps the whole training split as tensors on the device and slices each batch with
`index_select`: the fastest path when the data fits in memory, and the one every built-in task uses then.
`DatasetBatches` takes any dataset through torch's DataLoader: examples of different sizes batched by a collate,
or images from folders or CSVs too large for memory, decoded and augmented in its worker processes
(`data/stream.py`).

Both follow one rule, the root of exact resume: the order of epoch e is a permutation drawn from its own generator
seeded by (seed, e), cut into steps of --batch-size samples; step s of epoch e is therefore the same samples
whatever happened before it, whatever the number of worker or training processes. Each training process takes its
contiguous part of every global batch (`engine.shard`).
"""

from __future__ import annotations

import math
import os
from typing import Callable, Iterator

import torch

from .engine import Engine


def steps_per_epoch(n: int, batch_size: int) -> int:
    return max(1, n // batch_size if n % batch_size == 1 else math.ceil(n / batch_size))  # never a batch of 1 (BatchNorm)


def epoch_order(n: int, seed: int, epoch: int, device: torch.device, shuffle: bool = True) -> torch.Tensor:
    if not shuffle:
        return torch.arange(n, device=device)
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).to(device)


def step_indices(order: torch.Tensor, step: int, per_epoch: int, batch_size: int) -> torch.Tensor:
    """The indices of one step: --batch-size of them; the last step of an epoch takes the rest."""
    n = len(order)
    return order[step * batch_size:(step + 1) * batch_size if step < per_epoch - 1 else n]


class BatchSource:
    """What the loop asks of a batch source. `batches(epoch, first, engine)` yields (batch, global size) for steps
    first .. steps - 1 of an epoch, this process's part of each, on the engine's device."""

    def __init__(self, n: int, batch_size: int, seed: int, shuffle: bool = True,
                 regroup: Callable | None = None):
        self.n, self.batch_size, self.seed, self.shuffle, self.regroup = n, batch_size, seed, shuffle, regroup
        self.steps = steps_per_epoch(n, batch_size)

    def __len__(self) -> int:
        return self.n

    def order(self, epoch: int, device: torch.device) -> torch.Tensor:
        order = epoch_order(self.n, self.seed, epoch, device, self.shuffle)
        if self.regroup is not None:  # e.g. batches of sentences of similar length
            order = self.regroup(order, self.batch_size, self.seed * 1_000_003 + epoch)
        return order

    def batches(self, epoch: int, first: int, engine: Engine) -> Iterator[tuple[tuple, int]]:
        raise NotImplementedError

    def close(self) -> None:
        """Stop any worker processes."""


class TensorBatches(BatchSource):
    """The training split as whole tensors on the device, sliced per batch: the default, and the fastest."""

    def __init__(self, tensors: tuple[torch.Tensor, ...], batch_size: int, seed: int, shuffle: bool = True,
                 regroup: Callable | None = None):
        super().__init__(len(tensors[0]), batch_size, seed, shuffle, regroup)
        self.tensors = tensors
        self.placed: tuple[torch.Tensor, ...] | None = None

    def batches(self, epoch: int, first: int, engine: Engine) -> Iterator[tuple[tuple, int]]:
        if self.placed is None or self.placed[0].device != engine.device:
            self.placed = tuple(x.to(engine.device) for x in self.tensors)
        order = self.order(epoch, engine.device)
        for step in range(first, self.steps):
            idx = step_indices(order, step, self.steps, self.batch_size)
            mine = engine.shard(idx)
            engine.samples = len(mine)
            yield tuple(x.index_select(0, mine) for x in self.placed), len(idx)  # faster than x[idx] on the CPU


def to_device(obj, device: torch.device):
    """Tensors (also inside tuples, lists and dicts) moved to `device`; anything else as it is."""
    if torch.is_tensor(obj):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, (tuple, list)):
        return type(obj)(to_device(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    return obj


class DatasetBatches(BatchSource):
    """Any map-style dataset cut into batches by torch's DataLoader, its `workers` processes (0: this one) fetching
    the next batches while the model trains on this one. The order is the seeded order of every source, so exact
    resume holds with any number of workers.

    By default `dataset[i]` is one example, of any size, and `collate` makes a list of them the batch tuple the
    task's training_step takes; where examples differ in size (boxes per image, audio of any length) it pads them or
    keeps them in lists. With `whole_batches`, the dataset takes a whole step's keys at once, [(epoch, index), ...],
    and returns the batch itself: one transfer from a worker per batch and no per-example collation, and the epoch
    for the random draws an example's augmentation hashes from its keys (images streamed from disk, data/stream.py).

    The rest serves workers that do heavy work, such as decoding images: `prefetch` batches each ahead (torch's
    default: 2), `idle_workers` that run only on cores the training leaves idle (`lower_priority`), and on a GPU
    `pin_memory` for faster copies and `spawn`ed workers."""

    def __init__(self, dataset, batch_size: int, seed: int, collate=None, workers: int = 0, shuffle: bool = True,
                 whole_batches: bool = False, prefetch: int | None = None, idle_workers: bool = False,
                 pin_memory: bool = False, spawn: bool = False):
        super().__init__(len(dataset), batch_size, seed, shuffle)
        self.dataset, self.collate, self.workers, self.whole_batches = dataset, collate, workers, whole_batches
        self.prefetch, self.idle_workers, self.pin_memory, self.spawn = prefetch, idle_workers, pin_memory, spawn

    def batches(self, epoch: int, first: int, engine: Engine) -> Iterator[tuple[tuple, int]]:
        order = self.order(epoch, torch.device("cpu"))
        steps = [step_indices(order, s, self.steps, self.batch_size) for s in range(first, self.steps)]
        shards = [engine.shard(idx).tolist() for idx in steps]
        for batch, shard, idx in zip(self.loader(epoch, shards, engine.device), shards, steps):
            engine.samples = len(shard)
            yield to_device(tuple(batch), engine.device), len(idx)

    def loader(self, epoch: int, shards: list[list[int]], device: torch.device):
        """The DataLoader of these steps, each this process's indices of one global batch."""
        from torch.utils.data import DataLoader, default_collate

        if self.whole_batches:
            feed = dict(sampler=[[(epoch, i) for i in shard] for shard in shards], batch_size=None)
        else:
            feed = dict(batch_sampler=shards, collate_fn=self.collate or default_collate)
        cuda, workers = device.type == "cuda", self.workers
        # its own generator: a DataLoader otherwise draws its workers' base seed from the global one, which a
        # resumed epoch would then draw at another point than the interrupted one (before different dropout masks)
        own = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return DataLoader(self.dataset, num_workers=workers, pin_memory=self.pin_memory and cuda, generator=own,
                          prefetch_factor=self.prefetch if workers else None,
                          worker_init_fn=lower_priority if workers and self.idle_workers else None,
                          multiprocessing_context="spawn" if workers and cuda and self.spawn else None, **feed)


def lower_priority(worker_id: int) -> None:
    """Fetching yields to training: the workers run when a core would otherwise be idle (Linux's SCHED_IDLE; a low
    nice value elsewhere). A worker that takes a core from one of the training threads holds up every operation of
    the step, which waits for its slowest thread (see threads.py); as an idle-time task it never does, and when the
    training has to wait for a batch, its cores fall idle and the workers run."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        try:
            os.nice(19)
        except OSError:
            pass


def default_workers() -> int:
    """One less than the free cores, from 1 to 4: the training keeps a core's worth of threads to itself. On this
    2-core machine one worker kept ResNet-20 at 0.93 of its in-memory speed (images streamed from disk), where two
    took it to 0.86; a small model that decoding cannot keep up with (LeNet-5) gains from --workers 2
    (bench/scale.py)."""
    from .threads import free_cores

    return max(1, min(4, free_cores() - 1))
