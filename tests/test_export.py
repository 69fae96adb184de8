"""Export: every task's graphs are written, checked against torch, and usable without deepworks."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors import safe_open

import deepworks as dw
from deepworks.cli import main
from deepworks.errors import DataError, DeepworksError
from deepworks.exporting.importer import import_model


@pytest.fixture(scope="module")
def transformer_export(use_runs, tmp_path_factory):
    """The shared Transformer translation, exported once for the tests that read its export: (card, folder)."""
    folder = tmp_path_factory.mktemp("export") / "tf"
    return dw.export(use_runs["tf"], "onnx", out=folder), folder


def test_a_transformer_translation_exports_to_onnx_that_matches_torch_at_another_batch_size(transformer_export):
    """Every task's own export is checked by the contract harness (test_task_contract.py); this is the second
    translation model, whose graphs differ from the GRU's inside."""
    card, folder = transformer_export
    assert [g["name"] for g in card["graphs"]] == ["encoder", "decoder_step"]
    for g in card["graphs"]:
        assert (folder / g["file"]).is_file()
        assert g["verified"]["batch"] == 3 and g["exporter"] in ("dynamo", "legacy")
        assert g["max_abs_diff"] <= (1.0 if g["outputs"][0]["dtype"] == "uint8" else 1e-4)
    saved = json.loads((folder / "model.json").read_text())
    assert saved["task"] == card["task"] and saved["weights"]["sha256"] == card["weights"]["sha256"]
    with safe_open(folder / "weights.safetensors", framework="pt") as f:
        inside = json.loads(f.metadata()["deepworks"])
    assert inside["weights_sha256"] == card["weights"]["sha256"] and inside["task"] == card["task"]
    assert "onnxruntime" in (folder / "README.md").read_text()


def test_an_exported_image_model_answers_as_deepworks_does_with_deepworks_not_importable(use_runs, tmp_path):
    trained = dw.load(use_runs["img"])
    card = dw.export(use_runs["img"], "onnx", out=tmp_path / "onnx")
    _, height, width, channels = card["graphs"][0]["inputs"][0]["shape"]  # (None, H, W, C): any batch
    assert card["model"]["name"] == trained.cfg.model.name  # the settings an image model takes, not other tasks'
    assert "attention" not in card["model"] and "latent_size" not in card["model"]
    images = np.random.default_rng(0).integers(0, 256, (5, height, width, channels), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    script = (
        "import sys, json, numpy as np\n"
        "sys.modules['deepworks'] = None  # any import of deepworks now fails\n"
        "import onnxruntime as ort\n"
        "card = json.load(open('onnx/model.json'))\n"
        "session = ort.InferenceSession('onnx/' + card['graphs'][0]['file'])\n"
        "probs = session.run(None, {'images': np.load('images.npy')})[0]\n"
        "print(json.dumps({'classes': [card['classes'][i] for i in probs.argmax(1)], 'top': probs.max(1).tolist()}))\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True)
    answer = json.loads(out.stdout)
    ours = trained.predict(images, top_k=1)
    assert answer["classes"] == [o["predictions"][0]["class"] for o in ours]
    assert np.allclose(answer["top"], [o["predictions"][0]["probability"] for o in ours], atol=1e-5)
    readme = (tmp_path / "onnx" / "README.md").read_text()  # what the caller does, then what the graph does itself
    before = next(line for line in readme.splitlines() if line.startswith("Before the graph: "))
    inside = next(line for line in readme.splitlines() if line.startswith("Inside the graph: "))
    assert "resize" in before and "mean" not in before and "mean: " in inside and "std: " in inside


def test_the_char_rnn_step_graph_writes_what_generate_writes_by_the_loop_in_its_card(use_runs, tmp_path):
    import onnxruntime as ort

    trained = dw.load(use_runs["txt"])
    card = dw.export(use_runs["txt"], "onnx", out=tmp_path)
    session = ort.InferenceSession(str(tmp_path / "step.onnx"))
    vocab, spec = card["vocab"], card["graphs"][0]
    state = {i["name"]: np.zeros((i["shape"][0], 1, i["shape"][2]), np.float32) for i in spec["inputs"][1:]}
    text = "the "
    for ch in text:  # the prime, then 30 characters at temperature 0, as the card's loop says
        out = session.run(None, {"ids": np.array([vocab.index(ch)]), **state})
        state = dict(zip(state, out[1:]))
    for _ in range(30):
        nxt = int(out[0].argmax())
        text += vocab[nxt]
        out = session.run(None, {"ids": np.array([nxt]), **state})
        state = dict(zip(state, out[1:]))
    assert text == trained.generate("the ", length=30, temperature=0)


def test_a_translation_exports_an_encoder_and_a_step_that_translate_as_deepworks_does(use_runs,
                                                                                      transformer_export):
    import onnxruntime as ort

    trained = dw.load(use_runs["tf"])
    card, folder = transformer_export
    encoder = ort.InferenceSession(str(folder / "encoder.onnx"))
    step = ort.InferenceSession(str(folder / "decoder_step.onnx"))
    sentence = "the 3rd of march 1998"
    src_vocab, tgt_vocab = card["source_vocab"], card["target_vocab"]
    src = np.array([[src_vocab.index(t) if t in src_vocab else 1 for t in trained.task.split(sentence, "src")]])
    outs = encoder.run(None, {"src": src})
    tensors, state = outs[:-1], outs[-1]
    prev, words = np.array([tgt_vocab.index("<s>")]), []
    names = [i["name"] for i in card["graphs"][1]["inputs"]]
    for _ in range(2 * src.shape[1] + 10):
        logits, state, _ = step.run(None, dict(zip(names, [prev, src, *tensors, state])))
        prev = logits.argmax(1)
        if tgt_vocab[int(prev[0])] == "</s>":
            break
        words.append(tgt_vocab[int(prev[0])])
    assert words == trained.translate(sentence)[0]["tokens"]


def test_an_export_matches_torch_to_1e_4_relative_to_outputs_above_1_and_to_one_level_of_uint8_pixels():
    """A GRU encoder's outputs of tens differ by about 1e-4 between torch and ONNX Runtime (float32 sums round in
    proportion to their size: a Multi30k model's export was refused at 1.07e-4); small outputs keep 1e-4 itself."""
    import torch

    from deepworks.exporting.exporter import limit_for, max_difference

    large, small = torch.full((2, 3), 30.0), torch.full((2, 3), 0.5)
    assert max_difference((large,), (large + 1.5e-3,), scaled=True) <= limit_for((large,)) * 1.0001
    assert max_difference((large,), (large + 4e-3,), scaled=True) > limit_for((large,))
    assert max_difference((small,), (small + 2e-4,), scaled=True) > limit_for((small,))
    assert max_difference((large,), (large + 1.5e-3,)) == pytest.approx(1.5e-3, rel=1e-3)  # (the card's, absolute)
    pixels = torch.full((1, 4), 200, dtype=torch.uint8)
    assert max_difference((pixels,), (pixels + 1,), scaled=True) <= limit_for((pixels,))
    assert max_difference((pixels,), (pixels + 2,), scaled=True) > limit_for((pixels,))


@pytest.mark.parametrize("fmt", ["pt2", "torchscript"])
def test_pt2_and_torchscript_exports_load_back_in_torch_alone(use_runs, tmp_path, fmt):
    card = dw.export(use_runs["img"], fmt, out=tmp_path)
    path = tmp_path / card["graphs"][0]["file"]
    model = torch.export.load(str(path)).module() if fmt == "pt2" else torch.jit.load(str(path))
    images = torch.randint(0, 256, (4, *card["graphs"][0]["inputs"][0]["shape"][1:]), dtype=torch.uint8)
    probs = model(images)
    ours = dw.load(use_runs["img"]).predict(images.numpy(), top_k=1)
    assert [card["classes"][i] for i in probs.argmax(1).tolist()] == [o["predictions"][0]["class"] for o in ours]
    if fmt == "pt2":  # its pixels come channels last, normalised inside: import points at the export's weights
        with pytest.raises(DataError, match=r"takes pixels channels last, .* a deepworks export.* Import the export's "
                                            r"weights instead: deepworks import .*weights.safetensors"):
            import_model(path, classes=card["classes"], runs_dir=tmp_path / "runs")


def test_a_graph_torch_export_cannot_trace_is_refused_with_what_to_use_instead(use_runs, tmp_path):
    with pytest.raises(DeepworksError, match="torch.export cannot trace the encoder graph .*Export with --format onnx"):
        dw.export(use_runs["gru"], "pt2", out=tmp_path)


def test_export_from_the_command_line_says_what_it_wrote(use_runs, tmp_path, capsys):
    assert main(["export", str(use_runs["gan"]), "--out", str(tmp_path / "g"), "--format", "torchscript"]) == 0
    assert f"wrote {tmp_path / 'g'}/generator.ts.pt (torch.jit.trace" in capsys.readouterr().out
    assert main(["export", str(use_runs["gru"]), "--format", "pt2", "--out", str(tmp_path / "p")]) == 2
    assert "error: torch.export cannot trace the encoder graph" in capsys.readouterr().err


@pytest.mark.parametrize("target,message", [
    ("file", "is a file. Expected a folder to write the export into (a new one is made). Received: an existing file"),
    ("file/sub", "Cannot make the folder"),
    ("a" * 300, "(File name too long). Expected --out to be a folder you may write to"),
])
def test_an_export_to_a_target_that_cannot_be_a_folder_says_so_in_one_line(use_runs, tmp_path, capsys, target,
                                                                           message):
    (tmp_path / "file").write_text("not a folder")
    assert main(["export", str(use_runs["gan"]), "--format", "pt2", "--out", str(tmp_path / target)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_an_export_to_a_read_only_folder_says_so_in_one_line(use_runs, tmp_path, capsys, monkeypatch):
    import errno
    import tempfile

    def read_only(*args, **kwargs):  # what a read-only file system answers (chmod does not stop root)
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    assert main(["export", str(use_runs["gan"]), "--format", "onnx", "--out", str(tmp_path / "ro")]) == 2
    err = capsys.readouterr().err
    assert "Cannot write '" in err and "(Read-only file system). Check that its folder exists" in err
    assert list((tmp_path / "ro").iterdir()) == []  # refused before any graph is traced and written


def test_an_export_that_does_not_fit_on_the_disk_is_refused_before_it_writes(use_runs, tmp_path, capsys, monkeypatch):
    import collections
    import shutil

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 ** 6, 10 ** 6 - 1000, 1000))
    assert main(["export", str(use_runs["gan"]), "--format", "torchscript", "--out", str(tmp_path / "full")]) == 2
    assert "The disk is full: the export needs about" in capsys.readouterr().err
    assert not (tmp_path / "full").exists()  # "Nothing was written": not even the folder made for it


@pytest.mark.parametrize("fmt", ["torchscript", "pt2"])
def test_a_disk_that_fills_during_an_export_gives_the_full_disk_message_and_no_partial_file(
        use_runs, tmp_path, capsys, monkeypatch, fmt):
    import errno
    import os

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)  # every file deepworks writes is flushed to the disk before its rename
    assert main(["export", str(use_runs["gan"]), "--format", fmt, "--out", str(tmp_path / "x")]) == 2
    assert "The disk is full: '" in capsys.readouterr().err
    assert list((tmp_path / "x").iterdir()) == []
