"""Threads on a busy machine: deepworks' training throughput alone and beside one busy process, before and after
it chose its threads from the free cores and asked OpenMP for short spins (threads.py).

    python bench/threads.py                 # about 10 minutes on 2 cores
    python bench/threads.py --reps 1 --only text

Each measurement is a real `deepworks train` command in its own process (OpenMP reads its wait policy when torch
starts), one epoch, its throughput read from the run's metrics.jsonl (so start-up is not counted):
  before  what a plain torch program gets: libgomp's default spin (GOMP_SPINCOUNT=300000, its value when unset) and
          one thread per core (DEEPWORKS_THREADS=2 on this machine);
  after   deepworks' defaults: GOMP_SPINCOUNT=1000 and threads = the cores no other process is running on.
Workloads: `text`, the default 2 x 256 character LSTM on 200,000 characters of Python source; `translate`, the
default GRU encoder-decoder with attention on 3,000 generated date pairs. Conditions: `quiet`; `busy`, beside one
busy Python loop at normal priority; `busy-nice19`, the same loop at the lowest priority. Before and after alternate,
`reps` times each. Target: beside a busy process, at least half of the quiet throughput. Writes
bench/results/threads.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import calibrate, machine, write  # noqa: E402

CONFIGS = {
    "before": {"GOMP_SPINCOUNT": "300000", "DEEPWORKS_THREADS": str(os.cpu_count() or 2)},
    "after": {},
}
CONDITIONS = {"quiet": None, "busy": 0, "busy-nice19": 19}
CLEARED = ("GOMP_SPINCOUNT", "KMP_BLOCKTIME", "OMP_WAIT_POLICY", "OMP_NUM_THREADS", "DEEPWORKS_THREADS")
BUSY_LOOP = "import time\nend = time.time() + 900\nwhile time.time() < end: pass\n"


def make_data(folder: Path) -> dict[str, list[str]]:
    """The two workloads' `deepworks train` arguments, with their data written into `folder`."""
    from deepworks.data.pairs import dates_pairs
    from deepworks.data.text import python_stdlib

    (folder / "code.txt").write_text(python_stdlib().text[:200_000])
    pairs = dates_pairs(3000, seed=1)
    (folder / "dates.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in zip(pairs.source, pairs.target)))
    return {"text": ["--task", "text", "--data", str(folder / "code.txt")],
            "translate": ["--task", "translate", "--data", str(folder / "dates.tsv")]}


def throughput(args: list[str], config: dict, folder: Path, name: str) -> tuple[float, int]:
    """(units per second of one training epoch, threads the run used) for one `deepworks train` process."""
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env.update(config)
    runs = folder / "runs"
    subprocess.run([sys.executable, "-m", "deepworks", "train", *args, "--epochs", "1", "--quiet", "--no-baseline",
                    "--runs-dir", str(runs), "--name", name], check=True, env=env, stdout=subprocess.DEVNULL)
    run = runs / name
    epoch = next(json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
                 if json.loads(line).get("kind") == "epoch")
    threads = json.loads((run / "environment.json").read_text())["torch_threads"]
    return epoch["samples_per_s"], threads


def measure(workloads: dict, reps: int, folder: Path) -> dict:
    out: dict = {}
    for condition, nice in CONDITIONS.items():
        busy = None
        if nice is not None:
            busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP], preexec_fn=lambda n=nice: os.nice(n))
            time.sleep(1)
        try:
            for workload, args in workloads.items():
                figures = {c: [] for c in CONFIGS}
                used = {}
                for rep in range(reps):
                    for config, env in CONFIGS.items():
                        value, used[config] = throughput(args, env, folder, f"{workload}-{condition}-{config}-{rep}")
                        figures[config].append(value)
                        print(f"{condition:<12} {workload:<10} {config:<7} {value:>10,.0f}/s  ({used[config]} threads)",
                              flush=True)
                out.setdefault(workload, {})[condition] = {
                    config: {"per_s": values, "median": statistics.median(values), "threads": used[config]}
                    for config, values in figures.items()}
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
    for workload, conditions in out.items():
        quiet = conditions["quiet"]
        for condition, row in conditions.items():
            row["after_over_before"] = round(row["after"]["median"] / row["before"]["median"], 3)
            for config in CONFIGS:
                row[config]["share_of_quiet"] = round(row[config]["median"] / quiet[config]["median"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--only", help="comma-separated workloads: text, translate")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        workloads = make_data(folder)
        if options.only:
            workloads = {k: v for k, v in workloads.items() if k in options.only.split(",")}
        before = calibrate()
        load_before = os.getloadavg()
        results = measure(workloads, options.reps, folder)
        result = {"benchmark": "threads", "machine": machine(), "calibration_before": before,
                  "calibration_after": calibrate(), "load_average_before": [round(x, 2) for x in load_before],
                  "date": time.strftime("%Y-%m-%d %H:%M"), "reps": options.reps, "configs": CONFIGS,
                  "target": "busy: after.share_of_quiet >= 0.5", **results}
    write("threads", result)
    for workload, conditions in results.items():
        for condition, row in conditions.items():
            print(f"{workload:<10} {condition:<12} after/before {row['after_over_before']:.2f}   after at "
                  f"{row['after']['share_of_quiet']:.0%} of quiet, before at {row['before']['share_of_quiet']:.0%}")


if __name__ == "__main__":
    main()
