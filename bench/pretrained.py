"""Few photos: the pretrained EfficientNet-Lite0 fine-tuned, beside the best from-scratch models in the same time.

    python bench/pretrained.py            # about 8 minutes on 2 cores

Teachable-Machine-sized data: all 10 CIFAR-10 classes with 50 training photos each. photos/CLASS/ holds the first 70
JPEGs of each class from the shared data's training tarball; `deepworks train` splits them (seeded, per class) into
50 to train on, 10 to validate (the best epoch is kept) and 10 to test. The score that counts is `deepworks evaluate` on
other-photos/: 100 photos per class from the test tarball (1,000), which no run saw. Every recipe is a real CLI run;
its training seconds are the run's own wall time of the fit (starting weights, the head-first step, epochs
and validation). Writes bench/results/pretrained.json with the
goal: pretrained >= 70 % and >= 20 points above the best from-scratch model, each trained within 2 minutes.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, calibrate, deepworks_cli, extract_photos, machine, write  # noqa: E402

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SPLIT = ["--test-fraction", str(1 / 7), "--val-fraction", str(1 / 6)]  # of 70 per class: 10 test, then 10 of 60 val
BUDGET_S = 120
RECIPES = {
    "pretrained efficientnet_lite0, fine-tuned": ["--pretrained"],
    "pretrained efficientnet_lite0, head only (--freeze)": ["--pretrained", "--freeze", "--epochs", "4"],
    # from scratch: no early stopping, and as many epochs as fit in the budget (the best validation epoch is kept)
    "from scratch: resnet (the default for photos)": ["--model", "resnet", "--epochs", "130", "--patience", "0"],
    "from scratch: lenet": ["--model", "lenet", "--augment", "crop+flip", "--epochs", "400", "--patience", "0"],
}


def main() -> None:
    source = SHARED_DATA / "cifar10_jpeg"
    if not (source / "train.tar.gz").is_file():
        sys.exit(f"needs {source}/train.tar.gz and test.tar.gz (the shared data)")
    chosen = [r for r in RECIPES if not sys.argv[1:] or any(a in r for a in sys.argv[1:])]
    result = {"benchmark": "pretrained", "machine": machine(), "calibration_before": calibrate(),
              "data": "CIFAR-10, 10 classes: 50 training photos per class (+10 validation, +10 test, split by the "
                      "run); scored on 1,000 other photos (100 per class) from the test tarball",
              "budget_s": BUDGET_S, "recipes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        extract_photos(source / "train.tar.gz", folder / "photos", 70, dict(zip(CLASSES, CLASSES)))
        extract_photos(source / "test.tar.gz", folder / "other-photos", 100, dict(zip(CLASSES, CLASSES)))
        for name in chosen:
            extra = RECIPES[name]
            t0 = time.perf_counter()
            trained = deepworks_cli("train", "--data", "photos", *SPLIT, "--no-baseline", *extra,
                                "--name", name.split(",")[0].replace(" ", "-").replace(":", ""), cwd=folder)
            seconds = time.perf_counter() - t0
            other = deepworks_cli("evaluate", trained["run"], "--data", "other-photos", cwd=folder)
            config = yaml.safe_load((folder / trained["run"] / "config.yaml").read_text())
            fit = trained["fit"]
            result["recipes"][name] = {
                "flags": extra, "model": config["model"]["name"], "image_size": config["data"]["image_size"],
                "splits": trained["splits"], "other_photos_accuracy": round(other["accuracy"], 4),
                "own_test_accuracy": round(trained["test"]["accuracy"], 4),
                "epochs": fit["epochs"], "best_epoch": fit["best_epoch"], "train_seconds": fit["wall_seconds"],
                "command_seconds": round(seconds, 1), "within_budget": fit["wall_seconds"] <= BUDGET_S}
            print(name, json.dumps(result["recipes"][name], indent=1), flush=True)
    result["calibration_after"] = calibrate()
    result["date"] = time.strftime("%Y-%m-%d %H:%M")
    recipes = result["recipes"]
    tuned = recipes.get("pretrained efficientnet_lite0, fine-tuned")
    scratch = [r["other_photos_accuracy"] for n, r in recipes.items() if n.startswith("from scratch") and
               r["within_budget"]]
    if tuned and scratch:
        result["gain_points"] = round(100 * (tuned["other_photos_accuracy"] - max(scratch)), 1)
        result["goal_met"] = bool(tuned["other_photos_accuracy"] >= 0.70 and result["gain_points"] >= 20
                                  and tuned["within_budget"])
    write("pretrained", result)


if __name__ == "__main__":
    main()
