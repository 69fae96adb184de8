"""The HTTP server: FastAPI routes over each served model's inference face.

Friendly routes: GET /v1/models, GET /v1/models/{name} (its card), POST /v1/models/{name}/{verb} where the verb is
the task's use (predict, generate, translate, sample): JSON {"inputs": ..., option: value, ...} or a multipart upload
(files, and options as form fields); `"stream": true` streams the answers as Server-Sent Events; `"format": "png"`
asks a GAN for one PNG. The Open Inference Protocol V2 (what KServe, Triton and MLServer clients speak) is in v2.py;
what a request goes through under either (limits, options, decoding, computing) is in requests.py.

Safety: a client never names a path or a model file, only a served name; errors are JSON {"error": "Expected ...
Received ..."} with a 4xx code (Starlette's own errors too); bodies, items, work and time per request are
bounded, and a request's work stops when its client leaves or its time is up; an optional bearer token is compared
in constant time. Health: /v2/health/ready answers 200 only once every model has been warmed up.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import json
import time
from typing import TYPE_CHECKING

from fastapi import Request  # at module level: the routes' annotations are read from here
from fastapi.responses import JSONResponse

from .._version import __version__
from ..errors import DeepworksError
from .batcher import Batcher
from .requests import ClientError, Limits, check_work, checked_options, compute, decode, find, within

if TYPE_CHECKING:  # annotations only
    from .served import ServedModel as Served

try:
    from orjson import OPT_SERIALIZE_NUMPY
    from orjson import dumps as fast_dumps
except ImportError:
    fast_dumps = None

OPEN_PATHS = ("/v2/health/live", "/v2/health/ready")  # probes answer without a token


def make_app(served: list[Served], token: str | None = None, limits: Limits | None = None):
    """The FastAPI app serving `served` (already loaded)."""
    from fastapi import FastAPI

    from .metrics import Metrics
    from .v2 import add_v2_routes

    limits = limits or Limits()
    by_name = {s.name: s for s in served}
    metrics = Metrics()
    batchers: dict[str, Batcher] = {}
    app = FastAPI(title="deepworks serve", version=__version__, lifespan=lifespan(served, batchers, limits, metrics),
                  docs_url=None, redoc_url=None)  # the Swagger page loads its assets from a CDN: /openapi.json only
    app.state.served, app.state.limits, app.state.batchers = by_name, limits, batchers
    add_error_handlers(app)
    add_v1_routes(app, served, by_name, batchers, limits, metrics)
    add_v2_routes(app, by_name, batchers, limits)
    app.add_middleware(Guard, token=token, limits=limits, metrics=metrics)
    return app


def lifespan(served: list[Served], batchers: dict, limits: Limits, metrics):
    """The server's start (a batcher for each model that batches, every model warmed up) and its end (the batchers
    drained, the models' threads finished)."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def span(app):
        for s in served:
            if s.face.batchable and limits.max_batch > 1:
                batchers[s.name] = Batcher(s.infer, s.executor, limits.max_batch, limits.max_wait_ms,
                                           on_batch=lambda size, name=s.name: metrics.batch(name, size),
                                           inline=getattr(s.face, "fixed_cost_items", False))
                batchers[s.name].start()
        loop = asyncio.get_running_loop()
        for s in served:
            await loop.run_in_executor(s.executor, s.warm_up)
        gc.collect()
        gc.freeze()  # the models and modules stay: Python's full collections need not walk them again (each walk was
        yield        # a pause of up to 200 ms under load here)
        gc.unfreeze()
        for b in batchers.values():
            await b.stop()
        for s in served:
            s.executor.shutdown(wait=True)

    return span


def add_error_handlers(app) -> None:
    """Every error in the one shape {"error": "Expected ... Received ..."}: the server's own refusals, Starlette's,
    deepworks' checks, a request FastAPI cannot validate, and a bug."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    @app.exception_handler(ClientError)
    async def client_error(request: Request, err: ClientError):
        return error_response(err.status, str(err), close=err.status == 408)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException):  # Starlette's own: 404 and 405 routes, forms
        return error_response(err.status_code, http_error_message(request, err),
                              headers={k: v for k, v in (err.headers or {}).items() if k.lower() == "allow"})

    @app.exception_handler(DeepworksError)
    async def deepworks_error(request: Request, err: DeepworksError):
        return error_response(400, str(err))

    @app.exception_handler(Exception)
    async def server_error(request: Request, err: Exception):  # a bug: even then, the one shape (log: traceback)
        return error_response(500, f"Expected an answer, but the server failed on this request "
                                   f"({type(err).__name__}; its log has the details). Received: {request.url.path}.")

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError):
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return error_response(422, f"Expected a valid request. Received: {where}: {first.get('msg', 'invalid')}.")


def add_v1_routes(app, served: list[Served], by_name: dict, batchers: dict, limits: Limits, metrics) -> None:
    """The friendly routes (the module's docstring) and /metrics."""
    from fastapi.responses import Response

    from .reading import read_request

    @app.get("/v1/models")
    async def list_models():
        return {"models": [s.card(limits) for s in served]}

    @app.get("/v1/models/{name}")
    async def model_card(name: str):
        return find(by_name, name).card(limits)

    @app.post("/v1/models/{name}/{verb}")
    async def use(request: Request):  # the path's parts read here: FastAPI's validation of them cost a lone
        name, verb = request.path_params["name"], request.path_params["verb"]  # request a tenth of its time
        s = find(by_name, name)
        if verb != s.verb:
            raise ClientError(404, f"Model '{name}' is {s.face.kind} run: its route is POST /v1/models/{name}/{s.verb}. "
                                   f"Received: /{verb}.")
        inputs, raw, stream, fmt = await read_request(request, limits)
        options = checked_options(s, raw, limits)
        items = await decode(s, inputs, options, limits, batchers.get(name))
        check_work(items, options, limits)
        if stream:
            return sse_response(s, items, options)
        results = await compute(s, items, options, limits, batchers.get(name), request)
        if fmt == "png":
            png = s.face.as_png(results)
            if png is None:
                raise ClientError(406, f"Model '{name}' answers in JSON; format 'png' is for GAN runs. Received: "
                                       f"format=png.")
            return Response(png, media_type="image/png")
        return Answer({"model": name, "outputs": [s.face.encode_result(r, options) for r in results]})

    @app.get("/metrics")
    async def prometheus():
        return Response(metrics.text(), media_type=metrics.content_type)


class Answer(JSONResponse):
    """A model's answer, written by orjson where it is installed (15x the json module: 0.4 against 5.8 us for an
    image's top five classes), numpy's numbers as numbers; the same values (a tiny float may read 0.00001, not 1e-05).
    A number that is not finite (NaN, infinity: a model gone wrong) is written as null, where Starlette's
    JSONResponse refused it with a 500."""

    def render(self, content) -> bytes:
        if fast_dumps is not None:
            try:
                return fast_dumps(content, option=OPT_SERIALIZE_NUMPY)
            except TypeError:  # what orjson cannot write: the json module's way, and its words
                pass
        return super().render(content)


class Guard:
    """Every HTTP request: the token, the body's size, then the app, with the request's time and status in the
    metrics. Plain ASGI: Starlette's @app.middleware("http") costs a task and a queue per request, a third of the
    server's time for a small model."""

    def __init__(self, app, token: str | None, limits: Limits, metrics):
        self.app, self.token, self.limits, self.metrics = app, token, limits, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), [500]

        async def send_noting_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            headers = dict(scope["headers"])
            check_token(scope["path"], headers.get(b"authorization", b"").decode("latin-1"), self.token,
                        headers.get(b"cookie", b"").decode("latin-1"))
            await self.app(scope, capped(receive, headers.get(b"content-length"), self.limits), send_noting_status)
        except ClientError as err:
            await error_response(err.status, str(err))(scope, receive, send_noting_status)
        route = scope.get("route")
        self.metrics.request(getattr(route, "path", None) or "unmatched", status[0], time.perf_counter() - started)


def capped(receive, declared: bytes | None, limits: Limits):
    """`receive`, refusing a body over the limit (at once from its Content-Length, else once more has arrived than
    the limit) or one that has not arrived in full within body_timeout_s (a client trickling it holds a connection
    and a task): 408, and the connection is closed."""
    cap = int(limits.max_body_mb * 2 ** 20)
    if declared is not None and declared.isdigit() and (len(declared) > 15 or int(declared) > cap):
        received = f"{int(declared) / 2 ** 20:,.1f} MB" if len(declared) <= 15 else f"{len(declared)}-digit bytes"
        raise ClientError(413, f"Expected a body of at most {limits.max_body_mb:g} MB. Received: {received}.")
    seen, deadline, complete = [0], time.monotonic() + limits.body_timeout_s, [False]

    async def receive_capped():
        if complete[0]:
            return await receive()  # the body is in: what is left to wait for is the client leaving
        try:
            message = await within(receive(), deadline - time.monotonic())
        except asyncio.TimeoutError:
            raise ClientError(408, f"Expected the request's body within {limits.body_timeout_s:g} s "
                                   f"(--body-timeout). Received: {seen[0]:,} bytes by then.") from None
        complete[0] = message["type"] != "http.request" or not message.get("more_body", False)
        seen[0] += len(message.get("body", b""))
        if seen[0] > cap:
            raise ClientError(413, f"Expected a body of at most {limits.max_body_mb:g} MB. Received: more.")
        return message

    return receive_capped


def error_response(status: int, message: str, close: bool = False, headers: dict | None = None):
    """Every error the server sends: {"error": message}. close: the connection ends after it (a body that never
    arrived in full leaves nothing more to read on it)."""
    headers = {**(headers or {}), **({"Connection": "close"} if close else {})}
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def http_error_message(request, err) -> str:
    """Starlette's errors ("Not Found", "Method Not Allowed", a form it cannot parse) said as this server says
    its own."""
    method, path, detail = request.method, request.url.path, str(err.detail)
    if err.status_code == 404:
        return (f"Expected a route of this server (GET /v1/models lists the models, /openapi.json every route). "
                f"Received: {method} {path}.")
    if err.status_code == 405:
        allowed = (err.headers or {}).get("Allow", "another method")
        return f"Expected {allowed} for {path}. Received: {method}."
    return detail if "Expected" in detail else f"Expected a valid request. Received: {detail}"


TOKEN_COOKIE = "deepworks_token"  # what a browser sends instead of the header (the web UI's login link sets it)


def check_token(path: str, given: str, token: str | None, cookie: str = "") -> None:
    """The bearer token (or the browser's token cookie), compared in constant time; the health probes answer
    without one."""
    if token is None or path in OPEN_PATHS:
        return
    scheme, _, value = given.partition(" ")
    if cookie and hmac.compare_digest(cookie_value(cookie, TOKEN_COOKIE).encode(), token.encode()):
        return
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
        raise ClientError(401, "Expected the header 'Authorization: Bearer TOKEN' with this server's token. "
                               f"Received: {'a wrong token' if given else 'no token'}.")


def cookie_value(header: str, name: str) -> str:
    from http.cookies import SimpleCookie

    jar = SimpleCookie()
    try:
        jar.load(header)
    except Exception:  # a malformed Cookie header is no token
        return ""
    return jar[name].value if name in jar else ""


def sse_response(s: Served, items: list, options: dict):
    """Server-Sent Events: one `data: {json}` event per part of the answer, then `event: end`. The parts are made in
    the model's thread and handed over as they come, so a client sees text as it is written."""
    from fastapi.responses import StreamingResponse

    async def events():
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        stop = False

        def produce():
            try:
                for part in s.stream(items, options):
                    if stop:
                        return
                    loop.call_soon_threadsafe(queue.put_nowait, ("data", part))
            except DeepworksError as err:
                loop.call_soon_threadsafe(queue.put_nowait, ("error", {"error": str(err)}))
            loop.call_soon_threadsafe(queue.put_nowait, ("end", {}))

        loop.run_in_executor(s.executor, produce)
        try:
            while True:
                kind, part = await queue.get()
                if kind == "end":
                    yield "event: end\ndata: {}\n\n"
                    return
                yield ("event: error\n" if kind == "error" else "") + f"data: {json.dumps(part)}\n\n"
        finally:
            stop = True  # the client went away: the producer stops at its next part

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})
