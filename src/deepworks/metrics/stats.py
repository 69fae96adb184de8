"""How far a score measured on a few examples can be trusted: intervals and standard errors of a share of right
answers (a binomial proportion). Small splits are common on a user's own data (nine test photos), and a score on
them alone would read as more than it is."""

from __future__ import annotations

import math

Z95 = 1.959964  # the normal quantile of a two-sided 95 % interval


def wilson_interval(right: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion `right` / `n` (Wilson 1927): unlike p ± z·SE it stays inside
    [0, 1] and is not zero-wide at 0 % or 100 %, which is where small test splits often land."""
    if n <= 0:
        return 0.0, 1.0
    p = right / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion_error(p: float, n: int) -> float:
    """The binomial standard error of a share `p` of `n` examples, with p taken as (k + 1) / (n + 2) (Laplace's rule
    of succession) so that 108 right of 108 is not taken as certain."""
    if n <= 0:
        return math.inf
    smoothed = (p * n + 1) / (n + 2)
    return math.sqrt(smoothed * (1 - smoothed) / n)
