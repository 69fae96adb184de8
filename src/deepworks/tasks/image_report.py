"""What a finished image classification run shows: the test's accuracy, top-k accuracy and macro F1 beside a random
forest's, per-class precision / recall / F1, the confusion matrix, sample predictions, robustness for adversarially
trained runs, and the test accuracy's 95 % interval when the test split is small."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..report import image_tag, plot_confusion, plot_history, plot_image_grid, table
from ..training.finetune import fine_tunes
from .base import Prepared, notes_block
from .report import Report

FEW_TEST_IMAGES = 1000  # below this the test accuracy comes with its 95 % interval: at 179 it spans 4 points
TOO_FEW_WIDTH = 0.2  # an interval wider than this cannot tell a good model from a poor one


def how_sure(test: dict) -> str:
    """' (9 images; 95 % CI 0.70–1.00: too few to tell ...)' after a test accuracy measured on few images (Wilson's
    interval), '' on many: a score on nine images reads as more than it is."""
    from ..metrics.stats import wilson_interval

    n = test.get("samples")
    if not n or n >= FEW_TEST_IMAGES:
        return ""
    low, high = wilson_interval(round(test["accuracy"] * n), n)
    verdict = (": too few to tell; evaluate on more labelled images: deepworks evaluate RUN --data FOLDER"
               if high - low > TOO_FEW_WIDTH else "")
    return f" ({n:,} images; 95 % CI {low:.2f}–{high:.2f}{verdict})"


def small_test_note(test: dict) -> str:
    """The report's word on a test accuracy measured on few images (see how_sure)."""
    sure = how_sure(test)
    return f"<p class='note'>Test accuracy {test['accuracy']:.4f}{html.escape(sure)}.</p>" if sure else ""


def pgd_result(robust: dict) -> tuple[str, float]:
    """('PGD20', accuracy) from a run's robust metrics, whose PGD key names the steps it was measured with."""
    key = next(k for k in robust if k.startswith("pgd"))
    return key.split("_")[0].upper(), robust[key]


class ImageReport(Report):
    def collapse_remedies(self) -> str:
        lower = super().collapse_remedies()
        return f"{lower}, or --freeze to keep the pretrained body fixed" if fine_tunes(self.task) else lower

    @property
    def overfit_remedies(self) -> str:
        d, m = self.cfg.data, self.cfg.model
        photos = (self.meta or {}).get("channels") == 3
        options = ["--augment crop+flip" if d.augment in (None, "none") else "",
                   "--model resnet" if m.name in ("lenet", "smallcnn", "mlp") and photos else "",
                   "--dropout 0.3" if not m.dropout else "", "more images per class"]
        options = [o for o in options if o]
        return ", ".join(options[:-1]) + " or " + options[-1]

    # --- the test and results.json ----------------------------------------------------------------
    def test_results(self, run, model: nn.Module, data: Prepared, device: torch.device) -> dict:
        task = self.task
        test = task.test_metrics(model, data.test, device)
        baseline = task.baseline(data.train, data.test) if self.cfg.eval.baseline and len(data.test[0]) else None
        return {"test": test, "baseline": baseline}

    def logged_test(self, results: dict) -> dict:
        baseline = results["baseline"]
        return {**{k: v for k, v in results["test"].items() if k not in ("per_class", "confusion")},
                "baseline_accuracy": baseline["accuracy"] if baseline else None}

    # --- the HTML report ------------------------------------------------------------------
    def report_sections(self, run, model: nn.Module, data: Prepared, results: dict, device) -> list[tuple[str, str]]:
        out = run.report_dir
        test, classes = results["test"], self.meta["classes"]
        robust = test.get("robust")
        curves = plot_history(run.metrics(), out / "curves.png", "accuracy", *(["robust_accuracy"] if robust else []),
                              titles={"accuracy": "Accuracy (train: on adversarial examples)",
                                      "robust_accuracy": f"Accuracy under PGD, eps {self.cfg.train.eps:g}"}
                              if robust else None)
        confusion = plot_confusion(np.array(test["confusion"]), classes, out / "confusion.png")
        samples = self.plot_samples(model, data.test, device, out / "samples.png")
        fit = results["fit"]
        notes = notes_block(data.notes)
        return [
            ("Result on the test split", table(self.result_rows(results)) + self.notes_html(results)
             + small_test_note(test) + f"<p>{fit['epochs']} epochs; best validation {fit['monitor']} "
             f"{fit['best_value'] if fit['best_value'] is None else round(fit['best_value'], 4)} at epoch {fit['best_epoch']}"
             f"{' (stopped early)' if fit['stopped_early'] else ''}.</p>"),
            *([("Robustness", f"<p>Adversarially trained ({self.cfg.train.adversarial.upper()}, eps "
                               f"{self.cfg.train.eps:g}). Robust accuracy: on the first {robust['samples']} test images, "
                               f"each attacked within eps (L-infinity). Check other attacks and epsilons with "
                               f"<code>deepworks attack {html.escape(str(run.path))}</code>.</p>")] if robust else []),
            ("Data", f"<p>{html.escape(self.meta['source'])}</p>" + table([results["splits"]]) + notes),
            ("Training curves", image_tag(curves, "loss and accuracy per epoch")),
            ("Confusion matrix", "<p>Rows are true classes, columns predictions; the diagonal is right.</p>"
             + image_tag(confusion, "confusion matrix")),
            ("Per class", table([{k2: v for k2, v in r.items()} for r in test["per_class"]])),
            ("Sample predictions", "<p>Test images with the predicted class and its probability; red ones are wrong "
             "(true class after the arrow).</p>" + image_tag(samples, "sample predictions")),
        ]

    def result_rows(self, results: dict) -> list[dict]:
        """The result table's rows: the network (with its accuracy under attack), then the random forest."""
        test, baseline = results["test"], results["baseline"]
        robust = test.get("robust")
        k = next(key for key in test if key.startswith("top"))
        rows = [{"model": f"{self.cfg.model.name} (network)", "accuracy": test["accuracy"], k: test[k],
                 "macro F1": test["macro_f1"], "parameters": results["parameters"]}]
        if robust:
            attack, accuracy = pgd_result(robust)
            rows[0].update({f"robust, {attack}": accuracy, "robust, FGSM": robust["fgsm_accuracy"]})
        if baseline:
            rows.append({"model": baseline["model"], "accuracy": baseline["accuracy"], k: "",
                         "macro F1": baseline["macro_f1"], "parameters": "",
                         **({key: "" for key in rows[0] if key.startswith("robust")})})
        return rows

    def plot_samples(self, model: nn.Module, split, device, path: Path, n: int = 32) -> Path | None:
        x, y = split
        if len(x) == 0:
            return None
        pick = np.random.default_rng(self.cfg.seed).choice(len(x), min(n, len(x)), replace=False)
        probs = self.task.logits(model, x[pick], device).softmax(1)
        conf, pred = probs.max(1)
        classes = self.meta["classes"]
        titles, colors = [], []
        for p, c, t in zip(pred.tolist(), conf.tolist(), y[pick].tolist()):
            titles.append(f"{classes[p]} {c:.0%}" + ("" if p == t else f" → {classes[t]}"))
            colors.append("green" if p == t else "red")
        return plot_image_grid(x[pick].numpy(), titles, colors, path)

    # --- what the CLI prints --------------------------------------------------------------------
    def summary(self, results: dict) -> list[tuple[str, str]]:
        test, base, splits = results["test"], results["baseline"], results["splits"]
        k = next(key for key in test if key.startswith("top"))
        lines = [
            ("data", f"{self.meta['source']}; train {splits['train']} / val {splits['val']} / test {splits['test']}"),
            self.model_line(results),
            ("test", f"accuracy {test['accuracy']:.4f}{how_sure(test)}  {k.replace('_', ' ')} {test[k]:.4f}  "
                     f"macro F1 {test['macro_f1']:.4f}"),
        ]
        if test.get("robust"):
            r = test["robust"]
            attack, accuracy = pgd_result(r)
            lines.append(("robust", f"{attack} accuracy {accuracy:.4f}  FGSM accuracy "
                                    f"{r['fgsm_accuracy']:.4f}  (eps {r['eps']:g}, first {r['samples']} test images)"))
        if base:
            lines.append(("baseline", f"accuracy {base['accuracy']:.4f}  macro F1 {base['macro_f1']:.4f}  ({base['model']})"))
        return lines

    @staticmethod
    def describe_metrics(metrics: dict) -> list[str]:
        """The lines `deepworks evaluate` prints: the headline metrics, then per-class rows."""
        k = next(key for key in metrics if key.startswith("top"))
        lines = [f"accuracy {metrics['accuracy']:.4f}{how_sure(metrics)}  {k.replace('_', ' ')} {metrics[k]:.4f}  "
                 f"macro F1 {metrics['macro_f1']:.4f}  loss {metrics['loss']:.4f}",
                 f"{'class':<20} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}"]
        if "robust" in metrics:
            r = metrics["robust"]
            attack, accuracy = pgd_result(r)
            lines.insert(1, f"under attack (eps {r['eps']:g}, first {r['samples']} images): {attack} "
                            f"accuracy {accuracy:.4f}  FGSM accuracy {r['fgsm_accuracy']:.4f}")
        for row in metrics["per_class"]:
            lines.append(f"{row['class'][:20]:<20} {row['precision']:>9.4f} {row['recall']:>9.4f} {row['f1']:>9.4f} "
                         f"{row['support']:>8}")
        return lines
