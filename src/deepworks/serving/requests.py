"""What one request to a served model goes through, whichever protocol brought it (app.py's friendly routes,
v2.py's Open Inference Protocol): the server's limits, the refusal a client gets (ClientError), the model found by
name, its options checked, its inputs decoded, its cost bounded and its answers computed. Both route modules import
this one, and neither imports the other for it.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .net import OPEN_REQUESTS

if TYPE_CHECKING:  # annotations only
    from .batcher import Batcher
    from .served import ServedModel as Served


@dataclass
class Limits:
    max_body_mb: float = 32.0     # one request's body
    max_items: int = 256          # images, prompts or sentences in one request
    timeout_s: float = 60.0       # one request's time in the server, queueing included
    max_batch: int = 32           # micro-batching: the most items in one forward pass
    max_wait_ms: float = 2.0      # micro-batching: the longest a batch waits for requests still arriving
    max_length: int = 10_000      # characters one generate request may ask for
    max_beam: int = 16            # beam width one translate or transcribe request may ask for
    max_work: int = 100_000       # characters one generate request may write in all (inputs x length)
    header_timeout_s: float = 10.0  # a connection's request head (line and headers) must arrive within this
    body_timeout_s: float = 60.0  # a request's body must arrive within this of the request's start
    max_connections: int = 500    # open connections; more are answered 503 and closed

    def caps(self) -> dict[str, tuple[int, str]]:
        """What one request may ask of any task, by option name: (the most, the flag that sets it)."""
        return {"length": (self.max_length, "--max-length"), "n": (self.max_items, "--max-items"),
                "beam": (self.max_beam, "--max-beam")}


class ClientError(Exception):
    """A request the server refuses: its HTTP status and the message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def checked_options(s: Served, raw: dict, limits: Limits) -> dict:
    """The use's options, checked as everywhere, then held to what one request may cost on this server."""
    options = s.options(raw)
    for name, (most, flag) in limits.caps().items():
        if isinstance(options.get(name), int) and options[name] > most:
            if name not in raw:  # the run's own default (a recogniser's chosen beam): held to the cap
                options[name] = most
                continue
            raise ClientError(413, f"Expected {name} of at most {most:,} on this server ({flag}). Received: "
                                   f"{options[name]:,}.")
    return options


def find(by_name: dict, name: str) -> Served:
    if name not in by_name:
        raise ClientError(404, f"No model named '{name}'. Expected one of: {', '.join(by_name)}.")
    return by_name[name]


async def decode(s: Served, inputs, options: dict, limits: Limits, batcher: Batcher | None) -> list:
    """Decode what the client sent: image files in a worker thread (decoding a photo takes milliseconds the event
    loop should not wait for), arrays and text at once (a thread hop would cost more than the work). A batcher that
    knows requests are still decoding waits for them before it runs a batch."""
    from starlette.concurrency import run_in_threadpool

    if batcher is not None:
        batcher.arriving += 1
    try:
        if holds_files(inputs):
            items = await run_in_threadpool(s.decode, inputs, options)
        else:
            items = s.decode(inputs, options)
    finally:
        if batcher is not None:
            batcher.arriving -= 1
    if len(items) > limits.max_items:
        raise ClientError(413, f"Expected at most {limits.max_items} inputs in one request. Received: {len(items)}.")
    return items


def holds_files(inputs) -> bool:
    if isinstance(inputs, (bytes, bytearray)):
        return True
    return isinstance(inputs, (list, dict)) and any(holds_files(v) for v in (inputs.values() if isinstance(inputs, dict)
                                                                             else inputs))


def check_work(items: list, options: dict, limits: Limits) -> None:
    """What one request may cost in all: inputs x length characters (each input alone is within --max-length, but
    64 of them kept a model busy for minutes)."""
    length = options.get("length")
    if isinstance(length, int) and len(items) * length > limits.max_work:
        raise ClientError(413, f"Expected at most {limits.max_work:,} characters written in one request (inputs x "
                               f"length, --max-work). Received: {len(items)} x {length:,} = "
                               f"{len(items) * length:,}; send fewer inputs or a shorter length.")


async def compute(s: Served, items: list, options: dict, limits: Limits, batcher: Batcher | None,
                  request=None) -> list:
    """The answers, through the micro-batcher when the task batches, else straight in the model's thread; at most
    `timeout_s`. Unbatched work (a loop of steps: generate, translate) is told to stop at its next step when the
    time is up or the client has gone: waiting alone would leave it computing for nobody, and the next clients
    queueing behind it."""
    if batcher is not None:  # a batch is short (at most max_batch items): only the wait for it needs a bound
        answers = batcher.at_once(items, options, others_open(request))
        if answers is not None:
            return answers
        try:
            return await within(batcher.submit(items, options), limits.timeout_s)
        except asyncio.TimeoutError:
            raise too_slow(limits) from None
    cancel = threading.Event()
    work = asyncio.get_running_loop().run_in_executor(s.executor, s.infer, items, options, cancel)
    work.add_done_callback(lambda f: f.cancelled() or f.exception())  # a stopped loop's Cancelled: expected
    gone = asyncio.ensure_future(client_gone(request))
    try:
        done, _ = await asyncio.wait({work, gone}, timeout=limits.timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if work in done:
        return work.result()
    cancel.set()
    if gone in done:
        raise ClientError(499, "Expected the client to wait for its answer. Received: a closed connection.")
    raise too_slow(limits)


async def within(awaitable, seconds: float):
    """`awaitable`'s result, or TimeoutError after `seconds`: asyncio.timeout where there is one (3.11: a timer,
    not the task wait_for makes for every call: a tenth of a lone small request's time)."""
    if hasattr(asyncio, "timeout"):
        async with asyncio.timeout(max(seconds, 0)):
            return await awaitable
    return await asyncio.wait_for(awaitable, max(seconds, 0))


def others_open(request) -> bool:
    """Whether the server has begun other requests than this one and not answered them (net.py puts the set of them
    in the scope; a test client's app has no such set): requests that a batch may gather."""
    return request is not None and len(request.scope.get(OPEN_REQUESTS, ())) > 1


def too_slow(limits: Limits) -> ClientError:
    return ClientError(503, f"Expected the answer within {limits.timeout_s:g} s (--timeout). Received: no answer in "
                            f"time; ask for less in one request, or try again when the server is less busy.")


async def client_gone(request) -> None:
    """Returns once the client has closed its connection (its body was read: what comes next is the disconnect)."""
    if request is None:
        await asyncio.Event().wait()
    while (await request.receive())["type"] != "http.disconnect":
        pass
