"""`deepworks serve`: trained runs over HTTP, on FastAPI and uvicorn (app.py: the routes; requests.py: what a request goes
through under either protocol; reading.py: a request's body; v2.py: the Open Inference Protocol; batcher.py: micro-batching; models.py: a served run and its runtime;
metrics.py: Prometheus; net.py: the connections, their timeouts and their cap)."""

from __future__ import annotations

import ipaddress

from ..errors import ConfigError
from .app import Limits, make_app
from .models import Served, parse_runs

__all__ = ["Limits", "Served", "build_app", "make_app", "serve"]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, token: str | None, insecure: bool) -> None:
    """Only this machine can reach a server on a loopback address; any other address needs a token (or --insecure)."""
    if not is_loopback(host) and token is None and not insecure:
        raise ConfigError(f"--host {host} lets other machines reach the server, so it needs --token TOKEN (clients "
                          f"then send 'Authorization: Bearer TOKEN'). Received: no token. Add --token, or --insecure "
                          f"if the network is yours alone.")


def build_app(runs: list[str], token: str | None = None, runtime: str = "torch", limits: Limits | None = None):
    """Load the runs ('RUN' or 'NAME=RUN') and make the app (what tests and `serve` share)."""
    if not runs:
        raise ConfigError("Name at least one run to serve: deepworks serve RUN [RUN ...].")
    if token is not None and len(token) < 8:
        raise ConfigError(f"--token must be at least 8 characters long. Received: {len(token)}.")
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
    print(f"serving {', '.join(runs)} on http://{host}:{port} (Ctrl-C stops; GET /v1/models lists them)",
          file=sys.stderr, flush=True)
    make_server(app, host, port, limits, log_level).run()
