"""Object detection: deepworks' detector on the generated shapes and on the raccoon photos, and its speed.

    python bench/detect.py                 # about 25 minutes on 2 cores
    python bench/detect.py shapes          # one section: shapes, raccoon or inference (others kept from the file)
    python bench/detect.py raccoon from_scratch      # one arm of the raccoon section

- shapes: `deepworks train --task detect` as the README runs it (defaults only), scored on its 300 test images;
  beside it, the same network, data and epochs in a plain PyTorch loop (no run folder, no checkpoints, no
  validation), for the loop's cost. Goal: mAP@0.5 >= 0.97 and mAP@[.5:.95] >= 0.85 within 3 minutes of training.
- raccoon: `--pretrained` (EfficientNet-Lite0 backbone, 24 epochs) on the 160 / 40 split, and the small CNN from
  scratch beside it for about the same time (96 epochs). The last epoch's weights are scored: the 40 validation
  photos are the test photos. Goal: mAP@0.5 >= 0.70 within 15 minutes of training.
- inference: images per second at 320 px, one image per call and batches of 16, in torch and in ONNX Runtime
  (the exported graph), for both detectors.
Writes bench/results/detect.json.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, calibrate, deepworks_cli, machine, write  # noqa: E402

RACCOON = ["--data", "raccoon", "--data-dir", str(SHARED_DATA)]
# --pretrained's own defaults (320 px, batches of 16, 24 epochs), spelled out so that the run from scratch beside it
# gets the same; the final epoch's weights are scored, since the 40 validation photos are also the test photos
RACCOON_RECIPE = ["--batch-size", "16", "--no-restore-best"]


def shapes(folder: Path) -> dict:
    run = deepworks_cli("train", "--task", "detect", "--name", "shapes", cwd=folder)
    fit, test = run["fit"], run["test"]
    plain = plain_loop(fit["epochs"])
    ours = fit["epochs"] * run["splits"]["train"] / fit["train_seconds"]
    return {"command": "deepworks train --task detect", "map": round(test["map"], 4), "map50": round(test["map50"], 4),
            "map75": round(test["map75"], 4), "epochs": fit["epochs"], "train_seconds": fit["train_seconds"],
            "command_seconds": fit.get("total_seconds"), "images_per_s": round(ours, 1),
            "plain_pytorch_loop": plain, "loop_speed_ratio": round(ours / plain["images_per_s"], 3),
            "goal_met": bool(test["map50"] >= 0.97 and test["map"] >= 0.85 and fit["train_seconds"] <= 180)}


def plain_loop(epochs: int) -> dict:
    """The same network, data, augmentation, optimizer and schedule in a bare loop: what a user writing it by hand
    would run (no validation, checkpoints, progress or metrics log)."""
    import deepworks as dw
    from deepworks.api import make_config
    from deepworks.registry import get_task

    cfg = make_config(task="detect", data="shapes")
    task = get_task("detect")(cfg)
    data = task.prepare(progress=False)
    torch.manual_seed(0)
    model = task.build_model().to(memory_format=torch.channels_last)
    x, boxes = data.train
    t = cfg.train
    steps = epochs * (len(x) // t.batch_size)
    opt = torch.optim.AdamW(model.parameters(), t.lr, weight_decay=t.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, t.lr, total_steps=steps)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(x))
        for i in range(len(x) // t.batch_size):
            idx = order[i * t.batch_size:(i + 1) * t.batch_size]
            loss, _ = task.training_step(model, (x[idx], boxes[idx]))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.clip_grad)
            opt.step()
            schedule.step()
    seconds = time.perf_counter() - t0
    found = task.scored(model, data.test[:1], torch.device("cpu"))[1]  # as the run's mAP: a box per class that peaks
    from deepworks.metrics.boxes import mean_average_precision, unpad_boxes

    m = mean_average_precision(unpad_boxes(data.test[1]), found, 3)
    del dw
    return {"epochs": epochs, "train_seconds": round(seconds, 1), "images_per_s": round(steps * t.batch_size / seconds, 1),
            "map": round(m["map"], 4), "map50": round(m["map50"], 4)}


ARMS = {"pretrained": ["--pretrained", "--epochs", "24"],
        # four times the epochs: about the pretrained run's training time, as the smaller network runs 4x faster
        "from_scratch": ["--epochs", "96"]}


def raccoon(folder: Path, previous: dict | None = None) -> dict:
    """Both arms, or those named on the command line (python bench/detect.py raccoon from_scratch), the other's
    figures kept from the last run."""
    out = {**(previous or {}), "recipe": RACCOON_RECIPE}
    chosen = [a for a in ARMS if a in sys.argv] or list(ARMS)
    for name in chosen:
        extra = ARMS[name]
        run = deepworks_cli("train", "--task", "detect", *RACCOON, *RACCOON_RECIPE, *extra, "--name", name, cwd=folder)
        fit, test = run["fit"], run["test"]
        out[name] = {"flags": [*RACCOON_RECIPE, *extra], "map": round(test["map"], 4),
                     "map50": round(test["map50"], 4), "epochs": fit["epochs"], "best_epoch": fit["best_epoch"],
                     "train_seconds": fit["train_seconds"], "splits": run["splits"], "date": time.strftime("%Y-%m-%d %H:%M")}
        print(name, json.dumps(out[name]), flush=True)
    p = out["pretrained"]
    out["goal_met"] = bool(p["map50"] >= 0.70 and p["train_seconds"] <= 900)
    return out


def inference(folder: Path, size: int = 320) -> dict:
    """Images per second of the serving graph (uint8 letterboxed pixels in, the 100 best boxes out)."""
    import onnxruntime as ort

    from deepworks.exporting.exporter import export_onnx
    from deepworks.inference import Graph
    from deepworks.models.centernet import DETECTORS, DetectorServing

    out = {"image_size": size}
    for name, width in (("centernet", 32), ("centernet_lite0", 64)):
        torch.manual_seed(0)
        serving = DetectorServing(DETECTORS[name](1, width), [0.5] * 3, [0.25] * 3).eval()
        serving.model.to(memory_format=torch.channels_last)
        one = torch.randint(0, 256, (1, size, size, 3), dtype=torch.uint8)
        batch = torch.randint(0, 256, (16, size, size, 3), dtype=torch.uint8)
        path = folder / f"{name}.onnx"
        export_onnx(Graph(name, serving, (batch[:2],), (batch[:3],), ["images"], ["scores", "boxes"],
                          {"images": {0: "batch"}}), path, dynamo=False)
        session = ort.InferenceSession(str(path))
        row = {}
        for label, x in (("batch_1", one), ("batch_16", batch)):
            with torch.inference_mode():
                row[f"torch_{label}"] = rate(lambda: serving(x), len(x))
            row[f"onnxruntime_{label}"] = rate(lambda: session.run(None, {"images": x.numpy()}), len(x))
        row["onnx_over_torch_batch_1"] = round(row["onnxruntime_batch_1"] / row["torch_batch_1"], 2)
        out[name] = row
        print(name, row, flush=True)
    return out


def rate(call, n: int, seconds: float = 3.0) -> float:
    call()  # warm-up
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        call()
        count += 1
    return round(count * n / (time.perf_counter() - t0), 1)


SECTIONS = {"shapes": shapes, "raccoon": raccoon, "inference": inference}


def main() -> None:
    chosen = [a for a in sys.argv[1:] if a in SECTIONS] or list(SECTIONS)
    path = Path(__file__).resolve().parent / "results" / "detect.json"
    result = json.loads(path.read_text()) if path.is_file() and sys.argv[1:] else {}
    result.update({"benchmark": "detect", "machine": machine(), "calibration_before": calibrate()})
    with tempfile.TemporaryDirectory() as tmp:
        for name in chosen:
            if name == "raccoon" and not (SHARED_DATA / "raccoon").is_dir():
                print("skipped raccoon: no shared data", flush=True)
                continue
            t0 = time.perf_counter()
            args = (Path(tmp), result.get(name)) if name == "raccoon" else (Path(tmp),)
            result[name] = SECTIONS[name](*args)
            result[name]["section_seconds"] = round(time.perf_counter() - t0, 1)
            result[name]["date"] = time.strftime("%Y-%m-%d %H:%M")
            print(name, json.dumps(result[name], indent=1), flush=True)
    result["calibration_after"] = calibrate()
    result["load_average"] = list(np.round(__import__("os").getloadavg(), 2))
    write("detect", result)


if __name__ == "__main__":
    main()
