"""Helpers every benchmark shares: machine description, a one-second calibration, and the JSON result file.

The calibration (a dense matmul's GFLOP/s and a tiny op's latency) is taken before and after the
measurements, so a machine that slowed down during the run shows in the JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

os.environ.setdefault("DEEPWORKS_THREADS", "2")  # deepworks' side uses the threads the plain loops beside it use
RESULTS = Path(__file__).resolve().parent / "results"
SHARED_DATA = Path(os.environ.get("DEEPWORKS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def calibrate(seconds: float = 1.0) -> dict:
    a, b = torch.randn(512, 512), torch.randn(512, 512)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds / 2:
        a @ b
        n += 1
    gflops = 2 * 512 ** 3 * n / (time.perf_counter() - t0) / 1e9
    x, m, t0 = torch.ones(8), 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds / 2:
        x.add_(1)
        m += 1
    return {"matmul_gflops": round(gflops, 1), "tiny_op_us": round((time.perf_counter() - t0) / m * 1e6, 2)}


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform(),
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}


def write(name: str, result: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return path


def timed_fit(task, data, cfg, epochs: int, validate: bool = False):
    """deepworks' own loop in a throw-away run directory (checkpoints, metrics log and all); validation off unless
    asked for, so a plain loop beside it does the same work. With validation, the model comes back with the best
    epoch's weights, as `dw.train` gives it. Returns (seconds, FitResult, model)."""
    from deepworks.run import Run
    from deepworks.training.loop import fit

    cfg.train.epochs = epochs
    val = data.val if validate else tuple(x[:0] for x in data.val)
    with tempfile.TemporaryDirectory() as tmp:
        run = Run.create(tmp, "bench")
        cfg.save(run.config_file)
        torch.manual_seed(cfg.seed)
        model = task.build_model()
        t0 = time.perf_counter()
        result = fit(task, model, data.train, val, cfg, run, progress=False)
        seconds = time.perf_counter() - t0
        if validate and cfg.train.restore_best and run.best_file.exists():  # as dw.train ends
            model.load_state_dict(run.load_weights(run.best_file))
        return seconds, result, model


def loop_race(task, data, cfg, epochs: int, plain, rounds: int, unit: str) -> dict:
    """deepworks' loop (validating after each epoch, checkpoints and the metrics log) and `plain(cfg, task, data,
    epochs)` -> its seconds, alternated in one process `rounds` times on 2 threads: each one's seconds, the
    medians' `unit`s per second and their ratio (goal: at least 1.0)."""
    import statistics

    torch.set_num_threads(2)
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(timed_fit(task, data, cfg, epochs, validate=True)[0])
        theirs.append(plain(cfg, task, data, epochs))
    seen = epochs * len(data.train[0])
    ours_s, plain_s = statistics.median(ours), statistics.median(theirs)
    return {"epochs": epochs, "rounds": rounds, unit: len(data.train[0]),
            "deepworks_seconds": [round(s, 2) for s in ours], "plain_seconds": [round(s, 2) for s in theirs],
            f"deepworks_{unit}_per_s": round(seen / ours_s, 1), f"plain_{unit}_per_s": round(seen / plain_s, 1),
            "loop_speed_ratio": round(plain_s / ours_s, 3), "goal_met": bool(plain_s / ours_s >= 1.0)}


def measure(name: str, sections: dict, selected: list[str]) -> dict:
    """Run the selected sections (in the order of `sections`, name -> function returning a dict), each between
    two calibrations, dated and with the machine it ran on, and write them into results/NAME.json beside the
    sections an earlier partial run measured (which keep their own machine: the top-level one is the latest run's)."""
    result = {"benchmark": name, "machine": machine()}
    path = RESULTS / f"{name}.json"
    if path.exists():
        old = json.loads(path.read_text())
        ran_on = {"machine": old["machine"]} if isinstance(old.get("machine"), dict) else {}
        result.update({k: {**ran_on, **v} if isinstance(v, dict) else v for k, v in old.items() if k in sections})
    for section, run in sections.items():
        if section in selected:
            print(section, flush=True)
            before = calibrate()
            result[section] = {**run(), "calibration_before": before, "calibration_after": calibrate(),
                               "date": time.strftime("%Y-%m-%d %H:%M"), "machine": result["machine"]}
            write(name, result)  # after each section: a crash later keeps what was measured
    return result


def bench_args(doc: str, sections: dict, needs: Path, budget_s: int | None = None) -> argparse.Namespace:
    """A benchmark's command line: --only (some of `sections`), and --budget (training seconds per side) where it has
    one; it stops with a word when the shared data it reads (`needs`) is not there."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(sections), help=f"sections to run [default: {','.join(sections)}]")
    if budget_s is not None:
        parser.add_argument("--budget", type=int, default=budget_s,
                            help=f"training seconds per side [default: {budget_s}]")
    args = parser.parse_args()
    if not needs.exists():
        sys.exit(f"{needs.relative_to(SHARED_DATA)} not found under {SHARED_DATA}; set DEEPWORKS_SHARED_DATA.")
    args.only = args.only.split(",")
    return args


def measure_and_print(name: str, sections: dict, selected: list[str]) -> None:
    """measure(), then what it measured (the machine left out) on the terminal."""
    result = measure(name, sections, selected)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))


def epochs_in_budget(train_images, n: int, budget_s: float, small: int, large: int) -> int:
    """Whole epochs of n images that fit in budget_s, from the marginal cost of an image: `train_images(k)` trains
    on k images and returns its seconds; timing `small` and `large` and dividing the difference by large - small
    leaves out fixed costs (a run directory, checkpoints, first calls), which a single short probe counts as if
    every image paid them and so underestimates the speed (by a quarter on a 5-second probe here)."""
    train_images(small)  # warm-up, not counted
    per_image = (train_images(large) - train_images(small)) / (large - small)
    return max(1, math.floor(budget_s / (per_image * n)))


def extract_photos(tar_path: Path, folder: Path, per_class: int, classes: dict[str, str]) -> None:
    """The first `per_class` JPEGs (in the tarball's order) of each class of the shared CIFAR-10 tarball named in
    `classes` into folder/NAME/, NAME being what `classes` maps the class to."""
    import tarfile

    taken = dict.fromkeys(classes, 0)
    with tarfile.open(tar_path, "r:gz") as tar:
        for member in tar:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) < 3 or parts[-2] not in taken or taken[parts[-2]] >= per_class:
                continue
            target = folder / classes[parts[-2]] / parts[-1]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
            taken[parts[-2]] += 1


def deepworks_cli(*args: str, cwd: Path) -> dict:
    """A real `deepworks ... --json` command (in a process of its own, on 2 threads); its JSON answer."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "deepworks", *args, "--json"], cwd=cwd, check=True,
                         capture_output=True, text=True, env={**os.environ, "DEEPWORKS_THREADS": "2"})
    return json.loads(out.stdout)
