"""The Python API. The CLI is a thin layer over these functions.

    import deepworks as dw
    trained = dw.train(data="photos/", model="resnet", epochs=10)
    trained.predict(["new.jpg"])            # top-k classes with probabilities

    lm = dw.train(task="text", data="notes.txt", model="lstm")
    lm.generate("Dear ", length=200, temperature=0.8)   # the prime and 200 new characters
    trained = dw.load("runs/photos-resnet")  # later, from the run directory
    dw.evaluate("runs/photos-resnet")        # test metrics again
    dw.runs()                                # every run with its best metric
"""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .training import threads
from .config import COMMAND_LINE, Config, apply_overrides, fields_by_key, flatten, label
from .errors import ConfigError, DeepworksError, DiskFull, Interrupted
from .model_files import check_recorded_sha256
from .models import prefer_channels_last
from .run import Run, cpu_state_dict, first_line, safetensors_shapes
from .training.callbacks import Callbacks
from .training.engine import resolve_device
from .training.finetune import fine_tunes, head_first
from .inference import check_options
from .training.loop import check_resume, fit
from .cards import BUILTIN_CARDS
from .registry import get_card, get_task, register

if TYPE_CHECKING:
    from .experiments.crossval import Folds

GRADIENT_TOOLS = ("attack", "fool", "explain", "visualize", "represent")
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


class Trained:
    """A trained model with its run: predict, evaluate, and the results of training."""

    def __init__(self, run: Run, cfg: Config, task, model: torch.nn.Module, device: torch.device):
        self.run, self.cfg, self.task, self.model, self.device = run, cfg, task, model, device
        self.face = task.make_face()  # the use of the model (tasks/face.py): what every verb below calls
        self._serving = None
        self.imported = None  # for a model made elsewhere (deepworks import): its kind, file and origin

    @property
    def results(self) -> dict:
        return self.run.read_json(self.run.results_file) if self.run.results_file.exists() else {}

    @property
    def classes(self) -> list[str]:
        return self.task.meta.get("classes", [])

    # --- use: every task's one inference face (inference.py), as the server and the CLI call it ----------
    @property
    def serving(self):
        """What the task's face runs (face.serving_model: the model with its pre- and post-processing), made once."""
        if self._serving is None:
            self._serving = self.face.serving_model(self.model).to(self.device)
        return self._serving

    def decoded(self, inputs=None, **options) -> tuple[list, dict]:
        """(the task's items, the checked options): what infer and stream both start from."""
        face = self.face
        options = check_options(face.use_options, options, face.verb)
        return face.decode_inputs(inputs, options), options

    def infer(self, inputs=None, **options) -> tuple[list, dict]:
        """(native answers, the checked options): the task's decode_inputs and infer."""
        items, options = self.decoded(inputs, **options)
        return self.face.infer(self.serving, items, self.device, options), options

    def __call__(self, inputs=None, **options) -> list[dict]:
        """Use the model as its task does, with JSON-able answers, exactly as `deepworks serve` sends them:
        trained(["cat.jpg", pil_image, array]), trained("Dear ", length=100), trained(n=4, seed=1)."""
        results, options = self.infer(inputs, **options)
        return [self.face.encode_result(r, options) for r in results]

    def use(self, inputs=None, **options) -> list[dict]:
        """The one verb of every task (`deepworks use RUN INPUTS`): the same as calling the model."""
        return self(inputs, **options)

    def predict(self, images, top_k: int | None = None) -> list[dict]:
        """Image runs: the top-k classes of images: file paths (or folders), bytes, PIL images or numpy arrays /
        tensors of pixels ((H, W), (H, W, C), or a batch (N, H, W, C) / (N, C, H, W); uint8, or floats in [0, 1]).
        Audio runs: the top-k classes of clips: audio files (or folders), their bytes, or arrays of samples."""
        self.require("predict")
        return self(images, top_k=top_k)

    def detect(self, images, threshold: float | None = None, max_boxes: int = 100, out: str | Path | None = None,
               class_iou: float | None = None) -> list[dict]:
        """Detection runs: the boxes in images (paths or folders, bytes, PIL images, arrays):
        [{'input', 'width', 'height', 'boxes': [{'class', 'score', 'box': [x1, y1, x2, y2] in the image's pixels}]}].
        threshold None: the run's (the best F1 on its validation split). class_iou: boxes of different classes
        overlapping more than this are one object (default 0.7; 1 keeps a box per class). With `out`, each image is
        also written there with its boxes drawn (NAME-boxes.png)."""
        self.require("detect")
        items, options = self.decoded(images, threshold=threshold, max_boxes=max_boxes, class_iou=class_iou)
        answers = [self.face.encode_result(r, options) for r in self.face.infer(self.serving, items, self.device, options)]
        if out is not None:
            for answer, path in zip(answers, self.face.draw(items, answers, Path(out))):
                answer["drawn"] = str(path)
        return answers

    def generate(self, prime: str = "", length: int = 500, temperature: float = 0.8, top_k: int | None = None,
                 seed: int | None = None) -> str:
        """Text runs: the prime followed by `length` sampled characters (the same for the same seed)."""
        self.require("generate")
        results, _ = self.infer(prime, length=length, temperature=temperature, top_k=top_k, seed=seed)
        return results[0]["text"]

    def stream(self, prime: str = "", length: int = 500, temperature: float = 0.8, top_k: int | None = None,
               seed: int | None = None):
        """Text runs: the sampled characters one at a time, as they are made (the prime is not repeated)."""
        self.require("generate")
        items, options = self.decoded(prime, length=length, temperature=temperature, top_k=top_k, seed=seed)
        parts = self.face.infer_stream(self.serving, items, self.device, options)
        return (part["token"] for part in parts if "token" in part)

    def translate(self, sentences: list[str] | str, beam: int = 1, length_penalty: float = 0.6) -> list[dict]:
        """Translation runs: [{'source', 'translation', 'tokens', 'source_tokens', 'attention'}] per sentence."""
        self.require("translate")
        return self.infer(sentences, beam=beam, length_penalty=length_penalty)[0]

    def plot_alignment(self, sentence: str, path: str | Path, beam: int = 1) -> Path:
        """Translation runs: save a heatmap of where attention looked while translating `sentence`."""
        from .tasks.translate import plot_alignment

        return plot_alignment(self.translate(sentence, beam)[0], Path(path))

    def sample(self, n: int = 64, seed: int = 0, label: str | int | None = None, path: str | Path | None = None):
        """GAN runs: n new images as uint8 (N, C, H, W), the same for the same seed; `label` picks a class (runs
        trained with conditional=True). With `path`, also saved there as one grid PNG."""
        self.require("sample")
        results, _ = self.infer(None, n=n, seed=seed, label=None if label is None else str(label))
        images = torch.from_numpy(np.stack([r["image"] for r in results]))
        if path is not None:
            from .report import save_image_grid

            save_image_grid(images, Path(path))
        return images

    def interpolate(self, steps: int = 10, seed: int = 0, label: str | int | None = None,
                    path: str | Path | None = None):
        """GAN runs: a walk of `steps` images between two random points of the noise space (saved as a strip)."""
        self.require("sample", "interpolate")
        images = self.face.interpolate(self.model, steps, seed, self.device, label)
        if path is not None:
            from .report import save_image_grid

            save_image_grid(images, Path(path), cols=steps)
        return images

    def require(self, verb: str, what: str | None = None) -> None:
        """Refuse `what` (by default the verb itself) on a run whose face's verb is not `verb`, naming the verb it
        has; the trust tools (GRADIENT_TOOLS) on a run whose card does not declare them."""
        what = what or verb
        mine = self.face
        if what in GRADIENT_TOOLS:
            if not get_card(self.cfg.task).trust:
                raise DeepworksError(f"'{what}' works on image classifiers; '{self.run.path}' is {mine.kind} run. "
                                     f"Train one with: deepworks train --data IMAGES")
            if not getattr(self.model, "differentiable", True):
                raise DeepworksError(f"'{what}' needs the model's gradients, and '{self.run.path}' runs an imported "
                                     f"ONNX file in ONNX Runtime, which has none. Import the model as a torch.export "
                                     f".pt2 program or as safetensors weights to {what} it.")
        elif mine.verb != verb:
            wanted = [card.kind for card in BUILTIN_CARDS.values() if verb in card.verbs]
            whose = f"for {' or '.join(wanted)} run" if wanted else f"not what '{self.run.path}' does"
            raise DeepworksError(f"'{what}' is {whose}; '{self.run.path}' is {mine.kind} run. Use '{mine.verb}' "
                                 f"instead.")

    def evaluate(self, split: str = "test", data: str | None = None) -> dict:
        return evaluate(self.run.path, split=split, data=data)

    def examples(self, split: str = "test", data: str | None = None, progress: bool | None = False) -> tuple:
        """The run's own test (or val) split as in training, or every labelled example of another source."""
        task, meta = self.task, dict(self.task.meta)
        if data is None and self.imported:
            raise DeepworksError(f"'{self.run.path}' was imported ({self.imported['origin']}) and has no data of its "
                                 f"own. Evaluate it on labelled images with --data FOLDER.")
        if data is None:
            prepared = task.prepare(progress)
            found = prepared.test if split == "test" else prepared.val
        else:
            found = task.labelled_examples(data, progress)
        task.meta = meta  # prepared as in training (normalisation, vocabulary), whatever the data now holds
        return found

    # --- seeing inside and attacking (image runs) -----------------------------------------------
    def in_report(self, result: dict, out) -> dict:
        """Link what a trust tool wrote into the run's report page (when it wrote there rather than to --out)."""
        if out is None:
            from .report import link_extra_figures

            link_extra_figures(self.run.report_dir)
        return result

    def attack(self, method: str = "pgd", eps: float = 0.1, **options) -> dict:
        """Accuracy under an adversarial attack on the test split, an accuracy-against-epsilon curve and example
        triptychs (see `deepworks attack --help` for the options); `image=` and `target=` attack one image."""
        from .trust.tools import attack_run

        self.require("attack")
        return self.in_report(attack_run(self, method, eps, **options), options.get("out"))

    def fool(self, target: str | int, confidence: float = 0.99, out: str | Path | None = None, seed: int = 0) -> dict:
        """An image made from noise that the model calls `target` with at least `confidence`."""
        from .trust.tools import fooling_run

        self.require("fool")
        return self.in_report(fooling_run(self, target, confidence, out, seed), out)

    def explain(self, image: str | Path, label: str | int | None = None, out: str | Path | None = None,
                steps: int = 64) -> dict:
        """Saliency of one image: integrated gradients and gradient x input for the predicted class and `label`."""
        from .trust.tools import explain_image

        self.require("explain")
        return self.in_report(explain_image(self, image, label, out, steps), out)

    def visualize(self, label: str | int | None = None, layer: str | None = None, channels: str | None = None,
                  out: str | Path | None = None, steps: int = 128) -> dict:
        """What the network looks for: every class (or `label`), the channels of `layer`, and the first filters."""
        from .trust.tools import visualize_run

        self.require("visualize")
        return self.in_report(visualize_run(self, label, layer, channels, out, steps), out)

    def representations(self, layer: str | None = None, method: str = "pca", samples: int = 1000,
                        out: str | Path | None = None) -> dict:
        """A hidden layer's view of the test images in 2-D, at the epochs the run kept snapshots of."""
        from .trust.tools import representation_run

        self.require("represent")
        return self.in_report(representation_run(self, layer, method, samples, out), out)

    def __repr__(self) -> str:
        return f"Trained(run='{self.run.path}', task={self.cfg.task}, model={self.cfg.model.name})"


def default_run_name(cfg: Config) -> str:
    """DATA-MODEL; DATA-TASK for a distributed run of an image folder, named before its data picks the model."""
    source = Path(cfg.data.source)
    stem = "arrays" if source.parent.name == ".arrays" else source.stem if source.suffix else source.name
    return f"{(stem or 'data').replace(':', '-')}-{cfg.model.name or cfg.task}"


# Settings a resume may change: where the data and the device are, and what is measured after training. Every
# other setting shapes the training itself, and the checkpoint only continues the run it was made by.
RESUMABLE = ("train.device", "data.data_dir", "data.download", "data.workers", "train.tensorboard", "eval.top_k",
             "eval.baseline", "eval.baseline_samples", "eval.beam", "eval.length_penalty", "eval.fid_samples",
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


def register_task(cls: type) -> type:
    """Make a Task subclass of your own trainable by its name: dw.register_task(MyTask); dw.train(task="mine")."""
    return register(cls)


def train(config: Config | str | Path | None = None, *, resume: str | Path | None = None,
          progress: bool | None = None, callbacks: list | None = None, **settings) -> Trained | Folds | None:
    """Train a model and write its run directory. `resume` continues an interrupted run from its checkpoint.
    `callbacks` are objects with any of the events of deepworks.training.callbacks (on_epoch_end(trainer, record), ...).
    With split='speaker' (audio), one run per speaker, each tested on the speaker it left out: a crossval.Folds.
    Returns None only on the machines other than machine 0 of a torchrun group (--node-rank 1 and up)."""
    started = time.perf_counter()
    settings = check_data_argument(settings)
    Callbacks(callbacks or [])  # a misspelt event is refused before anything is read or written
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
    if cfg.data.split == "speaker" and run is None:
        from .experiments.crossval import leave_each_speaker_out

        return leave_each_speaker_out(cfg, task, progress, callbacks)
    device = resolve_device(cfg.train.device)
    if cfg.engine.name != "local":
        return train_distributed(cfg, run, callbacks)
    if run is None:
        return train_new(cfg, task, device, progress, started, callbacks)
    with run.lock():
        return train_on(run, cfg, task, device, progress, started, resuming=True, callbacks=callbacks)


def train_distributed(cfg: Config, run: Run | None, callbacks) -> "Trained | None":
    """Create (or reopen) the run, hold it, and let the engine's worker processes train it (distributed.py). On the
    machines other than machine 0 of a torchrun group there is nothing to load afterwards: None."""
    from .training.distributed import check_before_launch, launch

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


def train_worker(run_path: str | Path) -> None:
    """One process of a distributed run (distributed.worker calls this): train the run in `run_path`, from its
    checkpoint when it has one, with the other processes of the group. Only rank 0 writes."""
    from .training.distributed import progress_callbacks
    from .training.engine import DistributedEngine

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
    callbacks = progress_callbacks() if engine.is_main else None
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
        with torch.device("meta"):
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


def start_from(task, model: torch.nn.Module, cfg: Config) -> None:
    """A new run's starting weights beyond its seeded initialisation: the task's (pretrained), then --init-from."""
    task.start_from(model)
    if cfg.model.init_from:
        from .models.pretrained import load_init_from

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


def prepare_checked(task, progress, new_run: bool = True):
    """The task's data, with the audit's quick warnings, and the settings that depend on the data resolved (for a
    new run: a resumed one keeps what its config.yaml says)."""
    cfg = task.cfg
    data = task.prepare(progress)
    if cfg.data.audit:
        data.notes += task.audit_warnings(data)  # image data: copies, leakage, imbalance
    if not cfg.train.epochs:
        cfg.train.epochs = task.default_epochs(data)
    if new_run and cfg.train.patience is None:
        cfg.train.patience = task.default_patience(cfg.train.epochs)
    cfg.train.monitor = cfg.train.monitor or (task.default_monitor if len(data.val[0]) else None)
    if cfg.model.init_from:  # model.json says what the weights started from
        from .model_files import sha256_of
        from .models.pretrained import read_weights

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
        run.truncate_metrics(state["epoch"])
    if run.writes:
        cfg.save(run.config_file)
    run.write_environment(cfg.seed, str(device))
    torch.manual_seed(cfg.seed)
    model = task.build_model()
    t0 = time.perf_counter()  # the fit's wall time includes the starting weights and the head-first step
    if not resuming:
        start_from(task, model, cfg)
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
    records = run.metrics()
    report = task.make_report()
    fit_info = {"epochs": result.epochs, "best_epoch": result.best_epoch, "best_value": result.best_value,
                "monitor": cfg.train.monitor, "stopped_early": result.stopped_early, "stop_reason": result.stop_reason,
                "overfit": report.overfit_note(records, result.best_epoch),
                "collapse": report.collapse_note(records, result.best_epoch),
                "train_seconds": round(sum(r["seconds"] for r in records if r.get("kind") == "epoch"), 2),
                "wall_seconds": round(time.perf_counter() - t0, 2),
                "engine": cfg.engine.name, "processes": engine.world_size if engine is not None else 1}
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
    except KeyboardInterrupt:
        raise Interrupted(f"Interrupted while testing the model and writing its report. Training had finished and "
                          f"its weights are saved; finish the test and report with: "
                          f"deepworks train --resume {run.path}") from None
    except DiskFull as err:
        raise DiskFull(f"{err} Training had finished; free some space, then finish the test and report with: "
                       f"deepworks train --resume {run.path}") from None
    return Trained(run, cfg, task, model, device)


def train_or_continue(path: Path, callbacks: list, progress, config: str | Path | None = None, **settings):
    """The run at `path`: read back when finished, resumed from its checkpoint when interrupted, else trained anew
    from `config` and `settings` (a folder left without a config by a process killed as it started is removed
    first)."""
    if (path / "results.json").is_file():
        return load(path)
    if (path / "checkpoint.pt").is_file():
        return train(resume=str(path), progress=progress, callbacks=callbacks)
    if path.exists():
        shutil.rmtree(path)
    return train(config, runs_dir=str(path.parent), name=path.name, progress=progress, callbacks=callbacks, **settings)


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

    from .data.images import read_npz
    from .errors import DataError
    from .run import atomic_write_bytes

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


def load(run_path: str | Path, device: str = "auto", runs_dir: str | Path = "runs") -> Trained:
    """Rebuild a trained model from its run directory (safetensors weights, no pickles)."""
    run = Run.open(run_path, runs_dir)
    run.tidy()
    cfg = Config.load(run.config_file)
    if not run.model_file.exists():
        raise DeepworksError(f"Run '{run.path}' has not finished training (no model.json). "
                             f"Resume it with: deepworks train --resume {run.path}")
    saved = run.read_json(run.model_file)
    if not isinstance(saved, dict) or not isinstance(saved.get("meta"), dict) or not isinstance(saved.get("task"), str):
        raise DeepworksError(f"'{run.model_file}' does not describe a model: it needs 'task' and 'meta'. It was damaged "
                             f"or edited by hand; restore it from a copy, or train the run again.")
    threads.configure()
    try:
        task = get_task(saved["task"]).from_meta(cfg, saved["meta"])
    except (KeyError, TypeError, ValueError) as err:
        raise DeepworksError(f"'{run.model_file}' has an incomplete or invalid 'meta' ({type(err).__name__}: "
                             f"{first_line(err)}). Restore it from a copy, or train the run again.") from None
    except ConfigError as err:
        raise DeepworksError(f"'{run.model_file}' or '{run.config_file}' does not describe a model this version of "
                             f"deepworks can build: {err}") from None
    from .exporting.importer import imported_model

    model = imported_model(run, saved) or build_to_fit(task, run, saved.get("files"))
    dev = resolve_device(device)
    prefer_channels_last(model.to(dev)).eval()
    trained = Trained(run, cfg, task, model, dev)
    trained.imported = saved.get("imported")
    return trained


def build_to_fit(task, run: Run, recorded: dict | None = None) -> torch.nn.Module:
    """The model the run's config.yaml and model.json describe, with its trained weights. It is first built on
    torch's meta device, which allocates nothing, and its tensor shapes compared with those the weights file
    declares: a damaged or edited config (10 million classes, width 3,000) is refused before it can ask for GBs.
    The weights must then have the sha256 model.json `recorded` for them, or they are not loaded."""
    if not run.weights_file.exists():
        run.load_weights()  # the message: training did not finish
    declared = safetensors_shapes(run.weights_file)
    try:
        with torch.device("meta"):
            skeleton = task.build_model()
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise DeepworksError(f"'{run.model_file}' or '{run.config_file}' does not describe a model this version of "
                             f"deepworks can build ({first_line(err)}). Restore them from a copy, or train the run "
                             f"again.") from None
    wanted = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    if wanted != declared:
        missing = [k for k in wanted if k not in declared]
        extra = [k for k in declared if k not in wanted]
        wrong = [f"{k} {declared[k]} where the model has {wanted[k]}" for k in wanted
                 if k in declared and declared[k] != wanted[k]]
        what = "; ".join(part for part in (
            f"shapes differ: {', '.join(wrong[:3])}" if wrong else "",
            f"missing {', '.join(missing[:3])}" if missing else "",
            f"unexpected {', '.join(extra[:3])}" if extra else "") if part)
        raise DeepworksError(f"The weights in '{run.weights_file}' do not fit the {task.cfg.model.name} model that "
                             f"'{run.config_file}' and '{run.model_file}' describe ({what}). One of them was changed "
                             f"after training, or the run was made by another version of deepworks: restore the "
                             f"files, or train the run again.")
    recorded = recorded if isinstance(recorded, dict) else {}
    check_recorded_sha256(run.weights_file, recorded.get(run.weights_file.name), run.model_file)
    model = task.build_model()
    model.load_state_dict(run.load_weights())
    return model


def evaluate(run_path: str | Path, split: str = "test", data: str | None = None, progress: bool | None = False) -> dict:
    """Evaluate a trained run again: on its own test (or val) split, or on all images of another labelled source."""
    if split not in ("test", "val"):
        raise ConfigError(f"--split must be test or val. Received: {split!r}.")
    trained = load(run_path)
    examples = trained.examples(split, data, progress)
    split = split if data is None else "all"
    task = trained.task
    metrics = task.test_metrics(trained.model, examples, trained.device)
    trained.run.log(kind="evaluation", split=split, data=data or trained.cfg.data.source,
                    **{k: v for k, v in metrics.items() if k not in ("per_class", "confusion")})
    return {"run": str(trained.run.path), "task": trained.cfg.task, "split": split,
            "data": data or trained.cfg.data.source, **metrics}


def audit(data: str, data_dir: str | None = None, image_size: int | None = None, channels: int | None = None,
          out: str | Path | None = None, progress: bool = False) -> dict:
    """Check labelled image data: balance, exact and near copies (leakage), corrupt files, sizes, shortcuts.
    Returns the findings (each with what it means and what to do); with `out`, also writes a report there."""
    from .data.audit import audit_source

    return audit_source(data, data_dir, image_size, channels, out, progress=progress)


def generate(run_path: str | Path, prime: str = "", length: int = 500, temperature: float = 0.8,
             top_k: int | None = None, seed: int | None = None) -> str:
    """Sample text from a trained text run: the prime followed by `length` new characters."""
    return load(run_path).generate(prime, length, temperature, top_k, seed)


def run_status(run: Run, epochs_done: int, epochs: int | None) -> str:
    """Finished, training (a live process holds the run), stopped, or never past its first epoch."""
    if run.results_file.exists():
        return "finished"
    if run.is_training():
        return f"training (epoch {epochs_done} of {epochs})" if epochs else f"training (epoch {epochs_done})"
    return f"stopped after epoch {epochs_done}" if epochs_done else "no epoch finished"


def runs(runs_dir: str | Path = "runs") -> list[dict]:
    """Every run under `runs_dir` with its status and best metric, newest first."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    out = []
    for path in sorted((p for p in root.iterdir() if (p / "config.yaml").is_file()),
                       key=lambda p: p.stat().st_mtime, reverse=True):
        run = Run(path)
        try:
            cfg = Config.load(run.config_file)
        except DeepworksError:
            continue
        records = run.metrics()
        epochs = [r for r in records if r.get("kind") == "epoch"]
        monitor = cfg.train.monitor
        values = [r[monitor] for r in epochs if monitor and monitor in r]
        task = get_task(cfg.task)
        best = ((max if task.monitor_mode(monitor) == "max" else min)(values)) if values else None
        test = next((r for r in reversed(records) if r.get("kind") == "test"), None)
        headline = task.headline
        status = run_status(run, len(epochs), cfg.train.epochs)
        row = {"name": run.name, "path": str(path), "task": cfg.task, "data": cfg.data.source, "model": cfg.model.name,
               "epochs": f"{len(epochs)}/{cfg.train.epochs}", "monitor": monitor, "best": best,
               "test_metric": headline, "test": test.get(headline) if test else None, "status": status}
        out.append({**row, **imported_row(run)})
    return out


def imported_row(run: Run) -> dict:
    """What `deepworks runs` says of an imported run (nothing was trained): its kind of file, where it came from."""
    try:
        info = json.loads(run.results_file.read_text(encoding="utf-8")).get("imported")
    except (OSError, ValueError, AttributeError):
        return {}
    if not isinstance(info, dict) or info.get("kind") not in ("onnx", "pt2", "safetensors"):
        return {}
    origin = Path(str(info.get("origin") or "")).name
    row = {"epochs": "-", "imported": info["kind"], "status": f"imported {info['kind']}" + (
        f" from {origin}" if origin else "")}
    return row if info["kind"] == "safetensors" else {**row, "model": info["kind"]}
