"""The Model page's route: a design of layer cards checked against the data it will train on (ui/design.py)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from ..design import check_design, checked_size
from .common import DEFAULT_TASK, UIState, checked_sources, heavy, json_body, ui_state

router = APIRouter()


@router.post("/api/design")
async def design(request: Request, ui: UIState = Depends(ui_state)):
    body = await json_body(request)
    if body.get("data") and "input" not in body:
        task, size = body.get("task", DEFAULT_TASK), body.get("image_size")
        checked_sources(ui.roots, task, {"data": body["data"], "data_dir": body.get("data_dir")})
        body["input"], body["classes"] = await heavy(ui, ui.input_for, task, body["data"], body.get("data_dir"),
                                                     None if size is None else checked_size(size))
    return check_design(body)
