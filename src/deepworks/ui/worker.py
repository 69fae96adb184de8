"""The process that trains for the web UI: `python -m deepworks.ui.worker JOB_FOLDER`.

Long work never runs in the server's request thread: the server starts this process per job (training, or an
AutoML search), and reads what it writes into the job's folder. `progress.json` (rewritten atomically about twice a second: step, epoch, ETA, running
means) and the run's own metrics.jsonl feed the page's live curves; `outcome.json` says how the job ended: finished,
stopped (Ctrl-C from the Stop button, the checkpoint saved, resumable) or failed, with the message a user reads.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ..callbacks import eta_seconds
from ..run import atomic_write_text

PROGRESS_EVERY_S = 0.5


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


def outcome(folder: Path, state: str, message: str = "", **extra) -> None:
    atomic_write_text(folder / "outcome.json", json.dumps({"state": state, "message": message, **extra}))


def main(folder: str) -> int:
    from .. import api
    from ..errors import DeepworksError, Interrupted

    job = Path(folder)
    request = json.loads((job / "job.json").read_text())
    feed = ProgressFeed(job / "progress.json")
    try:
        if request.get("automl"):  # a search: its trials are runs, its leaderboard is read from its study
            from ..search import automl

            search = request["automl"]
            summary = automl(budget=search["budget"], out=search["out"], progress=False, **request["settings"])
            best = summary.get("best") or {}
            outcome(job, "finished", "", run=best.get("run"), search=summary["folder"],
                    results={"best": best.get("value"), "monitor": summary["monitor"]})
            return 0
        if request.get("resume"):
            trained = api.train(resume=request["resume"], progress=False, callbacks=[feed])
        else:
            trained = api.train(progress=False, callbacks=[feed], **request["settings"])
    except (Interrupted, KeyboardInterrupt) as err:
        outcome(job, "stopped", str(err) or "Stopped; the state is saved. Resume continues from it.")
        return 130
    except DeepworksError as err:
        outcome(job, "failed", str(err))
        return 2
    except Exception as err:  # a bug, not a user's mistake: the page still says what happened
        outcome(job, "failed", f"{type(err).__name__}: {err} (a deepworks bug: worker.log in {job} has the details)")
        raise
    if hasattr(trained, "summary"):  # --split speaker: a run per speaker (crossval.Folds); the page shows the last
        summary, worst = trained.summary, trained.summary["worst"]
        outcome(job, "finished", f"Each speaker was left out in turn: {summary['mean_accuracy']:.1%} of the unheard "
                                 f"speakers' clips recognised on average, {worst['accuracy']:.1%} of "
                                 f"{worst['speaker']}'s. The summary: {summary['report']}",
                run=str(trained.runs[-1].run.path),
                results={"mean accuracy": summary["mean_accuracy"], "worst accuracy": worst["accuracy"]})
        return 0
    outcome(job, "finished", "", run=str(trained.run.path), results=trained.results.get("test", {}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
