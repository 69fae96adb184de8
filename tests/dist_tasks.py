"""A task for the distributed tests, imported by the worker processes as `--task dist_tasks:CheckedImages`.

It is the image task with two checks that run inside every worker: after each update it compares the parameters
of all processes (they must be bit-identical), and when $DIST_KILL_AT says so, the process of rank 1 kills itself
with SIGKILL at that update of the first attempt (torch elastic's restart count 0): a worker lost mid-epoch."""

import os
import signal

import torch
import torch.distributed as dist

from deepworks.tasks.image import ImageClassification


class CheckedImages(ImageClassification):
    name = "checked-images"

    def __init__(self, cfg, meta=None):
        super().__init__(cfg, meta)
        self.updates = 0

    def update(self, model, batch, optimizers, engine):
        out = super().update(model, batch, optimizers, engine)
        self.updates += 1
        if engine.distributed:
            flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
            everyone = [torch.empty_like(flat) for _ in range(engine.world_size)]
            dist.all_gather(everyone, flat)
            if not all(torch.equal(everyone[0], other) for other in everyone[1:]):
                raise RuntimeError(f"the parameters differ between processes after update {self.updates}")
            kill_at = int(os.environ.get("DIST_KILL_AT", "0"))
            if (kill_at and engine.rank == 1 and self.updates == kill_at
                    and os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"):
                os.kill(os.getpid(), signal.SIGKILL)
        return out
