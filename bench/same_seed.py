"""Same-seed invariant: a tiny run of each task gives bit-identical weights before and after a refactor.

    python bench/same_seed.py record     # before the change: writes bench/results/same_seed.json
    python bench/same_seed.py check      # after it: trains again and compares every hash with the recorded one

Each case trains through the public API on data made on the spot (digits ship with scikit-learn), on one thread,
so the hashes depend only on the code and this machine's kernels: record and check on the same machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ["DEEPWORKS_THREADS"] = "1"

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import deepworks as dw  # noqa: E402

RESULT = Path(__file__).resolve().parent / "results" / "same_seed.json"
LINE = "the quick brown fox jumps over the lazy dog.\n"


def make_data(root: Path) -> dict:
    (root / "fox.txt").write_text(LINE * 60)
    rng = np.random.default_rng(0)
    symbols = list("abcdefghij")
    lines = []
    for _ in range(600):
        words = list(rng.choice(symbols, int(rng.integers(3, 7))))
        lines.append(" ".join(words) + "\t" + " ".join(reversed(words)))
    (root / "reverse.tsv").write_text("\n".join(lines) + "\n")
    for kind in ("h", "v"):
        (root / "bars" / kind).mkdir(parents=True)
        for i in range(64):
            img = np.full((16, 16), rng.integers(0, 40), dtype=np.uint8)
            a = rng.integers(2, 8)
            if kind == "h":
                img[a:a + 3, 2:-2] = 255
            else:
                img[2:-2, a:a + 3] = 255
            Image.fromarray(img).save(root / "bars" / kind / f"{i}.png")
    return {"text": str(root / "fox.txt"), "translate": str(root / "reverse.tsv"), "gan": str(root / "bars")}


def cases(data: dict) -> dict:
    return {
        "image-lenet": dict(model="lenet", epochs=2, baseline=False),
        "image-mlp-ema-crop": dict(model="mlp", epochs=2, ema=0.9, augment="crop", dropout=0.2, baseline=False),
        "image-adversarial": dict(model="mlp", epochs=1, adversarial="fgsm", baseline=False),
        "text-lstm": dict(task="text", data=data["text"], epochs=2, seq_len=32, batch_size=8, width=32, depth=1),
        "translate-gru": dict(task="translate", data=data["translate"], epochs=2, width=32, embed_size=16,
                              batch_size=32, min_freq=1),
        "translate-transformer": dict(task="translate", data=data["translate"], model="transformer", epochs=1,
                                      width=32, embed_size=32, batch_size=32, min_freq=1),
        "gan-dcgan": dict(task="gan", data=data["gan"], epochs=2, width=8, latent_size=8, batch_size=16,
                          fid_samples=64),
        "gan-wgan-gp": dict(task="gan", data=data["gan"], epochs=1, width=8, latent_size=8, batch_size=16,
                            gan_loss="wgan-gp", critic_steps=2, fid_samples=64),
        "detect-centernet": dict(task="detect", data="shapes:96", image_size=64, epochs=2, batch_size=16),
        "audio-cnn1d": dict(task="audio", data="tones", epochs=2, batch_size=32),
    }


def digest(path: Path) -> str:
    """The weights' names and bytes, not the file's: a weights file's metadata (the model card it carries since the
    export work) is not the weights."""
    if not path.exists():
        return None
    from safetensors.torch import load_file

    state, h = load_file(path), hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def train_all() -> dict:
    hashes = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.chdir(root)
        data = make_data(root)
        for name, settings in cases(data).items():
            trained = dw.train(progress=False, name=name, **settings)
            losses = [r["train_loss"] for r in trained.run.metrics() if r.get("kind") == "epoch"]
            hashes[name] = {"model": digest(trained.run.path / "model.safetensors"),
                            "best": digest(trained.run.path / "best.safetensors"), "train_loss": losses}
            print(name, hashes[name], flush=True)
    return hashes


def main(mode: str) -> int:
    now = train_all()
    if mode == "record":
        RESULT.parent.mkdir(parents=True, exist_ok=True)
        RESULT.write_text(json.dumps({"before": now}, indent=2) + "\n")
        print(f"wrote {RESULT}")
        return 0
    saved = json.loads(RESULT.read_text())
    before = saved["before"]
    same = {k: now[k] == before.get(k) for k in now}
    saved["after"], saved["identical"] = now, same
    RESULT.write_text(json.dumps(saved, indent=2) + "\n")
    for k, ok in same.items():
        print(f"{k}: {'identical' if ok else 'DIFFERENT'}")
    return 0 if all(same.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "check"))
