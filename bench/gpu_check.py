"""The checks that need a GPU, in one short run (bench/gpu_check.sh runs it; under 8 minutes on a GPU).

For every task: a short run on the device with mixed precision (--amp auto: bf16 or fp16 with a gradient scaler,
the GAN's two networks included), its throughput, and its weights loaded back on the CPU; the first five at a size
of their own, every other task its card's tiny run. For the image task also
exact resume on the device: a run stopped mid-epoch and resumed against an uninterrupted one. Without a GPU it
runs the same checks on the CPU at a smaller size (what CI runs), so the script itself never rots.

    python bench/gpu_check.py [--out FILE]     # writes JSON (default bench/results/gpu_check.json)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

import deepworks as dw
from deepworks.data.pairs import dates_pairs
from deepworks.run import read_safetensors

GPU = torch.cuda.is_available()
if not GPU:  # the CPU fallback checks the plumbing: a GAN's FID classifier of a few steps is enough for that
    import deepworks.metrics.fid as fid

    fid.FEATURE_STEPS = 5
LINE = "the quick brown fox jumps over the lazy dog.\n"


class StopAt:
    """Stop after `step` updates (a mid-epoch checkpoint), as a UI's stop button would."""

    def __init__(self, step: int):
        self.step, self.seen = step, 0

    def on_step_end(self, trainer):
        self.seen += 1
        if self.seen == self.step:
            trainer.stop_training, trainer.stop_reason = True, "gpu check"


def cases(root: Path) -> dict:
    (root / "fox.txt").write_text(LINE * (400 if GPU else 40))
    if not GPU:  # a tenth of the built-in 20,000 dates: the CPU fallback checks the plumbing, not the speed
        dates = dates_pairs(2000)
        (root / "dates.tsv").write_text("".join(f"{a}\t{b}\n" for a, b in zip(dates.source, dates.target)))
    scale = 1 if GPU else 0
    return {
        "image": dict(data="digits", model="lenet", epochs=3 if GPU else 1, baseline=False),
        "text": dict(task="text", data=str(root / "fox.txt"), epochs=2 if GPU else 1, seq_len=64, batch_size=16,
                     width=128 if scale else 32, depth=1),
        "translate": dict(task="translate", data="dates" if GPU else str(root / "dates.tsv"), epochs=1, width=128 if scale else 32,
                          embed_size=64 if scale else 16, batch_size=64),
        "gan": dict(task="gan", data="digits", epochs=2 if GPU else 1, width=32 if scale else 8, latent_size=32,
                    fid_samples=512 if scale else 64),
        "detect": dict(task="detect", data="shapes" if GPU else "shapes:60", image_size=96 if GPU else 64,
                       epochs=3 if GPU else 1),
        **{name: tiny_settings(card) for name, card in list(other_cards().items())[:None if GPU else 1]},
    }


def other_cards() -> dict:
    """Every other built-in task: on a GPU each trains its card's tiny run (the contract harness's: seconds) with
    mixed precision. The CPU fallback runs the first alone, for the path they share: the contract harness trains
    the same settings on the CPU in CI."""
    from deepworks.cards import BUILTIN_CARDS

    return {name: card for name, card in BUILTIN_CARDS.items()
            if name not in ("image", "text", "translate", "gan", "detect")}


def tiny_settings(card) -> dict:
    return {"task": card.name, **{k: v for k, v in card.tiny.items() if k != "baseline"}, "baseline": False}


def weights_close(a: dict, b: dict) -> float:
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "gpu_check.json"))
    args = parser.parse_args()
    report = {"device": torch.cuda.get_device_name(0) if GPU else "cpu (fallback: no CUDA device)",
              "torch": torch.__version__, "tasks": {}}
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        for name, settings in cases(Path(tmp)).items():
            t0 = time.perf_counter()
            trained = dw.train(name=name, progress=False, amp="auto", device="auto", **settings)
            epochs = [r for r in trained.run.metrics() if r.get("kind") == "epoch"]
            on_cpu = dw.load(trained.run.path, device="cpu")
            reloaded = {k: v for k, v in on_cpu.model.state_dict().items()}
            saved = read_safetensors(trained.run.weights_file)
            ok = all(torch.equal(saved[k], reloaded[k].cpu()) for k in saved)
            report["tasks"][name] = {"seconds": round(time.perf_counter() - t0, 1),
                                     "samples_per_s": epochs[-1]["samples_per_s"], "unit": trained.task.unit[0],
                                     "amp": "on" if GPU else "off (CPU)",
                                     "headline": trained.results["test"].get(trained.task.headline),
                                     "loads_on_cpu": ok}
            if not ok:
                failures.append(f"{name}: weights differ after loading on the CPU")
            print(name, report["tasks"][name], flush=True)
        image = cases(Path(tmp))["image"]
        whole = dw.train(name="whole", progress=False, restore_best=False, **image)
        dw.train(name="cut", progress=False, restore_best=False, callbacks=[StopAt(7)], **image)
        resumed = dw.train(resume="runs/cut", progress=False)
        difference = weights_close(read_safetensors(whole.run.weights_file), read_safetensors(resumed.run.weights_file))
        report["resume"] = {"max_abs_weight_difference": difference, "identical": difference == 0.0}
        if difference > (1e-3 if GPU else 0.0):  # cuDNN may pick other kernels after a restart; the CPU is exact
            failures.append(f"resume: weights differ by {difference}")
        print("resume", report["resume"], flush=True)
    report["failures"] = failures
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
