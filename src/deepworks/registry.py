"""The one list of tasks that config choices, the CLI and the API all read. A task module joins with one line here;
a task of your own joins without editing deepworks: `dw.register_task(MyTask)` in Python, or `--task
package.module:MyTask` on the command line (the module is imported from your Python path, as uvicorn and gunicorn
import `module:app`). This module imports nothing heavy, so `--help` stays fast."""

from __future__ import annotations

import importlib

from .errors import ConfigError

# name: (where the class is, the models it trains: the task's `models`, read here without importing it, so that
# --model's choices cost nothing)
BUILTIN = {
    "image": ("deepworks.tasks.image:ImageClassification", ("mlp", "lenet", "resnet", "resnet18", "efficientnet_lite0", "layers")),
    "text": ("deepworks.tasks.text:TextGeneration", ("rnn", "lstm", "gru", "layers")),
    "translate": ("deepworks.tasks.translate:Translation", ("gru", "lstm", "transformer")),
    "gan": ("deepworks.tasks.gan:GanTraining", ("dcgan",)),
    "detect": ("deepworks.tasks.detect:ObjectDetection", ("centernet", "centernet_lite0")),
    "audio": ("deepworks.tasks.audio:AudioClassification", ("cnn1d", "gru", "lstm", "lenet", "resnet",
                                                             "efficientnet_lite0")),
}
# name: what it learns, in words, for --task's help (a task missing here is listed by its name alone)
IN_WORDS = {"image": "image classification", "text": "character-level text generation", "translate": "translation",
            "gan": "making new images", "detect": "object detection", "audio": "sound classification"}
REGISTERED: dict[str, type] = {}  # tasks registered in this process (their own and imported module:Class ones)


def did_you_mean(word: str, options) -> str:
    """' Did you mean 'x'?' when one of `options` is close to `word`, else ''."""
    import difflib

    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def builtin_models(name: str) -> tuple[str, ...]:
    """A built-in task's models, for its class's `models` (one list, here)."""
    return BUILTIN[name][1]


def task_names() -> list[str]:
    return list(BUILTIN) + [n for n in REGISTERED if n not in BUILTIN]


def tasks_in_words() -> str:
    """Every built-in task as 'what it learns (name)', joined for a sentence: --task's help, built from this registry
    so that it cannot forget a task."""
    words = [f"{IN_WORDS.get(name, name)} ({name})" for name in BUILTIN]
    return ", ".join(words[:-1]) + f", or {words[-1]}" if len(words) > 1 else words[0]


def model_names() -> tuple[str, ...]:
    """Every model any known task trains: the choices of --model."""
    names = [m for _, models in BUILTIN.values() for m in models]
    names += [m for cls in REGISTERED.values() for m in getattr(cls, "models", ())]
    return tuple(dict.fromkeys(names))


def register(cls: type) -> type:
    """Make a Task subclass trainable by its `name` (usable as a class decorator)."""
    name = getattr(cls, "name", "")
    if not name or not isinstance(name, str):
        raise ConfigError(f"{cls.__name__} needs a `name` (a short string such as 'sine') to be registered.")
    if name in BUILTIN and not cls.__module__.startswith("deepworks."):
        raise ConfigError(f"The task name '{name}' is taken by a built-in task; give {cls.__name__} another `name`.")
    REGISTERED[name] = cls
    return cls


def import_class(spec: str) -> type:
    module, _, attr = spec.partition(":")
    try:
        found = getattr(importlib.import_module(module), attr)
    except ImportError as err:
        raise ConfigError(f"--task {spec}: cannot import '{module}' ({err}). Expected module:Class with the module on "
                          f"the Python path (PYTHONPATH), for example --task mytasks:SineRegression.") from None
    except AttributeError:
        raise ConfigError(f"--task {spec}: '{module}' has no '{attr}'. Expected module:Class.") from None
    from .tasks import Task

    if not (isinstance(found, type) and issubclass(found, Task)):
        raise ConfigError(f"--task {spec}: {attr} is not a subclass of deepworks.tasks.Task.")
    return found


def get_task(name: str) -> type:
    """The task class for a name: a built-in, one registered in this process, or module:Class."""
    if name in REGISTERED:
        return REGISTERED[name]
    if name in BUILTIN:
        cls = import_class(BUILTIN[name][0])
        REGISTERED[name] = cls
        return cls
    if isinstance(name, str) and ":" in name:
        cls = import_class(name)
        REGISTERED.setdefault(name, cls)
        REGISTERED.setdefault(cls.name, cls)
        return cls
    raise ConfigError(f"Unknown task '{name}'.{did_you_mean(str(name), task_names())} Choose one of: {', '.join(task_names())}, or a task of your own "
                      f"as module:Class.")
