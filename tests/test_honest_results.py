"""Results that misled a newcomer (shared/research/newcomer-turn3.md): a fine-tuning run that collapsed in silence,
a test score on nine images given as if it meant something, an AutoML winner inside the validation noise, a
retrained model whose score was never shown, a run in training called stopped, and --task help that forgot tasks."""

from __future__ import annotations

import pytest

from deepworks.cli import build_parser, main
from deepworks.registry import task_names


# --- deepworks train --help, deepworks runs ---------------------------------------------------------------------
def test_the_task_help_names_every_task_the_registry_holds(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in task_names():
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
