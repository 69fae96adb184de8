"""A model as the server holds it: a trained run, its task's inference face, and the runtime that computes it."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from ..errors import ConfigError, DeepworksError
from ..inference import cancellable, check_options
from .requests import Limits

RUNTIMES = ("torch", "onnx", "int8")


class OnnxRunner:
    """An exported graph in ONNX Runtime, called like the torch module it was exported from (tensors in, a tensor
    out), so that the task's `infer` runs unchanged on it."""

    def __init__(self, path: Path, threads: int):
        from ..exporting.runtime import onnx_session

        self.session = onnx_session(path, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, *tensors: torch.Tensor):
        feed = {name: t.cpu().numpy() for name, t in zip(self.input_names, tensors)}
        outputs = [torch.from_numpy(o) for o in self.session.run(None, feed)]
        return outputs[0] if len(outputs) == 1 else tuple(outputs)  # as the module answered: one tensor, or several


class Served:
    """One run being served under `name`."""

    def __init__(self, name: str, run_path: str | Path, runtime: str = "torch"):
        from ..api.trained import load

        if runtime not in RUNTIMES:
            raise ConfigError(f"--runtime must be one of {', '.join(RUNTIMES)}. Received: {runtime!r}.")
        self.name = name
        self.trained = load(run_path, device="auto" if runtime == "torch" else "cpu")
        self.face = self.trained.face
        self.verb = self.face.verb
        self.runtime, self.runtime_note = runtime, None
        self.model = self.trained.serving
        if (self.trained.imported or {}).get("kind") == "onnx":
            self.runtime = "onnx"  # an imported ONNX file runs in ONNX Runtime whatever --runtime says
        elif runtime in ("onnx", "int8"):
            self.model = self.onnx_model(int8=runtime == "int8")
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"infer-{name}")  # one forward at a time
        self.ready = False
        self.v2_outputs: list[dict] = []  # the Open Inference Protocol's view of the outputs, seen at warm-up

    def onnx_model(self, int8: bool = False):
        """The run's ONNX export (written now unless an export of these very weights is there) in ONNX Runtime, its
        int8 graph with `int8` (exported with --quantize int8 now if needed; the float graph, said, where int8 was
        not kept); tasks whose use is a loop over several graphs (text, translation) stay in torch, and say so."""
        from ..exporting.exporter import export_run, read_card, weights_digest

        if self.trained.serving is self.trained.model:  # the task's use is a loop around the model, not one graph
            self.runtime = "torch"
            self.runtime_note = (f"{self.face.kind} run is a loop over its model's steps, which is served from torch; "
                                 f"--runtime onnx serves one-graph models (image classifiers, GAN generators)")
            return self.trained.serving
        folder = self.trained.run.path / "export" / "onnx"
        card = read_card(folder)
        if card is None or card.get("weights", {}).get("sha256") != weights_digest(self.trained.model) or \
                (int8 and "int8" not in card["graphs"][0]):
            card = export_run(self.trained.run.path, "onnx", quantize="int8" if int8 else None)
        graph = card["graphs"][0]
        if int8 and not graph["int8"]["kept"]:
            self.runtime = "onnx"
            self.runtime_note = f"int8 was not kept ({graph['int8']['reason']}): the float ONNX graph is served"
        elif int8:
            return OnnxRunner(folder / graph["int8"]["file"], torch.get_num_threads())
        return OnnxRunner(folder / graph["file"], torch.get_num_threads())

    def options(self, raw: dict) -> dict:
        return check_options(self.face.use_options, raw, self.verb)

    def decode(self, inputs, options: dict) -> list:
        """What a client sent -> items. The task's checks say what was wrong; anything they did not foresee (a
        TypeError deep in numpy, a RuntimeError in torch, from a value of an odd shape) is still the client's input,
        and said as such."""
        try:
            return self.face.decode_inputs(inputs, options, trusted=False)
        except DeepworksError:
            raise
        except (TypeError, ValueError, KeyError, IndexError, OverflowError, AttributeError, RuntimeError) as err:
            raise DeepworksError(f"{self.verb}: the inputs could not be read ({type(err).__name__}: "
                                 f"{str(err)[:200]}). Expected what GET /v1/models/{self.name} describes.") from None

    def infer(self, items: list, options: dict, cancel: threading.Event | None = None) -> list:
        """Runs in the model's inference thread; once `cancel` is set, a long loop (generate's characters) stops at
        its next step with inference.Cancelled."""
        with cancellable(cancel):
            return self.face.infer(self.model, items, self.trained.device, options)

    def warm_up(self) -> float:
        """One small request through the whole face (the first call of a model is slow: allocations, kernels)."""
        from .v2 import datatype_of

        t0 = time.perf_counter()
        inputs, raw = self.face.example_request()
        options = self.options(raw)
        results = self.infer(self.face.decode_inputs(inputs, options), options)
        sized = self.face.v2_sized_by_input
        self.v2_outputs = [{"name": k, "datatype": datatype_of(v), "shape": [-1, *([-1] * (v.ndim - 1) if sized
                                                                                  else v.shape[1:])]}
                           for k, v in self.face.v2_outputs(results).items()]
        self.ready = True
        return time.perf_counter() - t0

    def card(self, limits: Limits | None = None) -> dict:
        """What GET /v1/models says of this model. `max_items` is the most inputs one request may carry on this
        server: the task's own bound or the server's --max-items (`limits`; the default Limits where not given),
        whichever is lower, as decoding and requests.decode enforce both."""
        cfg, run = self.trained.cfg, self.trained.run
        max_items = min(self.face.max_items, (limits or Limits()).max_items)
        results = self.trained.results
        test = {k: v for k, v in (results.get("test") or {}).items() if isinstance(v, (int, float))}
        return {"name": self.name, "task": cfg.task, "use": self.verb, "route": f"/v1/models/{self.name}/{self.verb}",
                "model": cfg.model.name, "run": run.name, "runtime": self.runtime,
                **({"runtime_note": self.runtime_note} if self.runtime_note else {}),
                "options": {k: o.describe() for k, o in self.face.use_options.items()},
                "batched": bool(self.face.batchable), "max_items": max_items, "test_metrics": test,
                **self.face.model_card()}


def unique_names(paths: list[str]) -> list[str]:
    """Each run's name as its folder's name; the same name twice is refused (the URL would be ambiguous)."""
    names = [Path(p).name for p in paths]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DeepworksError(f"Two runs share the name '{twice[0]}'. Serve runs with different folder names, or "
                             f"name them: NAME=RUN.")
    return names


def parse_runs(specs: list[str]) -> list[tuple[str, str]]:
    """'RUN' or 'NAME=RUN' -> [(name, run path)]."""
    pairs = [(s.split("=", 1)[0], s.split("=", 1)[1]) if "=" in s else (None, s) for s in specs]
    names = unique_names([p for _, p in pairs]) if all(n is None for n, _ in pairs) else None
    out = [(n or (names[i] if names else Path(p).name), p) for i, (n, p) in enumerate(pairs)]
    seen = [n for n, _ in out]
    if len(set(seen)) != len(seen):
        raise DeepworksError(f"Two runs are served as the same name ({', '.join(seen)}). Name them: NAME=RUN.")
    return out

