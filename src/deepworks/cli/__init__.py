"""The `deepworks` command: parses, calls the API, prints. Nothing here that a script could not do with the API.

This module holds the top parser, the dispatch and the one-line error handling (common.py: what every command
shares); each
group of commands is a module of its own with `add(subparsers)` and its handlers: train (train, automl, compare),
runs (evaluate, runs), use (`use` and the verbs of the task cards: predict, generate ...), trust (attack, explain
...), ship (export, import, serve) and ui. Nothing here imports torch: `deepworks --help` answers at once."""

from __future__ import annotations

import argparse
import sys
import warnings

from .._version import __version__
from .common import EXAMPLES


def build_parser() -> argparse.ArgumentParser:
    """The `deepworks` parser: each group module adds its commands, each command with its handler as `handler` and
    the handler's docstring as its help and description (common.add_command)."""
    from . import faces, runs, ship, train, trust, ui, use, weights

    parser = argparse.ArgumentParser(
        prog="deepworks", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="Train, evaluate and use deep-learning models on your own data.")
    parser.add_argument("--version", action="version", version=f"deepworks {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in (train, runs, use, trust, ship, faces, ui, weights):
        group.add(sub)
    return parser


def show_warning(message, category, filename, lineno, file=None, line=None):
    from tqdm.auto import tqdm

    tqdm.write(f"warning: {message}", file=sys.stderr)  # above a progress bar, not through it


def main(argv: list[str] | None = None) -> int:
    from ..errors import DeepworksError, Interrupted, TrainingError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    warnings.showwarning = show_warning
    try:
        from ..training.threads import configure

        configure(args.threads)
        return args.handler(args)
    except Interrupted as err:
        print(f"\n{err}", file=sys.stderr)
        return 130
    except TrainingError as err:
        print(f"\nerror: {err}", file=sys.stderr)
        return 3
    except DeepworksError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return reader_went_away()


def reader_went_away() -> int:
    """stdout was piped into a reader that closed it (`deepworks runs | head`): stop quietly, as `ls | head` does.
    Python would otherwise complain again when it flushes stdout at exit, so point stdout at /dev/null first."""
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 0
