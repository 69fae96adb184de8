"""Seeing inside a trained image classifier and attacking it: adversarial examples, attributions,
feature visualisation and representations.

Everything here works in *pixel space*: images are floats in [0, 1], shaped (N, C, H, W), and a
classifier is wrapped by `PixelModel` so that its own normalisation happens inside. An epsilon of
0.1 therefore means a tenth of the pixel range, whatever the dataset's mean and std.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from ..errors import ConfigError
from ..models.pixel import PixelModel, to_pixels

__all__ = ["PixelModel", "to_pixels", "class_index", "one_thread"]


def class_index(label: str | int, classes: list[str], what: str = "--class") -> int:
    """A class given by name or index -> its index; an unknown one names the classes there are."""
    if str(label) in classes:
        return classes.index(str(label))
    try:
        i = int(label)
    except ValueError:
        i = -1
    if 0 <= i < len(classes):
        return i
    shown = ", ".join(classes[:20]) + (", ..." if len(classes) > 20 else "")
    raise ConfigError(f"{what} {label!r} is not a class of this model. Its classes are: {shown} "
                      f"(a name, or an index from 0 to {len(classes) - 1}).")


@contextmanager
def one_thread():
    """Run tiny tensors (one image, a few hundred 2-D points) on one CPU thread: splitting such small work
    across threads costs more in synchronisation than it saves, many times more on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
