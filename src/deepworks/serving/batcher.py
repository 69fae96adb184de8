"""Dynamic micro-batching that never makes a lone request wait.

Requests queue per model; one worker takes everything queued (up to `max_batch` items, with the same options) and
runs it as one batch in the model's inference thread (or in the event loop: below). While that batch runs, new
requests pile up and become the next batch, so under load batches grow by themselves, and with one client every
request goes straight through: the worker waits for more (up to `max_wait_ms`) only when other requests have
arrived and are still being decoded.
A fixed window would cost a lone client the whole window on every request (measured here at 30-75 % of its
throughput: ../shared/research/next-capabilities.md §1.4). Where a forward is known to be short, a lone request
(INLINE_S) or a batch (BATCH_INLINE_S) runs in the event loop itself, without the hand-over to the model's thread.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

from ..sessions import LONE, LONE_S


INLINE_S = LONE_S  # a lone request whose forward takes less runs in the event loop: handing it to the model's thread
                  # and back (two wake-ups) costs more than the forward itself (LeNet-5 in ONNX Runtime: 0.03 ms;
                  # ResNet-20: 0.5 ms), and a request arriving meanwhile waits at most this long to be read; longer
                  # forwards go to the thread, so that the server keeps accepting and reading requests


BATCH_INLINE_S = 0.0002  # a batch whose forward takes less also runs in the event loop: handing it to the model's
                        # thread and back costs more (LeNet-5 at 8 connections: 1.05-1.14x the plain endpoint this
                        # way, 0.97-1.04x through the thread), and too little computes to be worth overlapping


def soon(loop, call):
    """A callback for a thread's future that runs `call` in the event loop (nothing once the loop has closed)."""
    def in_loop(_future) -> None:
        try:
            loop.call_soon_threadsafe(call)
        except RuntimeError:
            pass

    return in_loop


@dataclass
class Job:
    items: list
    key: tuple            # requests batch together only with the same options
    options: dict
    future: asyncio.Future


def options_key(options: dict) -> tuple:
    """Requests batch together only with the same options."""
    return tuple(sorted(options.items(), key=lambda kv: kv[0]))


class Batcher:
    def __init__(self, run_batch, executor, max_batch: int = 32, max_wait_ms: float = 2.0, on_batch=None,
                 inline: bool = False):
        """run_batch(items, options) -> one result per item, called in `executor` (or in the event loop, inline);
        on_batch(size) is told the size of every batch run (for the metrics). inline: a lone request or a batch may
        run in the event loop when its forward is known to be short (a task whose items all cost the same:
        Face.fixed_cost_items)."""
        self.run_batch, self.executor = run_batch, executor
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1000
        self.on_batch = on_batch or (lambda size: None)
        self.queue: deque[Job] = deque()
        self.arriving = 0  # requests accepted and still decoding: the only reason worth waiting for
        self.running = 0   # items in the batch being computed
        self.wake: asyncio.Event | None = None
        self.worker: asyncio.Task | None = None
        self.inline = inline
        self.item_s: dict[tuple, float] = {}  # options -> a forward's time per item (a moving average)

    def start(self) -> None:
        self.wake = asyncio.Event()
        self.worker = asyncio.get_running_loop().create_task(self.work())

    async def stop(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            try:
                await self.worker
            except asyncio.CancelledError:
                pass

    def at_once(self, items: list, options: dict, others_open: bool = False) -> list | None:
        """The answers to a lone request whose forward is known to be short (`inline`), computed here in the event
        loop, or None where the request is not alone, its forward is long, or others_open: the server has begun
        other requests than this one (they may be read while this one computes, and join the next batch)."""
        key = options_key(options)
        if not (self.inline and not others_open and not self.queue and self.running == 0 and self.arriving == 0
                and self.item_s.get(key, INLINE_S) * len(items) < INLINE_S):
            return None
        self.running = len(items)
        self.on_batch(len(items))
        lone = LONE.set(True)  # (an ONNX graph's session for lone requests: sessions.ServingSession)
        try:
            return self.timed(items, options, key)
        finally:
            LONE.reset(lone)
            self.idle()

    async def submit(self, items: list, options: dict) -> list:
        """The answers to one request's items: at once in the model's thread when it is alone (no hand-over to
        the batching worker), else in the next batch."""
        key = options_key(options)
        if not self.queue and self.running == 0 and self.arriving == 0:  # alone: straight to the model
            self.running = len(items)
            self.on_batch(len(items))
            work = self.executor.submit(self.timed, items, options, key)
            work.add_done_callback(soon(asyncio.get_running_loop(), self.idle))  # when the model is free again, not
            return await asyncio.wrap_future(work)  # when this request stops waiting (its time is up)
        future = asyncio.get_running_loop().create_future()
        self.queue.append(Job(items, key, options, future))
        self.wake.set()
        return await future

    def idle(self) -> None:
        """The lone request's forward is over: the model is free for what queued meanwhile."""
        self.running = 0
        if self.queue:
            self.wake.set()

    def timed(self, items: list, options: dict, key: tuple) -> list:
        """run_batch, its time per item with these options kept (a moving average) for the next lone request's
        choice of where to run."""
        t0 = time.perf_counter()
        try:
            return self.run_batch(items, options)
        finally:
            spent = (time.perf_counter() - t0) / max(len(items), 1)
            if self.inline and (key in self.item_s or len(self.item_s) < 64):  # (a few options' worth)
                self.item_s[key] = 0.8 * self.item_s.get(key, INLINE_S) + 0.2 * spent

    async def work(self) -> None:
        while True:
            if not self.queue or self.running:  # (a lone request going straight through wakes this when it is done)
                self.wake.clear()
                await self.wake.wait()
                continue
            jobs = self.take()
            if self.max_wait > 0 and self.arriving > 0 and self.size(jobs) < self.max_batch:
                deadline = time.perf_counter() + self.max_wait
                while self.arriving > 0 and time.perf_counter() < deadline and self.size(jobs) < self.max_batch:
                    self.wake.clear()
                    try:
                        await asyncio.wait_for(self.wake.wait(), deadline - time.perf_counter())
                    except asyncio.TimeoutError:
                        break
                    jobs += self.take(jobs[0].key, self.max_batch - self.size(jobs))
            await self.run(jobs)

    @staticmethod
    def size(jobs: list[Job]) -> int:
        return sum(len(j.items) for j in jobs)

    def take(self, key: tuple | None = None, room: int | None = None) -> list[Job]:
        """Queued jobs with the options of the first (or `key`), in order, while they fit in `room` items (the first
        job is always taken, however large: it was checked against the per-request limit)."""
        room = self.max_batch if room is None else room
        taken, kept = [], deque()
        while self.queue:
            job = self.queue.popleft()
            key = job.key if key is None else key
            if job.key == key and (not taken or len(job.items) <= room):
                taken.append(job)
                room -= len(job.items)
            else:
                kept.append(job)
        self.queue.extendleft(reversed(kept))
        return taken

    async def run(self, jobs: list[Job]) -> None:
        live = [j for j in jobs if not j.future.done()]  # a client that gave up (timed out) is not computed for
        if not live:
            return
        items = [item for j in live for item in j.items]
        self.on_batch(len(items))
        tiny = self.inline and self.item_s.get(live[0].key, INLINE_S) * len(items) < BATCH_INLINE_S
        here = tiny and self.running == 0  # (a lone request sent to the model's thread meanwhile: this queues there)
        self.running = len(items)
        try:
            if here:
                results = self.run_batch(items, live[0].options)
            else:
                results = await asyncio.get_running_loop().run_in_executor(self.executor, self.run_batch, items,
                                                                           live[0].options)
        except Exception as err:  # the batch failed: every request in it gets the error
            for j in live:
                if not j.future.done():
                    j.future.set_exception(err)
            return
        finally:
            self.running = 0
        start = 0
        for j in live:
            if not j.future.done():
                j.future.set_result(results[start:start + len(j.items)])
            start += len(j.items)
