"""What the server asks of a model it serves, whatever holds it: a trained run in torch or ONNX Runtime
(models.py `Served`) or a package's graph without torch (packaged.py `PackagedModel`). A subclass sets the face (the
task's use: decode, infer, encode), the model the face runs, and `about` (what the card says of the model); the
routes, the limits and the batcher see only this interface.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ..errors import DeepworksError
from ..usage import cancellable, check_options
from .requests import Limits


class ServedModel:
    """One model being served under `name`. Subclasses set face, verb, model, device, runtime and about."""

    device = None          # what the face's infer runs on (a torch device; None for a graph in ONNX Runtime)
    runtime_note = None    # a word on the runtime, where it is not the one asked for

    def start(self, name: str) -> None:
        """The serving state a subclass starts with, once its face and model are set."""
        self.name = name
        self.verb = self.face.verb
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"infer-{name}")  # one forward at a time
        self.ready = False
        self.v2_outputs: list[dict] = []  # the Open Inference Protocol's view of the outputs, seen at warm-up

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
        its next step with usage.Cancelled."""
        with cancellable(cancel):
            return self.face.infer(self.model, items, self.device, options)

    def stream(self, items: list, options: dict):
        """The answers as they are made, encoded (Server-Sent Events): runs in the model's inference thread."""
        return self.face.infer_stream(self.model, items, self.device, options)

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
        about = dict(self.about)
        max_items = min(self.face.max_items, (limits or Limits()).max_items)
        return {"name": self.name, "task": about.pop("task"), "use": self.verb,
                "route": f"/v1/models/{self.name}/{self.verb}",
                "model": about.pop("model"), "run": about.pop("run"), "runtime": self.runtime,
                **({"runtime_note": self.runtime_note} if self.runtime_note else {}),
                "options": {k: o.describe() for k, o in self.face.use_options.items()},
                "batched": bool(self.face.batchable), "max_items": max_items,
                "test_metrics": about.pop("test_metrics", {}), **about}
