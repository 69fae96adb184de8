"""A model as the server holds it: a trained run, its task's inference face, and the runtime that computes it."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ConfigError, DeepworksError
from .served import ServedModel

RUNTIMES = ("torch", "onnx", "int8")


class OnnxRunner:
    """An exported graph in ONNX Runtime, called like the torch module it was exported from (tensors in, a tensor
    out), so that the task's `infer` runs unchanged on it."""

    def __init__(self, path: Path, threads: int, lone: bool = False):
        from ..sessions import ServingSession

        self.session = ServingSession(path, threads, lone)
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, *tensors: torch.Tensor):
        feed = {name: t.cpu().numpy() for name, t in zip(self.input_names, tensors)}
        outputs = [torch.from_numpy(o) for o in self.session.run(None, feed)]
        return outputs[0] if len(outputs) == 1 else tuple(outputs)  # as the module answered: one tensor, or several


class Served(ServedModel):
    """One run being served under `name`."""

    def __init__(self, name: str, run_path: str | Path, runtime: str = "torch"):
        from ..api.trained import load

        if runtime not in RUNTIMES:
            raise ConfigError(f"--runtime must be one of {', '.join(RUNTIMES)}. Received: {runtime!r}.")
        self.trained = load(run_path, device="auto" if runtime == "torch" else "cpu")
        self.face, self.device = self.trained.face, self.trained.device
        self.runtime = runtime
        self.model = self.trained.serving
        if (self.trained.imported or {}).get("kind") == "onnx":
            self.runtime = "onnx"  # an imported ONNX file runs in ONNX Runtime whatever --runtime says
        elif runtime in ("onnx", "int8"):
            self.model = self.onnx_model(int8=runtime == "int8")
        self.start(name)

    def onnx_model(self, int8: bool = False):
        """The run's ONNX export (written now unless an export of these very weights is there) in ONNX Runtime, its
        int8 graph with `int8` (exported with --quantize int8 now if needed; the float graph, said, where int8 was
        not kept); tasks whose use is a loop over several graphs (text, translation) stay in torch, and say so."""
        from ..exporting.exporter import export_run, quantizable, read_card, weights_digest

        if self.trained.serving is self.trained.model:  # the task's use is a loop around the model, not one graph
            self.runtime = "torch"
            served = "image and sound classifiers, detectors" if int8 else "image classifiers, GAN generators"
            self.runtime_note = (f"{self.face.kind} run is a loop over its model's steps, which is served from torch; "
                                 f"--runtime {'int8' if int8 else 'onnx'} serves one-graph models ({served})")
            return self.trained.serving
        if int8 and not quantizable(self.face):
            int8, self.runtime = False, "onnx"
            self.runtime_note = f"int8 is not built for {self.face.kind} run: the float ONNX graph is served"
        folder = self.trained.run.path / "export" / "onnx"
        card = read_card(folder)
        if card is None or card.get("weights", {}).get("sha256") != weights_digest(self.trained.model) or \
                (int8 and "int8" not in card["graphs"][0]):
            card = export_run(self.trained.run.path, "onnx", quantize="int8" if int8 else None)
        graph = card["graphs"][0]
        if int8 and not graph["int8"]["kept"]:
            self.runtime = "onnx"
            self.runtime_note = f"int8 was not kept, as {graph['int8']['reason']}: the float ONNX graph is served"
        elif int8:
            from ..exporting.quantize import slower, speed_words

            speed = graph["int8"].get("speed_vs_float")
            if slower(speed):
                self.runtime_note = (f"int8 ran at {speed_words(speed)} where it was exported: --runtime onnx is "
                                     f"faster there")
            return OnnxRunner(folder / graph["int8"]["file"], torch.get_num_threads(), self.face.fixed_cost_items)
        return OnnxRunner(folder / graph["file"], torch.get_num_threads(), self.face.fixed_cost_items)

    @property
    def about(self) -> dict:
        """What the card says of the run: its task, model, name, test metrics and the face's model card."""
        cfg, results = self.trained.cfg, self.trained.results
        test = {k: v for k, v in (results.get("test") or {}).items() if isinstance(v, (int, float))}
        return {"task": cfg.task, "model": cfg.model.name, "run": self.trained.run.name, "test_metrics": test,
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

