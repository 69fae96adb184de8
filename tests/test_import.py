"""deepworks import: a classifier made elsewhere becomes a run that evaluate, predict, export and serve work on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import deepworks as dw
from deepworks.cli import main
from deepworks.errors import DeepworksError
from deepworks.importing import import_model


@pytest.fixture(scope="module")
def elsewhere(use_runs, tmp_path_factory):
    """The digits run's network alone, saved as a user of plain PyTorch would: ONNX, torch.export and safetensors
    files of a model that takes normalised (N, 1, 28, 28) floats and returns 10 logits."""
    from safetensors.torch import save_file

    trained = dw.load(use_runs["img"])
    meta, net = trained.task.meta, trained.model.float().eval()
    root = tmp_path_factory.mktemp("elsewhere")
    x = torch.randn(2, 1, meta["image_size"], meta["image_size"])
    torch.onnx.export(net, (x,), str(root / "digits.onnx"), input_names=["x"], dynamic_axes={"x": {0: "n"}},
                      dynamo=False)
    batch = torch.export.Dim("batch", min=1, max=4096)
    torch.export.save(torch.export.export(net, (x,), dynamic_shapes=({0: batch},)), str(root / "digits.pt2"))
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(root / "digits.safetensors"))
    norm = f"{meta['mean'][0]},{meta['std'][0]}"
    return trained, root, norm


@pytest.mark.parametrize("kind", ["onnx", "pt2", "safetensors"])
def test_an_imported_classifier_predicts_and_evaluates_as_the_original_does(elsewhere, kind):
    trained, root, norm = elsewhere
    extra = {"model": "lenet", "image_size": 28, "channels": 1} if kind == "safetensors" else {}
    imported = import_model(root / f"digits.{kind}", classes=trained.classes, normalise=norm, name=kind, **extra)
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    ours, theirs = trained.predict(images, top_k=2), imported.predict(images, top_k=2)
    for a, b in zip(ours, theirs):
        assert [p["class"] for p in a["predictions"]] == [p["class"] for p in b["predictions"]]
        assert np.allclose([p["probability"] for p in a["predictions"]],
                           [p["probability"] for p in b["predictions"]], atol=1e-4)
    original = dw.evaluate(trained.run.path, data="digits")
    again = dw.evaluate(imported.run.path, data="digits")
    assert again["samples"] == original["samples"] and abs(again["accuracy"] - original["accuracy"]) < 1e-3


def test_an_imported_pt2_model_can_be_explained_and_an_onnx_one_says_why_not(elsewhere, tmp_path):
    trained, root, norm = elsewhere
    from PIL import Image

    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "blank.png")
    pt2 = import_model(root / "digits.pt2", classes=trained.classes, normalise=norm, name="pt2x")
    explained = pt2.explain(tmp_path / "blank.png", out=tmp_path / "explained", steps=8)
    assert (tmp_path / "explained").is_dir() and explained
    onnx = import_model(root / "digits.onnx", classes=trained.classes, normalise=norm, name="onnxx")
    with pytest.raises(DeepworksError, match="'explain' needs the model's gradients.*imported ONNX file"):
        onnx.explain(tmp_path / "blank.png")
    for run in (onnx, pt2):
        with pytest.raises(DeepworksError, match="is an imported .*already runs without deepworks"):
            dw.export(run.run.path)
    with pytest.raises(DeepworksError, match="was imported .* has no data of its own. Evaluate it .* --data"):
        dw.evaluate(onnx.run.path)


def test_an_imported_onnx_run_is_served(elsewhere):
    from fastapi.testclient import TestClient

    from deepworks.serving import build_app

    trained, root, norm = elsewhere
    imported = import_model(root / "digits.onnx", classes=trained.classes, normalise=norm, name="served")
    images = np.random.default_rng(1).integers(0, 256, (2, 28, 28)).tolist()
    with TestClient(build_app([str(imported.run.path)])) as client:
        assert client.get("/v1/models/served").json()["runtime"] == "onnx"
        r = client.post("/v1/models/served/predict", json={"inputs": images, "top_k": 1})
    expected = [p["predictions"] for p in trained.predict(np.array(images, dtype=np.uint8), top_k=1)]
    assert [o["predictions"][0]["class"] for o in r.json()["outputs"]] == [e[0]["class"] for e in expected]


@pytest.mark.parametrize("args,message", [
    (["{root}/digits.onnx", "--classes", "a,b,c"], "gives outputs of shape (1, 10) for one image. Expected (1, 3)"),
    (["{root}/digits.onnx", "--classes", "a"], "--classes names the model's outputs in order, at least two"),
    (["{root}/nothing.onnx", "--classes", "a,b"], "No such file"),
    (["{root}/digits.safetensors", "--classes", "0,1,2,3,4,5,6,7,8,9"], "need the architecture they belong to: --model"),
    (["{root}/digits.safetensors", "--classes", "0,1,2,3,4,5,6,7,8,9", "--model", "resnet", "--image-size", "28",
      "--channels", "1"], "does not fit a resnet for 1x28x28 images and 10 classes: missing"),
    (["{root}/digits.onnx", "--classes", "0,1,2,3,4,5,6,7,8,9", "--normalise", "0.5"], "--normalise takes MEAN,STD"),
    (["{root}/digits.onnx", "--classes", "0,1,2,3,4,5,6,7,8,9", "--image-size", "32"],
     "takes 28x28 images, and --image-size says 32"),
    (["{root}/digits.onnx", "--classes", "0,1,2,3,4,5,6,7,8,9", "--task", "text"], "takes image classifiers"),
])
def test_a_model_that_does_not_fit_is_refused_with_what_was_expected(elsewhere, capsys, args, message):
    _, root, _ = elsewhere
    (root / "notes.txt").write_text("not a model")
    assert main(["import", *[a.format(root=root) for a in args]]) == 2
    assert message in capsys.readouterr().err


def test_imported_safetensors_weights_export_like_a_trained_run(elsewhere, tmp_path):
    trained, root, norm = elsewhere
    imported = import_model(root / "digits.safetensors", classes=trained.classes, normalise=norm, model="lenet",
                            image_size=28, channels=1, name="weights")
    card = dw.export(imported.run.path, "onnx", out=tmp_path / "w")
    assert card["graphs"][0]["max_abs_diff"] <= 1e-4 and card["classes"] == trained.classes


def test_import_from_the_command_line(elsewhere, capsys):
    trained, root, norm = elsewhere
    assert main(["import", str(root / "digits.onnx"), "--classes", ",".join(trained.classes), "--normalise", norm]) == 0
    assert "wrote runs/digits-imported: 10 classes, 1x28x28 images" in capsys.readouterr().out
    assert main(["predict", "runs/digits-imported", str(root / "digits.onnx")]) == 2  # not an image
    assert "Cannot read" in capsys.readouterr().err
