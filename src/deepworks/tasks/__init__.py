"""Tasks: one module per breakthrough, each a recipe (base.py: data, model, training), a face (the use of a trained
model) and a report, joined by a card (cards.py). base.py declares the recipe's contract; tasks/image.py is the
fullest example, and tests/test_contract.py trains a task defined inside the test file.

Names are imported on first use, so that reading a task's card never loads torch."""

from __future__ import annotations

__all__ = ["Prepared", "Task", "get_task", "notes_block", "plural", "register", "task_names"]


def __getattr__(name: str):
    if name in ("Prepared", "Task", "notes_block", "plural"):
        from . import base

        return getattr(base, name)
    if name in ("get_task", "register", "task_names"):
        from .. import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'deepworks.tasks' has no attribute '{name}'")
