"""What using a model needs that has nothing to do with torch: a use's options (`Option`, checked the same way from
the API, the CLI and an HTTP request), stopping long work between steps (`cancellable`), and a classifier's answer
(`top_classes`). A package made by `deepworks package` serves without torch and ships this module unchanged;
inference.py and the faces import from here.
"""

from __future__ import annotations

import math
import threading
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from .errors import DataError


@dataclass(frozen=True)
class Option:
    """One setting of a use (top_k, temperature, beam ...): its type, default, bounds and help, checked the same way
    from the API, the CLI and an HTTP request."""
    kind: type
    default: object = None
    low: float | None = None
    high: float | None = None
    help: str = ""
    choices: tuple = ()

    def check(self, name: str, value, verb: str):
        if value is None:
            return self.default
        try:
            if self.kind is bool and not isinstance(value, (bool, str)):
                raise TypeError
            if self.kind is int and (isinstance(value, bool) or (isinstance(value, float) and not value.is_integer())):
                raise TypeError
            out = self.kind(value)
        except (TypeError, ValueError):
            raise DataError(f"{verb}: {name} must be {KIND_WORDS[self.kind]}. Received: {value!r}.") from None
        if self.kind is bool and isinstance(value, str):  # a form field or query string: bool("false") is True
            said = value.strip().lower()
            if said not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise DataError(f"{verb}: {name} must be true or false. Received: {value!r}.")
            out = said in ("1", "true", "yes", "on")
        if self.kind is float and not math.isfinite(out):
            raise DataError(f"{verb}: {name} must be a finite number. Received: {value!r}.")
        if self.choices and out not in self.choices:
            raise DataError(f"{verb}: {name} must be one of {', '.join(map(str, self.choices))}. Received: {value!r}.")
        if (self.low is not None and out < self.low) or (self.high is not None and out > self.high):
            raise DataError(f"{verb}: {name} must be {bounds(self.low, self.high)}. Received: {value!r}.")
        return out

    @classmethod
    def described(cls, said: dict) -> "Option":
        """The option again from what `describe` wrote (an exported model's card)."""
        kinds = {kind.__name__: kind for kind in KIND_WORDS}
        return cls(kinds[said["type"]], said.get("default"), said.get("minimum"), said.get("maximum"),
                   said.get("help") or "", tuple(said.get("choices") or ()))

    def describe(self) -> dict:
        """The option as JSON (the server's model card and OpenAPI text)."""
        return {"type": self.kind.__name__, "default": self.default, "minimum": self.low, "maximum": self.high,
                "choices": list(self.choices) or None, "help": self.help}


KIND_WORDS = {int: "a whole number", float: "a number", str: "text", bool: "true or false"}


def bounds(low, high) -> str:
    if low is not None and high is not None:
        return f"from {low:,} to {high:,}"
    return f"at least {low:,}" if low is not None else f"at most {high:,}"


def check_options(declared: dict[str, Option], options: dict, verb: str) -> dict:
    """Every declared option with its checked value (or default); an option the verb does not take is refused with
    the list of those it does."""
    unknown = [k for k in options if k not in declared]
    if unknown:
        known = ", ".join(declared) or "none"
        raise DataError(f"{verb} takes no option '{unknown[0]}'. Expected one of: {known}.")
    return {name: option.check(name, options.get(name), verb) for name, option in declared.items()}


class Cancelled(Exception):
    """The work was stopped between two steps: nobody waits for its answer any more (the client went away, or its
    time ran out). Not a DeepworksError: it is never a message for the user."""


_cancel = threading.local()


@contextmanager
def cancellable(event: threading.Event | None):
    """Within it, `stop_if_cancelled()` (which long loops call between steps) raises Cancelled once `event` is set:
    the server sets it when a request's client is gone or its time is up, so the model's thread is free again."""
    previous = getattr(_cancel, "event", None)
    _cancel.event = event
    try:
        yield
    finally:
        _cancel.event = previous


def stop_if_cancelled() -> None:
    event = getattr(_cancel, "event", None)
    if event is not None and event.is_set():
        raise Cancelled("stopped: nobody waits for this answer any more")


def top_classes(name: str, probs: np.ndarray, classes: list[str], k: int) -> dict:
    """A classifier's answer: the k likeliest classes with their probabilities (ties in class order)."""
    top = np.argsort(-probs, kind="stable")[:k]
    return {"input": name,
            "predictions": [{"class": classes[i], "probability": round(float(probs[i]), 6)} for i in top]}
