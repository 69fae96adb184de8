"""The process that trains for the web UI: `python -m deepworks.ui.worker JOB_FOLDER`.

Long work never runs in the server's request thread: the server starts this process per job (training, or an
AutoML search), and reads what it writes into the job's folder. `progress.json` (rewritten atomically about twice a second: step, epoch, ETA, running
means) and the run's own metrics.jsonl feed the page's live curves; `outcome.json` says how the job ended: finished,
stopped (Ctrl-C from the Stop button, the checkpoint saved, resumable) or failed, with the message a user reads.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..training.callbacks import ProgressFeed
from ..run import atomic_write_text
from .jobs import STOPPED_SAVED, has_checkpoint, read_json



def outcome(folder: Path, state: str, message: str = "", **extra) -> None:
    atomic_write_text(folder / "outcome.json", json.dumps({"state": state, "message": message, **extra}))


NOTHING_SAVED = ("Stopped before the first checkpoint, so nothing was saved and no run folder is left. Resume starts "
                 "the same settings again, from the beginning.")


def run_folders(runs_dir: Path | None) -> set[str]:
    try:
        return {p.name for p in runs_dir.iterdir() if p.is_dir()} if runs_dir else set()
    except OSError:
        return set()


def holds_nothing(path: Path) -> bool:
    """A run folder with nothing to keep: made, perhaps configured, but no epoch finished, no checkpoint, no
    results, and no process training it. A folder that is not a run (no config.yaml, and not empty) is kept."""
    from ..run import Run

    run = Run(path)
    if not (run.config_file.is_file() or not any(path.iterdir())):
        return False
    return not (run.checkpoint_file.exists() or run.results_file.exists() or run.is_training()
                or any(r.get("kind") == "epoch" for r in run.metrics()))


def remove_empty_runs(runs_dir: Path | None, before: set[str]) -> list[str]:
    """Remove the run folders this job made (new since it began) that hold nothing: a job stopped or failed before
    its first checkpoint left them, and `deepworks runs` listed them as 'no epoch finished'."""
    import shutil

    removed = []
    for name in sorted(run_folders(runs_dir) - before):
        path = runs_dir / name
        if not name.startswith(".") and holds_nothing(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(name)
    return removed


def job_run(job: Path, request: dict, runs_dir: Path | None, before: set[str]) -> str | None:
    """The run folder this job trained, if it is still there: the one its progress names (or it resumed), else the
    one run folder made since the job began (an engine that trains in other processes writes no progress here)."""
    progress = read_json(job / "progress.json") or {}
    named = progress.get("run") or request.get("resume")
    if named:
        return named if Path(named).is_dir() else None
    made = sorted(run_folders(runs_dir) - before)
    return str(runs_dir / made[0]) if len(made) == 1 else None


def stop_asked(signum, frame) -> None:
    """The page's Stop: noted for the next training loop (a KeyboardInterrupt raised inside a weakref callback is
    ignored by Python, and the note then still stops the next fit at its first step), and raised here."""
    from ..training.callbacks import STOP_ASKED

    STOP_ASKED.set()
    raise KeyboardInterrupt


def main(folder: str) -> int:
    import signal

    from ..errors import DeepworksError, Interrupted

    # The page's Stop is a SIGINT. A server started where SIGINT is ignored (a background job of a script, nohup)
    # hands that on to its workers, and Python then leaves it ignored: outside a training loop's own handler (between
    # an AutoML search's trials, say) a Stop was lost.
    signal.signal(signal.SIGINT, stop_asked)
    job = Path(folder)
    request = json.loads((job / "job.json").read_text())
    new_run = not (request.get("automl") or request.get("resume"))  # a search keeps its trials, a resume its run
    runs_dir = Path((request.get("settings") or {}).get("runs_dir") or "runs") if new_run else None
    before = run_folders(runs_dir) if runs_dir else set()
    try:
        return train_job(job, request)
    except (Interrupted, KeyboardInterrupt):
        removed = remove_empty_runs(runs_dir, before)
        run = job_run(job, request, runs_dir, before)
        said = STOPPED_SAVED.format(run=run) if has_checkpoint(run) else NOTHING_SAVED
        outcome(job, "stopped", said, run=run, removed=removed)
        return 130
    except DeepworksError as err:
        removed = remove_empty_runs(runs_dir, before)
        outcome(job, "failed", str(err) + removed_note(removed), run=job_run(job, request, runs_dir, before),
                removed=removed)
        return 2
    except Exception as err:  # a bug, not a user's mistake: the page still says what happened
        removed = remove_empty_runs(runs_dir, before)
        outcome(job, "failed", f"{type(err).__name__}: {err} (a deepworks bug: worker.log in {job} has the details)"
                + removed_note(removed), run=job_run(job, request, runs_dir, before), removed=removed)
        raise


def removed_note(removed: list[str]) -> str:
    if not removed:
        return ""
    return f" Its run folder {', '.join(removed)} was removed: no epoch had finished, so it held nothing to keep."


def trains_in_other_processes(request: dict) -> bool:
    """Whether the job's engine (asked for, or the resumed run's) trains in worker processes, where this process's
    callbacks cannot run."""
    settings = request.get("settings") or {}
    engine = settings.get("engine", settings.get("engine.name"))
    if engine is None and request.get("resume"):
        from ..config import Config

        try:
            engine = Config.load(Path(request["resume"]) / "config.yaml").engine.name
        except Exception:  # noqa: BLE001 - an unreadable run: api.train says what is wrong with it
            return False
    return engine not in (None, "local")


def train_job(job: Path, request: dict) -> int:
    """Train (or search) as the job asks, and write how it finished."""
    from .. import api

    feed = ProgressFeed(job / "progress.json")
    if request.get("automl"):  # a search: its trials are runs, its leaderboard is read from its study
        from ..experiments.search import automl

        search = request["automl"]
        summary = automl(budget=search["budget"], out=search["out"], progress=False, **request["settings"])
        best = summary.get("best") or {}
        outcome(job, "finished", "", run=best.get("run"), search=summary["folder"],
                results={"best": best.get("value"), "monitor": summary["monitor"]})
        return 0
    callbacks = [feed]
    if trains_in_other_processes(request):  # torchrun, Ray, Spark: rank 0 writes progress.json itself
        from ..training.distributed import PROGRESS_ENV

        os.environ[PROGRESS_ENV], callbacks = str(feed.path), None
    if request.get("resume"):
        trained = api.train(resume=request["resume"], progress=False, callbacks=callbacks)
    else:
        trained = api.train(progress=False, callbacks=callbacks, **request["settings"])
    if hasattr(trained, "summary"):  # --split speaker: a run per speaker (crossval.Folds); the page shows the last
        summary, worst = trained.summary, trained.summary["worst"]
        metric = summary["metric"]
        outcome(job, "finished", f"Each speaker was left out in turn: {metric} {summary[f'mean_{metric}']:.1%} on "
                                 f"the unheard speakers on average, {worst[metric]:.1%} for {worst['speaker']}. The "
                                 f"summary: {summary['report']}",
                run=str(trained.runs[-1].run.path),
                results={f"mean {metric}": summary[f"mean_{metric}"], f"worst {metric}": worst[metric]})
        return 0
    outcome(job, "finished", "", run=str(trained.run.path), results=trained.results.get("test", {}),
            baseline=trained.results.get("baseline"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
