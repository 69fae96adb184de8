"""Translation's report: the test's loss, perplexity, BLEU and chrF (and BLEU and chrF on the validation pairs),
sample translations, where attention looked, and the summary the CLI prints."""

from __future__ import annotations

import html
from pathlib import Path

import torch
import torch.nn as nn

from ..report import image_tag, plot_history, pyplot, save_figure, table
from .base import Prepared, notes_block
from .report import Report


class TranslateReport(Report):
    overfit_remedies = "--dropout 0.3, --label-smoothing 0.1, --tie-weights, or more pairs"

    def test_results(self, run, model: nn.Module, data: Prepared, device: torch.device) -> dict:
        task, beam = self.task, self.cfg.eval.beam
        test = {**task.evaluate(model, data.test, device), **task.scores(model, "test", device, beam)}
        val = task.scores(model, "val", device, beam) if len(task.sources["val"]) else None
        samples = [{"source": r["source"], "translation": r["translation"], "reference": ref}
                   for r, ref in zip(test.pop("translations")[:12], task.references["test"])]
        if val:
            val.pop("translations")
        return {"test": test, "baseline": None, "val": val,
                "vocab": {"source": len(self.meta["src_vocab"]), "target": len(self.meta["tgt_vocab"])},
                "samples": samples}

    def logged_test(self, results: dict) -> dict:
        return {k: v for k, v in results["test"].items() if k != "bleu_signature"}

    def report_sections(self, run, model: nn.Module, data: Prepared, results: dict, device) -> list[tuple[str, str]]:
        out = run.report_dir
        curves = plot_history(run.metrics(), out / "curves.png", "perplexity", "accuracy")
        sentences = self.task.sources["test"][:3]
        alignments = [plot_alignment(r, out / f"alignment-{i + 1}.png")
                      for i, r in enumerate(self.task.make_face().translate(model, sentences, device))]
        test, val, fit = results["test"], results["val"], results["fit"]
        rows = [{"split": "test", "BLEU": test["bleu"], "chrF": test["chrf"], "loss": test["loss"],
                 "perplexity": test["perplexity"], "pairs": test["pairs"]}]
        if val:
            rows.append({"split": "validation", "BLEU": val["bleu"], "chrF": val["chrf"], "loss": "", "perplexity": "",
                         "pairs": val["pairs"]})
        notes = notes_block(data.notes)
        return [
            ("Result", table(rows) + self.notes_html(results) + f"<p>{self.describe_model()}, "
             f"{results['parameters']:,} parameters; {fit['epochs']} epochs; decoding "
             f"{'greedy' if test['beam'] == 1 else 'beam ' + str(test['beam'])}. BLEU: <code>"
             f"{html.escape(test['bleu_signature'])}</code>, lowercased.</p>"),
            ("Sample translations", table(results["samples"])),
            ("Where attention looked", "<p>Each row is a word the model wrote; the bright cells are the source words it "
             "attended to while writing it.</p>" + "".join(image_tag(a, "attention alignment") for a in alignments)),
            ("Training curves", image_tag(curves, "loss, perplexity and word accuracy per epoch")),
            ("Data", f"<p>{html.escape(self.meta['source'])}</p>" + table([results["splits"]])
             + table([results["vocab"]]) + notes),
        ]

    # --- what the CLI prints ----------------------------------------------------------------
    def summary(self, results: dict) -> list[tuple[str, str]]:
        test, splits = results["test"], results["splits"]
        lines = [
            ("data", f"{self.meta['source']}; train {splits['train']:,} / val {splits['val']:,} / test {splits['test']:,}"),
            self.model_line(results),
            ("test", f"BLEU {test['bleu']:.2f}  chrF {test['chrf']:.2f}  loss {test['loss']:.4f}  "
                     f"perplexity {test['perplexity']:.2f}"),
        ]
        for s in results["samples"][:3]:
            lines.append(("sample", f"{s['source']}  ->  {s['translation']}   (reference: {s['reference']})"))
        return lines

    def describe_model(self) -> str:
        m = self.cfg.model
        return "transformer" if m.name == "transformer" else f"{m.name} + {m.attention} attention"

    @staticmethod
    def describe_metrics(metrics: dict) -> list[str]:
        return [f"loss {metrics['loss']:.4f}  perplexity {metrics['perplexity']:.2f}"]


def plot_alignment(result: dict, path: Path) -> Path:
    """The attention weights of one translation as a heatmap: target words down, source words across."""
    plt = pyplot()
    attn, src, tgt = result["attention"], result["source_tokens"], result["tokens"] + ["</s>"]
    attn = attn[:len(tgt), :len(src)]
    tgt = tgt[:len(attn)]  # no </s> row when decoding stopped at the length limit
    fig, ax = plt.subplots(figsize=(max(4, 0.45 * len(src) + 2), max(3, 0.4 * len(tgt) + 1.5)))
    ax.imshow(attn, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(src)), src, rotation=60, ha="right")
    ax.set_yticks(range(len(tgt)), tgt)
    ax.set_title(result["translation"][:60], fontsize=9)
    save_figure(fig, path)
    return path
