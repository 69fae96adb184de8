"""Speech recognition benchmark: deepworks' asr task on fsdd-strings (spoken digit strings from FSDD), and how fast a
trained recogniser transcribes.

    python bench/asr.py                       # everything (about 15 minutes on 2 cores)
    python bench/asr.py --only rtf

Sections:
  fsdd     `deepworks train --task asr --data fsdd-strings` (FSDD's official split: the test strings made of its test
           recordings) for --budget seconds of training (default 600): test WER and CER, epochs, seconds.
           Goal: WER <= 3 % within 10 minutes.
  rtf      the real-time factor of that recogniser (seconds of computing per second of audio; lower is faster) on
           a 60 s recording of joined test strings, through `Trained` in torch and through its ONNX export in ONNX
           Runtime. Goal: <= 0.05 (a minute of audio in 3 s).
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
SAMPLES_PER_S = 28  # utterances a second one epoch of fsdd-strings trains at on 2 cores (measured): sizes the epochs
BUDGET = {"seconds": 600}


def fsdd() -> dict:
    epochs = max(1, int(BUDGET["seconds"] * SAMPLES_PER_S / 1350))  # 1,350 training strings an epoch
    t0 = time.perf_counter()
    trained = dw.train(task="asr", data="fsdd-strings", data_dir=str(SHARED_DATA), epochs=epochs, runs_dir=RUNS,
                       name="fsdd", progress=False)
    test = trained.results["test"]
    return {"epochs": epochs, "train_seconds": trained.results["fit"]["train_seconds"],
            "wall_seconds": round(time.perf_counter() - t0, 1), "test_wer": round(test["wer"], 4),
            "test_cer": round(test["cer"], 4), "utterances": test["utterances"],
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


def main() -> None:
    sections = {"fsdd": fsdd, "rtf": rtf}
    args = bench_args(__doc__, sections, SHARED_DATA / "fsdd", budget_s=600)
    BUDGET["seconds"] = args.budget
    measure_and_print("asr", sections, args.only)


if __name__ == "__main__":
    main()
