"""The shared run loop, through the public API, on scikit-learn's digits (ships offline, trains in seconds)."""

import json
import os
import signal
import warnings

import numpy as np
import pytest
import torch
import yaml
from conftest import assert_same_weights, weights

import deepworks as dw
from deepworks.errors import TrainingError
from deepworks.run import Run
from deepworks.training.loop import Interrupted, steps_per_epoch


def quick(**settings):
    settings.setdefault("baseline", False)
    return dw.train(progress=False, **settings)


def test_the_default_small_cnn_learns_digits_beside_a_random_forest():
    trained = quick(epochs=12, baseline=True)
    assert (trained.cfg.model.name, trained.cfg.train.label_smoothing) == ("smallcnn", 0.1)
    results = trained.results
    assert results["fit"]["best_value"] > 0.95  # validation accuracy; chance is 0.10
    assert results["test"]["accuracy"] > 0.93
    assert results["test"]["top5_accuracy"] > 0.99
    assert results["baseline"]["accuracy"] > 0.85 and "random forest" in results["baseline"]["model"]
    assert len(results["test"]["per_class"]) == 10 and np.array(results["test"]["confusion"]).sum() == results["splits"]["test"]


@pytest.mark.parametrize("optimizer,lr,schedule", [
    ("sgd", 0.2, "constant"), ("momentum", 0.05, "step"), ("nesterov", 0.05, "cosine"), ("adagrad", 0.05, "onecycle"),
    ("rmsprop", 0.002, "cosine"), ("adam", 0.005, "step"), ("adamw", 0.005, "onecycle"),
])
def test_every_optimizer_and_schedule_learns(optimizer, lr, schedule):
    trained = quick(model="mlp", epochs=4, optimizer=optimizer, lr=lr, schedule=schedule, step_epochs=2, clip_grad=5.0)
    epochs = [r for r in trained.run.metrics() if r.get("kind") == "epoch"]
    assert epochs[-1]["val_accuracy"] > 0.7, epochs[-1]
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    if schedule == "step":
        assert epochs[2]["lr"] == pytest.approx(lr * 0.1)  # gamma applied after step_epochs=2


def test_same_seed_gives_the_same_weights_and_another_seed_does_not():
    a = quick(model="mlp", epochs=2, dropout=0.2, augment="crop", name="a")
    b = quick(model="mlp", epochs=2, dropout=0.2, augment="crop", name="b")
    c = quick(model="mlp", epochs=2, dropout=0.2, augment="crop", name="c", seed=1)
    assert_same_weights(weights(a.run.path), weights(b.run.path))
    assert not torch.equal(weights(a.run.path)["net.1.weight"], weights(c.run.path)["net.1.weight"])


RESUME_SETTINGS = dict(model="mlp", epochs=3, dropout=0.3, augment="crop", batch_size=64, restore_best=False)


def stop_at(model, call: int, action):
    """Call `action` on the model's `call`-th training forward pass (evaluation passes are not counted)."""
    count = {"n": 0}

    def hook(module, args):
        if module.training:
            count["n"] += 1
            if count["n"] == call:
                action()

    return model.register_forward_pre_hook(hook)


def train_with_hook(call, action, **settings):
    """Train, with a hook installed on the model as soon as the API builds it."""
    from deepworks.tasks import image

    original = image.ImageClassification.build_model

    def build(self):
        model = original(self)
        stop_at(model, call, action)
        return model

    image.ImageClassification.build_model = build
    try:
        return quick(**settings)
    finally:
        image.ImageClassification.build_model = original


def test_a_ctrl_c_after_the_last_step_looked_still_stops_the_run_with_its_last_epoch_saved():
    """A Ctrl-C (the web UI's Stop) during the last validation came after every step had looked for one: it used to
    be lost when the handler was given back, and an AutoML search went on to its next trial."""

    class CtrlCAtTheEnd:
        def on_epoch_end(self, trainer, record):
            os.kill(os.getpid(), signal.SIGINT)  # the handler notes it; no step comes after to act on it

    with pytest.raises(Interrupted, match=r"^Interrupted after epoch 1; the state is saved\. Resume with: deepworks train"):
        quick(name="late", epochs=1, callbacks=[CtrlCAtTheEnd()])
    resumed = dw.train(resume="runs/late", progress=False)  # nothing left to train: the test and the report
    assert resumed.results["test"]["accuracy"] > 0.5


def test_ctrl_c_mid_epoch_then_resume_gives_the_same_weights_as_an_uninterrupted_run():
    reference = quick(name="whole", **RESUME_SETTINGS)
    per_epoch = steps_per_epoch(reference.results["splits"]["train"], 64)
    with pytest.raises(Interrupted, match=r"Interrupted at epoch 2, step 7; the state is saved\. Resume with: deepworks train --resume"):
        train_with_hook(per_epoch + 7, lambda: os.kill(os.getpid(), signal.SIGINT), name="cut", **RESUME_SETTINGS)
    state = torch.load("runs/cut/checkpoint.pt", weights_only=True)
    assert (state["epoch"], state["step"]) == (1, 7)
    resumed = dw.train(resume="runs/cut", progress=False)
    assert_same_weights(weights(reference.run.path), weights(resumed.run.path))
    epochs = [r["epoch"] for r in resumed.run.metrics() if r.get("kind") == "epoch"]
    assert epochs == [1, 2, 3]


def test_ctrl_c_on_the_last_step_of_an_epoch_resumes_cleanly():
    reference = quick(name="whole", **RESUME_SETTINGS)
    per_epoch = steps_per_epoch(reference.results["splits"]["train"], 64)
    with pytest.raises(Interrupted, match=rf"epoch 1, step {per_epoch};"):
        train_with_hook(per_epoch, lambda: os.kill(os.getpid(), signal.SIGINT), name="edge", **RESUME_SETTINGS)
    resumed = dw.train(resume="runs/edge", progress=False)
    assert_same_weights(weights(reference.run.path), weights(resumed.run.path))


def test_crash_mid_epoch_resumes_from_the_last_epoch_checkpoint_to_the_same_weights():
    reference = quick(name="whole", **RESUME_SETTINGS)

    def crash():
        raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        train_with_hook(2 * steps_per_epoch(reference.results["splits"]["train"], 64) + 5, crash, name="crashed",
                        **RESUME_SETTINGS)
    assert torch.load("runs/crashed/checkpoint.pt", weights_only=True)["epoch"] == 2
    assert not list(Run("runs/crashed").path.glob(".*.tmp"))  # no half-written files left behind
    resumed = dw.train(resume="runs/crashed", progress=False)
    assert_same_weights(weights(reference.run.path), weights(resumed.run.path))
    assert [r["epoch"] for r in resumed.run.metrics() if r.get("kind") == "epoch"] == [1, 2, 3]


def test_a_diverging_loss_stops_with_the_cause_and_keeps_the_last_good_checkpoint():
    # The step schedule multiplies a sane rate by 1e7 after the first epoch: training must blow up in epoch 2.
    with pytest.raises(TrainingError) as err:
        quick(model="mlp", name="boom", optimizer="sgd", lr=0.05, schedule="step", step_epochs=1, gamma=1e7, epochs=3)
    message = str(err.value)
    assert "the loss became nan" in message or "the loss became inf" in message
    assert "at epoch 2" in message and "learning rate 5e+05" in message and "try --lr 0.005" in message
    assert "last good checkpoint (end of epoch 1)" in message
    state = torch.load("runs/boom/checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1 and all(torch.isfinite(v).all() for v in state["model"].values())


def test_divergence_in_the_first_epoch_says_there_is_no_checkpoint():
    with pytest.raises(TrainingError, match="diverged in the first epoch, so there is no checkpoint"):
        quick(model="mlp", optimizer="sgd", lr=1e9, schedule="constant", epochs=2)


def test_early_stopping_on_a_validation_metric(tmp_path):
    rng = np.random.default_rng(0)  # random labels: validation loss can only get worse as the model memorises
    np.savez(tmp_path / "noise.npz", x=rng.integers(0, 255, (600, 8, 8), dtype=np.uint8), y=rng.integers(0, 3, 600))
    trained = quick(data=str(tmp_path / "noise.npz"), model="mlp", width=512, epochs=40, lr=0.01,
                    schedule="constant", patience=2, monitor="val_loss")
    fit = trained.results["fit"]
    assert fit["stopped_early"] and fit["epochs"] < 40
    stop = [r for r in trained.run.metrics() if r.get("kind") == "early_stop"]
    assert stop and stop[0]["best_epoch"] == fit["best_epoch"] == fit["epochs"] - 2
    before = weights(trained.run.path)
    again = dw.train(resume=trained.run.path, progress=False)  # resuming a run that stopped early trains no further
    assert again.results["fit"]["stopped_early"] and again.results["fit"]["epochs"] == fit["epochs"]
    assert_same_weights(before, weights(again.run.path))


def test_run_directory_holds_everything_a_user_needs():
    trained = quick(epochs=2, baseline=True, name="full")
    run = trained.run.path
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["train"]["epochs"] == 2 and cfg["data"]["image_size"] == 28 and cfg["train"]["monitor"] == "val_accuracy"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in records] == ["epoch", "epoch", "test"]
    assert {"train_loss", "val_loss", "val_accuracy", "lr", "samples_per_s"} <= records[0].keys()
    env = json.loads((run / "environment.json").read_text())
    assert env["torch"] == torch.__version__ and env["seed"] == 0 and env["device"] == "cpu"
    model_json = json.loads((run / "model.json").read_text())
    assert model_json["meta"]["classes"] == [str(i) for i in range(10)]
    for name in ("curves.png", "confusion.png", "samples.png", "index.html"):
        assert (run / "report" / name).stat().st_size > 1000, name
    page = (run / "report" / "index.html").read_text()
    assert "random forest" in page and "confusion.png" in page and "samples.png" in page


def test_bf16_mixed_precision_runs_and_learns_on_the_cpu():
    trained = quick(model="mlp", epochs=3, amp="bf16")
    assert trained.results["test"]["accuracy"] > 0.7


def test_restore_best_keeps_the_best_validation_weights_not_the_last(tmp_path):
    rng = np.random.default_rng(1)  # random labels: validation loss is best early and worse as the model memorises
    np.savez(tmp_path / "noise.npz", x=rng.integers(0, 255, (600, 8, 8), dtype=np.uint8), y=rng.integers(0, 3, 600))
    trained = quick(data=str(tmp_path / "noise.npz"), model="mlp", width=512, epochs=8, lr=0.01,
                    schedule="constant", monitor="val_loss", name="best")
    fit = trained.results["fit"]
    assert fit["best_epoch"] < 8
    final, last = weights(trained.run.path), torch.load("runs/best/checkpoint.pt", weights_only=True)["model"]
    assert_same_weights(final, weights(trained.run.path, "best.safetensors"))
    assert not torch.equal(final["net.1.weight"], last["net.1.weight"])  # the last epoch's weights were not kept


def test_weight_averaging_follows_closely_at_first_then_slowly():
    from deepworks.training.loop import ema_with_warmup

    update = ema_with_warmup(0.999)
    averaged, current = [torch.zeros(3), torch.tensor(5)], [torch.ones(3), torch.tensor(9)]
    update(averaged, current, torch.tensor(0))  # decay min(0.999, 1/10): the average jumps 90 % of the way
    assert torch.allclose(averaged[0], torch.full((3,), 0.9)) and int(averaged[1]) == 9
    update(averaged, [torch.full((3,), 2.0), current[1]], torch.tensor(100_000))  # now the full 0.999
    assert torch.allclose(averaged[0], torch.full((3,), 0.9 + 0.001 * 1.1))


def test_label_smoothing_keeps_the_training_loss_above_its_floor():
    plain = quick(epochs=6, label_smoothing=0.0, name="plain")  # the small CNN's own recipe would smooth by 0.1
    smoothed = quick(epochs=6, label_smoothing=0.2, name="smoothed")
    loss = lambda t: [r for r in t.run.metrics() if r.get("kind") == "epoch"][-1]["train_loss"]  # noqa: E731
    floor = -(0.82 * np.log(0.82) + 0.18 * np.log(0.02))  # the smoothed target's own entropy (10 classes, 0.2)
    assert loss(smoothed) > floor > loss(plain)
    assert smoothed.results["test"]["accuracy"] > 0.8


def test_a_folder_named_as_a_built_in_is_pointed_out(tmp_path):
    from deepworks.api import make_config
    from deepworks.api.training import warn_if_a_folder_shares_a_builtin_name

    (tmp_path / "digits").mkdir()  # the tests run in tmp_path
    with pytest.warns(UserWarning, match=r"--data digits names the built-in data set digits.*write ./digits"):
        warn_if_a_folder_shares_a_builtin_name(make_config(task="image", data="digits"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_a_folder_shares_a_builtin_name(make_config(task="image", data="./digits"))
        warn_if_a_folder_shares_a_builtin_name(make_config(task="image", data="fashion-mnist"))
