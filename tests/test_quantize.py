"""int8 exports (`deepworks export RUN --quantize int8`): ONNX Runtime's static quantisation calibrated on the run's
training images, kept only where the test split's answers stay (the same top answer for 99 %, accuracy within half a
point), smaller, served by `serve --runtime int8`; refused where it is not built, and said where it is not kept."""

from __future__ import annotations

import json

import numpy as np
import pytest

import deepworks as dw
from deepworks.errors import ConfigError

pytest.importorskip("onnxruntime")


@pytest.fixture(autouse=True)
def quick_speed(monkeypatch):
    """int8's speed against float is measured and written on the card (bench/quantize.py has the figures): a few
    forwards of each graph here, not a quarter of a second of each at each batch size."""
    from deepworks.exporting import quantize

    monkeypatch.setattr(quantize, "TIMED_S", 0.02)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    runs = tmp_path_factory.mktemp("int8")
    dw.train(data="digits", epochs=10, name="digits", runs_dir=str(runs), progress=False)
    return runs / "digits"


def test_an_int8_classifier_keeps_the_test_answers_in_a_smaller_file(digits, tmp_path, capsys):
    import onnxruntime as ort

    from deepworks.cli import main

    assert main(["export", str(digits), "--quantize", "int8", "--out", str(tmp_path / "out")]) == 0
    said = capsys.readouterr().out
    assert "classifier.int8.onnx (int8" in said and "the float graph's speed at batch 1" in said
    card = json.loads((tmp_path / "out" / "model.json").read_text())
    int8 = card["graphs"][0]["int8"]
    assert int8["kept"] and int8["method"] == "static" and int8["checked"]["examples"] == 179
    checked = int8["checked"]
    assert checked["agreement"] >= 0.99 and checked["float_accuracy"] - checked["int8_accuracy"] <= 0.005
    assert int8["bytes"] * 2 < int8["float_bytes"]
    assert set(int8["speed_vs_float"]) == {"batch_1", "batch_32"} and min(int8["speed_vs_float"].values()) > 0
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28, 1), dtype=np.uint8)
    probs = ort.InferenceSession(str(tmp_path / "out" / int8["file"])).run(None, {"images": images})[0]
    assert probs.shape == (5, 10) and np.allclose(probs.sum(1), 1, atol=1e-3)
    assert "int8 (static quantisation" in (tmp_path / "out" / "README.md").read_text()


def test_calibration_images_are_spread_over_the_split_not_its_first_classes():
    """A folder read in class order puts one class first: calibrating on its first images would measure one class's
    activations."""
    import torch

    from deepworks.tasks.image_face import ImageFace

    images = torch.arange(100, dtype=torch.uint8).view(100, 1, 1, 1).expand(100, 1, 2, 2).contiguous()
    feeds = ImageFace.calibration_feeds(None, "classifier", (images, torch.zeros(100)), 10, batch=4)
    assert [len(f["images"]) for f in feeds] == [4, 4, 2]
    seen = np.concatenate([f["images"][:, 0, 0, 0] for f in feeds])
    assert seen.tolist() == [0, 11, 22, 33, 44, 55, 66, 77, 88, 99]
    assert ImageFace.calibration_feeds(None, "classifier", (images[:3], torch.zeros(3)), 10)[0]["images"].shape == \
        (3, 2, 2, 1)


def test_a_sound_classifier_s_int8_graph_keeps_its_features_in_float_and_its_answers(tones_run, tmp_path):
    """The log-mel front end stays in float (a DFT's powers span more orders of magnitude than 256 levels hold); the
    network after it computes in int8, and the test split's answers stay."""
    import onnx

    card = dw.export(tones_run.run.path, out=str(tmp_path / "out"), quantize="int8")
    int8 = card["graphs"][0]["int8"]
    assert int8["kept"] and int8["method"] == "static", int8
    assert int8["checked"]["agreement"] >= 0.99 and int8["checked"]["examples"] >= 30
    assert int8["checked"]["float_accuracy"] - int8["checked"]["int8_accuracy"] <= 0.005
    nodes = list(onnx.load(str(tmp_path / "out" / int8["file"])).graph.node)
    dequantized = {out for n in nodes if n.op_type == "DequantizeLinear" for out in n.output}
    front = nodes[:max(i for i, n in enumerate(nodes) if n.op_type == "Log") + 1]
    assert any(n.op_type == "Conv" for n in front)  # the DFT, as a convolution, and the mel filters: in float
    assert not [n.name for n in front if dequantized & set(n.input)]
    assert [n for n in nodes if n.op_type == "Conv" and dequantized & set(n.input)]  # the network's: in int8


def test_a_character_model_s_step_graph_is_quantised_dynamically_and_checked_step_by_step(use_runs, tmp_path):
    """An LSTM's weights in int8 (dynamic quantisation: no calibration), checked on the validation text read as 32
    streams, each step from the state the float model reached there; its speed measured on one stream and on 32."""
    import onnx

    card = dw.export(use_runs["txt"], out=str(tmp_path / "out"), quantize="int8")
    int8 = card["graphs"][0]["int8"]
    assert int8["method"] == "dynamic" and int8["checked"]["examples"] > 32 and "float_accuracy" not in int8["checked"]
    assert int8["kept"] and int8["checked"]["agreement"] >= 0.99, int8
    assert set(int8["speed_vs_float"]) == {"batch_1", "batch_32"} and int8["bytes"] * 2 < int8["float_bytes"]
    ops = {n.op_type for n in onnx.load(str(tmp_path / "out" / int8["file"])).graph.node}
    assert "DynamicQuantizeLSTM" in ops and "MatMulInteger" in ops, ops


def test_a_translation_s_encoder_and_decoder_step_are_quantised_and_checked_word_by_word(use_runs, tmp_path):
    """Both graphs' weights in int8 (dynamic quantisation), each checked teacher-forced at every word of the test
    references: the decoder step by its own next words, the encoder by what the model's decoder steps make of its
    outputs. The int8 graphs, run by the loop in the card, translate as the model does."""
    import onnx

    cards = {name: dw.export(use_runs[name], out=str(tmp_path / name), quantize="int8") for name in ("gru", "tf")}
    for name, card in cards.items():
        for graph in card["graphs"]:
            int8, checked = graph["int8"], graph["int8"]["checked"]
            assert int8["kept"] and int8["method"] == "dynamic" and checked["examples"] > 1000, (name, int8)
            assert checked["agreement"] >= 0.99 and checked["int8_accuracy"] >= checked["float_accuracy"] - 0.005
        assert card["graphs"][0]["int8"]["bytes"] < card["graphs"][0]["int8"]["float_bytes"]
        ops = {n.op_type for n in onnx.load(str(tmp_path / name / "decoder_step.int8.onnx")).graph.node}
        assert "MatMulInteger" in ops, ops
    trained = dw.load(use_runs["gru"])
    assert card_loop(cards["gru"], tmp_path / "gru", "the 3rd of march 1998", trained) == trained.translate(
        "the 3rd of march 1998")[0]["tokens"]
    assert cards["gru"]["graphs"][1]["int8"]["checked"]["float_accuracy"] > 0.5  # (it has learnt the dates)


def card_loop(card: dict, folder, sentence: str, trained) -> list[str]:
    """A sentence translated greedily by the int8 encoder and decoder step, as the card's loop says."""
    import onnxruntime as ort

    sessions = [ort.InferenceSession(str(folder / g["int8"]["file"])) for g in card["graphs"]]
    src_vocab, tgt_vocab = card["source_vocab"], card["target_vocab"]
    src = np.array([[src_vocab.index(t) if t in src_vocab else 1 for t in trained.task.split(sentence, "src")]])
    outs = sessions[0].run(None, {"src": src})
    n_state = len(card["graphs"][1]["outputs"]) - 2  # (logits, the new state, the attention)
    tensors, state = outs[:len(outs) - n_state], outs[len(outs) - n_state:]
    names = [i["name"] for i in card["graphs"][1]["inputs"]]
    prev, words = np.array([tgt_vocab.index("<s>")]), []
    for _ in range(2 * src.shape[1] + 10):
        logits, *rest = sessions[1].run(None, dict(zip(names, [prev, src, *tensors, *state])))
        state = rest[:n_state]
        prev = logits.argmax(1)
        if tgt_vocab[int(prev[0])] == "</s>":
            break
        words.append(tgt_vocab[int(prev[0])])
    return words


def test_a_detector_s_int8_graph_is_checked_by_its_boxes_map(shapes_detector, tmp_path, monkeypatch, capsys):
    """A detector's graph is calibrated on its letterboxed training images and judged by COCO's mAP of its boxes on
    the test split, decoded as the recipe's evaluation decodes them: kept within a point of the float graph's, and
    refused, saying both, where it loses more."""
    import onnxruntime as ort

    from deepworks.cli import main
    from deepworks.exporting import quantize

    assert main(["export", str(shapes_detector.run.path), "--quantize", "int8", "--out", str(tmp_path / "det")]) == 0
    said = capsys.readouterr().out
    int8 = json.loads((tmp_path / "det" / "model.json").read_text())["graphs"][0]["int8"]
    checked = int8["checked"]
    assert set(checked) == {"examples", "float_map", "int8_map"} and checked["examples"] == 90  # the test split
    assert checked["float_map"] == pytest.approx(shapes_detector.results["test"]["map"], abs=0.02)  # as trained
    assert int8["kept"] and checked["float_map"] - checked["int8_map"] <= 0.01
    assert int8["bytes"] * 2 < int8["float_bytes"]
    assert "test mAP@[.5:.95]" in said and "test mAP@[.5:.95]" in (tmp_path / "det" / "README.md").read_text()
    images = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    scores, boxes = ort.InferenceSession(str(tmp_path / "det" / int8["file"])).run(None, {"images": images})
    assert scores.shape[:2] == (2, len(shapes_detector.face.meta["classes"])) and boxes.shape[:2] == (2, 4)
    monkeypatch.setitem(quantize.METRIC_DROPS, "map", (-1.0, "mAP@[.5:.95]"))  # no graph can gain a whole mAP
    int8 = dw.export(shapes_detector.run.path, out=str(tmp_path / "strict"), quantize="int8")["graphs"][0]["int8"]
    assert not int8["kept"] and "test mAP@[.5:.95] is" in int8["reason"], int8
    assert "against the float graph's" in int8["reason"]
    assert not (tmp_path / "strict" / "detector.int8.onnx").exists()


def test_int8_is_refused_where_it_is_not_built_and_not_kept_where_it_changes_answers(digits, use_runs, tmp_path,
                                                                                   monkeypatch):
    from deepworks.exporting import quantize

    from deepworks.exporting.exporter import int8_tasks

    built = ("image classification, character-level text generation, translation, object detection, sound "
             "classification")
    said = int8_tasks()  # the built-in tasks first, then any a test process registered (a distributed test's own)
    assert said.startswith(built) and len(said.split(", ")) == len(set(said.split(", ")))
    assert not {"segmentation", "image restoration", "style transfer"} & set(said.split(", "))  # no int8 check there
    with pytest.raises(ConfigError, match=f"--quantize int8 is built for these tasks' runs so far: {built}"):
        dw.export(use_runs["gan"], out=str(tmp_path / "gan"), quantize="int8")
    with pytest.raises(ConfigError, match="use --format onnx"):
        dw.export(digits, format="pt2", out=str(tmp_path / "pt2"), quantize="int8")
    monkeypatch.setattr(quantize, "AGREEMENT", 1.01)  # no graph can keep more than every answer
    card = dw.export(digits, out=str(tmp_path / "strict"), quantize="int8")
    int8 = card["graphs"][0]["int8"]
    assert not int8["kept"] and "changed the top answer" in int8["reason"]
    assert not (tmp_path / "strict" / "classifier.int8.onnx").exists()


def test_serve_answers_from_the_int8_graph(digits, tmp_path):
    import shutil

    from fastapi.testclient import TestClient

    from deepworks.serving import build_app

    run = tmp_path / "lenet"  # not 'digits': a folder of that name in the working folder would be read as the data
    shutil.copytree(digits, run, ignore=shutil.ignore_patterns("export"))
    image = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8).tolist()
    with TestClient(build_app([str(run)], runtime="int8")) as client:
        assert client.get("/v1/models/lenet").json()["runtime"] == "int8"
        served = client.post("/v1/models/lenet/predict", json={"inputs": [image]})
        assert served.status_code == 200 and served.json()["outputs"][0]["predictions"], served.text
    assert (run / "export" / "onnx" / "classifier.int8.onnx").is_file()
    package_serves_the_int8_graph(run, tmp_path / "package", image, served.json())


def test_serve_int8_serves_a_task_without_int8_from_its_float_graph_and_says_so(use_runs, tmp_path):
    """--runtime int8 over several runs: one whose task has no int8 (a GAN) is served from its float ONNX graph, with
    a note on its card, rather than refusing the whole server."""
    import shutil

    from fastapi.testclient import TestClient

    from deepworks.serving import build_app

    run = tmp_path / "gan"
    shutil.copytree(use_runs["gan"], run, ignore=shutil.ignore_patterns("export"))
    with TestClient(build_app([str(run)], runtime="int8")) as client:
        card = client.get("/v1/models/gan").json()
    assert card["runtime"] == "onnx" and "int8 is not built for a GAN run" in card["runtime_note"], card


def test_an_export_without_int8_removes_the_int8_twin_of_an_earlier_one(digits, tmp_path):
    """The folder's card is the new export's: an int8 graph left from an earlier export would be another model's."""
    dw.export(digits, out=str(tmp_path / "out"), quantize="int8")
    assert (tmp_path / "out" / "classifier.int8.onnx").is_file()
    card = dw.export(digits, out=str(tmp_path / "out"))
    assert "int8" not in card["graphs"][0] and not (tmp_path / "out" / "classifier.int8.onnx").exists()


def package_serves_the_int8_graph(run, folder, image, served: dict) -> None:
    """`deepworks package --quantize int8`: the package serves the int8 graph by default, answering as serve --runtime
    int8 does, and its float graph when asked."""
    from fastapi.testclient import TestClient

    from deepworks.exporting.package import package_run
    from deepworks.serving import make_app
    from deepworks.serving.packaged import PackagedModel

    assert package_run(run, folder, quantize="int8")["runtime"] == "int8"
    with TestClient(make_app([PackagedModel(folder, name="lenet")])) as client:
        assert client.get("/v1/models/lenet").json()["runtime"] == "int8"
        assert client.post("/v1/models/lenet/predict", json={"inputs": [image]}).json() == served
    assert PackagedModel(folder, runtime="onnx").runtime == "onnx"
