"""The micro-batcher's choice of where a lone request runs (serving/batcher.py): in the event loop while its forward
is known to be short and nothing else is open, else in the model's thread; and the model kept busy until a forward
ends, whoever stopped waiting for it. (Batches under load: test_serve.py.)"""

from __future__ import annotations

import asyncio

import pytest


def test_a_lone_request_runs_at_once_only_while_its_forward_is_short():
    """A lone request whose forward is known to be short runs in the event loop (a hand-over to the model's thread
    cost more than LeNet's forward); one of many items, of a slow model, of a task whose items cost what they hold
    (a long text, a long recording), or while the server has other requests begun, goes to the model's thread, so
    that the server keeps reading requests meanwhile (and batches them)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from deepworks.serving.batcher import INLINE_S, Batcher

    def run_batch(items, options):
        return [threading.current_thread().name] * len(items)

    async def where(batcher, n: int, others_open: bool = False) -> str:
        batcher.start()
        try:
            return (await batcher.submit(list(range(n)), {}, others_open))[0]
        finally:
            await batcher.stop()

    with ThreadPoolExecutor(1, thread_name_prefix="model") as executor:
        batcher = Batcher(run_batch, executor, inline=True)
        assert asyncio.run(where(batcher, 1)).startswith("model")  # its forward's time not known yet
        batcher.item_s[()] = INLINE_S / 100
        assert asyncio.run(where(batcher, 1)) == threading.current_thread().name
        assert asyncio.run(where(batcher, 10)) == threading.current_thread().name
        assert asyncio.run(where(batcher, 1, others_open=True)).startswith("model")  # others to read meanwhile
        assert asyncio.run(where(batcher, 1000)).startswith("model")  # 1,000 items: 10x the inline bound
        batcher.item_s[()] = INLINE_S * 2
        assert asyncio.run(where(batcher, 1)).startswith("model")
        batcher.item_s[()], batcher.inline = INLINE_S / 100, False  # a task whose items cost what they hold
        assert asyncio.run(where(batcher, 1)).startswith("model")


def test_a_lone_request_whose_time_is_up_leaves_the_model_busy_until_its_forward_ends():
    """The request stops waiting, but its forward goes on in the model's thread: what comes next queues for the model
    rather than running beside it (one forward at a time)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from deepworks.serving.batcher import Batcher
    from deepworks.serving.requests import within

    release, started = threading.Event(), threading.Event()

    def run_batch(items, options):
        started.set()
        release.wait(10)
        return list(items)

    async def scenario(batcher):
        batcher.start()
        try:
            with pytest.raises(TimeoutError):
                await within(batcher.submit([1], {}), 0.05)
            started.wait(10)
            busy = batcher.running
            second = asyncio.ensure_future(batcher.submit([2], {}))
            await asyncio.sleep(0)
            queued = len(batcher.queue)
            release.set()
            return busy, queued, await within(second, 10), batcher.running
        finally:
            await batcher.stop()

    with ThreadPoolExecutor(1) as executor:
        busy, queued, answer, after = asyncio.run(scenario(Batcher(run_batch, executor, inline=True)))
    assert (busy, queued, answer, after) == (1, 1, [2], 0)
