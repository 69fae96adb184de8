"""Image restoration: super-resolution and denoising against the published table and the classical answers, the loop
against a plain one, and the speed of restoring a photo.

    python bench/restore.py                       # about 35 minutes on 2 cores
    python bench/restore.py --only sr3 --budget 600   # some sections (others kept from the file)

- sr3: `deepworks train --task restore --data sr-benchmarks --scale 3` (EDSR, 32 channels and 8 blocks, the
  default; patches of 72 px) for as many epochs as fit in --budget seconds (default 600: 10 minutes), trained on
  T91 and scored on Set5 and Set14 on the luma with the border cropped, as SRCNN's paper scores (Dong et al., TPAMI
  2016, Table: Set5 x3 32.75 dB, Set14 x3 29.30 dB; bicubic 30.39 and 27.54). The last epoch's weights are scored:
  Set5 validates. Goal: both SRCNN figures reached within 30 minutes of training.
- sr24: the same at x2 and x4 for half the budget each (reported beside the table, no goal).
- denoise: `--mode denoise --noise-sigma 25` (the U-Net) on T91 for half the budget, scored on Set14 in RGB beside
  scikit-image's non-local means given the true sigma. Goal: at least 1 dB above it.
- loop: deepworks' loop (validation, checkpoints, the metrics log) against a plain PyTorch loop of the same EDSR,
  patches, flips, bicubic inputs, L1 loss, AdamW and one-cycle schedule, each validating on the same photo after every
  epoch, alternated in one process, 3 rounds; the median of each. Goal: >= 1.0x.
- inference: megapixels out per second restoring a 1024 x 768 photo in tiles, the serving graph in torch and in ONNX
  Runtime, for the x2 EDSR and the denoising U-Net (random weights: speed does not depend on them).
Writes bench/results/restore.json.
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

SR = ["--task", "restore", "--data", "sr-benchmarks", "--data-dir", str(SHARED_DATA), "--no-restore-best"]
SRCNN = {"set5": {2: 36.66, 3: 32.75, 4: 30.49}, "set14": {2: 32.45, 3: 29.30, 4: 27.50},
         "bicubic_set5": {2: 33.66, 3: 30.39, 4: 28.42}, "bicubic_set14": {2: 30.23, 3: 27.54, 4: 26.00},
         "source": "Dong et al., Image Super-Resolution Using Deep Convolutional Networks, TPAMI 2016 (Table 2)"}


def trained_for(folder: Path, name: str, flags: list[str], budget: float) -> tuple[dict, int]:
    """A run given about `budget` seconds of training: its epochs from a one-epoch probe's speed."""
    probe = deepworks_cli("train", *SR, *flags, "--epochs", "1", "--name", f"{name}-probe", cwd=folder)
    epochs = max(2, int(budget / probe["fit"]["train_seconds"]))
    return deepworks_cli("train", *SR, *flags, "--epochs", str(epochs), "--name", name, cwd=folder), epochs


def sr_arm(scale: int, budget: float) -> dict:
    import deepworks as dw

    with tempfile.TemporaryDirectory() as tmp:
        run, epochs = trained_for(Path(tmp), f"x{scale}", ["--scale", str(scale), "--image-size", "72"], budget)
        set5 = dw.evaluate(Path(tmp) / "runs" / f"x{scale}", split="val")
    test = run["test"]
    row = {"scale": scale, "epochs": epochs, "train_seconds": run["fit"]["train_seconds"],
           "parameters": run["parameters"],
           "set5": {"psnr": set5["psnr"], "ssim": set5["ssim"], "bicubic_psnr": set5.get("baseline_psnr")},
           "set14": {"psnr": test["psnr"], "ssim": test["ssim"], "bicubic_psnr": test.get("baseline_psnr")},
           "srcnn": {"set5": SRCNN["set5"][scale], "set14": SRCNN["set14"][scale]},
           "published_bicubic": {"set5": SRCNN["bicubic_set5"][scale], "set14": SRCNN["bicubic_set14"][scale]}}
    row["beats_srcnn"] = bool(row["set5"]["psnr"] >= SRCNN["set5"][scale]
                              and row["set14"]["psnr"] >= SRCNN["set14"][scale])
    print(row, flush=True)
    return row


def sr3(budget: float) -> dict:
    row = sr_arm(3, budget)
    return {**row, "source": SRCNN["source"], "goal_met": bool(row["beats_srcnn"] and row["train_seconds"] <= 1800)}


def sr24(budget: float) -> dict:
    return {"x2": sr_arm(2, budget / 2), "x4": sr_arm(4, budget / 2), "source": SRCNN["source"]}


def denoise(budget: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        run, epochs = trained_for(Path(tmp), "denoise", ["--mode", "denoise", "--noise-sigma", "25"], budget / 2)
    test = run["test"]
    return {"sigma": 25, "epochs": epochs, "train_seconds": run["fit"]["train_seconds"],
            "parameters": run["parameters"], "set14_psnr": test["psnr"], "set14_ssim": test["ssim"],
            "nlm_psnr": test.get("baseline_psnr"), "nlm_ssim": test.get("baseline_ssim"),
            "gain_db": test.get("gain_db"),
            "noisy_psnr": round(20 * np.log10(255 / 25), 2),
            "goal_met": bool(test.get("gain_db") is not None and test["gain_db"] >= 1.0)}


def setup_sr(n: int = 1024):
    from deepworks.api import make_config
    from deepworks.registry import get_task

    cfg = make_config(task="restore", data=f"photos:{n}")
    cfg.train.monitor = "val_psnr"
    task = get_task("restore")(cfg)
    return cfg, task, task.prepare(progress=False)


def plain_loop(cfg, task, data, epochs: int, seed: int = 0) -> float:
    """The same EDSR, patches, flips, inputs, loss, optimizer and schedule in a bare loop over as many batches an
    epoch as deepworks' loop takes, validating after each epoch as a user's loop would: its seconds."""
    from deepworks.tasks.restore import dihedral
    from deepworks.training.batches import steps_per_epoch

    t = cfg.train
    torch.manual_seed(seed)
    model = task.build_model()
    x = data.train[0]
    per_epoch = steps_per_epoch(len(x), t.batch_size)
    opt = torch.optim.AdamW(model.parameters(), t.lr, weight_decay=t.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, t.lr, total_steps=epochs * per_epoch)
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x))
        for i in range(per_epoch):
            clean = dihedral(x[order[i * t.batch_size:(i + 1) * t.batch_size]])
            out = model(task.degrade(clean).float() / 255)
            loss = torch.nn.functional.l1_loss(out, clean.float() / 255)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.clip_grad)
            opt.step()
            schedule.step()
        task.evaluate(model, data.val, torch.device("cpu"))
    return time.perf_counter() - t0


def loop(epochs: int = 2, rounds: int = 3) -> dict:
    cfg, task, data = setup_sr()
    return {**loop_race(task, data, cfg, epochs, plain_loop, rounds, "patches"), "model": "edsr x2 (32 x 8)",
            "note": "both validate on the built-in photos' validation photo after each epoch; deepworks also writes "
                    "a checkpoint and the metrics log"}


def inference(width: int = 1024, height: int = 768) -> dict:
    import onnxruntime as ort

    from deepworks.exporting.exporter import export_onnx
    from deepworks.inference import Graph
    from deepworks.models.restore import RestorerServing, build_restorer, halo_of
    from deepworks.tasks.restore import TILE
    from deepworks.tasks.restore_face import restored

    torch.set_num_threads(2)
    photo = torch.randint(0, 256, (3, height, width), dtype=torch.uint8)
    out = {"photo": f"{width}x{height}", "tile": TILE}
    with tempfile.TemporaryDirectory() as tmp:
        arms = {"edsr_x2": ("edsr", "sr", 2), "unet_denoise": ("unet", "denoise", 1)}
        for label, (name, mode, scale) in arms.items():
            torch.manual_seed(0)
            model = build_restorer(name, mode, scale, None, None).eval()
            serving, halo = RestorerServing(model).eval(), halo_of(model)
            example = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
            path = Path(tmp) / f"{label}.onnx"
            export_onnx(Graph(label, serving, (example,), (example[:1],), ["images"], ["restored"],
                              {"images": {0: "batch", 1: "h", 2: "w"}}), path, dynamo=False)
            session = ort.InferenceSession(str(path))

            def onnx(tiles):
                return session.run(None, {"images": tiles.numpy()})[0]

            row = {}
            for runtime, graph in (("torch", serving), ("onnxruntime", onnx)):
                with torch.inference_mode():
                    restored(graph, photo[:, :256, :256], TILE, halo, model.multiple, scale, torch.device("cpu"))
                    t0 = time.perf_counter()
                    restored(graph, photo, TILE, halo, model.multiple, scale, torch.device("cpu"))
                    seconds = time.perf_counter() - t0
                row[f"{runtime}_megapixels_out_per_s"] = round(width * height * scale ** 2 / 1e6 / seconds, 3)
            row["onnx_over_torch"] = round(row["onnxruntime_megapixels_out_per_s"]
                                           / row["torch_megapixels_out_per_s"], 2)
            out[label] = row
            print(label, row, flush=True)
    return out


def main() -> None:
    sections = {"sr3": None, "sr24": None, "denoise": None, "loop": loop, "inference": inference}
    args = bench_args(__doc__, sections, SHARED_DATA / "sr_benchmarks", budget_s=600)
    sections.update(sr3=lambda: sr3(args.budget), sr24=lambda: sr24(args.budget),
                    denoise=lambda: denoise(args.budget))
    measure_and_print("restore", sections, args.only)


if __name__ == "__main__":
    main()
