"""How many CPU threads torch uses, and how they wait for each other.

On a small machine, torch's OpenMP threads spin while they wait for each other at the end of every parallel
region. When another busy process takes one of the cores, the thread that lost its core holds up the others,
which spin on, and a run can become many times slower (measured in bench/threads.py). Two things fix it:

- a short spin before a waiting thread sleeps (GOMP_SPINCOUNT, KMP_BLOCKTIME for Intel's OpenMP), which keeps a
  run going when a competitor arrives mid-run, for about a tenth of a quiet translation run's speed (nothing on
  the text LSTM's). OpenMP reads it once, when torch is first imported, so `prepare_openmp()` runs before
  deepworks imports torch (in the package's __init__); a user's own setting always wins;
- as many threads as there are free cores: the cores this process may use (affinity and the cgroup's CPU
  quota), less the other processes running right now.

`--threads N` (every command) or $DEEPWORKS_THREADS sets the number; `configure()` applies it once per process.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

ENV = "DEEPWORKS_THREADS"
SPIN_SETTINGS = {"GOMP_SPINCOUNT": "1000", "KMP_BLOCKTIME": "1"}  # GNU OpenMP: spins; Intel OpenMP: milliseconds
_chosen: dict = {}


def prepare_openmp() -> None:
    """Ask OpenMP for short spins, unless the user chose a wait policy or torch was imported already."""
    if "torch" in sys.modules or "OMP_WAIT_POLICY" in os.environ:
        return
    for key, value in SPIN_SETTINGS.items():
        os.environ.setdefault(key, value)


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity, capped by a cgroup v2 CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def running_elsewhere(samples: int = 5, pause: float = 0.02) -> int:
    """Other threads running or waiting to run right now, from /proc/loadavg (its 4th field counts the runnable
    ones, this process's own included), less those this process can see running at a lower priority (a higher
    nice value: the scheduler gives our threads the core before theirs). The median of a few readings, so that
    one short burst does not count."""
    counts = []
    for i in range(samples):
        try:
            with open("/proc/loadavg") as f:
                running = int(f.read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            return 0
        others = running - 1
        counts.append(max(0, others - running_nicer()) if others > 0 else 0)  # /proc is read only when it matters
        if i < samples - 1:
            time.sleep(pause)
    return int(statistics.median(counts))


def running_nicer() -> int:
    """Threads of other processes that are running now at a higher nice value than this process's."""
    own_pid, own_nice = os.getpid(), os.nice(0)
    count = 0
    for stat in Path("/proc").glob("[0-9]*/task/[0-9]*/stat"):
        try:
            if int(stat.parts[2]) == own_pid:
                continue
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
            count += fields[0] == "R" and int(fields[16]) > own_nice
        except (OSError, ValueError, IndexError):
            continue
    return count


def free_cores() -> int:
    return max(1, usable_cores() - running_elsewhere())


def parse_threads(value, origin: str) -> int | None:
    """A thread count from --threads or $DEEPWORKS_THREADS: a positive integer, or 'auto' (None)."""
    from ..errors import ConfigError

    if value is None or str(value).strip().lower() in ("", "auto"):
        return None
    try:
        n = int(str(value).strip())
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(f"{origin} must be a positive number of threads, or auto. Received: {value!r}.")
    return n


def configure(threads: int | str | None = None, default: int | None = None) -> int:
    """Set torch's thread count: `threads` (--threads), else $DEEPWORKS_THREADS, else a count chosen earlier in this
    process by one of those, else `default` (a resumed run's own count: the same sums in the same order give the
    same weights), else the free cores, counted once per process."""
    explicit = parse_threads(threads, "--threads")
    if explicit is None:
        explicit = parse_threads(os.environ.get(ENV), f"${ENV}")
    if explicit is not None:
        _chosen["explicit"] = explicit
    n = _chosen.get("explicit") or default or _chosen.get("auto")
    if n is None:
        n = _chosen["auto"] = free_cores()
    if default is not None and n != default:
        import warnings

        warnings.warn(f"This run trained with {default} thread(s) and goes on with {n}: its numbers will differ in "
                      f"the last digits from those of an uninterrupted run. Pass --threads {default} to match.",
                      RuntimeWarning, stacklevel=2)
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
