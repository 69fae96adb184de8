"""The Start page's samples API without a browser: what lands where, and every refusal a 4xx that says what was
expected and what was received."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import scipy.io.wavfile
from fastapi.testclient import TestClient
from PIL import Image

from conftest import UI_ADDRESS as LOCAL, ui_client
from deepworks.ui import sample_store


@pytest.fixture
def client(tmp_path):
    with ui_client(tmp_path / "runs") as c:
        c.samples = c.runs / ".ui" / "samples"
        yield c


def png(colour=(200, 30, 30), size=(40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def wav(freq=440.0, seconds=0.5, rate=16000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    buffer = io.BytesIO()
    scipy.io.wavfile.write(buffer, rate, (0.5 * np.sin(2 * np.pi * freq * t) * 32767).astype(np.int16))
    return buffer.getvalue()


def upload(client, files, dataset="pets", cls="cat", task="image"):
    fields = {k: v for k, v in {"dataset": dataset, "class": cls, "task": task}.items() if v is not None}
    return client.post("/api/samples", data=fields, files=[("files", f) for f in files])


def refused(answer, status: int, *words: str) -> None:
    assert answer.status_code == status, answer.text
    message = answer.json()["error"]
    assert "Expected" in message and "Received" in message, message
    for word in words:
        assert word in message, message


def test_pictures_land_numbered_in_their_class_folder_with_thumbnails_and_the_listing_says_how_to_train(client):
    answer = upload(client, [("a.png", png()), ("b.jpg", png((0, 0, 255))), ("c.png", png())])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["added"] == 3 and body["kind"] == "image"
    assert body["data"] == str(client.samples / "pets")
    folder = client.samples / "pets" / "cat"
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) == ["1.png", "2.png", "3.png"]  # b.jpg is a PNG
    assert len(list((folder / ".thumbs").iterdir())) == 3
    upload(client, [("d.png", png())], cls="dog")
    upload(client, [("e.png", png())])
    listing = client.get("/api/samples/pets").json()
    assert [(c["name"], c["count"]) for c in listing["classes"]] == [("cat", 4), ("dog", 1)]  # in the order made
    assert listing["classes"][0]["samples"][-1] == {"file": "4.png", "url": "/api/samples/pets/cat/4.png"}
    assert listing["min_per_class"] >= 2
    image = client.get("/api/samples/pets/cat/4.png")
    assert image.headers["content-type"] == "image/png" and image.content == png()
    thumb = client.get("/api/samples/pets/cat/4.png", params={"thumb": 1})
    assert Image.open(io.BytesIO(thumb.content)).size == (40, 30)  # small already: kept as it is
    assert client.get("/api/samples").json()["datasets"] == [{"dataset": "pets", "kind": "image", "classes": 2}]


def test_a_zip_adds_its_pictures_and_skips_the_clutter_macos_puts_in(client):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for i in range(5):
            z.writestr(f"holiday/{i}.png", png((i * 40, 0, 0)))
        z.writestr("__MACOSX/holiday/._0.png", b"resource fork")
        z.writestr("holiday/.DS_Store", b"finder")
    answer = upload(client, [("holiday.zip", buffer.getvalue()), ("one.png", png())], cls="beach")
    assert answer.status_code == 200, answer.text
    assert answer.json()["classes"][0]["count"] == 6


def test_sound_clips_are_read_by_the_project_s_audio_reader(client):
    answer = upload(client, [("hi.wav", wav())], dataset="voice", cls="yes", task="audio")
    assert answer.status_code == 200, answer.text
    assert (client.samples / "voice" / "yes" / "1.wav").read_bytes() == wav()
    assert client.get("/api/samples/voice/yes/1.wav").headers["content-type"] == "audio/wav"
    silent = io.BytesIO()
    scipy.io.wavfile.write(silent, 16000, np.zeros(8000, dtype=np.int16))
    refused(upload(client, [("quiet.wav", silent.getvalue())], dataset="voice", cls="no", task="audio"), 415,
            "silence only")
    refused(upload(client, [("hi.png", png())], dataset="voice", cls="no", task="audio"), 415, "'hi.png'")
    refused(upload(client, [("a.png", png())], dataset="voice", cls="no", task="image"), 409, "holds sound clips")


@pytest.mark.parametrize("name,why", [
    ("", "empty"), ("a/b", "'/'"), ("..", "dot"), (".hidden", "dot"), ("a\\b", "'\\'"), ("x" * 65, "65 characters"),
    ("tab\there", "U+0009"), ("nul\x00", "U+0000"), ("__MACOSX", "clutter"),
])
def test_bad_class_names_are_refused_and_nothing_is_written(client, name, why):
    refused(upload(client, [("a.png", png())], cls=name), 400, "class name", why)
    assert not (client.samples / "pets").exists()


def test_a_class_name_may_be_any_language_and_is_trimmed(client):
    answer = upload(client, [("a.png", png())], cls="  chat noir 猫 ")
    assert answer.status_code == 200, answer.text
    assert (client.samples / "pets" / "chat noir 猫" / "1.png").is_file()
    assert client.get("/api/samples/pets/chat%20noir%20%E7%8C%AB/1.png").status_code == 200


def test_a_non_image_refuses_the_whole_upload(client):
    answer = upload(client, [("a.png", png()), ("notes.txt", b"hello"), ("c.png", png())])
    refused(answer, 415, "'notes.txt'", "not an image", "Nothing was added")
    truncated = png()[:60]
    refused(upload(client, [("cut.png", truncated)]), 415, "'cut.png'")
    assert not (client.samples / "pets").exists()
    assert not [p for p in client.samples.iterdir() if p.name.startswith(".partial")]  # nothing half-written


def test_too_many_and_too_large_files_are_refused(client, monkeypatch):
    monkeypatch.setattr(sample_store, "MAX_FILES", 3)
    refused(upload(client, [(f"{i}.png", png()) for i in range(5)]), 413, "at most 3 files")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for i in range(4):
            z.writestr(f"{i}.png", png())
    refused(upload(client, [("many.zip", buffer.getvalue())]), 413, "at most 3 files", "inside zips")
    monkeypatch.setattr(sample_store, "MAX_FILE", 1000)
    refused(upload(client, [("big.png", png(size=(400, 400)) + b"\0" * 2000)]), 413, "'big.png'")
    assert not (client.samples / "pets").exists()


def test_a_dataset_id_is_never_a_path(client):
    refused(upload(client, [("a.png", png())], dataset="../escape"), 400, "dataset id", "'../escape'")
    refused(upload(client, [("a.png", png())], dataset=".ui"), 400, "dataset id")
    refused(client.get("/api/samples/..%2F..%2Fetc"), 400, "dataset id")
    refused(client.get("/api/samples/..secret"), 400, "dataset id")
    refused(client.get("/api/samples/nope"), 404, "'nope'", "holds no samples")
    refused(client.delete("/api/samples/nope/cat"), 404, "'nope'")
    upload(client, [("a.png", png())])
    refused(client.get("/api/samples/pets/cat/..%2F..%2F.dataset.json"), 404)
    refused(client.get("/api/samples/pets/cat/.dataset.json"), 404, "sample of class")
    refused(client.get("/api/samples/pets/dog/1.png"), 404, "class of dataset", "'cat'")
    refused(upload(client, [("a.png", png())], task="text"), 400, "takes pictures or sounds")
    refused(upload(client, [("a.png", png())], task="os:system"), 400, "Expected a task")


def test_classes_are_made_renamed_and_deleted_and_samples_deleted(client):
    made = client.put("/api/samples/pets/Class 1", json={"task": "image"})
    assert made.status_code == 200 and made.json()["classes"] == [{"name": "Class 1", "count": 0, "samples": []}]
    client.put("/api/samples/pets/Class 2", json={"task": "image"})
    upload(client, [("a.png", png()), ("b.png", png())], cls="Class 1")
    renamed = client.patch("/api/samples/pets/Class 1", json={"name": "cat"})
    assert [c["name"] for c in renamed.json()["classes"]] == ["cat", "Class 2"]  # the same place in the order
    refused(client.patch("/api/samples/pets/cat", json={"name": "Class 2"}), 409, "taken")
    refused(client.patch("/api/samples/pets/cat", json={"name": "../x"}), 400, "class name")
    left = client.delete("/api/samples/pets/cat/1.png").json()
    assert left["classes"][0]["count"] == 1 and not (client.samples / "pets" / "cat" / ".thumbs" / "1.png").exists()
    assert [c["name"] for c in client.delete("/api/samples/pets/Class 2").json()["classes"]] == ["cat"]
    assert client.delete("/api/samples/pets").json() == {"datasets": []}
    assert not (client.samples / "pets").exists()


def test_a_form_without_files_or_not_a_form_is_refused(client):
    refused(client.post("/api/samples", data={"dataset": "pets", "class": "cat", "task": "image"},
                        files=[("other", ("", b""))]), 400)
    refused(client.post("/api/samples", json={"dataset": "pets"}), 415, "multipart/form-data")


def test_the_samples_routes_are_behind_the_token_the_host_and_the_origin_checks(client):
    upload(client, [("a.png", png())])
    bare = TestClient(client.app, base_url=LOCAL)
    assert bare.get("/api/samples/pets").status_code == 401
    assert bare.get("/api/samples/pets/cat/1.png").status_code == 401
    assert client.delete("/api/samples/pets/cat", headers={"Origin": "http://evil.example"}).status_code == 403
    other_port = upload(client, [("b.png", png())]).request  # the same upload from another port's page is refused
    answer = client.post("/api/samples", content=other_port.content, headers={
        "Content-Type": other_port.headers["content-type"], "Origin": "http://127.0.0.1:9999"})
    assert answer.status_code == 403
    assert client.get("/api/samples/pets", headers={"Host": "attacker.example"}).status_code == 403
    assert client.get("/api/samples").json()["min_per_class"] == sample_store.min_per_class() == 7
