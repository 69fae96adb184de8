"""`deepworks import`: a classifier trained elsewhere, wrapped in a run directory so that evaluate, predict,
export and serve work on it (and attack and explain, where it is differentiable).

Three kinds of file:
- an ONNX file: run in ONNX Runtime (not differentiable: attacks and saliency need gradients);
- a `torch.export` program (.pt2): run in torch, gradients and all;
- safetensors weights of one of deepworks' own architectures (--model lenet | smallcnn | resnet | mlp): an ordinary run.

The model takes images as deepworks gives them to its own models: float (N, C, H, W), each channel normalised with
--normalise MEAN,STD (default 0,1: pixels in [0, 1], with a warning, since a wrong guess gives wrong answers); it
returns one score (logit) per class of --classes. A model whose input or output does not fit is refused with what
was expected and what it has. Safetensors files that deepworks wrote (a run's weights, an export's) say their
architecture, classes, image size, channels and normalisation in their metadata: those are used where no option
says otherwise.

Nothing in a file is run to read it: .pt2 programs go through model_files.load_pt2, and a run's model files are
checked against the sha256 its model.json records before they are loaded.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from ..config import Config
from ..errors import ConfigError, DataError, DeepworksError
from ..digests import sha256_of
from ..model_files import load_pt2
from ..run import Run, cpu_state_dict
from .runtime import ImportedModel, onnx_session

KINDS = {".onnx": "onnx", ".pt2": "pt2", ".safetensors": "safetensors"}


def parse_normalise(text: str | None, channels: int) -> tuple[list[float], list[float]]:
    """'MEAN,STD' (every channel) or 'M1,M2,M3,S1,S2,S3' -> (mean, std) per channel."""
    if text is None:
        return [0.0] * channels, [1.0] * channels
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) == 2:
        values = [values[0]] * channels + [values[1]] * channels
    if len(values) != 2 * channels or any(v <= 0 for v in values[channels:]):
        raise ConfigError(f"--normalise takes MEAN,STD or, per channel, {channels} means then {channels} positive "
                          f"standard deviations (pixels in [0, 1]: 0.485,0.456,0.406,0.229,0.224,0.225 for ImageNet). "
                          f"Received: {text!r}.")
    return values[:channels], values[channels:]


def graph_input(file: Path, kind: str) -> tuple[list, object]:
    """The declared input shape (dims as ints or None) of an ONNX file; a pt2 program's example shape."""
    if kind == "onnx":
        try:
            session = onnx_session(file)
        except Exception as err:
            raise DataError(f"'{file}' is not an ONNX model ONNX Runtime can load ({str(err).splitlines()[0][:200]}). "
                            f"Expected an .onnx file.") from None
        first = session.get_inputs()
        if len(first) != 1:
            raise DataError(f"'{file}' takes {len(first)} inputs. Expected one: the images (N, C, H, W).")
        if "float" not in first[0].type:
            raise DataError(f"'{file}' takes {first[0].type}. Expected float images (N, C, H, W).")
        return [d if isinstance(d, int) else None for d in first[0].shape], session
    try:
        program = load_pt2(file)
    except DeepworksError:
        raise
    except Exception as err:
        raise DataError(f"'{file}' is not a torch.export program ({str(err).splitlines()[0][:200]}). Expected a .pt2 "
                        f"file written by torch.export.save.") from None
    args = program.example_inputs[0] if program.example_inputs else ()
    shape = list(args[0].shape) if args else []
    return [int(d) if isinstance(d, int) else None for d in shape], program


def import_model(file: str | Path, task: str = "image", classes: list[str] | str | None = None,
                 image_size: int | None = None, normalise: str | None = None, channels: int | None = None,
                 model: str | None = None, name: str | None = None, runs_dir: str | Path = "runs"):
    """Wrap a model made elsewhere in a run directory (see the module); returns it loaded, as dw.load would."""
    from ..api.trained import load

    file = Path(file)
    if task != "image":
        raise ConfigError(f"deepworks import takes image classifiers (--task image). Received: --task {task}.")
    if not file.is_file():
        raise DataError(f"No such file '{file}'. Expected an .onnx, .pt2 or .safetensors file.")
    kind = KINDS.get(file.suffix.lower())
    if kind is None:
        raise DataError(f"'{file}' is not a model file deepworks can import. Expected an .onnx file, a torch.export "
                        f".pt2 program, or .safetensors weights of a deepworks architecture (with --model).")
    classes = [c.strip() for c in classes.split(",")] if isinstance(classes, str) else list(classes or [])
    if kind == "safetensors":
        given = {"model": model, "classes": classes or None, "image_size": image_size, "channels": channels}
        return import_weights(file, with_recorded_settings(file, given, normalise), name, runs_dir)
    check_classes(classes)
    if model is not None:
        raise ConfigError(f"--model is for safetensors weights of a deepworks architecture; '{file.name}' carries its "
                          f"own graph. Leave --model out.")
    shape, _ = graph_input(file, kind)
    size, channels, batch = check_input_shape(file, shape, image_size, channels)
    mean, std = parse_normalise(normalise, channels)
    if normalise is None:
        warn_unknown_normalisation(file)
    wrapped = ImportedModel(file, kind, batch)
    check_output(wrapped, file, channels, size, classes)
    if batch is None:
        try:
            wrapped(torch.zeros(2, channels, size, size))
        except Exception:
            batch = 1  # the graph was traced at batch 1 and kept it
    run = new_run(runs_dir, name or f"{file.stem}-imported")
    target = run.path / f"imported.{kind}"
    shutil.copyfile(file, target)
    meta = {"classes": classes, "channels": channels, "image_size": size, "mean": mean, "std": std,
            "source": f"imported from {file.name}"}
    imported = {"kind": kind, "file": target.name, "sha256": sha256_of(target), "origin": str(file.resolve()),
                "batch": batch}
    write_run(run, None, meta, imported)
    return load(run.path)


def check_input_shape(file: Path, shape: list, image_size: int | None, channels: int | None) -> tuple[int, int, int | None]:
    """(image size, channels, fixed batch or None) from the graph's input (N, C, H, W), with the flags' help."""
    if len(shape) != 4:
        raise DataError(f"'{file}' takes inputs of shape {shape}. Expected images (N, C, H, W).")
    batch, c, h, w = shape
    c = c if c is not None else channels
    if c not in (1, 3) and w in (1, 3) and (file.parent / "weights.safetensors").is_file():
        raise DataError(f"'{file}' takes pixels channels last, {shape} (N, H, W, C): a deepworks export, which has "
                        f"the normalisation inside. Expected (N, C, H, W) images. Import the export's weights "
                        f"instead: deepworks import {file.parent / 'weights.safetensors'}")
    if c not in (1, 3):
        raise DataError(f"'{file}' takes {c} channels (N, C, H, W): {shape}. Expected 1 (grey) or 3 (colour) "
                        f"channels first; give --channels when the graph leaves it open.")
    if channels is not None and channels != c:
        raise DataError(f"'{file}' takes {c} channels, and --channels says {channels}. Leave --channels out.")
    if h is not None and w is not None and h != w:
        raise DataError(f"'{file}' takes {h}x{w} images. Expected square images (H = W).")
    size = h if h is not None else image_size
    if size is None:
        raise ConfigError(f"'{file}' accepts any image size; say which it was trained at with --image-size N.")
    if image_size is not None and image_size != size:
        raise DataError(f"'{file}' takes {size}x{size} images, and --image-size says {image_size}. Leave "
                        f"--image-size out.")
    return int(size), int(c), (int(batch) if batch is not None and batch > 1 else batch)


def check_output(model: nn.Module, file: Path, channels: int, size: int, classes: list[str]) -> None:
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, channels, size, size))
    except Exception as err:
        raise DataError(f"'{file}' could not be run on one {channels}x{size}x{size} image "
                        f"({str(err).splitlines()[0][:200]}). Expected a classifier of (N, C, H, W) images.") from None
    if out.dim() != 2 or out.shape[1] != len(classes):
        raise DataError(f"'{file}' gives outputs of shape {tuple(out.shape)} for one image. Expected (1, "
                        f"{len(classes)}): one score per class of --classes ({len(classes)} given).")


def check_classes(classes: list[str]) -> None:
    if len(classes) < 2 or any(not c for c in classes) or len(set(classes)) != len(classes):
        raise ConfigError(f"--classes names the model's outputs in order, at least two, each once: --classes "
                          f"cat,dog,bird. Received: {','.join(classes) or 'none'}.")


def warn_unknown_normalisation(file: Path) -> None:
    warnings.warn(f"'{file}' does not say how its images were normalised, so pixels in [0, 1] are assumed (mean 0, "
                  f"std 1). If the model was trained otherwise its answers will be wrong: give --normalise MEAN,STD "
                  f"(per channel: M1,M2,M3,S1,S2,S3) as it was trained.", UserWarning, stacklevel=3)


def recorded_settings(file: Path) -> dict:
    """What deepworks' own safetensors files say about their model in their metadata (a run's weights hold the run's
    card, an export's weights the export's card): model, classes, channels, image_size, mean, std; {} for others."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(file, framework="pt") as f:
            card = json.loads((f.metadata() or {}).get("deepworks") or "{}")
            shapes = [f.get_slice(k).get_shape() for k in f.keys()]
    except (SafetensorError, OSError, ValueError, RecursionError):
        return {}
    if not isinstance(card, dict) or card.get("task") != "image":
        return {}
    meta, pre = card.get("meta") or {}, card.get("preprocessing") or {}
    model = card.get("model") if isinstance(card.get("model"), dict) else {}
    resize = pre.get("resize") if isinstance(pre.get("resize"), list) else [None]
    found = {"model": model.get("name"), "classes": meta.get("classes", card.get("classes")),
             "channels": meta.get("channels", {"grey": 1, "RGB": 3}.get(pre.get("channels"))),
             "image_size": meta.get("image_size", resize[0]), "mean": meta.get("mean", pre.get("mean")),
             "std": meta.get("std", pre.get("std"))}
    kinds = {"model": str, "classes": list, "channels": int, "image_size": int, "mean": list, "std": list}
    found = {k: v for k, v in found.items() if isinstance(v, kinds[k]) and not isinstance(v, bool)}
    return {**found, "architecture": recorded_architecture(model, shapes)}


def recorded_architecture(model: dict, shapes: list[list[int]]) -> dict:
    """The depth, width and activation a run's weights were trained with, so the import builds that architecture
    (not its defaults). Only numbers the file's own tensors could hold are believed: a depth up to its count of
    tensors, a width up to their largest side; metadata that claims more would have the import build a huge model."""
    largest = max((max(shape, default=0) for shape in shapes), default=0)
    bounds = {"depth": len(shapes), "width": largest}
    found = {k: model[k] for k, most in bounds.items()
             if type(model.get(k)) is int and 0 <= model[k] <= most}  # noqa: E721 (bool is no depth)
    if isinstance(model.get("activation"), str) and len(model["activation"]) <= 32:
        found["activation"] = model["activation"]
    return found


def with_recorded_settings(file: Path, given: dict, normalise: str | None) -> dict:
    """The options given, completed from the file's own metadata: an option given wins, and a conflict is said.
    The normalisation comes from --normalise, else the metadata, else [0, 1] with a warning."""
    recorded = recorded_settings(file)
    settings = dict(given)
    for key, flag in (("model", "--model"), ("classes", "--classes"), ("image_size", "--image-size"),
                      ("channels", "--channels")):
        ours = recorded.get(key)
        if settings[key] is None:
            settings[key] = ours
        elif ours is not None and ours != settings[key]:
            shown = ",".join(map(str, ours)) if isinstance(ours, list) else ours
            warnings.warn(f"'{file}' says {flag.lstrip('-').replace('-', ' ')} {shown} in its deepworks metadata; "
                          f"{flag} overrides it.", UserWarning, stacklevel=3)
    check_classes(settings["classes"] or [])
    # the recorded depth and width belong to the recorded model: another --model is built at its defaults
    settings["architecture"] = recorded.get("architecture", {}) if settings["model"] == recorded.get("model") else {}
    channels = settings["channels"]
    if normalise is None and channels is not None and len(recorded.get("mean", [])) == channels == len(
            recorded.get("std", [])) and all(isinstance(v, (int, float)) and v > 0 for v in recorded["std"]):
        settings["mean"], settings["std"] = [float(v) for v in recorded["mean"]], [float(v) for v in recorded["std"]]
    elif channels is not None:
        if normalise is None:
            warn_unknown_normalisation(file)
        settings["mean"], settings["std"] = parse_normalise(normalise, channels)
    return settings


def import_weights(file: Path, settings: dict, name: str | None, runs_dir):
    """Safetensors weights of a deepworks architecture: built, filled (every tensor by name and shape), saved as a run."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from ..api.trained import load
    from ..models import IMAGE_MODELS, build_image_classifier

    model, classes, image_size, channels = (settings[k] for k in ("model", "classes", "image_size", "channels"))
    if model not in IMAGE_MODELS:
        raise ConfigError(f"Safetensors weights need the architecture they belong to: --model "
                          f"{' | '.join(IMAGE_MODELS)}. Received: {model or 'none'}.")
    if image_size is None or channels is None:
        raise ConfigError("Safetensors weights do not say the image size or channels: give --image-size N and "
                          "--channels 1 or 3.")
    if channels not in (1, 3) or not 1 <= image_size <= 4096:
        raise ConfigError(f"Expected --channels 1 or 3 and --image-size between 1 and 4096. Received: channels "
                          f"{channels}, image size {image_size}.")
    try:
        state = load_file(file)
    except (SafetensorError, OSError, ValueError) as err:
        raise DataError(f"'{file}' is damaged or not a safetensors file ({err}).") from None
    cfg = Config()
    cfg.task, cfg.model.name = "image", model
    for key, value in settings.get("architecture", {}).items():
        setattr(cfg.model, key, value)
    cfg.check()
    net = build_image_classifier(cfg.model, channels, image_size, len(classes))
    wanted = net.state_dict()
    missing = [k for k in wanted if k not in state]
    wrong = [f"{k} {tuple(state[k].shape)} where {model} has {tuple(v.shape)}" for k, v in wanted.items()
             if k in state and state[k].shape != v.shape]
    extra = [k for k in state if k not in wanted]
    if missing or wrong or extra:
        raise DataError(f"'{file}' does not fit a {model} for {channels}x{image_size}x{image_size} images and "
                        f"{len(classes)} classes: " + "; ".join(part for part in (
                            f"missing {', '.join(missing[:3])}" if missing else "",
                            f"shapes differ: {', '.join(wrong[:3])}" if wrong else "",
                            f"unexpected {', '.join(extra[:3])}" if extra else "") if part) + ".")
    net.load_state_dict(state)
    run = new_run(runs_dir, name or f"{file.stem}-imported")
    meta = {"classes": classes, "channels": channels, "image_size": image_size, "mean": settings["mean"],
            "std": settings["std"], "source": f"imported from {file.name}"}
    cfg.data.image_size, cfg.data.channels = image_size, channels
    card = write_run(run, cfg, meta, {"kind": "safetensors", "origin": str(file.resolve()), "sha256": sha256_of(file)})
    sha256 = run.save_weights(cpu_state_dict(net), card=card)
    run.write_json(run.model_file, {**card, "files": {run.weights_file.name: sha256}})
    return load(run.path)


def new_run(runs_dir, name: str) -> Run:
    Run.make_runs_dir(runs_dir)
    return Run.create(runs_dir, name)


def write_run(run: Run, cfg: Config | None, meta: dict, imported: dict) -> dict:
    """config.yaml, model.json and results.json of an imported run (nothing was trained, nothing tested yet)."""
    if cfg is None:
        cfg = Config()
        cfg.task = "image"
    cfg.name, cfg.runs_dir = run.name, str(run.path.parent)
    cfg.data.source, cfg.data.image_size, cfg.data.channels = None, meta["image_size"], meta["channels"]
    cfg.save(run.config_file)
    card = {"format": 1, "task": "image", "model": dataclasses.asdict(cfg.model), "meta": meta, "imported": imported}
    run.write_json(run.model_file, card)
    run.write_json(run.results_file, {"task": "image", "test": {}, "baseline": None, "imported": imported,
                                      "fit": None, "parameters": None, "splits": None})
    return card


