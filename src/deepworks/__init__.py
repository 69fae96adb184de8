"""deepworks: train, evaluate and use deep-learning models on your own data, from one CLI and one Python API.

The API is imported on first use (`dw.train`, `dw.load`, ...), so that `deepworks --help` answers without
loading torch, and so that OpenMP's wait policy can be set before torch starts its threads (see threads.py).
"""

from .training.threads import prepare_openmp

prepare_openmp()

from ._version import __version__  # noqa: E402

from .config import Config  # noqa: E402  (no torch: yaml and dataclasses only)
from .errors import ConfigError, DataError, DeepworksError, TrainingError  # noqa: E402

_API = ("Trained", "audit", "evaluate", "find_faces", "generate", "load", "register_task", "runs", "train")
_CALLBACKS = ("StopButton", "TensorBoard")
_ELSEWHERE = {"Client": "client", "ServerError": "client", "ServerUnreachable": "client", "export": "exporting.exporter",
              "package": "exporting.package", "register": "training.tracking", "serve": "serving",
              "automl": "experiments.search", "compare": "experiments.ablation"}

__all__ = ["Client", "Config", "ConfigError", "DataError", "DeepworksError", "ServerError", "ServerUnreachable",
           "StopButton", "TensorBoard",
           "Trained", "TrainingError", "audit", "automl", "compare", "evaluate", "export", "find_faces", "generate",
           "load", "package", "register", "register_task", "runs",
           "serve", "train", "__version__"]


def __getattr__(name: str):
    import importlib

    if name in _API or name == "api":
        api = importlib.import_module(".api", __name__)
        return api if name == "api" else getattr(api, name)
    if name in _CALLBACKS:
        return getattr(importlib.import_module(".training.callbacks", __name__), name)
    if name in _ELSEWHERE:
        module = importlib.import_module("." + _ELSEWHERE[name], __name__)
        return {"export": getattr(module, "export_run", None), "package": getattr(module, "package_run", None)}.get(
            name) or getattr(module, name)
    raise AttributeError(f"module 'deepworks' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API) | set(_CALLBACKS) | set(_ELSEWHERE))
