"""Hostile and careless input, as a table: every case ends in one line that names the file or flag and the fix, exit
status 2, and never a traceback. The cases are those of the reliability study (shared/research/reliability.md) that
used to end in a traceback or train on altered data without a word."""

from __future__ import annotations

import gzip
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import deepworks as dw
import deepworks.metrics.fid as fid
from deepworks.cli import main

ROOT: Path  # the module's folder of fixtures and runs, set by the `world` fixture


class Payload:
    """Pickled, it asks to create a file: proof that a checkpoint's code ran if the file appears."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Small runs of every task and the bad files the cases use, made once for the module."""
    global ROOT
    ROOT = tmp_path_factory.mktemp("hostile")
    runs = ROOT / "runs"
    saved_steps = fid.FEATURE_STEPS
    fid.FEATURE_STEPS = 5
    try:
        quick = dict(progress=False, runs_dir=str(runs), epochs=1)
        dw.train(data="digits", model="lenet", width=2, baseline=False, name="img", **quick)
        (ROOT / "story.txt").write_text("the quick brown fox jumps over the lazy dog. " * 120)
        dw.train(task="text", data=str(ROOT / "story.txt"), width=16, depth=1, seq_len=16, name="txt", **quick)
        rng = np.random.default_rng(0)
        pairs = [" ".join(rng.choice(list("abcdef"), 4)) for _ in range(60)]
        (ROOT / "pairs.tsv").write_text("".join(f"{p}\t{p[::-1]}\n" for p in pairs))
        dw.train(task="translate", data=str(ROOT / "pairs.tsv"), width=16, embed_size=16, min_freq=1, name="tr", **quick)
        dw.train(task="gan", data="digits", width=8, latent_size=8, fid_samples=32, batch_size=64, name="gan", **quick)
    finally:
        fid.FEATURE_STEPS = saved_steps
    make_bad_files(ROOT)
    return ROOT


def make_bad_files(root: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (40, 8, 8)).astype(np.uint8)
    labels = np.arange(40) % 2
    csv = root / "csv"
    csv.mkdir()
    rows = []
    for i in range(12):
        Image.fromarray(images[i]).save(csv / f"{i}.png")
        rows.append(f"{i}.png," + ("" if i in (3, 7) else "cat" if i % 2 else "dog"))
    (csv / "labels.csv").write_text("\n".join(rows) + "\n")
    floats = images.astype(np.float32) / 255
    nan = floats.copy()
    nan[5, 3, 3] = np.nan
    np.savez(root / "nan.npz", x=nan, y=labels)
    inf = floats.copy()
    inf[2, 0, 0] = np.inf
    np.savez(root / "inf.npz", x=inf, y=labels)
    np.savez(root / "range.npz", x=images.astype(np.float32) * 4, y=labels)
    np.savez(root / "one.npz", x=images, y=np.zeros(40, np.int64))
    np.savez(root / "empty.npz", x=np.zeros((0, 8, 8), np.uint8), y=np.zeros(0, np.int64))
    sparse = labels.copy()
    sparse[0] = 100_000
    np.savez(root / "sparse.npz", x=images, y=sparse)
    negative = labels.copy()
    negative[4] = -1
    np.savez(root / "negative.npz", x=images, y=negative)
    np.savez(root / "object.npz", x=np.array([images[0], "x"], dtype=object), y=labels[:2])

    looped = root / "looped"  # a class folder that is a link to the data folder itself
    for c in ("a", "b"):
        (looped / c).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(images[i]).save(looped / c / f"{i}.png")
    (looped / "c").symlink_to(looped, target_is_directory=True)

    text = "the cat sat on the mat.\n" * 600
    (root / "utf16-no-bom.txt").write_bytes(text.encode("utf-16-le"))
    (root / "late-nul.txt").write_text(text + "\0binary\n" + text)
    (root / "latin1.tsv").write_bytes("".join(f"caf\xe9 {i}\tcoffee {i}\n" for i in range(60)).encode("latin-1"))
    (root / "two.tsv").write_text("hello world\tbonjour le monde\ngood night\tbonne nuit\n")
    with gzip.open(root / "bomb.tsv.gz", "wb", compresslevel=9) as f:
        f.write(b"a\tb\n" * (3 * 2 ** 20 // 4))  # 3 MiB inflated: over the cap the test sets (1 MiB)
    mnist = root / "fakedata" / "mnist"
    mnist.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        with gzip.open(mnist / name, "wb", compresslevel=9) as f:
            f.write(b"\0" * (3 * 2 ** 20))

    (root / "binary.yaml").write_bytes(bytes(range(256)) * 4)
    alias = 'name: [&a ["lol","lol"], ' + ", ".join(["*a"] * 30) + "]\n"
    (root / "aliases.yaml").write_text(alias)
    (root / "seed.yaml").write_text("seed: 18446744073709551616\n")
    (root / "a-file").write_text("not a folder")

    damaged(root, "trunc_st", lambda r: truncate(r / "model.safetensors", 1000))
    damaged(root, "zero_st", lambda r: (r / "model.safetensors").write_bytes(b""))
    damaged(root, "bomb_st", lambda r: (r / "model.safetensors").write_bytes((2 ** 60).to_bytes(8, "little") + b"{}"))
    damaged(root, "bad_json", lambda r: (r / "model.json").write_text("{not json"))
    damaged(root, "no_meta", lambda r: edit_json(r / "model.json", lambda d: d.pop("meta")))
    damaged(root, "giant_width", lambda r: (r / "config.yaml").write_text(
        (r / "config.yaml").read_text().replace("width: 2", "width: 30000")))
    damaged(root, "giant_size", lambda r: edit_json(r / "model.json", lambda d: d["meta"].update(image_size=100_000)))
    damaged(root, "giant_classes", lambda r: edit_json(
        r / "model.json", lambda d: d["meta"].update(classes=[str(i) for i in range(100_000)])))
    damaged(root, "zero_ckpt", lambda r: (r / "checkpoint.pt").write_bytes(b""))
    damaged(root, "trunc_ckpt", lambda r: truncate(r / "checkpoint.pt", 3000))
    damaged(root, "evil_ckpt", lambda r: (r / "checkpoint.pt").write_bytes(pickle.dumps(Payload(root / "PWNED"))))
    damaged(root, "evil_zip", lambda r: torch.save({"epoch": 1, "model": Payload(root / "PWNED")}, r / "checkpoint.pt"))
    damaged(root, "longer", lambda r: (r / "config.yaml").write_text(
        (r / "config.yaml").read_text().replace("epochs: 1", "epochs: 4")))


def damaged(root: Path, name: str, harm) -> None:
    """A copy of the image run with one file damaged."""
    target = root / "runs" / name
    shutil.copytree(root / "runs" / "img", target)
    harm(target)


def truncate(path: Path, size: int) -> None:
    path.write_bytes(path.read_bytes()[:size])


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


QUICK = ["--epochs", "1", "--no-baseline", "--quiet"]

# (case, argv with {root} for the fixtures' folder, what the message must say)
CASES = [
    # data that used to be trained on, altered, without a word
    ("csv with empty labels", ["train", "--data", "{root}/csv/labels.csv", *QUICK], "line(s) [4, 8] have an empty label"),
    ("npz with NaN pixels", ["train", "--data", "{root}/nan.npz", *QUICK], "value(s) that are NaN or infinite"),
    ("npz with infinite pixels", ["train", "--data", "{root}/inf.npz", *QUICK], "the first in image 2"),
    ("npz pixels above 255", ["train", "--data", "{root}/range.npz", *QUICK], "holds values from 0 to 101"),
    ("npz of one class", ["train", "--data", "{root}/one.npz", *QUICK], "holds only one class (label 0)"),
    ("npz without images", ["train", "--data", "{root}/empty.npz", *QUICK], "x holds no images"),
    ("npz with a stray label", ["train", "--data", "{root}/sparse.npz", *QUICK], "go up to 100,000"),
    ("npz with a negative label", ["train", "--data", "{root}/negative.npz", *QUICK], "Received -1 at index 4"),
    ("npz of Python objects", ["train", "--data", "{root}/object.npz", *QUICK], "which deepworks never loads"),
    ("class folder linked to its root", ["train", "--data", "{root}/looped", *QUICK], "is a link to"),
    ("no test split", ["train", "--val-fraction", "0", "--test-fraction", "0", *QUICK], "leaves no image to test"),
    # text and sentence pairs
    ("UTF-16 without its mark", ["train", "--task", "text", "--data", "{root}/utf16-no-bom.txt", *QUICK],
     "looks like UTF-16 text without a byte-order mark"),
    ("NUL after the first 8 KiB", ["train", "--task", "text", "--data", "{root}/late-nul.txt", *QUICK],
     "holds NUL characters (the first on line 601"),
    ("a Latin-1 TSV", ["train", "--task", "translate", "--data", "{root}/latin1.tsv", *QUICK],
     "add --encoding latin-1"),
    ("two pairs", ["train", "--task", "translate", "--data", "{root}/two.tsv", *QUICK], "leaves no pair to test"),
    ("a gzip bomb of pairs", ["train", "--task", "translate", "--data", "{root}/bomb.tsv.gz", *QUICK],
     "inflates to more than 1 MiB"),
    ("a gzip bomb posing as MNIST", ["train", "--data", "mnist", "--data-dir", "{root}/fakedata", "--no-download",
                                     *QUICK], "inflates to more than 1 MiB"),
    # settings files and flags
    ("a binary YAML file", ["train", "--config", "{root}/binary.yaml"], "is not UTF-8 text"),
    ("a YAML alias bomb", ["train", "--config", "{root}/aliases.yaml"], "more than 20 aliases"),
    ("a seed beyond 64 bits in YAML", ["train", "--config", "{root}/seed.yaml"], "--seed must be a whole number"),
    ("--momentum 5", ["train", "--momentum", "5"], "--momentum (beta1 for adam and adamw) must be at least 0"),
    ("--momentum -1", ["train", "--optimizer", "momentum", "--momentum", "-1"], "Received: -1.0"),
    ("--seed -1", ["train", "--seed", "-1"], "--seed must be a whole number from 0 to 4294967295"),
    ("--seed 2**64", ["train", "--seed", str(2 ** 64)], "--seed must be a whole number from 0"),
    ("--device tpu", ["train", "--device", "tpu"], "--device must be auto, cpu, cuda, cuda:N or mps"),
    ("--runs-dir a file", ["train", "--runs-dir", "{root}/a-file/runs", *QUICK], "Cannot create the runs folder"),
    ("--name of 300 characters", ["train", "--name", "n" * 300], "--name must be at most 100 characters long"),
    ("--lr inf", ["train", "--lr", "inf"], "--lr must be a finite number"),
    ("--gamma nan", ["train", "--schedule", "step", "--gamma", "nan"], "--gamma must be a finite number"),
    ("--model vgg", ["train", "--model", "vgg"], "--model must be one of mlp, lenet"),
    ("--threads 0", ["runs", "--threads", "0"], "--threads must be a positive number of threads"),
    # commands on a run
    ("predict --top-k -1", ["predict", "{root}/runs/img", "{root}/csv/0.png", "--top-k", "-1"],
     "predict: top_k must be at least 1. Received: -1."),
    ("translate --beam 100000", ["translate", "{root}/runs/tr", "a b c", "--beam", "100000"],
     "translate: beam must be from 1 to 100. Received: 100000."),
    ("translate ''", ["translate", "{root}/runs/tr", ""], "Sentence 1 on the command line is empty"),
    ("generate --temperature nan", ["generate", "{root}/runs/txt", "--temperature", "nan"],
     "generate: temperature must be a finite number. Received: nan."),
    ("generate --temperature 1e-320", ["generate", "{root}/runs/txt", "--temperature", "1e-320"],
     "generate: temperature must be 0 (always the likeliest) or from 0.001 to 100. Received: 1e-320."),
    ("generate on an image run", ["generate", "{root}/runs/img"],
     "'generate' is for a text generation run; '{root}/runs/img' is an image classification run"),
    ("explain --steps 0", ["explain", "{root}/runs/img", "{root}/csv/0.png", "--steps", "0"],
     "--steps must be at least 1"),
    ("visualize --channels 5-2", ["visualize", "{root}/runs/img", "--layer", "features.0", "--channels", "5-2",
                                  "--steps", "1"], "--channels '5-2' names no channel"),
    ("sample --n 10**8", ["sample", "{root}/runs/gan", "--n", "100000000"], "sample: n must be from 1 to 10,000. Received: 100000000."),
    ("sample --scale 100000", ["sample", "{root}/runs/gan", "--scale", "100000"], "--scale must be from 1 to 16"),
    ("attack --restarts 0", ["attack", "{root}/runs/img", "--restarts", "0"], "--restarts must be at least 1"),
    # damaged run folders
    ("a truncated model.safetensors", ["predict", "{root}/runs/trunc_st", "{root}/csv/0.png"],
     "model.safetensors' is damaged or not a safetensors file"),
    ("an empty model.safetensors", ["evaluate", "{root}/runs/zero_st"], "is damaged or not a safetensors file"),
    ("a header bomb in model.safetensors", ["predict", "{root}/runs/bomb_st", "{root}/csv/0.png"],
     "is damaged or not a safetensors file"),
    ("model.json that is not JSON", ["predict", "{root}/runs/bad_json", "{root}/csv/0.png"],
     "model.json' is not valid JSON"),
    ("model.json without meta", ["evaluate", "{root}/runs/no_meta"], "does not describe a model: it needs 'task' and 'meta'"),
    ("config.yaml asking for width 30,000", ["predict", "{root}/runs/giant_width", "{root}/csv/0.png"],
     "do not fit the lenet model that"),
    ("model.json asking for 100,000 px", ["predict", "{root}/runs/giant_size", "{root}/csv/0.png"],
     "image_size 100000 is outside 1 to 4096 pixels"),
    ("model.json asking for 100,000 classes", ["predict", "{root}/runs/giant_classes", "{root}/csv/0.png"],
     "shapes differ: classifier.6.weight (10, 8) where the model has (100000, 8)"),
    ("an empty checkpoint.pt", ["train", "--resume", "{root}/runs/zero_ckpt"], "checkpoint.pt' is damaged"),
    ("a truncated checkpoint.pt", ["train", "--resume", "{root}/runs/trunc_ckpt"], "checkpoint.pt' is damaged"),
    ("a malicious checkpoint.pt", ["train", "--resume", "{root}/runs/evil_ckpt"],
     "is not a deepworks checkpoint: it holds Python objects other than tensors and numbers, so it was not loaded. "
     "Do not load it with weights_only=False"),
    ("a malicious checkpoint.pt in torch's zip format", ["train", "--resume", "{root}/runs/evil_zip"],
     "is not a deepworks checkpoint: it holds Python objects other than tensors and numbers"),
    ("config.yaml edited after the start", ["train", "--resume", "{root}/runs/longer"],
     "was made for a schedule of 12 steps, but '{root}/runs/longer/config.yaml' asks for 48"),
    ("resume with other epochs", ["train", "--resume", "{root}/runs/img", "--epochs", "3"],
     "so these settings cannot change: --epochs (1 -> 3)"),
]


@pytest.mark.parametrize("case, argv, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_line_naming_the_fix(world, capsys, monkeypatch, case, argv, expected):
    monkeypatch.setattr("deepworks.data.builtin.MAX_INFLATED", 2 ** 20, raising=False)
    before = written(world / "runs")
    code = main([a.replace("{root}", str(world)) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2, (case, out, err)
    assert err.startswith("error: ") and expected.replace("{root}", str(world)) in err, (case, err)
    assert "Traceback" not in err and err.count("\n") == 1, (case, err)  # one line
    assert not (world / "PWNED").exists()  # nothing in a file ran
    assert written(world / "runs") == before, case  # nothing written, nothing half-written


def written(folder: Path) -> dict:
    """Every file under `folder` with its size and time of change (the lock files of `train --resume` aside)."""
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")
            if p.is_file() and not p.name.startswith(".")}

