"""Text classification benchmark: deepworks' textclass task on SST-2 and langid, beside the TF-IDF baseline and a
plain PyTorch loop.

    python bench/textclass.py                  # everything (about 5 minutes on 2 cores)
    python bench/textclass.py --only loop

Sections:
  sst2     fastText (the default) trained with deepworks' defaults on SST-2's 67,349 training sentences; accuracy on
           its dev set (872, the validation split here) and its labelled test set (1,821), the training seconds, and
           the TF-IDF baseline (word 1-2-grams, character 2-5-grams, logistic regression) on the same test set.
  minilm_frozen  MiniLM-L6 (--pretrained --freeze) on SST-2: a head on its sentence embeddings of every training
           sentence, computed once, then 5 epochs on them; dev and test accuracy, training seconds.
  minilm_tuned   MiniLM-L6 fine-tuned (--pretrained) on SST-2 for 1 epoch: the head first, then every layer at a rate
           that decays with depth; dev and test accuracy, training seconds (about 20 minutes on 2 cores).
  langid   fastText on Multi30k's English, German and French captions by language: accuracy and wall seconds.
  loop     the same fastText model, data and hyper-parameters through deepworks' loop and through a plain PyTorch
           loop, alternated in one process, one epoch of SST-2 each; sentences/s and their ratio.
Writes bench/results/textclass.json.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, bench_args, measure_and_print, timed_fit  # noqa: E402

import deepworks as dw  # noqa: E402
from deepworks.tasks.textclass import TextClassification, trimmed  # noqa: E402

torch.set_num_threads(2)
COMMON = dict(task="textclass", data_dir=str(SHARED_DATA), progress=False)
RUNS = tempfile.mkdtemp(prefix="deepworks-bench-textclass-")  # the runs are not kept: their figures are


def trained(data: str, **extra) -> tuple[dict, float, dw.Trained]:
    """A run with deepworks' defaults: its results, its wall seconds from the call to the report, and the run."""
    t0 = time.perf_counter()
    run = dw.train(data=data, runs_dir=RUNS, name=f"bench-{data}", **COMMON, **extra)
    return run.results, time.perf_counter() - t0, run


def sst2() -> dict:
    results, seconds, run = trained("sst2")
    val = [r for r in run.run.metrics() if r.get("kind") == "epoch"]
    base = results["baseline"]
    return {"model": "fasttext (defaults)", "dev_accuracy": round(max(r["val_accuracy"] for r in val), 4),
            "test_accuracy": round(results["test"]["accuracy"], 4),
            "test_macro_f1": round(results["test"]["macro_f1"], 4),
            "epochs": results["fit"]["epochs"], "train_seconds": results["fit"]["train_seconds"],
            "wall_seconds": round(seconds, 1), "baseline": base["model"],
            "baseline_test_accuracy": round(base["accuracy"], 4), "baseline_seconds": base["seconds"],
            "beats_baseline_by": round(results["test"]["accuracy"] - base["accuracy"], 4),
            "note": "dev accuracy is the best epoch's validation accuracy (SST-2's dev set is this run's validation "
                    "split); test is the labelled SST binary test set"}


def sst2_accuracy(name: str, target: str, **extra) -> dict:
    """A run on SST-2 with these settings: its dev (validation) and test accuracy, seconds and settings."""
    results, seconds, run = trained("sst2", **extra)
    val = [r for r in run.run.metrics() if r.get("kind") == "epoch"]
    t = run.cfg.train
    return {"model": name, "dev_accuracy": round(val[-1]["val_accuracy"], 4),
            "best_dev_accuracy": round(max(r["val_accuracy"] for r in val), 4),
            "test_accuracy": round(results["test"]["accuracy"], 4), "epochs": results["fit"]["epochs"],
            "train_seconds": results["fit"]["train_seconds"], "wall_seconds": round(seconds, 1),
            "settings": {"lr": t.lr, "batch_size": t.batch_size, "body_lr": run.cfg.model.body_lr},
            "target": target}


def minilm_frozen() -> dict:
    return sst2_accuracy("minilm --pretrained --freeze (defaults)", "dev accuracy >= 0.82 within 3 minutes",
                         pretrained=True, freeze=True, baseline=False)


def minilm_tuned() -> dict:
    return sst2_accuracy("minilm --pretrained, 1 epoch", "dev accuracy >= 0.90 within 30 minutes",
                         pretrained=True, epochs=1, baseline=False)


def langid() -> dict:
    results, seconds, _ = trained("langid")
    return {"model": "fasttext (defaults)", "test_accuracy": round(results["test"]["accuracy"], 4),
            "test_texts": results["test"]["texts"], "epochs": results["fit"]["epochs"],
            "train_seconds": results["fit"]["train_seconds"], "wall_seconds": round(seconds, 1),
            "target": "accuracy >= 0.995 within 60 s"}


def plain_loop(model, x, y, cfg, steps: int) -> float:
    """A textbook loop over the same batches in the same order (trimmed of all-padding columns, as deepworks
    trims them); returns seconds."""
    t = cfg.train
    table = model.embedding.weight  # fastText's table has sparse gradients: Adam's sparse form updates it
    opts = [torch.optim.AdamW([p for p in model.parameters() if p is not table], lr=t.lr, weight_decay=t.weight_decay),
            torch.optim.SparseAdam([table], lr=t.lr)]
    schedules = [torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=t.lr, total_steps=steps) for opt in opts]
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(cfg.seed))
    b = t.batch_size
    model.train()
    t0 = time.perf_counter()
    for step in range(steps):
        idx = order[step * b:(step + 1) * b]
        loss = F.cross_entropy(model(trimmed(x[idx])), y[idx])
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt, schedule in zip(opts, schedules):
            opt.step()
            schedule.step()
    return time.perf_counter() - t0


def loop(reps: int = 4) -> dict:
    cfg = dw.api.make_config(data="sst2", **{k: v for k, v in COMMON.items() if k != "progress"}, baseline=False)
    task = TextClassification(cfg)
    data = task.prepare(progress=False)
    x, y = data.train
    steps = len(x) // cfg.train.batch_size
    ours, plain = [], []

    def ours_once():
        ours.append(len(x) / timed_fit(task, data, cfg, 1)[0])

    def plain_once():
        torch.manual_seed(cfg.seed)
        plain.append(len(x) / plain_loop(task.build_model(), x, y, cfg, steps))

    timed_fit(task, data, cfg, 1)  # not counted: the first run in a process pays for kernel and allocator set-up
    for rep in range(reps):
        for run in ((ours_once, plain_once) if rep % 2 == 0 else (plain_once, ours_once)):
            run()
        print(f"  rep {rep + 1} deepworks {ours[-1]:,.0f} texts/s  plain {plain[-1]:,.0f} texts/s", flush=True)
    return {"model": "fasttext", "texts_per_rep": len(x), "reps": reps,
            "deepworks_texts_per_s": [round(v) for v in ours], "plain_texts_per_s": [round(v) for v in plain],
            "ratio": round(statistics.median(ours) / statistics.median(plain), 4),
            "paired_ratio": round(statistics.median(a / b for a, b in zip(ours, plain)), 4),
            "note": "one epoch of SST-2 per rep after an uncounted warm-up, alternating which loop goes first; "
                    "deepworks' figure includes its end-of-epoch checkpoint and metrics log; validation is off "
                    "for both."}


def main() -> None:
    sections = {"sst2": sst2, "minilm_frozen": minilm_frozen, "minilm_tuned": minilm_tuned, "langid": langid,
                "loop": loop}
    args = bench_args(__doc__, sections, SHARED_DATA / "sst2" / "train.tsv.gz")
    measure_and_print("textclass", sections, args.only)


if __name__ == "__main__":
    main()
