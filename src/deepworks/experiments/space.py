"""The AutoML search space: the settings a search varies (`Dimension`), read from the mapping the module
deepworks.experiments.search describes (`parse_space`, `read_space`) over the task card's default (`default_space`)
and checked key by key; and the points a search starts from: deepworks' own settings for the data
(`starting_point`) and the card's known-good ones (`portfolio_point`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Config, apply_overrides, close_match, fields_by_key, value_of
from ..errors import ConfigError

# Known-good settings per task (its card's `portfolio`) are tried right after deepworks' defaults (auto-sklearn
# warm-starts from such a portfolio): a budget of minutes finishes a handful of trials, too few for TPE to find alone a
# ResNet that needs a third of it. On Fashion-MNIST's 10 minutes TPE without it finished 7 trials, all LeNets, best
# 91.4 %.
PORTFOLIO_SHARE = 0.4  # of the budget, for the portfolio's trial, under search.TRIAL_SHARE: at 0.35 its 11 epochs on
# Fashion-MNIST gave 92.3 %, a point under the same model trained the whole 10 minutes (93.3 %)
PORTFOLIO_IMAGES_PER_S = 3000  # a ResNet-8 of width 16 on 28 x 28 images, 2 cores (epochs of Fashion-MNIST: 20 s)


def setting_of(key) -> str:
    """The setting a search key names: 'model.width@resnet' -> 'model.width'."""
    return str(key).split("@")[0]


@dataclass
class Dimension:
    """One setting the search varies: one of `choices`, or a number between `low` and `high`; only when the
    settings chosen before it match `when`."""
    key: str  # the setting, with an optional '@label' when one setting has several dimensions (model.width@resnet)
    choices: list | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    when: dict = field(default_factory=dict)

    @property
    def setting(self) -> str:
        return setting_of(self.key)

    def accepts(self, value) -> bool:
        if self.choices is not None:
            return value in self.choices
        return isinstance(value, (int, float)) and not isinstance(value, bool) and self.low <= value <= self.high

    def applies(self, chosen: dict) -> bool:
        return all(chosen.get(k) in (v if isinstance(v, list) else [v]) for k, v in self.when.items())

    def suggest(self, trial) -> Any:
        if self.choices is not None:
            return trial.suggest_categorical(self.key, self.choices)
        if self.integer:
            return trial.suggest_int(self.key, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, log=self.log)


def default_space(task: str, photos: bool = False, pretrained: bool = False, examples: int = 0) -> dict:
    """What is tried when the user says nothing: the space the task's card declares (cards.py), in ranges that suit
    the task on a CPU; a task whose card declares none is refused with those that have one."""
    from ..cards import card_names, card_of
    from ..registry import get_card

    space = get_card(task).search_space
    if space is None:
        searchable = [n for n in card_names() if card_of(n).search_space is not None]
        raise ConfigError(f"AutoML searches --task {', '.join(searchable)}: their cards declare a search space. "
                          f"Received: --task {task}.")
    return space(examples, photos, pretrained)


def parse_space(raw: dict, origin: str, given: dict | None = None) -> tuple[list[Dimension], dict]:
    """(the dimensions, the fixed settings) of a space written as the module
    deepworks.experiments.search describes; every key, choice and
    range checked, with the fix. `given`: settings the command fixes, which conditions may name too."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin} must map setting keys (train.lr, model.name, ...) to what may be tried. "
                          f"Received: {type(raw).__name__}.")
    known = fields_by_key()
    dims, fixed = [], {}
    for key, value in raw.items():
        setting = setting_of(key)
        if setting not in known:
            raise ConfigError(f"Unknown search key '{key}' in {origin}.{close_match(setting, known)}")
        if isinstance(value, dict) and "choices" not in value and "low" not in value and "high" not in value:
            raise ConfigError(f"'{key}' in {origin}: expected a list of choices, a range {{low: ..., high: ...}} or "
                              f"one value. Received: {value!r}.")
        if not isinstance(value, (list, dict)):
            check_value(setting, value, origin)
            fixed[setting] = value
            continue
        spec = {"choices": value} if isinstance(value, list) else dict(value)
        when = spec.pop("when", None) or {}
        unknown = set(spec) - {"choices", "low", "high", "log", "int"}
        if unknown:
            raise ConfigError(f"'{key}' in {origin}: unknown field {', '.join(sorted(unknown))}. Expected choices, or "
                              f"low and high (with log or int), and when.")
        dims.append(dimension(key, spec, when, origin))
    return in_order(dims, {**(given or {}), **fixed}, origin), fixed


def in_order(dims: list[Dimension], fixed: dict, origin: str) -> list[Dimension]:
    """The dimensions with each one after those its `when` depends on (YAML files may sort their keys)."""
    done, ordered, waiting = set(fixed), [], list(dims)
    while waiting:
        ready = [d for d in waiting if set(d.when) <= done]
        if not ready:
            d = waiting[0]
            other = next(k for k in d.when if k not in done)
            raise ConfigError(f"'{d.key}' in {origin} is tried when '{other}' has some value, but '{other}' is not "
                              f"searched. Add '{other}' to the space as a list of choices.")
        for d in ready:
            ordered.append(d)
            done.add(d.setting)
            waiting.remove(d)
    return ordered


def dimension(key: str, spec: dict, when: dict, origin: str) -> Dimension:
    setting = setting_of(key)
    if "choices" in spec:
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"'{key}' in {origin}: expected at least one choice. Received: {choices!r}.")
        for c in choices:
            check_value(setting, c, origin)
        return Dimension(key, choices=list(choices), when=when)
    low, high = spec.get("low"), spec.get("high")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
        raise ConfigError(f"'{key}' in {origin}: a range needs numbers low and high. Received: low {low!r}, high "
                          f"{high!r}.")
    if not low < high:
        raise ConfigError(f"'{key}' in {origin}: the range is empty; expected low < high. Received: low {low}, high "
                          f"{high}. For one value, write it alone ({key}: {low}).")
    log = bool(spec.get("log", False))
    if log and low <= 0:
        raise ConfigError(f"'{key}' in {origin}: a log range needs low > 0. Received: low {low}.")
    integer = bool(spec.get("int", False)) or fields_by_key()[setting][2] in (int, int | None)
    for v in (low, high):
        check_value(setting, int(v) if integer else v, origin)
    return Dimension(key, low=low, high=high, log=log, integer=integer, when=when)


def check_value(key: str, value: Any, origin: str) -> None:
    apply_overrides(Config(), {key: value}, origin)


def read_space(path: str | Path | None) -> dict:
    if path is None:
        return {}
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"--space: cannot read '{path}' ({err.strerror or err}).") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"--space: '{path}' is not valid YAML: {str(err).splitlines()[0]}.") from None
    return raw or {}


# --- where a search starts ------------------------------------------------------------------------------------
def starting_point(cfg: Config, dims: list[Dimension], fixed: dict) -> dict:
    """The settings deepworks itself picks for this data (what `deepworks train` alone would train), as far as the
    space holds them: the search's first trial, so that it starts from a known-good point, not from a random one."""
    chosen, start = dict(fixed), {}
    for d in dims:
        value = value_of(cfg, d.setting)
        if d.applies(chosen) and d.accepts(value):
            chosen[d.setting] = start[d.key] = value
    return start


def first_trials(start: dict, known: dict, warm_start: bool = True) -> list[tuple[dict, str]]:
    """(settings, note) of the trials a search begins with: deepworks' defaults for the data, then its known-good
    settings for the task when they differ; none without a warm start (every trial from the sampler)."""
    if not warm_start:
        return []
    trials = [(start, "deepworks' defaults for this data")] if start else []
    if known and known != start:
        trials.append((known, "deepworks' known-good settings for this task"))
    return trials


def portfolio_point(task: str, dims: list[Dimension], fixed: dict, budget_s: float, pixels: float) -> dict:
    """The task card's portfolio settings as far as the space holds them, with as many epochs as PORTFOLIO_SHARE of the
    budget allows at PORTFOLIO_IMAGES_PER_S (scaled by the images' size); {} when the task has none, or when the
    space or the command rules out its model."""
    from ..registry import get_card

    known = dict(get_card(task).portfolio)
    if not known:
        return {}
    epoch_s = pixels / (28 * 28) / PORTFOLIO_IMAGES_PER_S
    known["train.epochs"] = int(budget_s * PORTFOLIO_SHARE / max(epoch_s, 1e-9))
    chosen, point = dict(fixed), {}
    for d in dims:
        value = known.get(d.key)
        if d.setting == "train.epochs" and value is not None and d.choices is None:
            value = int(min(max(value, d.low), d.high))
        if value is not None and d.applies(chosen) and d.accepts(value):
            chosen[d.setting] = point[d.key] = value
    return point if chosen.get("model.name") == known["model.name"] else {}  # not its model: no known-good point


def data_pixels(data) -> float:
    """Pixels per training image, 28 x 28 for data that is not images (the portfolio's unit)."""
    size = data.meta.get("image_size")
    return float(size * size) if isinstance(size, int) else 28.0 * 28.0


