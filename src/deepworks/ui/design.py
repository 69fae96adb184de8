"""The Model page's designer: a stack of layer cards checked against the data's input, with each card's output
shape and parameters, and the YAML a run saves. The input and the design are bounded (no request plans a
10^9 x 10^9 image or a model of 10^19 parameters)."""

from __future__ import annotations

import math

from ..config import MAX_IMAGE_SIZE
from ..serving.requests import ClientError

MAX_CHANNELS = 64  # of a designed model's input image
MAX_CLASSES = 100_000  # classes, or characters of a text vocabulary
MAX_PARAMETERS = 200_000_000  # of a designed model: more does not train on one machine from the page


def designed_input(task_name: str, data: str | None, data_dir: str | None,
                   image_size: int | None = None) -> tuple[list, int]:
    """([channels, height, width], classes) of what a designed model (`--model layers`) trains on with this data.
    Its image size is `image_size` (the Model page's), else the one the Data page shows: the size the data's
    default model trains at (28 for the 8x8 digits, which LeNet needs), so that a design checked here is the one
    the job trains (sized_job gives the job this size)."""
    from ..api import make_config
    from ..models.stack import TOKENS
    from ..registry import get_task

    sized = {"model": "layers", "image_size": checked_size(image_size)} if image_size is not None else {}
    cfg = make_config(task=task_name, data=data, audit=False, **sized, **({"data_dir": data_dir} if data_dir else {}))
    task = get_task(cfg.task)(cfg)
    meta = task.prepare(progress=False).meta
    if "vocab" in meta:  # text: characters in, a score for each character of the vocabulary out, at every position
        return list(TOKENS), len(meta["vocab"])
    if "image_size" not in meta:
        raise ClientError(400, f"The designer builds image and text models. Received: a {cfg.task} task.")
    return [meta["channels"], meta["image_size"], meta["image_size"]], len(meta["classes"])


def checked_size(image_size) -> int:
    if not whole(image_size, 1, MAX_IMAGE_SIZE):
        raise ClientError(400, f"Expected an image size from 1 to {MAX_IMAGE_SIZE} pixels (as --image-size). "
                               f"Received: {str(image_size)[:40]}.")
    return image_size


def sized_job(settings: dict, input_for) -> dict:
    """A job's model is checked against its images before any process starts: a template against the size asked
    (LeNet needs 28 px: the command line's words), a design of cards (--model layers) as the designer checks it;
    a design trains at the size it was checked at (the designer's default when the settings give none).
    `input_for(task, data, data_dir, image_size)` is designed_input, cached."""
    from ..api import make_config
    from ..registry import get_card, get_task

    cfg = make_config(**settings)
    get_task(cfg.task)(cfg).check_before_data()  # a size below what the model needs, as the command line refuses it
    card = get_card(cfg.task)
    designed = cfg.model.name == "layers" or (cfg.model.name is None and cfg.model.layers)
    if not designed or not isinstance(cfg.model.layers, list) or "layers" not in card.models:
        return settings  # a template, or a design in a file: the worker checks it as the command line does
    shape, classes = input_for(cfg.task, cfg.data.source, cfg.data.data_dir, cfg.data.image_size)
    check_design({"layers": cfg.model.layers, "input": shape, "classes": classes})
    if card.inputs[:1] == ("image",) and cfg.data.image_size is None:
        settings = {**settings, "data.image_size": shape[1]}
    return settings


def check_design(body: dict) -> dict:
    """The designer's answer for a stack of cards: complete cards, the YAML a run saves, each card's output shape
    and parameters, or the first problem with its fix (HTTP 400, the same words as the command line's)."""
    import yaml

    from ..models.stack import normalise, plan

    shape, classes = checked_input(body.get("input") or [1, 28, 28], body.get("classes") or 10)
    layers = normalise(design_from_yaml(body["yaml"]) if "yaml" in body else body.get("layers"))
    rows = plan(layers, tuple(shape), classes)
    check_parameters(rows)
    text = yaml.safe_dump({"model": {"name": "layers", "layers": layers}}, sort_keys=False, default_flow_style=None)
    return {"layers": layers, "yaml": text, "plan": rows, "parameters": sum(r["parameters"] for r in rows),
            "input": shape, "classes": classes}


def whole(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def checked_input(shape, classes) -> tuple[list, int]:
    """[channels, height, width] within the bounds a run has (--image-size at most MAX_IMAGE_SIZE), or ["T"] for
    text; classes a whole number."""
    text = shape == ["T"]
    image = (isinstance(shape, list) and len(shape) == 3 and whole(shape[0], 1, MAX_CHANNELS)
             and all(whole(s, 1, MAX_IMAGE_SIZE) for s in shape[1:]))
    if not (text or image) or not whole(classes, 1, MAX_CLASSES):
        raise ClientError(400, f"Expected input as [channels, height, width] (or [\"T\"] for text), with channels "
                               f"from 1 to {MAX_CHANNELS} and height and width from 1 to {MAX_IMAGE_SIZE} pixels (as "
                               f"--image-size), and classes from 1 to {MAX_CLASSES:,}. Received: input "
                               f"{str(shape)[:80]}, classes {str(classes)[:40]}.")
    return shape, classes


def check_parameters(rows: list[dict]) -> None:
    total = sum(r["parameters"] for r in rows)
    if total > MAX_PARAMETERS:
        largest = max(rows, key=lambda r: r["parameters"])
        raise ClientError(400, f"Expected a design of at most {MAX_PARAMETERS:,} parameters. Received: {total:,}, "
                               f"{math.floor(100 * largest['parameters'] / total)}% of them in card {largest['card']} "
                               f"({largest['type']}): make it narrower, or pool before it.")


def design_from_yaml(text) -> list:
    """The cards of a design pasted as YAML: a run's config (model: {layers: [...]}) or the list alone."""
    import yaml

    from ..config import MAX_CONFIG_BYTES, BoundedLoader

    if isinstance(text, str) and len(text) > MAX_CONFIG_BYTES:
        raise ClientError(413, f"Expected a design of at most {MAX_CONFIG_BYTES:,} characters of YAML. Received: "
                               f"{len(text):,}.")
    try:  # with the config files' bound on aliases: nested ones expand to gigabytes ("billion laughs")
        value = yaml.load(text, Loader=BoundedLoader) if isinstance(text, str) else None
    except yaml.YAMLError as err:
        raise ClientError(400, f"Expected YAML. Received text that does not parse: {str(err).splitlines()[0]}.") from None
    if isinstance(value, dict):
        value = (value.get("model") or {}).get("layers") if isinstance(value.get("model"), dict) else value.get("layers")
    if not isinstance(value, list):
        raise ClientError(400, "Expected a list of layer cards, or a run's config with model: {layers: [...]}. "
                               f"Received: {type(value).__name__}.")
    return value
