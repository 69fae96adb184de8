"""Environment variables for the time of a block: what torch, Ray and Spark read from os.environ at the moment they
start or load something."""

from __future__ import annotations

import os
from contextlib import contextmanager


@contextmanager
def environment(values: dict):
    """os.environ with `values` set, in their order (None: unset), for the time of the block; afterwards each key
    as it was before."""
    before = {k: os.environ.get(k) for k in values}
    set_environment(values)
    try:
        yield
    finally:
        set_environment(before)


def set_environment(values: dict) -> None:
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
