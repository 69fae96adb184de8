"""The Train page's routes: training and AutoML jobs started in worker processes (ui/jobs.py), their state, their
event stream, stop and resume. Settings are checked as the command line checks them before any process starts."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from ...run import Run
from ...serving.requests import ClientError
from ..design import sized_job
from ..guard import DataRoots
from ..jobs import resumable
from .common import (DEFAULT_TASK, UIState, checked_sources, epoch_records, heavy, json_body, known_job, known_task,
                     ui_state)

EVENT_POLL_S = 0.25  # how often a job's event stream looks at its files

router = APIRouter()


@router.post("/api/jobs")
async def start_job(request: Request, ui: UIState = Depends(ui_state)):
    body = await json_body(request)
    settings = checked_settings(body.get("settings"), ui.runs_dir, ui.roots)
    settings = await heavy(ui, sized_job, settings, ui.input_for)  # a model that does not fit never starts
    return {"id": ui.jobs.start(settings)}


@router.post("/api/automl")
async def start_search(request: Request, ui: UIState = Depends(ui_state)):
    from ...experiments.search import need_optuna, parse_budget

    body = await json_body(request)
    need_optuna()
    budget = parse_budget(body.get("budget", "5m"))
    settings = checked_settings(body.get("settings"), ui.runs_dir, ui.roots)
    for key in ("model.name", "model", "runs_dir"):  # the search chooses the model; its trials go in its folder
        settings.pop(key, None)
    name = Run.safe_name(f"automl-{Path(str(settings.get('data') or settings.get('task') or DEFAULT_TASK)).name}")
    out = ui.runs_dir / ".ui" / "automl" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    return {"id": ui.jobs.start(settings, automl={"budget": budget, "out": str(out)}), "search": out.name}


@router.get("/api/jobs")
async def list_jobs(ui: UIState = Depends(ui_state)):
    return {"jobs": ui.jobs.list()}


@router.get("/api/jobs/{job_id}")
async def job_status(job_id: str, ui: UIState = Depends(ui_state)):
    return with_metrics(ui.jobs.status(known_job(ui.jobs, job_id)))


@router.post("/api/jobs/{job_id}/stop")
async def stop_job(job_id: str, ui: UIState = Depends(ui_state)):
    return ui.jobs.stop(known_job(ui.jobs, job_id))


@router.post("/api/jobs/{job_id}/resume")
async def resume_job(job_id: str, ui: UIState = Depends(ui_state)):
    status = ui.jobs.status(known_job(ui.jobs, job_id))
    if resumable(status) is None:
        nothing = " with nothing saved: press Train to start again" if status["state"] == "failed" else ""
        raise ClientError(409, f"Job {job_id} cannot resume: expected a stopped job, or a failed one with a "
                               f"checkpoint. Received: a {status['state']} job{nothing}.")
    return {"id": ui.jobs.resume(job_id)}


@router.get("/api/jobs/{job_id}/events")
async def job_events(job_id: str, request: Request, ui: UIState = Depends(ui_state)):
    known_job(ui.jobs, job_id)

    async def stream():
        last = None
        while True:
            status = with_metrics(ui.jobs.status(job_id))
            text = json.dumps(status)
            if text != last:
                last = text
                yield f"event: status\ndata: {text}\n\n"
            if status["state"] not in ("starting", "running") or await request.is_disconnected():
                yield "event: end\ndata: {}\n\n"
                return
            await asyncio.sleep(EVENT_POLL_S)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


def checked_settings(settings, runs_dir: Path, roots: DataRoots) -> dict:
    """The job's settings checked as the CLI checks them, before any process starts: a mistake is answered at
    once with the same message the command line gives. The task must be one this server knows, and every file
    the settings name must lie in the data roots."""
    from ...api import make_config
    from ...config import named_paths

    if not isinstance(settings, dict):
        raise ClientError(400, f"Expected settings as a JSON object (train.epochs: 2, ...). Received: {settings!r}.")
    if "config" in settings:
        raise ClientError(400, "Expected settings one by one (train.epochs: 2, ...). Received: a config file, which "
                               "the UI does not read: paste its settings instead.")
    settings = {k: v for k, v in settings.items() if v not in (None, "")}
    if settings.get("runs_dir") not in (None, str(runs_dir)):
        raise ClientError(400, f"Expected no runs_dir: this UI's runs go to {runs_dir} (deepworks ui --runs-dir). "
                               f"Received: {str(settings['runs_dir'])[:200]!r}.")
    settings["runs_dir"] = str(runs_dir)
    known_task(settings.get("task", DEFAULT_TASK))
    cfg = make_config(**settings)
    cfg.check()
    checked_sources(roots, cfg.task, named_paths(cfg))
    return settings


def with_metrics(status: dict) -> dict:
    """A job's state with what its page draws: a run's epochs, or a search's leaderboard so far."""
    if status.get("automl"):
        from ...experiments.board import search_leaderboard
        from ...experiments.search import setting_of

        board = search_leaderboard(Path(status["automl"]["out"]))
        best = next((row for row in board if row["state"] == "complete"), None)
        retrain = None if best is None else {**(status.get("settings") or {}), "train.epochs": best["epochs"],
                                             **{setting_of(k): v for k, v in best["params"].items()}}
        return {**status, "leaderboard": board, "best_settings": retrain}
    return {**status, "epochs": epoch_records(status.get("run"))}
