"""A task for the distributed tests, imported by the worker processes as `--task dist_tasks:CheckedImages`.

It is the image task with two checks that run inside every worker: after each update it compares the parameters
of all processes (they must be bit-identical), and when $DIST_KILL_AT says so, the process of rank 1 kills itself
with SIGKILL at that update of the first attempt (torch elastic's restart count 0): a worker lost mid-epoch. With
$DIST_INTERRUPT_AT, the process of rank 0 sends SIGINT at that update to the process $DIST_INTERRUPT names: a pid
(`kill -INT` to the launcher alone), or "group" for the launcher's process group (a terminal's Ctrl-C)."""

import os
import signal
import threading

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
            if engine.rank == 0 and self.updates == int(os.environ.get("DIST_INTERRUPT_AT", "0")):
                interrupt(os.environ["DIST_INTERRUPT"])
        return out


def interrupt(target: str) -> None:
    """Send SIGINT to the target, wait until the launcher has passed it on to this process, then let it arrive: the
    run stops at the step that follows, whatever the machine's speed. The arrival is caught by a handler of our own
    (Python runs handlers in the main thread): waiting for the signal to be pending instead (sigtimedwait) missed it
    whenever the kernel handed it to another of the worker's threads, which do not block it."""
    arrived = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda signum, frame: arrived.set())
    try:
        if target == "group":  # the workers have sessions of their own; the agent, their parent, is the launcher's
            os.killpg(os.getpgid(os.getppid()), signal.SIGINT)
        else:
            os.kill(int(target), signal.SIGINT)
        if not arrived.wait(120):
            raise RuntimeError("the launcher did not pass the SIGINT on to the workers")
    finally:
        signal.signal(signal.SIGINT, previous)
    signal.raise_signal(signal.SIGINT)  # now to the run's own Ctrl-C handler
