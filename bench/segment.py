"""Segmentation: deepworks' segmenter on the generated shapes and on the ISBI 2012 membranes, its loop, and its speed.

    python bench/segment.py                  # about 30 minutes on 2 cores
    python bench/segment.py --only isbi --budget 300   # some sections (others kept from the file)

- shapes: `deepworks train --task segment` as the README runs it (defaults only), scored on its 150 test images.
  Goal: mean IoU >= 0.95 within 3 minutes of training.
- isbi: the ISBI 2012 membranes, slices 0-24 to train and 25-29 held out (the challenge's test masks were never
  released, so the U-Net paper's figures, pixel error 0.0611 and Rand error 0.0382 on the hidden test slices, are
  beside ours, not against them). Three arms: the U-Net from scratch (`deepworks train --task segment --data
  isbi2012`, as many epochs as fit in --budget seconds), the same U-Net, data, augmentation, recipe and epochs in a
  plain PyTorch loop, and `--pretrained` (EfficientNet-Lite0 encoder) for about the same seconds, all in batches of 4
  tiles. Each is scored on the held-out slices at their own 512 px: membrane IoU, mean IoU, pixel error and Rand
  error (metrics/masks.py). The last epoch's weights are scored: the held-out slices are also the validation slices.
- isbi_seeds: the U-Net in both loops for 40 epochs, seeds 1 and 2: how far a seed moves the membrane IoU on 5
  slices, against the gap between the loops.
- loop: deepworks' loop (validation, checkpoints and metrics log) against the plain loop validating as often, on
  300 shapes for 2 epochs, alternated in one process, 3 rounds; the median of each.
- inference: images per second at 256 px of the serving graph (pixels in, class probabilities out), batches of 1
  and 16, in torch and ONNX Runtime, for both networks.
Writes bench/results/segment.json.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, bench_args, deepworks_cli, loop_race, measure_and_print  # noqa: E402

ISBI = ["--data", "isbi2012", "--data-dir", str(SHARED_DATA), "--no-restore-best", "--batch-size", "4"]
PAPER = {"pixel_error": 0.0611, "rand_error": 0.0382, "note": "Ronneberger et al. 2015, Table 1: the challenge's "
         "hidden test slices (30), scored by the organisers; ours are 5 of the 30 public slices, held out"}


def shapes() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        run = deepworks_cli("train", "--task", "segment", "--name", "shapes", cwd=Path(tmp))
    fit, test = run["fit"], run["test"]
    return {"command": "deepworks train --task segment", "miou": round(test["miou"], 4),
            "pixel_accuracy": round(test["pixel_accuracy"], 4), "per_class": test["per_class"],
            "baseline": run.get("baseline"), "epochs": fit["epochs"], "train_seconds": fit["train_seconds"],
            "command_seconds": fit.get("total_seconds"),
            "images_per_s": round(fit["epochs"] * run["splits"]["train"] / fit["train_seconds"], 1),
            "goal_met": bool(test["miou"] >= 0.95 and fit["train_seconds"] <= 180)}


def plain_loop(cfg, task, train: tuple, epochs: int, seed: int, after_epoch=None):
    """The task's network, tiles, augmentation, loss, AdamW and one-cycle schedule in a bare loop over as many
    batches an epoch as deepworks' loop takes (the last, smaller one too): no checkpoints, log or progress. ->
    (the model, seconds). `after_epoch(model)`, where given, runs after each epoch and is counted."""
    from deepworks.training.batches import steps_per_epoch

    t = cfg.train
    torch.manual_seed(seed)
    model = task.build_model().to(memory_format=torch.channels_last)
    x, masks = train
    per_epoch = steps_per_epoch(len(x), t.batch_size)
    opt = torch.optim.AdamW(model.parameters(), t.lr, weight_decay=t.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, t.lr, total_steps=epochs * per_epoch)
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x))
        for i in range(per_epoch):
            idx = order[i * t.batch_size:(i + 1) * t.batch_size]
            loss, _ = task.training_step(model, (x[idx], masks[idx]))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.clip_grad)
            opt.step()
            schedule.step()
        if after_epoch is not None:
            after_epoch(model)
    return model, time.perf_counter() - t0


def held_out_scores(masks_of) -> dict:
    """Membrane IoU, mean IoU, pixel error and Rand error of predicted masks (class 0 membrane, 1 cell) on slices
    25-29, from `masks_of(list of image paths)` -> list of (512, 512) class arrays."""
    from deepworks.data.segmentation import load_isbi
    from deepworks.metrics.masks import confusion, rand_error, scores_of

    found = load_isbi(SHARED_DATA)
    paths = [found.images[i] for i in range(25, 30)]
    predicted = masks_of(paths)
    cm = sum(confusion(found.masks[i], p, 2) for i, p in zip(range(25, 30), predicted))
    s = scores_of(cm)
    rand = [rand_error(found.masks[i], p) for i, p in zip(range(25, 30), predicted)]
    return {"membrane_iou": round(float(s["iou"][0]), 4), "miou": round(s["miou"], 4),
            "pixel_error": round(1 - s["pixel_accuracy"], 4), "rand_error": round(float(np.mean(rand)), 4)}


def isbi_arm(folder: Path, name: str, flags: list[str], budget: float) -> dict:
    """A deepworks run given about `budget` seconds: epochs from a 3-epoch probe's speed."""
    import deepworks as dw

    probe = deepworks_cli("train", "--task", "segment", *ISBI, *flags, "--epochs", "3", "--name", f"{name}-probe",
                          cwd=folder)
    epochs = max(3, int(budget / (probe["fit"]["train_seconds"] / 3)))
    run = deepworks_cli("train", "--task", "segment", *ISBI, *flags, "--epochs", str(epochs), "--name", name,
                        cwd=folder)
    trained = dw.load(folder / "runs" / name)
    scores = held_out_scores(lambda paths: [a["mask"] for a in trained.segment(paths)])
    return {"flags": flags + ["--epochs", str(epochs)], **scores, "epochs": epochs,
            "train_seconds": run["fit"]["train_seconds"]}


def plain_isbi(epochs: int, seed: int = 0) -> dict:
    """The same U-Net, tiles, augmentation, loss, optimizer, one-cycle schedule and epochs in a bare loop (no
    validation, checkpoints or log), then the same tiled prediction."""
    from deepworks.api import make_config
    from deepworks.registry import get_task

    cfg = make_config(task="segment", data="isbi2012", data_dir=str(SHARED_DATA), batch_size=4, seed=seed)
    task = get_task("segment")(cfg)
    data = task.prepare(progress=False)
    model, seconds = plain_loop(cfg, task, data.train, epochs, seed)
    model.eval()
    from deepworks.tasks.segment_face import SegmentFace

    face = SegmentFace(cfg, task.meta)
    serving = face.serving_model(model)
    scores = held_out_scores(lambda paths: [r["mask"] for r in face.infer(serving, face.decode_inputs(paths, {}),
                                                                          torch.device("cpu"), {})])
    return {**scores, "epochs": epochs, "train_seconds": round(seconds, 1)}


def isbi(budget: float) -> dict:
    out = {"paper": PAPER, "split": "slices 0-24 train, 25-29 held out (validation and test)"}
    with tempfile.TemporaryDirectory() as tmp:
        out["deepworks"] = isbi_arm(Path(tmp), "scratch", [], budget)
        print("deepworks", out["deepworks"], flush=True)
        out["plain_pytorch_loop"] = plain_isbi(out["deepworks"]["epochs"])
        print("plain", out["plain_pytorch_loop"], flush=True)
        out["pretrained"] = isbi_arm(Path(tmp), "pretrained", ["--pretrained"], budget)
        print("pretrained", out["pretrained"], flush=True)
    d, p = out["deepworks"], out["plain_pytorch_loop"]
    out["goal_met"] = bool(d["membrane_iou"] >= p["membrane_iou"])
    return out


def isbi_seeds(epochs: int = 40, seeds: tuple = (1, 2)) -> dict:
    """The U-Net from scratch in deepworks' loop and in the plain loop, `epochs` each, over several seeds: how far
    one seed's membrane IoU on 5 held-out slices wanders, against the gap between the loops."""
    import deepworks as dw

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            name = f"seed{seed}"
            deepworks_cli("train", "--task", "segment", *ISBI, "--epochs", str(epochs), "--seed", str(seed), "--name",
                          name, cwd=Path(tmp))
            trained = dw.load(Path(tmp) / "runs" / name)
            ours = held_out_scores(lambda paths: [a["mask"] for a in trained.segment(paths)])
            plain = plain_isbi(epochs, seed)
            rows.append({"seed": seed, "deepworks_membrane_iou": ours["membrane_iou"],
                         "plain_membrane_iou": plain["membrane_iou"]})
            print(rows[-1], flush=True)
    ours = [r["deepworks_membrane_iou"] for r in rows]
    plain = [r["plain_membrane_iou"] for r in rows]
    return {"epochs": epochs, "rows": rows, "deepworks_mean": round(float(np.mean(ours)), 4),
            "plain_mean": round(float(np.mean(plain)), 4), "deepworks_spread": round(max(ours) - min(ours), 4),
            "plain_spread": round(max(plain) - min(plain), 4),
            "goal_met": bool(np.mean(ours) >= np.mean(plain))}


def setup_shapes(n: int = 300):
    from deepworks.api import make_config
    from deepworks.registry import get_task

    cfg = make_config(task="segment", data=f"shapes-seg:{n}")
    cfg.train.monitor = "val_miou"
    task = get_task("segment")(cfg)
    return cfg, task, task.prepare(progress=False)


def plain_shapes(cfg, task, data, epochs: int) -> float:
    """The plain loop's seconds, validating after each epoch as a user's loop would."""
    return plain_loop(cfg, task, data.train, epochs, 0,
                      lambda model: task.evaluate(model, data.val, torch.device("cpu")))[1]


def loop(epochs: int = 2, rounds: int = 3) -> dict:
    cfg, task, data = setup_shapes()
    return {**loop_race(task, data, cfg, epochs, plain_shapes, rounds, "images"),
            "note": "both validate the 45 validation images after each epoch; deepworks also writes a checkpoint "
                    "and the metrics log"}


def inference(size: int = 256) -> dict:
    import onnxruntime as ort

    from deepworks.exporting.exporter import export_onnx
    from deepworks.inference import Graph
    from deepworks.models.unet import SEGMENTERS, SegmenterServing

    from detect import rate

    torch.set_num_threads(2)
    out = {"image_size": size}
    with tempfile.TemporaryDirectory() as tmp:
        for name in SEGMENTERS:
            torch.manual_seed(0)
            serving = SegmenterServing(SEGMENTERS[name](2), [0.5] * 3, [0.25] * 3).eval()
            serving.model.to(memory_format=torch.channels_last)
            one = torch.randint(0, 256, (1, size, size, 3), dtype=torch.uint8)
            batch = torch.randint(0, 256, (16, size, size, 3), dtype=torch.uint8)
            path = Path(tmp) / f"{name}.onnx"
            export_onnx(Graph(name, serving, (batch[:2],), (batch[:3],), ["images"], ["probabilities"],
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


def main() -> None:
    sections = {"shapes": shapes, "isbi": None, "isbi_seeds": isbi_seeds, "loop": loop, "inference": inference}
    args = bench_args(__doc__, sections, SHARED_DATA / "isbi2012_em", budget_s=300)
    sections["isbi"] = lambda: isbi(args.budget)
    measure_and_print("segment", sections, args.only)


if __name__ == "__main__":
    main()
