"""Adversarial examples, attributions, feature visualisation, representations and the data audit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import deepworks as dw
from deepworks.cli import main
from deepworks.data.audit import audit_splits
from deepworks.trust.attacks import attacked_predictions, fooling_image
from deepworks.trust.explain import attribute

QUICK = dict(data="digits", model="lenet", epochs=4, baseline=False, seed=0)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """LeNet-5 on scikit-learn's digits (about 96% test accuracy), trained once for this module."""
    return dw.train(runs_dir=str(tmp_path_factory.mktemp("runs")), name="plain", progress=False, **QUICK)


def pixels_of(trained, n=179):
    x, y = trained.examples("test")
    return x[:n].float() / 255, y[:n]


def accuracy_under(trained, method, eps, **options):
    model = trained.face.pixel_model(trained.model).eval()
    x, y = pixels_of(trained)
    clean, adv = attacked_predictions(model, x, y, method, eps, **options)
    return float((clean == y).float().mean()), float((adv == y).float().mean())


def test_fgsm_and_pgd_break_the_model_at_a_visible_epsilon_and_not_at_zero(digits_run):
    clean, at_zero = accuracy_under(digits_run, "pgd", 0.0)
    assert clean > 0.9 and at_zero == clean
    _, fgsm = accuracy_under(digits_run, "fgsm", 0.15)
    _, pgd = accuracy_under(digits_run, "pgd", 0.15, steps=20)
    assert fgsm < clean - 0.3, (clean, fgsm)
    assert pgd <= fgsm and pgd < 0.2, (fgsm, pgd)
    _, l2 = accuracy_under(digits_run, "pgd", 2.0, steps=20, norm="l2")
    assert l2 < clean - 0.3


def test_pgd_restarts_and_targeted_attacks(digits_run):
    model = digits_run.face.pixel_model(digits_run.model).eval()
    x, y = pixels_of(digits_run, 60)
    target = torch.full_like(y, 3)
    _, adv = attacked_predictions(model, x, y, "pgd", 0.3, steps=20, target=target)
    others = y != 3
    assert (adv[others] == 3).float().mean() > 0.8  # pushed to the chosen class, not just away from the true one
    torch.manual_seed(1)
    _, one = attacked_predictions(model, x, y, "pgd", 0.05, steps=10, restarts=1)
    torch.manual_seed(1)  # the first of three restarts is the single one: the others can only add successes
    _, three = attacked_predictions(model, x, y, "pgd", 0.05, steps=10, restarts=3)
    assert (three == y).sum() <= (one == y).sum()


def test_adversarial_training_raises_robust_accuracy(digits_run, tmp_path):
    robust = dw.train(runs_dir=str(tmp_path), name="robust", progress=False, adversarial="fgsm", eps=0.1,
                      robust_steps=15, **QUICK)
    _, plain_pgd = accuracy_under(digits_run, "pgd", 0.1, steps=10)
    clean, robust_pgd = accuracy_under(robust, "pgd", 0.1, steps=10)
    assert robust_pgd > plain_pgd + 0.2, (plain_pgd, robust_pgd)
    assert clean > 0.7
    metrics = robust.results["test"]["robust"]
    assert metrics["eps"] == 0.1 and 0 <= metrics["pgd15_accuracy"] <= metrics["fgsm_accuracy"] + 0.05
    epochs = [r for r in robust.run.metrics() if r.get("kind") == "epoch"]
    assert all("val_robust_accuracy" in r for r in epochs)
    page = (robust.run.report_dir / "index.html").read_text()
    assert "Robustness" in page and "robust, PGD15" in page


def test_fooling_image_reaches_the_asked_confidence(digits_run):
    model = digits_run.face.pixel_model(digits_run.model).eval()
    image, reached, steps = fooling_image(model, 7, (1, 28, 28), confidence=0.99)
    assert reached >= 0.99 and image.min() >= 0 and image.max() <= 1
    result = digits_run.fool("7")
    assert result["reached"] and result["class"] == "7"


def test_integrated_gradients_are_complete(digits_run):
    model = digits_run.face.pixel_model(digits_run.model).eval()
    x, _ = pixels_of(digits_run, 1)
    attr, gap = attribute(model, x, 4, "integrated-gradients", steps=64)
    with torch.no_grad():
        change = float(model(x)[0, 4] - model(torch.zeros_like(x))[0, 4])
    assert abs(float(attr.sum()) - change) < 0.02 * max(1.0, abs(change)) and gap < 0.02 * max(1.0, abs(change))


def test_explain_attack_and_visualize_one_image(digits_run, tmp_path):
    from PIL import Image

    x, _ = digits_run.examples("test")
    Image.fromarray(x[0, 0].numpy()).resize((40, 30)).convert("RGB").save(tmp_path / "digit.png")
    explained = digits_run.explain(tmp_path / "digit.png", label="1", out=tmp_path / "out")
    assert "converted to 28x28 grey" in explained["note"]
    assert {r["method"] for r in explained["attributions"]} == {"integrated-gradients", "gradient-x-input"}
    assert (tmp_path / "out" / "explain-digit.png").exists()
    attacked = digits_run.attack("pgd", 0.3, image=tmp_path / "digit.png", target="2", out=tmp_path / "out")
    assert attacked["success"] and attacked["after"]["class"] == "2" and attacked["max_change"] <= 0.3 + 1e-6
    shown = digits_run.visualize(label="5", layer="features.0", channels="0-2", out=tmp_path / "out", steps=64)
    assert shown["classes"][0]["probability"] > 0.9  # the class's own picture convinces the model
    assert shown["channels"] == [0, 1, 2] and all(Path(f).exists() for f in shown["files"].values())


def test_representations_use_the_epoch_snapshots(digits_run, tmp_path):
    assert sorted(p.name for p in (digits_run.run.path / "snapshots").iterdir()) == [
        "epoch-1.safetensors", "epoch-2.safetensors", "epoch-4.safetensors"]
    result = digits_run.representations(samples=150, out=tmp_path)
    assert [r["snapshot"] for r in result["snapshots"]] == ["epoch 1", "epoch 2", "epoch 4", "final"]
    assert result["snapshots"][-1]["linear_separability"] > 0.8
    assert (tmp_path / "representations-pca.png").exists()


def test_representation_demo_needs_a_hidden_layer_or_a_better_representation(tmp_path, capsys):
    assert main(["demo", "representation", "--out", str(tmp_path / "demo"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["spirals"]["linear"] < 0.65 and result["spirals"]["hidden"] > 0.97
    assert result["rings"]["cartesian"] < 0.65 and result["rings"]["polar"] > 0.97
    assert (tmp_path / "demo" / "spirals.png").exists() and (tmp_path / "demo" / "rings.png").exists()


def planted(seed=0):
    """Three classes of 8x8 grey noise blobs; train and test with planted copies, a near copy and a shortcut."""
    rng = np.random.default_rng(seed)

    def images(n, c):
        x = rng.integers(0, 200, (n, 1, 16, 16)).astype(np.uint8)
        x[:, :, 4:12, 4:12] = np.clip(x[:, :, 4:12, 4:12].astype(int) + 40 * c, 0, 255)
        return x

    x = np.concatenate([images(60, c) for c in range(3)])
    y = np.repeat(np.arange(3), 60)
    x[y == 2, :, :2, :] = 255  # a white band at the top of every class-2 image: a shortcut
    x_test = np.concatenate([images(20, c) for c in range(3)])
    y_test = np.repeat(np.arange(3), 20)
    x_test[:3] = x[[5, 6, 7]]  # exact leaks
    noisy = x[70].astype(int) + 3 + rng.integers(-2, 3, x[70].shape)
    x_test[10] = np.clip(noisy, 0, 255).astype(np.uint8)  # a brightened, slightly noisy near copy
    x[100] = x[101]  # a duplicate within train
    x[150] = np.clip(x[140].astype(int) + 5, 0, 255).astype(np.uint8)  # and a near one
    return x, y, x_test, y_test


def test_audit_finds_planted_copies_leakage_and_a_shortcut():
    x, y, x_test, y_test = planted()
    findings = {f.check: f for f in audit_splits({"train": (x, y), "test": (x_test, y_test)}, ["a", "b", "c"])}
    assert findings["leakage"].details["count"] == 3 and [5, 0] in [list(p) for p in findings["leakage"].details["pairs"]]
    assert findings["near-leakage"].details["count"] == 1 and findings["near-leakage"].details["pairs"][0][:2] == [10, 70]
    assert findings["duplicates"].details["extra_copies"] == 1
    assert findings["near-duplicates"].details["pairs"] == [[140, 150, pytest.approx(1.0, abs=1e-3)]]
    assert findings["shortcuts"].severity == "warning" and "c (F1" in findings["shortcuts"].message
    assert findings["balance"].severity == "info"


def test_audit_command_and_the_warning_before_training(tmp_path, capsys):
    x, y, x_test, y_test = planted()
    np.savez(tmp_path / "planted.npz", x=x, y=y, x_test=x_test, y_test=y_test)
    assert main(["audit", str(tmp_path / "planted.npz"), "--out", str(tmp_path / "audit")]) == 0
    out = capsys.readouterr().out
    assert "leakage: 3 test image(s) also appear in train" in out and "what to do:" in out
    assert (tmp_path / "audit" / "index.html").exists() and (tmp_path / "audit" / "pairs.png").exists()
    with pytest.warns(UserWarning, match="also appear in train"):
        dw.train(data=str(tmp_path / "planted.npz"), epochs=1, baseline=False, progress=False, model="mlp")


def test_attack_command_json_and_bad_input(digits_run, capsys, tmp_path):
    run = str(digits_run.run.path)
    assert main(["attack", run, "--method", "fgsm", "--eps", "0.1", "--samples", "50", "--curve", "0,0.2",
                 "--examples", "0,3", "--out", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [p["eps"] for p in result["curve"]] == [0.0, 0.1, 0.2] and result["curve"][0]["accuracy"] == result["clean_accuracy"]
    assert result["adversarial_accuracy"] < result["clean_accuracy"] and (tmp_path / "attack-fgsm-eps0.1-examples.png").exists()

    assert main(["attack", run, "--examples", "5000"]) == 2
    assert "--examples [5000]: the test split has images 0 to 178" in capsys.readouterr().err
    assert main(["attack", run, "--eps", "3"]) == 2
    assert "outside the data range: pixels are scaled to [0, 1]" in capsys.readouterr().err
    assert main(["attack", run, "--fool", "cat"]) == 2
    assert "'cat' is not a class of this model. Its classes are: 0, 1, 2" in capsys.readouterr().err
    assert main(["visualize", run, "--layer", "nope"]) == 2
    assert "'nope' is not a layer of this model. Its layers are: features.0" in capsys.readouterr().err
    assert main(["explain", run, str(tmp_path / "missing.png")]) == 2
    assert "No such image file" in capsys.readouterr().err


def test_trust_tools_refuse_runs_that_are_not_image_classifiers(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("deepworks.metrics.fid.FEATURE_STEPS", 5)  # FID's classifier is beside the point here
    gan = dw.train(task="gan", epochs=1, progress=False, width=8, latent_size=8, fid_samples=32, batch_size=64)
    assert main(["attack", str(gan.run.path)]) == 2
    assert "'attack' works on image classifiers" in capsys.readouterr().err



def test_a_collapse_of_robustness_is_warned_about_once_and_robust_runs_keep_their_most_robust_epoch():
    from deepworks.tasks.image import ImageClassification, RobustnessWarning
    from deepworks.tasks.image_robust import RobustnessWatch

    task = ImageClassification(dw.api.make_config(adversarial="fgsm"))
    assert task.default_monitor == "val_robust_accuracy"
    assert ImageClassification(dw.api.make_config()).default_monitor == "val_accuracy"
    [watch] = task.callbacks()  # the watch keeps the run's accuracies under attack, not the task
    assert isinstance(watch, RobustnessWatch) and ImageClassification(dw.api.make_config()).callbacks() == []
    watch.check(0.5)
    watch.check(0.6)
    with pytest.warns(RobustnessWarning, match="fell from 60.0% to 10.0%"):
        watch.check(0.1)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        watch.check(0.05)  # once is enough
    resumed = RobustnessWatch()
    resumed.load_state_dict(watch.state_dict())  # saved with the checkpoint: a resumed run does not warn again
    assert resumed.seen == [0.5, 0.6, 0.1, 0.05] and resumed.warned
