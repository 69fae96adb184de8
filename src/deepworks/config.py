"""Typed configuration: dataclasses with defaults, loadable from YAML, overridable by flags.

A run is described by one `Config` with five small sections, whose fields (settings.py) each have a default, a
help text and, where it applies, a list of choices; the command line flags are generated from these fields, so
`--help` and the YAML format can never drift apart. This module converts and checks the values that come from
YAML, flags or the API. The fully resolved config is saved as `config.yaml` in the run directory, and
`Config.from_dict` reads it back.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .cards import learn_user_task, tasks_in_words
from .errors import ConfigError
from .settings import (DataConfig, EngineConfig, EvalConfig, ModelConfig, TrainConfig,  # noqa: F401 (callers
                       choices_of, setting)                                               # import them from here)


@dataclass
class Config:
    task: str = setting("image", f"What to learn: {tasks_in_words()}; or a task of your own, as module:Class (a "
                        "deepworks.tasks.Task subclass on your Python path).")
    name: str | None = setting(None, "Run name; the run is written to RUNS_DIR/NAME (default: derived from data and model).")
    runs_dir: str = setting("runs", "Folder that holds run directories.")
    seed: int = setting(0, "Seed for splits, initialisation, data order and dropout.")
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def check(self) -> "Config":
        """Ranges the types alone don't catch; one message per problem, naming the flag (the first problem of the
        rules in RULES' order, then the magnitudes, the layer cards and the monitor)."""
        for rules in RULES:
            for ok, rule, value in rules(self):
                if not ok:
                    raise ConfigError(f"{rule}. Received: {value}.")
        check_magnitudes(self)
        check_layers(self.model)
        if self.train.monitor is not None and not self.train.monitor.startswith("val_"):
            raise ConfigError(f"--monitor must name a validation metric such as val_accuracy or val_loss. Received: "
                              f"{self.train.monitor}.")
        return self

    @classmethod
    def from_dict(cls, values: dict, origin: str = "config") -> "Config":
        config = cls()
        apply_overrides(config, flatten(values, origin), origin)
        return config

    def save(self, path: Path) -> None:
        from .run import atomic_write_text

        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: str | Path) -> "Config":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"Config file '{path}' does not exist. Pass the path of a YAML file.")
        values = read_yaml(path) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"'{path}' must hold a mapping of settings, like 'train: {{lr: 0.01}}'.")
        return cls.from_dict(values, origin=str(path))


SECTIONS = ("data", "model", "train", "eval", "engine")
DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
MAX_NAME = 100  # characters; run.py makes the folder name from it
MAX_IMAGE_SIZE = 4096
MAX_PROCESSES = 1024  # processes of a Ray or Spark run in all, and machines of a torchrun group
PROCESS_RULE = {True: "processes on this machine: 4 per CPU core here, at least 8",
                False: "processes of the run in all"}


def max_processes(engine: str) -> int:
    """torchrun starts --nproc processes on this machine, so more than a few per core only thrash it (a request for
    a thousand would fork a thousand); Ray and Spark place them on a cluster, which bounds them itself."""
    import os

    return max(8, 4 * (os.cpu_count() or 1)) if engine == "torchrun" else MAX_PROCESSES


def split_and_size_rules(c: Config) -> list[tuple]:
    """The split fractions, the model's size and the optimizer's numbers."""
    d, m, t = c.data, c.model, c.train
    return [
        (0 <= d.val_fraction < 1, "--val-fraction must be at least 0 and below 1", d.val_fraction),
        (0 <= d.test_fraction < 1, "--test-fraction must be at least 0 and below 1", d.test_fraction),
        (d.val_fraction + d.test_fraction < 1, "--val-fraction plus --test-fraction must stay below 1",
         d.val_fraction + d.test_fraction),
        (d.image_size is None or d.image_size >= 1, "--image-size must be a positive number of pixels", d.image_size),
        (0 <= m.dropout < 1, "--dropout must be at least 0 and below 1", m.dropout),
        (m.depth is None or m.depth >= 0, "--depth cannot be negative", m.depth),
        (m.width is None or m.width >= 1, "--width must be at least 1", m.width),
        (t.epochs is None or t.epochs >= 1, "--epochs must be at least 1", t.epochs),
        (t.batch_size is None or t.batch_size >= 1, "--batch-size must be at least 1", t.batch_size),
        (t.lr is None or t.lr > 0, "--lr must be above 0", t.lr),
        (t.lr_d is None or t.lr_d > 0, "--lr-d must be above 0", t.lr_d),
        (t.weight_decay is None or t.weight_decay >= 0, "--weight-decay cannot be negative", t.weight_decay),
        (t.clip_grad is None or t.clip_grad >= 0, "--clip-grad cannot be negative (0 turns it off)", t.clip_grad),
    ]


def sequence_rules(c: Config) -> list[tuple]:
    """Text's and translation's lengths, vocabulary, decoding and model."""
    d, m, t, e = c.data, c.model, c.train, c.eval
    return [
        (d.seq_len >= 1, "--seq-len must be at least 1", d.seq_len),
        (d.max_len is None or d.max_len >= 1, "--max-len must be at least 1", d.max_len),
        (d.min_freq >= 1, "--min-freq must be at least 1", d.min_freq),
        (d.vocab_size >= 8, "--vocab-size must be at least 8", d.vocab_size),
        (0 <= t.teacher_forcing <= 1, "--teacher-forcing must be between 0 and 1", t.teacher_forcing),
        (e.beam >= 1, "--beam must be at least 1", e.beam),
        (m.heads >= 1, "--heads must be at least 1", m.heads),
        (m.embed_size is None or m.embed_size >= 1, "--embed-size must be at least 1", m.embed_size),
    ]


def training_rules(c: Config) -> list[tuple]:
    """Early stopping, top-k, label smoothing, the GAN's and adversarial training's numbers, momentum."""
    m, t, e = c.model, c.train, c.eval
    return [
        (t.patience is None or t.patience >= 0, "--patience cannot be negative", t.patience),
        (e.top_k >= 1, "--top-k must be at least 1", e.top_k),
        (t.label_smoothing is None or 0 <= t.label_smoothing < 1, "--label-smoothing must be at least 0 and below 1",
         t.label_smoothing),
        (t.critic_steps is None or t.critic_steps >= 1, "--critic-steps must be at least 1", t.critic_steps),
        (t.ema is None or 0 <= t.ema < 1, "--ema must be at least 0 and below 1", t.ema),
        (t.gp_weight >= 0, "--gp-weight cannot be negative", t.gp_weight),
        (0 <= t.eps <= 1, "--eps must lie in the pixel range 0 to 1", t.eps),
        (t.attack_steps >= 1, "--attack-steps must be at least 1", t.attack_steps),
        (e.robust_samples >= 1, "--robust-samples must be at least 1", e.robust_samples),
        (e.robust_steps is None or e.robust_steps >= 1, "--robust-steps must be at least 1", e.robust_steps),
        (m.latent_size >= 1, "--latent-size must be at least 1", m.latent_size),
        (e.fid_samples >= 2, "--fid-samples must be at least 2", e.fid_samples),
        (0 < e.far < 1, "--far must lie above 0 and below 1", e.far),
        (12 <= e.min_face <= 10_000, "--min-face must be from 12 to 10,000 pixels", e.min_face),
        (t.momentum is None or 0 <= t.momentum < 1, "--momentum (beta1 for adam and adamw) must be at least 0 and "
         "below 1", t.momentum),
    ]


def engine_rules(c: Config) -> list[tuple]:
    """The processes and machines of a run, and their rendezvous."""
    g = c.engine
    return [
        (g.nproc >= 1, "--nproc must be at least 1", g.nproc),
        (g.nproc <= max_processes(g.name), f"--nproc must be at most {max_processes(g.name):,} "
         f"({PROCESS_RULE[g.name == 'torchrun']})", g.nproc),
        (1 <= g.nnodes <= MAX_PROCESSES, f"--nnodes must be from 1 to {MAX_PROCESSES:,}", g.nnodes),
        (0 <= g.node_rank < g.nnodes, "--node-rank must be from 0 to --nnodes minus 1", g.node_rank),
        (g.master_port is None or 1 <= g.master_port <= 65535, "--master-port must be a port number from 1 to 65535",
         g.master_port),
        (0 <= g.max_restarts <= 100, "--max-restarts must be from 0 to 100", g.max_restarts),
    ]


def limit_rules(c: Config) -> list[tuple]:
    """Bounds that keep a run within the machine: workers, memory, seed, device, the run's name, the largest sizes,
    and the step schedule's numbers."""
    d, t = c.data, c.train
    return [
        (d.workers is None or d.workers >= 0, "--workers cannot be negative (0 decodes in the training process)",
         d.workers),
        (d.memory_budget > 0, "--memory-budget must be above 0 GB", d.memory_budget),
        (0 <= c.seed < 2 ** 32, "--seed must be a whole number from 0 to 4294967295 (2**32 - 1)", c.seed),
        (DEVICE.fullmatch(t.device) is not None, "--device must be auto, cpu, cuda, cuda:N or mps", repr(t.device)),
        (c.name is None or len(c.name) <= MAX_NAME, f"--name must be at most {MAX_NAME} characters long",
         f"{len(c.name or '')} characters"),
        (d.image_size is None or d.image_size <= MAX_IMAGE_SIZE, f"--image-size must be at most {MAX_IMAGE_SIZE} "
         f"pixels", d.image_size),
        (t.gamma > 0, "--gamma must be above 0", t.gamma),
        (t.step_epochs >= 1, "--step-epochs must be at least 1", t.step_epochs),
        (d.max_len is None or d.max_len <= 10_000, "--max-len must be at most 10,000 words or tokens", d.max_len),
        (d.seq_len <= 100_000, "--seq-len must be at most 100,000 characters", d.seq_len),
        (0 < d.noise_sigma <= 100, "--noise-sigma must be above 0 and at most 100 grey levels", d.noise_sigma),
        (0 < t.style_weight <= 10_000, "--style-weight must be above 0 and at most 10,000", t.style_weight),
    ]


def check_layers(m: ModelConfig) -> None:
    """--model layers and its cards come together: the cards are checked, and written in full into config.yaml."""
    if m.layers is not None:
        from .models.stack import normalise

        m.layers = normalise(m.layers)
        if m.name not in (None, "layers"):
            raise ConfigError(f"model.layers describes a designed model, but --model is {m.name}. Use --model "
                              f"layers, or drop the layers.")
    elif m.name == "layers":
        raise ConfigError("--model layers needs its cards: model.layers in a --config YAML file, or --layers "
                          "FILE (a YAML list such as [{type: conv, channels: 6, kernel: 5}, {type: activation}]).")


RULES = (split_and_size_rules, sequence_rules, training_rules, engine_rules, limit_rules)  # checked in this order


MAX_CONFIG_BYTES = 1_000_000  # a settings file is a few KB; a megabyte is not one
MAX_ALIASES = 20  # YAML aliases (*name) in a settings file: a few are handy, thousands are an expansion bomb


class BoundedLoader(yaml.SafeLoader):
    """yaml.safe_load that refuses more than MAX_ALIASES aliases: a few hundred bytes of nested aliases ("billion
    laughs") expand to gigabytes as soon as anything walks the tree."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.aliases = getattr(self, "aliases", 0) + 1
            if self.aliases > MAX_ALIASES:
                raise yaml.YAMLError(f"more than {MAX_ALIASES} aliases (*name): refused, since nested aliases expand "
                                     f"without bound")
        return super().compose_node(parent, index)


def read_yaml(path: Path) -> Any:
    """A YAML file's values: UTF-8 (or UTF-16 with its byte-order mark), small, safe, with few aliases."""
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"'{path}' is {path.stat().st_size:,} bytes: too big for a settings file (at most "
                          f"{MAX_CONFIG_BYTES:,}). Pass a YAML file of settings, like a run's config.yaml.")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-16") if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigError(f"'{path}' is not UTF-8 text (byte {err.start:,} is 0x{raw[err.start]:02x}). Save it as a "
                          f"UTF-8 YAML file.") from None
    try:
        return yaml.load(text, Loader=BoundedLoader)
    except yaml.YAMLError as err:
        raise ConfigError(f"'{path}' is not valid YAML: {err}") from None


COMMAND_LINE = "the command line"


MOST = {"train.epochs": 100_000, "seed": 2 ** 32 - 1}  # the largest sensible value of these settings
MOST_ANY = 10 ** 9  # of any other whole number: more is a typo that would run for ever or overflow


def check_magnitudes(config: "Config") -> None:
    """Every number finite, and no whole number beyond MOST (or MOST_ANY): a UI job or a config file may carry
    epochs: 10**30 or lr: .inf, which the ranges above let through."""
    for key, (_, f, _) in fields_by_key().items():
        value = value_of(config, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{flag_names(f)[0]} must be a finite number. Received: {value}.")
        most = MOST.get(key, MOST_ANY)
        if isinstance(value, int) and abs(value) > most:
            raise ConfigError(f"{flag_names(f)[0]} must be at most {most:,}. Received: {value:,}.")


def flag_names(f: dataclasses.Field) -> tuple[str, ...]:
    """The command-line flags of a setting: its own ('--batch-size' for batch_size), or those its field names."""
    flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
    return (flag,) if isinstance(flag, str) else flag


def label(key: str, origin: str) -> str:
    """How a message names a setting: its flag when it came from the command line, else its key and where."""
    if origin == COMMAND_LINE:
        return flag_names(fields_by_key()[key][1])[0]
    return f"Setting '{key}' in {origin}"


def holder_of(config: Config, key: str) -> tuple[Any, str]:
    """(the object that holds a setting, its attribute name) for a key ('train.lr' -> config.train, 'lr')."""
    section, _, name = key.rpartition(".")
    return (getattr(config, section) if section else config), name


def value_of(config: Config, key: str) -> Any:
    """A setting's value by its key ('train.lr', 'seed')."""
    return getattr(*holder_of(config, key))


def set_values(config: Config, values: dict[str, Any]) -> None:
    """Set settings by their keys ('train.lr': 0.1)."""
    for key, value in values.items():
        setattr(*holder_of(config, key), value)


def fill_defaults(config: Config, defaults: dict[str, Any]) -> Config:
    """Give the settings left unset (None) the task's defaults, e.g. {'model.name': 'lstm', 'train.clip_grad': 1.0}."""
    known = fields_by_key()
    for key, value in defaults.items():
        section, f, _ = known[key]
        holder = getattr(config, section) if section else config
        if getattr(holder, f.name) is None:
            setattr(holder, f.name, value)
    return config


def fields_by_key() -> dict[str, tuple[str | None, dataclasses.Field, Any]]:
    """Every setting as 'section.name' (or 'name' at the top) -> (section, field, type)."""
    out = {}
    top_hints = typing.get_type_hints(Config)
    for f in dataclasses.fields(Config):
        if f.name in SECTIONS:
            section_cls = top_hints[f.name]
            hints = typing.get_type_hints(section_cls)
            for sf in dataclasses.fields(section_cls):
                out[f"{f.name}.{sf.name}"] = (f.name, sf, hints[sf.name])
        else:
            out[f.name] = (None, f, top_hints[f.name])
    return out


def named_paths(cfg: Config) -> dict[str, Any]:
    """The values of the settings that may name a file or folder (path=True in settings.py), by their flag (--data,
    --init-from, ...): what a server that reads only some folders must check before a job starts."""
    found = {}
    for section, f, _ in fields_by_key().values():
        if f.metadata.get("path"):
            flag = f.metadata.get("flag") or f"--{f.name.replace('_', '-')}"
            found[flag if isinstance(flag, str) else flag[0]] = getattr(getattr(cfg, section) if section else cfg,
                                                                        f.name)
    return found


def flatten(values: dict, origin: str) -> dict[str, Any]:
    flat = {}
    for key, value in values.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"In {origin}: '{key}' must be a mapping of settings, got {value!r}.")
            for sub, v in value.items():
                flat[f"{key}.{sub}"] = v
        else:
            flat[key] = value
    return flat


def apply_overrides(config: Config, overrides: dict[str, Any], origin: str = "command line") -> Config:
    """Set 'section.name' keys on `config`, converting and checking each value."""
    known = fields_by_key()
    task = overrides.get("task")
    if isinstance(task, str) and ":" in task:  # a task of your own (module:Class): imported first, so that its
        learn_user_task(task)                  # models are choices of --model
    for key, value in overrides.items():
        if key not in known:
            raise ConfigError(f"Unknown setting '{key}' in {origin}.{close_match(key, known)}")
        section, f, typ = known[key]
        choices = choices_of(f)
        value = convert(value, typ, key, origin, choices)
        if choices and value is not None and value not in choices:  # None: left to the task
            raise ConfigError(f"{label(key, origin)} must be one of {', '.join(str(c) for c in choices if c is not None)}"
                              f". Received: {value!r}.")
        setattr(getattr(config, section) if section else config, f.name, value)
    return config


def close_match(key: str, known) -> str:
    """' Did you mean ...?' for a misspelt setting, by its own name or its full key."""
    import difflib

    names = {k.split(".")[-1]: k for k in known}
    own = key.split(".")[-1]
    close = [own] if own in names else difflib.get_close_matches(own, list(names), n=2, cutoff=0.6)
    if close:
        return " Did you mean " + " or ".join(f"'{names[c]}'" for c in close) + "?"
    return f" See a run's config.yaml, or `deepworks train --help`, for the {len(known)} settings."


def layer_list(value: Any, key: str, origin: str) -> list:
    """A list setting (model.layers): a list from YAML, or from the command line the path of a YAML file holding
    the list (or a mapping with it under 'layers', or a whole config), or the list written inline."""
    if isinstance(value, str):
        path = Path(value)
        if value.endswith((".yaml", ".yml")) and not path.is_file():
            raise ConfigError(f"{label(key, origin)}: no such file '{value}'. Expected a YAML file with a list of "
                              f"layer cards.")
        value = read_yaml(path) if path.is_file() else yaml.load(value, Loader=BoundedLoader)
        if isinstance(value, dict):
            value = (value.get("model") or {}).get("layers") if "model" in value else value.get("layers")
    if not isinstance(value, list):
        raise ConfigError(f"{label(key, origin)} expects a list of layer cards. Received: {value!r:.200}.")
    return value


def convert(value: Any, typ: Any, key: str, origin: str, choices: tuple = ()) -> Any:
    """Convert a YAML or command-line value to the field's type (int, float, str, bool, or optional). 'none' or
    'null' leaves an optional setting unset, unless 'none' is one of its choices (--augment none)."""
    args = typing.get_args(typ)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), typ) if args else typ
    unset = isinstance(value, str) and value.lower() in ("none", "null", "") and value not in choices
    if value is None or (optional and unset):
        if optional:
            return None
        raise ConfigError(f"{label(key, origin)} needs a value.")
    if base is list:
        return layer_list(value, key, origin)
    if not isinstance(value, (str, numbers.Number)):  # a list, a mapping, an array: never a setting's value
        raise ConfigError(f"{label(key, origin)} expects a single {getattr(base, '__name__', base)}. Received: a "
                          f"{type(value).__name__}.")
    try:
        if base is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "yes", "1", "on"):
                return True
            if str(value).lower() in ("false", "no", "0", "off"):
                return False
            raise ValueError
        if base in (int, float) and isinstance(value, bool):
            raise ValueError  # true is a number to Python (1), never to a person setting --epochs
        if base is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if base is float:
            number = float(value)
            if not math.isfinite(number):
                raise ConfigError(f"{label(key, origin)} must be a finite number. Received: {value!r}.")
            return number
        return str(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(
            f"{label(key, origin)} expects {getattr(base, '__name__', base)}. Received: {value!r}."
        ) from None
