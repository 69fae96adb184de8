"""Built-in datasets: digits ships with scikit-learn; MNIST, Fashion-MNIST and CIFAR-10 are read from a data
directory and, when missing, downloaded from their canonical source and verified by checksum.

The data directory is `--data-dir`, else $DEEPWORKS_DATA, else ~/.cache/deepworks/data. Its layout is one
folder per dataset (mnist/, fashion_mnist/, cifar10/), the same as the project's shared data folder, so
that folder can be used as a data directory as it is. $DEEPWORKS_MIRROR replaces the download host (files are
then fetched from MIRROR/<folder>/<file>), for a local mirror or the tests' server on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .images import ImageSet


@dataclass(frozen=True)
class RemoteFile:
    name: str
    sha256: str          # of the content: for .gz files the *decompressed* bytes, so re-compressed mirrors pass
    gz_content: bool = False


@dataclass(frozen=True)
class Remote:
    folder: str
    urls: tuple[str, ...]  # base URLs tried in order
    files: tuple[RemoteFile, ...]


MNIST = Remote("mnist", ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://yann.lecun.com/exdb/mnist/"), (
    RemoteFile("train-images-idx3-ubyte.gz", "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", True),
    RemoteFile("train-labels-idx1-ubyte.gz", "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", True),
    RemoteFile("t10k-images-idx3-ubyte.gz", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", True),
    RemoteFile("t10k-labels-idx1-ubyte.gz", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", True),
))
FASHION_MNIST = Remote("fashion_mnist", ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",), (
    RemoteFile("train-images-idx3-ubyte.gz", "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", True),
    RemoteFile("train-labels-idx1-ubyte.gz", "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", True),
    RemoteFile("t10k-images-idx3-ubyte.gz", "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", True),
    RemoteFile("t10k-labels-idx1-ubyte.gz", "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", True),
))
CIFAR10 = Remote("cifar10", ("https://www.cs.toronto.edu/~kriz/",), (
    RemoteFile("cifar-10-python.tar.gz", "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"),
))

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# Sam Roweis' 64x64 MATLAB copy of the AT&T (ORL) faces, the one scikit-learn's fetch_olivetti_faces reads, pinned to
# a commit of a public repository that holds it. The faces are for research and demos: AT&T asks for credit.
FACES = Remote("olivetti_faces", ("https://raw.githubusercontent.com/sjgershm/DBM/a30d9abb523aab874a299b8b1aa21e7df2023f60/",), (
    RemoteFile("olivettifaces.mat", "b1988d02c72fe5b8ee82b5ef3bb7982eafc74f1e1ff0ae0ade35061ad0af534d"),
))
BUILTINS = ("digits", "mnist", "fashion-mnist", "cifar10", "faces")


def built_in_size(source: str, size: str, low: int, high: int, unit: str) -> int:
    """N of a generated built-in asked for as NAME:N (shapes:600, dates:2000, python-stdlib:100000), checked to lie
    in [low, high]."""
    name = source.partition(":")[0]
    if not size.isdigit() or not low <= int(size) <= high:
        raise DataError(f"--data {source}: Expected {name}, or {name}:N with N from {low:,} to {high:,} {unit}. "
                        f"Received: '{size}'.")
    return int(size)


def default_data_dir() -> Path:
    return Path(os.environ.get("DEEPWORKS_DATA") or Path.home() / ".cache" / "deepworks" / "data")


def unpacked(archive: Path, sha256: str, what: str) -> Path:
    """The folder a .tar.gz unpacks to, made once: the archive checked against its sha256, then unpacked under
    $DEEPWORKS_CACHE (else ~/.cache/deepworks)/unpacked/, never beside the archive (a shared data folder stays as it
    is). Nothing in the archive may land outside that folder (tarfile's 'data' filter)."""
    from ..run import atomic_write_text

    root = Path(os.environ.get("DEEPWORKS_CACHE") or Path.home() / ".cache" / "deepworks") / "unpacked"
    folder = root / f"{archive.name.split('.')[0]}-{sha256[:12]}"
    if (folder / ".complete").is_file():
        return folder
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != sha256:
        raise DataError(f"{archive}: Expected sha256 {sha256} ({what}). Received: {digest}. Replace the file.")
    partial = folder.with_name(folder.name + ".partial")
    if partial.exists():
        import shutil

        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        tar.extractall(partial, filter="data")
    atomic_write_text(partial / ".complete", digest)
    if folder.exists():  # another process finished first
        import shutil

        shutil.rmtree(partial)
    else:
        partial.rename(folder)
    return folder


def load_builtin(name: str, data_dir: str | Path | None = None, download: bool = True) -> ImageSet:
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    if name == "digits":
        return load_digits()
    if name == "mnist":
        return load_idx_dataset(MNIST, data_dir, download, [str(i) for i in range(10)], "MNIST")
    if name == "fashion-mnist":
        return load_idx_dataset(FASHION_MNIST, data_dir, download, FASHION_CLASSES, "Fashion-MNIST")
    if name == "cifar10":
        return load_cifar10(data_dir, download)
    if name == "faces":
        return load_faces(data_dir, download)
    raise DataError(f"Unknown built-in dataset '{name}'. Choose one of: {', '.join(BUILTINS)}.")


def load_digits() -> ImageSet:
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = (d.images * (255.0 / 16.0)).round().astype(np.uint8)[:, None]  # 0..16 ink levels -> 0..255
    return ImageSet(x, d.target.astype(np.int64), [str(i) for i in range(10)],
                    description="digits: scikit-learn's 1,797 handwritten digits, 8x8 px")


# --- IDX (MNIST, Fashion-MNIST) --------------------------------------------------


def parse_idx(raw: bytes, where: Path) -> np.ndarray:
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        raise DataError(f"'{where}' is not an IDX file of unsigned bytes. Delete it to download it again.")
    ndim = raw[3]
    dims = np.frombuffer(raw, ">u4", ndim, 4).astype(np.int64)
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"'{where}' is truncated: expected {int(np.prod(dims))} values, found {data.size}. "
                        f"Delete it to download it again.")
    return data.reshape(dims)


MAX_INFLATED = 512 * 2 ** 20  # a gzip file that inflates beyond this is refused, not unpacked into memory


def inflate(path: Path, limit: int | None = None, fix: str = "Delete it to download it again.") -> bytes:
    """The decompressed content of a gzip file, inflated a megabyte at a time and refused once it passes `limit`
    (MAX_INFLATED): a few MB of zeros can inflate to many GB (a gzip bomb), and nothing is known about a file before
    it is read."""
    limit = limit or MAX_INFLATED
    out = bytearray()
    try:
        with open(path, "rb") as f:
            d = zlib.decompressobj(wbits=31)
            data = f.read(1 << 20)
            while data:
                out += d.decompress(data, limit + 1 - len(out))
                if len(out) > limit:
                    raise DataError(f"'{path}' inflates to more than {limit / 2 ** 20:,.0f} MiB: too big to read "
                                    f"(a gzip bomb?). Decompress it yourself if it is genuine.")
                data = d.unconsumed_tail
                if d.eof and d.unused_data:  # a file of several gzip members, one after another
                    data, d = d.unused_data, zlib.decompressobj(wbits=31)
                if not data:
                    data = f.read(1 << 20)
        if not d.eof:
            raise zlib.error("the file ends in the middle of its compressed data")
    except zlib.error as err:
        raise DataError(f"'{path}' is not a valid gzip file ({err}). {fix}") from None
    except OSError as err:
        raise DataError(f"Cannot read '{path}' ({err.strerror or err}).") from None
    return bytes(out)


def read_verified(path: Path, f: RemoteFile) -> bytes:
    """The file's content (decompressed for .gz, with a cap), checked against the known sha256."""
    raw = inflate(path) if f.gz_content else path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != f.sha256:
        raise DataError(f"'{path}' does not match its checksum (sha256 {digest[:12]}..., expected {f.sha256[:12]}...). "
                        f"It is corrupt or a different file: delete it to download it again.")
    return raw


def load_idx_dataset(remote: Remote, data_dir: Path, download: bool, classes: list[str], title: str) -> ImageSet:
    folder = ensure_files(remote, data_dir, download, title)
    arrays = [parse_idx(read_verified(folder / f.name, f), folder / f.name) for f in remote.files]
    x, y, xt, yt = arrays
    return ImageSet(x[:, None].copy(), y.astype(np.int64), classes, xt[:, None].copy(), yt.astype(np.int64),
                    description=f"{title}: {len(x):,} train / {len(xt):,} test images, 28x28 px, from '{folder}'")


# --- Olivetti faces ------------------------------------------------------------------


def load_faces(data_dir: Path, download: bool) -> ImageSet:
    """400 grey 64x64 faces, 10 of each of 40 people (the person is the class)."""
    from scipy.io import loadmat

    folder = ensure_files(FACES, data_dir, download, "The Olivetti face set")
    path = folder / FACES.files[0].name
    verify_file(path, FACES.files[0])
    faces = loadmat(str(path))["faces"]  # (4096, 400), each column one image stored column-major
    x = faces.T.reshape(400, 64, 64).transpose(0, 2, 1)[:, None].astype(np.uint8).copy()
    return ImageSet(x, np.arange(400, dtype=np.int64) // 10, [f"person {i + 1}" for i in range(40)],
                    description=f"Olivetti faces (AT&T Laboratories Cambridge): 400 images of 40 people, 64x64 px, "
                                f"from '{folder}'")


# --- CIFAR-10 ----------------------------------------------------------------------


def load_cifar10(data_dir: Path, download: bool) -> ImageSet:
    jpeg = data_dir / "cifar10_jpeg"
    if (jpeg / "train.tar.gz").is_file() and (jpeg / "test.tar.gz").is_file():
        return load_cifar10_jpeg(jpeg)
    folder = ensure_files(CIFAR10, data_dir, download, "CIFAR-10")
    tar_path = folder / CIFAR10.files[0].name
    verify_file(tar_path, CIFAR10.files[0])
    batches: dict[str, dict] = {}
    with tarfile.open(tar_path, "r:gz") as tar:
        for member in tar:
            base = Path(member.name).name
            if base.startswith("data_batch_") or base == "test_batch":
                # The canonical CIFAR-10 release is pickled numpy arrays; the file's checksum was verified above.
                batches[base] = pickle.load(tar.extractfile(member), encoding="bytes")  # noqa: S301
    train = [batches[f"data_batch_{i}"] for i in range(1, 6)]
    x = np.concatenate([b[b"data"] for b in train]).reshape(-1, 3, 32, 32)
    y = np.concatenate([b[b"labels"] for b in train]).astype(np.int64)
    t = batches["test_batch"]
    return ImageSet(x, y, CIFAR_CLASSES, t[b"data"].reshape(-1, 3, 32, 32), np.asarray(t[b"labels"], dtype=np.int64),
                    description=f"CIFAR-10: 50,000 train / 10,000 test images, 32x32 px, from '{tar_path}'")


def load_cifar10_jpeg(folder: Path) -> ImageSet:
    """CIFAR-10 as JPEGs in class folders, packed as train.tar.gz and test.tar.gz (the shared data layout)."""
    from PIL import Image

    def read(tar_path: Path):
        xs, ys = [], []
        with tarfile.open(tar_path, "r:gz") as tar:
            for member in tar:
                parts = Path(member.name).parts
                if not member.isfile() or len(parts) < 3 or parts[-2] not in CIFAR_CLASSES:
                    continue
                im = Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB")
                xs.append(np.asarray(im, dtype=np.uint8).transpose(2, 0, 1))
                ys.append(CIFAR_CLASSES.index(parts[-2]))
        return np.stack(xs), np.asarray(ys, dtype=np.int64)

    x, y = read(folder / "train.tar.gz")
    xt, yt = read(folder / "test.tar.gz")
    return ImageSet(x, y, CIFAR_CLASSES, xt, yt,
                    description=f"CIFAR-10 (JPEG copy): {len(x):,} train / {len(xt):,} test images, 32x32 px, from '{folder}'")


# --- finding and downloading ------------------------------------------------------------


def ensure_files(remote: Remote, data_dir: Path, download: bool, title: str) -> Path:
    folder = data_dir / remote.folder
    missing = [f for f in remote.files if not (folder / f.name).is_file()]
    if not missing:
        return folder
    names = ", ".join(f.name for f in missing)
    if not download:
        raise DataError(f"{title} is not in '{folder}' (missing: {names}). Put the files there, point --data-dir "
                        f"(or $DEEPWORKS_DATA) at a folder holding {remote.folder}/, or allow downloading.")
    for f in missing:
        download_file(remote, f, folder, title)
    return folder


def download_file(remote: Remote, f: RemoteFile, folder: Path, title: str) -> Path:
    mirror = os.environ.get("DEEPWORKS_MIRROR")
    bases = (mirror.rstrip("/") + f"/{remote.folder}/",) if mirror else remote.urls
    errors = []
    for base in bases:
        url = base + f.name
        try:
            return fetch(url, folder / f.name, f)
        except urllib.error.HTTPError as err:
            errors.append(f"{url}: HTTP {err.code} {err.reason}")
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            errors.append(f"{url}: {getattr(err, 'reason', err)}")
    raise DataError(f"Could not download {title} file {f.name} into '{folder}':\n  " + "\n  ".join(errors) +
                    "\nCheck the network, or copy the file there by hand (or set --data-dir / $DEEPWORKS_DATA).")


def fetch(url: str, dest: Path, f: RemoteFile) -> Path:
    """Stream `url` to a temporary file beside `dest`, verify the checksum, then move it into place."""
    from tqdm.auto import tqdm

    from ..run import temp_beside

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(dest, ".part")
    try:
        with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {dest.name}", leave=False) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
        try:
            verify_file(Path(tmp), f)
        except DataError:
            raise DataError(f"The download of {url} does not match its published checksum and was discarded. "
                            f"The server sent a different or damaged file; try again later or another mirror.") from None
        os.replace(tmp, dest)
        return dest
    finally:
        Path(tmp).unlink(missing_ok=True)


def verify_file(path: Path, f: RemoteFile) -> None:
    if f.gz_content:
        read_verified(path, f)
        return
    from ..digests import sha256_of

    if sha256_of(path) != f.sha256:
        raise DataError(f"'{path}' does not match its checksum. It is corrupt or a different file: delete it to download it again.")
