"""Tasks: one module per breakthrough. A task knows its data, models, loss, metrics and how a trained model is used.

The contract the run loop and the API rely on (see tasks/image.py for a full example):

    task = TASKS[name](config)
    data = task.prepare(progress)                 -> Prepared (splits as tensor tuples, json-able meta)
    model = task.build_model()                    -> torch.nn.Module (also from saved meta: task.from_meta)
    loss, sums = task.training_step(model, batch) -> sums are per-batch totals (e.g. correct predictions)
    metrics = task.evaluate(model, split, device) -> {'loss': ..., 'accuracy': ...}
    task.monitor_mode(metric)                     -> 'min' or 'max'
    results = task.finish(run, model, data)       -> test metrics, baselines, the report
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import ConfigError


@dataclass
class Prepared:
    train: tuple[torch.Tensor, ...]
    val: tuple[torch.Tensor, ...]
    test: tuple[torch.Tensor, ...]
    meta: dict
    notes: list[str] = field(default_factory=list)


def get_task(name: str):
    from .image import ImageClassification

    tasks = {"image": ImageClassification}
    if name not in tasks:
        raise ConfigError(f"Unknown task '{name}'. Choose one of: {', '.join(tasks)}.")
    return tasks[name]
