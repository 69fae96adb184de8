"""Tasks: one module per breakthrough. A task knows its data, models, loss, metrics and how a trained model is used.

`Task` below declares every method the loop, the API, the CLI and the report call, each with a default and a
docstring: a new task subclasses it, defines `prepare`, `build_model` and `training_step` (and `evaluate` for
metrics beyond the loss), and joins the registry (registry.py: one line for a built-in; `dw.register_task(cls)` or
`--task module:Class` for your own). tasks/image.py is the fullest example; tests/test_contract.py trains a task
defined inside the test file.

Lifetimes: the class is the recipe (defaults, models); `meta` is what the data fixed (classes, vocabulary,
normalisation), saved in model.json so a trained model can be rebuilt without its data; per-run training state (a
text model's carried hidden state, a GAN's step counter) goes through `state_dict` into the checkpoint.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from ..config import Config, fill_defaults
from ..errors import ConfigError, DeepworksError


__all__ = ["Prepared", "Task", "notes_block", "plural"]


SHARED_DEFAULTS = {"train.optimizer": "adamw", "train.lr": 0.01, "train.momentum": 0.9, "train.weight_decay": 0.01,
                   "train.schedule": "onecycle"}  # for the settings a task's own `defaults` leave out


@dataclass
class Prepared:
    """A task's data, split: each split a tuple of tensors (or array-likes) whose first dimension is the example."""
    train: tuple
    val: tuple
    test: tuple
    meta: dict
    notes: list[str] = field(default_factory=list)


class Task:
    """The contract between a task and the rest of deepworks. Override what your task needs; the defaults say what
    happens otherwise."""

    name = ""                     # what --task calls it
    models: tuple[str, ...] = ()  # the --model names it trains
    defaults: dict = {}           # 'section.name' -> value, for settings the user left unset
    default_monitor = "val_loss"  # the validation metric early stopping and the best weights follow
    headline = "loss"             # the test metric `deepworks runs` shows
    unit: tuple[str, int] = ("sample", 1)  # what the progress bar counts, and how many per example
    counted = ("samples", "examples")      # the key of test_metrics that counts examples, and its word
    sequential = False            # True: examples are seen in order, never shuffled (text's carried state)
    use = None                    # the Trained method that uses a model of this task ('predict', 'generate', ...)
    kind = "a model"              # how messages name a run of this task ('an image classification run')
    overfit_remedies = "more data, --dropout 0.3, or fewer --epochs"
    fine_tuning = False           # True: a run from learned weights is fine-tuned (finetune.py; head_features)
    pretrained_models: tuple[str, ...] = ()  # the --model names --pretrained can start from ImageNet weights
    augments: tuple[str, ...] = ("none", "flip", "crop", "crop+flip")  # the --augment values it knows
    splits_by_speaker = False     # True: --split speaker and speaker:NAME work (speakers_of_data)

    face_class: type | None = None    # the task's Face (tasks/face.py): the use of a trained model
    report_class: type | None = None  # the task's Report (tasks/report.py): what a finished run shows

    def make_face(self):
        """The use of a model of this task, made from the config and the fitted `meta` alone."""
        return self.face_class(self.cfg, self.meta) if self.face_class else self  # None: the task is its own face

    def make_report(self):
        """What a finished run of this task shows (its test, results.json, the summary and the HTML report)."""
        return self.report_class(self) if self.report_class else self  # None: the task is its own report

    @property
    def verb(self) -> str:
        return self.use or "use"

    def model_card(self) -> dict:
        return self.card()

    def __init__(self, cfg: Config, meta: dict | None = None):
        fill_defaults(cfg, {**SHARED_DEFAULTS, **self.defaults})
        if cfg.model.name is not None and cfg.model.name not in self.models:  # None: the task picks from the data
            raise ConfigError(f"--model {cfg.model.name} does not fit --task {self.name}; choose one of: "
                              f"{', '.join(self.models)}.")
        if cfg.data.augment is not None and cfg.data.augment not in self.augments:
            raise ConfigError(f"--augment {cfg.data.augment} does not fit --task {self.name}; choose one of: "
                              f"{', '.join(self.augments)}.")
        if cfg.data.split != "source" and not self.splits_by_speaker:
            raise ConfigError(f"--split {cfg.data.split} is for audio, where each clip's speaker is known. "
                              f"Received: --task {self.name}; leave --split at source.")
        if cfg.model.pretrained and not self.pretrained_models:
            raise ConfigError(f"--pretrained is for image classification (--model efficientnet_lite0) and detection "
                              f"(--model centernet_lite0). Received: --task {self.name}.")
        self.cfg = cfg
        self.meta = meta

    @classmethod
    def from_meta(cls, cfg: Config, meta: dict):
        cls.check_meta(meta)
        return cls(cfg, meta)

    @staticmethod
    def check_meta(meta: dict) -> None:
        """Refuse (ConfigError) a saved run's meta that would size something absurdly, before it sizes anything."""

    # --- data ---------------------------------------------------------------------------------
    def prepare(self, progress: bool | None = True) -> Prepared:
        """Read `cfg.data.source`, split it, and set `self.meta` (json-able: what rebuilding the model needs)."""
        raise NotImplementedError(f"{type(self).__name__} must define prepare(progress) -> Prepared.")

    def speakers_of_data(self) -> list[str]:
        """Who speaks in the data, for --split speaker (crossval.py), which trains a run leaving out each."""
        raise ConfigError(f"--split speaker is for audio. Received: --task {self.name}.")

    def audit_warnings(self, data: Prepared) -> list[str]:
        """Quick checks of the prepared data, warned before training and listed in the report."""
        return []

    def default_epochs(self, data: Prepared) -> int:
        """Epochs when --epochs is not given: about 1,200 optimizer steps, between 3 and 50 epochs."""
        from ..training.loop import default_epochs

        return default_epochs(len(data.train[0]), self.cfg.train.batch_size)

    def default_patience(self, epochs: int) -> int | None:
        """Early stopping's patience when --patience is not given (None: no early stopping)."""
        return None

    def batch_source(self, train: tuple):
        """How the training split reaches the loop (batches.py): by default whole tensors sliced per step."""
        from ..training.batches import TensorBatches

        t = self.cfg.train
        return TensorBatches(train, t.batch_size, self.cfg.seed, shuffle=not self.sequential,
                             regroup=lambda order, size, seed: self.batch_order(order, train, size, seed))

    def batch_order(self, order: torch.Tensor, train: tuple, batch_size: int, seed: int) -> torch.Tensor:
        """Regroup an epoch's shuffled order before it is cut into batches (translation: similar lengths)."""
        return order

    # --- model and training -------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        """The network, from the config and `self.meta`."""
        raise NotImplementedError(f"{type(self).__name__} must define build_model() -> torch.nn.Module.")

    def start_from(self, model: nn.Module) -> None:
        """Set a new run's starting weights beyond its seeded initialisation (pretrained weights); a resumed run's
        come from its checkpoint instead."""

    def head_features(self, model: nn.Module, head: nn.Module, train: tuple, device: torch.device):
        """(what reaches `head`, the labels) over the training split, model in eval mode, for fine-tuning's
        head-first step (finetune.py); None: this task has no such step."""
        return None

    def optimizers(self, model: nn.Module) -> list[torch.optim.Optimizer]:
        """The optimizers `update` steps (one schedule each): by default --optimizer over all parameters; when the
        run starts from learned weights, the last layer at --lr and the rest at --body-lr times it."""
        from ..training.finetune import fine_tunes, parameter_groups
        from ..training.loop import make_optimizer

        t = self.cfg.train
        if fine_tunes(self) and self.cfg.model.body_lr != 1:
            return [make_optimizer(parameter_groups(model, t.lr, self.cfg.model.body_lr), t)]
        return [make_optimizer(model.parameters(), t)]

    def training_step(self, model: nn.Module, batch: tuple) -> tuple[torch.Tensor, dict]:
        """(mean loss of the batch, {name: batch total}); the totals are averaged per example over the epoch."""
        raise NotImplementedError(f"{type(self).__name__} must define training_step(model, batch) -> (loss, sums).")

    def update(self, model: nn.Module, batch: tuple, optimizers: list, engine) -> tuple[torch.Tensor, dict]:
        """One optimizer update from one batch. The default runs `training_step` under the engine's precision and
        steps the one optimizer. A task that trains networks against each other (a GAN) overrides this and steps
        each optimizer with `engine.optimizer_step(opt, loss, clip)`: never `loss.backward()` itself."""
        with engine.autocast():
            loss, stats = self.training_step(model, batch)
        engine.optimizer_step(optimizers[0], loss, self.cfg.train.clip_grad)
        return loss, stats

    def callbacks(self) -> list:
        """Callbacks (training/callbacks.py) this task's training always runs: per-run state that is not the
        model's (a GAN's balance watch, robust training's checks) lives in them, saved with the checkpoint."""
        return []

    def start_epoch(self) -> None:
        """Reset what is carried from step to step (text's hidden state) at the start of an epoch."""

    def state_dict(self):
        """What is carried between steps, for the checkpoint (None: nothing)."""
        return None

    def load_state_dict(self, state) -> None:
        pass

    def evaluate(self, model: nn.Module, split: tuple, device: torch.device) -> dict:
        """Validation metrics after each epoch (logged as val_*). By default the mean of `training_step`'s loss and
        sums over the split, in eval mode without gradients."""
        from ..models import evaluating

        n, size = len(split[0]), max(1, self.cfg.train.batch_size)
        totals: dict = {}
        with torch.no_grad(), evaluating(model):
            for i in range(0, n, size):
                batch = tuple(torch.as_tensor(x[i:i + size]).to(device) for x in split)
                loss, stats = self.training_step(model, batch)
                for k, v in {"loss": loss.float() * len(batch[0]), **stats}.items():
                    totals[k] = totals.get(k, 0.0) + float(v)
        return {k: v / max(n, 1) for k, v in totals.items()}

    def after_epoch(self, run, model: nn.Module, epoch: int, device: torch.device) -> None:
        """Record more than numbers after an epoch (text samples, image snapshots); only the main process calls it."""

    @classmethod
    def monitor_mode(cls, metric: str | None) -> str:
        return "min" if metric is None or metric.endswith(("loss", "bpc", "perplexity")) else "max"

    # --- after training -------------------------------------------------------------------------
    def calibrate(self, model: nn.Module, data: Prepared, device: torch.device) -> None:
        """Measure on the validation split what using the trained model needs (detection: its score threshold) and
        keep it in `self.meta`, before model.json is written; by default nothing."""

    def test_metrics(self, model: nn.Module, split: tuple, device: torch.device) -> dict:
        """The metrics `deepworks evaluate` shows, with the count of examples under `counted[0]`."""
        return {self.counted[0]: len(split[0]), **self.evaluate(model, split, device)}

    def test_results(self, run, model: nn.Module, data: Prepared, device: torch.device) -> dict:
        """The results.json entries of the test: {'test': metrics, 'baseline': ... or None, anything else}."""
        return {"test": self.test_metrics(model, data.test, device) if len(data.test[0]) else {}, "baseline": None}

    def split_sizes(self, data: Prepared) -> dict:
        return {"train": len(data.train[0]), "val": len(data.val[0]), "test": len(data.test[0])}

    def logged_test(self, results: dict) -> dict:
        """The test line of metrics.jsonl: the scalar test metrics."""
        return {k: v for k, v in results["test"].items() if isinstance(v, (int, float, str)) or v is None}

    def finish(self, run, model: nn.Module, data: Prepared, fit_info: dict, device: torch.device) -> dict:
        """Test the trained model, write results.json, log the test and write the report: the same for every task;
        the task fills in `test_results`, `logged_test` and `report_sections`."""
        from ..models import count_parameters

        found = self.test_results(run, model, data, device)
        results = {"task": self.name, "test": found.pop("test"), "baseline": found.pop("baseline", None),
                   "fit": fit_info, "parameters": count_parameters(model), "splits": self.split_sizes(data), **found}
        run.write_json(run.results_file, results)
        run.log(kind="test", **self.logged_test(results))
        self.write_report(run, model, data, results, device)
        return results

    def write_report(self, run, model: nn.Module, data: Prepared, results: dict, device: torch.device):
        """RUN/report/index.html: the task's sections, then the config."""
        from ..report import write_page

        out = run.report_dir
        out.mkdir(exist_ok=True)
        sections = self.report_sections(run, model, data, results, device)
        origin = starting_weights(data.meta)
        if origin:
            sections.append(("Starting weights", origin))
        sections.append(("Config", f"<pre>{html.escape(run.config_file.read_text())}</pre>"))
        return write_page(out, f"deepworks run {run.name}", sections)

    def report_sections(self, run, model: nn.Module, data: Prepared, results: dict, device) -> list[tuple[str, str]]:
        """[(title, html)] of the report; by default the test metrics, the notes and the training curves."""
        from ..report import image_tag, plot_history, table

        scalar = {k: v for k, v in results["test"].items() if isinstance(v, (int, float))}
        curves = plot_history(run.metrics(), run.report_dir / "curves.png")
        return [("Result on the test split", table([scalar]) + self.notes_html(results) + notes_block(data.notes)),
                ("Training curves", image_tag(curves, "loss per epoch"))]

    # --- what the CLI prints --------------------------------------------------------------------
    def describe_model(self) -> str:
        return self.cfg.model.name

    def model_line(self, results: dict) -> tuple[str, str]:
        """The summary's 'model' line: which model, how big, and how long it trained."""
        fit = results["fit"]
        total = fit.get("total_seconds")
        return ("model", f"{self.describe_model()}, {results['parameters']:,} parameters, {plural(fit['epochs'], 'epoch')} in "
                         f"{fit['train_seconds']:.1f} s" + (" (stopped early)" if fit["stopped_early"] else "")
                         + (f"; {total:.1f} s in all, with reading the data, testing and the report"
                            if total is not None else ""))

    def summary(self, results: dict) -> list[tuple[str, str]]:
        """[(label, text)] lines the CLI prints after training."""
        return [self.model_line(results), ("test", "  ".join(self.describe_metrics(results["test"])))]

    @staticmethod
    def describe_metrics(metrics: dict) -> list[str]:
        """The lines `deepworks evaluate` prints for test metrics."""
        return ["  ".join(f"{k} {v:.4g}" for k, v in metrics.items()
                          if isinstance(v, float) and k not in ("run", "task", "split", "data"))]

    def labelled_examples(self, source: str, progress: bool | None = False) -> tuple:
        """Every labelled example of another source, prepared as in training (`deepworks evaluate --data`)."""
        raise DeepworksError(f"--data is not supported for {self.name} runs: evaluate them on their own splits.")

    # --- use: the one inference face (inference.py) that Trained, the CLI, the server and export call ------------
    use_options: dict = {}        # name -> inference.Option: the settings `use` takes (top_k, temperature ...)
    batchable = False             # True: requests can be answered together in one batch (the server batches them)
    max_items = 1024              # the most inputs one call may carry

    def decode_inputs(self, inputs, options: dict, trusted: bool = True) -> list:
        """What a caller gives (paths, bytes, PIL images, arrays, text, or a list of them) -> the list of items
        `infer` takes. A user's mistake is a DataError that says what was expected and what was received.
        `trusted` is False for what arrives over the network: text is then never read as a path on this machine."""
        raise DeepworksError(f"{self.kind} run has no use: its task defines no decode_inputs.")

    def infer(self, model, items: list, device: torch.device, options: dict) -> list:
        """One answer per item (native values: arrays, tensors). `model` is what `serving_model` returned."""
        raise DeepworksError(f"{self.kind} run has no use: its task defines no infer.")

    def encode_result(self, result, options: dict) -> dict:
        """One answer as JSON-able values (what the server sends, and `--json` prints)."""
        return result

    def infer_stream(self, model, items: list, device: torch.device, options: dict):
        """Answers as they are made, encoded: by default each whole answer in turn (text streams characters)."""
        for result in self.infer(model, items, device, options):
            yield self.encode_result(result, options)

    def example_request(self) -> tuple:
        """(inputs, options) of a small request: what the server warms a model up with before it says it is ready."""
        return None, {}

    def as_png(self, results: list) -> bytes | None:
        """The answers as one PNG (a GAN's grid), for a client that asks for an image; None: this task has none."""
        return None

    def serving_model(self, model: nn.Module):
        """What `infer` runs: by default the trained model. A task whose use is one forward pass returns a module
        with the preprocessing inside (uint8 pixels in, probabilities out), which is also what it exports, and which
        ONNX Runtime can stand in for (`runtime='onnx'`)."""
        return model

    def export_graphs(self, model: nn.Module) -> list:
        """The graphs an export writes (inference.Graph): one for a forward pass, several for a loop (a decoder's
        step). The loop itself is documented in the model card."""
        raise DeepworksError(f"{self.kind} run cannot be exported: its task defines no export_graphs.")

    def preview(self, prepared: Prepared, per_class: int = 6) -> dict:
        """A look at prepared data before training, as JSON (the web UI's data page): a few examples per class, an
        excerpt, some pairs. Nothing by default: the page then shows the splits' sizes alone."""
        return {}

    def card(self) -> dict:
        """What a user of an exported model needs to know beyond its graphs: classes or vocabulary, preprocessing,
        and how to run the loop around a step graph."""
        return {}

    def v2_inputs(self) -> list[dict]:
        """The Open Inference Protocol's view of the inputs: [{'name', 'datatype', 'shape'}]; a V2 request's
        tensors are handed to `decode_inputs` by name (one tensor: as the inputs)."""
        return []

    def v2_outputs(self, results: list) -> dict:
        """{name: numpy array} for a V2 response, from `infer`'s answers."""
        return {}

    # --- overfitting -------------------------------------------------------------------
    def overfit_note(self, records: list[dict], best_epoch: int | None) -> str | None:
        """A note when the validation loss rose well above its lowest point (by 30 % and 0.1 at least) while the
        training loss went on falling, and the best epoch was not the last: the model learned its training examples
        rather than the task, and the weights kept are not the final ones. None when it did not."""
        epochs = [r for r in records if r.get("kind") == "epoch" and "val_loss" in r and "train_loss" in r]
        if len(epochs) < 4:
            return None
        low = min(epochs, key=lambda r: r["val_loss"])
        last = epochs[-1]
        rose = (last["val_loss"] >= 1.3 * low["val_loss"] and last["val_loss"] - low["val_loss"] >= 0.1
                and last["epoch"] - low["epoch"] >= 3)
        if not rose or last["train_loss"] >= low["train_loss"] or best_epoch == last["epoch"]:
            return None
        kept = f" The weights of epoch {best_epoch}, the best on validation, were kept." if best_epoch else ""
        return (f"The model overfit: its validation loss fell to {low['val_loss']:.3f} at epoch {low['epoch']}, then "
                f"rose to {last['val_loss']:.3f} by epoch {last['epoch']} while the training loss went on falling "
                f"({low['train_loss']:.3f} to {last['train_loss']:.3f}).{kept} To do better, try "
                f"{self.overfit_remedies}.")

    # --- a collapse: training that unlearned what it had learned -----------------------------------------
    def collapse_remedies(self) -> str:
        return f"a lower --lr (--lr {self.cfg.train.lr / 10:g})" if self.cfg.train.lr else "a lower --lr"

    def collapse_note(self, records: list[dict], best_epoch: int | None) -> str | None:
        """A note when the training accuracy fell far below a level it had reached (by COLLAPSE_DROP) while the
        training loss rose by COLLAPSE_LOSS times its lowest before: steps too large for the weights, which early
        stopping on validation hides by keeping an epoch from before. None when it did not (or the task logs no
        training accuracy)."""
        epochs = [r for r in records if r.get("kind") == "epoch" and "train_accuracy" in r and "train_loss" in r]
        fall = worst_fall(epochs)
        if fall is None:
            return None
        peak, low = fall
        last = epochs[-1]
        after = "" if last is low else f"; it was {last['train_accuracy']:.2f} at the last epoch ({last['epoch']})"
        kept = f" The weights of epoch {best_epoch}, the best on validation, were kept." if best_epoch else ""
        return (f"Training collapsed at epoch {low['epoch']}: the training accuracy fell from "
                f"{peak['train_accuracy']:.2f} (epoch {peak['epoch']}) to {low['train_accuracy']:.2f}, the training "
                f"loss from {min_loss_until(epochs, peak):.3f} to {low['train_loss']:.3f}{after}.{kept} A learning "
                f"rate too high for the weights it had reached does this: try {self.collapse_remedies()}.")

    @staticmethod
    def notes_html(results: dict) -> str:
        """The run's notes (overfitting, a collapse) for the report, as note boxes."""
        fit = results.get("fit", {})
        return "".join(f"<p class='note'>{html.escape(n)}</p>" for n in (fit.get("overfit"), fit.get("collapse")) if n)


COLLAPSE_DROP = 0.2  # training accuracy this far below its best so far ...
COLLAPSE_LOSS = 2.0  # ... with the training loss this many times its lowest so far: a collapse, not a wobble


def min_loss_until(epochs: list[dict], until: dict) -> float:
    return min(r["train_loss"] for r in epochs if r["epoch"] <= until["epoch"])


def worst_fall(epochs: list[dict]) -> tuple[dict, dict] | None:
    """(the epoch of the best training accuracy before it, the epoch) of the deepest fall of training accuracy that
    counts as a collapse (see Task.collapse_note); None when there is none."""
    worst, peak = None, None
    for r in epochs:
        if peak is not None:
            drop = peak["train_accuracy"] - r["train_accuracy"]
            rose = r["train_loss"] >= COLLAPSE_LOSS * min_loss_until(epochs, peak)
            if drop >= COLLAPSE_DROP and rose and (worst is None or drop > worst[0]):
                worst = (drop, peak, r)
        if peak is None or r["train_accuracy"] > peak["train_accuracy"]:
            peak = r
    return worst[1:] if worst else None


def starting_weights(meta: dict) -> str:
    """Where a run's starting weights came from (--pretrained, --init-from), as the report shows it."""
    from ..report import table

    rows = [{"from": f"the package {p['package']}", "file": p["file"], "sha256": p["sha256"],
             "licence": p["licence"], "trained on": p["trained_on"]} for p in [meta.get("pretrained")] if p]
    rows += [{"from": "--init-from", "file": f["file"], "sha256": f["sha256"], "licence": "(yours to know)",
              "trained on": ""} for f in [meta.get("init_from")] if f]
    return table(rows)


def notes_block(notes: list[str]) -> str:
    """The data's notes (skipped files, warnings) as boxes for the report."""
    return "".join(f"<pre class='note'>{html.escape(n)}</pre>" for n in notes)


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"
