"""`deepworks serve`: trained runs over HTTP, on FastAPI and uvicorn (app.py: the routes; requests.py: what a request
goes through under either protocol; reading.py: a request's body; v2.py: the Open Inference Protocol; batcher.py:
micro-batching; served.py: what the server asks of a model; models.py: a served run and its runtime; flags.py: the
flags; metrics.py: Prometheus; net.py: the connections, their timeouts and their cap; packaged.py: a model of a package made
by `deepworks package`, served without torch). Only models.py imports torch: the rest ships in such a package
unchanged."""

from __future__ import annotations

from ..errors import ConfigError
from .app import Limits, make_app
from .net import check_exposure, check_token_length

__all__ = ["Limits", "Served", "build_app", "make_app", "serve"]


def __getattr__(name: str):
    if name == "Served":  # a served run needs torch: imported when asked for, not with the package
        from .models import Served

        return Served
    raise AttributeError(name)


def build_app(runs: list[str], token: str | None = None, runtime: str = "torch", limits: Limits | None = None):
    """Load the runs ('RUN' or 'NAME=RUN') and make the app (what tests and `serve` share)."""
    from .models import Served, parse_runs

    if not runs:
        raise ConfigError("Name at least one run to serve: deepworks serve RUN [RUN ...].")
    check_token_length(token)
    return make_app([Served(name, path, runtime) for name, path in parse_runs(runs)], token, limits)


def serve(runs: list[str], host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
          runtime: str = "torch", limits: Limits | None = None, insecure: bool = False,
          log_level: str = "warning") -> None:
    """Serve until Ctrl-C or SIGTERM; requests in flight are finished first (up to 30 s). The banner comes only
    once everything is checked and loaded: a refused run never says "serving"."""
    import sys

    from .net import make_server

    check_exposure(host, token, insecure)
    limits = limits or Limits()
    app = build_app(runs, token, runtime, limits)
    for name, s in app.state.served.items():
        if s.runtime_note:
            print(f"note: {name}: {s.runtime_note}", file=sys.stderr, flush=True)
    print(f"serving {', '.join(runs)} on http://{host}:{port} (Ctrl-C stops; GET /v1/models lists them)",
          file=sys.stderr, flush=True)
    make_server(app, host, port, limits, log_level).run()
