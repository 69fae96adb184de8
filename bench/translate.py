"""Translation benchmark: Multi30k German -> English, scored on test2016, 15 minutes of training on this machine.

    python bench/translate.py                     # everything (about 50 minutes on 2 cores)
    python bench/translate.py --only transformer

Sections:
  gru          deepworks' bidirectional-GRU encoder with a Bahdanau-attention GRU decoder (at most 8 M parameters),
               for as many whole epochs as a probe says fit in 15 minutes (validation off the clock); then a plain
               PyTorch loop (random batches, as a textbook loop has them) trains the same model class from the same
               initial weights for as many whole epochs as its own probe says fit in the same 15 minutes.
               Test BLEU and chrF of both, and the throughput ratio (training pairs per second).
  transformer  deepworks' small Transformer (at most 8 M parameters), 15 minutes likewise.
BLEU is sacrebleu's corpus BLEU (13a tokenisation) of lowercased hypotheses against the lowercased original
references, greedy decoding; beam 5 is reported beside it. Writes bench/results/translate.json.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, bench_args, measure_and_print, timed_fit  # noqa: E402

import deepworks as dw  # noqa: E402
from deepworks.tasks.translate import Translation, trim  # noqa: E402

torch.set_num_threads(2)
BUDGET_S = 900
MAX_PARAMETERS = 8_000_000
COMMON = dict(task="translate", data="multi30k", data_dir=str(SHARED_DATA), min_freq=2, max_len=50,
              optimizer="adamw", schedule="onecycle", clip_grad=1.0, baseline=False)
MODELS = {
    "gru": dict(model="gru", attention="bahdanau", width=256, embed_size=256, tie_weights=True, dropout=0.2,
                label_smoothing=0.1, batch_size=64, lr=0.003),
    "transformer": dict(model="transformer", width=256, depth=3, heads=8, ff_size=512, tie_weights=True, dropout=0.1,
                        label_smoothing=0.1, batch_size=128, lr=0.001),
}
TARGET_BLEU = {"gru": 34.0, "transformer": 36.0}


def prepared(kind: str):
    cfg = dw.api.make_config(**COMMON, **MODELS[kind])
    cfg.train.monitor = "val_loss"
    task = Translation(cfg)
    return cfg, task, task.prepare(progress=False)


def epochs_for_budget(kind: str, plain: bool = False) -> tuple[int, float]:
    """Whole epochs that fit in BUDGET_S, from the speed of 50 batches of real data (of the plain loop if asked),
    timed on the second of two passes: the first pays for the process's warm-up."""
    cfg, task, data = prepared(kind)
    rows = 50 * cfg.train.batch_size
    pick = torch.randperm(len(data.train[0]), generator=torch.Generator().manual_seed(1))[:rows]
    probe = type(data)(train=tuple(x[pick] for x in data.train), val=data.val, test=data.test, meta=data.meta)
    for _ in range(2):
        if plain:
            torch.manual_seed(cfg.seed)
            seconds = plain_loop(task.build_model(), probe.train, cfg, 1)
        else:
            seconds = timed_fit(task, probe, cfg, 1)[0]
    pairs_per_s = rows / seconds
    epochs = max(1, math.floor(BUDGET_S * pairs_per_s / len(data.train[0])))
    print(f"  probe {pairs_per_s:,.0f} pairs/s -> {epochs} epochs of {len(data.train[0]):,} pairs", flush=True)
    return epochs, pairs_per_s


def test_scores(task, model, beams=(1, 5)) -> dict:
    out = {}
    for beam in beams:
        t0 = time.perf_counter()
        scores = task.scores(model, "test", torch.device("cpu"), beam)
        out[f"beam{beam}"] = {"bleu": round(scores["bleu"], 2), "chrf": round(scores["chrf"], 2),
                              "decode_seconds": round(time.perf_counter() - t0, 1)}
        signature = scores["bleu_signature"]
    print(f"  test BLEU {out}", flush=True)
    return {**out, "bleu": out["beam1"]["bleu"], "bleu_signature": signature}


def deepworks_run(kind: str) -> tuple[dict, nn.Module, tuple]:
    epochs, probe = epochs_for_budget(kind)
    cfg, task, data = prepared(kind)
    _, fit_result, model = timed_fit(task, data, cfg, epochs, validate=True)
    history = fit_result.history
    seconds = sum(r["seconds"] for r in history)
    parameters = sum(p.numel() for p in model.parameters())
    assert parameters <= MAX_PARAMETERS, f"{kind}: {parameters:,} parameters is over the {MAX_PARAMETERS:,} limit"
    print(f"  deepworks {kind}: val loss {history[-1]['val_loss']:.3f} after {seconds:.0f} s", flush=True)
    result = {"settings": {k: v for k, v in {**COMMON, **MODELS[kind]}.items() if k != "data_dir"},
              "parameters": parameters, "vocab": {"de": len(data.meta["src_vocab"]), "en": len(data.meta["tgt_vocab"])},
              "probe_pairs_per_s": round(probe, 1), "epochs": epochs, "train_pairs": len(data.train[0]),
              "train_seconds": round(seconds, 1), "train_seconds_per_epoch": [r["seconds"] for r in history],
              "val_loss_per_epoch": [round(r["val_loss"], 4) for r in history],
              "pairs_per_s": round(epochs * len(data.train[0]) / seconds, 1),
              "test": test_scores(task, model), "target_bleu": TARGET_BLEU[kind]}
    return result, task, data


def plain_loop(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor], cfg, epochs: int) -> float:
    """A textbook PyTorch training loop for an encoder-decoder: shuffled batches cut to their longest sentence,
    teacher forcing, cross-entropy ignoring padding (label-smoothed as deepworks' is), AdamW with a one-cycle
    schedule, gradient clipping.
    Returns the training seconds."""
    t = cfg.train
    src_all, tgt_all = train
    n, b = len(src_all), t.batch_size
    per_epoch = math.ceil(n / b)
    opt = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=t.lr, total_steps=epochs * per_epoch)
    generator = torch.Generator().manual_seed(cfg.seed)
    model.train()
    t0 = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for i in range(per_epoch):
            idx = order[i * b:(i + 1) * b]
            src, tgt = trim(src_all[idx]), trim(tgt_all[idx])
            logits = model(src, tgt[:, :-1])
            loss = F.cross_entropy(logits.flatten(0, 1), tgt[:, 1:].flatten(), ignore_index=0,
                                   label_smoothing=t.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), t.clip_grad)
            opt.step()
            schedule.step()
    return time.perf_counter() - t0


def gru() -> dict:
    ours, task, data = deepworks_run("gru")
    cfg = task.cfg
    epochs, probe = epochs_for_budget("gru", plain=True)
    torch.manual_seed(cfg.seed)
    reference = task.build_model()  # the same class and initial weights as deepworks' run started from
    seconds = plain_loop(reference, data.train, cfg, epochs)
    print(f"  plain loop: {epochs} epochs in {seconds:.0f} s", flush=True)
    val_loss = task.evaluate(reference, data.val, torch.device("cpu"))["loss"]
    plain = {"probe_pairs_per_s": round(probe, 1), "epochs": epochs, "train_seconds": round(seconds, 1),
             "val_loss": round(val_loss, 4), "pairs_per_s": round(epochs * len(data.train[0]) / seconds, 1),
             "test": test_scores(task, reference, beams=(1,))}
    return {"deepworks": ours, "plain": plain,
            "throughput_ratio": round(ours["pairs_per_s"] / plain["pairs_per_s"], 4), "target_throughput_ratio": 0.97,
            "note": "the plain loop trains deepworks' Seq2Seq module (plain nn.Module code) on random batches; "
                    "deepworks groups sentences of similar length into batches (its default), which is most of "
                    "the throughput difference. Both are scored by the same greedy decoder."}


def transformer() -> dict:
    return deepworks_run("transformer")[0]


def main() -> None:
    sections = {"gru": gru, "transformer": transformer}
    args = bench_args(__doc__, sections, SHARED_DATA / "multi30k" / "train.de.gz")
    measure_and_print("translate", sections, args.only)


if __name__ == "__main__":
    main()
