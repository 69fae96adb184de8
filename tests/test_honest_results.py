"""Results that misled a newcomer (shared/research/newcomer-turn3.md): a fine-tuning run that collapsed in silence,
a test score on nine images given as if it meant something, an AutoML winner inside the validation noise, a
retrained model whose score was never shown, a run in training called stopped, and --task help that forgot tasks."""

from __future__ import annotations

import re

import pytest

from deepworks.cli import build_parser, main
from deepworks.cards import BUILTIN_CARDS as BUILTIN


# --- deepworks train --help, deepworks runs ---------------------------------------------------------------------
def test_the_task_help_names_every_task_the_registry_holds(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in BUILTIN:  # (tasks other test files register in this process are theirs, not the help's)
        assert f"({name})" in text, name
    assert "object detection (detect)" in text and "sound classification (audio)" in text


def test_a_run_that_is_training_is_listed_as_training_not_as_stopped(capsys):
    import json
    from pathlib import Path

    from deepworks.config import Config
    from deepworks.run import Run

    run = Run(Path("runs/busy"))
    run.path.mkdir(parents=True)
    cfg = Config()
    cfg.train.epochs = 30
    cfg.save(run.config_file)
    run.metrics_file.write_text("".join(json.dumps({"kind": "epoch", "epoch": e, "val_loss": 1.0 / e}) + "\n"
                                        for e in range(1, 11)))
    with run.lock():  # what a training process holds until it ends
        assert main(["runs"]) == 0
        assert "training (epoch 10 of 30)" in capsys.readouterr().out
    assert main(["runs"]) == 0  # the process is gone, the run unfinished: interrupted
    assert "stopped after epoch 10" in capsys.readouterr().out


# --- a collapse, and a test split too small to mean anything -----------------------------------------------------
def epochs_of(accuracies, losses, val=None):
    return [{"kind": "epoch", "epoch": e, "train_accuracy": a, "train_loss": l, "val_accuracy": (val or a)}
            for e, (a, l) in enumerate(zip(accuracies, losses), 1)]


def image_task(**model):
    from deepworks.config import Config
    from deepworks.tasks.image import ImageClassification

    cfg = Config()
    for key, value in model.items():
        setattr(cfg.model, key, value)
    return ImageClassification(cfg)


def image_report(**model):
    return image_task(**model).make_report()


def test_a_fine_tuning_run_whose_training_accuracy_collapses_is_told_so_and_what_to_try():
    report = image_report(name="efficientnet_lite0", pretrained=True)  # the newcomer's run on 3 classes x 30 photos
    records = epochs_of([0.97, 0.94, 0.39, 0.53, 0.43, 0.53], [0.10, 0.15, 2.23, 1.40, 1.60, 1.30])
    note = report.collapse_note(records, best_epoch=1)
    assert note.startswith("Training collapsed at epoch 3: the training accuracy fell from 0.97 (epoch 1) to 0.39, "
                           "the training loss from 0.100 to 2.230; it was 0.53 at the last epoch (6).")
    assert "The weights of epoch 1, the best on validation, were kept" in note
    assert "a lower --lr (--lr 0.001)" in note and "--freeze" in note
    learning = epochs_of([0.5, 0.7, 0.8, 0.85, 0.84, 0.9], [1.2, 0.8, 0.6, 0.5, 0.52, 0.4])
    assert report.collapse_note(learning, best_epoch=6) is None  # a wobble is not a collapse
    assert image_report(name="lenet").collapse_note(records, 1).endswith("try a lower --lr (--lr 0.001).")


def test_the_summary_and_report_say_when_a_test_split_is_too_small_to_tell(tmp_path):
    task = image_task(name="lenet")
    task.meta = {"source": "folder 'cifar3'", "classes": ["airplane", "cat", "ship"]}
    report = task.make_report()
    results = {"test": {"samples": 9, "accuracy": 1.0, "top2_accuracy": 1.0, "macro_f1": 1.0}, "baseline": None,
               "splits": {"train": 72, "val": 9, "test": 9}, "parameters": 10,
               "fit": {"epochs": 6, "train_seconds": 1.0, "stopped_early": True,
                       "collapse": "Training collapsed at epoch 3: ..."}}
    test_line = dict(report.summary(results))["test"]
    assert test_line.startswith("accuracy 1.0000 (9 images; 95 % CI 0.70–1.00: too few to tell; evaluate on more "
                                "labelled images: deepworks evaluate RUN --data FOLDER)")
    many = {**results, "test": {**results["test"], "samples": 10000, "accuracy": 0.9}}
    assert "CI" not in dict(report.summary(many))["test"]
    some = {**results, "test": {**results["test"], "samples": 179, "accuracy": 0.9832}}
    assert "(179 images; 95 % CI 0.95–0.99)" in dict(report.summary(some))["test"]
    assert "Training collapsed at epoch 3" in report.notes_html(results)
    evaluated = {**results["test"], "loss": 0.1, "per_class": []}  # deepworks evaluate says it too
    assert report.describe_metrics(evaluated)[0].startswith("accuracy 1.0000 (9 images; 95 % CI 0.70–1.00: too few")


def test_a_run_on_a_few_images_prints_and_reports_its_interval_and_its_collapse(image_folder, capsys, monkeypatch):
    from deepworks.tasks.image_report import ImageReport

    said = "Training collapsed at epoch 1: (as the rule above finds it)"
    monkeypatch.setattr(ImageReport, "collapse_note", lambda self, records, best: said)
    assert main(["train", "--data", str(image_folder), "--model", "mlp", "--epochs", "1", "--image-size", "8",
                 "--no-baseline", "--quiet", "--name", "few"]) == 0
    out = capsys.readouterr().out
    assert "images; 95 % CI" in out.split("test      accuracy ")[1].splitlines()[0] and "too few to tell" in out
    assert f"note      {said}" in out
    report = open("runs/few/report/index.html").read()
    assert said in report and "too few to tell" in report


# --- AutoML: a winner inside the validation noise ----------------------------------------------------------------
def study_of(*trials, monitor="val_accuracy"):
    """An Optuna study holding finished trials: (score, parameters, note) each, scored on 108 validation images."""
    import optuna

    study = optuna.create_study(direction="maximize")
    study.set_user_attr("monitor", monitor)
    for value, parameters, note in trials:
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE, value=value, params={}, distributions={},
            user_attrs={"val_samples": 108, "parameters": parameters, "note": note, "epochs": 5, "seconds": 1.0}))
    return study


def test_automl_prefers_the_defaults_when_the_best_beats_them_by_less_than_the_noise():
    from deepworks.experiments.board import leaderboard
    from deepworks.experiments.report import leaderboard_text

    defaults = "deepworks' defaults for this data"
    board = leaderboard(study_of((106 / 108, 60_000, defaults), (107 / 108, 270_000, ""), (95 / 108, 10_000, "")))
    assert [r["trial"] for r in board] == [0, 1, 2]  # the newcomer's case: one image of 108 apart
    assert board[1]["error"] == pytest.approx(0.0129, abs=1e-4)  # a binomial standard error on 108 images
    assert board[0]["note"] == f"{defaults}; chosen: simpler, within ±0.0129 of the top"
    assert board[0]["chosen"] == ("chosen over trial 1's 0.9907: within one standard error of it (±0.0129 on 108 "
                                  "validation images), and simpler (deepworks' defaults)")
    assert board[1]["note"] == "top score, within the noise of trial 0"
    text = leaderboard_text(board, "val_accuracy")
    assert "±" in text.splitlines()[0] and re.search(r"\b1 +0\.9907 +0\.0129 +complete \(top score", text)
    fewer = leaderboard(study_of((107 / 108, 270_000, ""), (106 / 108, 60_000, ""), (105 / 108, 90_000, "")))
    assert fewer[0]["trial"] == 1 and "simpler (the fewest parameters)" in fewer[0]["chosen"]
    clear = leaderboard(study_of((90 / 108, 60_000, defaults), (107 / 108, 270_000, "")))
    assert clear[0]["trial"] == 1 and "chosen" not in clear[0]["note"]  # a clear lead wins
    losses = leaderboard(study_of((0.30, 60_000, defaults), (0.31, 270_000, ""), monitor="val_loss"))
    assert losses[0]["error"] is None and losses[0]["trial"] == 1  # no binomial error for a loss: the top score
