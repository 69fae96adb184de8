"""deepworks: train, evaluate and use deep-learning models on your own data, from one CLI and one Python API."""

__version__ = "0.1.0"

from .api import Trained, audit, evaluate, generate, load, runs, train  # noqa: E402
from .config import Config  # noqa: E402
from .errors import ConfigError, DataError, DeepworksError, TrainingError  # noqa: E402

__all__ = ["Config", "ConfigError", "DataError", "DeepworksError", "Trained", "TrainingError",
           "audit", "evaluate", "generate", "load", "runs", "train", "__version__"]
