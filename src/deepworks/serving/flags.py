"""The serving flags, as `deepworks serve` and a package's runtime (`python -m deepworks_runtime`) both take them:
where to listen and with what token, and what one request may cost. argparse only: a package ships this module."""

from __future__ import annotations

from ..errors import ConfigError
from .requests import Limits


def add_exposure_flags(p, port: int, token_scope: str, token_default: str = "none",
                       insecure_help: str = "allow another --host than this machine without a token") -> None:
    """--host, --port, --token and --insecure, as `serve` and `ui` both take them."""
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; another than this machine's needs --token [default: 127.0.0.1]")
    p.add_argument("--port", type=int, default=port, help=f"[default: {port}]")
    p.add_argument("--token", help=f"require 'Authorization: Bearer TOKEN' on {token_scope}; at least 8 characters "
                                   f"[default: $DEEPWORKS_TOKEN, else {token_default}]")
    p.add_argument("--insecure", action="store_true", help=insecure_help)


def add_limit_flags(p) -> None:
    """What one request may cost, how requests are batched, and uvicorn's logging."""
    p.add_argument("--max-batch", type=int, default=32, help="most items in one micro-batch; 1 turns batching off "
                                                              "[default: 32]")
    p.add_argument("--max-wait-ms", type=float, default=2.0,
                   help="longest a batch waits for requests still arriving; a lone request never waits [default: 2]")
    p.add_argument("--max-body-mb", type=float, default=32.0, help="largest request body [default: 32]")
    p.add_argument("--max-items", type=int, default=256, help="most inputs in one request [default: 256]")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds one request may take [default: 60]")
    p.add_argument("--max-length", type=int, default=10_000,
                   help="most characters one generate request may ask for [default: 10,000]")
    p.add_argument("--max-beam", type=int, default=16,
                   help="widest beam one translate or transcribe request may ask for [default: 16]")
    p.add_argument("--max-work", type=int, default=100_000,
                   help="most characters one generate request may write in all, inputs x length [default: 100,000]")
    p.add_argument("--header-timeout", type=float, default=10.0,
                   help="seconds a request's line and headers may take to arrive [default: 10]")
    p.add_argument("--body-timeout", type=float, default=60.0,
                   help="seconds a request's body may take to arrive [default: 60]")
    p.add_argument("--max-connections", type=int, default=500, help="most open connections [default: 500]")
    p.add_argument("--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug"),
                   help="uvicorn's logging; info logs every request [default: warning]")


def limits_from(args) -> Limits:
    """The limits the flags give, each checked (and --port)."""
    for flag, value, low in (("--port", args.port, 1), ("--max-batch", args.max_batch, 1),
                             ("--max-items", args.max_items, 1), ("--max-length", args.max_length, 1),
                             ("--max-beam", args.max_beam, 1), ("--max-work", args.max_work, 1),
                             ("--max-connections", args.max_connections, 1)):
        if value < low or (flag == "--port" and value > 65535):
            raise ConfigError(f"{flag} must be {'from 1 to 65,535' if flag == '--port' else 'at least 1'}. "
                              f"Received: {value}.")
    for flag, value in (("--max-wait-ms", args.max_wait_ms), ("--max-body-mb", args.max_body_mb),
                        ("--timeout", args.timeout), ("--header-timeout", args.header_timeout),
                        ("--body-timeout", args.body_timeout)):
        if not 0 <= value < float("inf") or (flag != "--max-wait-ms" and value == 0):
            raise ConfigError(f"{flag} must be a positive number. Received: {value}.")
    return Limits(args.max_body_mb, args.max_items, args.timeout, args.max_batch, args.max_wait_ms, args.max_length,
                  args.max_beam, args.max_work, args.header_timeout, args.body_timeout, args.max_connections)
