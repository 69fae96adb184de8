"""AutoML: a search on digits within its budget, pruning, kill -9 then the same command again, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

import deepworks as dw
import deepworks.experiments.search as search
from deepworks.experiments.search import TrialReporter, parse_budget, parse_space
from deepworks.cli import main
from deepworks.errors import ConfigError, DeepworksError

SPACE = {"model.name": ["smallcnn", "mlp"], "model.depth": {"choices": [1, 2], "when": {"model.name": "mlp"}},
         "model.width": {"choices": [32, 64], "when": {"model.name": "mlp"}},
         "train.lr": {"low": 1e-4, "high": 0.05, "log": True}, "train.epochs": {"low": 2, "high": 4},
         "train.batch_size": 64}


def test_a_search_on_digits_finds_better_settings_than_a_bad_start_within_its_budget(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    clock = StepClock(tick=0.1)  # the budget in the search's own steps (250): the same trials on a busy machine
    monkeypatch.setattr(search, "time", clock)
    code = main(["automl", "--data", "digits", "--budget", "25s", "--space", "space.yaml", "--out", "search",
                 "--retrain"])
    out = capsys.readouterr().out
    assert code == 0
    assert "val_accuracy" in out.splitlines()[0] and "best      trial" in out and "search/best.yaml" in out
    summary = json.loads((tmp_path / "search" / "leaderboard.json").read_text())
    best = summary[0]
    assert best["state"] == "complete" and len(summary) >= 4
    # the budget as the search counts it (how far a busy machine's wall clock overruns it is bench/automl.py's):
    # it went on until its clock ran out, then cut the running trial within a step
    spent = optuna_study(tmp_path / "search").user_attrs["spent_s"]
    assert 25 <= spent <= 25 + 4 * clock.tick
    assert "budget" in max(summary, key=lambda r: r["trial"])["note"]
    assert all(r["state"] in ("complete", "pruned") or "budget" in r["note"] for r in summary)  # none lost
    assert all(r["params"]["model.name"] == "mlp" or "model.depth" not in r["params"] for r in summary)  # `when`
    bad = dw.train(data="digits", model="lenet", lr=1e-4, epochs=2, batch_size=64, progress=False, baseline=False)
    assert best["value"] >= bad.results["fit"]["best_value"] + 0.3  # lr 1e-4 for 2 epochs barely learns
    config = yaml.safe_load((tmp_path / "search" / "best.yaml").read_text())
    assert config["train"]["lr"] == pytest.approx(best["params"]["train.lr"]) and config["train"]["batch_size"] == 64
    report = (tmp_path / "search" / "report" / "index.html").read_text()
    assert "Leaderboard" in report and "history.png" in report and "trials/trial-" in report
    assert main(["evaluate", best["run"], "--json"]) == 0  # the best trial is an ordinary run
    assert json.loads(capsys.readouterr().out)["accuracy"] > 0.8
    retrained = dw.load(tmp_path / "search" / "best-retrained")  # on the training and validation splits together
    assert "retrained search/best-retrained" in out and retrained.results["splits"]["val"] == 0
    assert f"retrained search/best-retrained: test accuracy {retrained.results['test']['accuracy']:.4f} (trial " in out
    assert retrained.results["splits"]["train"] > dw.load(best["run"]).results["splits"]["train"]
    assert retrained.cfg.train.lr == pytest.approx(best["params"]["train.lr"])


class StepClock:
    """The search's clock in a test: every reading moves it on by `tick` seconds. The search reads it about once per
    training step, so its budget counts steps: the same search on a quiet machine and a busy one."""

    def __init__(self, tick: float):
        self.now, self.tick = 0.0, tick

    def monotonic(self) -> float:
        self.now += self.tick
        return self.now


def optuna_study(folder):
    import optuna

    return optuna.load_study(study_name="deepworks", storage=f"sqlite:///{folder / 'study.db'}")


class FakeTrial:
    def __init__(self):
        self.reported, self.attrs = [], {}

    def report(self, value, step):
        self.reported.append((step, value))

    def set_user_attr(self, key, value):
        self.attrs[key] = value


def finished(curve: list[float]):
    import optuna

    return optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, value=max(curve), params={},
                                     distributions={}, intermediate_values=dict(enumerate(curve, 1)),
                                     user_attrs={"schedule": len(curve)})


class FakeSearch:
    budget = 1e9
    request = {"pruner": "median"}

    def __init__(self, *curves):
        import optuna

        self.study = optuna.create_study(direction="maximize")
        for curve in curves:
            self.study.add_trial(finished(curve))

    def remaining(self):
        return 1e9

    def save_clock(self):
        pass


def test_pruning_stops_a_trial_worse_than_the_median_at_the_same_point_of_the_schedule(tmp_path):
    trial = FakeTrial()
    reporter = TrialReporter(FakeSearch([0.995] * 10, [0.99] * 10), trial, "val_accuracy")
    trained = dw.train(data="digits", epochs=6, progress=False, baseline=False, runs_dir=str(tmp_path),
                       callbacks=[reporter])
    assert reporter.pruned and [step for step, _ in trial.reported] == [1] and trial.attrs["schedule"] == 6
    assert trained.results["fit"]["epochs"] == 1 and "pruned" in trained.results["fit"]["stop_reason"]


def test_a_long_schedule_is_compared_with_the_others_at_the_same_share_of_theirs():
    from deepworks.experiments.search import value_at

    short = finished([0.90, 0.95, 0.97])  # epochs at 1/3, 2/3 and the end of its schedule
    assert value_at(short, 0.2) is None  # before its first epoch: nothing to compare with
    assert value_at(short, 0.5) == pytest.approx(0.925) and value_at(short, 1.0) == 0.97
    reporter = TrialReporter(FakeSearch([0.90, 0.95, 0.97], [0.88, 0.94, 0.96]), FakeTrial(), "val_accuracy")
    reporter.scores = [0.80]  # a 12-epoch trial after 2 epochs: far below the short ones after their first
    assert not reporter.prune(2 / 12)  # but they had not reached 1/6 of their schedules: no comparison
    reporter.scores = [0.80, 0.90, 0.93]
    assert not reporter.prune(6 / 12)  # at half its schedule: the median there is 0.9175
    reporter.scores = [0.80, 0.85, 0.90]
    assert reporter.prune(6 / 12)


KILLED = textwrap.dedent("""
    import os, signal, sys
    import deepworks as dw
    import deepworks.experiments.search as search
    from deepworks.experiments.search import TrialReporter
    sys.path.insert(0, sys.argv[3])
    from test_automl import StepClock
    search.time = StepClock(tick=float(sys.argv[4]))  # trial 2 reaches its epoch 2 however busy the machine is
    original = TrialReporter.on_epoch_end
    def on_epoch_end(self, trainer, record):
        original(self, trainer, record)
        if self.trial.number == 2 and record["epoch"] == 2:  # before the checkpoint of epoch 2 is written
            os.kill(os.getpid(), signal.SIGKILL)
    TrialReporter.on_epoch_end = on_epoch_end
    dw.automl(data="digits", budget="25s", out=sys.argv[1], space=sys.argv[2], pruner="none", progress=False)
""")


def test_kill_9_mid_search_then_the_same_command_continues_it(tmp_path, monkeypatch):
    space = dict(SPACE, **{"train.epochs": 4})  # every trial has an epoch 2
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    folder = tmp_path / "search"
    tick = 0.08  # the budget in steps (see StepClock): 312, for 2 trials of 4 epochs of 23 steps, then 2 epochs
    killed = subprocess.run([sys.executable, "-c", KILLED, str(folder), str(tmp_path / "space.yaml"),
                             str(Path(__file__).parent), str(tick)], capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    import optuna

    study = optuna.load_study(study_name="deepworks", storage=f"sqlite:///{folder / 'study.db'}")
    before = {t.number: (t.state.name, t.value) for t in study.trials}
    assert before[0][0] == before[1][0] == "COMPLETE" and before[2][0] == "RUNNING"
    assert (folder / "trials" / "trial-002" / "checkpoint.pt").is_file()
    spent = study.user_attrs["spent_s"]
    assert 0 < spent < 25
    monkeypatch.setattr(search, "time", StepClock(tick))
    summary = dw.automl(data="digits", budget="25s", out=str(folder), space=str(tmp_path / "space.yaml"),
                        pruner="none", progress=False)
    study = optuna.load_study(study_name="deepworks", storage=f"sqlite:///{folder / 'study.db'}")
    trials = {t.number: t for t in study.trials}
    assert {n: (trials[n].state.name, trials[n].value) for n in (0, 1)} == {n: before[n] for n in (0, 1)}  # kept
    assert trials[2].state.name == "FAIL"
    continued = next(t for t in study.trials if t.user_attrs.get("continues") == 2)
    assert continued.params == trials[2].params and continued.state.name in ("COMPLETE", "FAIL")
    assert continued.user_attrs["run"].endswith("trial-002")
    epochs = [r["epoch"] for r in map(json.loads, (folder / "trials" / "trial-002" / "metrics.jsonl").open())
              if r.get("kind") == "epoch"]
    assert epochs[:2] == [1, 2] and epochs == sorted(set(epochs))  # resumed after epoch 1, no epoch twice
    assert 25 <= summary["spent_s"] <= 25 + 4 * tick  # both sessions' time counted against one budget
    assert any(row["note"] == "continues trial 2" for row in summary["leaderboard"])


@pytest.mark.parametrize("task,photos,examples", [("image", False, 60000), ("image", True, 500), ("text", False, 0),
                                                   ("translate", False, 0), ("detect", False, 0), ("audio", False, 0)])
def test_every_default_space_is_valid_and_its_conditions_hold(task, photos, examples):
    from deepworks.experiments.search import default_space

    dims, fixed = parse_space(default_space(task, photos, pretrained=True, examples=examples), "default")
    assert len(dims) >= 8 and not fixed
    keys = [d.setting for d in dims]
    for d in dims:  # every condition is decided before the dimension it governs
        assert all(keys.index(k) < keys.index(d.setting) for k in d.when)
    if task == "image":
        models = dims[0].choices
        assert ("efficientnet_lite0" in models) == photos and "resnet" in models


def test_the_known_good_trial_fits_its_share_of_the_budget_and_only_where_the_space_holds_its_model():
    from deepworks.experiments.search import default_space, portfolio_point

    dims, _ = parse_space(default_space("image", examples=54000), "default")
    point = portfolio_point("image", dims, {}, budget_s=600, pixels=54000 * 28 * 28)
    assert point["model.name"] == "resnet" and point["model.width@resnet"] == 16 and point["data.augment"] == "flip"
    assert point["train.epochs"] == 13  # 40 % of 600 s at 18 s an epoch of 54,000 images
    assert portfolio_point("image", dims, {}, 300, 54000 * 28 * 28)["train.epochs"] == 6
    assert portfolio_point("image", dims, {}, 600, 1000 * 28 * 28)["train.epochs"] == 15  # the range's top
    fixed = {"model.name": "lenet"}  # the command fixes another model
    rest = {k: v for k, v in default_space("image", examples=54000).items() if k != "model.name"}
    assert portfolio_point("image", parse_space(rest, "default", fixed)[0], fixed, 600, 1) == {}
    lenets, _ = parse_space({"model.name": ["lenet", "mlp"], "train.lr": {"low": 0.001, "high": 0.1}}, "space")
    assert portfolio_point("image", lenets, {}, 600, 1) == {}
    assert portfolio_point("text", *parse_space(default_space("text"), "default"), 600, 1) == {}


@pytest.mark.parametrize("space,message", [
    ({"train.lrr": [0.1]}, "Unknown search key 'train.lrr' in space. Did you mean 'train.lr'?"),
    ({"train.lr": {"low": 0.1, "high": 0.01}}, "the range is empty; expected low < high. Received: low 0.1, high 0.01"),
    ({"train.optimizer": []}, "expected at least one choice. Received: []"),
    ({"train.optimizer": ["adamx"]}, "must be one of sgd, momentum"),
    ({"train.lr": {"low": 0, "high": 0.1, "log": True}}, "a log range needs low > 0"),
    ({"model.depth": {"choices": [1], "when": {"model.name": "mlp"}}}, "'model.name' is not searched"),
])
def test_a_bad_search_space_is_named_with_the_fix(space, message):
    with pytest.raises(ConfigError) as err:
        parse_space(space, "space")
    assert message in str(err.value)


def test_a_budget_too_short_for_one_trial_or_unreadable_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(ConfigError, match=r"--budget 5s is too short for one trial.*Expected at least 20s\. "
                                          r"Received: 5s"):
        dw.automl(data="digits", budget="5s", out=str(tmp_path / "a"))
    with pytest.raises(ConfigError, match="expected a time such as 90s, 10m or 1h. Received: 'soon'"):
        parse_budget("soon")
    assert parse_budget("1.5h") == 5400 and parse_budget("10m") == 600 and parse_budget(90) == 90
    assert not (tmp_path / "a").exists()


def test_a_setting_fixed_on_the_command_line_is_not_searched_unless_the_space_says_so_too(tmp_path):
    from deepworks.experiments.search import Search

    with pytest.raises(ConfigError, match="'train.lr' is both fixed on the command line and searched in the space"):
        dw.automl(data="digits", budget="20s", out=str(tmp_path / "a"), lr=0.01, space={"train.lr": [0.1, 0.01]})
    request = {"task": "image", "settings": {"data.source": "digits", "model.name": "mlp"}, "space": {},
               "space_file": None, "seed": 0, "sampler": "tpe", "pruner": "median", "budget_s": 60}
    search = Search(tmp_path / "b", request)
    dims, fixed, monitor, _ = search.resolve()
    assert "model.name" not in [d.setting for d in dims] and monitor == "val_accuracy"
    tried = [d.setting for d in dims if d.applies({"model.name": "mlp"})]
    assert "train.lr" in tried and "model.depth" not in tried  # the ResNet's and LeNet's sizes are not tried


def test_a_search_whose_data_cannot_be_read_leaves_nothing_that_would_refuse_the_corrected_command(tmp_path):
    from deepworks.errors import DataError

    with pytest.raises((DataError, ConfigError), match="nowhere"):
        dw.automl(data=str(tmp_path / "nowhere"), budget="20s", out=str(tmp_path / "s"))
    assert not (tmp_path / "s" / "search.json").exists() and not (tmp_path / "s" / "study.db").exists()


def test_a_different_command_on_an_existing_search_folder_is_refused(tmp_path):
    folder = tmp_path / "search"
    folder.mkdir()
    (folder / "study.db").touch()
    (folder / "search.json").write_text(json.dumps({"task": "image", "settings": {"data.source": "digits"},
                                                    "space": {}, "space_file": None, "seed": 0, "sampler": "tpe",
                                                    "pruner": "median", "budget_s": 60}))
    with pytest.raises(DeepworksError, match="holds a search started with other settings \\(sampler, settings differ\\)"):
        dw.automl(data="digits", budget="60s", out=str(folder), sampler="random", lr=0.1)


def test_no_warm_start_is_a_flag_of_the_command_and_part_of_the_search_s_command(tmp_path):
    from deepworks.cli import build_parser
    from deepworks.errors import DeepworksError
    from deepworks.experiments.search import first_trials

    start, known = {"model.name": "lenet"}, {"model.name": "resnet"}
    assert [note for _, note in first_trials(start, known)] == ["deepworks' defaults for this data",
                                                               "deepworks' known-good settings for this task"]
    assert first_trials(start, dict(start)) == [(start, "deepworks' defaults for this data")]
    assert first_trials(start, known, warm_start=False) == []

    assert build_parser().parse_args(["automl", "--no-warm-start"]).warm_start is False
    assert build_parser().parse_args(["automl"]).warm_start is True
    (tmp_path / "search.json").write_text(json.dumps({"task": "image", "sampler": "tpe"}))
    from deepworks.run import check_same_command

    check_same_command(tmp_path / "search.json", {"task": "image", "sampler": "tpe"}, "a search")  # older searches
    with pytest.raises(DeepworksError, match="warm_start differ"):
        check_same_command(tmp_path / "search.json", {"task": "image", "sampler": "tpe", "warm_start": False},
                           "a search")
