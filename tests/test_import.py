"""deepworks import: a classifier made elsewhere becomes a run that evaluate, predict, export and serve work on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import deepworks as dw
from deepworks.cli import main
from deepworks.errors import DeepworksError
from deepworks.exporting.importer import import_model


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
    extra = {"model": "smallcnn", "image_size": 28, "channels": 1} if kind == "safetensors" else {}
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
    imported = import_model(root / "digits.safetensors", classes=trained.classes, normalise=norm, model="smallcnn",
                            image_size=28, channels=1, name="weights")
    card = dw.export(imported.run.path, "onnx", out=tmp_path / "w")
    assert card["graphs"][0]["max_abs_diff"] <= 1e-4 and card["classes"] == trained.classes


def test_import_from_the_command_line(elsewhere, capsys):
    trained, root, norm = elsewhere
    assert main(["import", str(root / "digits.onnx"), "--classes", ",".join(trained.classes), "--normalise", norm]) == 0
    assert "wrote runs/digits-imported: 10 classes, 1x28x28 images" in capsys.readouterr().out
    assert main(["predict", "runs/digits-imported", str(root / "digits.onnx")]) == 2  # not an image
    assert "Cannot read" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_pt2(tmp_path_factory):
    """A torch.export program of a tiny classifier (1x8x8 images, 2 classes), and copies of it that would run code
    when torch.export.load reads them: a pickle in the sample inputs, a shape expression that sympy evaluates, a
    call of a Python function, an AOTInductor library. Each payload opens `marker` for writing (it makes the file)."""
    import io
    import zipfile

    root = tmp_path_factory.mktemp("pt2")
    marker = root / "payload-ran"
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(72, 2)).eval()
    batch = torch.export.Dim("batch", min=1, max=64)
    torch.export.save(torch.export.export(net, (torch.zeros(2, 1, 8, 8),), dynamic_shapes=({0: batch},)),
                      str(root / "good.pt2"))

    class Payload:
        def __reduce__(self):
            return open, (str(marker), "w")

    pickled = io.BytesIO()
    torch.save(((Payload(),), {}), pickled)
    good = zipfile.ZipFile(root / "good.pt2")
    symbol = next(s for s in good.read("good/models/model.json").decode().split('"') if s.startswith("Symbol("))

    def altered(name, change, extra=None):
        with zipfile.ZipFile(root / f"{name}.pt2", "w") as out:
            for member in good.namelist():
                out.writestr(member, change(member, good.read(member)))
            if extra:
                out.writestr(*extra)

    altered("sample", lambda m, d: pickled.getvalue() if m.endswith("sample_inputs/model.pt") else d)
    altered("expr", lambda m, d: d.replace(symbol.encode(), f"open('{marker}', 'w') and {symbol}".encode()))
    altered("call", lambda m, d: d.replace(b"torch.ops.aten.linear.default", b"torch.os.system"))
    altered("library", lambda m, d: d, ("good/data/aotinductor/model/model.so", b"\x7fELF"))
    torch.jit.save(torch.jit.trace(net, torch.zeros(1, 1, 8, 8)), str(root / "script.pt2"))
    return root, marker


@pytest.mark.parametrize("name,message", [
    ("sample", "holds pickled Python objects other than tensors, which could run code when loaded: it was refused"),
    ("expr", "holds the shape expression \"open("),
    ("call", "calls 'torch.os.system', which is not a torch operator: it was refused"),
    ("library", "holds data/aotinductor/model/model.so, which is not part of a plain torch.export program"),
])
def test_a_pt2_that_would_run_code_is_refused_on_import_and_its_payload_never_runs(tiny_pt2, capsys, name, message):
    root, marker = tiny_pt2
    assert main(["import", str(root / f"{name}.pt2"), "--classes", "a,b"]) == 2
    assert message in capsys.readouterr().err
    assert not marker.exists()


def test_a_swapped_model_file_in_a_run_is_refused_before_it_is_loaded(tiny_pt2):
    import json
    import shutil

    root, marker = tiny_pt2
    run = import_model(root / "good.pt2", classes="a,b", normalise="0,1", name="shared").run.path
    shutil.copyfile(root / "sample.pt2", run / "imported.pt2")
    with pytest.raises(DeepworksError, match=r"imported.pt2' is not the file this run was written with: Expected "
                                             r"sha256 [0-9a-f]{64} \(recorded in .*model.json'\). Received: "):
        dw.load(run)
    card = json.loads((run / "model.json").read_text())  # the attacker edits model.json too: the file is still refused
    card["imported"]["sha256"] = __import__("hashlib").sha256((run / "imported.pt2").read_bytes()).hexdigest()
    (run / "model.json").write_text(json.dumps(card))
    with pytest.raises(DeepworksError, match="holds pickled Python objects other than tensors"):
        dw.load(run)
    assert not marker.exists()


def test_swapped_weights_of_a_trained_run_are_refused(use_runs, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    run = shutil.copytree(use_runs["img"], tmp_path / "img")
    state = load_file(run / "model.safetensors")
    save_file({k: torch.zeros_like(v) for k, v in state.items()}, str(run / "model.safetensors"))
    with pytest.raises(DeepworksError, match=r"model.safetensors' is not the file this run was written with: "
                                             r"Expected sha256 .* Restore the run folder from a copy you trust"):
        dw.load(run)


def test_torchscript_named_pt2_is_refused_in_one_line_without_a_traceback(tiny_pt2, capfd):
    root, _ = tiny_pt2
    assert main(["import", str(root / "script.pt2"), "--classes", "a,b"]) == 2
    out, err = capfd.readouterr()
    assert "is not a torch.export program (a TorchScript file" in err
    assert "Traceback" not in out + err and len(err.strip().splitlines()) == 1


def test_an_unknown_normalisation_is_said_and_imported_runs_are_listed_as_what_they_are(tiny_pt2, capsys):
    root, _ = tiny_pt2
    assert main(["import", str(root / "good.pt2"), "--classes", "a,b", "--name", "tiny"]) == 0
    assert "does not say how its images were normalised" in capsys.readouterr().err
    assert main(["runs"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("tiny "))
    assert "pt2" in row and "imported pt2 from good.pt2" in row and "None" not in row


def test_weights_deepworks_wrote_are_imported_with_the_settings_their_metadata_records(use_runs):
    trained = dw.load(use_runs["img"])
    shuffled = list(reversed(trained.classes))
    with pytest.warns(UserWarning, match=r"says classes 0,1,2.* in its deepworks metadata; --classes overrides it"):
        renamed = import_model(use_runs["img"] / "model.safetensors", classes=shuffled, name="renamed")
    assert renamed.classes == shuffled
    imported = import_model(use_runs["img"] / "model.safetensors", name="same")  # nothing but the file
    meta = imported.task.meta
    assert [meta[k] for k in ("classes", "channels", "image_size", "mean", "std")] == [
        trained.task.meta[k] for k in ("classes", "channels", "image_size", "mean", "std")]
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    for a, b in zip(trained.predict(images, top_k=3), imported.predict(images, top_k=3)):
        assert [p["class"] for p in a["predictions"]] == [p["class"] for p in b["predictions"]]
        assert np.allclose([p["probability"] for p in a["predictions"]],
                           [p["probability"] for p in b["predictions"]], atol=1e-5)


def test_the_weights_of_an_export_are_imported_with_the_settings_of_its_card(use_runs, tmp_path):
    trained = dw.load(use_runs["img"])
    dw.export(use_runs["img"], "torchscript", out=tmp_path / "ts")
    imported = import_model(tmp_path / "ts" / "weights.safetensors", name="from-export")
    assert {k: imported.task.meta[k] for k in ("classes", "channels", "image_size", "mean", "std")} == {
        k: trained.task.meta[k] for k in ("classes", "channels", "image_size", "mean", "std")}


def test_weights_of_another_depth_and_width_are_built_as_recorded_and_claims_beyond_the_file_are_not(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    run = dw.train(data="digits", model="mlp", width=24, depth=1, epochs=1, runs_dir=str(tmp_path / "runs"),
                   name="narrow", progress=False)
    imported = import_model(run.run.path / "model.safetensors", runs_dir=tmp_path / "runs", name="narrow-again")
    images = np.random.default_rng(0).integers(0, 256, (4, 8, 8), dtype=np.uint8)
    assert [p["predictions"][0]["class"] for p in run.predict(images)] == [
        p["predictions"][0]["class"] for p in imported.predict(images)]
    assert (imported.cfg.model.width, imported.cfg.model.depth) == (24, 1)

    with safe_open(run.run.path / "model.safetensors", framework="pt") as f:  # a file that claims a vast model
        tensors, card = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()["deepworks"]
    save_file(tensors, str(tmp_path / "vast.safetensors"),
              metadata={"deepworks": card.replace('"depth": 1', '"depth": 100000000')})
    with pytest.raises(DeepworksError, match="does not fit a mlp"):  # built at the defaults, not 10^8 layers
        import_model(tmp_path / "vast.safetensors", runs_dir=tmp_path / "runs")
