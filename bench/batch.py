"""Batch inference over a folder of images: this process against Ray Data and Spark with 2 workers on 2 cores
(`deepworks use RUN FOLDER --out results.parquet --engine local|ray|spark`).

    python bench/batch.py     # about 3 minutes on 2 cores

A ResNet-20 (width 16) is trained for one epoch on the digits at 28 x 28 (its weights' quality does not change its
speed); 20,000 of MNIST's training images are written as PNG files; each engine answers the folder into Parquet
(shards of 500): the local engine with 2 torch threads, Ray and Spark with 2 workers of one thread each. Measured
per engine: the whole job's seconds (starting the engine and its workers included), and images a second once the
first shard is written (the shards after the first, over the time from the first shard's end to the last's), what a
job long enough to hide the start sees. The answers are checked to be identical. Goal (issue 35): >= 0.9x the local
images/s with 2 workers on 2 cores. Writes bench/results/batch.json.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, calibrate, machine, write  # noqa: E402

import deepworks as dw  # noqa: E402
from deepworks.batch import run_batch  # noqa: E402

IMAGES = 20_000
SHARD = 500


def write_pngs(folder: Path, n: int) -> None:
    import gzip

    from PIL import Image

    with gzip.open(SHARED_DATA / "mnist" / "train-images-idx3-ubyte.gz") as f:  # 16 bytes of header, then pixels
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:n]
    folder.mkdir(parents=True)
    for i, pixels in enumerate(x):
        Image.fromarray(pixels).save(folder / f"{i:05d}.png")


def measure(run, folder: Path, out: Path, engine: str) -> dict:
    """The whole job's time, and the times at which each shard was said written."""
    said = []
    t0 = time.perf_counter()
    run_batch(run, [folder], out, engine=engine, workers=2, shard_size=SHARD,
              progress=lambda line: said.append(time.perf_counter()) if "written" in line else None)
    whole = time.perf_counter() - t0
    first, last = said[0], said[-1]
    return {"whole_s": round(whole, 2), "first_shard_s": round(first - t0, 2),
            "images_per_s_whole": round(IMAGES / whole, 1),
            "images_per_s_once_started": round((len(said) - 1) * SHARD / max(last - first, 1e-9), 1)}


def main() -> None:
    import pyarrow.parquet as pq
    import torch

    before = calibrate()
    results, tables = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        trained = dw.train(model="resnet", depth=20, width=16, image_size=28, epochs=1, runs_dir=str(root / "runs"),
                           name="resnet", progress=False, baseline=False)
        write_pngs(root / "images", IMAGES)
        for engine in ("local", "ray", "spark"):
            torch.set_num_threads(2 if engine == "local" else 1)
            results[engine] = measure(trained.run.path, root / "images", root / f"{engine}.parquet", engine)
            tables[engine] = pq.read_table(root / f"{engine}.parquet").to_pylist()
            print(engine, results[engine], flush=True)
    for engine in ("ray", "spark"):
        results[engine]["identical_to_local"] = tables[engine] == tables["local"]
        for key in ("images_per_s_whole", "images_per_s_once_started"):
            results[engine][f"ratio_{key}_vs_local"] = round(results[engine][key] / results["local"][key], 2)
    result = {"what": f"batch inference of {IMAGES:,} MNIST PNG files with a ResNet-20 into Parquet, shards of "
                      f"{SHARD}: this process (2 threads) against Ray Data and Spark (2 workers of 1 thread)",
              **results, "goal": "images/s with 2 workers >= 0.9x local", "machine": machine(),
              "calibration": {"before": before, "after": calibrate()}}
    write("batch", result)


if __name__ == "__main__":
    main()
