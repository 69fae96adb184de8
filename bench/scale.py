"""Scaling benchmark: streamed against in-memory images, memory while streaming, and training across processes.

    python bench/scale.py                      # every section (about 10 minutes on 2 cores)
    python bench/scale.py stream allreduce     # some of them

Sections, each written into bench/results/scale.json between two calibrations:
- stream: the CIFAR-10 JPEG folder (../shared/data/cifar10_jpeg, 50,000 + 10,000 files) trained from memory and
  streamed through DataLoader workers, LeNet-5 and ResNet-20 at 32 px; images per second over the same steps.
- memory: peak memory (PSS of the training process and its workers together) while streaming synthetic folders
  of 10,000, 50,000 and 200,000 JPEGs at 64 px.
- engines: MNIST with LeNet-5, one process with 2 threads against torchrun with 2 processes of 1 thread (same
  global batch); and each engine's start-up cost on the digits (wall time beyond the local run's).
- allreduce: the time of one gradient all-reduce between 2 processes on this machine (gloo, loopback) for the
  bundled models' sizes, and the scaling model built from it (README "Scaling out").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

from common import SHARED_DATA, measure

ROOT = Path(tempfile.gettempdir()) / "deepworks-bench-scale"
STEPS, SKIP = 100, 5  # steps timed, after steps skipped (worker start, first calls)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cifar_folder() -> Path:
    folder = ROOT / "cifar10_jpeg"
    if not (folder / "test").is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        for part in ("train", "test"):
            with tarfile.open(SHARED_DATA / "cifar10_jpeg" / f"{part}.tar.gz") as tar:
                tar.extractall(folder, filter="data")
    return folder


TIMED = """
import json, sys, time
import deepworks as dw

class StepTimer:
    def __init__(self, skip, steps):
        self.skip, self.steps, self.t0, self.seconds, self.images = skip, steps, None, None, 0
    def on_step_end(self, trainer):
        done = trainer.epoch * trainer.steps + trainer.step
        if done == self.skip:
            self.t0 = time.perf_counter()
        elif done > self.skip:
            self.images += trainer.batch_size_seen
        if done == self.skip + self.steps:
            self.seconds = time.perf_counter() - self.t0
            trainer.stop_training, trainer.stop_reason = True, "benchmark"

settings = json.loads(sys.argv[1])
timer = StepTimer(settings.pop("skip"), settings.pop("steps"))
t0 = time.perf_counter()
trained = dw.train(progress=False, callbacks=[timer], **settings)
print(json.dumps({"images_per_s": round(timer.images / timer.seconds, 1), "wall_s": round(time.perf_counter() - t0, 1),
                  "source": trained.task.meta["source"]}))
"""


def tree_rss_mb(pid: int) -> float:
    """Memory of a process and all its descendants, in MB: the sum of their proportional set sizes (PSS, from
    /proc/PID/smaps_rollup), which counts a page that forked workers share once in all, not once per process."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
        todo += children.get(p, [])
    return total / 1024


def timed_run(settings: dict, cwd: Path, threads: int = 2, steps: int = STEPS) -> dict:
    """Train in a fresh process (its own memory), sampling the process tree's memory every 0.2 s."""
    env = {**os.environ, "DEEPWORKS_THREADS": str(threads)}
    p = subprocess.Popen([sys.executable, "-c", TIMED, json.dumps({"skip": SKIP, "steps": steps, **settings})],
                         cwd=cwd, env=env, stdout=subprocess.PIPE, text=True)
    peak = [0.0]
    done = threading.Event()

    def sample():
        while not done.wait(0.2):
            peak[0] = max(peak[0], tree_rss_mb(p.pid))

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    out, _ = p.communicate()
    done.set()
    watcher.join()
    if p.returncode != 0:
        raise RuntimeError(f"run failed: {settings}")
    return {**json.loads(out.strip().splitlines()[-1]), "peak_rss_mb": round(peak[0], 1)}


def stream_section() -> dict:
    """Each model from memory and streamed, alternated over 2 reps (this machine drifts); means and their ratio."""
    folder = cifar_folder()
    out = {"data": "CIFAR-10 JPEG folder, 50,000 train + 10,000 test files, 32 px", "steps": STEPS,
           "batch_size": 128, "workers": "the default (1 on 2 cores), and 2", "augment": "crop+flip",
           "loadavg_before": loadavg()}
    for model in ("lenet", "resnet"):
        common = dict(data=str(folder), model=model, batch_size=128, epochs=1, baseline=False, augment="crop+flip",
                      image_size=32)
        modes = {"memory": {"stream": "off"}, "stream": {"stream": "on"},  # the default: 1 worker on 2 cores
                 "stream_2_workers": {"stream": "on", "workers": 2}}
        runs = {mode: [] for mode in modes}
        for rep in range(2):
            for mode in (modes if rep == 0 else reversed(list(modes))):
                runs[mode].append(timed_run({**common, **modes[mode], "name": f"{model}-{mode}-{rep}"}, ROOT))
                print(model, mode, runs[mode][-1], flush=True)
        mean = {mode: round(sum(r["images_per_s"] for r in rs) / len(rs), 1) for mode, rs in runs.items()}
        out[model] = {"runs": runs, "images_per_s_mean": mean,
                      "peak_mb": {mode: max(r["peak_rss_mb"] for r in rs) for mode, rs in runs.items()},
                      "ratio_stream_over_memory": round(mean["stream"] / mean["memory"], 3),
                      "ratio_stream_2_workers_over_memory": round(mean["stream_2_workers"] / mean["memory"], 3)}
    out["loadavg_after"] = loadavg()
    return out


def synthetic_folder(n: int) -> Path:
    """n JPEGs at 64 px in 10 class folders: 500 distinct images, the rest hard links to them (fast to make; the
    streaming path reads and decodes every file all the same)."""
    import numpy as np
    from PIL import Image

    folder = ROOT / f"synthetic-{n}"
    if (folder / ".complete").exists():
        return folder
    rng = np.random.default_rng(0)
    sources = []
    (ROOT / "sources").mkdir(parents=True, exist_ok=True)
    for i in range(500):
        path = ROOT / "sources" / f"{i}.jpg"
        if not path.exists():
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path, quality=90)
        sources.append(path)
    for c in range(10):
        (folder / f"class{c}").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        target = folder / f"class{i % 10}" / f"{i}.jpg"
        if not target.exists():
            os.link(sources[i % 500], target)
    (folder / ".complete").touch()
    return folder


def memory_section() -> dict:
    out = {"image_size": 64, "model": "lenet", "workers": "the default (1 on 2 cores)", "steps": 40,
           "loadavg_before": loadavg()}
    for n in (10_000, 50_000, 200_000):
        folder = synthetic_folder(n)
        result = timed_run(dict(data=str(folder), model="lenet", image_size=64, batch_size=128, epochs=1,
                                baseline=False, stream="on", name=f"synthetic-{n}"), ROOT, steps=40)
        out[str(n)] = result
        print(n, result, flush=True)
    out["loadavg_after"] = loadavg()
    return out


def engines_section() -> dict:
    """One process of 2 threads against torchrun's 2 processes of 1 thread on MNIST (3 epochs, the last two
    timed, 2 alternated reps each), and each engine's start-up cost on the digits."""
    out = {"loadavg_before": loadavg()}
    command = [sys.executable, "-m", "deepworks", "train", "--data", "mnist", "--data-dir", str(SHARED_DATA),
               "--model", "lenet", "--epochs", "3", "--batch-size", "256", "--no-baseline", "--quiet", "--json"]
    paths = {"one process, 2 threads": ([], "2"),
             "torchrun, 2 processes of 1 thread": (["--engine", "torchrun", "--nproc", "2"], "1")}
    rows = {label: [] for label in paths}
    for rep in range(2):
        for label, (extra, threads) in (paths.items() if rep % 2 == 0 else reversed(list(paths.items()))):
            env = {**os.environ, "DEEPWORKS_THREADS": threads}
            t0 = time.perf_counter()
            result = json.loads(subprocess.run(command + extra + ["--name", f"mnist-{len(rows[label])}-{threads}"],
                                               cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout)
            epochs = [json.loads(line) for line in Path(result["run"] if Path(result["run"]).is_absolute()
                                                          else ROOT / result["run"], "metrics.jsonl").open()]
            speeds = [r["samples_per_s"] for r in epochs if r.get("kind") == "epoch"][1:]
            rows[label].append({"wall_s": round(time.perf_counter() - t0, 1), "images_per_s": sorted(speeds)[len(speeds) // 2],
                                "test_accuracy": result["test"]["accuracy"]})
            print(label, rows[label][-1], flush=True)
    out["mnist_lenet_3_epochs_batch_256"] = rows
    median = {label: sorted(r["images_per_s"] for r in runs)[len(runs) // 2] for label, runs in rows.items()}
    out["images_per_s_median"] = median
    out["ratio_torchrun_over_one_process"] = round(median["torchrun, 2 processes of 1 thread"]
                                                   / median["one process, 2 threads"], 3)
    digits = ["--model", "mlp", "--epochs", "1", "--no-baseline", "--quiet", "--json"]
    start = {}
    for engine in ("local", "torchrun", "ray", "spark"):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "deepworks", "train", *digits, "--engine", engine, "--nproc", "2",
                        "--name", f"start-{engine}"], cwd=ROOT, env={**os.environ, "DEEPWORKS_THREADS": "1"},
                       capture_output=True, text=True, check=True)
        start[engine] = round(time.perf_counter() - t0, 1)
    out["digits_wall_s"] = start
    out["startup_cost_s"] = {k: round(v - start["local"], 1) for k, v in start.items() if k != "local"}
    out["loadavg_after"] = loadavg()
    return out


ALLREDUCE = """
import os, sys, time, json
import torch, torch.distributed as dist
dist.init_process_group("gloo")
sizes = json.loads(sys.argv[1])
out = {}
for name, n in sizes.items():
    t = torch.randn(n + 1)
    for _ in range(5):
        dist.all_reduce(t)
    times = []
    for _ in range(50):
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_reduce(t)
        times.append(time.perf_counter() - t0)
    out[name] = sorted(times)[len(times) // 2] * 1000
if dist.get_rank() == 0:
    print(json.dumps(out))
dist.destroy_process_group()
"""


def compute_ms(model, shape: tuple, batch: int) -> float:
    """Median time of one training step (forward, backward, SGD step) of `model` on random data, this process."""
    import torch
    import torch.nn.functional as F

    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(batch, *shape), torch.randint(0, 10, (batch,))
    times = []
    for i in range(13):
        t0 = time.perf_counter()
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2] * 1000


def allreduce_section() -> dict:
    """The all-reduce measured here, and the scaling model: time per step = compute / N + ring all-reduce."""
    import torch

    from deepworks.config import ModelConfig
    from deepworks.training.distributed import free_port
    from deepworks.models import build_image_classifier

    torch.set_num_threads(2)
    models = {"lenet (MNIST, batch 256)": (build_image_classifier(ModelConfig(name="lenet"), 1, 28, 10), (1, 28, 28), 256),
              "resnet-20 (CIFAR-10, batch 128)": (build_image_classifier(ModelConfig(name="resnet"), 3, 32, 10),
                                                  (3, 32, 32), 128)}
    sizes = {name: sum(p.numel() for p in m.parameters()) for name, (m, _, _) in models.items()}
    script = ROOT / "allreduce.py"
    ROOT.mkdir(parents=True, exist_ok=True)
    script.write_text(ALLREDUCE)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "--nnodes=1",
                             "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{free_port()}", str(script),
                             json.dumps(sizes)], env=env, capture_output=True, text=True, check=True)
    measured_ms = json.loads(result.stdout.strip().splitlines()[-1])
    out = {}
    for name, (model, shape, batch) in models.items():
        compute = compute_ms(model, shape, batch)
        megabytes = sizes[name] * 4 / 1e6
        table = {}
        for nodes in (1, 2, 4, 8, 16, 32, 64):
            for gbit in (10, 100):
                ring = 0.0 if nodes == 1 else (2 * (nodes - 1) / nodes * megabytes * 8 / gbit
                                               + 2 * (nodes - 1) * 0.05)  # ms: bandwidth term + 50 us per hop
                step = compute / nodes + ring
                table[f"{nodes} x {gbit} Gbit/s"] = {"step_ms": round(step, 2), "speedup": round(compute / step, 1)}
        out[name] = {"parameters": sizes[name], "gradient_mb": round(megabytes, 2),
                     "compute_ms_per_step_one_process_2_threads": round(compute, 2),
                     "allreduce_ms_measured_2_processes_loopback": round(measured_ms[name], 3),
                     "model": table}
    return {"model": "time per step = compute / N + 2 (N-1)/N x gradient bytes / bandwidth + 2 (N-1) x 50 us; the "
                     "global batch stays the same, so each of N processes computes 1/N of it",
            "sizes": out, "loadavg": loadavg()}


SECTIONS = {"stream": stream_section, "memory": memory_section, "engines": engines_section,
            "allreduce": allreduce_section}

if __name__ == "__main__":
    ROOT.mkdir(parents=True, exist_ok=True)
    measure("scale", SECTIONS, sys.argv[1:] or list(SECTIONS))
