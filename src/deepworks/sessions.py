"""ONNX Runtime sessions, opened one way everywhere: the exporter's checks, an imported ONNX run, `serve --runtime
onnx` and a package's torch-free runtime (which ships this module unchanged).
"""

from __future__ import annotations

from pathlib import Path


def onnx_session(path: Path, threads: int | None = None):
    """The one way deepworks opens an ONNX file in ONNX Runtime: on the CPU, quiet, and with idle threads that do
    not spin (spinning takes the cores the server's and the client's threads need on a small machine: a p99 of
    200 ms at 32 connections, measured here; and where a batch of one went to a second session whose threads spin,
    a lone client of a ResNet-20 got 0.42x as many answers a second: bench/serve.py, 2026-12-07)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads is not None:
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

