"""`deepworks ui`: the web UI on this machine."""

from __future__ import annotations

from ..serving.flags import add_exposure_flags
from .common import add_command, add_runs_dir


def add(sub) -> None:
    add_ui(sub)


def add_ui(sub) -> None:
    p = add_command(sub, "ui", cmd_ui)
    add_runs_dir(p)
    add_exposure_flags(p, 8080, "every request (a browser: the login link printed at the start)",
                       token_default="a random token per launch",
                       insecure_help="no token at all: any program or web page that reaches the port may use the UI")
    p.add_argument("--data-root", action="append", default=[], metavar="FOLDER",
                   help="a folder whose data the UI may read, besides --runs-dir and its uploads (repeat for more)")


def cmd_ui(args) -> int:
    """the web UI on this machine: data, designer, training, results, try, trust, export

    Serve the web UI on http://HOST:PORT/ until Ctrl-C: choose or upload data, pick a model or design one from layer
    cards, train with live curves (in a worker process; stop and resume) or let AutoML choose, read the results, try
    the model, attack and explain it, and export it. Runs go to --runs-dir, as from the command line. The page is a
    client of a REST API (/api/..., in /openapi.json) on the same app as `deepworks serve`, whose /v1 routes answer
    for the runs it tries."""
    import os

    from ..errors import ConfigError
    from ..ui import ui

    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port must be from 1 to 65,535. Received: {args.port}.")
    ui(args.runs_dir, args.host, args.port, args.token or os.environ.get("DEEPWORKS_TOKEN") or None, args.insecure,
       data_roots=args.data_root)
    return 0
