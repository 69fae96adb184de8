"""The AutoML search's page, FOLDER/report/index.html, and its leaderboard as text: what a non-expert reads to
learn which settings won, which mattered and how the search went. The plots are Optuna's own (matplotlib)."""

from __future__ import annotations

import html
import os
import warnings
from pathlib import Path

from ..report import image_tag, pyplot, save_figure, table, write_page
from ..tasks.base import notes_block


def short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def plus_minus(row: dict) -> str:
    """' ± 0.0128' after a score with a standard error, else ''."""
    return f" ± {row['error']:.4f}" if row.get("error") is not None else ""


def why_chosen(row: dict, lead: str = "") -> str:
    """Why the winner won over a higher score (board.winner_first), or ''."""
    return f"{lead}{row['chosen']}" if row.get("chosen") else ""


def leaderboard_rows(board: list[dict], monitor: str, top: int | None = None) -> list[dict]:
    """One readable row per trial: its rank, score and its standard error, state, length and settings."""
    rows = []
    for rank, r in enumerate(board[:top] if top else board, 1):
        error = r.get("error")  # none for a loss, and in boards written before it was kept
        rows.append({"#": rank, "trial": r["trial"], monitor: r["value"] if r["value"] is not None else "",
                     "±": f"{error:.4f}" if error is not None else "",
                     "state": r["state"] + (f" ({r['note']})" if r["note"] else ""), "epochs": r["epochs"],
                     "seconds": r["seconds"] if r["seconds"] is not None else "",
                     "settings": ", ".join(f"{k.split('.')[-1]}={short(v)}" for k, v in r["params"].items())})
    return rows


def leaderboard_text(board: list[dict], monitor: str, top: int = 10) -> str:
    rows = leaderboard_rows(board, monitor, top)
    if not rows:
        return "No trial finished."
    cells = [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row.values()] for row in rows]
    head = list(rows[0])
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head[:-1])]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)) + "  " + head[-1]]
    lines += ["  ".join(c.ljust(w) for c, w in zip(cell, widths)) + "  " + cell[-1] for cell in cells]
    return "\n".join(lines)


def optuna_figure(plot, study, path: Path, size=(8, 4.5), **kwargs) -> Path | None:
    """One of optuna.visualization.matplotlib's plots as a PNG (None where the study cannot show it yet, such as
    importances before two trials have finished)."""
    import optuna

    pyplot()  # the Agg backend, before Optuna draws
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ax = plot(study, **kwargs)
    except (ValueError, RuntimeError, ZeroDivisionError, optuna.exceptions.OptunaError):
        return None
    fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
    fig.set_size_inches(*size)
    save_figure(fig, path)
    return path


def important_params(study, top: int = 6) -> list[str] | None:
    """The `top` settings that mattered most (all of them while importances cannot be computed yet)."""
    import optuna

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return list(optuna.importance.get_param_importances(study))[:top]
    except (ValueError, RuntimeError, ZeroDivisionError, optuna.exceptions.OptunaError):
        return None


def write_report(folder: Path, study, board: list[dict], monitor: str, notes: list[str]) -> Path:
    from optuna.visualization import matplotlib as plots

    out = folder / "report"
    out.mkdir(exist_ok=True)
    complete = [r for r in board if r["state"] == "complete"]
    pruned = sum(r["state"] == "pruned" for r in board)
    sections = []
    if complete:
        best = complete[0]
        link = os.path.relpath(Path(best["run"]) / "report" / "index.html", out)
        sections.append(("Best trial", f"<p>Trial {best['trial']}: {html.escape(monitor)} <b>{best['value']:.4f}</b>"
                                       f"{html.escape(plus_minus(best))} after {best['epochs']} epochs"
                                       f"{html.escape(why_chosen(best, '; '))}. Its run: "
                                       f"<code>{html.escape(best['run'])}</code> (<a href='{html.escape(link)}'>its "
                                       f"report</a>); its full settings are in <code>best.yaml</code>: <code>deepworks "
                                       f"train --config "
                                       f"{html.escape(str(folder / 'best.yaml'))}</code> trains it again.</p>"))
    if notes:
        sections.append(("The data", notes_block(notes)))
    sections.append(("Leaderboard", f"<p>{len(board)} trials: {len(complete)} finished, {pruned} stopped early by "
                                    f"pruning (their score is the last one reported). ± is a score's standard "
                                    f"error: scores closer than that are a toss-up on this validation split, and "
                                    f"the simpler trial wins.</p>"
                     + table(leaderboard_rows(board, monitor))))
    figures = [("How the search went", plots.plot_optimization_history, "history.png", {}),
               ("Which settings mattered", plots.plot_param_importances, "importances.png", {}),
               ("The trials' settings, most important first (parallel coordinates)", plots.plot_parallel_coordinate,
                "parallel.png", {"params": important_params(study), "size": (13, 5.5)})]
    for heading, plot, name, kwargs in figures:
        path = optuna_figure(plot, study, out / name, **kwargs)
        if path:
            sections.append((heading, image_tag(path, heading)))
    return write_page(out, f"AutoML search: {folder.name}", sections)
