"""Sound: deepworks' audio task on the Free Spoken Digit Dataset, against a plain PyTorch loop, and the speed of its
features and inference.

    python bench/audio.py                  # about 8 minutes on 2 cores
    python bench/audio.py official plain   # only these arms; the others' figures are kept from the last run

- official: `deepworks train --task audio --data fsdd` as the README runs it (defaults only), scored on the
  official test split (recordings 0-4 of each speaker and digit). Goal: >= 98.5 % within 2 minutes of training.
- plain: the same network, data, augmentation, optimizer and schedule in a bare loop (validating each epoch as a
  user's loop would; no checkpoints, progress or metrics log) against deepworks' loop, 8 epochs each, alternated
  three times in one process so that both meet the same load: the loop's speed against it, in clips per second.
- speakers: `deepworks train --task audio --data fsdd --split speaker`, each of the six speakers left out in turn.
  Goal: a mean >= 80 % and the worst speaker >= 55 % (a plain log-mel CNN here: 63 % and 26 %).
- features: log-mel spectrograms per second of 1-second 8 kHz clips (torch.stft and the mel filterbank), batches
  of 256.
- inference: milliseconds per clip through `Trained.predict` on arrays, one clip per call.
Writes bench/results/audio.json.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, SHARED_DATA, calibrate, deepworks_cli, machine, write  # noqa: E402

FSDD = ("--task", "audio", "--data", "fsdd", "--data-dir", str(SHARED_DATA))
ARMS = ("official", "plain", "speakers", "speed")


def setup():
    from deepworks.api import make_config
    from deepworks.registry import get_task

    cfg = make_config(task="audio", data="fsdd", data_dir=str(SHARED_DATA))
    task = get_task("audio")(cfg)
    data = task.prepare(progress=False)
    cfg.train.monitor = task.default_monitor  # as `deepworks train` sets it: the best epoch is followed
    return cfg, task, data


def plain_loop(cfg, task, data, epochs: int) -> tuple[float, float]:
    """The official arm's network, data, augmentation, optimizer and schedule in a loop written by hand:
    (seconds, test accuracy)."""
    torch.manual_seed(0)
    model = task.build_model()
    x, y = data.train
    t = cfg.train
    batches = -(-len(x) // t.batch_size)
    opt = torch.optim.AdamW(model.parameters(), t.lr, weight_decay=t.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, t.lr, total_steps=epochs * batches)
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x))
        for i in range(batches):
            idx = order[i * t.batch_size:(i + 1) * t.batch_size]
            loss, _ = task.training_step(model, (x[idx], y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
        task.evaluate(model, data.val, torch.device("cpu"))  # a user's loop validates each epoch too
    seconds = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        accuracy = float((model(data.test[0]).argmax(1) == data.test[1]).float().mean())
    return seconds, accuracy


def loop_against_plain(epochs: int = 8, rounds: int = 3) -> dict:
    """deepworks' loop (validation, checkpoints and metrics log included, as `deepworks train` runs it) and the
    plain loop, alternated in this one process so that both meet the same load; the median of each."""
    import statistics

    from common import timed_fit

    cfg, task, data = setup()
    torch.set_num_threads(2)
    ours, plain, accuracy = [], [], []
    for _ in range(rounds):
        seconds, _, _ = timed_fit(task, data, cfg, epochs, validate=True)
        ours.append(seconds)
        seconds, acc = plain_loop(cfg, task, data, epochs)
        plain.append(seconds)
        accuracy.append(acc)
    clips = epochs * len(data.train[0])
    ours_s, plain_s = statistics.median(ours), statistics.median(plain)
    return {"epochs": epochs, "rounds": rounds, "deepworks_seconds": [round(s, 2) for s in ours],
            "plain_seconds": [round(s, 2) for s in plain], "deepworks_clips_per_s": round(clips / ours_s, 1),
            "plain_clips_per_s": round(clips / plain_s, 1), "loop_speed_ratio": round(plain_s / ours_s, 3),
            "plain_test_accuracy": round(statistics.median(accuracy), 4),
            "note": "both validate the 270 validation clips after each epoch; deepworks also writes a checkpoint and "
                    "the metrics log"}


def official(tmp: Path) -> dict:
    run = deepworks_cli("train", *FSDD, "--name", "fsdd", cwd=tmp)
    fit, test = run["fit"], run["test"]
    return {"command": "deepworks train --task audio --data fsdd", "accuracy": round(test["accuracy"], 4),
            "test_clips": test["clips"], "per_speaker": test.get("per_speaker"), "epochs": fit["epochs"],
            "train_seconds": fit["train_seconds"], "command_seconds": fit.get("total_seconds"),
            "clips_per_s": round(fit["epochs"] * run["splits"]["train"] / fit["train_seconds"], 1),
            "note": "deepworks' seconds include validating 270 clips after each epoch",
            "goal_met": bool(test["accuracy"] >= 0.985 and fit["train_seconds"] <= 120)}


def speakers(tmp: Path) -> dict:
    summary = deepworks_cli("train", *FSDD, "--split", "speaker", cwd=tmp)
    rows = [{k: r[k] for k in ("speaker", "accuracy", "clips", "epochs", "seconds")} for r in summary["speakers"]]
    return {"command": "deepworks train --task audio --data fsdd --split speaker", "per_speaker": rows,
            "mean_accuracy": summary["mean_accuracy"], "worst": summary["worst"],
            "seconds": round(sum(r["seconds"] for r in rows), 1),
            "goal_met": bool(summary["mean_accuracy"] >= 0.80 and summary["worst"]["accuracy"] >= 0.55)}


def speed(tmp: Path) -> dict:
    import deepworks as dw
    from deepworks.models.audio import LogMel

    torch.set_num_threads(2)
    clips = torch.randn(256, 8000)
    front = LogMel(8000)
    front(clips)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 3:
        front(clips)
        n += len(clips)
    features = {"log_mel_clips_per_s": round(n / (time.perf_counter() - t0), 1), "clip_seconds": 1.0, "rate": 8000,
                "batch": 256}
    deepworks_cli("train", "--task", "audio", "--epochs", "1", "--name", "tones", cwd=tmp)
    trained = dw.load(tmp / "runs" / "tones")
    one = clips[0, :trained.task.meta["length"]].numpy()
    trained.predict(one)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 3:
        trained.predict(one)
        n += 1
    return {"features": features, "inference": {"ms_per_clip": round(1000 * (time.perf_counter() - t0) / n, 2),
                                                "calls": n, "clip_samples": len(one)}}


def main() -> None:
    if not (SHARED_DATA / "fsdd" / "recordings.tar.gz").is_file():
        sys.exit(f"needs {SHARED_DATA}/fsdd/recordings.tar.gz (the shared data)")
    chosen = [a for a in ARMS if a in sys.argv[1:]] or list(ARMS)
    previous = RESULTS / "audio.json"
    result = json.loads(previous.read_text()) if previous.is_file() and len(chosen) < len(ARMS) else {}
    result.update({"benchmark": "audio", "machine": machine(), "calibration_before": calibrate()})
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if "official" in chosen:
            result["official"] = official(tmp)
            print("official", result["official"], flush=True)
        if "plain" in chosen:
            result.pop("loop_speed_ratio", None)
            result["plain_pytorch_loop"] = loop_against_plain()
            print("plain", result["plain_pytorch_loop"], flush=True)
        if "speakers" in chosen:
            result["leave_one_speaker_out"] = speakers(tmp)
            print("speakers", result["leave_one_speaker_out"], flush=True)
        if "speed" in chosen:
            result.update(speed(tmp))
            print(result["features"], result["inference"], flush=True)
    result["calibration_after"] = calibrate()
    result["date"] = time.strftime("%Y-%m-%d %H:%M")
    write("audio", result)


if __name__ == "__main__":
    main()
