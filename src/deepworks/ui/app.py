"""`deepworks ui`: the web app, on the same FastAPI app as `deepworks serve` (its routes, token, body limits and
JSON errors), plus a REST API under /api for what the pages do, and the built front end at /.

The API (every route is in /openapi.json, so anything the pages do can be scripted):
    GET  /api/info                      tasks, built-in datasets, model templates, layer cards, version
    GET  /api/settings?task=image       the settings form: the settings the task takes, with their help, type and choices
    POST /api/data/preview              {task, data, data_dir?}: classes, sizes, and a grid of examples per class
    POST /api/data/upload               a .zip of class folders, .csv, .npz, text or .tsv: kept, its path answered
    POST /api/design                    {layers or yaml, data (and image_size) or input and classes}: the canonical
                                        design, its YAML, each card's output shape and parameters
    POST /api/jobs                      {settings}: start training in a worker process; GET /api/jobs lists them
    POST /api/automl                    {settings, budget}: an AutoML search in a worker: {id, search (its name)}
    GET  /api/jobs/{id}                 its state; /events streams it (Server-Sent Events); /stop; /resume
    GET  /api/runs                      finished runs; POST /api/runs/{name}/serve loads one for /v1/models/{name}/...
    GET  /api/runs/{name}/export?format=onnx   the exported model (its folder as a zip)
    GET  /api/runs/{name}/metrics       its curves and test results; /report/... its report page
    GET  /api/runs/{name}/confusion?true=3&predicted=5   the test images behind one cell of the confusion matrix
    POST /api/runs/{name}/trust         {tool: attack|explain|visualize, index, eps, method}: figures and numbers
    POST /api/runs/{name}/walk          {seed, steps}: a GAN's walk through its noise space, for a slider
    POST /api/audit                     {data}: the data audit's findings

A client names runs and jobs, never a path inside the server's folders; data is named as on the command line (a
built-in, or a path on this machine, which is the user's own when the server is on 127.0.0.1). The routes are in
routes/, one module per group of pages.
"""

from __future__ import annotations

from pathlib import Path

from starlette.middleware.gzip import GZipMiddleware

from ..errors import ConfigError
from ..serving.app import Limits, make_app
from .docs_site import build_if_missing, mount_docs
from .guard import DataRoots, LoginLink, SameOrigin, loopback_link, new_token
from .jobs import Jobs
from .routes import ROUTERS
from .routes.common import UIState
from .tools import exit_if_work_is_left

STATIC = Path(__file__).parent / "static"
UPLOAD_MB = 1024  # the largest request: a zip of photos (serve's other limits stay as they are)
UPLOAD_S = 600  # the time its body may take to arrive


def build_ui_app(runs_dir: str | Path = "runs", token: str | None = None, limits: Limits | None = None,
                 data_roots=(), host: str = "127.0.0.1", port: int | None = None, insecure: bool = False):
    """The UI's app. Without a token, one is made (app.state.token; the login link carries it), unless `insecure`
    asks for none. Requests must name this server (`host`, loopback names, `port` when known) and come from its own
    page; the paths they name must lie in `runs_dir` or `data_roots` (guard.py says why). The routes reach the
    server's state as app.state.ui."""
    from .pages import PageFiles

    token = token if token is not None or insecure else new_token()
    app = make_app([], token, limits or Limits(max_body_mb=UPLOAD_MB, body_timeout_s=UPLOAD_S))
    app.title = "deepworks ui"
    app.state.token = token
    if token is not None:
        app.add_middleware(LoginLink, token=token)
    app.add_middleware(SameOrigin, host=host, port=port)
    # the page's script, styles and JSON go out gzipped to a browser that asks (a third of the bytes: the first load
    # is 83 kB, not 276); event streams, zips and images pass as they are (Starlette's exclusions)
    app.add_middleware(GZipMiddleware, minimum_size=1024)
    runs = Path(runs_dir)
    app.state.ui = UIState(runs, Jobs(runs), DataRoots(runs, data_roots))
    app.state.jobs = app.state.ui.jobs  # what ui() and the tests close
    for router in ROUTERS:
        app.include_router(router)
    mount_docs(app)  # the built documentation at /docs, before the page's catch-all mount at /
    if (STATIC / "index.html").is_file():
        app.mount("/", PageFiles(directory=STATIC, html=True), name="ui")
    else:
        app.add_api_route("/", not_built, include_in_schema=False)
    return app


async def not_built():
    """The page at / when the front end has not been built."""
    from fastapi.responses import HTMLResponse

    return HTMLResponse("<h1>deepworks ui</h1><p>The page is not built. From the deepworks source folder: "
                        "<code>npm ci --prefix ui &amp;&amp; npm run build --prefix ui</code>, then reload. "
                        "The API is at <a href='/openapi.json'>/openapi.json</a>.</p>", status_code=503)


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
    build_if_missing()
    app = build_ui_app(runs_dir, token, data_roots=data_roots, host=host, port=port, insecure=insecure)
    print(f"deepworks ui: {loopback_link(host, port, token)}  (runs in {Path(runs_dir).resolve()}; open this link; "
          f"Ctrl-C to stop)", flush=True)
    try:
        make_server(app, host, port, app.state.limits, log_level, graceful_s=5).run()
    finally:
        app.state.jobs.close()
    exit_if_work_is_left()
