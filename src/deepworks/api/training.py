"""Training orchestration: settings to a checked config, a new run or one resumed, the data prepared and checked,
the model built and started from its weights, the loop run, the model tested, saved and reported.

`dw.train` (api/__init__.py) chooses between these and the other ways to train (one run per speaker, worker
processes); a worker process of a distributed run calls `train_worker`.
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
import time
import warnings
from pathlib import Path

import torch

from ..config import COMMAND_LINE, Config, apply_overrides, fields_by_key, flatten, label
from ..errors import ConfigError, DiskFull, Interrupted
from ..registry import get_task
from ..run import Run, cpu_state_dict
from ..training import threads
from ..training.callbacks import Callbacks
from ..training.engine import resolve_device
from ..training.finetune import fine_tunes, head_first
from ..training.loop import check_resume, fit
from .trained import Trained, load


SHORT_NAMES = {"data": "data.source", "model": "model.name", "engine": "engine.name"}


def settings_to_keys(settings: dict) -> dict:
    """Accept 'lr' as well as 'train.lr' (every setting's own name is unique), and data= / model= for the source / model name."""
    by_name = {}
    for key in sorted(fields_by_key(), key=lambda k: "." not in k):  # top-level last, so name= is the run's name
        by_name[key.split(".")[-1]] = key
    out = {}
    for key, value in settings.items():
        full = SHORT_NAMES.get(key) or (key if "." in key else by_name.get(key, key))
        out[full] = value
    return out


def make_config(config: Config | str | Path | None = None, **settings) -> Config:
    cfg = Config.load(config) if isinstance(config, (str, Path)) else (copy.deepcopy(config) if config else Config())
    return apply_overrides(cfg, settings_to_keys(settings), "settings")


def default_run_name(cfg: Config) -> str:
    """DATA-MODEL; DATA-TASK for a distributed run of an image folder, named before its data picks the model."""
    source = Path(cfg.data.source)
    stem = "arrays" if source.parent.name == ".arrays" else source.stem if source.suffix else source.name
    return f"{(stem or 'data').replace(':', '-')}-{cfg.model.name or cfg.task}"


# Settings a resume may change: where the data and the device are, and what is measured after training. Every
# other setting shapes the training itself, and the checkpoint only continues the run it was made by.
RESUMABLE = ("train.device", "data.data_dir", "data.download", "data.workers", "train.tensorboard", "train.track",
             "eval.top_k", "eval.baseline", "eval.baseline_samples", "eval.beam", "eval.length_penalty", "eval.fid_samples",
             "engine.name", "engine.nproc", "engine.nnodes", "engine.node_rank", "engine.master_addr",
             "engine.master_port", "engine.max_restarts")


def check_resume_changes(saved: Config, asked: Config, run: Run) -> None:
    """Refuse settings that a resume cannot change, before anything is written: the run stays as it was."""
    before, after = flatten(saved.to_dict(), "config"), flatten(asked.to_dict(), "config")
    changed = [k for k in after if k not in RESUMABLE and k not in ("name", "runs_dir") and after[k] != before.get(k)]
    if not changed:
        return
    shown = ", ".join(f"{label(k, COMMAND_LINE)} ({before.get(k)!r} -> {after[k]!r})" for k in changed)
    allowed = ", ".join(label(k, COMMAND_LINE) for k in RESUMABLE)
    more = (f" To train for more epochs, start a new run with the same settings: deepworks train --config "
            f"{run.config_file} --epochs {after['train.epochs']}." if "train.epochs" in changed else "")
    raise ConfigError(f"--resume continues run '{run.path}' exactly as it started, so these settings cannot change: "
                      f"{shown}. A resume may change only {allowed}.{more}")


def configured(config, resume, callbacks, settings: dict):
    """(the checked config, its task, the run to resume or None) for `train`'s arguments: a misspelt callback event,
    setting or value is refused before anything is read or written."""
    settings = check_data_argument(settings)
    Callbacks(callbacks or [])
    run = None
    if resume is not None:
        run = Run.open(resume)
        saved = Config.load(run.config_file)
        cfg = apply_overrides(copy.deepcopy(saved), settings_to_keys(settings), "settings")
        check_resume_changes(saved, cfg, run)
        threads.configure(default=run.recorded_threads())  # the same sums in the same order: the same weights
    else:
        cfg = make_config(config, **settings)
        threads.configure()
    task = get_task(cfg.task)(cfg)  # fills the settings left unset with the task's defaults
    cfg.check()
    return cfg, task, run


def train_configured(cfg: Config, task, run: Run | None, progress, callbacks, started: float):
    """Train one run: in this process, or in the worker processes of the engine the config names."""
    device = resolve_device(cfg.train.device)
    if cfg.engine.name != "local":
        return train_distributed(cfg, run, callbacks)
    if run is None:
        return train_new(cfg, task, device, progress, started, callbacks)
    with run.lock():
        return train_on(run, cfg, task, device, progress, started, resuming=True, callbacks=callbacks)


def train_run(config=None, *, resume=None, progress=None, callbacks=None, **settings):
    """`dw.train` for one run (never one per speaker): what AutoML's trials, `compare`'s cells and cross-validation's
    folds each are."""
    started = time.perf_counter()
    cfg, task, run = configured(config, resume, callbacks, settings)
    return train_configured(cfg, task, run, progress, callbacks, started)


def train_distributed(cfg: Config, run: Run | None, callbacks) -> "Trained | None":
    """Create (or reopen) the run, hold it, and let the engine's worker processes train it (distributed.py). On the
    machines other than machine 0 of a torchrun group there is nothing to load afterwards: None."""
    from ..training.distributed import check_before_launch, launch

    if callbacks:
        raise ConfigError(f"callbacks= runs in this process, but --engine {cfg.engine.name} trains in worker "
                          f"processes. Use the local engine with callbacks, or pass none.")
    check_before_launch(cfg)
    if run is None:
        Run.make_runs_dir(cfg.runs_dir)
        run = Run.create(cfg.runs_dir, cfg.name or default_run_name(cfg))
        cfg.name = run.name
    with run.lock():
        cfg.save(run.config_file)
        launch(run, cfg)
    if cfg.engine.node_rank > 0:
        return None  # another machine of a torchrun group: rank 0, on machine 0, wrote the run
    return load(run.path)


def train_worker(run_path: str | Path, main_callbacks=lambda: None) -> None:
    """One process of a distributed run (distributed.worker calls this): train the run in `run_path`, from its
    checkpoint when it has one, with the other processes of the group. Only rank 0 writes."""
    from ..training.engine import DistributedEngine

    run = Run(run_path)
    cfg = Config.load(run.config_file)
    threads.configure()
    task = get_task(cfg.task)(cfg)
    cfg.check()
    engine = DistributedEngine(resolve_device(cfg.train.device), cfg.train.amp)
    run.writes = engine.is_main
    progress = None if engine.is_main else False
    if not engine.is_main:
        warnings.simplefilter("ignore")  # rank 0 says it once
    callbacks = main_callbacks() if engine.is_main else None
    if run.checkpoint_file.exists():
        train_on(run, cfg, task, engine.device, progress, time.perf_counter(), resuming=True, callbacks=callbacks,
                 engine=engine)
    else:
        torch.manual_seed(cfg.seed)
        data = prepare_checked(task, progress)
        train_on(run, cfg, task, engine.device, progress, time.perf_counter(), data=data, callbacks=callbacks,
                 engine=engine)


def check_model_fits(task) -> None:
    """Count the model's parameters on torch's meta device (which allocates nothing) and refuse one whose training
    state (weights, gradients and the optimizer's two moments: 16 bytes a parameter) would not fit in this machine's
    memory: a --width of a billion is said in one line, not by the allocator's traceback mid-build."""
    import os

    m = task.cfg.model
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        with torch.device("meta"), NoFilling():
            count = sum(p.numel() for p in task.build_model().parameters())
    except RuntimeError as err:  # a tensor whose size overflows 64 bits, or one the meta device cannot make
        if "overflow" not in str(err):
            return
        count = None
    except (TypeError, ValueError, NotImplementedError, OSError, AttributeError):
        return  # a model that cannot be built on the meta device (or no sysconf) is built as it always was
    if count is None or 16 * count > memory:
        size = "more parameters than a tensor can hold" if count is None else (
            f"{count:,} parameters: training it needs about {16 * count / 2 ** 30:,.0f} GB")
        given = ", ".join(f"--{k} {v:,}" for k, v in (("width", m.width), ("depth", m.depth)) if v is not None)
        raise ConfigError(f"The {m.name or task.name} model would have {size}{f' ({given})' if given else ''}, and "
                          f"this machine has {memory / 2 ** 30:,.0f} GB. Expected a smaller --width or --depth.")


class NoFilling(torch.overrides.TorchFunctionMode):
    """On the meta device, where a tensor has a shape and no values, an in-place operation (an initialiser's
    normal_, a copy_) has nothing to fill: skipped. normal_ alone would import torch's Python decompositions the
    first time it runs there: 1.4 s of every training process's start, for a count of parameters."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name.endswith("_") and not name.endswith("__") and args and getattr(args[0], "is_meta", False):
            return args[0]
        return func(*args, **(kwargs or {}))


def start_from(task, model: torch.nn.Module, cfg: Config, train: tuple) -> None:
    """A new run's starting weights beyond its seeded initialisation: the task's (pretrained, then what the training
    split sets), then --init-from."""
    task.start_from(model)
    task.start_from_data(model, train)
    if cfg.model.init_from:
        from ..models.pretrained import load_init_from

        found = load_init_from(model, cfg.model.init_from, cfg.model.allow_partial)
        warnings.warn(f"Started from '{found['file']}' ({found['names']}): {found['loaded']} of {found['of']} tensors "
                      f"loaded; new: {', '.join(found['new'][:6]) or 'none'}{' ...' if len(found['new']) > 6 else ''}.",
                      UserWarning, stacklevel=3)


def train_new(cfg: Config, task, device: torch.device, progress, started: float, callbacks=None) -> "Trained":
    Run.make_runs_dir(cfg.runs_dir)  # a folder it cannot write to is said before the data is read
    torch.manual_seed(cfg.seed)
    data = prepare_checked(task, progress)
    check_model_fits(task)  # before a run folder is made for it
    run = Run.create(cfg.runs_dir, cfg.name or default_run_name(cfg))
    cfg.name = run.name
    with run.lock():
        return train_on(run, cfg, task, device, progress, started, data=data, callbacks=callbacks)


def warn_if_a_folder_shares_a_builtin_name(cfg) -> None:
    """--data photos names the built-in set even where a folder ./photos is: say so, with how to name the folder."""
    from ..cards import card_of

    card, source = card_of(cfg.task), cfg.data.source or ""
    name = source.partition(":")[0]
    if card is not None and name in card.builtins and Path(source).exists():
        warnings.warn(f"--data {source} names the built-in data set {name}, which is what trains; a file or folder "
                      f"'{source}' is here too: to train on it, write ./{source} (or its full path).", stacklevel=3)


def prepare_checked(task, progress, new_run: bool = True):
    """The task's data, with the audit's quick warnings, and the settings that depend on the data resolved (for a
    new run: a resumed one keeps what its config.yaml says)."""
    cfg = task.cfg
    warn_if_a_folder_shares_a_builtin_name(cfg)
    data = task.prepare(progress)
    if cfg.data.audit:
        data.notes += task.audit_warnings(data)  # image data: copies, leakage, imbalance
    if not cfg.train.epochs:
        cfg.train.epochs = task.default_epochs(data)
    if new_run and cfg.train.patience is None:
        cfg.train.patience = task.default_patience(cfg.train.epochs)
    cfg.train.monitor = cfg.train.monitor or (task.default_monitor if len(data.val[0]) else None)
    if cfg.model.init_from:  # model.json says what the weights started from
        from ..digests import sha256_of
        from ..models.pretrained import read_weights

        path = Path(cfg.model.init_from)
        read_weights(path)  # a missing or unreadable file is refused before a run folder is made for it
        data.meta["init_from"] = {"file": str(path.resolve()), "sha256": sha256_of(path)}
    return data


def train_on(run: Run, cfg: Config, task, device: torch.device, progress, started: float, data=None,
             resuming: bool = False, callbacks=None, engine=None) -> "Trained | None":
    """Train (or go on training) in a run folder this process holds, then test, report and save."""
    state = None
    if resuming:
        state = run.load_checkpoint()
        torch.manual_seed(cfg.seed)
        data = prepare_checked(task, progress, new_run=False)
        check_resume(state, cfg, len(data.train[0]), run)
        task.before_resume(state)
        run.truncate_metrics(state["epoch"])
    if run.writes:
        cfg.save(run.config_file)
    run.write_environment(cfg.seed, str(device))
    torch.manual_seed(cfg.seed)
    model = task.build_model()
    t0 = time.perf_counter()  # the fit's wall time includes the starting weights and the head-first step
    if not resuming:
        start_from(task, model, cfg, data.train)
        if fine_tunes(task) and cfg.model.head_first:
            note = head_first(task, model, data.train, device)
            if note:
                data.notes.append(note)
                warnings.warn(note, UserWarning, stacklevel=2)
    try:
        result = fit(task, model, data.train, data.val, cfg, run, resume=state, progress=progress, callbacks=callbacks,
                     engine=engine)
    except DiskFull as err:
        if not run.checkpoint_file.exists():
            raise DiskFull(f"{err} No epoch had finished: free some space and start the run again.") from None
        raise DiskFull(f"{err} The last good checkpoint is kept: free some space, then continue with: "
                       f"deepworks train --resume {run.path}") from None
    if not run.writes:
        return None  # a distributed run's other processes: rank 0 tests, reports and saves
    report = task.make_report()
    fit_info = fit_summary(result, run.metrics(), report, cfg, engine, t0)
    try:
        if cfg.train.restore_best and run.best_file.exists():
            model.load_state_dict(run.load_weights(run.best_file))
        task.calibrate(model, data, device)  # into data.meta, which the card keeps
        card = {"format": 1, "task": cfg.task, "model": dataclasses.asdict(cfg.model), "meta": data.meta}
        sha256 = run.save_weights(cpu_state_dict(model), card=card)
        run.write_json(run.model_file, {**card, "files": {run.weights_file.name: sha256}})
        results = report.finish(run, model, data, fit_info, device)
        results["fit"]["total_seconds"] = round(time.perf_counter() - started, 2)  # with data, testing and report
        run.write_json(run.results_file, results)
        if cfg.train.track == "mlflow":
            from ..training.tracking import track_finished

            track_finished(run, cfg, results)
    except KeyboardInterrupt:
        raise Interrupted(f"Interrupted while testing the model and writing its report. Training had finished and "
                          f"its weights are saved; finish the test and report with: "
                          f"deepworks train --resume {run.path}") from None
    except DiskFull as err:
        raise DiskFull(f"{err} Training had finished; free some space, then finish the test and report with: "
                       f"deepworks train --resume {run.path}") from None
    return Trained(run, cfg, task, model, device)


def fit_summary(result, records: list[dict], report, cfg: Config, engine, t0: float) -> dict:
    """results.json's 'fit': how training went, with the report's notes on overfitting and collapse."""
    return {"epochs": result.epochs, "best_epoch": result.best_epoch, "best_value": result.best_value,
            "monitor": cfg.train.monitor, "stopped_early": result.stopped_early, "stop_reason": result.stop_reason,
            "overfit": report.overfit_note(records, result.best_epoch),
            "collapse": report.collapse_note(records, result.best_epoch),
            "train_seconds": round(sum(r["seconds"] for r in records if r.get("kind") == "epoch"), 2),
            "wall_seconds": round(time.perf_counter() - t0, 2),
            "engine": cfg.engine.name, "processes": engine.world_size if engine is not None else 1}


def train_or_continue(path: Path, callbacks: list, progress, config: str | Path | None = None, **settings):
    """The run at `path`: read back when finished, resumed from its checkpoint when interrupted, else trained anew
    from `config` and `settings` (a folder left without a config by a process killed as it started is removed
    first)."""
    if (path / "results.json").is_file():
        return load(path)
    if (path / "checkpoint.pt").is_file():
        return train_run(resume=str(path), progress=progress, callbacks=callbacks)
    if path.exists():
        shutil.rmtree(path)
    return train_run(config, runs_dir=str(path.parent), name=path.name, progress=progress, callbacks=callbacks,
                     **settings)


DATA_KEYS = ("data", "source", "data.source")


def check_data_argument(settings: dict) -> dict:
    """`data=` names a file, a folder or a built-in, or gives arrays: (x, y) or (x, y, class_names), numpy arrays or
    CPU tensors, images (N, H, W), (N, H, W, C) or (N, C, H, W) and integer labels. Arrays are saved once, by their
    content, as RUNS_DIR/.arrays/SHA.npz and the run reads that file: it resumes, evaluates and is listed like any
    other. Anything else gets a message that says what data= takes."""
    key = next((k for k in DATA_KEYS if k in settings), None)
    value = settings.get(key) if key else None
    if value is None or isinstance(value, (str, Path)):
        return settings
    if isinstance(value, (tuple, list)) and len(value) in (2, 3) and all(hasattr(v, "__len__") for v in value):
        return {**settings, key: str(arrays_to_file(value, settings.get("runs_dir", "runs")))}
    kind = type(value).__name__
    raise ConfigError(f"data= takes the path of a folder, CSV, .npz or text file, a built-in name, or arrays as (x, y) "
                      f"or (x, y, class_names). Received: a {kind}"
                      f"{f' of {len(value)}' if isinstance(value, (tuple, list)) else ''}.")


def arrays_to_file(value, runs_dir: str | Path) -> Path:
    """(x, y[, class_names]) -> RUNS_DIR/.arrays/SHA.npz, checked as an .npz is, each message naming data=(x, y)."""
    import hashlib
    import io

    import numpy as np

    from ..data.images import read_npz
    from ..errors import DataError
    from ..run import atomic_write_bytes

    def plain(a, name: str) -> np.ndarray:
        arr = np.asarray(a.detach().cpu() if torch.is_tensor(a) else a)
        if arr.dtype == object:
            raise ConfigError(f"data=(x, y): {name} must be a numeric array. Received: an array of Python objects "
                              f"(lists of different lengths, or mixed types).")
        return arr

    arrays = {"x": plain(value[0], "x"), "y": plain(value[1], "y")}
    if len(value) == 3:
        arrays["class_names"] = np.asarray([str(c) for c in value[2]])
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    data = buffer.getvalue()
    path = Run.make_runs_dir(runs_dir) / ".arrays" / f"{hashlib.sha256(data).hexdigest()[:20]}.npz"
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        atomic_write_bytes(path, data)
    try:
        read_npz(path)
    except DataError as err:
        raise DataError(str(err).replace(f"'{path}'", "data=(x, y)").replace(str(path), "data=(x, y)")) from None
    return path
