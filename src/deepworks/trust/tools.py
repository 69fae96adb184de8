"""The trust tools applied to a trained image run: what `Trained.attack / fool / explain / visualize /
representations` and the matching commands do. Each writes its figures (by default into the run's
report folder) and returns a JSON-ready dict with the numbers and the files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError
from ..run import atomic_write_json
from . import class_index, to_pixels
from .attacks import attacked_predictions, check_attack, fooling_image, perturb, plot_curve, plot_triptychs


def output_dir(trained, out: str | Path | None) -> Path:
    path = Path(out) if out is not None else trained.run.report_dir
    path.mkdir(parents=True, exist_ok=True)
    return path


def read_one_image(trained, path: str | Path) -> tuple[torch.Tensor, str | None]:
    """One image file as the model sees it (uint8 (1, C, S, S)), and a note when it had to be converted."""
    from ..data.decode import probe_image

    path = Path(path)
    if path.is_dir():
        raise DataError(f"'{path}' is a folder; pass one image file.")
    x, _ = trained.face.read_images([path])
    meta, note = trained.face.meta, None
    size, mode = probe_image(path)
    want_mode = "grey" if meta["channels"] == 1 else "colour"
    if size != (meta["image_size"], meta["image_size"]) or (mode in ("L", "1", "I", "F")) != (meta["channels"] == 1):
        note = (f"'{path.name}' is {size[0]}x{size[1]} {mode}; it was converted to {meta['image_size']}x"
                f"{meta['image_size']} {want_mode}, as the model was trained.")
    return x, note


def caption(probs: torch.Tensor, classes: list[str]) -> tuple[int, float, str]:
    p, i = probs.max(0)
    return int(i), float(p), f"{classes[int(i)]} {float(p):.0%}"


def attack_options(method: str, norm: str, steps: int, step_size: float | None, restarts: int,
                   random_start: bool) -> dict:
    if method == "fgsm":
        return {"random_start": random_start} if random_start else {}
    return {"steps": steps, "step_size": step_size, "norm": norm, "random_start": random_start, "restarts": restarts}


def default_curve(eps: float, norm: str) -> list[float]:
    top = 1.0 if norm == "linf" else math.inf
    return sorted({round(min(e, top), 6) for e in (0.0, eps / 4, eps / 2, eps, 1.5 * eps, 2 * eps)})


def attack_run(trained, method: str = "pgd", eps: float = 0.1, norm: str = "linf", steps: int = 40,
               step_size: float | None = None, restarts: int = 1, random_start: bool | None = None,
               samples: int = 1000, curve: list[float] | None = None, show: int = 6, examples: list[int] | None = None,
               image: str | Path | None = None, target: str | int | None = None, out: str | Path | None = None,
               progress: bool | None = None) -> dict:
    check_attack(method, eps, norm, steps)
    if samples < 1 or show < 0:
        raise ConfigError(f"--samples must be at least 1 and --show 0 or more. Received: {samples}, {show}.")
    if restarts < 1:
        raise ConfigError(f"--restarts must be at least 1 (one try from a random start). Received: {restarts}.")
    random_start = (method == "pgd") if random_start is None else random_start
    classes = trained.face.meta["classes"]
    model = trained.face.pixel_model(trained.model).eval()
    options = attack_options(method, norm, steps, step_size, restarts, random_start)
    goal = None if target is None else class_index(target, classes, "--target")
    name = f"{method}{'-' + norm if method == 'pgd' else ''}-eps{eps:g}"
    directory = output_dir(trained, out)
    settings = {"run": str(trained.run.path), "method": method, "eps": eps, "norm": norm, **(
        {"steps": steps, "step_size": step_size or 2.5 * eps / steps, "restarts": restarts} if method == "pgd" else {}),
        "random_start": random_start, "target": None if goal is None else classes[goal]}
    if image is not None:
        return {**settings, **attack_one_image(model, image, trained, method, eps, options, goal, directory, name)}

    test_x, test_y = trained.examples("test")
    x, y = test_x[:samples], test_y[:samples]
    if len(x) == 0:
        raise DataError(f"Run '{trained.run.path}' has no test images to attack.")
    bad = [i for i in examples or [] if not 0 <= i < len(test_x)]
    if bad:
        raise ConfigError(f"--examples {bad}: the test split has images 0 to {len(test_x) - 1}.")
    pixels = to_pixels(x)
    points = default_curve(eps, norm) if curve is None else sorted({float(e) for e in curve} | {eps})
    for e in points:
        check_attack(method, e, norm, steps)
    clean, accuracy, fooled_to_target = accuracy_curve(model, pixels, y, method, points, goal, options, progress)
    result = {**settings, "samples": len(x), "clean_accuracy": float((clean == y).float().mean()),
              "adversarial_accuracy": accuracy[eps],
              "curve": [{"eps": e, "accuracy": accuracy[e]} for e in points]}
    if goal is not None:
        result["target_success"] = fooled_to_target[eps]
    files = {"curve": str(plot_curve(result["curve"], directory / f"attack-{name}-curve.png",
                                     f"{method.upper()} on {len(x)} test images"))}
    picked = torch.tensor(examples) if examples else spread_over_classes(torch.nonzero(clean == y).flatten(), y, show)
    if len(picked):
        files["examples"] = str(triptychs(model, to_pixels(test_x[picked]), test_y[picked], classes, method, eps,
                                          options, None if goal is None else torch.full((len(picked),), goal),
                                          directory / f"attack-{name}-examples.png"))
    result["files"] = files
    atomic_write_json(directory / f"attack-{name}.json", result)
    result["files"]["json"] = str(directory / f"attack-{name}.json")
    return result


def accuracy_curve(model, pixels: torch.Tensor, y: torch.Tensor, method: str, points: list[float], goal: int | None,
                   options: dict, progress: bool | None) -> tuple[torch.Tensor | None, dict, dict]:
    """The model's predictions on the clean images, and per eps of `points` its accuracy under attack and, for a
    targeted attack, the share of the images not of the target class that it was fooled into calling the target."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(pixels) * len(points), desc=f"{method} attack", unit="img", disable=progress is False,
               leave=False)
    targets = None if goal is None else torch.full_like(y, goal)
    accuracy, fooled_to_target, clean = {}, {}, None
    for e in points:
        clean, adv = attacked_predictions(model, pixels, y, method, e, progress=bar, target=targets, **options)
        accuracy[e] = float((adv == y).float().mean())
        if goal is not None:
            others = y != goal
            fooled_to_target[e] = float((adv[others] == goal).float().mean()) if bool(others.any()) else float("nan")
    bar.close()
    return clean, accuracy, fooled_to_target


def spread_over_classes(indices: torch.Tensor, labels: torch.Tensor, n: int) -> torch.Tensor:
    """Up to n of `indices`, taking the first of each class in turn (a test split sorted by class would otherwise
    show n images of its first class)."""
    by_class: dict[int, list[int]] = {}
    for i in indices.tolist():
        by_class.setdefault(int(labels[i]), []).append(i)
    queues = [by_class[c] for c in sorted(by_class)]
    picked = []
    while len(picked) < n and any(queues):
        for q in queues:
            if q and len(picked) < n:
                picked.append(q.pop(0))
    return torch.tensor(picked, dtype=torch.long)


def triptychs(model, pixels, y, classes, method, eps, options, targets, path: Path) -> Path:
    device = next(model.parameters()).device
    pixels, y = pixels.to(device), y.to(device)
    adv = perturb(model, pixels, y, method, eps, target=None if targets is None else targets.to(device), **options)
    with torch.no_grad():
        before, after = F.softmax(model(pixels), 1).cpu(), F.softmax(model(adv), 1).cpu()
    rows = []
    for i in range(len(pixels)):
        b, after_i = caption(before[i], classes), caption(after[i], classes)
        rows.append({"original": pixels[i].cpu().numpy(), "adversarial": adv[i].cpu().numpy(),
                     "before": f"original: {b[2]}", "after": f"adversarial: {after_i[2]}",
                     "fooled": after_i[0] != int(y[i])})
    return plot_triptychs(rows, path, f"{method.upper()}, eps {eps:g}: original, perturbation, adversarial")


def attack_one_image(model, image, trained, method, eps, options, goal, directory: Path, name: str) -> dict:
    classes = trained.face.meta["classes"]
    x, note = read_one_image(trained, image)
    device = next(model.parameters()).device
    pixels = to_pixels(x).to(device)
    with torch.no_grad():
        before = F.softmax(model(pixels), 1)[0].cpu()
    label = torch.tensor([int(before.argmax())], device=device)
    target = None if goal is None else torch.tensor([goal], device=device)
    adv = perturb(model, pixels, label, method, eps, target=target, **options)
    with torch.no_grad():
        after = F.softmax(model(adv), 1)[0].cpu()
    b, a = caption(before, classes), caption(after, classes)
    success = a[0] == goal if goal is not None else a[0] != b[0]
    stem = Path(image).stem
    path = plot_triptychs([{"original": pixels[0].cpu().numpy(), "adversarial": adv[0].cpu().numpy(),
                            "before": f"original: {b[2]}", "after": f"adversarial: {a[2]}", "fooled": success}],
                          directory / f"attack-{name}-{stem}.png", f"{method.upper()}, eps {eps:g}")
    from ..report import save_image_grid

    adv_png = save_image_grid((adv.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy(),
                              directory / f"{stem}-adversarial.png", pad=0)
    return {"image": str(image), "note": note, "before": {"class": classes[b[0]], "probability": b[1]},
            "after": {"class": classes[a[0]], "probability": a[1]}, "success": bool(success),
            "max_change": float((adv - pixels).abs().max()), "files": {"triptych": str(path),
                                                                       "adversarial_image": str(adv_png)}}


def fooling_run(trained, target: str | int, confidence: float = 0.99, out: str | Path | None = None,
                seed: int = 0) -> dict:
    if not 0 < confidence < 1:
        raise ConfigError(f"--confidence must lie between 0 and 1. Received: {confidence}.")
    classes, meta = trained.face.meta["classes"], trained.face.meta
    goal = class_index(target, classes, "--fool")
    model = trained.face.pixel_model(trained.model).eval()
    image, reached, steps = fooling_image(model, goal, (meta["channels"], meta["image_size"], meta["image_size"]),
                                          confidence, seed=seed)
    from ..report import save_image_grid

    path = save_image_grid((image * 255).round().to(torch.uint8).cpu().numpy(),
                           output_dir(trained, out) / f"fooling-{classes[goal]}.png", pad=0, scale=4)
    return {"run": str(trained.run.path), "class": classes[goal], "confidence": reached, "asked": confidence,
            "reached": reached >= confidence, "steps": steps, "file": str(path)}


def explain_image(trained, image: str | Path, label: str | int | None = None, out: str | Path | None = None,
                  steps: int = 64) -> dict:
    from .explain import METHODS, attribute, heat, plot_explanation

    if steps < 1:
        raise ConfigError(f"--steps must be at least 1. Received: {steps}.")
    classes = trained.face.meta["classes"]
    x, note = read_one_image(trained, image)
    model = trained.face.pixel_model(trained.model).eval()
    device = next(model.parameters()).device
    pixels = to_pixels(x).to(device)
    with torch.no_grad():
        probs = F.softmax(model(pixels), 1)[0].cpu()
    predicted = int(probs.argmax())
    wanted = [predicted] + ([class_index(label, classes)] if label is not None else [])
    wanted = list(dict.fromkeys(wanted))
    rows, out_rows = [], []
    for c in wanted:
        for method, title in METHODS.items():
            attr, gap = attribute(model, pixels, c, method, steps)
            rows.append({"map": heat(attr), "method": title, "class": f"{classes[c]} ({float(probs[c]):.0%})",
                         "caption": "predicted" if c == predicted else "asked for"})
            out_rows.append({"class": classes[c], "probability": float(probs[c]), "method": method,
                             "completeness_gap": gap, "attribution_sum": float(attr.sum())})
    stem = Path(image).stem
    path = plot_explanation(x[0].numpy(), rows, output_dir(trained, out) / f"explain-{stem}.png",
                            f"Why the model says {classes[predicted]} ({float(probs[predicted]):.0%})")
    return {"run": str(trained.run.path), "image": str(image), "note": note, "predicted": classes[predicted],
            "probability": float(probs[predicted]), "attributions": out_rows, "file": str(path)}


def parse_channels(text: str | None, count: int) -> list[int]:
    """'3', '0-7' or '1,4,9' -> channel indices (default: the first 8)."""
    if text is None:
        return list(range(min(8, count)))
    picked: list[int] = []
    try:
        for part in str(text).split(","):
            lo, _, hi = part.partition("-")
            picked += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    except ValueError:
        raise ConfigError(f"--channels {text!r}: give a channel (3), a range (0-7) or a list (1,4,9).") from None
    if not picked:
        raise ConfigError(f"--channels {text!r} names no channel: a range goes from low to high, like 2-5.")
    bad = [c for c in picked if not 0 <= c < count]
    if bad:
        raise ConfigError(f"--channels {bad} out of range: that layer has {count} channels (0 to {count - 1}).")
    return picked


def visualize_run(trained, label: str | int | None = None, layer: str | None = None, channels: str | None = None,
                  out: str | Path | None = None, steps: int = 128) -> dict:
    from .features import (captured, channel_objective, class_objective, find_layer, first_layer_filters, maximise,
                           plot_images)

    if steps < 1:
        raise ConfigError(f"--steps must be at least 1. Received: {steps}.")
    meta, classes = trained.face.meta, trained.face.meta["classes"]
    shape = (meta["channels"], meta["image_size"], meta["image_size"])
    model = trained.face.pixel_model(trained.model).eval()
    module, picked = None, []
    if layer is not None:  # a wrong layer or channel fails before the work
        module = find_layer(trained.model, layer)
        with torch.no_grad(), captured(module) as seen:
            model(torch.full((1, *shape), 0.5, device=next(model.parameters()).device))
        picked = parse_channels(channels, seen[0].shape[1])
    wanted = [class_index(label, classes)] if label is not None else list(range(min(len(classes), 20)))
    directory = output_dir(trained, out)
    files, made = {}, []
    images, titles = [], []
    for c in wanted:
        img = maximise(model, shape, class_objective(c), steps=steps, seed=c)
        with torch.no_grad():
            p = float(F.softmax(model(img), 1)[0, c])
        images.append(img[0].cpu().numpy())
        titles.append(f"{classes[c]} ({p:.0%})")
        made.append({"class": classes[c], "probability": p})
    files["classes"] = str(plot_images(images, titles, directory / "visualize-classes.png",
                                       "What the network looks for in each class (its probability for the image)"))
    name, filters = first_layer_filters(trained.model, shape)
    files["filters"] = str(plot_images(list(filters), [str(i) for i in range(len(filters))],
                                       directory / "visualize-filters.png", f"First-layer filters ({name})"))
    result = {"run": str(trained.run.path), "classes": made, "filters_layer": name}
    if module is not None:
        images = [maximise(model, shape, channel_objective(module, k), steps=steps, seed=k)[0].cpu().numpy()
                  for k in picked]
        files["channels"] = str(plot_images(images, [f"channel {k}" for k in picked],
                                            directory / f"visualize-{layer}.png",
                                            f"What channels of {layer} respond to most"))
        result.update(layer=layer, channels=picked)
    result["files"] = files
    return result


def snapshots(run) -> list[tuple[str, Path]]:
    """(label, weights file) for each epoch snapshot the run kept, then the final weights."""
    folder = run.path / "snapshots"
    found = sorted(folder.glob("epoch-*.safetensors"), key=lambda p: int(p.stem.split("-")[1])) if folder.is_dir() else []
    return [(f"epoch {int(p.stem.split('-')[1])}", p) for p in found] + [("final", run.weights_file)]


def representation_run(trained, layer: str | None = None, method: str = "pca", samples: int = 1000,
                       out: str | Path | None = None) -> dict:
    from ..models import prefer_channels_last
    from .representations import hidden_activations, plot_projections, project, separability

    if samples < 10:
        raise ConfigError(f"--samples must be at least 10 for a projection. Received: {samples}.")
    x, y = trained.examples("test")
    if len(x) == 0:
        raise DataError(f"Run '{trained.run.path}' has no test images to project.")
    x, y = x[:samples], y[:samples]
    pixels, labels = to_pixels(x), y.numpy()
    panels, rows = [], []
    for title, path in snapshots(trained.run):
        net = trained.task.build_model()
        net.load_state_dict(trained.run.load_weights(path))
        net = prefer_channels_last(net.to(trained.device)).eval()
        acts = hidden_activations(trained.face.pixel_model(net), pixels, layer)
        score = separability(acts, labels)
        panels.append({"title": f"{title}: linear {score:.0%}", "points": project(acts, method)})
        rows.append({"snapshot": title, "linear_separability": score, "dimensions": int(acts.shape[1])})
    where = layer or "the last hidden layer"
    file = plot_projections(panels, labels, trained.face.meta["classes"],
                            output_dir(trained, out) / f"representations-{method}.png",
                            f"{where} on {len(x)} test images ({method.upper()}); 'linear' = accuracy of a "
                            f"linear classifier on that layer")
    return {"run": str(trained.run.path), "layer": where, "method": method, "samples": len(x), "snapshots": rows,
            "file": str(file)}


def dumps(result: dict) -> str:
    return json.dumps(result, indent=2, default=lambda o: o.tolist() if isinstance(o, np.ndarray) else str(o))
