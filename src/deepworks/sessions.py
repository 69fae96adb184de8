"""ONNX Runtime sessions, opened one way everywhere: the exporter's checks, an imported ONNX run, `serve --runtime
onnx` and a package's torch-free runtime (which ships this module unchanged).
"""

from __future__ import annotations

import contextvars
import time
from pathlib import Path

LONE_S = 0.002  # the server runs a lone request in its event loop when its forward takes less than this
               # (serving/batcher.py says why)
LONE = contextvars.ContextVar("deepworks_lone_request", default=False)  # True while the batcher runs a lone request
                                                                          # in the event loop


def onnx_session(path: Path, threads: int | None = None, spin: bool = False):
    """The one way deepworks opens an ONNX file in ONNX Runtime: on the CPU, quiet, and with idle threads that do
    not spin unless asked (spinning takes the cores the server's and the client's threads need on a small machine:
    a p99 of 200 ms at 32 connections, measured here)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    if threads is not None:
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class ServingSession:
    """A graph as the server runs it: batches in a session whose idle threads sleep, and a lone request that the
    batcher runs in the event loop (LONE) in a second session, the faster on one input of one thread and `threads`
    that spin. A lone client then neither waits for sleeping threads to wake (a ResNet-20 at 32 x 32 x 3: 0.45 ms
    on two spinning threads, 0.78 ms on sleeping ones) nor, for a model too small to share out (LeNet-5: 0.03 ms
    either way), leaves threads spinning on the cores its own client needs. `lone`: whether the batcher may run a
    lone request in the event loop at all (Face.fixed_cost_items); without it, one session. Everything else
    (get_inputs, ...) is the batch session's."""

    def __init__(self, path: Path, threads: int | None = None, lone: bool = True):
        self.batches = onnx_session(path, threads)
        self.lone = lone_session(path, threads, self.batches) if lone and threads != 1 else self.batches

    def run(self, output_names, feed: dict, *args):
        return (self.lone if LONE.get() else self.batches).run(output_names, feed, *args)

    def __getattr__(self, name: str):
        return getattr(self.batches, name)


def lone_session(path: Path, threads: int | None, batches):
    """The session for lone requests: one thread, or `threads` spinning where that is at least a quarter faster
    on one input of zeros; the batch session itself where a forward is too long to run in the event loop anyway,
    or where zeros cannot go through the graph."""
    try:
        feed = zeros_feed(batches)
        if forward_s(batches, feed, rounds=1, warm=1) >= LONE_S:  # (two forwards: a large model's cost little)
            return batches
        one, spinning = onnx_session(path, 1), onnx_session(path, threads, spin=True)
        timed = [(forward_s(one, feed), forward_s(spinning, feed)) for _ in range(2)]  # (a new pool's first runs
        return spinning if min(t[1] for t in timed) * 1.25 < min(t[0] for t in timed) else one  # are slow)
    except Exception:  # a graph whose inputs zeros do not fit (onnxruntime's errors have no common class)
        return batches


def zeros_feed(session) -> dict:
    """One input of zeros for each of the graph's inputs, its free axes of size 1."""
    import numpy as np

    types = {"tensor(uint8)": np.uint8, "tensor(float)": np.float32, "tensor(int64)": np.int64,
             "tensor(int32)": np.int32, "tensor(bool)": np.bool_, "tensor(double)": np.float64}
    return {i.name: np.zeros([d if isinstance(d, int) and d > 0 else 1 for d in i.shape], types[i.type])
            for i in session.get_inputs()}


def forward_s(session, feed: dict, rounds: int = 12, budget_s: float = 0.1, warm: int = 2) -> float:
    """The fastest of `rounds` forwards after `warm` to warm up (fewer where they outrun `budget_s`)."""
    for _ in range(warm):
        session.run(None, feed)
    best, started = float("inf"), time.perf_counter()
    for _ in range(rounds):
        t0 = time.perf_counter()
        session.run(None, feed)
        best = min(best, time.perf_counter() - t0)
        if t0 - started > budget_s:
            break
    return best
