"""The AutoML leaderboard, and which trial it names the winner: every trial's score with its uncertainty, and, among
the trials whose scores the validation split cannot tell apart, the simplest.

A validation accuracy is a share of right answers on a few hundred images at most, so it carries a binomial standard
error: one image of 108 is 0.009, about one standard error. A search that keeps the top score regardless picks
whichever trial was luckiest on those images (a newcomer's winner beat deepworks' defaults by one image of 108 and
did worse on test). So the winner is the simplest trial within one standard error of the top score (the "one
standard error rule" of Breiman et al., 1984): deepworks' defaults for the data when they are among them, else the
trial with the fewest parameters.

The web UI reads the board of a search still running (`search_leaderboard`) from its study file, read-only.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..metrics.stats import proportion_error

DEFAULTS_NOTE = "deepworks' defaults for this data"  # the note of the search's first trial (space.first_trials)
BOARDS: dict = {}  # a search's study file -> (its modification time, the leaderboard read then)


def score_error(monitor: str | None, value: float | None, samples: int | None) -> float | None:
    """The binomial standard error of a validation accuracy on `samples` images; None for other metrics (a loss
    has no such error) or when the count is unknown."""
    if not monitor or "accuracy" not in monitor or value is None or not samples or not 0 <= value <= 1:
        return None
    return proportion_error(value, samples)


def trial_row(t, monitor: str | None) -> dict:
    """One trial of the study as a leaderboard row."""
    state = t.state.name.lower()
    if t.user_attrs.get("continues") is not None:
        note = f"continues trial {t.user_attrs['continues']}"
    else:
        note = "; ".join(n for n in (t.user_attrs.get("note"), t.user_attrs.get("error"),
                                     "cut by the budget" if t.user_attrs.get("cut_by_budget") else "") if n)
    last = t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None
    value = t.value if t.value is not None else last
    samples = t.user_attrs.get("val_samples")
    return {"trial": t.number, "state": state, "value": value,
            "error": score_error(monitor, value, samples), "val_samples": samples,
            "epochs": t.user_attrs.get("epochs"), "seconds": t.user_attrs.get("seconds"),
            "parameters": t.user_attrs.get("parameters"), "run": t.user_attrs.get("run"), "note": note,
            "params": dict(t.params)}


def leaderboard(study) -> list[dict]:
    """Every trial, the winner first (see the module's docstring), then completed ones by their score, then pruned
    ones by their last score, then the rest."""
    monitor = study.user_attrs.get("monitor")
    rows = [trial_row(t, monitor) for t in study.get_trials(deepcopy=False)]
    sign = -1 if study.direction.name == "MAXIMIZE" else 1
    order = {"complete": 0, "pruned": 1}
    rows.sort(key=lambda r: (order.get(r["state"], 2), sign * r["value"] if r["value"] is not None else math.inf))
    return winner_first(rows, maximize=sign < 0)


def winner_first(rows: list[dict], maximize: bool) -> list[dict]:
    """The rows (completed ones first, best score first) with the simplest trial within one standard error of the
    top score moved to the front, both rows noting why."""
    complete = [r for r in rows if r["state"] == "complete" and r["value"] is not None]
    if not complete or complete[0]["error"] is None:
        return rows
    top = complete[0]
    margin = top["error"]
    close = [r for r in complete if (top["value"] - r["value"] if maximize else r["value"] - top["value"]) <= margin]
    winner = min(close, key=simplicity)
    if winner is top:
        return rows
    why = "deepworks' defaults" if DEFAULTS_NOTE in winner["note"] else "the fewest parameters"
    winner["chosen"] = (f"chosen over trial {top['trial']}'s {top['value']:.4f}: within one standard error of it "
                        f"(±{margin:.4f} on {top['val_samples']:,} validation images), and simpler ({why})")
    winner["note"] = "; ".join(n for n in (winner["note"], f"chosen: simpler, within ±{margin:.4f} of the top") if n)
    top["note"] = "; ".join(n for n in (top["note"], f"top score, within the noise of trial {winner['trial']}") if n)
    return [winner] + [r for r in rows if r is not winner]


def simplicity(row: dict) -> tuple:
    """Sorts the simplest first: deepworks' defaults, then fewer parameters, then the better score (the rows come
    best first, so their order breaks ties)."""
    parameters = row["parameters"] if isinstance(row["parameters"], int) else math.inf
    return (DEFAULTS_NOTE not in row["note"], parameters)


def search_leaderboard(folder: Path) -> list[dict]:
    """The trials of a search as they stand, read from its study (the search process writes it; this only reads),
    again only when the study's file has changed: an event stream asks four times a second. A read that caught the
    search mid-write gives the last board read and is tried again at the next ask."""
    db = folder / "study.db"
    try:
        mtime = db.stat().st_mtime_ns
    except OSError:
        return []
    known = BOARDS.get(db, (None, []))
    if known[0] != mtime:
        board = read_leaderboard(db)
        if board is None:
            return known[1]
        BOARDS[db] = (mtime, board)
    return BOARDS[db][1]


def read_leaderboard(db: Path) -> list[dict] | None:
    """The leaderboard of a study the search process is writing; None when it cannot be read yet. The file is opened
    read-only: Optuna creates the tables and rows it finds missing, and a reader that did so while the search created
    them made the search fail ("table ... already exists"). Until the search has written its study, and while a
    write holds it locked, the read fails (Optuna raises its own errors, or SQLAlchemy's, or asserts)."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name="deepworks", storage=f"sqlite:///file:{db.resolve()}?mode=ro&uri=true")
        board = leaderboard(study)
    except (KeyError, ValueError, RuntimeError, AssertionError, SQLAlchemyError, optuna.exceptions.OptunaError):
        return None
    return json.loads(json.dumps(board, default=str))
