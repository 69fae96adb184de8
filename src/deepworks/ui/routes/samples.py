"""The Start page's routes: samples added class by class (uploads, zips, webcam snapshots, microphone recordings),
kept as a training folder (ui/sample_store.py says how they are checked and kept). The folder is trained with the
job API like any other (POST /api/jobs with its `data`, which the listing gives).

    GET    /api/samples                          the datasets, and the samples a class needs before training
    POST   /api/samples                          multipart: dataset, class, task, files (one or more; zips unpacked)
    GET    /api/samples/{dataset}                its classes, their counts and newest samples, the folder to train on
    DELETE /api/samples/{dataset}                the whole dataset
    PUT    /api/samples/{dataset}/{class}        {task}: an empty class (the dataset made when new)
    PATCH  /api/samples/{dataset}/{class}        {name}: the class renamed
    DELETE /api/samples/{dataset}/{class}        the class and its samples
    GET    /api/samples/{dataset}/{class}/{file} a sample (?thumb=1: a picture's thumbnail); DELETE removes it
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from ...serving.requests import ClientError
from .. import sample_store as store
from .common import UIState, json_body, ui_state

FORM_FIELDS = 10  # dataset, class, task, and a few to spare

router = APIRouter()


@router.get("/api/samples")
async def list_datasets(ui: UIState = Depends(ui_state)):
    return {"datasets": await run_in_threadpool(store.datasets, ui.runs_dir), "min_per_class": store.min_per_class()}


@router.post("/api/samples")
async def add_samples(request: Request, ui: UIState = Depends(ui_state)):
    form = await read_form(request)
    try:
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        files = [v for k, v in form.multi_items() if not isinstance(v, str)]
        return await run_in_threadpool(store.add_samples, ui.runs_dir, fields.get("dataset"), fields.get("class"),
                                       fields.get("task"), files)
    finally:
        await form.close()


@router.get("/api/samples/{dataset}")
async def dataset_listing(dataset: str, ui: UIState = Depends(ui_state)):
    return await run_in_threadpool(store.listing, ui.runs_dir, dataset)


@router.delete("/api/samples/{dataset}")
async def delete_dataset(dataset: str, ui: UIState = Depends(ui_state)):
    return await run_in_threadpool(store.delete_dataset, ui.runs_dir, dataset)


@router.put("/api/samples/{dataset}/{name}")
async def make_class(dataset: str, name: str, request: Request, ui: UIState = Depends(ui_state)):
    body = await json_body(request)
    return await run_in_threadpool(store.make_class, ui.runs_dir, dataset, name, body.get("task"))


@router.patch("/api/samples/{dataset}/{name}")
async def rename_class(dataset: str, name: str, request: Request, ui: UIState = Depends(ui_state)):
    body = await json_body(request)
    return await run_in_threadpool(store.rename_class, ui.runs_dir, dataset, name, body.get("name"))


@router.delete("/api/samples/{dataset}/{name}")
async def delete_class(dataset: str, name: str, ui: UIState = Depends(ui_state)):
    return await run_in_threadpool(store.delete_class, ui.runs_dir, dataset, name)


@router.get("/api/samples/{dataset}/{name}/{file}")
async def sample_file(dataset: str, name: str, file: str, thumb: bool = False, ui: UIState = Depends(ui_state)):
    path = await run_in_threadpool(store.sample_path, ui.runs_dir, dataset, name, file, thumb)
    # the type is the one of the suffix the server gave the file when it decoded it, never the client's word
    return FileResponse(path, media_type=store.MEDIA_TYPES[path.suffix],
                        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600"})


@router.delete("/api/samples/{dataset}/{name}/{file}")
async def delete_sample(dataset: str, name: str, file: str, ui: UIState = Depends(ui_state)):
    return await run_in_threadpool(store.delete_sample, ui.runs_dir, dataset, name, file)


async def read_form(request: Request):
    """The upload's form, its parser's refusals (too many files or fields, no boundary) said as the server's."""
    from starlette.exceptions import HTTPException
    from starlette.formparsers import MultiPartException

    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise ClientError(415, f"Expected a multipart/form-data body (fields dataset, class, task and files). "
                               f"Received: {request.headers.get('content-type') or 'no Content-Type'!r}.")
    try:
        return await request.form(max_files=store.MAX_FILES, max_fields=FORM_FIELDS)
    except (HTTPException, MultiPartException) as err:
        detail = getattr(err, "detail", None) or getattr(err, "message", str(err))
        raise ClientError(413 if "Too many files" in str(detail) else 400,
                          f"Expected a multipart/form-data body with at most {store.MAX_FILES:,} files and "
                          f"{FORM_FIELDS} fields. Received: {detail}") from None
