"""All of CIFAR-10 from the shared JPEG copy: deepworks' default photo recipe beside the plain-PyTorch script a user
would copy instead.

    python bench/cifar.py                # about 35 minutes on 2 cores with AMX (bf16); well over an hour without

deepworks: `deepworks train --data cifar10/` and nothing else. The folder has train/ (50,000 JPEGs: 45,000 to train
on, 5,000 held for validation) and test/ (10,000); for 10,000 colour photos or more the defaults are the airbench
model and its recipe (models/airbench.py, tasks/image_recipes.py): 20 epochs, in bf16 on a CPU with AMX. The
reference is Keller Jordan's airbench94 written out in plain PyTorch here (`reference`), run as its script runs:
the same network and optimizer, with what deepworks does otherwise (lookahead, flips that alternate by epoch,
2-pixel reflected shifts, six test-time views), on all 50,000 training images, for its own 10 epochs, at the same
precision. Both read the same JPEGs. Writes bench/results/cifar.json.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, calibrate, deepworks_cli, extract_photos, machine, write  # noqa: E402

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
EPOCHS, BATCH, LR, MOMENTUM, WD, BIAS_LR, SMOOTHING = 10, 1024, 11.5, 0.85, 0.0153, 64.0, 0.2  # airbench94's


def read_folder(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    from PIL import Image

    files = sorted(folder.glob("*/*.jpg"))
    x = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    y = np.array([CLASSES.index(f.parent.name) for f in files])
    return torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255, torch.from_numpy(y)


class Group(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        for conv in (self.conv1, self.conv2):
            nn.init.dirac_(conv.weight.data[:conv.in_channels])
        self.norm1 = nn.BatchNorm2d(cout, eps=1e-12, momentum=0.4)
        self.norm2 = nn.BatchNorm2d(cout, eps=1e-12, momentum=0.4)
        for norm in (self.norm1, self.norm2):
            norm.weight.requires_grad = False

    def forward(self, x):
        x = F.gelu(self.norm1(F.max_pool2d(self.conv1(x), 2)))
        return F.gelu(self.norm2(self.conv2(x)))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.whiten = nn.Conv2d(3, 24, 2, bias=True)
        self.whiten.weight.requires_grad = False
        self.groups = nn.Sequential(Group(24, 64), Group(64, 256), Group(256, 256))
        self.head = nn.Linear(256, 10, bias=False)

    def forward(self, x):
        x = self.groups(F.gelu(self.whiten(x)))
        return self.head(F.max_pool2d(x, 3).flatten(1)) / 9


def whiten_init(layer: nn.Conv2d, x: torch.Tensor, eps: float = 5e-4) -> None:
    patches = x.unfold(2, 2, 1).unfold(3, 2, 1).transpose(1, 3).reshape(-1, 12)
    values, vectors = torch.linalg.eigh(patches.T @ patches / len(patches))
    filters = (vectors.T / torch.sqrt(values + eps)[:, None]).flip(0).reshape(12, 3, 2, 2)
    layer.weight.data[:] = torch.cat((filters, -filters))


def shifted(x: torch.Tensor, pad: int = 2) -> torch.Tensor:
    padded = F.pad(x, (pad,) * 4, mode="reflect")
    dx, dy = torch.randint(0, 2 * pad + 1, (2, len(x)))
    out = torch.empty_like(x)
    for i in range(2 * pad + 1):
        for j in range(2 * pad + 1):
            m = (dx == i) & (dy == j)
            out[m] = padded[m, :, j:j + 32, i:i + 32]
    return out


@torch.no_grad()
def tta_accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """airbench94's six views: the image and its mirror, each also shifted a pixel up-left and down-right."""
    net.eval()
    correct = 0
    for i in range(0, len(x), 1000):
        batch = x[i:i + 1000]

        def mirror(v):
            v = v.contiguous(memory_format=torch.channels_last)
            return 0.5 * net(v) + 0.5 * net(v.flip(-1))
        padded = F.pad(batch, (1,) * 4, mode="reflect")
        logits = 0.5 * mirror(batch) + 0.25 * (mirror(padded[:, :, :32, :32]) + mirror(padded[:, :, 2:, 2:]))
        correct += int((logits.argmax(1) == y[i:i + 1000]).sum())
    return correct / len(x)


def reference(folder: Path, bf16: bool) -> dict:
    """airbench94's training, as its script does it, on this folder; the seconds of each part."""
    t0 = time.perf_counter()
    torch.manual_seed(0)
    (x, y), (x_test, y_test) = read_folder(folder / "train"), read_folder(folder / "test")
    mean, std = x.mean((0, 2, 3), keepdim=True), x.std((0, 2, 3), keepdim=True)
    x, x_test = (x - mean) / std, (x_test - mean) / std
    read_s, t1 = time.perf_counter() - t0, time.perf_counter()
    net = Net().to(memory_format=torch.channels_last)
    whiten_init(net.whiten, x[torch.randperm(len(x))[:5000]])  # airbench94's first 5,000: CIFAR's order is random
    scale = BATCH * (1 + 1 / (1 - MOMENTUM))
    lr, wd = LR / scale, WD * BATCH / scale
    shifts = [p for n, p in net.named_parameters() if "norm" in n and p.requires_grad]
    rest = [p for n, p in net.named_parameters() if "norm" not in n and p.requires_grad]
    opt = torch.optim.SGD([{"params": shifts, "lr": lr * BIAS_LR, "weight_decay": wd / (lr * BIAS_LR)},
                           {"params": rest, "lr": lr, "weight_decay": wd / lr}], momentum=MOMENTUM, nesterov=True)
    per_epoch, total = len(x) // BATCH, (len(x) // BATCH) * EPOCHS
    warm = int(total * 0.23)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.2 + 0.8 * s / warm if s < warm else
                                                 1 - 0.93 * (s - warm) / (total - warm))
    alpha = 0.95 ** 5 * (torch.arange(total + 1) / total) ** 3
    average = {k: v.clone() for k, v in net.state_dict().items()}
    flips, step = torch.rand(len(x)) < 0.5, 0
    for epoch in range(EPOCHS):
        net.whiten.bias.requires_grad = epoch < 3
        order, flip = torch.randperm(len(x)), flips if epoch % 2 == 0 else ~flips
        for k in range(per_epoch):
            idx = order[k * BATCH:(k + 1) * BATCH]
            batch = torch.where(flip[idx][:, None, None, None], x[idx].flip(-1), x[idx])
            batch = shifted(batch).contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = net(batch)
            loss = F.cross_entropy(out.float(), y[idx], label_smoothing=SMOOTHING, reduction="sum")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
            step += 1
            if step % 5 == 0 or step == total:  # lookahead: pull the weights towards their running average
                decay = 1.0 if step == total else alpha[step].item()
                for a, w in zip(average.values(), net.state_dict().values()):
                    if w.dtype == torch.float:
                        a.lerp_(w, 1 - decay)
                        w.copy_(a)
    train_s, t2 = time.perf_counter() - t1, time.perf_counter()
    accuracy = tta_accuracy(net, x_test, y_test)
    return {"test_accuracy": round(accuracy, 4), "epochs": EPOCHS, "train_images": len(x), "bf16": bf16,
            "read_seconds": round(read_s, 1), "train_seconds": round(train_s, 1),
            "test_seconds": round(time.perf_counter() - t2, 1), "command_seconds": round(time.perf_counter() - t0, 1)}


def ours(folder: Path) -> dict:
    t0 = time.perf_counter()
    trained = deepworks_cli("train", "--data", "cifar10", "--name", "defaults", cwd=folder.parent)
    seconds = time.perf_counter() - t0
    config = yaml.safe_load((folder.parent / trained["run"] / "config.yaml").read_text())
    fit = trained["fit"]
    return {"test_accuracy": round(trained["test"]["accuracy"], 4), "epochs": fit["epochs"],
            "best_epoch": fit["best_epoch"], "train_seconds": fit["train_seconds"],
            "command_seconds": round(seconds, 1),
            "random_forest_test_accuracy": round(trained["baseline"]["accuracy"], 4),
            "settings": {"model": config["model"]["name"], "width": config["model"]["width"],
                         **{k: config["train"][k] for k in ("optimizer", "lr", "momentum", "weight_decay", "batch_size",
                                                             "label_smoothing", "amp", "schedule")},
                         "augment": config["data"]["augment"]}}


def main() -> None:
    from deepworks.training.engine import cpu_has_bf16_units

    source = SHARED_DATA / "cifar10_jpeg"
    if not (source / "train.tar.gz").is_file():
        sys.exit(f"needs {source}/train.tar.gz and test.tar.gz (the shared data)")
    torch.set_num_threads(2)
    bf16 = cpu_has_bf16_units()
    result = {"benchmark": "cifar", "machine": machine(), "calibration_before": calibrate(), "bf16": bf16,
              "data": "CIFAR-10, the shared JPEG copy: 50,000 training and 10,000 test photos, 32 px"}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "cifar10"
        extract_photos(source / "train.tar.gz", folder / "train", 5000, {c: c for c in CLASSES})
        extract_photos(source / "test.tar.gz", folder / "test", 1000, {c: c for c in CLASSES})
        result["deepworks defaults"] = ours(folder)
        print(json.dumps(result["deepworks defaults"], indent=1), flush=True)
        result["plain PyTorch airbench94"] = reference(folder, bf16)
        print(json.dumps(result["plain PyTorch airbench94"], indent=1), flush=True)
    ours_, ref = result["deepworks defaults"], result["plain PyTorch airbench94"]
    result["time_ratio"] = round(ours_["command_seconds"] / ref["command_seconds"], 2)
    result["accuracy_points"] = round(100 * (ours_["test_accuracy"] - ref["test_accuracy"]), 2)
    result["goal"] = {"accuracy": 0.90, "seconds": 1800,
                      "met": ours_["test_accuracy"] >= 0.90 and ours_["command_seconds"] <= 1800}
    result["calibration_after"] = calibrate()
    result["date"] = time.strftime("%Y-%m-%d %H:%M")
    write("cifar", result)


if __name__ == "__main__":
    main()
