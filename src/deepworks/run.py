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

import errno
import io
import json
import os
import platform
import re
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from .errors import DeepworksError, DiskFull

MAX_NAME = 100  # characters of a run name: far below the file systems' 255 bytes, and readable in a listing
CHECKPOINT_KEYS = ("format", "epoch", "step", "model", "optimizers", "schedules", "engine", "sums", "callbacks")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp's 0600 would hide run files from other users


def temp_beside(path: Path, suffix: str = ".tmp") -> str:
    """A temporary file in the same folder as `path` (so os.replace is atomic), with normal permissions."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    except OSError as err:
        raise write_error(path, err) from None
    os.close(fd)
    os.chmod(tmp, FILE_MODE)
    return tmp


def write_error(path: Path, err: OSError) -> DeepworksError:
    """A full disk or an unwritable folder, said plainly: what could not be written, and that nothing was lost."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(f"The disk is full: '{path}' could not be written (no space left on the device). The file "
                        f"it would have replaced, if any, is intact. Free some space and try again.")
    return DeepworksError(f"Cannot write '{path}' ({err.strerror or err}). Check that its folder exists and that you "
                          f"may write to it.")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, flush it to the disk, then rename it into place: a crash, a kill
    or a full disk leaves either the old file or the new one, never half of one."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_error(path, err) from None
    tmp = temp_beside(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise write_error(path, err) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, value: Any) -> None:
    atomic_write_text(path, json.dumps(value, indent=2) + "\n")


def atomic_torch_save(path: Path, value: Any) -> None:
    """torch.save into memory, then an atomic write (a checkpoint is a few MB; this way a full disk is an OSError
    with its errno, not a torch error about stream positions)."""
    buffer = io.BytesIO()
    torch.save(value, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def cpu_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file, or a message that names the file when it is damaged."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as err:
        raise damaged_weights(path, err) from None


def safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """The tensor names and shapes a safetensors file declares, read from its header alone (nothing allocated)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise damaged_weights(path, err) from None


def damaged_weights(path: Path, err: BaseException) -> DeepworksError:
    return DeepworksError(f"'{path}' is damaged or not a safetensors file ({first_line(err)}). Restore it from a copy, "
                          f"or train the run again.")


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


@contextmanager
def hold_folder(folder: Path, busy: str):
    """Hold `folder` for this process (an exclusive lock on folder/.lock, holding our pid); `busy` is the message
    when another process holds it, with {pid} where ' (pid N)' goes. The operating system releases the lock when
    the process ends, however it ends, so a killed process never leaves a folder locked."""
    try:
        import fcntl
    except ImportError:  # not a POSIX system: no locking
        yield
        return
    path = folder / ".lock"
    try:
        handle = open(path, "a+")
    except OSError as err:
        raise write_error(path, err) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
        raise DeepworksError(busy.format(pid=f" (pid {holder})" if holder.isdigit() else "")) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    try:
        yield
    finally:
        handle.close()  # releases the lock


def check_same_command(path: Path, request: dict, what: str, may_change: tuple = ()) -> None:
    """A folder that a long command works in (an AutoML search, a comparison) continues only the command that
    started it: `path` (a JSON file) holds that command's request; a different one is refused, except in the keys
    that `may_change`, rather than mixed into the folder's results."""
    if not path.is_file():
        return
    saved = json.loads(path.read_text())
    same = {k: v for k, v in saved.items() if k not in may_change}
    asked = {k: v for k, v in json.loads(json.dumps(request)).items() if k not in may_change}
    if same != asked:
        changed = sorted(k for k in set(same) | set(asked) if same.get(k) != asked.get(k))
        raise DeepworksError(f"'{path.parent}' holds {what} started with other settings ({', '.join(changed)} "
                             f"differ). Use the command that started it to continue it, or another --out folder.")


class Run:
    """One run directory. Knows file names and formats, nothing about tasks. In a distributed run only the main
    process writes: the others hold a Run with `writes = False`, whose writes do nothing."""

    def __init__(self, path: str | Path, writes: bool = True):
        self.path = Path(path)
        self.writes = writes

    # --- creation and lookup -------------------------------------------------
    @classmethod
    def create(cls, runs_dir: str | Path, name: str) -> "Run":
        """A new, empty run folder named after `name` (made safe for a file name), or NAME-2, NAME-3 ... when
        taken. mkdir itself decides who gets a name, so processes starting runs at the same moment never collide."""
        runs_dir = cls.make_runs_dir(runs_dir)
        base = cls.safe_name(name)
        n = 1
        while True:
            candidate = runs_dir / (base if n == 1 else f"{base}-{n}")
            try:
                candidate.mkdir()
                return cls(candidate)
            except FileExistsError:
                n += 1
            except OSError as err:
                raise write_error(candidate, err) from None

    @staticmethod
    def safe_name(name: str) -> str:
        """The folder name a run called `name` gets (before any -2, -3 for a name taken)."""
        return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:MAX_NAME].strip("-.") or "run"

    @staticmethod
    def make_runs_dir(runs_dir: str | Path) -> Path:
        runs_dir = Path(runs_dir)
        try:
            runs_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise DeepworksError(f"Cannot create the runs folder '{runs_dir}' ({err.strerror or err}). Pass "
                                 f"--runs-dir a folder you may write to.") from None
        if not os.access(runs_dir, os.W_OK | os.X_OK):
            raise DeepworksError(f"Cannot write into the runs folder '{runs_dir}'. Pass --runs-dir a folder you may "
                                 f"write to.")
        return runs_dir

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

    # --- one process at a time ----------------------------------------------------------
    @contextmanager
    def lock(self):
        """Hold the run for this process while it trains: a second `train --resume` of the same run is refused
        instead of interleaving its epochs with ours."""
        busy = (f"Run '{self.path}' is being trained by another process{{pid}}. Wait for it to finish, or stop it, "
                f"then resume with: deepworks train --resume {self.path}")
        with hold_folder(self.path, busy):
            self.remove_leftovers()
            yield self

    def tidy(self) -> None:
        """Remove a killed write's leftovers when no process is training the run (a read-only folder is left be)."""
        try:
            with self.lock():
                pass
        except DeepworksError:
            pass

    def is_training(self) -> bool:
        """Whether a live process holds the run (see `lock`): a shared lock on its .lock file is refused exactly
        while a process trains it. Taken and given back at once; False where files cannot be locked."""
        try:
            import fcntl

            handle = open(self.path / ".lock", "r")
        except (ImportError, OSError):  # no POSIX locks, or no lock file: nothing ever held it
            return False
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False

    def remove_leftovers(self) -> None:
        """Delete the temporary files that a process killed in the middle of a write left behind (hidden, named
        after the file they were to replace). Only called while holding the lock, so no live write is touched."""
        for folder in (self.path, self.report_dir, self.path / "snapshots"):
            if folder.is_dir():
                for p in folder.iterdir():
                    if p.name.startswith(".") and p.name.endswith((".tmp", ".part")) and p.is_file():
                        p.unlink(missing_ok=True)

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
        if not self.writes:
            return
        record = {"time": round(time.time(), 3), **record}
        try:
            with open(self.metrics_file, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()
        except OSError as err:
            raise write_error(self.metrics_file, err) from None

    def metrics(self) -> list[dict]:
        """Every record of metrics.jsonl. Lines that are not JSON objects (a torn write, a hand edit) are skipped,
        with one warning that names them."""
        if not self.metrics_file.exists():
            return []
        out, bad = [], []
        text = self.metrics_file.read_text(encoding="utf-8", errors="replace")
        lines = text.splitlines()
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if isinstance(record, dict):
                out.append(record)
            elif number < len(lines) or text.endswith("\n"):  # a last line without its newline is a torn write
                bad.append(number)
        if bad:
            warnings.warn(f"'{self.metrics_file}': line(s) {', '.join(map(str, bad[:10]))} are not JSON records and "
                          f"were skipped.", RuntimeWarning, stacklevel=2)
        return out

    def truncate_metrics(self, after_epoch: int) -> None:
        """On resume, drop the records of epochs after the checkpoint we resume from (any kind: a record that
        belongs to an epoch carries its number), and the test of an earlier finish."""
        if not self.writes:
            return
        kept = [r for r in self.metrics()
                if r.get("kind") != "test" and not (isinstance(r.get("epoch"), int) and r["epoch"] > after_epoch)]
        atomic_write_text(self.metrics_file, "".join(json.dumps(r) + "\n" for r in kept))

    # --- state ----------------------------------------------------------------------
    def save_checkpoint(self, state: dict) -> None:
        if not self.writes:
            return
        atomic_torch_save(self.checkpoint_file, state)

    def load_checkpoint(self) -> dict:
        """The training state to resume from, loaded with weights_only=True: tensors and plain values only, so a
        file that holds anything else is refused without running any of it."""
        import pickle
        import zipfile

        path = self.checkpoint_file
        if not path.exists():
            raise DeepworksError(
                f"Run '{self.path}' has no checkpoint.pt to resume from: it stopped before its first "
                f"epoch ended. Start it again without --resume."
            )
        try:
            with warnings.catch_warnings():  # torch's own remarks on odd files; ours below say what matters
                warnings.simplefilter("ignore")
                state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise DeepworksError(f"'{path}' is not a deepworks checkpoint: it holds Python objects other than tensors "
                                 f"and numbers, so it was not loaded. Do not load it with weights_only=False: that "
                                 f"would run whatever code the file carries. Delete it and start the run again.") from None
        except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
            raise DeepworksError(f"'{path}' is damaged ({first_line(err)}), so the run cannot be resumed from it. "
                                 f"Start it again without --resume (or restore the file from a copy).") from None
        if isinstance(state, dict) and "format" not in state and "rng" in state:
            raise DeepworksError(f"'{path}' was written by an older version of deepworks, whose checkpoints this "
                                 f"version cannot continue. Its trained weights are safe in the run folder; to train "
                                 f"further, start a new run (deepworks train --config {self.config_file}).")
        if not isinstance(state, dict) or any(k not in state for k in CHECKPOINT_KEYS):
            raise DeepworksError(f"'{path}' is not a deepworks checkpoint (it lacks the training state). Start the "
                                 f"run again without --resume.")
        return state

    def save_weights(self, state_dict: dict[str, torch.Tensor], path: Path | None = None,
                     card: dict | None = None) -> str | None:
        """Safetensors, with `card` (what the model is: task, model settings, classes or vocabulary) as JSON in the
        file's metadata, so that the weights describe themselves wherever they are copied. Returns the file's sha256
        (for model.json: loading checks it), or None in a process that does not write."""
        import hashlib

        from safetensors.torch import save

        if not self.writes:
            return None
        metadata = {"deepworks": json.dumps(card)} if card is not None else None
        data = save(state_dict, metadata=metadata)
        atomic_write_bytes(path or self.weights_file, data)
        return hashlib.sha256(data).hexdigest()

    def load_weights(self, path: Path | None = None) -> dict[str, torch.Tensor]:
        path = path or self.weights_file
        if not path.exists():
            raise DeepworksError(
                f"Run '{self.path}' has no {path.name}: training did not finish. "
                f"Resume it with: deepworks train --resume {self.path}"
            )
        return read_safetensors(path)

    def write_json(self, path: Path, value: Any) -> None:
        if self.writes:
            atomic_write_json(path, value)

    def read_json(self, path: Path) -> Any:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DeepworksError(f"'{path}' is not valid JSON ({first_line(err)}): it was damaged or edited by hand. "
                                 f"Restore it from a copy, or train the run again.") from None
        except OSError as err:
            raise DeepworksError(f"Cannot read '{path}' ({err.strerror or err}).") from None

    def recorded_threads(self) -> int | None:
        """The number of CPU threads the run trained with (results depend on it in the last bits)."""
        try:
            value = json.loads(self.environment_file.read_text(encoding="utf-8")).get("torch_threads")
        except (OSError, ValueError, AttributeError):
            return None
        return value if isinstance(value, int) and value >= 1 else None

    def write_environment(self, seed: int, device: str) -> None:
        from importlib.metadata import version

        import numpy

        from ._version import __version__

        if not self.writes:
            return
        atomic_write_json(self.environment_file, {
            "deepworks": __version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": numpy.__version__,
            "scikit-learn": version("scikit-learn"),  # not imported for it: two seconds of a new process
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.version.cuda if torch.cuda.is_available() else None,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "device": device,
            "seed": seed,
        })
