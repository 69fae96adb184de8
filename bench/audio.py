"""Sound: deepworks' audio task on the Free Spoken Digit Dataset, and the speed of its features and inference.

    python bench/audio.py                  # about 2 minutes on 2 cores

- official: `deepworks train --task audio --data fsdd` as the README runs it (defaults only), scored on the
  official test split (recordings 0-4 of each speaker and digit). Goal: >= 98.5 % within 2 minutes of training.
- features: log-mel spectrograms per second of 1-second 8 kHz clips (torch.stft and the mel filterbank), batches
  of 256.
- inference: milliseconds per clip through `Trained.predict` on arrays, one clip per call.
The leave-one-speaker-out goal of the issue needs `--split speaker`, which is not built yet.
Writes bench/results/audio.json.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, calibrate, deepworks_cli, machine, write  # noqa: E402


def main() -> None:
    if not (SHARED_DATA / "fsdd" / "recordings.tar.gz").is_file():
        sys.exit(f"needs {SHARED_DATA}/fsdd/recordings.tar.gz (the shared data)")
    result = {"benchmark": "audio", "machine": machine(), "calibration_before": calibrate()}
    with tempfile.TemporaryDirectory() as tmp:
        run = deepworks_cli("train", "--task", "audio", "--data", "fsdd", "--data-dir", str(SHARED_DATA),
                            "--name", "fsdd", cwd=Path(tmp))
        fit, test = run["fit"], run["test"]
        result["official"] = {"command": "deepworks train --task audio --data fsdd", "accuracy": round(test["accuracy"], 4),
                              "test_clips": test["clips"], "per_speaker": test.get("per_speaker"),
                              "epochs": fit["epochs"], "train_seconds": fit["train_seconds"],
                              "command_seconds": fit.get("total_seconds"),
                              "goal_met": bool(test["accuracy"] >= 0.985 and fit["train_seconds"] <= 120)}
        print(result["official"], flush=True)

        import deepworks as dw
        from deepworks.models.audio import LogMel

        torch.set_num_threads(2)
        clips = torch.randn(256, 8000)
        front = LogMel(8000)
        front(clips)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < 3:
            front(clips)
            n += len(clips)
        result["features"] = {"log_mel_clips_per_s": round(n / (time.perf_counter() - t0), 1), "clip_seconds": 1.0,
                              "rate": 8000, "batch": 256}
        trained = dw.load(Path(tmp) / "runs" / "fsdd")
        one = clips[0].numpy()
        trained.predict(one)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < 3:
            trained.predict(one)
            n += 1
        result["inference"] = {"ms_per_clip": round(1000 * (time.perf_counter() - t0) / n, 2), "calls": n}
        print(result["features"], result["inference"], flush=True)
    result["calibration_after"] = calibrate()
    result["date"] = time.strftime("%Y-%m-%d %H:%M")
    write("audio", result)


if __name__ == "__main__":
    main()
