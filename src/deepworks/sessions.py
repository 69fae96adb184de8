"""ONNX Runtime sessions, opened one way everywhere: the exporter's checks, an imported ONNX run, `serve --runtime
onnx` and a package's torch-free runtime (which ships this module unchanged).
"""

from __future__ import annotations

from pathlib import Path


def onnx_session(path: Path, threads: int | None = None, spinning: bool = False):
    """The one way deepworks opens an ONNX file in ONNX Runtime: on the CPU, quiet, and by default with idle threads
    that do not spin (spinning takes the cores the server's and the client's threads need on a small machine: a p99
    of 200 ms at 32 connections, measured here)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    if threads is not None:
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class ServingSessions:
    """A served graph opened twice: one input at a time goes to a session whose threads spin, and batches to one
    whose threads sleep when idle. A thread woken for each operator of one small input costs more than its share
    of the work: a ResNet-20 at batch 1 took 0.78 ms on 2 sleeping threads, as on one, and 0.45 ms on 2 spinning
    ones (LeNet-5: 46 and 30 µs); under load, batches grow and the sleeping threads leave the cores to the server.
    Twice the graph's memory; one session where there is one thread. Called as an InferenceSession is."""

    def __init__(self, path: Path, threads: int | None = None):
        self.batched = onnx_session(path, threads)
        self.lone = self.batched if threads == 1 else onnx_session(path, threads, spinning=True)

    def run(self, names, feed: dict, *args):
        first = next(iter(feed.values()))
        return (self.lone if len(first) == 1 else self.batched).run(names, feed, *args)

    def __getattr__(self, name: str):  # get_inputs, get_outputs, ...: the graph's, the same in both
        return getattr(self.batched, name)
