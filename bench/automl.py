"""AutoML beside what a user would do instead, each in the same wall-clock budget, one after another in one run.

    python bench/automl.py                      # all sections: about 50 minutes on 2 cores
    python bench/automl.py --only tpe,optuna    # some of them (merged into the JSON beside the others)

Sections (Fashion-MNIST and MNIST from the shared data; test accuracy is on the official test set):
- tpe: `dw.automl(data="fashion-mnist", budget="10m")`: deepworks' defaults (TPE, median pruning, and a warm start:
  the first trials are deepworks' defaults for the data, then its known-good settings for the task). The best
  trial's test accuracy, and how many trials were pruned.
- random: the same budget with Optuna's random sampler, no pruning and no warm start (`--no-warm-start`: neither
  deepworks' defaults nor its known-good settings are tried first), which is what Optuna alone would do.
- hand: the hand-tuned bench configuration (bench/image.py's ResNet-8 of width 16, flips, lr 0.01), trained for
  the epochs that fit in the same 10 minutes.
- optuna: the reference a user would run, Optuna's official PyTorch example (optuna-examples pytorch_simple.py:
  an MLP of 1-3 layers on 3,840 training and 1,280 validation images, 10 epochs a trial, TPE with the median
  pruner, 600 s), written again here from its description with the IDX files read locally. The best trial's
  accuracy on its 1,280 validation images, beside the accuracy of `tpe`'s best run on the same 1,280 images.
- mnist: `dw.automl(data="mnist", budget="5m")`.
Writes bench/results/automl.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, measure  # noqa: E402

import deepworks as dw  # noqa: E402

# BENCH_AUTOML_WORK=FOLDER reuses a folder: a search there that has spent its budget is read back, not run again
WORK = Path(os.environ.get("BENCH_AUTOML_WORK") or tempfile.mkdtemp(prefix="bench-automl-"))
VALID_IMAGES, TRAIN_IMAGES = 1280, 3840  # the reference example's subsets (128 x 10 and 128 x 30)


def search(data: str, budget: str, **options) -> dict:
    summary = dw.automl(data=data, data_dir=str(SHARED_DATA), budget=budget,
                        out=str(WORK / f"{data}-{options.get('sampler', 'tpe')}"), progress=False, **options)
    wall = summary["spent_s"]  # the search's own clock: from reading the data to its last trial, every session
    best = summary["best"]
    test = dw.load(best["run"]).results["test"]  # built-in MNIST and Fashion-MNIST test on their official test set
    board = summary["leaderboard"]
    return {"budget_s": summary["budget_s"], "wall_s": round(wall, 1),
            "overrun_percent": round(100 * (wall / summary["budget_s"] - 1), 2),
            "trials": summary["trials"], "complete": summary["complete"], "pruned": summary["pruned"],
            "pruned_share": round(summary["pruned"] / max(1, summary["trials"]), 3),
            "best_val_accuracy": round(best["value"], 4), "best_test_accuracy": round(test["accuracy"], 4),
            "best_params": best["params"], "best_run": best["run"],
            "trials_list": [{k: r[k] for k in ("trial", "state", "value", "epochs", "seconds")} for r in board]}


def tpe() -> dict:
    out = search("fashion-mnist", "10m")
    out["on_reference_validation_images"] = round(
        dw.evaluate(out["best_run"], data=str(reference_subsets()[1]))["accuracy"], 4)
    return out


def random_search() -> dict:
    """What Optuna alone does: random settings, no pruning, and none of deepworks' starting points."""
    return search("fashion-mnist", "10m", sampler="random", pruner="none", warm_start=False)


def hand_tuned() -> dict:
    settings = dict(model="resnet", depth=8, width=16, augment="flip", lr=0.01)
    done = sorted((WORK / "hand").glob("*/results.json")) if (WORK / "hand").is_dir() else []
    if len(done) >= 2:  # a finished measurement in a reused folder: the probe, then the longest run
        trained = max((dw.load(p.parent) for p in done), key=lambda t: t.cfg.train.epochs)
        return {"settings": settings, "epochs": trained.cfg.train.epochs,
                "wall_s": trained.results["fit"]["wall_seconds"], "test_accuracy":
                round(trained.results["test"]["accuracy"], 4), "read_back": True}
    probe = dw.train(data="fashion-mnist", data_dir=str(SHARED_DATA), baseline=False, progress=False, epochs=1,
                     runs_dir=str(WORK / "hand"), name="probe", **settings)
    epochs = max(1, int(600 * 0.9 // probe.results["fit"]["wall_seconds"]))  # validation each epoch included
    trained = dw.train(data="fashion-mnist", data_dir=str(SHARED_DATA), baseline=False, progress=False,
                       epochs=epochs, runs_dir=str(WORK / "hand"), name="tuned", **settings)
    return {"settings": settings, "epochs": epochs, "wall_s": trained.results["fit"]["wall_seconds"],
            "test_accuracy": round(trained.results["test"]["accuracy"], 4)}


# --- the reference: Optuna's PyTorch example, rewritten from its description -----------------------------------
def reference_subsets() -> tuple[Path, Path]:
    """The example's data: the first 3,840 training and the first 1,280 test images, scaled to [0, 1]."""
    from deepworks.data.builtin import load_builtin

    found = load_builtin("fashion-mnist", str(SHARED_DATA), download=False)
    paths = WORK / "ref-train.npz", WORK / "ref-valid.npz"
    names = np.array(found.classes)
    np.savez(paths[0], x=found.x[:TRAIN_IMAGES, 0], y=found.y[:TRAIN_IMAGES], class_names=names)
    np.savez(paths[1], x=found.x_test[:VALID_IMAGES, 0], y=found.y_test[:VALID_IMAGES], class_names=names)
    return paths


def reference_model(trial) -> nn.Module:
    layers, width_in = [], 28 * 28
    for i in range(trial.suggest_int("n_layers", 1, 3)):
        width = trial.suggest_int(f"n_units_l{i}", 4, 128)
        layers += [nn.Linear(width_in, width), nn.ReLU(), nn.Dropout(trial.suggest_float(f"dropout_l{i}", 0.2, 0.5))]
        width_in = width
    return nn.Sequential(*layers, nn.Linear(width_in, 10), nn.LogSoftmax(dim=1))


def optuna_reference() -> dict:
    import optuna

    train_path, valid_path = reference_subsets()
    tr, va = np.load(train_path), np.load(valid_path)
    x = torch.from_numpy(tr["x"]).float().div(255).view(-1, 784)
    y = torch.from_numpy(tr["y"]).long()
    xv = torch.from_numpy(va["x"]).float().div(255).view(-1, 784)
    yv = torch.from_numpy(va["y"]).long()

    def objective(trial) -> float:
        model = reference_model(trial)
        name = trial.suggest_categorical("optimizer", ["Adam", "RMSprop", "SGD"])
        opt = getattr(torch.optim, name)(model.parameters(), lr=trial.suggest_float("lr", 1e-5, 1e-1, log=True))
        accuracy = 0.0
        for epoch in range(10):
            model.train()
            order = torch.randperm(len(x))
            for i in range(0, len(x), 128):
                idx = order[i:i + 128]
                opt.zero_grad()
                F.nll_loss(model(x[idx]), y[idx]).backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                accuracy = (model(xv).argmax(1) == yv).float().mean().item()
            trial.report(accuracy, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return accuracy

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.manual_seed(0)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    t0 = time.perf_counter()
    study.optimize(objective, n_trials=100, timeout=600)
    states = [t.state.name for t in study.trials]
    return {"wall_s": round(time.perf_counter() - t0, 1), "trials": len(study.trials),
            "pruned": states.count("PRUNED"), "complete": states.count("COMPLETE"),
            "best_validation_accuracy": round(study.best_value, 4), "best_params": study.best_params}


def mnist() -> dict:
    return search("mnist", "5m")


SECTIONS = {"tpe": tpe, "random": random_search, "hand": hand_tuned, "optuna": optuna_reference, "mnist": mnist}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default=",".join(SECTIONS))
    selected = parser.parse_args().only.split(",")
    if not (SHARED_DATA / "fashion_mnist").exists() and not (SHARED_DATA / "fashion-mnist").exists():
        sys.exit(f"needs Fashion-MNIST and MNIST in {SHARED_DATA} (the shared data)")
    result = measure("automl", SECTIONS, selected)
    tpe_, rnd, hand, ref = (result.get(k) for k in ("tpe", "random", "hand", "optuna"))
    goals = {}
    if tpe_:
        goals["fashion_tpe_test_at_least_91.5"] = tpe_["best_test_accuracy"] >= 0.915
        goals["pruned_share_at_least_40_percent"] = tpe_["pruned_share"] >= 0.4
        goals["overrun_under_5_percent"] = tpe_["overrun_percent"] < 5
    if tpe_ and hand:
        goals["within_1_point_of_hand_tuned"] = tpe_["best_test_accuracy"] >= hand["test_accuracy"] - 0.01
    if tpe_ and rnd:
        goals["tpe_ahead_of_random"] = tpe_["best_test_accuracy"] > rnd["best_test_accuracy"]
    if tpe_ and ref:
        goals["reference_validation_at_least_88"] = tpe_["on_reference_validation_images"] >= 0.88
        goals["ahead_of_reference_points"] = round(
            100 * (tpe_["on_reference_validation_images"] - ref["best_validation_accuracy"]), 1)
    if result.get("mnist"):
        goals["mnist_test_at_least_99"] = result["mnist"]["best_test_accuracy"] >= 0.99
    result["goals"] = goals
    from common import write

    write("automl", result)


if __name__ == "__main__":
    main()
