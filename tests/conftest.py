"""Shared fixtures. Real data comes from ../shared/data (see its MANIFEST.md); tests that need it skip when it is absent."""

from __future__ import annotations

import os
import shutil
import signal
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DEEPWORKS_SHARED_DATA", REPO.parent / "shared" / "data"))

# One thread, for the tests and the commands they start: the same numbers on every machine and under any load
# (OpenMP threads that wait for a core another process holds make a 2-core machine crawl: see bench/threads.py).
os.environ.setdefault("DEEPWORKS_THREADS", "1")
torch.set_num_threads(int(os.environ["DEEPWORKS_THREADS"]))


# The files that take longest (their tests' seconds in a run on 2 cores, 2026-12-07), longest first. They are handed
# to the test processes first (pyproject.toml: --dist loadfile --no-loadscope-reorder): whole files go to a process
# each, and a long file started last would keep one process busy while the other has nothing left to do.
LONGEST_FIRST = ("test_distributed.py", "test_ui.py", "test_task_contract.py", "test_ui_other_tasks.py",
                 "test_batch.py", "test_ui_api.py", "test_faces_task.py", "test_ui_tasks.py", "test_style.py",
                 "test_serve.py", "test_ui_start.py", "test_gan.py", "test_train.py", "test_ui_bounds.py",
                 "test_translate.py", "test_automl.py", "test_quantize.py", "test_audio.py", "test_reliability.py",
                 "test_ui_samples.py", "test_ui_security.py", "test_detect.py", "test_gpu_check.py", "test_trust.py",
                 "test_package.py", "test_pretrained.py", "test_newcomer.py", "test_ui_uploads.py", "test_export.py",
                 "test_minilm.py", "test_segment.py", "test_text.py", "test_stream.py", "test_restore.py",
                 "test_docs.py")  # then the short ones, by name


def pytest_collection_modifyitems(config, items):
    """Run the longest files first (LONGEST_FIRST), each file's tests in their own order."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # a stable sort keeps the order within files


UI_ADDRESS = "http://127.0.0.1:8080"  # where `deepworks ui` is: the Host its requests name


@contextmanager
def ui_client(runs: Path, **options):
    """The web UI's API as a script uses it (`build_ui_app(runs, **options)`, its launch's token in the header); the
    client's `.runs` is its runs folder. Its job workers are stopped at the end."""
    from fastapi.testclient import TestClient

    from deepworks.ui import build_ui_app

    app = build_ui_app(runs, **options)
    try:
        with TestClient(app, base_url=UI_ADDRESS, headers={"Authorization": f"Bearer {app.state.token}"}) as c:
            c.runs = runs
            yield c
    finally:
        app.state.jobs.close()


def shared(*parts: str) -> Path:
    """A path under the shared data folder; skips the test when it is not there."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Every test runs in its own folder, so runs/ and caches never leak between tests."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DEEPWORKS_MIRROR", raising=False)
    monkeypatch.setenv("DEEPWORKS_DATA", str(tmp_path / "no-data-here"))
    monkeypatch.setenv("DEEPWORKS_CACHE", str(tmp_path / "cache"))
    return tmp_path


def weights(run_path, name="model.safetensors"):
    return load_file(os.path.join(run_path, name))


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@contextmanager
def ctrl_c_at_step(task_class, step: int):
    """While active, Ctrl-C arrives during the `step`-th optimizer update of the task (counting from 1)."""
    name = "update"
    original, calls = getattr(task_class, name), {"n": 0}

    def patched(self, *args):
        calls["n"] += 1
        if calls["n"] == step:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, *args)

    setattr(task_class, name, patched)
    try:
        yield
    finally:
        setattr(task_class, name, original)


def draw(kind: str, size: int, rng: np.random.Generator, mode: str = "L") -> Image.Image:
    """A small synthetic picture: a horizontal bar, a vertical bar, or a filled square, at a random place."""
    img = np.full((size, size), rng.integers(0, 40), dtype=np.uint8)
    a = rng.integers(2, size // 2)
    if kind == "hbar":
        img[a:a + 3, 2:-2] = 255
    elif kind == "vbar":
        img[2:-2, a:a + 3] = 255
    else:
        img[a:a + size // 3, a:a + size // 3] = 255
    im = Image.fromarray(img, "L")
    return im.convert(mode) if mode != "L" else im


@pytest.fixture
def image_folder(tmp_path):
    """photos/{hbar,vbar,square}/*.png: 20 images per class, mixed sizes and colour modes."""
    root = tmp_path / "photos"
    rng = np.random.default_rng(0)
    modes = ["L", "RGB", "RGBA", "P"]
    for kind in ("hbar", "vbar", "square"):
        (root / kind).mkdir(parents=True)
        for i in range(20):
            size = int(rng.choice([24, 32, 40]))
            draw(kind, size, rng, modes[i % 4]).save(root / kind / f"{i}.png")
    return root


def made_once(tmp_path_factory, name: str, make) -> Path:
    """A folder made once for the whole test run, however many pytest-xdist processes run it: the first process to
    ask makes it under a file lock, and the others wait for it and reuse it (each process would otherwise train its
    own copy). `make(folder)` fills the folder; a half-made folder (a failed `make`) is made again."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the folder every worker's basetemp lives in
    folder, done = base / name, base / f"{name}.done"
    with FileLock(str(base / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            make(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def shapes_detector(tmp_path_factory):
    """A detector of the generated shapes (600 training images at 64 px, 8 epochs: about 15 s on one thread), trained
    once per test run for the detection tests and the web UI's."""
    import deepworks as dw

    def make(root):
        dw.train(task="detect", data="shapes:600", image_size=64, epochs=8, batch_size=16,
                 runs_dir=str(root / "runs"), name="shapes", progress=False)

    return dw.load(made_once(tmp_path_factory, "detect", make) / "runs" / "shapes")


@pytest.fixture(scope="session")
def tones_run(tmp_path_factory):
    """An audio classifier of the generated tones (30 epochs), trained once per test run for the audio tests and the
    web UI's."""
    import deepworks as dw

    def make(root):
        dw.train(task="audio", epochs=30, runs_dir=str(root / "runs"), name="tones", progress=False)

    return dw.load(made_once(tmp_path_factory, "tones", make) / "runs" / "tones")


@pytest.fixture(scope="session")
def use_runs(tmp_path_factory):
    """One small trained run of every task (and both translation models), made once per test run for the export and
    serving tests: {name: run path}. They are tiny and barely trained: these tests check plumbing, not learning.
    Tests read them and write elsewhere (copy a run before changing it)."""
    import deepworks as dw

    def make(root):
        text = root / "text.txt"
        text.write_text("the quick brown fox jumps over the lazy dog. " * 200)
        common = dict(runs_dir=str(root / "runs"), progress=False, epochs=1)
        dw.train(name="img", data="digits", **common)
        dw.train(name="txt", task="text", data=str(text), width=32, seq_len=32, **common)
        dw.train(name="gru", task="translate", width=32, **common)  # all 20,000 dates: it learns to end a translation
        dw.train(name="tf", task="translate", data="dates:2000", model="transformer", width=32, depth=1, heads=2,
                 **common)
        dw.train(name="gan", task="gan", width=8, fid_samples=100, **common)

    root = made_once(tmp_path_factory, "use-runs", make)
    return {name: root / "runs" / name for name in ("img", "txt", "gru", "tf", "gan")}
