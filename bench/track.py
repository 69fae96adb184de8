"""What --track mlflow costs an epoch: LeNet-5 on MNIST, 2 epochs, with and without tracking, taking turns.

    python bench/track.py     # about 2 minutes on 2 cores

Each pair trains the same run twice, once with `--track mlflow` (MLflow's SQLite store in a temporary folder) and
once without, the order alternating; the figure is the epochs' own seconds (results.json: fit.train_seconds), so
the MLflow run's start and the artifacts logged after the test are counted apart (tracking_extra_s: the whole
command's extra time). Goal (issue 35): overhead <= 2 % of epoch time. Writes bench/results/track.json.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, calibrate, machine, write  # noqa: E402

import deepworks as dw  # noqa: E402

PAIRS = 3


def one(root: Path, name: str, track: str) -> tuple[float, float]:
    t0 = time.perf_counter()
    trained = dw.train(data="mnist", data_dir=str(SHARED_DATA), epochs=2, runs_dir=str(root / "runs"), name=name,
                       track=track, progress=False, baseline=False)
    return trained.results["fit"]["train_seconds"], time.perf_counter() - t0


def main() -> None:
    before = calibrate()
    epochs = {"none": [], "mlflow": []}
    whole = {"none": [], "mlflow": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
        os.chdir(root)
        for i in range(PAIRS):
            for track in (("none", "mlflow") if i % 2 == 0 else ("mlflow", "none")):
                train_s, whole_s = one(root, f"{track}-{i}", track)
                epochs[track].append(train_s)
                whole[track].append(whole_s)
                print(track, round(train_s, 2), round(whole_s, 2), flush=True)
    plain, tracked = statistics.median(epochs["none"]), statistics.median(epochs["mlflow"])
    result = {"what": "LeNet-5 on MNIST, 2 epochs, with and without --track mlflow (SQLite store), alternating",
              "train_seconds": {"none": epochs["none"], "mlflow": epochs["mlflow"]},
              "median_train_seconds": {"none": round(plain, 3), "mlflow": round(tracked, 3)},
              "overhead_of_epoch_time": round(tracked / plain - 1, 4),
              "tracking_extra_s": round(statistics.median(whole["mlflow"]) - statistics.median(whole["none"]), 2),
              "goal": "overhead <= 2 % of epoch time", "machine": machine(),
              "calibration": {"before": before, "after": calibrate()}}
    print(result)
    write("track", result)


if __name__ == "__main__":
    main()
