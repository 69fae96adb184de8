"""The Trust page's routes: a trust tool on a run's test image (ui/tools.py: attack, explain, visualize), and the
audit of a dataset."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from ...serving.requests import ClientError
from ..tools import trust_tool
from .common import UIState, heavy, json_body, known_run, ui_state

router = APIRouter()


@router.post("/api/runs/{name}/trust")
async def trust(name: str, request: Request, ui: UIState = Depends(ui_state)):
    body = await json_body(request)
    return await heavy(ui, trust_tool, known_run(ui.runs_dir, name), body)


@router.post("/api/audit")
async def audit(request: Request, ui: UIState = Depends(ui_state)):
    from ...api import audit as run_audit

    body = await json_body(request)
    if not body.get("data"):
        raise ClientError(400, "Expected {\"data\": a built-in dataset or a path}. Received: no data.")
    ui.roots.check(body["data"])
    report = await heavy(ui, run_audit, str(body["data"]))
    return {k: v for k, v in report.items() if isinstance(v, (str, int, float, list, dict, bool, type(None)))}
