"""From a task's name to its class. The cards (cards.py) say what each task is; this module imports the class when
something trains or uses a model of it. A task of your own joins without editing deepworks: `dw.register_task(MyTask)`
in Python, or `--task package.module:MyTask` on the command line (the module is imported from your Python path, as
uvicorn and gunicorn import `module:app`). Nothing heavy is imported here, so `--help` stays fast."""

from __future__ import annotations

from .cards import (BUILTIN_CARDS, USER_CARDS, TaskCard, card_names, card_of, import_user_class, model_names,  # noqa: F401
                    remember, tasks_in_words)
from .errors import ConfigError, did_you_mean

REGISTERED: dict[str, type] = {}  # task classes imported or registered in this process, by name


def builtin_models(name: str) -> tuple[str, ...]:
    """A built-in task's models, for its class's `models` (one list: its card's)."""
    return BUILTIN_CARDS[name].models


def builtin_defaults(name: str) -> dict:
    """A built-in task's own defaults, for its class's `defaults` (one place: its card's, which --help shows)."""
    return dict(BUILTIN_CARDS[name].defaults)


def task_names() -> list[str]:
    return card_names()


def register(cls: type) -> type:
    """Make a Task subclass trainable by its `name` (usable as a class decorator)."""
    name = getattr(cls, "name", "")
    if not name or not isinstance(name, str):
        raise ConfigError(f"{cls.__name__} needs a `name` (a short string such as 'sine') to be registered.")
    if name in BUILTIN_CARDS and not cls.__module__.startswith("deepworks."):
        raise ConfigError(f"The task name '{name}' is taken by a built-in task; give {cls.__name__} another `name`.")
    REGISTERED[name] = cls
    if name not in BUILTIN_CARDS:
        remember(cls)
    return cls


def import_class(spec: str) -> type:
    found = import_user_class(spec)
    from .tasks.base import Task

    if not (isinstance(found, type) and issubclass(found, Task)):
        raise ConfigError(f"--task {spec}: {spec.partition(':')[2]} is not a subclass of deepworks.tasks.Task.")
    return found


def get_task(name: str) -> type:
    """The task class for a name: a built-in, one registered in this process, or module:Class."""
    if name in REGISTERED:
        return REGISTERED[name]
    if name in BUILTIN_CARDS:
        cls = import_class(BUILTIN_CARDS[name].recipe)
        REGISTERED[name] = cls
        return cls
    if isinstance(name, str) and ":" in name:
        cls = import_class(name)
        REGISTERED.setdefault(name, cls)
        REGISTERED.setdefault(cls.name, cls)
        remember(cls, name)
        return cls
    raise ConfigError(f"Unknown task '{name}'.{did_you_mean(str(name), task_names())} Choose one of: "
                      f"{', '.join(task_names())}, or a task of your own as module:Class.")


def get_card(name: str) -> TaskCard:
    """The card of a task by name, the class imported first when it is a module:Class."""
    return card_of(name) or card_of(get_task(name).name)
