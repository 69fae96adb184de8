"""Detection's defaults, as a newcomer meets them: no flip unless asked (a mirrored 2 is not a 2), one box per object
when classes compete for it, and a score threshold calibrated on the validation split, kept in model.json and used by
the API, the CLI and the server when no threshold is given."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import deepworks as dw
from deepworks.metrics.boxes import best_f1_threshold, one_box_per_object, precision_recall_at
from deepworks.data.detection import make_shapes


# --- one box per object -------------------------------------------------------------------------------------------------
def test_two_classes_on_one_object_give_one_box_named_by_the_better_score():
    boxes = torch.tensor([[10.0, 10, 30, 30], [11, 10, 31, 30], [10, 11, 30, 31]])  # a "7", a "1" and a "4" on one digit
    scores = torch.tensor([0.39, 0.62, 0.31])
    classes = torch.tensor([7, 1, 4])
    assert one_box_per_object(boxes, scores, classes).tolist() == [1]
    assert one_box_per_object(boxes, scores, classes, class_iou=1.0).tolist() == [1, 0, 2]  # 1: a box per class


def test_objects_of_different_classes_side_by_side_keep_their_boxes():
    boxes = torch.tensor([[10.0, 10, 30, 30], [26, 10, 46, 30], [10.0, 40, 30, 60], [12, 42, 30, 60]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    classes = torch.tensor([2, 3, 5, 5])  # a 2 touching a 3 (IoU 0.11); a 5 found twice (same class: NMS)
    assert one_box_per_object(boxes, scores, classes).tolist() == [0, 1, 2]


def test_the_calibrated_threshold_is_the_score_with_the_best_f1():
    truth = [(np.array([[0.0, 0, 10, 10], [20, 20, 30, 30]]), np.array([0, 1]))]
    found = [(np.array([[0.0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10], [40, 40, 50, 50]]),
              np.array([0.9, 0.555, 0.5, 0.2]), np.array([0, 1, 1, 0]))]
    # by score: hit, hit (F1 1.0), a wrong class on the first object, nothing there: the threshold keeps two boxes
    assert best_f1_threshold(truth, found) == {"threshold": 0.55, "precision": 1.0, "recall": 1.0, "f1": 1.0,
                                              "objects": 2}
    assert precision_recall_at(truth, found, 0.1) == {"precision": 0.5, "recall": 1.0, "f1": 0.6667, "objects": 2}
    assert best_f1_threshold([(np.zeros((0, 4)), np.zeros(0, np.int64))], found) is None


# --- the trained run ------------------------------------------------------------------------------------------------------
def test_detection_trains_without_flip_by_default_and_says_how_to_add_it(shapes_detector):
    assert shapes_detector.cfg.data.augment == "crop"
    summary = dict(shapes_detector.task.make_report().summary(shapes_detector.results))
    assert "no flip: a mirrored 2 is not a 2. --augment crop+flip adds mirrored images" in summary["augment"]


def test_the_calibrated_threshold_is_stored_and_used_when_none_is_given(shapes_detector, tmp_path):
    run = shapes_detector.run
    found = shapes_detector.results["threshold"]
    stored = json.loads((run.path / "model.json").read_text())["meta"]["threshold"]
    assert found["threshold"] == stored and 0.01 <= stored < 1 and found["f1"] > 0.5, found
    summary = dict(shapes_detector.task.make_report().summary(shapes_detector.results))
    assert f"boxes shown from score {stored:.2f}, the best F1 on the validation split" in summary["threshold"]

    s = make_shapes(3, 99)
    files = []
    for i, im in enumerate(s.images):
        files.append(tmp_path / f"p{i}.png")
        Image.fromarray(im.transpose(1, 2, 0)).save(files[-1])
    loaded = dw.load(run.path)
    default = loaded.detect([str(f) for f in files])
    assert default == loaded.detect([str(f) for f in files], threshold=stored)
    assert default != loaded.detect([str(f) for f in files], threshold=0.01)
    assert all(b["score"] >= stored for answer in default for b in answer["boxes"])
    r = subprocess.run([sys.executable, "-m", "deepworks", "detect", str(run.path), *map(str, files), "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert [a["boxes"] for a in json.loads(r.stdout)] == [a["boxes"] for a in default]

    from fastapi.testclient import TestClient

    from deepworks.serving import build_app

    with TestClient(build_app([str(run.path)])) as c:
        card = c.get("/v1/models/shapes").json()
        assert card["options"]["threshold"]["default"] == stored, card["options"]
        r = c.post("/v1/models/shapes/detect", files=[("file", ("p0.png", files[0].read_bytes(), "image/png"))])
        assert r.status_code == 200 and r.json()["outputs"][0]["boxes"] == default[0]["boxes"]


@pytest.mark.parametrize("bad", [1.5, -0.1, "0.3", True, float("nan")])
def test_a_run_whose_stored_threshold_is_not_a_score_is_refused(shapes_detector, tmp_path, bad):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(shapes_detector.run.path, copy)
    card = json.loads((copy / "model.json").read_text())
    card["meta"]["threshold"] = bad
    (copy / "model.json").write_text(json.dumps(card))
    with pytest.raises(dw.DeepworksError, match="threshold .* is not a score from 0 to 1"):
        dw.load(copy)


def test_class_iou_is_a_setting_of_detect_checked_like_the_threshold(shapes_detector):
    image = make_shapes(1, 98).images[0].transpose(1, 2, 0)
    one_each = shapes_detector.detect(image, threshold=0.01)[0]["boxes"]
    every_class = shapes_detector.detect(image, threshold=0.01, class_iou=1.0)[0]["boxes"]
    assert len(every_class) > len(one_each)  # at a low threshold, runner-up classes peak on the same shapes
    with pytest.raises(dw.DataError, match=r"detect: class_iou must be from 0.0 to 1.0. Received: 2."):
        shapes_detector.detect(image, class_iou=2)
