"""The Data page's routes, and what every page reads first: the tasks' cards (/api/info), a task's settings form,
a look at a dataset, and an upload kept for training."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool

from ...serving.requests import ClientError
from ..guard import DataRoots
from ..uploads import save_upload
from .common import DEFAULT_TASK, UIState, checked_sources, heavy, json_body, ui_state

PREVIEW_PER_CLASS = 6

router = APIRouter()


@router.get("/api/info")
async def info():
    from ..._version import __version__
    from ...cards import BUILTIN_CARDS
    from ...models.pretrained import installed
    from ...models.stack import CARDS

    tasks = BUILTIN_CARDS.values()
    return {"version": __version__, "tasks": list(BUILTIN_CARDS), "pretrained": installed(),
            "datasets": {t.name: list(t.builtins) for t in tasks},
            "templates": {t.name: t.describe()["templates"] for t in tasks},
            "task_cards": {t.name: t.describe() for t in tasks},
            "cards": CARDS, "cards_for": layer_cards_for(tasks)}


def layer_cards_for(tasks) -> dict:
    """The designer's layer cards for each task that trains a designed model ('layers' among its models), by the
    kind of input it takes (the designer builds on images or on text)."""
    from ...models.stack import IMAGE_CARDS, TEXT_CARDS

    by_input = {"image": IMAGE_CARDS, "text": TEXT_CARDS}
    return {t.name: by_input[t.inputs[0]] for t in tasks if "layers" in t.models and t.inputs[0] in by_input}


@router.get("/api/settings")
async def settings(task: str = DEFAULT_TASK):
    return {"task": task, "fields": setting_fields(task)}


@router.post("/api/data/preview")
async def preview(request: Request, ui: UIState = Depends(ui_state)):
    body = await json_body(request)
    return await heavy(ui, data_preview, body, ui.roots)


@router.post("/api/data/upload")
async def upload(request: Request, ui: UIState = Depends(ui_state)):
    form = await request.form(max_files=1, max_fields=10)
    files = [v for _, v in form.multi_items() if hasattr(v, "read")]
    if not files:
        raise ClientError(400, "Expected one file in the form field 'file': a .zip of class folders, a .csv, an "
                               ".npz, a text file or a .tsv of sentence pairs. Received: no file.")
    return await run_in_threadpool(save_upload, ui.runs_dir, files[0].filename or "upload", await files[0].read())


def setting_fields(task: str) -> list[dict]:
    """The settings the task takes (cards.applies) as a form: key, flag, help, type, default, choices; the task's
    first ones first."""
    from ...cards import BUILTIN_CARDS, applies
    from ...config import choices_of, fields_by_key

    if task not in BUILTIN_CARDS:
        raise ClientError(404, f"Expected a task: {', '.join(BUILTIN_CARDS)}. Received: {task!r}.")
    card = BUILTIN_CARDS[task]
    first = list(card.form)
    out = []
    for key, (_, f, kind) in fields_by_key().items():
        if key in ("task", "data.source", "runs_dir", "name") or key.startswith("dist.") or not applies(key, task):
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


def data_preview(body: dict, roots: DataRoots) -> dict:
    """What the data page shows: the sizes of the splits, and the task's own look at the data (Task.preview)."""
    from ...api import make_config
    from ...registry import get_task

    settings = {"task": body.get("task", DEFAULT_TASK), "data": body.get("data") or None, "audit": False,
                **({"data_dir": body["data_dir"]} if body.get("data_dir") else {})}
    checked_sources(roots, settings["task"], {"data": settings["data"], "data_dir": settings.get("data_dir")})
    cfg = make_config(**settings)
    task = get_task(cfg.task)(cfg)
    prepared = task.prepare(progress=False)
    return {"task": cfg.task, "data": cfg.data.source, "splits": task.make_report().split_sizes(prepared),
            "notes": list(prepared.notes), **task.preview(prepared, PREVIEW_PER_CLASS)}
