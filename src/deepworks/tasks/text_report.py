"""Text generation's report: bits per character on the held-out text beside a bigram model of the training text,
samples from the final model at three temperatures and those recorded during training, and the summary the CLI
prints (with one sample, made readable for a terminal)."""

from __future__ import annotations

import html
import math

import numpy as np
import torch
import torch.nn as nn

from ..report import image_tag, plot_history, table
from .base import Prepared, notes_block
from .report import Report
from .text_face import SUMMARY_TEMPERATURE

LN2 = math.log(2)
TEMPERATURES = (0.5, 1.0, 1.5)  # the report's samples: cautious, faithful, adventurous


def bigram_bpc(train: torch.Tensor, test: torch.Tensor, vocab_size: int, alpha: float = 0.5) -> float:
    """Bits per character of an add-alpha smoothed bigram model of `train`, on `test`: what counting pairs gives."""
    counts = np.full((vocab_size, vocab_size), alpha)
    np.add.at(counts, (train[:-1].numpy(), train[1:].numpy()), 1)
    logp = np.log2(counts / counts.sum(1, keepdims=True))
    return float(-logp[test[:-1].numpy(), test[1:].numpy()].mean())


class TextReport(Report):
    overfit_remedies = "--dropout 0.2, a smaller --width, or more text"

    def test_results(self, run, model: nn.Module, data: Prepared, device: torch.device) -> dict:
        vocab, face = self.meta["vocab"], self.task.make_face()
        test = self.task.test_metrics(model, data.test, device) if len(data.test[0]) > 1 else {}
        train_ids = data.train[0][:, :-1].reshape(-1)
        baseline = ({"model": "bigram counts (add-0.5 smoothing)", "bpc": bigram_bpc(train_ids, data.test[0], len(vocab))}
                    if len(data.test[0]) > 1 else None)
        samples = {str(t): face.generate(model, face.prime, 500, t, seed=self.cfg.seed, device=device)
                   for t in TEMPERATURES}
        shown = face.generate(model, face.prime, 400, SUMMARY_TEMPERATURE, seed=self.cfg.seed, device=device)
        return {"test": test, "baseline": baseline, "vocab_size": len(vocab), "samples": samples,
                "sample": {"prime": face.prime, "temperature": SUMMARY_TEMPERATURE, "text": shown}}

    def split_sizes(self, data: Prepared) -> dict:
        return {"train": self.meta["train_chars"], "val": self.meta["val_chars"]}

    def logged_test(self, results: dict) -> dict:
        baseline = results["baseline"]
        return {**results["test"], "baseline_bpc": baseline["bpc"] if baseline else None}

    def report_sections(self, run, model: nn.Module, data: Prepared, results: dict, device) -> list[tuple[str, str]]:
        records = run.metrics()
        curves = plot_history(records, run.report_dir / "curves.png", "bpc", "perplexity",
                              titles={"loss": "Loss (nats per character)", "bpc": "Bits per character",
                                      "perplexity": "Perplexity"})
        final = "".join(f"<h3>temperature {t}</h3><pre>{html.escape(s)}</pre>" for t, s in results["samples"].items())
        vocab = "".join(self.meta["vocab"])
        return [
            ("Result on the held-out text", self.result_html(results)),
            ("Samples from the final model", "<p>500 characters each, starting from a new line. Low temperatures "
             "play safe and repeat themselves; high ones invent more and misspell more.</p>" + final),
            ("Samples during training", samples_table(records)),
            ("Training curves", image_tag(curves, "loss, bits per character and perplexity per epoch")),
            ("Data", f"<p>{html.escape(self.meta['source'])}</p>" + table([results["splits"]])
             + f"<p>Vocabulary of {len(vocab)} characters: <code>{html.escape(repr(vocab))}</code></p>"
             + notes_block(data.notes)),
        ]

    def result_html(self, results: dict) -> str:
        """The network beside the bigram baseline on the held-out text, the notes, and what bits per character
        mean."""
        test, fit, baseline = results["test"], results["fit"], results["baseline"]
        rows = []
        if test:
            rows.append({"model": f"{self.cfg.model.name} (network)", "nats/char": test["loss"], "bits/char": test["bpc"],
                         "perplexity": test["perplexity"], "parameters": results["parameters"]})
        if baseline:
            rows.append({"model": baseline["model"], "nats/char": baseline["bpc"] * LN2, "bits/char": baseline["bpc"],
                         "perplexity": 2 ** baseline["bpc"], "parameters": ""})
        best = fit["best_value"]
        return (table(rows) + self.notes_html(results) + f"<p>{fit['epochs']} epochs; best validation "
                f"{fit['monitor']} {best if best is None else round(best, 4)} at epoch {fit['best_epoch']}. "
                "Bits per character: how many yes/no questions the model needs, on average, to guess the next "
                "character; lower is better, and a model that guessed uniformly would need "
                f"{math.log2(len(self.meta['vocab'])):.2f}.</p>")

    # --- what the CLI prints ----------------------------------------------------------------
    def summary(self, results: dict) -> list[tuple[str, str]]:
        test, base, splits = results["test"], results["baseline"], results["splits"]
        lines = [
            ("data", f"{self.meta['source']}; train {splits['train']:,} / val {splits['val']:,} characters, "
                     f"{results['vocab_size']} distinct"),
            self.model_line(results),
        ]
        if test:
            lines.append(("val", f"{test['loss']:.4f} nats/char  {test['bpc']:.4f} bits/char  "
                                 f"perplexity {test['perplexity']:.2f}"))
        if base:
            lines.append(("baseline", f"{base['bpc']:.4f} bits/char ({base['model']})"))
        shown = results.get("sample") or {"text": results["samples"][str(TEMPERATURES[0])], "temperature": 0.5}
        lines.append(("sample", f"(temperature {shown['temperature']:g})\n" + " " * 10
                      + readable(shown["text"]).replace("\n", "\n" + " " * 10)))
        return lines

    @staticmethod
    def describe_metrics(metrics: dict) -> list[str]:
        return [f"{metrics['loss']:.4f} nats/char  {metrics['bpc']:.4f} bits/char  perplexity {metrics['perplexity']:.2f}"]


def samples_table(records: list[dict]) -> str:
    """The samples recorded during training (after_epoch's 'sample' lines): one row per epoch, one column per
    temperature."""
    by_epoch: dict[int, dict] = {}
    for r in records:
        if r.get("kind") == "sample":
            by_epoch.setdefault(r["epoch"], {})[r["temperature"]] = r["text"]
    rows = "".join(
        f"<tr><td>{e}</td>" + "".join(f"<td><pre>{html.escape(texts.get(t, ''))}</pre></td>" for t in TEMPERATURES)
        + "</tr>" for e, texts in sorted(by_epoch.items()))
    head = "<tr><th>epoch</th>" + "".join(f"<th>temperature {t}</th>" for t in TEMPERATURES) + "</tr>"
    return "<table class='samples'>" + head + rows + "</table>"


def readable(text: str, lines: int = 8, width: int = 100) -> str:
    """A sample as a person can read it in a terminal: no trailing spaces, no runs of blank lines, at most `lines`
    lines of at most `width` characters, tabs shown as four spaces."""
    out, blank = [], False
    for line in text.replace("\t", "    ").split("\n"):
        line = line.rstrip()
        if not line:
            if blank or not out:
                continue
            blank = True
        else:
            blank = False
        out.append(line if len(line) <= width else line[:width - 1] + "…")
        if len(out) == lines:
            break
    return "\n".join(out).strip("\n") or "(only spaces and line breaks)"
