"""What a finished GAN run shows: FID and diversity on --fid-samples images against the real reference, beside what
as many real training images score (FID's floor); a grid of samples and a walk through the noise space; the grids
of the fixed noise at several epochs; the balance of the two networks over training, with its warnings.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np
import torch

from ..metrics.fid import class_entropy_score, diversity, frechet_distance, statistics
from ..models import count_parameters
from ..report import fixed_margins, image_tag, plot_history, pyplot, save_figure, save_image_grid, table
from .base import Prepared, notes_block
from .gan_balance import scores_are_probabilities
from .gan_face import GRID, GRID_CLASSES
from .report import Report

SHORT_RUN = 1000  # fewer optimizer steps than this: the run is told it is too short to judge


class GanReport(Report):

    # --- the test -------------------------------------------------------------------------
    def test_results(self, run, model, data: Prepared, device: torch.device) -> dict:
        test = self.task.test_metrics(model, data.test, device)
        short = self.short_run_warning(data)
        out = run.report_dir
        out.mkdir(exist_ok=True)
        face = self.task.make_face()
        save_image_grid(face.sample(model, GRID, self.cfg.seed, device), out / "samples.png", scale=2)
        save_image_grid(face.interpolate(model, 10, self.cfg.seed, device), out / "interpolation.png", cols=10, scale=2)
        return {"test": test, "baseline": self.real_baseline(data),
                "parameters_each": {"generator": count_parameters(model.generator),
                                    "discriminator": count_parameters(model.discriminator)},
                "warnings": [short] * bool(short) + problem_lines(run.metrics())}

    def real_baseline(self, data: Prepared) -> dict | None:
        """FID of as many real training images against the same real reference: what a perfect generator would
        score with this many images (FID has a floor above 0 that grows as the sets shrink). None when the
        reference is the training set itself (--test-fraction 0), where the answer would be 0 by construction."""
        if self.meta["fid_reference"] == "train":
            return None
        x, y = data.train
        n = min(len(x), len(data.test[0]))
        pick = torch.from_numpy(np.random.default_rng(self.cfg.seed + 1).choice(len(x), n, replace=False))
        real_stats, real_div, _ = self.task.real_statistics(data.test[0])
        feats, probs = self.task.features()(x[pick])
        out = {"model": f"{n:,} real training images", "fid": frechet_distance(statistics(feats), real_stats),
               "diversity": diversity(feats) / max(real_div, 1e-12)}
        if probs is not None and self.meta["labelled"]:
            out["class_entropy"] = class_entropy_score(probs)
            if self.cfg.model.conditional:  # the ceiling: how often the classifier reads held-out real images right
                _, held_out = self.task.features()(data.test[0])
                out["class_accuracy"] = float((held_out.argmax(1) == data.test[1].numpy()).mean())
        return out

    def short_run_warning(self, data: Prepared) -> str | None:
        """A run of few optimizer steps cannot be judged yet; say how many epochs would give a first look."""
        steps = self.task.steps
        if steps >= SHORT_RUN:
            return None
        from ..training.loop import steps_per_epoch

        per_epoch = steps_per_epoch(len(data.train[0]), self.cfg.train.batch_size)
        epochs = math.ceil(2 * SHORT_RUN / per_epoch)
        return (f"Only {steps:,} optimizer steps ran: a GAN needs thousands before its images look like the data, "
                f"so these images and scores say little yet. Train longer: --epochs {epochs} gives about "
                f"{epochs * per_epoch:,} steps.")

    def split_sizes(self, data: Prepared) -> dict:
        return {"train": len(data.train[0]), "fid_reference": len(data.test[0])}

    def logged_test(self, results: dict) -> dict:
        baseline = results["baseline"]
        return {**{k: v for k, v in results["test"].items() if k not in ("fid_features", "fid_reference")},
                "baseline_fid": baseline["fid"] if baseline else None}

    # --- the HTML report ---------------------------------------------------------------------
    def report_sections(self, run, model, data: Prepared, results: dict, device) -> list[tuple[str, str]]:
        out = run.report_dir
        records = run.metrics()
        balance = plot_balance(records, out / "balance.png", not scores_are_probabilities(self.cfg))
        metrics = ("diversity", "class_entropy") if self.meta["labelled"] else ("diversity",)
        curves = plot_history(records, out / "curves.png", "fid", *metrics,
                              titles={"loss": "D + G loss", "fid": "FID (lower is better)",
                                      "diversity": "Diversity (generated / real)", "class_entropy": "Class-entropy score"})
        grids = sorted(out.glob("epoch-*.png"))
        progress = "".join(f"<figure style='display:inline-block;margin:4px'>{image_tag(p, p.stem)}"
                           f"<figcaption>{p.stem.replace('-', ' ')}</figcaption></figure>" for p in grids)
        warned = results["warnings"]
        return [
            ("Result", self.result_html(results)),
            ("New images", image_tag(out / "samples.png", "samples") + "<p>A walk through the noise space between two "
             "points (spherical interpolation):</p>" + image_tag(out / "interpolation.png", "interpolation")),
            ("The images forming", "<p>The same fixed noise, decoded by the generator at several epochs."
             f"{self.grid_rows()}</p>" + progress),
            ("Balance of the two networks", (
                "".join(f"<pre class='note'>{html.escape(w)}</pre>" for w in warned) if warned else
                f"<p>No balance warnings: {self.checks_passed()}.</p>")
             + image_tag(balance, "losses and D(x) over training steps")
             + "<p>D(real) and D(fake) are the discriminator's mean probability that an image is real (for hinge and "
               "wgan-gp: their raw scores). A healthy run keeps them apart but not at 1 and 0.</p>"),
            ("FID and diversity per epoch", image_tag(curves, "FID and diversity per epoch")),
            ("Data", f"<p>{html.escape(self.meta['source'])}</p>" + table([results["splits"]]) + notes_block(data.notes)),
        ]

    def checks_passed(self) -> str:
        """What the balance watch checked and found fine (whether D wins outright is read for bce only, whose
        scores are probabilities)."""
        won = "the discriminator never won outright, " if scores_are_probabilities(self.cfg) else ""
        return f"{won}the losses did not run away, and the samples stayed varied"

    def grid_rows(self) -> str:
        """What the rows of a conditional run's grids are: one class each."""
        if not self.cfg.model.conditional:
            return ""
        shown = self.meta["classes"][:GRID_CLASSES]
        more = len(self.meta["classes"]) - len(shown)
        return (f" One row per class, the class asked for; top to bottom: {html.escape(', '.join(map(str, shown)))}"
                f"{f' (the other {more} classes are not drawn)' if more else ''}. Alike images across a row mean "
                f"the class has collapsed to one image.")

    def result_html(self, results: dict) -> str:
        """The generator's FID and diversity beside the real images' (a table), and what they mean."""
        test, base, fit = results["test"], results["baseline"], results["fit"]
        row = {"model": f"{self.describe_model()} generator", "FID": test.get("fid"),
               "diversity": test.get("diversity")}
        base_row = ({"model": base["model"], "FID": base["fid"], "diversity": base["diversity"]} if base else
                    {"model": "real images: none held out (--test-fraction 0)", "FID": "", "diversity": ""})
        if "class_entropy" in test:
            row["class entropy"], base_row["class entropy"] = test["class_entropy"], (base or {}).get("class_entropy", "")
        if "class_accuracy" in test:
            row["of the class asked for"] = f"{test['class_accuracy']:.1%}"
            ceiling = (base or {}).get("class_accuracy")
            base_row["of the class asked for"] = "" if ceiling is None else f"{ceiling:.1%} (held-out images)"
        if "class_diversity" in test:
            row["diversity within classes"], base_row["diversity within classes"] = test["class_diversity"], ""
        best = fit["best_value"]
        return (table([row, base_row]) + f"<p>FID on {test['images']:,} generated and {test['images']:,} real "
                f"{self.meta['fid_reference']} images: the distance between the two clouds of features, lower is better. "
                f"The real-image row is what a perfect generator would score with as many images: FID has a floor above "
                f"0 that rises as the sets get smaller. Features: {html.escape(test['fid_features'])}."
                f" Diversity: how far apart two samples are, relative to two real images (well below 1: mode collapse)."
                f" Of the class asked for: the share of samples the features' classifier reads as the class they were"
                f" asked for (beside it, its score on the held-out real images). Within classes: diversity among"
                f" samples asked for one class, relative to that class's real images."
                f" {fit['epochs']} epochs; best validation {fit['monitor']} {best if best is None else round(best, 3)} at "
                f"epoch {fit['best_epoch']}, whose weights were kept.</p>")

    # --- what the CLI prints ----------------------------------------------------------------
    def describe_model(self) -> str:
        m, t = self.cfg.model, self.cfg.train
        extras = [x for x, on in (("conditional", m.conditional), ("spectral norm", m.spectral_norm),
                                  (f"{t.gan_loss} loss", t.gan_loss != "bce"),
                                  (f"DiffAugment {t.diffaugment}", t.diffaugment not in (None, "none"))) if on]
        return "dcgan" + (f" ({', '.join(extras)})" if extras else "")

    def summary(self, results: dict) -> list[tuple[str, str]]:
        test, base, splits = results["test"], results["baseline"], results["splits"]
        lines = [("data", f"{self.meta['source']}; {splits['train']:,} training images at "
                          f"{self.meta['image_size']} px"),
                 self.model_line(results),
                 ("test", "  ".join(self.describe_metrics(test)))]
        if base:
            lines.append(("real", f"FID {base['fid']:.2f} for {base['model']} against the same "
                                  f"{self.meta['fid_reference']} images (a perfect generator's score)"))
        lines += [("warning", w) for w in results["warnings"][:3]]
        return lines

    @staticmethod
    def describe_metrics(metrics: dict) -> list[str]:
        parts = [f"FID {metrics['fid']:.2f}", f"diversity {metrics['diversity']:.2f}"]
        if "class_entropy" in metrics:
            parts.append(f"class entropy {metrics['class_entropy']:.2f}")
        if "class_accuracy" in metrics:
            parts.append(f"of the class asked for {metrics['class_accuracy']:.0%}")
        if "class_diversity" in metrics:
            parts.append(f"diversity within classes {metrics['class_diversity']:.2f}")
        return ["  ".join(parts)]


def problem_lines(records: list[dict]) -> list[str]:
    """Each problem the balance watch found (gan_balance.py), once, with the epochs it started and whether it
    recovered: "... (from epoch 20, recovered by epoch 31; from epoch 40, still at the end)"."""
    episodes: dict[str, dict] = {}
    for r in records:
        if r.get("kind") == "warning":
            problem = episodes.setdefault(r.get("problem", r["message"]), {"message": r["message"], "spans": []})
            if problem["spans"] and problem["spans"][-1][1] is None:  # runs from before warned at every epoch
                problem["spans"][-1][2] = r["epoch"]
            else:
                problem["spans"].append([r["epoch"], None, r["epoch"]])
        elif r.get("kind") == "recovered" and r.get("problem") in episodes:
            episodes[r["problem"]]["spans"][-1][1] = r["epoch"]
    return [problem["message"] + " (" + "; ".join(span_words(*span) for span in problem["spans"]) + ")"
            for problem in episodes.values()]


def span_words(start: int, end: int | None, last: int) -> str:
    """'from epoch 20, recovered by epoch 31', '... still at the end', or for a run from before (which warned at
    every epoch and logged no recovery) 'warned at epochs 20 to 26'."""
    if end is None and last > start:
        return f"warned at epochs {start} to {last}"
    return f"from epoch {start}, " + (f"recovered by epoch {end}" if end else "still at the end")


def plot_balance(records: list[dict], path: Path, raw_scores: bool) -> Path | None:
    """Both losses, and D(real) / D(fake), against the training step."""
    trace = [r for r in records if r.get("kind") == "trace"]
    if not trace:
        return None
    plt = pyplot()
    steps = [r["step"] for r in trace]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.6))
    a.plot(steps, [r["d_loss"] for r in trace], label="discriminator")
    a.plot(steps, [r["g_loss"] for r in trace], label="generator")
    a.set_title("Losses")
    b.plot(steps, [r["d_real"] for r in trace], label="D(real)")
    b.plot(steps, [r["d_fake"] for r in trace], label="D(fake)")
    b.set_title("Critic scores" if raw_scores else "D(x): probability of 'real'")
    for ax in (a, b):
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend()
    fixed_margins(fig, 2)
    save_figure(fig, path, laid_out=True)
    return path
