"""Text generation benchmark: a char LSTM on Tiny Shakespeare, deepworks beside plain PyTorch.

    python bench/text.py                  # everything (about 13 minutes on 2 cores)
    python bench/text.py --only throughput,sampling

Sections:
  throughput  the same 2 x 256 LSTM, data layout and hyper-parameters through deepworks' loop and through a plain
              PyTorch loop, alternated in one process on the first 300,000 characters; characters/s and the ratio.
  budget      5 minutes of training each: deepworks (as many whole epochs as a probe says fit in 5 minutes,
              validation off the clock) and the plain loop for the same number of steps; validation loss
              in nats/char on the last 10 % of the text (as nanoGPT splits it), measured the same way for both.
  sampling    characters per second at batch 1: deepworks' `stream` and a textbook sampling loop, same weights.
Writes bench/results/text.json.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, bench_args, measure_and_print, timed_fit  # noqa: E402

import deepworks as dw  # noqa: E402
from deepworks.tasks.text import TextGeneration  # noqa: E402

torch.set_num_threads(2)
BUDGET_S = 300
SETTINGS = dict(task="text", data="tiny-shakespeare", data_dir=str(SHARED_DATA), model="lstm", depth=2, width=256,
                embed_size=64, dropout=0.0, seq_len=64, batch_size=32, optimizer="adamw", lr=0.01,
                weight_decay=0.0, schedule="onecycle", clip_grad=1.0, baseline=False)


class PlainCharLSTM(nn.Module):
    """The reference model, written as a PyTorch user would: the same layers and initialisation as deepworks'."""

    def __init__(self, vocab: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, 64)
        self.rnn = nn.LSTM(64, 256, 2, batch_first=True)
        self.drop = nn.Dropout(0.0)
        self.head = nn.Linear(256, vocab)

    def forward(self, x, state=None):
        out, state = self.rnn(self.drop(self.embed(x)), state)
        return self.head(self.drop(out)), state


def prepared(**extra):
    cfg = dw.api.make_config(**{**SETTINGS, **extra})
    task = TextGeneration(cfg)
    cfg.train.monitor = "val_loss"
    return cfg, task, task.prepare(progress=False)


def plain_loop(model, windows, cfg, steps: int, per_epoch: int) -> float:
    """A textbook truncated-BPTT loop over the same windows, in the same order; returns seconds."""
    t = cfg.train
    opt = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=t.lr, total_steps=steps)
    b = t.batch_size
    model.train()
    t0, state = time.perf_counter(), None
    for step in range(steps):
        i = step % per_epoch
        if i == 0:
            state = None
        batch = windows[i * b:(i + 1) * b].long()
        if state is not None:
            state = tuple(s.detach() for s in state)
        logits, state = model(batch[:, :-1], state)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), t.clip_grad)
        opt.step()
        schedule.step()
    return time.perf_counter() - t0


def throughput(reps: int = 4) -> dict:
    """Alternate the two loops (and which goes first) on the same 600,000 characters, so machine drift hits both
    alike. One epoch each: deepworks' figure carries its end-of-epoch checkpoint, as a real epoch does."""
    cfg, task, data = prepared()
    rows = 600_000 // (cfg.data.seq_len * cfg.train.batch_size) * cfg.train.batch_size
    small = type(data)(train=(data.train[0][:rows],), val=data.val, test=data.test, meta=data.meta)
    chars = rows * cfg.data.seq_len
    ours, plain = [], []
    steps = rows // cfg.train.batch_size

    def ours_once():
        ours.append(chars / timed_fit(task, small, cfg, 1)[0])

    def plain_once():
        torch.manual_seed(cfg.seed)
        plain.append(chars / plain_loop(PlainCharLSTM(len(data.meta["vocab"])), small.train[0], cfg, steps, steps))

    warm = type(data)(train=(data.train[0][:8 * cfg.train.batch_size],), val=data.val, test=data.test, meta=data.meta)
    timed_fit(task, warm, cfg, 1)  # not counted: the first run in a process pays for kernel and allocator set-up
    plain_loop(PlainCharLSTM(len(data.meta["vocab"])), warm.train[0], cfg, 8, 8)
    for rep in range(reps):
        for run in ((ours_once, plain_once) if rep % 2 == 0 else (plain_once, ours_once)):
            run()
        print(f"  rep {rep + 1} deepworks {ours[-1]:,.0f} chars/s  plain {plain[-1]:,.0f} chars/s", flush=True)
    return {"model": "LSTM 2 x 256, embedding 64", "characters_per_rep": chars, "reps": reps,
            "deepworks_chars_per_s": [round(v) for v in ours], "plain_chars_per_s": [round(v) for v in plain],
            "ratio": round(statistics.median(ours) / statistics.median(plain), 4),
            "paired_ratio": round(statistics.median(a / b for a, b in zip(ours, plain)), 4),
            "note": "one epoch of 600,000 characters per rep after an uncounted warm-up of each, alternating which "
                    "loop goes first; deepworks' figure "
                    "includes its end-of-epoch checkpoint and metrics log; validation is off for both."}


def budget() -> dict:
    cfg, task, data = prepared()
    per_epoch = len(data.train[0]) // cfg.train.batch_size
    # at least 200,000 characters: a shorter probe is mostly its first steps' set-up, and says fewer epochs fit
    probe_rows = max(24, 200_000 // (cfg.data.seq_len * cfg.train.batch_size)) * cfg.train.batch_size
    probe = type(data)(train=(data.train[0][:probe_rows],), val=data.val, test=data.test, meta=data.meta)
    probe_s, _, _ = timed_fit(task, probe, cfg, 1)
    chars_per_s = probe_rows * cfg.data.seq_len / probe_s
    epoch_chars = len(data.train[0]) * cfg.data.seq_len
    epochs = max(1, math.floor(BUDGET_S * chars_per_s / epoch_chars))  # whole epochs that fit in the budget
    print(f"  probe {chars_per_s:,.0f} chars/s -> {epochs} epochs of {epoch_chars:,} characters", flush=True)

    cfg, task, data = prepared()
    _, fit_result, model = timed_fit(task, data, cfg, epochs, validate=True)
    history = fit_result.history
    ours_seconds = sum(r["seconds"] for r in history)
    device = next(model.parameters()).device
    ours = {"val_loss_per_epoch": [round(r["val_loss"], 4) for r in history],
            "train_seconds_per_epoch": [r["seconds"] for r in history], "train_seconds": round(ours_seconds, 1),
            "val_loss": round(history[-1]["val_loss"], 4), "val_bpc": round(history[-1]["val_bpc"], 4),
            "chars_per_s": round(epochs * epoch_chars / ours_seconds)}
    print(f"  deepworks: val {ours['val_loss']} nats/char after {ours_seconds:.0f} s", flush=True)

    torch.manual_seed(cfg.seed)
    reference = PlainCharLSTM(len(data.meta["vocab"]))
    plain_seconds = plain_loop(reference, data.train[0], cfg, epochs * per_epoch, per_epoch)
    plain_val = task.nats_per_char(reference, data.val[0], device)
    plain = {"train_seconds": round(plain_seconds, 1), "val_loss": round(plain_val, 4),
             "val_bpc": round(plain_val / math.log(2), 4), "chars_per_s": round(epochs * epoch_chars / plain_seconds)}
    print(f"  plain: val {plain['val_loss']} nats/char after {plain_seconds:.0f} s", flush=True)
    return {"settings": {k: v for k, v in SETTINGS.items() if k != "data_dir"}, "parameters": sum(
        p.numel() for p in model.parameters()), "epochs": epochs, "steps": epochs * per_epoch,
            "train_chars": data.meta["train_chars"], "val_chars": data.meta["val_chars"],
            "deepworks": ours, "plain": plain, "target_val_loss": 1.47,
            "throughput_ratio": round(ours["chars_per_s"] / plain["chars_per_s"], 4)}


def sampling(length: int = 2000, reps: int = 3) -> dict:
    """Batch-1 sampling speed of one set of weights, deepworks' stream beside a textbook loop."""
    _, task, data = prepared()
    torch.manual_seed(0)
    model = task.build_model().eval()
    plain_model = PlainCharLSTM(len(data.meta["vocab"])).eval()
    plain_model.load_state_dict(model.state_dict())

    @torch.no_grad()
    def plain_sample(n: int) -> str:
        x, state, out = torch.tensor([[0]]), None, []
        for _ in range(n):
            logits, state = plain_model(x, state)
            ix = torch.multinomial(F.softmax(logits[0, -1] / 0.8, dim=-1), 1).item()
            out.append(ix)
            x = torch.tensor([[ix]])
        return "".join(data.meta["vocab"][i] for i in out)

    ours, plain = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        text = "".join(task.make_face().stream(model, "", length, 0.8, seed=0))
        ours.append(len(text) / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        plain.append(len(plain_sample(length)) / (time.perf_counter() - t0))
    return {"characters": length, "reps": reps, "deepworks_chars_per_s": round(statistics.median(ours)),
            "plain_chars_per_s": round(statistics.median(plain)), "target_chars_per_s": 2000}


def main() -> None:
    sections = {"throughput": throughput, "sampling": sampling, "budget": budget}
    args = bench_args(__doc__, sections, SHARED_DATA / "tiny_shakespeare" / "input.txt")
    measure_and_print("text", sections, args.only)


if __name__ == "__main__":
    main()
