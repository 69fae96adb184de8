"""Ablations that teach: the same training with one setting varied, side by side.

    deepworks compare --vary optimizer=sgd,momentum,adagrad,rmsprop,adam --seeds 3
    dw.compare(vary={"optimizer": ["sgd", "adam"], "init": ["zeros", "he"]}, seeds=3, data="digits")

Every variant (each combination of the --vary values) is trained once per seed, as an ordinary run in
FOLDER/runs/. A seed fixes the split, the data order, the initialisation and dropout, and every variant takes the
same seeds: the variants differ only in what was varied. The same command run again skips the finished runs and
resumes an interrupted one from its checkpoint.

FOLDER/report/index.html overlays the variants' learning curves (the mean over seeds, the band from the worst to the
best seed) and tabulates the test score (mean and spread over seeds, the winner and its lead). When the activation
or the initialisation is varied, it also plots the gradient norm of every layer over the first steps of seed 0: the
vanishing gradients of sigmoid in deep stacks, and the zero initialisation whose layers never start learning.
"""

from __future__ import annotations

import html
import itertools
import json
import math
import statistics
import sys
from pathlib import Path

import torch.nn as nn

from ..config import Config, apply_overrides, close_match, fields_by_key, value_of
from ..errors import ConfigError
from ..report import image_tag, pyplot, save_figure, table, write_page
from ..run import Run, atomic_write_text, check_same_command, hold_folder

GRADIENT_STEPS = 100  # steps of seed 0 whose per-layer gradient norms are recorded, when they teach something
TEACHES_GRADIENTS = ("model.activation", "model.init")


def parse_vary(vary: list[str] | dict) -> dict[str, list]:
    """{'train.optimizer': ['sgd', 'adam'], ...} from ['optimizer=sgd,adam', ...] or {'optimizer': [...]}, every
    value checked as `deepworks train` checks it."""
    from ..api.training import settings_to_keys

    if isinstance(vary, dict):
        pairs = [(k, v if isinstance(v, (list, tuple)) else [v]) for k, v in vary.items()]
    else:
        pairs = []
        for item in vary:
            if "=" not in item:
                raise ConfigError(f"--vary expects SETTING=VALUE1,VALUE2 (such as optimizer=sgd,adam). Received: "
                                  f"{item!r}.")
            key, _, values = item.partition("=")
            pairs.append((key.strip(), [v.strip() for v in values.split(",") if v.strip()]))
    if not pairs:
        raise ConfigError("compare needs at least one --vary SETTING=VALUE1,VALUE2 (such as optimizer=sgd,adam).")
    known, out = fields_by_key(), {}
    for key, values in pairs:
        full = next(iter(settings_to_keys({key: None})))
        if full not in known:
            raise ConfigError(f"--vary: unknown setting '{key}'.{close_match(key, known)}")
        if full in out:
            raise ConfigError(f"--vary names '{key}' twice. Give all its values once: {key}=A,B,C.")
        if len(values) < 2:
            raise ConfigError(f"--vary {key}: expected at least two values to compare. Received: {list(values)}.")
        checked = [value_of(apply_overrides(Config(), {full: v}, f"--vary {key}"), full) for v in values]
        if len(set(map(str, checked))) < len(checked):
            raise ConfigError(f"--vary {key}: a value is given twice. Received: {list(values)}.")
        out[full] = checked
    return out


def variant_name(variant: dict) -> str:
    return ",".join(f"{k.split('.')[-1]}={v}" for k, v in variant.items())


class GradientNorms:
    """Record the gradient norm of every layer's weights after each of the first `steps` steps of a new run, into
    RUN/gradients.json: {layer: [norm per step]}."""

    def __init__(self, steps: int = GRADIENT_STEPS):
        self.steps, self.norms = steps, {}

    def on_fit_start(self, trainer) -> None:
        self.active = trainer.epoch == 0 and trainer.step == 0  # a resumed run has passed its first steps
        self.layers = layer_weights(trainer.model)

    def on_step_end(self, trainer) -> None:
        if not self.active or len(next(iter(self.norms.values()), [])) >= self.steps:
            return
        for name, weight in self.layers:
            norm = float(weight.grad.norm()) if weight.grad is not None else 0.0
            self.norms.setdefault(name, []).append(norm)

    def on_fit_end(self, trainer) -> None:
        if self.active and self.norms:
            trainer.run.write_json(trainer.run.path / "gradients.json", self.norms)


def layer_weights(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(name, weights) of every layer: linear and convolution layers, and a recurrent layer's first hidden matrix."""
    out = []
    for name, m in model.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            out.append((name, m.weight))
        elif isinstance(m, nn.RNNBase):
            out.append((name, m.weight_hh_l0))
    return out


def compare(vary: list[str] | dict, seeds: int = 3, out: str | Path | None = None, progress: bool | None = None,
            **settings) -> dict:
    """Train every combination of `vary` with `seeds` seeds (see the module's docstring); returns the summary."""
    from ..api.training import check_data_argument, make_config, settings_to_keys, train_or_continue

    grid = parse_vary(vary)
    if not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"--seeds must be a whole number of at least 1. Received: {seeds!r}.")
    fixed = settings_to_keys(check_data_argument(settings))
    fixed.setdefault("eval.baseline", False)
    cfg = make_config(**fixed)
    fixed = {k: value_of(cfg, k) for k in fixed}  # as typed values: the same command from the CLI or Python
    clash = sorted(set(grid) & set(fixed))
    if clash:
        raise ConfigError(f"'{clash[0]}' is both varied and fixed. Drop one of the two.")
    first_seed = cfg.seed
    name = Run.safe_name(f"{Path(cfg.data.source or cfg.task).name}-" + "-".join(k.split(".")[-1] for k in grid))
    folder = Path(out) if out else Path("compare") / name
    (folder / "runs").mkdir(parents=True, exist_ok=True)
    variants = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    results = {}
    with hold_folder(folder, f"The comparison in '{folder}' is running in another process{{pid}}. Wait for it."):
        request = {"vary": {k: [str(v) for v in vs] for k, vs in grid.items()}, "settings": fixed, "seeds": seeds}
        check_same_command(folder / "compare.json", request, "a comparison")
        atomic_write_text(folder / "compare.json", json.dumps(request, indent=1))
        for variant in variants:
            label = variant_name(variant)
            for seed in range(first_seed, first_seed + seeds):
                path = folder / "runs" / Run.safe_name(f"{label}-seed-{seed}")
                gradients = seed == first_seed and any(k in TEACHES_GRADIENTS for k in grid)
                if progress is not False:
                    print(f"compare: {label}, seed {seed}", file=sys.stderr, flush=True)
                trained = train_or_continue(path, [GradientNorms()] if gradients else [], False,
                                            **{**fixed, **variant, "seed": seed})
                results.setdefault(label, []).append(trained)
        return summarise(folder, grid, results)


def summarise(folder: Path, grid: dict, results: dict) -> dict:
    """summary.json and the report: each variant's test score over seeds, the winner, curves and gradients."""
    first = next(iter(results.values()))[0]
    task, metric = first.task, first.task.headline
    higher = task.monitor_mode(metric) == "max"
    rows = []
    for label, runs in results.items():
        scores = [r.results["test"].get(metric) for r in runs]
        scores = [s for s in scores if isinstance(s, (int, float)) and math.isfinite(s)]
        rows.append({"variant": label, "seeds": len(runs), f"test {metric} mean": statistics.fmean(scores)
                     if scores else math.nan,
                     "spread (sd)": statistics.stdev(scores) if len(scores) > 1 else 0.0,
                     "worst": (min if higher else max)(scores) if scores else math.nan,
                     "best": (max if higher else min)(scores) if scores else math.nan,
                     "seconds": round(statistics.fmean(r.results["fit"]["wall_seconds"] for r in runs), 1),
                     "runs": [str(r.run.path) for r in runs]})
    key = f"test {metric} mean"
    rows.sort(key=lambda r: -r[key] if higher else r[key])
    lead = rows[0][key] - rows[1][key] if len(rows) > 1 else 0.0
    verdict = (f"{rows[0]['variant']} won: {metric} {rows[0][key]:.4f} on average over {rows[0]['seeds']} seeds, "
               f"{abs(lead):.4f} ahead of {rows[1]['variant']}" if len(rows) > 1 else "")
    if len(rows) > 1 and rows[0]["spread (sd)"] + rows[1]["spread (sd)"] > abs(lead):
        verdict += " (within the spread over seeds: more seeds would tell them apart)"
    summary = {"folder": str(folder), "varied": {k: [str(v) for v in vs] for k, vs in grid.items()},
               "metric": metric, "variants": rows, "winner": rows[0]["variant"], "verdict": verdict}
    atomic_write_text(folder / "summary.json", json.dumps(summary, indent=1))
    summary["report"] = str(write_report(folder, summary, results))
    return summary


def write_report(folder: Path, summary: dict, results: dict) -> Path:
    out = folder / "report"
    out.mkdir(exist_ok=True)
    shown = [{k: v for k, v in r.items() if k != "runs"} for r in summary["variants"]]
    sections = [("Result", f"<p>{html.escape(summary['verdict'])}.</p>" + table(shown))]
    monitor = next(iter(results.values()))[0].cfg.train.monitor  # the same for every run of the comparison
    for metric in [m for m in (monitor, "train_loss") if m]:
        path = plot_curves(results, metric, out / f"curves-{metric}.png")
        if path:
            sections.append((f"{metric} per epoch (mean over seeds; band: worst to best seed)", image_tag(path, metric)))
    path = plot_gradients(results, out / "gradients.png")
    if path:
        sections.append(("Gradient norm of each layer over the first steps (seed 0)", image_tag(path, "gradients") +
                         "<p>A layer whose gradient stays near zero is not learning: sigmoid's small slope shrinks "
                         "the gradient layer by layer on its way back (vanishing gradients), and all-zero weights "
                         "pass no gradient back at all, or the same one to every unit.</p>"))
    return write_page(out, f"Comparison: {', '.join(summary['varied'])}", sections)


def epoch_values(trained, metric: str) -> list[float]:
    return [r.get(metric, math.nan) for r in trained.run.metrics() if r.get("kind") == "epoch"]


def plot_curves(results: dict, metric: str, path: Path) -> Path | None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    drawn = False
    for label, runs in results.items():
        curves = [epoch_values(r, metric) for r in runs]
        length = min(len(c) for c in curves)
        if not length:
            continue
        columns = list(zip(*(c[:length] for c in curves)))
        epochs = range(1, length + 1)
        ax.plot(epochs, [statistics.fmean(c) for c in columns], label=label)
        ax.fill_between(epochs, [min(c) for c in columns], [max(c) for c in columns], alpha=0.2)
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.legend(fontsize=8)
    save_figure(fig, path)
    return path


def plot_gradients(results: dict, path: Path) -> Path | None:
    found = {label: json.loads((runs[0].run.path / "gradients.json").read_text()) for label, runs in results.items()
             if (runs[0].run.path / "gradients.json").is_file()}
    if not found:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(found), figsize=(4 * len(found), 3.5), sharey=True, squeeze=False)
    for ax, (label, norms) in zip(axes[0], found.items()):
        for layer, values in norms.items():
            ax.plot(range(1, len(values) + 1), [max(v, 1e-12) for v in values], label=layer, linewidth=1)
        ax.set_yscale("log")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("step")
    axes[0][0].set_ylabel("gradient norm (log)")
    axes[0][-1].legend(fontsize=6, loc="best")
    save_figure(fig, path)
    return path
