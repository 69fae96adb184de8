"""`deepworks compare`: variants on identical data order, the winner named, gradient norms that teach, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import deepworks as dw
from deepworks.training import batches
from deepworks.cli import main
from deepworks.errors import ConfigError


def test_variants_see_the_same_data_in_the_same_order_and_the_winner_is_named(tmp_path, capsys, monkeypatch):
    seen = []
    original = batches.epoch_order

    def spy(n, seed, epoch, device, shuffle=True):
        order = original(n, seed, epoch, device, shuffle)
        seen.append((seed, epoch, tuple(order[:20].tolist())))
        return order

    monkeypatch.setattr(batches, "epoch_order", spy)
    argv = ["compare", "--vary", "optimizer=sgd,adam", "--seeds", "2", "--epochs", "2", "--lr", "0.003",
            "--out", str(tmp_path / "cmp"), "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert len(seen) == 2 * 2 * 2  # variants x seeds x epochs
    sgd, adam = seen[:4], seen[4:]
    assert sgd == adam and sgd[0] != sgd[2]  # the same orders for the same seed, other orders for another seed
    summary = json.loads((tmp_path / "cmp" / "summary.json").read_text())
    assert [v["variant"] for v in summary["variants"]] == ["optimizer=adam", "optimizer=sgd"]  # plain SGD at 0.003
    assert summary["variants"][0]["test accuracy mean"] > summary["variants"][1]["test accuracy mean"] + 0.2
    assert out.splitlines()[1].startswith("optimizer=adam") and "optimizer=adam won: accuracy" in out
    report = (tmp_path / "cmp" / "report" / "index.html").read_text()
    assert "curves-val_accuracy.png" in report and "curves-train_loss.png" in report
    seen.clear()
    assert main(argv) == 0  # the same command again: every run is finished, none is trained again
    assert seen == [] and json.loads((tmp_path / "cmp" / "summary.json").read_text()) == summary
    again = dw.compare(["optimizer=sgd,adam"], seeds=2, epochs=2, lr=0.003, out=str(tmp_path / "cmp"), progress=False)
    assert seen == [] and again["winner"] == "optimizer=adam"  # the same command from Python: read back as well
    with pytest.raises(dw.DeepworksError, match="holds a comparison started with other settings \\(settings differ\\)"):
        dw.compare(["optimizer=sgd,adam"], seeds=2, epochs=3, lr=0.003, out=str(tmp_path / "cmp"))


def test_gradient_norms_show_a_zero_start_that_never_learns_and_sigmoid_gradients_vanishing(tmp_path):
    summary = dw.compare(vary={"activation": ["sigmoid", "relu"], "init": ["zeros", "xavier"]}, seeds=1,
                         data="digits", model="mlp", depth=5, width=64, epochs=1, out=str(tmp_path / "cmp"),
                         progress=False)
    norms = {}
    for row in summary["variants"]:
        norms[row["variant"]] = json.loads((Path(row["runs"][0]) / "gradients.json").read_text())
    zeros = norms["activation=relu,init=zeros"]
    assert len(zeros) == 6 and all(v == 0.0 for layer in zeros.values() for v in layer)  # nothing ever moves
    sigmoid, relu = norms["activation=sigmoid,init=xavier"], norms["activation=relu,init=xavier"]
    first, last = "net.1", "net.11"
    assert sigmoid[first][0] < 0.1 * sigmoid[last][0]  # the gradient shrinks on its way back through sigmoids
    assert relu[first][0] > 0.3 * relu[last][0]
    assert "gradients.png" in (tmp_path / "cmp" / "report" / "index.html").read_text()


@pytest.mark.parametrize("vary,message", [
    (["optimizer"], "--vary expects SETTING=VALUE1,VALUE2 (such as optimizer=sgd,adam). Received: 'optimizer'."),
    (["optimizer=sgd"], "--vary optimizer: expected at least two values to compare. Received: ['sgd']."),
    (["optimiser=sgd,adam"], "--vary: unknown setting 'optimiser'. Did you mean 'train.optimizer'?"),
    (["optimizer=sgd,adamx"], "must be one of sgd, momentum"),
    (["lr=0.1,0.10"], "--vary lr: a value is given twice."),
    (["lr=0.1,0.2", "lr=0.3,0.4"], "--vary names 'lr' twice."),
])
def test_a_bad_vary_is_named_with_the_fix(vary, message, tmp_path):
    with pytest.raises(ConfigError) as err:
        dw.compare(vary, out=str(tmp_path / "cmp"))
    assert message in str(err.value)
    with pytest.raises(ConfigError, match="'train.lr' is both varied and fixed"):
        dw.compare(["lr=0.1,0.2"], lr=0.3, out=str(tmp_path / "cmp"))
