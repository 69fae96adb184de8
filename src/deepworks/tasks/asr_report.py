"""What a finished speech recognition run shows: the test's word and character error rates, per speaker where the
source knows them, the curves, the decodings tried on validation, the worst test utterances with an audio player and
their reference and transcript aligned word by word, the errors marked, and where in the worst one's spectrogram CTC
placed each letter."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..report import image_tag, table
from .base import Prepared, notes_block
from .report import Report

SHOWN = 10  # worst utterances in the report


class ASRReport(Report):
    overfit_remedies = "more recordings, --dropout 0.3, a smaller --width, or fewer --epochs"

    def test_results(self, run, model: nn.Module, data: Prepared, device: torch.device) -> dict:
        if not len(data.test[0]):
            return {"test": {}, "baseline": None}
        test, said = self.task.tested(model, data.test[0], device)
        return {"test": test, "baseline": self.baseline(data), "transcripts": said}  # results.json keeps them

    def baseline(self, data: Prepared) -> dict | None:
        """For fsdd-strings on its own split: a digit classifier over an energy segmentation (asr_baseline.py)."""
        d = self.cfg.data
        if not (self.cfg.eval.baseline and d.source == "fsdd-strings" and d.split == "source"):
            return None
        from ..data.builtin import default_data_dir
        from .asr_baseline import digit_strings_baseline

        where = Path(d.data_dir) if d.data_dir else default_data_dir()
        return digit_strings_baseline(where, self.cfg.seed, data.test[0], self.meta["rate"])

    def logged_test(self, results: dict) -> dict:
        base = results.get("baseline") or {}
        return {**{k: v for k, v in results["test"].items() if isinstance(v, (int, float))},
                **({"baseline_wer": base["wer"]} if base else {})}

    def summary(self, results: dict) -> list[tuple[str, str]]:
        test, splits = results["test"], results["splits"]
        return [("data", f"{self.meta['source']}; train {splits['train']} / val {splits['val']} / test "
                         f"{splits['test']}"),
                self.model_line(results),
                ("test", f"WER {test['wer']:.4f}  CER {test['cer']:.4f} on {test['utterances']} utterances")] + [
                ("baseline", f"WER {base['wer']:.4f}  CER {base['cer']:.4f}  ({base['model']})")
                for base in [results.get("baseline")] if base]

    @staticmethod
    def describe_metrics(metrics: dict) -> list[str]:
        lines = [f"WER {metrics['wer']:.4f}  CER {metrics['cer']:.4f}  loss {metrics['loss']:.4f}"]
        if "greedy_wer" in metrics:
            lines.append(f"decoding: {metrics['decoding']} (greedy WER {metrics['greedy_wer']:.4f})")
        return lines + [f"  speaker {r['speaker']:<12} WER {r['wer']:.4f}  CER {r['cer']:.4f}  ({r['utterances']})"
                        for r in metrics.get("per_speaker", [])]

    def report_sections(self, run, model: nn.Module, data: Prepared, results: dict, device) -> list[tuple[str, str]]:
        from ..report import plot_history

        test, out = results["test"], run.report_dir
        curves = plot_history(run.metrics(), out / "curves.png", "wer")
        sections = [("Result on the test split",
                     table([{"model": self.cfg.model.name, "WER": test["wer"], "CER": test["cer"],
                             "utterances": test["utterances"], "parameters": results["parameters"]}]
                           + [{"model": base["model"], "WER": base["wer"], "CER": base["cer"],
                               "utterances": test["utterances"], "parameters": ""}
                              for base in [results.get("baseline")] if base]) + self.notes_html(results)),
                    ("Data", f"<p>{html.escape(self.meta['source'])}; {self.meta['rate']:,} Hz; alphabet "
                             f"<code>{html.escape(''.join(self.meta['alphabet']))}</code></p>"
                             + table([results["splits"]]) + notes_block(data.notes)),
                    ("Training curves", image_tag(curves, "loss and WER per epoch"))]
        if test.get("per_speaker"):
            sections.append(("Per speaker", table(test["per_speaker"])))
        tried = (self.meta.get("decoding") or {}).get("val_wer")
        if tried:
            sections.append(("Decoding", self.decodings_html(tried, test)))
        said = results.get("transcripts")
        if said:
            sections.append(("The worst test utterances", self.worst(data.test[0], said, out)))
            picture = self.alignment(model, data.test[0], said, out / "alignment.png", device)
            sections.append(("Where the model heard each letter", picture))
        return sections

    def decodings_html(self, tried: dict, test: dict) -> str:
        chosen = str(self.meta["decoding"].get("chosen", ""))
        rows = [{"decoding": k + (" (chosen)" if k == chosen else ""), "validation WER": w} for k, w in tried.items()]
        return (f"<p>Each decoding was tried on the validation split and the lowest WER kept: {html.escape(chosen)}. "
                f"On the test split it gives WER {test['wer']:.4f}, greedy decoding {test['greedy_wer']:.4f}. The "
                f"beam search keeps the likeliest transcripts so far; the language model (LM, at its weight) is a "
                f"character 5-gram of the training transcripts, and the word list lets it spell only their "
                f"words. <code>deepworks transcribe RUN clip.wav --beam N --lm-weight W --words</code> chooses another."
                f"</p>" + table(rows))

    def alignment(self, model: nn.Module, utterances, said: list[str], path, device) -> str:
        """The log-mel spectrogram of the worst test utterance (or the first), each letter the model wrote drawn at
        the step CTC placed it: where in the sound it heard what."""
        import jiwer

        from ..models import evaluating
        from ..models.asr import SUBSAMPLING, greedy
        from ..report import pyplot, save_figure

        errors = [jiwer.process_words(t, s).wer if t.strip() else 0.0 for t, s in zip(utterances.texts, said)]
        i = int(np.argmax(errors))
        wave = torch.from_numpy(utterances.waves[i])[None].to(device)
        with torch.no_grad(), evaluating(model):
            features = model.features(wave)[0].float().cpu().numpy()
            log_probs, steps = model(wave, torch.tensor([wave.shape[1]], device=device))
        spelled = greedy(log_probs.cpu(), steps.cpu())[0]
        per_step = SUBSAMPLING
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(min(14, 2 + features.shape[1] / 40), 3))
        ax.imshow(features, origin="lower", aspect="auto", cmap="magma")
        for symbol, step in spelled:
            x = (step + 0.5) * per_step
            ax.axvline(x, color="white", linewidth=0.5, alpha=0.6)
            ax.text(x, features.shape[0] * 0.92, self.meta["alphabet"][symbol - 1].replace(" ", "␣"), color="white",
                    ha="center", fontsize=9)
        ax.set_xlabel("feature frame (10 ms)")
        ax.set_ylabel("mel band")
        ax.set_title(f"reference: {utterances.texts[i][:80]}".replace("$", r"\$"), fontsize=9, loc="left")
        save_figure(fig, path)
        return (f"<p>The log-mel spectrogram of {'the worst' if errors[i] else 'a'} test utterance, each letter of "
                f"its greedy transcript drawn where CTC placed it (a step is {per_step:g} frames).</p>"
                + image_tag(path, "CTC alignment over the spectrogram"))

    def worst(self, utterances, said: list[str], out) -> str:
        """The test utterances with the most word errors, each with a player and its words aligned."""
        import jiwer

        from ..data.audio import write_wav

        errors = [jiwer.process_words(t, s).wer if t.strip() else 0.0 for t, s in zip(utterances.texts, said)]
        rows = []
        for rank, i in enumerate(np.argsort(errors, kind="stable")[::-1][:SHOWN]):
            if errors[i] == 0:
                break
            name = f"utterance-{rank}.wav"
            write_wav(out / name, utterances.waves[i], self.meta["rate"])
            source = html.escape(Path(utterances.names[i]).name) if utterances.names else ""
            rows.append(f"<tr><td>{source}<br><audio controls preload='none' src='{name}'></audio></td>"
                        f"<td>{aligned(utterances.texts[i], said[i])}</td><td>{errors[i]:.2f}</td></tr>")
        if not rows:
            return "<p>Every test utterance was transcribed without a word error.</p>"
        return ("<p>Reference above, transcript below; <del>deleted</del>, <ins>inserted</ins> and "
                "<mark>substituted</mark> words marked.</p><table><thead><tr><th>listen</th><th>words</th>"
                "<th>WER</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def aligned(reference: str, said: str) -> str:
    """The reference and the transcript, word under word, with jiwer's alignment's errors marked."""
    import jiwer

    found = jiwer.process_words(reference, said)
    ref, hyp = found.references[0], found.hypotheses[0]
    top, bottom = [], []
    for chunk in found.alignments[0]:
        r, h = ref[chunk.ref_start_idx:chunk.ref_end_idx], hyp[chunk.hyp_start_idx:chunk.hyp_end_idx]
        tag = {"equal": None, "substitute": "mark", "delete": "del", "insert": "ins"}[chunk.type]
        top += [wrapped(w, "del" if tag == "del" else tag if tag == "mark" else None) for w in r]
        bottom += [wrapped(w, "ins" if tag == "ins" else tag if tag == "mark" else None) for w in h]
    return f"{' '.join(top)}<br>{' '.join(bottom) or '<i>(nothing)</i>'}"


def wrapped(word: str, tag: str | None) -> str:
    word = html.escape(word)
    return f"<{tag}>{word}</{tag}>" if tag else word


def per_speaker(texts: list[str], said: list[str], speakers: list[str]) -> list[dict]:
    import jiwer

    rows = []
    for speaker in sorted(set(speakers)):
        pick = [i for i, s in enumerate(speakers) if s == speaker and texts[i].strip()]
        if pick:
            refs, hyps = [texts[i] for i in pick], [said[i] for i in pick]
            rows.append({"speaker": speaker, "utterances": len(pick), "wer": round(float(jiwer.wer(refs, hyps)), 4),
                         "cer": round(float(jiwer.cer(refs, hyps)), 4)})
    return rows
