"""The Python API. The CLI is a thin layer over these functions.

    import deepworks as dw
    trained = dw.train(data="photos/", model="resnet", epochs=10)
    trained.predict(["new.jpg"])            # top-k classes with probabilities

    lm = dw.train(task="text", data="notes.txt", model="lstm")
    lm.generate("Dear ", length=200, temperature=0.8)   # the prime and 200 new characters
    trained = dw.load("runs/photos-resnet")  # later, from the run directory
    dw.evaluate("runs/photos-resnet")        # test metrics again
    dw.runs()                                # every run with its best metric

training.py trains a run, trained.py loads and uses one; this module is the front: `train` picks how to train
(one process, worker processes, one run per speaker).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Config
from ..registry import register
from ..run import Run
from .faces import find_faces
from .trained import Trained, evaluate, generate, load, runs
from .training import configured, make_config, settings_to_keys, train_configured, train_or_continue

if TYPE_CHECKING:
    from ..experiments.crossval import Folds

__all__ = ["Run", "Trained", "audit", "evaluate", "find_faces", "generate", "load", "make_config", "register_task",
           "runs",
           "settings_to_keys", "train", "train_or_continue"]


def register_task(cls: type) -> type:
    """Make a Task subclass of your own trainable by its name: dw.register_task(MyTask); dw.train(task="mine")."""
    return register(cls)


def train(config: Config | str | Path | None = None, *, resume: str | Path | None = None,
          progress: bool | None = None, callbacks: list | None = None, **settings) -> Trained | Folds | None:
    """Train a model and write its run directory. `resume` continues an interrupted run from its checkpoint.
    `callbacks` are objects with any of the events of deepworks.training.callbacks (on_epoch_end(trainer, record), ...).
    With split='speaker' (audio), one run per speaker, each tested on the speaker it left out: a crossval.Folds.
    Returns None only on the machines other than machine 0 of a torchrun group (--node-rank 1 and up)."""
    started = time.perf_counter()
    cfg, task, run = configured(config, resume, callbacks, settings)
    if cfg.data.split == "speaker" and run is None:
        from ..experiments.crossval import leave_each_speaker_out

        return leave_each_speaker_out(cfg, task, progress, callbacks)
    return train_configured(cfg, task, run, progress, callbacks, started)


def audit(data: str, data_dir: str | None = None, image_size: int | None = None, channels: int | None = None,
          out: str | Path | None = None, progress: bool = False) -> dict:
    """Check labelled image data: balance, exact and near copies (leakage), corrupt files, sizes, shortcuts.
    Returns the findings (each with what it means and what to do); with `out`, also writes a report there."""
    from ..data.audit import audit_source

    return audit_source(data, data_dir, image_size, channels, out, progress=progress)
