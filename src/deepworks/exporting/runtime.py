"""Running a model file made elsewhere: ONNX Runtime sessions, and the wrapper an imported run's ONNX file or
torch.export program runs in (`imported_model`, which `load` calls). The exporter, the importer and the server all
open ONNX files here; nothing here knows of runs beyond their model files, so `load` can use it without importing
the importer.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from ..errors import DeepworksError
from ..model_files import check_recorded_sha256, load_pt2
from ..run import Run
from ..sessions import onnx_session


class ImportedModel(nn.Module):
    """An ONNX file or a torch.export program behind the interface deepworks' classifiers have: normalised float
    (N, C, H, W) in, logits (N, K) out. `batch` is the graph's fixed batch size when it has one (1 for many exports):
    larger batches are then fed through it in pieces."""

    def __init__(self, path: Path, kind: str, batch: int | None = None):
        super().__init__()
        self.kind, self.batch, self.path = kind, batch, Path(path)
        self.anchor = nn.Parameter(torch.zeros(0), requires_grad=False)  # says which device the model is on
        if kind == "onnx":
            self.session = onnx_session(path)
            self.input_name = self.session.get_inputs()[0].name
        else:
            self.program = load_pt2(self.path).module()

    def train(self, mode: bool = True) -> "ImportedModel":
        """Only this wrapper's flag: an imported graph keeps the mode it was exported in (a torch.export program
        refuses train() and eval() alike)."""
        self.training = mode
        return self

    @property
    def differentiable(self) -> bool:
        return self.kind != "onnx"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.batch is not None and len(x) != self.batch:
            parts = [self.forward_fixed(x[i:i + self.batch]) for i in range(0, len(x), self.batch)]
            return torch.cat(parts) if parts else x.new_zeros(0, 0)
        return self.forward_fixed(x)

    def forward_fixed(self, x: torch.Tensor) -> torch.Tensor:
        n = len(x)
        if self.batch is not None and n < self.batch:  # the last piece, padded to the graph's batch size
            x = torch.cat([x, x[-1:].expand(self.batch - n, *x.shape[1:])])
        if self.kind == "onnx":
            out = torch.from_numpy(self.session.run(None, {self.input_name: x.detach().float().cpu().numpy()})[0])
            out = out.to(x.device)
        else:
            out = self.program(x.float())
            out = out[0] if isinstance(out, (tuple, list)) else out
        return out[:n]


def imported_model(run: Run, saved: dict) -> nn.Module | None:
    """The model of an imported ONNX or pt2 run (None for other runs: they are built from their weights)."""
    info = saved.get("imported") or {}
    if info.get("kind") not in ("onnx", "pt2"):
        return None
    path = run.path / info["file"]
    if not path.is_file():
        raise DeepworksError(f"'{path}' is missing: the run was imported from {info.get('origin')}. Import it again.")
    check_recorded_sha256(path, info.get("sha256"), run.model_file)
    return ImportedModel(path, info["kind"], info.get("batch"))
