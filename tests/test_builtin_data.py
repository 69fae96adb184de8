"""Built-in datasets: read from a data directory, or downloaded and checksum-verified (from a server on 127.0.0.1)."""

import functools
import gzip
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from conftest import shared
from deepworks.data.builtin import load_builtin
from deepworks.errors import DataError


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def serve(monkeypatch):
    """serve(folder) -> a mirror URL on 127.0.0.1 serving that folder; $DEEPWORKS_MIRROR points at it."""
    servers = []

    def start(folder):
        server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        url = f"http://127.0.0.1:{server.server_address[1]}"
        monkeypatch.setenv("DEEPWORKS_MIRROR", url)
        return url

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_digits_ship_offline():
    images = load_builtin("digits")
    assert images.x.shape == (1797, 1, 8, 8) and images.x.max() == 255 and len(images.classes) == 10


def test_mnist_downloads_from_a_mirror_and_verifies(serve, tmp_path):
    serve(shared("mnist").parent)
    images = load_builtin("mnist", data_dir=tmp_path / "data")
    assert images.x.shape == (60000, 1, 28, 28) and images.x_test.shape == (10000, 1, 28, 28)
    assert np.bincount(images.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    files = sorted(p.name for p in (tmp_path / "data" / "mnist").iterdir())
    assert files == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
                     "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]  # no .part files left


def test_a_download_that_fails_its_checksum_is_discarded(serve, tmp_path):
    mirror = tmp_path / "mirror" / "mnist"
    mirror.mkdir(parents=True)
    for f in shared("mnist").iterdir():
        shutil.copy(f, mirror / f.name)
    labels = gzip.decompress((mirror / "t10k-labels-idx1-ubyte.gz").read_bytes())
    (mirror / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels[:-1] + b"\x07"))  # one label changed
    serve(tmp_path / "mirror")
    with pytest.raises(DataError, match=r"does not match its published checksum and was discarded"):
        load_builtin("mnist", data_dir=tmp_path / "data")
    assert not (tmp_path / "data" / "mnist" / "t10k-labels-idx1-ubyte.gz").exists()
    assert not list((tmp_path / "data" / "mnist").glob(".*"))  # nor a temporary file


def test_a_refused_connection_gives_a_clear_message(tmp_path, monkeypatch):
    import socket

    with socket.socket() as s:  # a port on 127.0.0.1 that nothing listens on any more
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("DEEPWORKS_MIRROR", f"http://127.0.0.1:{port}")
    with pytest.raises(DataError, match=r"(?s)Could not download Fashion-MNIST file .*Connection refused.*Check the network"):
        load_builtin("fashion-mnist", data_dir=tmp_path / "data")


def test_a_file_missing_on_the_server_gives_a_clear_message(serve, tmp_path):
    serve(tmp_path)  # serves an empty folder: every file is a 404
    with pytest.raises(DataError, match=r"(?s)Could not download MNIST file train-images-idx3-ubyte.gz .*"
                                        r"HTTP 404 File not found.*copy the file there by hand"):
        load_builtin("mnist", data_dir=tmp_path / "data")


def test_a_corrupt_local_file_is_detected(tmp_path):
    folder = tmp_path / "fashion_mnist"
    folder.mkdir()
    for f in shared("fashion_mnist").iterdir():
        shutil.copy(f, folder / f.name)
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01garbage"))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz' does not match its checksum.*delete it to download it again"):
        load_builtin("fashion-mnist", data_dir=tmp_path)


def test_fashion_mnist_from_the_shared_data_dir():
    images = load_builtin("fashion-mnist", data_dir=shared("fashion_mnist").parent, download=False)
    assert np.bincount(images.y).tolist() == [6000] * 10 and images.classes[9] == "Ankle boot"


def test_generated_built_ins_take_a_size_and_a_bad_one_is_refused_with_the_range():
    from deepworks.data.pairs import load_pairs
    from deepworks.data.text import load_text_source

    assert len(load_pairs("dates:300").source) == 300 and len(load_pairs("dates").source) == 20_000
    assert load_pairs("dates:300").source == load_pairs("dates:300").source  # seeded: the same pairs each time
    assert len(load_text_source("python-stdlib:20000").text) == 20_000
    for source, message in (("dates:5", "dates:N with N from 100 to 200,000 pairs. Received: '5'"),
                            ("python-stdlib:lots", "python-stdlib:N with N from 10,000 to 500,000 characters")):
        with pytest.raises(DataError, match=message):
            load_pairs(source) if source.startswith("dates") else load_text_source(source)
