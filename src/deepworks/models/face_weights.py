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


def verified(path: Path, flag: str, what: str, digest: str) -> Path:
    """The file a user named with `flag` (or pip downloaded), once it is `what`, by its sha256."""
    from ..digests import sha256_of

    if not path.is_file():
        raise ConfigError(f"{flag} {path}: no such file. Expected {what}.")
    if sha256_of(path) != digest:
        raise ConfigError(f"{path} is not {what} (its sha256 differs from {digest}). Expected that exact file, as "
                          f"PyPI serves it.")
    return path


def fetch_mtcnn(wheel: Path | str | None = None, index_url: str | None = None,
                expected: tuple[str, dict] = (WHEEL_SHA256, MTCNN_FILES)) -> Path:
    """Keep MTCNN's three state dicts in the weights folder, from `wheel` or one pip downloads (from `index_url`
    where given, else pip's own settings); the folder. Every file is checked before it is kept."""
    wheel_sha, files = expected
    if wheel is None and index_url is None and all(kept(name, digest) for name, (_, _, digest) in files.items()):
        return weights_folder()  # fetched before: nothing to download
    with tempfile.TemporaryDirectory() as scratch:
        path = verified(Path(wheel) if wheel else downloaded_wheel(Path(scratch), index_url), "--wheel",
                        f"the wheel {WHEEL}", wheel_sha)
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
    return pip_download([PACKAGE, "--only-binary", ":all:"], PACKAGE, WHEEL, "--wheel", folder, index_url)


def pip_download(wanted: list[str], package: str, file: str, flag: str, folder: Path, index_url: str | None) -> Path:
    """`file`, downloaded by pip into `folder` (what `wanted` asks for; from `index_url` where given, else pip's own
    settings); a failure says pip's last line, and the offline way: the file given with `flag`."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", *wanted, "--dest", str(folder), "--quiet"]
    if index_url:
        command += ["--index-url", index_url]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ConfigError(f"pip could not download {package}: {tail[0]}. Expected to reach PyPI (or your pip index); "
                          f"offline, download {file} elsewhere and give it with {flag}.")
    return folder / file


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


# --- dlib's face recognition network (models/dlib_face.py) ---------------------------------------------------------
DLIB_PACKAGE = "face_recognition_models==0.3.0"
DLIB_ARCHIVE = "face_recognition_models-0.3.0.tar.gz"
DLIB_ARCHIVE_SHA256 = "b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf"
DLIB_MEMBER = ("face_recognition_models-0.3.0/face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
               22_466_066, "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30")
DLIB_FILE = ("dlib_face_recognition.safetensors", "a216cb88c3356515caa3627c0797a8caa5f7285a28c209f00941ba749a23abd6")
DLIB_HOW = ("Fetch them once with: deepworks weights fetch dlib-face (pip downloads face_recognition_models 0.3.0, "
            "100 MB, public domain / CC0; deepworks keeps the 22 MB network inside it), or from the archive you "
            "downloaded: deepworks weights fetch dlib-face --archive face_recognition_models-0.3.0.tar.gz")


def dlib_folder() -> Path:
    return weights_folder().parent / "dlib-face"


def fetch_dlib(archive: Path | str | None = None, index_url: str | None = None) -> Path:
    """Keep dlib's face recognition network, read out of the face_recognition_models archive (`archive`, or one pip
    downloads, its sha256 required before anything in it is used) and converted to safetensors; the folder."""
    import tarfile

    from .dlib_face import convert

    name, digest = DLIB_FILE
    folder = dlib_folder()
    if archive is None and index_url is None and (folder / name).is_file() and \
            sha256((folder / name).read_bytes()) == digest:
        return folder
    with tempfile.TemporaryDirectory() as scratch:
        path = verified(Path(archive) if archive else downloaded_archive(Path(scratch), index_url), "--archive",
                        DLIB_ARCHIVE, DLIB_ARCHIVE_SHA256)
        member, size, member_sha = DLIB_MEMBER
        with tarfile.open(path, "r:gz") as tar:
            info = tar.getmember(member)
            if info.size != size:
                raise ConfigError(f"{path}: {member} is {info.size:,} bytes. Expected {size:,}.")
            data = tar.extractfile(info).read()
        if sha256(data) != member_sha:
            raise ConfigError(f"{path}: {member}'s sha256 differs from {member_sha}.")
        dat = Path(scratch) / "network.dat"
        dat.write_bytes(data)
        folder.mkdir(parents=True, exist_ok=True)
        convert(dat, folder / name)
    if sha256((folder / name).read_bytes()) != digest:
        raise ConfigError(f"The network read out of {DLIB_ARCHIVE} differs from the one deepworks checked "
                          f"(sha256 {digest}).")
    return folder


def downloaded_archive(folder: Path, index_url: str | None) -> Path:
    """The archive, downloaded by pip with its hash required: pip refuses any other file before it reads it."""
    wanted = folder / "wanted.txt"
    wanted.write_text(f"{DLIB_PACKAGE} --hash=sha256:{DLIB_ARCHIVE_SHA256}\n")
    return pip_download(["--require-hashes", "-r", str(wanted)], DLIB_PACKAGE, DLIB_ARCHIVE, "--archive", folder,
                        index_url)


def load_dlib_face() -> dict[str, torch.Tensor]:
    """dlib's network as a state dict (DlibResNet's, and 'project.weight'), its file's sha256 checked first."""
    from safetensors.torch import load

    name, digest = DLIB_FILE
    path = dlib_folder() / name
    if not path.is_file():
        raise ConfigError(f"dlib's face recognition weights are not in {dlib_folder()}. {DLIB_HOW}.")
    data = path.read_bytes()
    if sha256(data) != digest:
        raise ConfigError(f"{path} is not the file deepworks keeps (its sha256 differs from {digest}). Fetch it again: "
                          f"deepworks weights fetch dlib-face.")
    return load(data)
