"""What the UI's routes share: the server's state (`UIState`, reached through the `ui_state` dependency), its
heavy-work gate, a request's JSON body, and the checks that a task, a job or a run is one this server knows."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request  # at module level: the routes' annotations are read from here

from ...config import Config
from ...run import Run
from ...serving.requests import ClientError
from ...serving.reading import parse_json
from ..design import designed_input
from ..guard import DataRoots, check_json_type
from ..jobs import Jobs
from ..tools import off_loop

HEAVY_AT_ONCE = 4  # requests computing on data or a model at the same time; more wait their turn
DEFAULT_TASK = Config.task  # the task of a request that names none, as on the command line


@dataclass
class UIState:
    """One UI server's state: its runs folder, its jobs, the folders requests may name, the gate heavy work waits
    at, and what it keeps between requests (designed inputs, a run's test predictions)."""
    runs_dir: Path
    jobs: Jobs
    roots: DataRoots
    at_once: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(HEAVY_AT_ONCE))
    shapes: dict = field(default_factory=dict)  # (task, data, data_dir, image size) -> (designed input, classes)
    predictions: dict = field(default_factory=dict)  # run name -> (test images, labels, predictions, classes)

    def input_for(self, task, data, data_dir, image_size=None):
        """The input a designed model gets from this data, and its classes (worked out once per data)."""
        key = (task, data, data_dir, image_size)
        if key not in self.shapes:
            self.shapes[key] = designed_input(*key)
        return self.shapes[key]


def ui_state(request: Request) -> UIState:
    """The routes' dependency: the state of the UI app that received the request."""
    return request.app.state.ui


async def heavy(ui: UIState, fn, *args):
    """Work on data or a model: a few at a time, in daemon threads (tools.off_loop: Ctrl-C never waits on them)."""
    async with ui.at_once:
        try:
            return await off_loop(fn, *args)
        except asyncio.CancelledError:  # only the server's shutdown cancels a request: answer, no traceback
            raise ClientError(503, "Expected the server to finish this request. Received: Ctrl-C, which stops "
                                   "the UI; its work was left unfinished.") from None


async def json_body(request) -> dict:
    raw = await request.body()
    if raw:
        check_json_type(request.headers.get("content-type", ""))
    body = parse_json(raw or b"{}", "a JSON body", exact=True)  # depth bounded before it is parsed, as serve's are
    if not isinstance(body, dict):
        raise ClientError(400, f"Expected a JSON object. Received: {type(body).__name__}.")
    return body


def known_task(task) -> str:
    """A task the UI may run: a built-in or one registered in this process, never a module:Class to import (a
    request must not make the server import a module)."""
    from ...registry import task_names

    if task not in task_names():
        raise ClientError(400, f"Expected a task: {', '.join(task_names())}. Received: {task!r}.")
    return task


def checked_sources(roots: DataRoots, task, paths: dict) -> None:
    """The task is known, and each file or folder named (by setting) is inside the data roots: each of a pair
    'SOURCE_FILE,TARGET_FILE' too. A layers list (not a file's name) names nothing."""
    known_task(task)
    for what, value in paths.items():
        for part in value.split(",") if isinstance(value, str) else [value]:
            roots.check(part, what)


def known_job(jobs: Jobs, job_id: str) -> str:
    if jobs.folder(job_id) is None:
        raise ClientError(404, f"Expected a job of this server (GET /api/jobs lists them). Received: {job_id!r}.")
    return job_id


def known_run(runs_dir: Path, name: str) -> Path:
    path = runs_dir / name
    if Run.safe_name(name) != name or not (path / "config.yaml").is_file():
        raise ClientError(404, f"Expected the name of a run in {runs_dir} (GET /api/runs lists them). Received: "
                               f"{name!r}.")
    return path


def epoch_records(run_path: Path | str | None) -> list[dict]:
    """The run's epoch records so far (a line being written is skipped, as Run.metrics does)."""
    return [r for r in Run(run_path).metrics() if r.get("kind") == "epoch"] if run_path else []
