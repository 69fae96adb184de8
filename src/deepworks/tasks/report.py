"""A task's report: what a finished run shows. The test's results, results.json, the summary the CLI prints, the
notes on how training went (overfitting, a collapse) and the HTML report with its figures.

A report is made from the task's recipe (`Report(task)`): it tests with the recipe's metrics, on the recipe's data,
after training; it is never needed to use a trained model.
"""

from __future__ import annotations

import html

import torch
import torch.nn as nn

from .common import Prepared, notes_block, plural


class Report:
    """What a finished run of a task shows. Override what your task needs; the defaults say what happens
    otherwise."""

    overfit_remedies = "more data, --dropout 0.3, or fewer --epochs"  # what the overfitting note suggests

    def __init__(self, task):
        self.task = task
        self.cfg = task.cfg

    @property
    def meta(self) -> dict:
        return self.task.meta

    def test_results(self, run, model: nn.Module, data: Prepared, device: torch.device) -> dict:
        """The results.json entries of the test: {'test': metrics, 'baseline': ... or None, anything else}."""
        return {"test": self.task.test_metrics(model, data.test, device) if len(data.test[0]) else {}, "baseline": None}

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
        results = {"task": self.task.name, "test": found.pop("test"), "baseline": found.pop("baseline", None),
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
    counts as a collapse (see Report.collapse_note); None when there is none."""
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


