"""What a finished text classification run shows: the test's accuracy and macro F1 beside the TF-IDF baseline's,
per class, the confusion matrix, and the test texts the model got wrong with the most confidence, with their words."""

from __future__ import annotations

import html

import numpy as np
import torch
import torch.nn as nn

from ..models import evaluating
from ..report import image_tag
from .base import Prepared, notes_block
from .report import Report

READ_AS = {"hashed": "hashed word 1-2-grams", "sentencepiece": "SentencePiece pieces",
           "wordpiece": "MiniLM's WordPiece tokens"}
SHOWN_MISTAKES = 12
SHOWN_CHARS = 400  # of a long text in the report


class TextClassReport(Report):
    overfit_remedies = "more texts, a smaller --width, or fewer --epochs"

    def test_results(self, run, model: nn.Module, data: Prepared, device: torch.device) -> dict:
        test = self.task.test_metrics(model, data.test, device) if len(data.test[0]) else {}
        baseline = self.task.baseline() if self.cfg.eval.baseline and test else None
        return {"test": test, "baseline": baseline}

    def logged_test(self, results: dict) -> dict:
        baseline = results["baseline"]
        test = results["test"]
        return {**{k: v for k, v in test.items() if k not in ("per_class", "confusion", "reliability")},
                "ece": test["reliability"]["ece"] if "reliability" in test else None,
                "baseline_accuracy": baseline["accuracy"] if baseline else None}

    def summary(self, results: dict) -> list[tuple[str, str]]:
        test, base, splits = results["test"], results["baseline"], results["splits"]
        sizes = f"train {splits['train']} / val {splits['val']} / test {splits['test']}"
        lines = [("data", f"{self.meta['source']}; {sizes}"),
                 self.model_line(results),
                 ("test", f"accuracy {test['accuracy']:.4f}  macro F1 {test['macro_f1']:.4f} on {test['texts']} texts")]
        if base:
            lines.append(("baseline", f"accuracy {base['accuracy']:.4f}  macro F1 {base['macro_f1']:.4f}  "
                                      f"({base['model']})"))
        return lines

    @staticmethod
    def describe_metrics(metrics: dict) -> list[str]:
        ece = f"  ECE {metrics['reliability']['ece']:.4f}" if "reliability" in metrics else ""
        lines = [f"accuracy {metrics['accuracy']:.4f}  macro F1 {metrics['macro_f1']:.4f}  loss {metrics['loss']:.4f}"
                 + ece,
                 f"{'class':<20} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}"]
        return lines + [f"{r['class'][:20]:<20} {r['precision']:>9.4f} {r['recall']:>9.4f} {r['f1']:>9.4f} "
                        f"{r['support']:>8}" for r in metrics["per_class"]]

    def report_sections(self, run, model: nn.Module, data: Prepared, results: dict, device) -> list[tuple[str, str]]:
        from ..report import plot_confusion, plot_history, plot_reliability, table

        out, test, base = run.report_dir, results["test"], results["baseline"]
        rows = [{"model": f"{self.cfg.model.name} (network)", "accuracy": test["accuracy"],
                 "macro F1": test["macro_f1"], "parameters": results["parameters"]}]
        if base:
            rows.append({"model": base["model"], "accuracy": base["accuracy"], "macro F1": base["macro_f1"],
                         "parameters": ""})
        curves = plot_history(run.metrics(), out / "curves.png", "accuracy")
        confusion = plot_confusion(np.array(test["confusion"]), self.meta["classes"], out / "confusion.png")
        encoder = self.meta["encoder"]
        sections = [("Result on the test split", table(rows) + self.notes_html(results)),
                    ("Data", f"<p>{html.escape(self.meta['source'])}; texts read as "
                             f"{READ_AS.get(encoder['kind'], encoder['kind'])} "
                             f"({encoder['vocab_size']:,} ids, at most {encoder['max_len']} per text)</p>"
                             + table([results["splits"]]) + notes_block(data.notes)),
                    ("Training curves", image_tag(curves, "loss and accuracy per epoch")),
                    ("Confusion matrix", "<p>Rows are true classes, columns predictions; the diagonal is right.</p>"
                     + image_tag(confusion, "confusion matrix")),
                    ("Per class", table(test["per_class"])),
                    ("Calibration", "<p>Can its confidence be trusted? The test texts grouped by how sure the model "
                     "was; a calibrated model's bars follow the diagonal (of the texts it gives 80 %, 8 in 10 are "
                     "right). Bars below the diagonal: over-confident. The expected calibration error (ECE) is the "
                     f"mean gap: {test['reliability']['ece']:.3f}.</p>"
                     + image_tag(plot_reliability(test["reliability"], out / "reliability.png"), "reliability"))]
        mistakes = self.mistakes_section(model, data.test, device)
        if mistakes:
            sections.append(("Most confident mistakes", mistakes))
        return sections

    def mistakes_section(self, model: nn.Module, test: tuple, device) -> str:
        """The test texts the model got wrong with the most confidence: a mislabelled text, sarcasm or a shortcut
        word is often the reason, and reading them says which."""
        x, y = test
        texts = self.task.texts.get("test") or []
        if len(x) == 0 or len(texts) != len(x):
            return ""
        probs = self.task.probabilities(model, x, device)
        wrong = torch.nonzero(probs.argmax(1) != y).flatten()
        if len(wrong) == 0:
            return ""
        wrong = wrong[probs[wrong].max(1).values.argsort(descending=True)][:SHOWN_MISTAKES]
        classes, said = self.meta["classes"], probs[wrong].argmax(1)
        marked = self.highlighted(model, x[wrong], said, [texts[i] for i in wrong.tolist()], device)
        rows = [f"<tr><td>{words}</td><td>{html.escape(classes[int(y[i])])}</td>"
                f"<td>{html.escape(classes[int(k)])} ({float(probs[i, k]):.2f})</td></tr>"
                for i, k, words in zip(wrong.tolist(), said.tolist(), marked)]
        return ("<p>The test texts it got wrong with the most confidence, each token coloured by its share in what it "
                "said (Integrated Gradients): <span style='background:#f4a582'>for</span> it, <span "
                "style='background:#92c5de'>against</span> it. A mislabelled text, sarcasm or a shortcut word is "
                "often the reason.</p><table><thead><tr><th>text</th><th>label</th><th>said</th></tr></thead><tbody>"
                + "".join(rows) + "</tbody></table>")

    def highlighted(self, model: nn.Module, ids: torch.Tensor, said: torch.Tensor, texts: list[str], device) -> list:
        """Each text's tokens as HTML, coloured by their share in the class it was given."""
        from ..trust.text_attributions import token_attributions
        from .textclass import trimmed
        from .textclass_face import encoder_of

        ids, encoder, out = trimmed(ids), encoder_of(self.meta), []
        with evaluating(model):
            shares = token_attributions(model, ids.to(device), said.to(device), unknown=encoder.unk_id).cpu().numpy()
        for row, text in enumerate(texts):
            tokens = encoder.pieces(text)[:ids.shape[1]]
            top = max(1e-9, float(np.abs(shares[row, :len(tokens)]).max(initial=0.0)))
            out.append(" ".join(marked_token(t, float(v) / top) for t, v in zip(tokens, shares[row])))
        return out


def marked_token(token: str, share: float) -> str:
    """A token on a background as strong as its share (-1..1 of the text's largest): red for, blue against."""
    colour = "244,165,130" if share > 0 else "146,197,222"
    return (f"<span title='{share:+.2f}' style='background:rgba({colour},{min(1.0, abs(share)):.2f})'>"
            f"{html.escape(token)}</span>")
