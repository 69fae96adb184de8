"""The task contract and the callbacks, proved from outside: a task defined in this file (regression of y = sin(x)
with a small MLP) trains, resumes, evaluates and is listed through the Python API and the CLI, and callbacks of
our own observe and stop runs, without editing any deepworks module."""

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import assert_same_weights, ctrl_c_at_step, weights

import deepworks as dw
from deepworks.cards import TaskCard
from deepworks.cli import main
from deepworks.errors import ConfigError, DataError
from deepworks.inference import Graph
from deepworks.training.loop import Interrupted
from deepworks.tasks import Prepared, Task
from deepworks.tasks.face import Face

SPEC = "test_contract:SineRegression"


class SineFace(Face):
    """The use of a trained sine regression: numbers x in, {'y': sin(x) as learned} out."""

    verb, kind = "predict", "a sine regression"

    def decode_inputs(self, inputs, options, trusted=True):
        try:
            xs = np.asarray(inputs, dtype=np.float64).reshape(-1).tolist()  # a number, a list, an array (served)
        except (TypeError, ValueError):
            raise DataError(f"predict: expected numbers x. Received: {inputs!r:.80}.") from None
        if not xs or not np.isfinite(xs).all():
            raise DataError(f"predict: expected finite numbers x, at least one. Received: {inputs!r:.80}.")
        return xs

    def infer(self, model, items, device, options):
        with torch.no_grad():
            return model(torch.tensor(items).view(-1, 1).to(device)).view(-1).tolist()

    def encode_result(self, result, options):
        return {"y": result}

    def example_request(self):
        return [0.5, 1.0], {}

    def export_graphs(self, model):
        return [Graph("sine", model, (torch.zeros(2, 1),), (torch.zeros(5, 1),), ["x"], ["y"],
                      {"x": {0: "batch"}, "y": {0: "batch"}})]


class SineRegression(Task):
    """y = sin(x) for x in [-3, 3], with noise: the loss is the mean squared error."""

    name = "sine"
    models = ("sine-mlp",)
    defaults = {"data.source": "sine", "model.name": "sine-mlp", "model.width": 32, "train.batch_size": 32,
                "train.lr": 0.01, "train.schedule": "constant"}
    face_class = SineFace
    card = TaskCard("sine", SPEC, "sine regression", "a sine regression", models, verbs=("predict",),
                    inputs=("text",), outputs=("text",), tiny=dict(epochs=3))

    def prepare(self, progress=True):
        rng = np.random.default_rng(self.cfg.seed)
        x = rng.uniform(-3, 3, size=(640, 1)).astype(np.float32)
        y = (np.sin(x) + rng.normal(0, 0.05, size=x.shape)).astype(np.float32)
        self.meta = {"inputs": 1}
        split = [(torch.from_numpy(x[a:b]), torch.from_numpy(y[a:b])) for a, b in ((0, 512), (512, 576), (576, 640))]
        return Prepared(train=split[0], val=split[1], test=split[2], meta=self.meta)

    def build_model(self):
        w = self.cfg.model.width
        return nn.Sequential(nn.Linear(self.meta["inputs"], w), nn.Tanh(), nn.Linear(w, w), nn.Tanh(), nn.Linear(w, 1))

    def training_step(self, model, batch):
        x, y = batch
        prediction = model(x)
        return F.mse_loss(prediction, y), {"abs_error": (prediction - y).abs().sum()}


def pad(examples):
    """Sequences of different lengths -> (padded values (B, T), mask (B, T), targets (B,))."""
    longest = max(len(x) for x, _ in examples)
    values = torch.zeros(len(examples), longest)
    mask = torch.zeros(len(examples), longest)
    for i, (x, _) in enumerate(examples):
        values[i, :len(x)], mask[i, :len(x)] = x, 1
    return values, mask, torch.stack([y for _, y in examples])


class SequenceSum(Task):
    """The sum of a sequence of 1 to 12 numbers: examples of different sizes, batched by a collate function."""

    name, models = "sequence-sum", ("per-element",)
    defaults = {"data.source": "sequences", "model.name": "per-element", "train.batch_size": 16, "train.lr": 0.05,
                "train.schedule": "constant", "train.weight_decay": 0.0}

    def prepare(self, progress=True):
        rng = np.random.default_rng(self.cfg.seed)
        xs = [torch.tensor(rng.uniform(-1, 1, int(rng.integers(1, 13))), dtype=torch.float32) for _ in range(600)]
        ys = torch.stack([x.sum() for x in xs])
        self.meta = {}
        return Prepared(train=(xs[:480], ys[:480]), val=(xs[480:540], ys[480:540]), test=(xs[540:], ys[540:]),
                        meta=self.meta)

    def batch_source(self, train):
        from deepworks.training.batches import DatasetBatches

        return DatasetBatches(list(zip(*train)), self.cfg.train.batch_size, self.cfg.seed, collate=pad, workers=1)

    def build_model(self):
        return nn.Linear(1, 1)

    def training_step(self, model, batch):
        values, mask, y = batch
        prediction = (model(values.unsqueeze(-1)).squeeze(-1) * mask).sum(1)
        return F.mse_loss(prediction, y), {}

    def evaluate(self, model, split, device):
        with torch.no_grad():
            loss, _ = self.training_step(model, tuple(t.to(device) for t in pad(list(zip(*split)))))
        return {"loss": float(loss)}


def sine(**settings):
    return dw.train(task=SPEC, progress=False, **settings)


def test_a_task_defined_outside_deepworks_trains_and_learns():
    trained = sine(epochs=12)
    test = trained.results["test"]
    assert test["loss"] < 0.05, test  # sin(x) on [-3, 3] has variance 0.5: the MLP explains more than 90 % of it
    assert test["samples"] == 64 and trained.results["splits"] == {"train": 512, "val": 64, "test": 64}
    epochs = [r for r in trained.run.metrics() if r.get("kind") == "epoch"]
    assert len(epochs) == 12 and epochs[-1]["val_abs_error"] < epochs[0]["val_abs_error"]
    assert (trained.run.report_dir / "index.html").exists()


def test_it_resumes_to_the_same_weights_after_ctrl_c():
    whole = sine(epochs=3, name="whole")
    with ctrl_c_at_step(SineRegression, 25), pytest.raises(Interrupted):
        sine(epochs=3, name="cut")
    resumed = dw.train(resume="runs/cut", progress=False)
    assert_same_weights(weights(whole.run.path), weights(resumed.run.path))


def test_it_is_evaluated_and_listed_through_the_api_and_the_cli(capsys):
    trained = sine(epochs=2, name="listed")
    again = dw.evaluate(trained.run.path)
    assert again["task"] == SPEC and again["samples"] == 64
    assert again["loss"] == pytest.approx(trained.results["test"]["loss"], rel=1e-5)
    assert [r["name"] for r in dw.runs()] == ["listed"] and dw.runs()[0]["test_metric"] == "loss"
    assert main(["evaluate", str(trained.run.path)]) == 0
    assert "64 examples" in capsys.readouterr().out


def test_the_cli_trains_and_resumes_a_task_named_by_module_and_class(capsys):
    assert main(["train", "--task", SPEC, "--epochs", "2", "--name", "cli", "--quiet", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["task"] == "sine" and out["fit"]["epochs"] == 2
    assert main(["runs"]) == 0
    assert "cli" in capsys.readouterr().out
    assert main(["train", "--task", "test_contract:Missing"]) == 2
    assert "has no 'Missing'. Expected module:Class" in capsys.readouterr().err
    assert main(["train", "--task", "sines"]) == 2  # the task trained above is offered by its name, once
    said = capsys.readouterr().err
    offered = said.split("Choose one of: ")[1].split(", or a task")[0].split(", ")
    assert "Did you mean 'sine'" in said and offered.count("sine") == 1 and SPEC not in said, said


def test_a_registered_task_is_trained_by_its_name():
    dw.register_task(SineRegression)
    trained = dw.train(task="sine", epochs=1, progress=False)
    assert trained.results["task"] == "sine"
    with pytest.raises(ConfigError, match="Unknown task 'sin'. Did you mean 'sine'?"):
        dw.train(task="sin", progress=False)


def test_examples_of_different_sizes_are_batched_by_the_task_s_collate_function():
    trained = dw.train(task="test_contract:SequenceSum", epochs=6, progress=False)
    assert trained.results["test"]["loss"] < 1e-3  # it learned to add: weight 1, bias 0
    w, b = trained.model.weight.item(), trained.model.bias.item()
    assert abs(w - 1) < 0.05 and abs(b) < 0.05


class Recorder:
    """Every event, in order, as the trainer saw it."""

    def __init__(self):
        self.events = []

    def on_fit_start(self, trainer):
        self.events.append(("fit_start", trainer.epoch))

    def on_epoch_start(self, trainer):
        self.events.append(("epoch_start", trainer.epoch))

    def on_step_end(self, trainer):
        if trainer.step == trainer.steps:
            self.events.append(("last_step", trainer.epoch))

    def on_epoch_end(self, trainer, record):
        self.events.append(("epoch_end", record["epoch"], round(record["train_loss"], 6)))

    def on_fit_end(self, trainer):
        self.events.append(("fit_end", trainer.epoch))


def test_a_callback_sees_every_event_with_the_logged_numbers():
    recorder = Recorder()
    trained = dw.train(data="digits", model="mlp", depth=1, width=16, epochs=2, baseline=False, progress=False,
                       callbacks=[recorder])
    logged = [round(r["train_loss"], 6) for r in trained.run.metrics() if r.get("kind") == "epoch"]
    assert recorder.events == [("fit_start", 0), ("epoch_start", 0), ("last_step", 0), ("epoch_end", 1, logged[0]),
                               ("epoch_start", 1), ("last_step", 1), ("epoch_end", 2, logged[1]), ("fit_end", 2)]


class StopAt:
    """Stop the run at a given step of the second epoch, the way an AutoML pruner or a UI would."""

    key = "stop-at"

    def __init__(self, step):
        self.step, self.calls = step, 0

    def on_step_end(self, trainer):
        self.calls += 1
        if trainer.epoch == 1 and trainer.step == self.step:
            trainer.stop_training, trainer.stop_reason = True, "pruned"

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, state):
        self.calls = state["calls"]


def test_a_callback_stops_the_run_which_is_reported_and_resumes_to_the_same_weights():
    settings = dict(task=SPEC, epochs=3, progress=False)
    whole = dw.train(name="whole", **settings)
    stopper = StopAt(5)
    stopped = dw.train(name="stopped", callbacks=[stopper], **settings)
    assert stopped.results["fit"]["stop_reason"] == "pruned" and stopped.results["fit"]["epochs"] == 1
    assert "loss" in stopped.results["test"]  # tested and reported on the weights so far
    record = [r for r in stopped.run.metrics() if r.get("kind") == "stopped"]
    assert record == [{"kind": "stopped", "epoch": 1, "step": 5, "reason": "pruned", "time": record[0]["time"]}]
    later = StopAt(-1)
    resumed = dw.train(resume=stopped.run.path, progress=False, callbacks=[later])
    assert later.calls == 3 * 16  # its own state came back from the checkpoint (16 steps an epoch)
    assert_same_weights(weights(whole.run.path), weights(resumed.run.path))


def test_a_misspelt_event_is_refused_before_training():
    class Typo:
        def on_epoch_ends(self, trainer, record):
            pass

    with pytest.raises(ConfigError, match="defines on_epoch_ends, which is not an event. Did you mean 'on_epoch_end'"):
        dw.train(task=SPEC, epochs=1, progress=False, callbacks=[Typo()])
    assert not (Path("runs").exists() and any(Path("runs").iterdir()))  # nothing was written


def test_a_run_in_another_thread_is_observed_and_stopped_with_the_stop_button():
    stop, seen = dw.StopButton(), []

    class Watch:
        def on_step_end(self, trainer):
            seen.append(trainer.step)
            if len(seen) == 20:
                stop.press()  # as a UI thread would; the run reads it after the step

    result = {}
    thread = threading.Thread(target=lambda: result.update(trained=dw.train(
        task=SPEC, epochs=50, progress=False, callbacks=[Watch(), stop])))
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive()
    fit = result["trained"].results["fit"]
    assert fit["stop_reason"] == "stopped by the user" and fit["epochs"] == 1 and len(seen) == 20


def test_tensorboard_event_files_hold_the_logged_metrics(capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert main(["train", "--task", SPEC, "--epochs", "3", "--name", "board", "--tensorboard", "--quiet"]) == 0
    events = EventAccumulator("runs/board/tensorboard")
    events.Reload()
    logged = [r for r in dw.api.Run("runs/board").metrics() if r.get("kind") == "epoch"]
    for tag, key in (("train/loss", "train_loss"), ("val/abs_error", "val_abs_error"), ("lr", "lr")):
        scalars = events.Scalars(tag)
        assert [s.step for s in scalars] == [1, 2, 3]
        assert [s.value for s in scalars] == pytest.approx([r[key] for r in logged], rel=1e-6)
