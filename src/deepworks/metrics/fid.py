"""How good are generated images? Fréchet distance and a class-entropy score on a classifier's features.

The standard FID (Heusel et al. 2017) compares Inception-v3 features of real and generated images. Those
weights cannot be downloaded everywhere, so by default deepworks trains its own small classifier (FeatureNet)
on the same dataset: deterministic (fixed seed, steps and batch order), cached by a hash of the images, and
named in every result ("fid_features"). With class labels it learns the classes; without them it learns to
tell by how much an image was rotated (0, 90, 180, 270 degrees: Gidaris et al. 2018), which needs no labels
and still makes features that see strokes and shapes. Such an FID compares models trained on one dataset;
it is not comparable with published Inception FIDs. For those, pass a TorchScript Inception feature extractor
(`--fid-model`, e.g. the inception-2015-12-05.pt that StyleGAN's and clean-fid's metrics use): it is called on
uint8 images (N, 3, H, W) with return_features=True when it takes that argument.

The class-entropy score is the Inception Score's formula on our classifier: exp(H(mean p(y|x)) - mean H(p(y|x))),
high when each image is clearly one class and all classes appear. Diversity is the mean distance between
the features of two images, generated relative to real; far below 1 means the samples collapsed to few modes.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import DataError

FEATURE_STEPS = 600  # optimizer steps of the feature classifier, batch 128
VERSION = 1  # bump when FeatureNet or its training changes: cached nets of an older version are not reused


def cache_dir() -> Path:
    return Path(os.environ.get("DEEPWORKS_CACHE") or Path.home() / ".cache" / "deepworks") / "fid"


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> floats in [-1, 1], the range a DCGAN generator writes."""
    return x.float() / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Generated images in [-1, 1] -> uint8, quantised as saved images are, so both sides are measured alike."""
    return ((x.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


class FeatureNet(nn.Module):
    """A small CNN: three conv blocks and a 128-unit layer whose activations are the features."""

    def __init__(self, channels: int, classes: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
            nn.Linear(512, 128), nn.ReLU())
        self.head = nn.Linear(128, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def rotated(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Rotate image i by k[i] quarter turns (square images)."""
    out = x.clone()
    for turns in range(1, 4):
        rows = k == turns
        if rows.any():
            out[rows] = torch.rot90(x[rows], turns, (2, 3))
    return out


def feature_steps(n: int) -> int:
    """Optimizer steps of FeatureNet for n images: FEATURE_STEPS, but no more than about 20 passes over a small set
    (400 faces do not need 600 batches of 128), and at least 100."""
    return min(FEATURE_STEPS, max(100, math.ceil(20 * n / 128)))


def train_feature_net(images: torch.Tensor, labels: torch.Tensor | None, steps: int | None = None,
                      seed: int = 0, progress: bool | None = None) -> FeatureNet:
    """Train FeatureNet on uint8 images: on the labels when given, else on predicting a random rotation. It can take
    minutes on a CPU, so it says so when it starts and ends (a bar on a terminal), unless `progress` is False."""
    from tqdm.auto import tqdm

    steps = steps or feature_steps(len(images))
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = FeatureNet(images.shape[1], int(labels.max()) + 1 if labels is not None else 4)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    n = len(images)
    say = progress is not False
    if say:
        print(f"Training the classifier whose features FID compares, on {n:,} images for {steps} steps; once for "
              f"this data, then cached in {cache_dir()}.", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    bar = tqdm(range(steps), desc="FID classifier", unit="step", leave=False,
               disable=not (say and sys.stderr.isatty()))
    for _ in bar:
        idx = torch.randint(n, (min(128, n),), generator=g)
        x = to_unit(images[idx])
        if labels is None:
            y = torch.randint(4, (len(idx),), generator=g)
            x = rotated(x, y)
        else:
            y = labels[idx]
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if say:
        print(f"FID classifier ready in {time.perf_counter() - t0:.1f} s.", file=sys.stderr, flush=True)
    return net.eval()


def fingerprint(images: torch.Tensor, labels: torch.Tensor | None) -> str:
    h = hashlib.sha256(f"v{VERSION}-{feature_steps(len(images))}-{tuple(images.shape)}".encode())
    h.update(images.numpy().tobytes())
    if labels is not None:
        h.update(labels.numpy().astype(np.int64).tobytes())
    return h.hexdigest()[:20]


class Features:
    """Features (and class probabilities) of uint8 images (N, C, H, W), from a FeatureNet or a TorchScript file."""

    def __init__(self, net: nn.Module, name: str, scripted: bool = False):
        self.net, self.name, self.scripted = net, name, scripted

    @classmethod
    def trained_on(cls, images: torch.Tensor, labels: torch.Tensor | None, description: str,
                   progress: bool | None = None) -> "Features":
        """The cached FeatureNet for these images, trained when not cached yet (from seconds for a few hundred
        small images to minutes for 60,000 on a laptop CPU)."""
        from safetensors.torch import save

        from ..run import atomic_write_bytes, read_safetensors

        kind = "classes" if labels is not None else "rotation"
        path = cache_dir() / f"featurenet-{fingerprint(images, labels)}.safetensors"
        net = FeatureNet(images.shape[1], int(labels.max()) + 1 if labels is not None else 4)
        if path.is_file():
            net.load_state_dict(read_safetensors(path))
        else:
            net = train_feature_net(images, labels, progress=progress)
            atomic_write_bytes(path, save({k: v.contiguous() for k, v in net.state_dict().items()}))
        name = (f"deepworks FeatureNet v{VERSION} trained to predict the {kind} of {description} "
                f"({feature_steps(len(images))} steps, seed 0), cached at {path}")
        return cls(net.eval(), name)

    @classmethod
    def from_file(cls, path: str | Path) -> "Features":
        path = Path(path)
        if not path.is_file():
            raise DataError(f"No such feature extractor '{path}'. Pass a TorchScript file (torch.jit.save), such as "
                            f"the inception-2015-12-05.pt that StyleGAN's metrics use.")
        try:
            net = torch.jit.load(str(path), map_location="cpu")
        except (RuntimeError, ValueError) as err:
            raise DataError(f"'{path}' is not a TorchScript model ({str(err).splitlines()[0]}). Save the extractor "
                            f"with torch.jit.save, or leave --fid-model unset to use deepworks' own classifier.") from None
        return cls(net.eval(), f"TorchScript extractor '{path}'", scripted=True)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray | None]:
        feats, probs = [], []
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size]
            if self.scripted:
                if x.shape[1] == 1:
                    x = x.expand(-1, 3, -1, -1)
                try:
                    out = self.net(x, return_features=True)
                except (RuntimeError, TypeError):
                    out = self.net(x)
                feats.append(out.reshape(len(x), -1).float())
            else:
                h = self.net.body(to_unit(x))
                feats.append(h)
                probs.append(self.net.head(h).softmax(1))
        return torch.cat(feats).numpy().astype(np.float64), torch.cat(probs).numpy() if probs else None


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return features.mean(0), np.cov(features, rowvar=False)


def frechet_distance(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 sqrt(S_a S_b)) between two (mean, covariance) pairs."""
    from scipy import linalg

    (mu1, s1), (mu2, s2) = a, b
    with warnings.catch_warnings():  # scipy warns on a singular product; the check below handles it
        warnings.simplefilter("ignore")
        root = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(root).all():  # nearly singular product: nudge both covariances, as pytorch-fid does
        offset = np.eye(len(s1)) * 1e-6
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            root = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    root = root.real
    return float(max(0.0, ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(root)))


def class_entropy_score(probs: np.ndarray) -> float:
    """exp(H(p(y)) - E[H(p(y|x))]): between 1 and the number of classes."""
    eps = 1e-12
    marginal = probs.mean(0)
    h_marginal = -(marginal * np.log(marginal + eps)).sum()
    h_each = -(probs * np.log(probs + eps)).sum(1).mean()
    return float(np.exp(h_marginal - h_each))


def class_diversities(features: np.ndarray, labels: torch.Tensor | None) -> dict[int, float]:
    """The diversity of each class's images (classes with at least two), or nothing without labels."""
    if labels is None:
        return {}
    y = np.asarray(labels)
    return {int(c): diversity(features[y == c]) for c in np.unique(y) if (y == c).sum() >= 2}


def diversity(features: np.ndarray, pairs: int = 2000, seed: int = 0) -> float:
    """Mean Euclidean distance between the features of random pairs of images."""
    rng = np.random.default_rng(seed)
    i, j = rng.integers(len(features), size=(2, pairs))
    keep = i != j
    return float(np.linalg.norm(features[i[keep]] - features[j[keep]], axis=1).mean())
