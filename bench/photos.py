"""A folder of photos, as a newcomer brings it: deepworks' defaults for colour photos beside the defaults it had
before (LeNet-5, no augmentation, no early stopping) and the random forest it reports beside every run.

    python bench/photos.py                # about 6 minutes on 2 cores

The data is the newcomer's (shared/research/newcomer.md): 4 CIFAR-10 classes (cat, dog, horse, ship), 300 JPEG
photos each from the shared data's training tarball in photos/CLASS/, and 100 photos per class from its test
tarball in other-photos/CLASS/. Each recipe is a real `deepworks train --data photos/` (seeded 80/10/10 split), then
`deepworks evaluate RUN --data other-photos/`. Writes bench/results/photos.json.
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

CLASSES = {"cat": "cats", "dog": "dogs", "horse": "horses", "ship": "ships"}
RECIPES = {
    "deepworks defaults now": [],  # colour photos: ResNet-20, crop+flip, early stopping
    "deepworks defaults before": ["--model", "lenet", "--augment", "none", "--patience", "0"],
}


def main() -> None:
    source = SHARED_DATA / "cifar10_jpeg"
    if not (source / "train.tar.gz").is_file():
        sys.exit(f"needs {source}/train.tar.gz and test.tar.gz (the shared data)")
    result = {"benchmark": "photos", "machine": machine(), "calibration_before": calibrate(),
              "data": "4 CIFAR-10 classes (cat, dog, horse, ship): 300 training photos each, 100 other photos each"}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        extract_photos(source / "train.tar.gz", folder / "photos", 300, CLASSES)
        extract_photos(source / "test.tar.gz", folder / "other-photos", 100, CLASSES)
        for name, extra in RECIPES.items():
            t0 = time.perf_counter()
            trained = deepworks_cli("train", "--data", "photos", *extra, "--name", name.replace(" ", "-"), cwd=folder)
            seconds = time.perf_counter() - t0
            other = deepworks_cli("evaluate", trained["run"], "--data", "other-photos", cwd=folder)
            config = yaml.safe_load((folder / trained["run"] / "config.yaml").read_text())
            fit = trained["fit"]
            result[name] = {
                "flags": extra, "model": config["model"]["name"], "augment": config["data"]["augment"],
                "patience": config["train"]["patience"],
                "test_accuracy": round(trained["test"]["accuracy"], 4),
                "other_photos_accuracy": round(other["accuracy"], 4),
                "epochs": fit["epochs"], "stopped_early": fit["stopped_early"], "best_epoch": fit["best_epoch"],
                "train_seconds": fit["train_seconds"], "command_seconds": round(seconds, 1),
                "overfit_note": fit.get("overfit"),
                "random_forest_test_accuracy": round(trained["baseline"]["accuracy"], 4)}
            print(name, json.dumps(result[name], indent=1), flush=True)
    result["calibration_after"] = calibrate()
    result["date"] = time.strftime("%Y-%m-%d %H:%M")
    now, before = result["deepworks defaults now"], result["deepworks defaults before"]
    result["gain_test_points"] = round(100 * (now["test_accuracy"] - before["test_accuracy"]), 1)
    result["gain_other_photos_points"] = round(100 * (now["other_photos_accuracy"] - before["other_photos_accuracy"]), 1)
    write("photos", result)


if __name__ == "__main__":
    main()
