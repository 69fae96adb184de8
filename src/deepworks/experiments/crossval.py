"""Leave one speaker out: does a model work for a voice it has never heard?

    deepworks train --task audio --data fsdd --split speaker
    dw.train(task="audio", data="fsdd", split="speaker")

A recogniser tested on new recordings of the speakers it was trained on (FSDD's official split) says little about
the next speaker. `--split speaker` trains one ordinary run per speaker, each with that speaker's clips as its test
set and the other speakers' as its training and validation data (`--split speaker:NAME`), and scores the model on
the speaker it never heard. RUNS_DIR/NAME/ holds the runs (fold-SPEAKER/), summary.json and report/index.html: the
accuracy per speaker, their mean and the worst. The same command run again skips the finished runs and resumes an
interrupted one from its checkpoint.
"""

from __future__ import annotations

import dataclasses
import html
import json
import statistics
import sys
from pathlib import Path

from ..config import Config
from ..errors import DataError
from ..report import image_tag, pyplot, save_figure, table, write_page
from ..run import Run, atomic_write_text, check_same_command, hold_folder


@dataclasses.dataclass
class Folds:
    """What `train(split='speaker')` returns: the folder, the summary (summary.json) and each speaker's run."""
    folder: Path
    summary: dict
    runs: list


def leave_each_speaker_out(cfg: Config, task, progress, callbacks) -> Folds:
    """One run per speaker the task's data knows (speakers_of_data, which a task whose card declares data.split defines), from the same settings but --split
    speaker:NAME."""
    from ..api.training import default_run_name, train_or_continue

    speakers = task.speakers_of_data()
    if len(speakers) < 2:
        raise DataError(f"--split speaker leaves each speaker out in turn, and the data has {len(speakers)} "
                        f"speaker(s): {', '.join(speakers) or 'none'}. Expected at least two (a CSV of "
                        f"path,label,speaker says who speaks each clip).")
    folder = Path(cfg.runs_dir) / Run.safe_name(cfg.name or f"{default_run_name(cfg)}-by-speaker")
    (folder / "runs").mkdir(parents=True, exist_ok=True)
    runs = []
    with hold_folder(folder, f"The speaker runs in '{folder}' are being trained by another process{{pid}}. Wait "
                             f"for it."):
        request = json.loads(json.dumps({"settings": cfg.to_dict(), "speakers": speakers}, default=str))
        check_same_command(folder / "speakers.json", request, "a leave-one-speaker-out comparison")
        atomic_write_text(folder / "speakers.json", json.dumps(request, indent=1, default=str))
        fold_config = folder / "fold-settings.yaml"  # not config.yaml: the folder is not a run itself
        cfg.save(fold_config)
        for n, speaker in enumerate(speakers, 1):
            if progress is not False:
                print(f"speaker {n}/{len(speakers)}: {speaker} left out", file=sys.stderr, flush=True)
            runs.append(train_or_continue(folder / "runs" / Run.safe_name(f"fold-{speaker}"), callbacks or [],
                                          progress, config=fold_config, **{"data.split": f"speaker:{speaker}"}))
        summary = summarise(folder, speakers, runs)
    return Folds(folder, summary, runs)


def summarise(folder: Path, speakers: list[str], runs: list) -> dict:
    """summary.json: each speaker's headline test metric (accuracy for sounds, WER for speech), their mean, the
    worst speaker and the spread."""
    task = runs[0].task
    metric, (counted, _) = task.headline, task.counted
    rows = [{"speaker": s, metric: round(r.results["test"][metric], 4), counted: r.results["test"][counted],
             "epochs": r.results["fit"]["epochs"], "seconds": round(r.results["fit"]["wall_seconds"], 1),
             "run": str(r.run.path)} for s, r in zip(speakers, runs)]
    scores = [r[metric] for r in rows]
    lower_is_better = task.monitor_mode(metric) == "min"
    worst = (max if lower_is_better else min)(rows, key=lambda r: r[metric])
    summary = {"folder": str(folder), "split": "speaker", "metric": metric, "counted": counted, "speakers": rows,
               f"mean_{metric}": round(statistics.fmean(scores), 4),
               "worst": {"speaker": worst["speaker"], metric: worst[metric]},
               "spread (sd)": round(statistics.stdev(scores), 4) if len(scores) > 1 else 0.0}
    atomic_write_text(folder / "summary.json", json.dumps(summary, indent=1))
    summary["report"] = str(write_report(folder, summary))
    return summary


METRIC_WORDS = {"accuracy": ("accuracy", "{:.1%}"), "wer": ("word error rate", "{:.1%}")}


def write_report(folder: Path, summary: dict) -> Path:
    out = folder / "report"
    out.mkdir(exist_ok=True)
    rows, metric = summary["speakers"], summary["metric"]
    mean, worst = summary[f"mean_{metric}"], summary["worst"]
    words = METRIC_WORDS.get(metric, (metric, "{:.3f}"))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(rows), 3.2))
    ax.bar([r["speaker"] for r in rows], [r[metric] for r in rows], color="#4c72b0")
    ax.axhline(mean, color="#c44e52", linestyle="--", label=f"mean {mean:.3f}")
    ax.set_ylim(0, max(1.0, max(r[metric] for r in rows)))
    ax.set_ylabel(f"{words[0]} on the unheard speaker")
    ax.legend(loc="lower right")
    ax.tick_params(axis="x", rotation=30)
    save_figure(fig, out / "speakers.png")
    shown = [{**{k: v for k, v in r.items() if k != "run"}, "run": Path(r["run"]).name} for r in rows]
    links = " ".join(f'<a href="../runs/{html.escape(Path(r["run"]).name)}/report/index.html">'
                     f'{html.escape(r["speaker"])}</a>' for r in rows)
    text = (f"<p>Each speaker was left out of training in turn and the model tested on their "
            f"{html.escape(summary['counted'])} alone: on a voice it had never heard, its {words[0]} was "
            f"{words[1].format(mean)} on average, and {words[1].format(worst[metric])} for "
            f"{html.escape(worst['speaker'])}, the hardest to understand. A few speakers do not make a recogniser "
            f"for everyone: record more voices, and those you will meet, before you trust it with new ones.</p>")
    sections = [(f"{words[0].capitalize()} per unheard speaker", text + image_tag(out / "speakers.png",
                                                                                 f"{words[0]} per speaker")
                 + table(shown) + f"<p>Each run's own report: {links}</p>")]
    return write_page(out, "Leave one speaker out", sections)
