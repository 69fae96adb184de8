"""What a task's recipe, face and report share: the prepared data, and two small pieces of wording."""

from __future__ import annotations

import html
from dataclasses import dataclass, field


@dataclass
class Prepared:
    """A task's data, split: each split a tuple of tensors (or array-likes) whose first dimension is the example."""
    train: tuple
    val: tuple
    test: tuple
    meta: dict
    notes: list[str] = field(default_factory=list)


def notes_block(notes: list[str]) -> str:
    """The data's notes (skipped files, warnings) as boxes for the report."""
    return "".join(f"<pre class='note'>{html.escape(n)}</pre>" for n in notes)


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"
