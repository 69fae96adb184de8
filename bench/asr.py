"""Speech recognition benchmark: deepworks' asr task on fsdd-strings (spoken digit strings from FSDD) against a plain
PyTorch BiGRU-CTC loop and an audio classifier over an energy segmentation, and how fast a recogniser transcribes.

    python bench/asr.py                       # everything (about 45 minutes on 2 cores)
    python bench/asr.py --only speakers,loop

Sections:
  fsdd      `deepworks train --task asr --data fsdd-strings` (FSDD's official split: the test strings made of its
            test recordings) for --budget seconds of training (default 600): test WER and CER (the decoding chosen
            on validation, and greedy), epochs, seconds. Goal: WER <= 3 % within 10 minutes.
  baseline  what a user could do without a recogniser: `deepworks train --task audio --data fsdd` (a digit
            classifier, FSDD's own split), applied to each test string's words found by their energy (10 ms frames
            over a twentieth of the loudest, gaps under 60 ms closed, pieces under 80 ms dropped). Its WER.
  speakers  `--split speaker`: each of FSDD's six speakers held out in turn, deepworks trained for --fold-budget
            seconds (default 120) per speaker, and a plain PyTorch loop of the same model (AdamW, no augmentation,
            greedy decoding) given the seconds deepworks trained, side by side. Goal: mean WER <= 20 %, and never
            worse than the plain loop.
  loop      the training loop against the plain loop, the same model, data (600 strings) and work (no augmentation,
            greedy validation after each epoch), alternated in this one process, 3 rounds of one epoch each.
            Goal: >= 1.0x.
  rtf       the real-time factor of the fsdd recogniser (seconds of computing per second of audio; lower is faster)
            on a 60 s recording of joined test strings, through `Trained` in torch and through its ONNX export in
            ONNX Runtime. Goal: <= 0.05 (a minute of audio in 3 s).
Writes bench/results/asr.json.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, bench_args, measure_and_print  # noqa: E402

import deepworks as dw  # noqa: E402

torch.set_num_threads(2)
RUNS = tempfile.mkdtemp(prefix="deepworks-bench-asr-")
SAMPLES_PER_S = 54  # utterances a second fsdd-strings trains at on 2 cores (12 epochs of 1,350 in 298 s): sizes epochs
BUDGET = {"seconds": 600, "fold": 120}


def fsdd() -> dict:
    epochs = max(1, int(BUDGET["seconds"] * SAMPLES_PER_S / 1350))  # 1,350 training strings an epoch
    t0 = time.perf_counter()
    trained = dw.train(task="asr", data="fsdd-strings", data_dir=str(SHARED_DATA), epochs=epochs, runs_dir=RUNS,
                       name="fsdd", progress=False)
    test = trained.results["test"]
    return {"epochs": epochs, "train_seconds": trained.results["fit"]["train_seconds"],
            "wall_seconds": round(time.perf_counter() - t0, 1), "test_wer": round(test["wer"], 4),
            "test_cer": round(test["cer"], 4), "greedy_test_wer": round(test["greedy_wer"], 4),
            "decoding": test["decoding"], "utterances": test["utterances"],
            "per_speaker": test.get("per_speaker"), "run": str(trained.run.path), "goal": "WER <= 0.03 within 600 s"}


def rtf() -> dict:
    from deepworks.data.speech import load_fsdd_strings
    from deepworks.serving.models import Served

    import json

    from common import RESULTS

    earlier = json.loads((RESULTS / "asr.json").read_text()).get("fsdd", {}) if (RESULTS / "asr.json").exists() else {}
    run = Path(earlier.get("run") or Path(RUNS) / "fsdd")
    if not (run / "model.json").exists():
        run = Path(fsdd()["run"])
    strings = load_fsdd_strings(SHARED_DATA, 7, 0, 60)
    audio = np.concatenate(strings.waves)
    audio = audio[:60 * strings.rate] if len(audio) >= 60 * strings.rate else audio
    seconds = len(audio) / strings.rate
    out = {"audio_seconds": round(seconds, 1)}
    for runtime in ("torch", "onnx"):
        served = Served("asr", run, runtime)
        served.face.infer(served.model, [("warm-up", audio[:strings.rate * 5])], torch.device("cpu"), {})
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            served.face.infer(served.model, [("minute", audio)], torch.device("cpu"), {})
            best = min(best, time.perf_counter() - t0)
        out[f"{runtime}_rtf"] = round(best / seconds, 4)
    out["goal"] = "real-time factor <= 0.05"
    return out


def plain_loop(task, data, seconds: float | None = None, epochs: int | None = None) -> tuple[float, int, object]:
    """What a PyTorch user writes: AdamW, a shuffling DataLoader, CTC loss, clipped gradients, greedy validation after
    each epoch; until `seconds` pass (checked after each batch) or `epochs` end. (seconds, epochs, model)."""
    import torch.nn.functional as F

    from deepworks.tasks.asr import collate

    torch.manual_seed(0)
    model = task.build_model()
    opt = torch.optim.AdamW(model.parameters(), lr=0.002, weight_decay=0.01)
    loader = torch.utils.data.DataLoader(data.train[0], batch_size=16, shuffle=True, collate_fn=collate)
    t0, done = time.perf_counter(), 0
    out_of_time = lambda: seconds is not None and time.perf_counter() - t0 >= seconds  # noqa: E731
    while (epochs is None or done < epochs) and not out_of_time():
        model.train()
        for waves, lengths, targets, target_lengths in loader:
            log_probs, steps = model(waves, lengths)
            loss = F.ctc_loss(log_probs.transpose(0, 1), targets, steps, target_lengths, zero_infinity=True)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            if out_of_time():
                break
        done += 1
        task.evaluate(model, data.val, torch.device("cpu"))
    return time.perf_counter() - t0, done, model


def fsdd_task(**settings):
    from deepworks.config import Config
    from deepworks.registry import get_task

    cfg = Config.from_dict({"task": "asr", "data": {"source": "fsdd-strings", "data_dir": str(SHARED_DATA),
                                                    **settings.pop("data", {})}, **settings})
    task = get_task("asr")(cfg)
    return cfg, task, task.prepare(progress=False)


def speakers() -> dict:
    """Each speaker held out: deepworks (`--split speaker`, --fold-budget s a speaker) and the plain loop given the
    seconds deepworks trained."""
    epochs = max(1, round(BUDGET["fold"] * SAMPLES_PER_S / 1450))  # about 1,450 training strings a fold
    folds = dw.train(task="asr", data="fsdd-strings", data_dir=str(SHARED_DATA), split="speaker", epochs=epochs,
                     runs_dir=RUNS, name="speakers", progress=False)
    rows = []
    for row, trained in zip(folds.summary["speakers"], folds.runs):
        _, task, data = fsdd_task(data={"split": f"speaker:{row['speaker']}"})
        given = trained.results["fit"]["train_seconds"]
        seconds, plain_epochs, model = plain_loop(task, data, seconds=given)
        plain = task.evaluate(model, data.test, torch.device("cpu"))
        rows.append({"speaker": row["speaker"], "utterances": row["utterances"], "deepworks_wer": row["wer"],
                     "deepworks_greedy_wer": round(trained.results["test"]["greedy_wer"], 4),
                     "deepworks_epochs": row["epochs"], "deepworks_train_seconds": round(given, 1),
                     "plain_wer": round(plain["wer"], 4), "plain_epochs": plain_epochs,
                     "plain_seconds": round(seconds, 1)})
    mean = lambda k: round(float(np.mean([r[k] for r in rows])), 4)  # noqa: E731
    return {"command": "deepworks train --task asr --data fsdd-strings --split speaker", "per_speaker": rows,
            "mean_wer": mean("deepworks_wer"), "plain_mean_wer": mean("plain_wer"),
            "never_worse_than_plain": all(r["deepworks_wer"] <= r["plain_wer"] for r in rows),
            "goal": "mean WER <= 0.20, and never worse than the plain loop given the same seconds",
            "goal_met": bool(mean("deepworks_wer") <= 0.20 and all(r["deepworks_wer"] <= r["plain_wer"] for r in rows))}


def loop(rounds: int = 3, strings: int = 600) -> dict:
    """deepworks' loop (its checkpoints and metrics log included) against the plain loop, the same work."""
    import statistics

    from common import timed_fit

    cfg, task, data = fsdd_task(data={"augment": "none"}, train={"schedule": "constant", "monitor": "val_loss"})
    data.train = (type(data.train[0])(*(getattr(data.train[0], k)[:strings] for k in ("waves", "targets", "texts"))),
                  data.train[1][:strings])
    ours, plain = [], []
    for _ in range(rounds):
        ours.append(timed_fit(task, data, cfg, 1, validate=True)[0])
        plain.append(plain_loop(task, data, epochs=1)[0])
    ours_s, plain_s = statistics.median(ours), statistics.median(plain)
    return {"strings": strings, "rounds": rounds, "deepworks_seconds": [round(s, 2) for s in ours],
            "plain_seconds": [round(s, 2) for s in plain], "loop_speed_ratio": round(plain_s / ours_s, 3),
            "note": "one epoch each, greedy validation of the validation strings after it; no augmentation on either "
                    "side (the plain loop has none); deepworks also writes a checkpoint and the metrics log",
            "goal": "ratio >= 1.0", "goal_met": bool(plain_s / ours_s >= 1.0)}


def baseline() -> dict:
    """The digit classifier over an energy segmentation (deepworks/tasks/asr_baseline.py, which every fsdd-strings
    run also reports beside its result) on the fsdd section's test strings."""
    from deepworks.data.speech import load_fsdd_strings
    from deepworks.tasks.asr import Utterances
    from deepworks.tasks.asr_baseline import digit_strings_baseline

    strings = load_fsdd_strings(SHARED_DATA, 0)  # the same strings the fsdd section tests on
    test = strings.split["test"]
    utterances = Utterances([strings.waves[i] for i in test], [], [strings.texts[i] for i in test])
    found = digit_strings_baseline(SHARED_DATA, 0, utterances, strings.rate)
    return {"method": found["model"], "classifier_test_accuracy": found["classifier_accuracy"],
            "test_wer": found["wer"], "test_cer": found["cer"], "utterances": len(test)}


def main() -> None:
    import argparse  # noqa: F401  (bench_args builds the parser; --fold-budget is read here)

    sections = {"fsdd": fsdd, "baseline": baseline, "speakers": speakers, "loop": loop, "rtf": rtf}
    fold = [a for a in sys.argv if a.startswith("--fold-budget=")]
    for a in fold:
        sys.argv.remove(a)
    BUDGET["fold"] = int(fold[0].split("=", 1)[1]) if fold else 120
    args = bench_args(__doc__, sections, SHARED_DATA / "fsdd", budget_s=600)
    BUDGET["seconds"] = args.budget
    measure_and_print("asr", sections, args.only)


if __name__ == "__main__":
    main()
