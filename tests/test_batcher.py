"""The micro-batcher's choice of where a lone request runs (serving/batcher.py): in the event loop while its forward
is known to be short and nothing else is open, else in the model's thread; and a batch: in the event loop while its
forward is known to be tiny; and the model kept busy until a forward
ends, whoever stopped waiting for it; the ONNX session a lone request runs in. (Batches under load:
test_serve.py.)"""

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
    from deepworks.sessions import LONE

    def run_batch(items, options):
        here = threading.current_thread().name
        assert LONE.get() == (here == threading.main_thread().name)  # what picks an ONNX graph's lone session
        return [here] * len(items)

    async def where(batcher, n: int, others_open: bool = False) -> str:
        batcher.start()
        try:
            items = list(range(n))
            return (batcher.at_once(items, {}, others_open) or await batcher.submit(items, {}))[0]
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


def test_a_batch_runs_in_the_event_loop_only_while_its_forward_is_known_to_be_tiny():
    """Requests queued together (a LeNet-5's, 0.03 ms an image) run as one batch in the event loop, where handing
    them to the model's thread and back would cost more than the forward; a batch of a slower model, one too large,
    one whose forward's time is not known yet, or of a task whose items cost what they hold, in the model's thread.
    Never beside a forward already running in the model's thread. Either way in the batches' session (not the lone
    request's)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from deepworks.serving.batcher import BATCH_INLINE_S, Batcher, Job
    from deepworks.sessions import LONE

    def run_batch(items, options):
        assert not LONE.get()
        return [threading.current_thread().name] * len(items)

    async def where(batcher, n: int) -> str:
        jobs = [Job([i], (), {}, asyncio.get_running_loop().create_future()) for i in range(n)]
        await batcher.run(jobs)
        assert [len(j.future.result()) for j in jobs] == [1] * n and batcher.running == 0
        return jobs[0].future.result()[0]

    here = threading.current_thread().name
    with ThreadPoolExecutor(1, thread_name_prefix="model") as executor:
        batcher = Batcher(run_batch, executor, inline=True)
        assert asyncio.run(where(batcher, 4)).startswith("model")  # its forward's time not known yet
        batcher.item_s[()] = BATCH_INLINE_S / 100
        assert asyncio.run(where(batcher, 4)) == here
        batcher.running = 1  # a lone request sent to the model's thread meanwhile: the batch queues behind it there
        assert asyncio.run(where(batcher, 4)).startswith("model")
        assert asyncio.run(where(batcher, 1000)).startswith("model")  # 10x the bound
        batcher.item_s[()] = BATCH_INLINE_S
        assert asyncio.run(where(batcher, 2)).startswith("model")
        batcher.item_s[()], batcher.inline = BATCH_INLINE_S / 100, False
        assert asyncio.run(where(batcher, 4)).startswith("model")


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


def test_a_lone_request_runs_in_the_faster_of_one_and_spinning_threads_batches_in_sleeping_ones(tmp_path, monkeypatch):
    """sessions.ServingSession: batches go to the session whose idle threads sleep; a lone request run in the event
    loop (LONE) to a second session, one thread or spinning threads, whichever was faster on one input; a graph
    whose forward is too long to run in the event loop, or that is served on one thread, has only the one session."""
    import numpy as np
    import torch

    from deepworks import sessions
    from deepworks.sessions import LONE, ServingSession

    path = tmp_path / "tiny.onnx"
    torch.onnx.export(torch.nn.Linear(4, 2), (torch.zeros(1, 4),), str(path), input_names=["x"],
                      dynamic_axes={"x": {0: "n"}}, dynamo=False)
    served = ServingSession(path, 2)
    options = served.lone.get_session_options()
    assert served.lone is not served.batches and options.intra_op_num_threads in (1, 2)
    spin = "session.intra_op.allow_spinning"
    assert served.batches.get_session_options().get_session_config_entry(spin) == "0"
    assert options.get_session_config_entry(spin) == ("1" if options.intra_op_num_threads == 2 else "0")
    used = []
    for session in (served.batches, served.lone):
        session.run = lambda names, feed, *rest, s=session: used.append(s) or [np.zeros((1, 2), np.float32)]
    served.run(None, {"x": np.zeros((1, 4), np.float32)})
    token = LONE.set(True)
    try:
        served.run(None, {"x": np.zeros((1, 4), np.float32)})
    finally:
        LONE.reset(token)
    assert used == [served.batches, served.lone] and served.get_inputs()[0].name == "x"
    one, fixed = ServingSession(path, 1), ServingSession(path, 2, lone=False)  # (a face that never runs inline)
    assert one.lone is one.batches and fixed.lone is fixed.batches
    monkeypatch.setattr(sessions, "LONE_S", 0.0)  # every forward "too long" for the event loop
    slow = ServingSession(path, 2)
    assert slow.lone is slow.batches
