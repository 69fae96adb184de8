"""The data page's zip uploads: a bad zip answers a 4xx that names the problem and leaves nothing behind; a good one
lands whole (issue 27, W7)."""

from __future__ import annotations

import io
import zipfile

import pytest

from conftest import ui_client
from deepworks.ui import uploads


@pytest.fixture
def client(tmp_path):
    with ui_client(tmp_path / "runs") as c:
        c.uploads = c.runs / ".ui" / "uploads"
        yield c


def zip_of(files: list[tuple[str, bytes]], method=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as z:
        for name, data in files:
            z.writestr(name, data)
    return buffer.getvalue()


def upload(client, data: bytes, name: str = "photos.zip"):
    return client.post("/api/data/upload", files={"file": (name, data)})


def left_behind(client) -> list[str]:
    return sorted(p.name for p in client.uploads.iterdir()) if client.uploads.is_dir() else []


def test_a_good_zip_lands_whole_in_its_own_folder(client):
    answer = upload(client, zip_of([("photos/cats/1.png", b"a"), ("photos/dogs/1.png", b"b"), ("__MACOSX/._x", b"")]))
    assert answer.status_code == 200
    folder = answer.json()["data"]
    assert folder.endswith("/photos/photos") and open(f"{folder}/dogs/1.png").read() == "b"
    assert not [name for name in left_behind(client) if name.startswith(".")]


@pytest.mark.filterwarnings("ignore:Duplicate name")  # zipfile's, as it writes the test's zip
@pytest.mark.parametrize("files, message", [
    ([("c0/x", b"file"), ("c0/x/y.png", b"in a folder of the same name")], "a file or a folder, not both. Received: 'c0/x'"),
    ([("c0/x/", b""), ("c0/x", b"file")], "a file or a folder, not both"),
    ([("c0/" + "a" * 300 + ".png", b"x")], "at most 255 bytes in the zip. Received: 'aaaa"),
    ([("c0/0.png", b"first"), ("c0/0.png", b"second")], "Expected each file once in the zip. Received: 'c0/0.png' twice"),
    ([("c0/../../escaped.txt", b"x")], "which points outside"),
    ([("c0/", b"")], "holds no file"),
])
def test_a_zip_whose_names_cannot_all_land_is_refused_before_anything_is_written(client, files, message):
    answer = upload(client, zip_of(files))
    assert answer.status_code == 400 and message in answer.json()["error"], answer.text
    assert left_behind(client) == []


def test_a_zip_with_a_damaged_member_is_refused_and_its_half_unpacked_files_removed(client):
    data = bytearray(zip_of([("c0/good.png", b"g" * 1000), ("c0/bad.png", b"b" * 1000)], zipfile.ZIP_STORED))
    at = data.rindex(b"b" * 1000)
    data[at + 500] = ord("X")  # the stored bytes no longer match the CRC in the header
    answer = upload(client, bytes(data))
    assert answer.status_code == 400
    assert "Received: 'c0/bad.png' in 'photos.zip', which does not (Bad CRC-32" in answer.json()["error"]
    assert left_behind(client) == []


def test_a_zip_that_unpacks_to_more_than_the_cap_is_refused_before_unpacking(client, monkeypatch):
    monkeypatch.setattr(uploads, "MAX_UNZIPPED", 2 ** 20)
    bomb = zip_of([("c0/zeros.bin", bytes(3 * 2 ** 20))])
    assert len(bomb) < 2 ** 16  # a small zip, a large unpacking
    answer = upload(client, bomb)
    assert answer.status_code == 413
    assert "Expected a zip of at most 500,000 files and 1.0 MB unpacked. Received: 'photos.zip', 1 files, 3.0 MB" in \
        answer.json()["error"]
    assert left_behind(client) == []


def test_a_zip_that_would_fill_the_disk_is_refused_before_unpacking(client, monkeypatch):
    monkeypatch.setattr(uploads, "FREE_RESERVE", 2 ** 62)  # as if the disk had less free than the zip needs
    answer = upload(client, zip_of([("c0/1.png", b"x" * 1000)]))
    assert answer.status_code == 413 and "Expected a zip that fits on the disk" in answer.json()["error"]
    assert left_behind(client) == []


def test_a_long_file_name_keeps_its_suffix(client):
    answer = upload(client, b"path,label\n", name="a" * 300 + ".csv")
    assert answer.status_code == 200 and answer.json()["data"].endswith("a" * 100 + ".csv")
