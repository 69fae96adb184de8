"""What a finished speech recognition run shows: the test's word and character error rates, per speaker where the
source knows them, the curves, and the worst test utterances with an audio player and their reference and
transcript aligned word by word, the errors marked."""

from __future__ import annotations

import html

import numpy as np
import torch
import torch.nn as nn

from ..report import image_tag
from .base import Prepared, notes_block
from .report import Report

SHOWN = 10  # worst utterances in the report


class ASRReport(Report):
    overfit_remedies = "more recordings, --dropout 0.3, a smaller --width, or fewer --epochs"

    def test_results(self, run, model: nn.Module, data: Prepared, device: torch.device) -> dict:
        utterances = data.test[0]
        if not len(utterances):
            return {"test": {}, "baseline": None}
        from .asr import error_rates

        loss, said = self.task.decoded(model, utterances, device)
        test = {"utterances": len(utterances), "loss": loss, **error_rates(utterances.texts, said)}
        speakers = utterances.speakers
        if speakers:
            test["per_speaker"] = per_speaker(utterances.texts, said, speakers)
        return {"test": test, "baseline": None, "transcripts": said}  # results.json keeps the test's transcripts

    def logged_test(self, results: dict) -> dict:
        return {k: v for k, v in results["test"].items() if isinstance(v, (int, float))}

    def summary(self, results: dict) -> list[tuple[str, str]]:
        test, splits = results["test"], results["splits"]
        return [("data", f"{self.meta['source']}; train {splits['train']} / val {splits['val']} / test "
                         f"{splits['test']}"),
                self.model_line(results),
                ("test", f"WER {test['wer']:.4f}  CER {test['cer']:.4f} on {test['utterances']} utterances")]

    @staticmethod
    def describe_metrics(metrics: dict) -> list[str]:
        lines = [f"WER {metrics['wer']:.4f}  CER {metrics['cer']:.4f}  loss {metrics['loss']:.4f}"]
        return lines + [f"  speaker {r['speaker']:<12} WER {r['wer']:.4f}  CER {r['cer']:.4f}  ({r['utterances']})"
                        for r in metrics.get("per_speaker", [])]

    def report_sections(self, run, model: nn.Module, data: Prepared, results: dict, device) -> list[tuple[str, str]]:
        from ..report import plot_history, table

        test, out = results["test"], run.report_dir
        curves = plot_history(run.metrics(), out / "curves.png", "wer")
        sections = [("Result on the test split",
                     table([{"WER": test["wer"], "CER": test["cer"], "utterances": test["utterances"],
                             "parameters": results["parameters"]}]) + self.notes_html(results)),
                    ("Data", f"<p>{html.escape(self.meta['source'])}; {self.meta['rate']:,} Hz; alphabet "
                             f"<code>{html.escape(''.join(self.meta['alphabet']))}</code></p>"
                             + table([results["splits"]]) + notes_block(data.notes)),
                    ("Training curves", image_tag(curves, "loss and WER per epoch"))]
        if test.get("per_speaker"):
            sections.append(("Per speaker", table(test["per_speaker"])))
        said = results.get("transcripts")
        if said:
            sections.append(("The worst test utterances", self.worst(data.test[0], said, out)))
        return sections

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
            rows.append(f"<tr><td><audio controls preload='none' src='{name}'></audio></td>"
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
