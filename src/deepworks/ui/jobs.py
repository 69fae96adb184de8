"""Training jobs for the web UI: one worker process each (worker.py), their state read from what they write.

A job's folder (RUNS/.ui/jobs/ID) holds job.json (what was asked), progress.json (where training is), outcome.json
(how it ended) and worker.log (the process's own output). The state a page shows comes from those files and the
process itself, never from memory alone: a worker that died without writing its outcome is reported failed, with
the end of its log, the moment its process is gone, so a dead run is never shown as running.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..run import atomic_write_text

STOP_ASKED = "stop-asked"  # in a job's folder: the Stop button was pressed
STOPPED_SAVED = "Stopped; the state is saved in {run}. Resume continues from it."
STOPPED_STARTING = ("Stopped while starting, so nothing was saved. Resume starts the same settings again, from "
                    "the beginning.")


class Jobs:
    def __init__(self, runs_dir: Path):
        self.runs_dir = Path(runs_dir)
        self.root = self.runs_dir / ".ui" / "jobs"
        self.procs: dict[str, subprocess.Popen] = {}

    # --- start, stop, resume ----------------------------------------------------------------------------
    def start(self, settings: dict | None = None, resume: str | None = None, automl: dict | None = None) -> str:
        """A worker for training (`settings`), for continuing a run (`resume`), or for a search (`automl`: its
        budget and folder)."""
        job_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
        folder = self.root / job_id
        folder.mkdir(parents=True)
        request = {"settings": settings or {}, "resume": resume, "automl": automl, "started": time.time()}
        atomic_write_text(folder / "job.json", json.dumps(request, indent=1))
        log = open(folder / "worker.log", "wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.procs[job_id] = subprocess.Popen([sys.executable, "-m", "deepworks.ui.worker", str(folder)],
                                              stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        atomic_write_text(folder / "pid", str(self.procs[job_id].pid))
        return job_id

    def stop(self, job_id: str) -> dict:
        """Ctrl-C for the worker: the loop saves its checkpoint at the end of the step and the job ends 'stopped'.
        The stop is noted first: a worker stopped while Python was still starting dies before it can say so."""
        atomic_write_text(self.root / job_id / STOP_ASKED, str(time.time()))
        proc = self.procs.get(job_id)
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        elif self.alive(job_id):  # a worker an earlier server process started
            os.kill(int((self.root / job_id / "pid").read_text()), signal.SIGINT)
        return self.status(job_id)

    def resume(self, job_id: str) -> str:
        """A stopped run continues from its checkpoint; a stopped search, by the same command, from its study; a job
        stopped before its first checkpoint starts the same settings again. `resumable` says which, or None."""
        status = self.status(job_id)
        how = resumable(status)
        if how == "search":
            return self.start(status["settings"], automl=status["automl"])
        if how == "checkpoint":
            return self.start(resume=status["run"])
        return self.start(status["settings"])

    # --- what a page shows ----------------------------------------------------------------------------
    def folder(self, job_id: str) -> Path | None:
        folder = self.root / job_id
        return folder if job_id and "/" not in job_id and job_id[0] != "." and folder.is_dir() else None

    def status(self, job_id: str) -> dict:
        folder = self.root / job_id
        request = read_json(folder / "job.json") or {}
        progress = read_json(folder / "progress.json")
        outcome = read_json(folder / "outcome.json")
        run = outcome["run"] if "run" in (outcome or {}) else (progress or {}).get("run") or request.get("resume")
        out = {"id": job_id, "settings": request.get("settings"), "resume": request.get("resume"), "run": run,
               "automl": request.get("automl"), "progress": progress, "started": request.get("started")}
        if outcome is not None:
            return {**out, **outcome, "run": run}
        if self.alive(job_id):
            busy = progress or request.get("automl")  # a search's progress is its study
            return {**out, "state": "running" if busy else "starting", "message": ""}
        if (folder / STOP_ASKED).is_file():  # stopped before the worker could say so (starting, or a second Stop)
            said = STOPPED_SAVED.format(run=run) if has_checkpoint(run) else STOPPED_STARTING
            return {**out, "state": "stopped", "message": said}
        return {**out, "state": "failed", "message": died_message(folder)}

    def alive(self, job_id: str) -> bool:
        proc = self.procs.get(job_id)
        if proc is not None:
            return proc.poll() is None
        pid = (self.root / job_id / "pid")
        try:  # a worker started by an earlier server process
            os.kill(int(pid.read_text()), 0)
            return True
        except (OSError, ValueError):
            return False

    def list(self) -> list[dict]:
        if not self.root.is_dir():
            return []
        return [self.status(p.name) for p in sorted(self.root.iterdir(), reverse=True) if p.is_dir()]

    def close(self) -> None:
        """Stop every worker still running (the server is going away): each saves its checkpoint."""
        for job_id, proc in self.procs.items():
            if proc.poll() is None:
                atomic_write_text(self.root / job_id / STOP_ASKED, str(time.time()))
                proc.send_signal(signal.SIGINT)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def resumable(status: dict) -> str | None:
    """How a job resumes: 'search' (from its study), 'checkpoint' (its run's), 'again' (a job stopped before its
    first checkpoint: the same settings from the start), or None (running, finished, or failed with nothing saved)."""
    if status.get("state") not in ("stopped", "failed"):
        return None
    if status.get("automl"):
        return "search"
    if has_checkpoint(status.get("run")):
        return "checkpoint"
    return "again" if status["state"] == "stopped" and status.get("settings") else None


def has_checkpoint(run: str | None) -> bool:
    """Whether the run folder `run` holds a checkpoint to continue from."""
    return bool(run) and (Path(run) / "checkpoint.pt").is_file()


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def died_message(folder: Path) -> str:
    try:
        lines = (folder / "worker.log").read_text(errors="replace").strip().splitlines()
    except OSError:
        lines = []
    tail = "\n".join(lines[-8:])
    return ("The training process ended without reporting how (killed, or out of memory?)."
            + (f" The end of its log:\n{tail}" if tail else ""))
