"""The run directory: everything a run writes, in one folder that explains itself.

    runs/NAME/
      config.yaml        the fully resolved config
      environment.json   versions, seed, device, machine
      metrics.jsonl      one JSON line per epoch and per evaluation
      checkpoint.pt      latest training state, for --resume (tensors only, loaded with weights_only)
      best.safetensors   weights of the best validation epoch so far
      model.safetensors  final weights
      model.json         what is needed to rebuild the model (task, model config, classes, preprocessing)
      results.json       final test metrics and the baseline
      report/            PNG plots and index.html

Every file is written to a temporary name in the same folder and renamed into
place, so a crash or Ctrl-C never leaves a half-written file behind.
"""

from __future__ import annotations

import json
import os
import platform
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .errors import DeepworksError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp's 0600 would hide run files from other users


def temp_beside(path: Path, suffix: str = ".tmp") -> str:
    """A temporary file in the same folder as `path` (so os.replace is atomic), with normal permissions."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    os.chmod(tmp, FILE_MODE)
    return tmp


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, value: Any) -> None:
    atomic_write_text(path, json.dumps(value, indent=2) + "\n")


def atomic_torch_save(path: Path, value: Any) -> None:
    path = Path(path)
    tmp = temp_beside(path)
    try:
        torch.save(value, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cpu_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


class Run:
    """One run directory. Knows file names and formats, nothing about tasks."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    # --- creation and lookup -------------------------------------------------
    @classmethod
    def create(cls, runs_dir: str | Path, name: str) -> "Run":
        runs_dir = Path(runs_dir)
        runs_dir.mkdir(parents=True, exist_ok=True)
        base = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "run"
        candidate, n = runs_dir / base, 1
        while candidate.exists():
            n += 1
            candidate = runs_dir / f"{base}-{n}"
        candidate.mkdir()
        return cls(candidate)

    @classmethod
    def open(cls, path: str | Path, runs_dir: str | Path = "runs") -> "Run":
        """Find an existing run by path, or by name inside `runs_dir`."""
        for candidate in (Path(path), Path(runs_dir) / str(path)):
            if (candidate / "config.yaml").is_file():
                return cls(candidate)
        raise DeepworksError(
            f"No run at '{path}'. Pass a run directory (one with config.yaml), "
            f"for example one listed by 'deepworks runs'."
        )

    # --- file names -----------------------------------------------------------
    config_file = property(lambda self: self.path / "config.yaml")
    metrics_file = property(lambda self: self.path / "metrics.jsonl")
    checkpoint_file = property(lambda self: self.path / "checkpoint.pt")
    best_file = property(lambda self: self.path / "best.safetensors")
    weights_file = property(lambda self: self.path / "model.safetensors")
    model_file = property(lambda self: self.path / "model.json")
    results_file = property(lambda self: self.path / "results.json")
    environment_file = property(lambda self: self.path / "environment.json")
    report_dir = property(lambda self: self.path / "report")

    @property
    def name(self) -> str:
        return self.path.name

    # --- metrics ----------------------------------------------------------------
    def log(self, **record: Any) -> None:
        """Append one JSON line. Appends of one short line are atomic enough: a torn last line is skipped on read."""
        record = {"time": round(time.time(), 3), **record}
        with open(self.metrics_file, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()

    def metrics(self) -> list[dict]:
        if not self.metrics_file.exists():
            return []
        out = []
        for line in self.metrics_file.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def truncate_metrics(self, after_epoch: int) -> None:
        """On resume, drop lines logged after the checkpoint we resume from."""
        kept = [r for r in self.metrics() if r.get("kind") not in ("epoch", "sample") or r["epoch"] <= after_epoch]
        kept = [r for r in kept if r.get("kind") != "test"]
        atomic_write_text(self.metrics_file, "".join(json.dumps(r) + "\n" for r in kept))

    # --- state ----------------------------------------------------------------------
    def save_checkpoint(self, state: dict) -> None:
        atomic_torch_save(self.checkpoint_file, state)

    def load_checkpoint(self) -> dict:
        if not self.checkpoint_file.exists():
            raise DeepworksError(
                f"Run '{self.path}' has no checkpoint.pt to resume from: it stopped before its first "
                f"epoch ended. Start it again without --resume."
            )
        return torch.load(self.checkpoint_file, map_location="cpu", weights_only=True)

    def save_weights(self, state_dict: dict[str, torch.Tensor], path: Path | None = None) -> None:
        path = path or self.weights_file
        tmp = temp_beside(path)
        try:
            save_file(state_dict, tmp)
            os.chmod(tmp, FILE_MODE)  # safetensors writes a fresh file of its own
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load_weights(self, path: Path | None = None) -> dict[str, torch.Tensor]:
        path = path or self.weights_file
        if not path.exists():
            raise DeepworksError(
                f"Run '{self.path}' has no {path.name}: training did not finish. "
                f"Resume it with: deepworks train --resume {self.path}"
            )
        return load_file(path)

    def write_json(self, path: Path, value: Any) -> None:
        atomic_write_json(path, value)

    def read_json(self, path: Path) -> Any:
        return json.loads(path.read_text(encoding="utf-8"))

    def write_environment(self, seed: int, device: str) -> None:
        import numpy
        import sklearn

        from . import __version__

        atomic_write_json(self.environment_file, {
            "deepworks": __version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": numpy.__version__,
            "scikit-learn": sklearn.__version__,
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.version.cuda if torch.cuda.is_available() else None,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "device": device,
            "seed": seed,
        })
