"""What a finished sound classification run shows: the test's accuracy per class and per speaker, the confusion
matrix, and the clips the model misheard with the most confidence, each with its saliency and a player."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..report import image_tag
from .base import Prepared, notes_block
from .report import Report


class AudioReport(Report):
    def logged_test(self, results: dict) -> dict:
        return {k: v for k, v in results["test"].items() if k not in ("per_class", "confusion", "per_speaker")}

    def summary(self, results: dict) -> list[tuple[str, str]]:
        test, splits = results["test"], results["splits"]
        lines = [("data", f"{self.meta['source']}; train {splits['train']} / val {splits['val']} / test {splits['test']}"),
                 self.model_line(results), ("test", f"accuracy {test['accuracy']:.4f} on {test['clips']} clips")]
        if test.get("per_speaker"):
            lines.append(("speakers", "  ".join(f"{s['speaker']} {s['accuracy']:.3f}" for s in test["per_speaker"])))
        return lines

    @staticmethod
    def describe_metrics(metrics: dict) -> list[str]:
        lines = [f"accuracy {metrics['accuracy']:.4f}  loss {metrics['loss']:.4f}",
                 f"{'class':<20} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}"]
        lines += [f"{r['class'][:20]:<20} {r['precision']:>9.4f} {r['recall']:>9.4f} {r['f1']:>9.4f} {r['support']:>8}"
                  for r in metrics["per_class"]]
        lines += [f"speaker {r['speaker']:<12} accuracy {r['accuracy']:.4f} ({r['clips']} clips)"
                  for r in metrics.get("per_speaker", [])]
        return lines

    def report_sections(self, run, model: nn.Module, data: Prepared, results: dict, device) -> list[tuple[str, str]]:
        from ..report import plot_confusion, plot_history, table

        out, test = run.report_dir, results["test"]
        curves = plot_history(run.metrics(), out / "curves.png", "accuracy")
        confusion = plot_confusion(np.array(test["confusion"]), self.meta["classes"], out / "confusion.png")
        sections = [("Result on the test split", table([{"accuracy": test["accuracy"], "clips": test["clips"],
                                                         "parameters": results["parameters"]}])
                     + self.notes_html(results) + notes_block(data.notes)),
                    ("Data", f"<p>{html.escape(self.meta['source'])}; {self.meta['rate']:,} Hz, clips of "
                             f"{self.meta['length'] / self.meta['rate']:g} s</p>" + table([results["splits"]])),
                    ("Training curves", image_tag(curves, "loss and accuracy per epoch")),
                    ("Confusion matrix", image_tag(confusion, "confusion matrix")),
                    ("Per class", table(test["per_class"]))]
        if test.get("per_speaker"):
            held = self.meta.get("held_out")
            said = (f"{held} was left out of training: this is how well the model hears a voice it has never heard."
                    if held else "With the official split every test speaker was also heard in training.")
            sections.append(("Per speaker", f"<p>How well each speaker's test clips are recognised. {html.escape(said)}"
                             "</p>" + table(test["per_speaker"])))
        mistakes = self.mistakes_section(model, data.test, out, device)
        if mistakes:
            sections.append(("Misheard clips", mistakes))
        return sections

    def mistakes_section(self, model: nn.Module, test: tuple, out: Path, device, shown: int = 6) -> str:
        """The most confidently misheard test clips: each one's spectrogram beside its saliency (how much each
        time-frequency cell moved the class the model said: the gradient's size), and a player to hear it."""
        from ..data.audio import write_wav
        from ..models import evaluating
        from ..report import pyplot, save_figure

        x, y = test
        probs = self.task.probabilities(model, x, device)
        wrong = torch.nonzero(probs.argmax(1) != y).flatten()
        if len(wrong) == 0:
            return ""
        wrong = wrong[probs[wrong].max(1).values.argsort(descending=True)][:shown]
        # cuDNN's recurrent layers backpropagate only in training mode: without cuDNN, a GRU head's saliency works too
        with evaluating(model), torch.backends.cudnn.flags(enabled=False):
            features = model.features(x[wrong].to(device)).detach().requires_grad_(True)
            said = probs[wrong].argmax(1)
            model.classifier(features).gather(1, said.to(device)[:, None]).sum().backward()
        model.zero_grad(set_to_none=True)
        saliency = features.grad.abs().cpu()
        classes, names = self.meta["classes"], self.task.names.get("test") or [f"clip {i}" for i in range(len(x))]
        plt = pyplot()
        fig, axes = plt.subplots(len(wrong), 2, figsize=(8, 1.9 * len(wrong)), squeeze=False)
        players = []
        for row, (i, k) in enumerate(zip(wrong.tolist(), said.tolist())):
            title = f"{Path(names[i]).name}: {classes[int(y[i])]}, heard as {classes[k]} ({float(probs[i, k]):.2f})"
            axes[row, 0].imshow(features[row].detach().cpu(), origin="lower", aspect="auto", cmap="magma")
            axes[row, 0].set_title(title, fontsize=8)
            axes[row, 1].imshow(saliency[row], origin="lower", aspect="auto", cmap="viridis")
            axes[row, 1].set_title("saliency: what made it say so", fontsize=8)
            for ax in axes[row]:
                ax.set_xlabel("frame (10 ms)", fontsize=7)
                ax.set_ylabel("band", fontsize=7)
                ax.tick_params(labelsize=6)
            wav = out / f"misheard-{row}.wav"
            write_wav(wav, x[i].numpy(), self.meta["rate"])
            players.append(f"<li>{html.escape(title)} <audio controls preload='none' src='{wav.name}'></audio></li>")
        save_figure(fig, out / "misheard.png")
        return ("<p>The test clips the model got wrong with the most confidence. Left: the features it took (log-mel "
                "bands over time); right: where they moved its answer most. Listen to them: a clipped word, a noise "
                "or a mislabelled file is often the reason.</p>" + image_tag(out / "misheard.png", "misheard clips")
                + "<ul>" + "".join(players) + "</ul>")
