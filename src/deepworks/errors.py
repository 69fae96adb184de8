"""Errors a user can act on.

Anything raised as a `DeepworksError` is the user's to fix (a wrong path, a bad
setting, unreadable data): the CLI prints its message without a traceback and
exits with status 2. Everything else is a bug and keeps its traceback.
"""


class DeepworksError(Exception):
    """A problem with the user's input, with a message that says how to fix it."""


class ConfigError(DeepworksError):
    """A setting that does not exist or has a value out of range."""


class DataError(DeepworksError):
    """Data that cannot be read or used as given."""


class TrainingError(DeepworksError):
    """Training stopped for a reason the user can act on (a diverging loss)."""


class Interrupted(DeepworksError):
    """Ctrl-C: the state was saved and the run can be resumed."""


class DiskFull(DeepworksError):
    """A file could not be written because the disk is full; the file it would have replaced is intact."""


def did_you_mean(word: str, options) -> str:
    """' Did you mean 'x'?' when one of `options` is close to `word`, else ''."""
    import difflib

    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""
