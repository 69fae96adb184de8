"""`deepworks ui`: the web app, on the same FastAPI app as `deepworks serve` (its routes, token, body limits and
JSON errors), plus a REST API under /api for what the pages do, and the built front end at /.

The API (every route is in /openapi.json, so anything the pages do can be scripted):
    GET  /api/info                      tasks, built-in datasets, model templates, layer cards, version
    GET  /api/settings?task=image       the settings form: every config field with its help, type and choices
    POST /api/data/preview              {task, data, data_dir?}: classes, sizes, and a grid of examples per class
    POST /api/data/upload               a .zip of class folders, .csv, .npz, text or .tsv: kept, its path answered
    POST /api/design                    {layers or yaml, data (and image_size) or input and classes}: the canonical
                                        design, its YAML, each card's output shape and parameters
    POST /api/jobs                      {settings}: start training in a worker process; GET /api/jobs lists them
    POST /api/automl                    {settings, budget}: an AutoML search in a worker; its job shows the leaderboard
    GET  /api/jobs/{id}                 its state; /events streams it (Server-Sent Events); /stop; /resume
    GET  /api/runs                      finished runs; POST /api/runs/{name}/serve loads one for /v1/models/{name}/...
    GET  /api/runs/{name}/export?format=onnx   the exported model (its folder as a zip)
    GET  /api/runs/{name}/metrics       its curves and test results; /report/... its report page
    GET  /api/runs/{name}/confusion?true=3&predicted=5   the test images behind one cell of the confusion matrix
    POST /api/runs/{name}/trust         {tool: attack|explain|visualize, index, eps, method}: figures and numbers
    POST /api/runs/{name}/walk          {seed, steps}: a GAN's walk through its noise space, for a slider
    POST /api/audit                     {data}: the data audit's findings

A client names runs and jobs, never a path inside the server's folders; data is named as on the command line (a
built-in, or a path on this machine, which is the user's own when the server is on 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import io
import json
import time
import zipfile
from pathlib import Path

from fastapi import Request  # at module level: the routes' annotations are read from here

from ..errors import ConfigError
from ..run import Run
from ..serving.app import ClientError, Limits, make_app
from ..serving.reading import parse_json
from .design import check_design, checked_size, designed_input, sized_job
from .guard import DataRoots, LoginLink, SameOrigin, check_json_type, loopback_link, new_token
from .jobs import Jobs, resumable
from .tools import exit_if_work_is_left, latent_walk, off_loop, test_predictions, trust_tool
from .uploads import save_upload

STATIC = Path(__file__).parent / "static"
EVENT_POLL_S = 0.25  # how often a job's event stream looks at its files
UPLOAD_MB = 1024  # the largest request: a zip of photos (serve's other limits stay as they are)
UPLOAD_S = 600  # the time its body may take to arrive
PREVIEW_PER_CLASS = 6
HEAVY_AT_ONCE = 4  # requests computing on data or a model at the same time; more wait their turn
def build_ui_app(runs_dir: str | Path = "runs", token: str | None = None, limits: Limits | None = None,
                 data_roots=(), host: str = "127.0.0.1", port: int | None = None, insecure: bool = False):
    """The UI's app. Without a token, one is made (app.state.token; the login link carries it), unless `insecure`
    asks for none. Requests must name this server (`host`, loopback names, `port` when known) and come from its own
    page; the paths they name must lie in `runs_dir` or `data_roots` (guard.py says why)."""
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles

    token = token if token is not None or insecure else new_token()
    app = make_app([], token, limits or Limits(max_body_mb=UPLOAD_MB, body_timeout_s=UPLOAD_S))
    app.title = "deepworks ui"
    app.state.token = token
    if token is not None:
        app.add_middleware(LoginLink, token=token)
    app.add_middleware(SameOrigin, host=host, port=port)
    jobs = Jobs(Path(runs_dir))
    app.state.jobs = jobs
    add_api_routes(app, jobs, Path(runs_dir), DataRoots(Path(runs_dir), data_roots))
    if (STATIC / "index.html").is_file():
        app.mount("/", StaticFiles(directory=STATIC, html=True), name="ui")
    else:
        @app.get("/", include_in_schema=False)
        async def not_built():
            return HTMLResponse("<h1>deepworks ui</h1><p>The page is not built. From the deepworks source folder: "
                                "<code>npm ci --prefix ui &amp;&amp; npm run build --prefix ui</code>, then reload. "
                                "The API is at <a href='/openapi.json'>/openapi.json</a>.</p>", status_code=503)
    return app


def add_api_routes(app, jobs: Jobs, runs_dir: Path, roots: DataRoots) -> None:
    from fastapi.concurrency import run_in_threadpool

    at_once = asyncio.Semaphore(HEAVY_AT_ONCE)

    async def heavy(fn, *args):
        """Work on data or a model: a few at a time, in daemon threads (tools.off_loop: Ctrl-C never waits on them)."""
        async with at_once:
            try:
                return await off_loop(fn, *args)
            except asyncio.CancelledError:  # only the server's shutdown cancels a request: answer, no traceback
                raise ClientError(503, "Expected the server to finish this request. Received: Ctrl-C, which stops "
                                       "the UI; its work was left unfinished.") from None
    from fastapi.responses import Response, StreamingResponse

    @app.get("/api/info")
    async def info():
        from .._version import __version__
        from ..cards import BUILTIN_CARDS
        from ..models.stack import CARDS, IMAGE_CARDS, TEXT_CARDS

        tasks = BUILTIN_CARDS.values()
        return {"version": __version__, "tasks": list(BUILTIN_CARDS),
                "datasets": {t.name: list(t.builtins) for t in tasks},
                "templates": {t.name: t.describe()["templates"] for t in tasks},
                "task_cards": {t.name: t.describe() for t in tasks},
                "cards": CARDS, "cards_for": {"image": IMAGE_CARDS, "text": TEXT_CARDS}}

    @app.get("/api/settings")
    async def settings(task: str = "image"):
        return {"task": task, "fields": setting_fields(task)}

    @app.post("/api/data/preview")
    async def preview(request: Request):
        body = await json_body(request)
        return await heavy(data_preview, body, roots)

    @app.post("/api/data/upload")
    async def upload(request: Request):
        form = await request.form(max_files=1, max_fields=10)
        files = [v for _, v in form.multi_items() if hasattr(v, "read")]
        if not files:
            raise ClientError(400, "Expected one file in the form field 'file': a .zip of class folders, a .csv, an "
                                   ".npz, a text file or a .tsv of sentence pairs. Received: no file.")
        return await run_in_threadpool(save_upload, runs_dir, files[0].filename or "upload", await files[0].read())

    shapes: dict = {}  # (task, data, data_dir, image size) -> the input a designed model gets there, and classes

    def input_for(task, data, data_dir, image_size=None):
        key = (task, data, data_dir, image_size)
        if key not in shapes:
            shapes[key] = designed_input(*key)
        return shapes[key]

    @app.post("/api/design")
    async def design(request: Request):
        body = await json_body(request)
        if body.get("data") and "input" not in body:
            task, size = body.get("task", "image"), body.get("image_size")
            checked_sources(roots, task, {"data": body["data"], "data_dir": body.get("data_dir")})
            body["input"], body["classes"] = await heavy(input_for, task, body["data"], body.get("data_dir"),
                                                         None if size is None else checked_size(size))
        return check_design(body)

    @app.post("/api/jobs")
    async def start_job(request: Request):
        body = await json_body(request)
        settings = checked_settings(body.get("settings"), runs_dir, roots)
        settings = await heavy(sized_job, settings, input_for)  # a model that does not fit never starts
        return {"id": jobs.start(settings)}

    @app.post("/api/automl")
    async def start_search(request: Request):
        from ..experiments.search import need_optuna, parse_budget

        body = await json_body(request)
        need_optuna()
        budget = parse_budget(body.get("budget", "5m"))
        settings = checked_settings(body.get("settings"), runs_dir, roots)
        for key in ("model.name", "model", "runs_dir"):  # the search chooses the model; its trials go in its folder
            settings.pop(key, None)
        name = Run.safe_name(f"automl-{Path(str(settings.get('data') or settings.get('task') or 'image')).name}")
        out = runs_dir / ".ui" / "automl" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
        return {"id": jobs.start(settings, automl={"budget": budget, "out": str(out)})}

    @app.get("/api/jobs")
    async def list_jobs():
        return {"jobs": jobs.list()}

    @app.get("/api/jobs/{job_id}")
    async def job_status(job_id: str):
        return with_metrics(jobs.status(known_job(jobs, job_id)))

    @app.post("/api/jobs/{job_id}/stop")
    async def stop_job(job_id: str):
        return jobs.stop(known_job(jobs, job_id))

    @app.post("/api/jobs/{job_id}/resume")
    async def resume_job(job_id: str):
        status = jobs.status(known_job(jobs, job_id))
        if resumable(status) is None:
            nothing = " with nothing saved: press Train to start again" if status["state"] == "failed" else ""
            raise ClientError(409, f"Job {job_id} cannot resume: expected a stopped job, or a failed one with a "
                                   f"checkpoint. Received: a {status['state']} job{nothing}.")
        return {"id": jobs.resume(job_id)}

    @app.get("/api/jobs/{job_id}/events")
    async def job_events(job_id: str, request: Request):
        known_job(jobs, job_id)

        async def stream():
            last = None
            while True:
                status = with_metrics(jobs.status(job_id))
                text = json.dumps(status)
                if text != last:
                    last = text
                    yield f"event: status\ndata: {text}\n\n"
                if status["state"] not in ("starting", "running") or await request.is_disconnected():
                    yield "event: end\ndata: {}\n\n"
                    return
                await asyncio.sleep(EVENT_POLL_S)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    @app.get("/api/runs")
    async def list_runs():
        from ..api import runs

        return {"runs": [{**r, "name": Path(r["path"]).name, "empty": is_empty(r)} for r in runs(runs_dir)]
                if runs_dir.is_dir() else []}

    @app.post("/api/runs/{name}/serve")
    async def serve_run(name: str):
        from ..serving.models import Served

        served = app.state.served
        if name not in served:
            path = known_run(runs_dir, name)
            s = await run_in_threadpool(Served, name, str(path))
            await asyncio.get_running_loop().run_in_executor(s.executor, s.warm_up)
            served[name] = s
        return served[name].card()

    @app.get("/api/runs/{name}/export")
    async def export(name: str, format: str = "onnx"):
        from ..exporting.exporter import export_run

        path = known_run(runs_dir, name)
        card = await run_in_threadpool(export_run, str(path), format)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
            for f in sorted(Path(card["folder"]).iterdir()):
                if f.is_file():
                    z.write(f, f"{name}-{format}/{f.name}")
        return Response(buffer.getvalue(), media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="{name}-{format}.zip"'})

    @app.get("/api/runs/{name}/metrics")
    async def run_metrics(name: str):
        path = known_run(runs_dir, name)
        results = read_results(path)
        return {"name": name, "epochs": epoch_records(path), "test": results.get("test"),
                "report": (path / "report" / "index.html").is_file()}

    @app.get("/api/runs/{name}/report/{file:path}")
    async def report_file(name: str, file: str):
        from fastapi.responses import FileResponse

        folder = (known_run(runs_dir, name) / "report").resolve()
        path = (folder / file).resolve()
        if not path.is_file() or folder not in path.parents:
            raise ClientError(404, f"Expected a file of the run's report. Received: {file!r}.")
        return FileResponse(path)

    @app.post("/api/runs/{name}/trust")
    async def trust(name: str, request: Request):
        body = await json_body(request)
        return await heavy(trust_tool, known_run(runs_dir, name), body)

    @app.post("/api/runs/{name}/walk")
    async def walk(name: str, request: Request):
        body = await json_body(request)
        return await heavy(latent_walk, known_run(runs_dir, name), body)

    @app.post("/api/audit")
    async def audit(request: Request):
        from ..api import audit as run_audit

        body = await json_body(request)
        if not body.get("data"):
            raise ClientError(400, "Expected {\"data\": a built-in dataset or a path}. Received: no data.")
        roots.check(body["data"])
        report = await heavy(run_audit, str(body["data"]))
        return {k: v for k, v in report.items() if isinstance(v, (str, int, float, list, dict, bool, type(None)))}

    predictions: dict = {}  # run name -> (test images, labels, predictions), made once per run

    @app.get("/api/runs/{name}/confusion")
    async def confusion_cell(name: str, true: int, predicted: int, limit: int = 24):
        path = known_run(runs_dir, name)
        if name not in predictions:
            predictions[name] = await heavy(test_predictions, path)
        x, y, pred, classes = predictions[name]
        if not (0 <= true < len(classes) and 0 <= predicted < len(classes)):
            raise ClientError(400, f"Expected classes from 0 to {len(classes) - 1}. Received: true {true}, "
                                   f"predicted {predicted}.")
        cell = [i for i in range(len(y)) if y[i] == true and pred[i] == predicted]
        picked = cell[:max(1, min(limit, 100))]
        return {"true": classes[true], "predicted": classes[predicted], "count": len(cell),
                "images": [png_data_url(x[i]) for i in picked], "indices": picked}


# --- what the routes do -------------------------------------------------------------------------------------
async def json_body(request) -> dict:
    raw = await request.body()
    if raw:
        check_json_type(request.headers.get("content-type", ""))
    body = parse_json(raw or b"{}", "a JSON body")  # its depth bounded before it is parsed, as serve's are
    if not isinstance(body, dict):
        raise ClientError(400, f"Expected a JSON object. Received: {type(body).__name__}.")
    return body


def setting_fields(task: str) -> list[dict]:
    """The config's fields as a form: key, flag, help, type, default, choices; the task's first ones first."""
    from ..config import choices_of, fields_by_key
    from ..cards import BUILTIN_CARDS

    if task not in BUILTIN_CARDS:
        raise ClientError(404, f"Expected a task: {', '.join(BUILTIN_CARDS)}. Received: {task!r}.")
    card = BUILTIN_CARDS[task]
    first = list(card.form)
    out = []
    for key, (_, f, kind) in fields_by_key().items():
        if key in ("task", "data.source", "runs_dir", "name") or key.startswith("dist."):
            continue
        choices = list(choices_of(f))
        if key == "model.name":
            choices = [m for m, _ in card.templates]
        flag = f.metadata.get("flag")
        out.append({"key": key, "flag": (flag[0] if isinstance(flag, tuple) else flag) or "--" + key.split(".")[-1]
                    .replace("_", "-"), "help": f.metadata.get("help", ""), "type": type_name(kind),
                    "default": f.default if isinstance(f.default, (int, float, str, bool, type(None))) else None,
                    "choices": choices, "main": key in first})
    out.sort(key=lambda row: first.index(row["key"]) if row["key"] in first else len(first))
    return out


def type_name(kind) -> str:
    text = str(kind)
    for name in ("bool", "int", "float", "list", "str"):
        if name in text:
            return name
    return "str"


def checked_settings(settings, runs_dir: Path, roots: DataRoots) -> dict:
    """The job's settings checked as the CLI checks them, before any process starts: a mistake is answered at
    once with the same message the command line gives. The task must be one this server knows, and every file
    the settings name must lie in the data roots."""
    from ..api import make_config

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
    known_task(settings.get("task", "image"))
    cfg = make_config(**settings)
    cfg.check()
    checked_sources(roots, cfg.task, {"data": cfg.data.source, "target": cfg.data.target,
                                      "data_dir": cfg.data.data_dir, "init_from": cfg.model.init_from,
                                      "layers": cfg.model.layers if isinstance(cfg.model.layers, str) else None})
    return settings


def known_task(task) -> str:
    """A task the UI may run: a built-in or one registered in this process, never a module:Class to import (a
    request must not make the server import a module)."""
    from ..registry import task_names

    if task not in task_names():
        raise ClientError(400, f"Expected a task: {', '.join(task_names())}. Received: {task!r}.")
    return task


def checked_sources(roots: DataRoots, task, paths: dict) -> None:
    """The task is known, and each file or folder named (by setting) is inside the data roots."""
    known_task(task)
    for what, value in paths.items():
        roots.check(value, what)


def data_preview(body: dict, roots: DataRoots) -> dict:
    """What the data page shows: the sizes of the splits, and the task's own look at the data (Task.preview)."""
    from ..api import make_config
    from ..registry import get_task

    settings = {"task": body.get("task", "image"), "data": body.get("data") or None, "audit": False,
                **({"data_dir": body["data_dir"]} if body.get("data_dir") else {})}
    checked_sources(roots, settings["task"], {"data": settings["data"], "data_dir": settings.get("data_dir")})
    cfg = make_config(**settings)
    task = get_task(cfg.task)(cfg)
    prepared = task.prepare(progress=False)
    return {"task": cfg.task, "data": cfg.data.source, "splits": task.split_sizes(prepared),
            "notes": list(prepared.notes), **task.preview(prepared, PREVIEW_PER_CLASS)}


def read_results(path: Path) -> dict:
    """results.json, or {} while the run has none."""
    run = Run(path)
    return run.read_json(run.results_file) if run.results_file.exists() else {}


def png_data_url(image) -> str:
    """One uint8 (C, H, W) image as a PNG data URL (the page sizes it)."""
    from ..inference import png_base64

    return "data:image/png;base64," + png_base64(image)


def epoch_records(run_path: Path | str | None) -> list[dict]:
    """The run's epoch records so far (a line being written is skipped, as Run.metrics does)."""
    return [r for r in Run(run_path).metrics() if r.get("kind") == "epoch"] if run_path else []


def with_metrics(status: dict) -> dict:
    """A job's state with what its page draws: a run's epochs, or a search's leaderboard so far."""
    if status.get("automl"):
        from ..experiments.search import setting_of

        board = search_leaderboard(Path(status["automl"]["out"]))
        best = next((row for row in board if row["state"] == "complete"), None)
        retrain = None if best is None else {**(status.get("settings") or {}), "train.epochs": best["epochs"],
                                             **{setting_of(k): v for k, v in best["params"].items()}}
        return {**status, "leaderboard": board, "best_settings": retrain}
    return {**status, "epochs": epoch_records(status.get("run"))}


BOARDS: dict = {}  # a search's study file -> (its modification time, the leaderboard read then)


def search_leaderboard(folder: Path) -> list[dict]:
    """The trials of a search as they stand, read from its study (the search process writes it; this only reads),
    again only when the study's file has changed: an event stream asks four times a second. A read that caught the
    search mid-write gives the last board read and is tried again at the next ask."""
    db = folder / "study.db"
    try:
        mtime = db.stat().st_mtime_ns
    except OSError:
        return []
    known = BOARDS.get(db, (None, []))
    if known[0] != mtime:
        board = read_leaderboard(db)
        if board is None:
            return known[1]
        BOARDS[db] = (mtime, board)
    return BOARDS[db][1]


def read_leaderboard(db: Path) -> list[dict] | None:
    """The leaderboard of a study the search process is writing; None when it cannot be read yet. The file is opened
    read-only: Optuna creates the tables and rows it finds missing, and a reader that did so while the search created
    them made the search fail ("table ... already exists"). Until the search has written its study, and while a
    write holds it locked, the read fails (Optuna raises its own errors, or SQLAlchemy's, or asserts)."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    from ..experiments.search import leaderboard

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name="deepworks", storage=f"sqlite:///file:{db.resolve()}?mode=ro&uri=true")
        board = leaderboard(study)
    except (KeyError, ValueError, RuntimeError, AssertionError, SQLAlchemyError, optuna.exceptions.OptunaError):
        return None
    return json.loads(json.dumps(board, default=str))


def is_empty(row: dict) -> bool:
    """A run listed 'no epoch finished' that holds nothing either (no checkpoint): the page marks it empty. The UI's
    own jobs remove theirs; this one was left by a run stopped or failed elsewhere."""
    from .worker import holds_nothing

    return row.get("status") == "no epoch finished" and holds_nothing(Path(row["path"]))


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


def ui(runs_dir: str = "runs", host: str = "127.0.0.1", port: int = 8080, token: str | None = None,
       insecure: bool = False, log_level: str = "warning", data_roots=()) -> None:
    """Serve the web UI until Ctrl-C; workers still training are stopped with their checkpoints saved. Without
    --token, a random token is made for this launch (--insecure: none), and the login link printed carries it.
    Connections are guarded as serve's are (a slow request head times out, open connections are capped)."""
    from ..serving.net import make_server

    if token is not None and len(token) < 8:
        raise ConfigError(f"--token must be at least 8 characters long. Received: {len(token)}.")
    for root in data_roots:
        if not Path(root).expanduser().is_dir():
            raise ConfigError(f"--data-root must be a folder. Received: '{root}', which is not one.")
    token = token if token is not None or insecure else new_token()
    app = build_ui_app(runs_dir, token, data_roots=data_roots, host=host, port=port, insecure=insecure)
    print(f"deepworks ui: {loopback_link(host, port, token)}  (runs in {Path(runs_dir).resolve()}; open this link; "
          f"Ctrl-C to stop)", flush=True)
    try:
        make_server(app, host, port, app.state.limits, log_level, graceful_s=5).run()
    finally:
        app.state.jobs.close()
    exit_if_work_is_left()
