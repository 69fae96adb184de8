"""Batch sources: how an epoch's mini-batches reach the loop. A task owns its source (`Task.batch_source`).

The default, `TensorBatches`, keeps the whole training split as tensors on the device and slices each batch with
`index_select`: the fastest path when the data fits in memory, and the one every built-in task uses then. Images
from folders or CSVs too large for memory stream instead (`data/stream.py`), decoded in worker processes.

Both follow one rule, the root of exact resume: the order of epoch e is a permutation drawn from its own generator
seeded by (seed, e), cut into steps of --batch-size samples; step s of epoch e is therefore the same samples
whatever happened before it, whatever the number of worker or training processes. Each training process takes its
contiguous part of every global batch (`engine.shard`).
"""

from __future__ import annotations

import math
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
    """Any map-style dataset (`dataset[i]` -> one example, of any size) cut into batches by `collate` (a list of
    examples -> the batch tuple the task's training_step takes). Where examples differ in size (boxes per image,
    audio of any length), the collate pads them or keeps them in lists. `workers` processes fetch the examples
    (torch's DataLoader); the order is the seeded order of every source, so exact resume holds."""

    def __init__(self, dataset, batch_size: int, seed: int, collate=None, workers: int = 0, shuffle: bool = True):
        super().__init__(len(dataset), batch_size, seed, shuffle)
        self.dataset, self.collate, self.workers = dataset, collate, workers

    def batches(self, epoch: int, first: int, engine: Engine) -> Iterator[tuple[tuple, int]]:
        from torch.utils.data import DataLoader, default_collate

        order = self.order(epoch, torch.device("cpu"))
        steps = [step_indices(order, s, self.steps, self.batch_size) for s in range(first, self.steps)]
        shards = [engine.shard(idx).tolist() for idx in steps]
        loader = DataLoader(self.dataset, batch_sampler=shards, collate_fn=self.collate or default_collate,
                            num_workers=self.workers)
        for batch, shard, idx in zip(loader, shards, steps):
            engine.samples = len(shard)
            yield to_device(tuple(batch), engine.device), len(idx)
