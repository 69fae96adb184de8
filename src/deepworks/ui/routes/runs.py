"""The routes of finished runs, for the Results, Try and Export pages: the list, a run served for /v1/models,
exported as a zip, its curves, test results and report, the test images behind a cell of its confusion matrix,
and a GAN's walk through its noise space. A client names a run, never a path."""

from __future__ import annotations

import asyncio
import io
import zipfile
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from ...run import Run
from ...serving.requests import ClientError
from ..tools import latent_walk, png_data_url, test_predictions
from .common import UIState, epoch_records, heavy, json_body, known_run, ui_state

CELL_MOST = 100  # test images one confusion cell answers with

router = APIRouter()


@router.get("/api/runs")
async def list_runs(ui: UIState = Depends(ui_state)):
    from ...api import runs

    return {"runs": [{**r, "name": Path(r["path"]).name, "empty": is_empty(r)} for r in runs(ui.runs_dir)]
            if ui.runs_dir.is_dir() else []}


@router.post("/api/runs/{name}/serve")
async def serve_run(name: str, request: Request, ui: UIState = Depends(ui_state)):
    from ...serving.models import Served

    served = request.app.state.served  # the models /v1/models/{name}/... answers for
    if name not in served:
        path = known_run(ui.runs_dir, name)
        s = await run_in_threadpool(Served, name, str(path))
        await asyncio.get_running_loop().run_in_executor(s.executor, s.warm_up)
        served[name] = s
    return served[name].card()


@router.get("/api/runs/{name}/export")
async def export(name: str, format: str = "onnx", ui: UIState = Depends(ui_state)):
    from ...exporting.exporter import export_run

    path = known_run(ui.runs_dir, name)
    card = await run_in_threadpool(export_run, str(path), format)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(Path(card["folder"]).iterdir()):
            if f.is_file():
                z.write(f, f"{name}-{format}/{f.name}")
    return Response(buffer.getvalue(), media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}-{format}.zip"'})


@router.get("/api/runs/{name}/metrics")
async def run_metrics(name: str, ui: UIState = Depends(ui_state)):
    path = known_run(ui.runs_dir, name)
    results = read_results(path)
    return {"name": name, "epochs": epoch_records(path), "test": results.get("test"),
            "report": (path / "report" / "index.html").is_file()}


@router.get("/api/runs/{name}/report/{file:path}")
async def report_file(name: str, file: str, ui: UIState = Depends(ui_state)):
    from fastapi.responses import FileResponse

    folder = (known_run(ui.runs_dir, name) / "report").resolve()
    path = (folder / file).resolve()
    if not path.is_file() or folder not in path.parents:
        raise ClientError(404, f"Expected a file of the run's report. Received: {file!r}.")
    return FileResponse(path)


@router.get("/api/runs/{name}/confusion")
async def confusion_cell(name: str, true: int, predicted: int, limit: int = 24, ui: UIState = Depends(ui_state)):
    path = known_run(ui.runs_dir, name)
    if name not in ui.predictions:  # made once per run
        ui.predictions[name] = await heavy(ui, test_predictions, path)
    x, y, pred, classes = ui.predictions[name]
    if not (0 <= true < len(classes) and 0 <= predicted < len(classes)):
        raise ClientError(400, f"Expected classes from 0 to {len(classes) - 1}. Received: true {true}, "
                               f"predicted {predicted}.")
    cell = [i for i in range(len(y)) if y[i] == true and pred[i] == predicted]
    picked = cell[:max(1, min(limit, CELL_MOST))]
    return {"true": classes[true], "predicted": classes[predicted], "count": len(cell),
            "images": [png_data_url(x[i]) for i in picked], "indices": picked}


@router.post("/api/runs/{name}/walk")
async def walk(name: str, request: Request, ui: UIState = Depends(ui_state)):
    body = await json_body(request)
    return await heavy(ui, latent_walk, known_run(ui.runs_dir, name), body)


def read_results(path: Path) -> dict:
    """results.json, or {} while the run has none."""
    run = Run(path)
    return run.read_json(run.results_file) if run.results_file.exists() else {}


def is_empty(row: dict) -> bool:
    """A run listed 'no epoch finished' that holds nothing either (no checkpoint): the page marks it empty. The UI's
    own jobs remove theirs; this one was left by a run stopped or failed elsewhere."""
    from ..worker import holds_nothing

    return row.get("status") == "no epoch finished" and holds_nothing(Path(row["path"]))
