"""AutoML: the machine, not the user, picks the model and its settings for the data, within a wall-clock budget.

    deepworks automl --data fashion --budget 10m          dw.automl(data="fashion", budget="10m")

Optuna samples each trial's settings from a search space (TPE, seeded), every trial is an ordinary deepworks run
in FOLDER/trials/, and a per-epoch callback reports the validation score so that poor trials are pruned early
(by default when worse than the median finished trial at the same share of its schedule). The search is one process that trains one trial at a time with all the cores:
on two cores, threads of trials inside one process would only fight over them.

Nothing is lost on a crash. The study lives in FOLDER/study.db (SQLite, written at every trial's start and end and
at every epoch), each trial checkpoints every epoch, and FOLDER/search.json keeps what the search was asked for.
Run the same command again after `kill -9` (or Ctrl-C) and the search goes on: finished trials are kept, and the
trial that was running is continued from its last checkpoint as a new trial with the same settings. The budget
counts the time of every session together.

What it leaves: FOLDER/leaderboard.json, FOLDER/report/index.html (the leaderboard, the optimisation history,
parameter importances, a parallel-coordinates view and a link to the best trial's own report) and FOLDER/best.yaml,
the best trial's full config (`deepworks train --config FOLDER/best.yaml` trains it again). The best trial is a run
like any other: evaluate, export, serve, attack and explain take it.

The search space is a mapping of setting keys to what may be tried (the defaults are in `default_space`; a YAML
file given with --space replaces keys of it):

    model.name: [lenet, resnet]                       # a list: one of these
    train.lr: {low: 0.001, high: 0.05, log: true}     # a range (log: sampled on a log scale; int: whole numbers)
    model.depth: {choices: [8, 14], when: {model.name: resnet}}   # tried only for the ResNet
    model.width@lenet: {choices: [6, 12], when: {model.name: lenet}}   # '@label': one setting, several ranges
    train.batch_size: 128                             # a single value: fixed for every trial
"""

from __future__ import annotations

import copy
import json
import math
import re
import shutil
import statistics
import sys
import time
import warnings
from pathlib import Path

from ..config import value_of
from ..errors import ConfigError, DeepworksError, Interrupted
from ..run import Run, atomic_write_text, check_same_command, hold_folder
from .board import leaderboard
from .space import (Dimension, data_pixels, default_space, first_trials, parse_space, portfolio_point,
                    read_space, setting_of, starting_point)

MIN_BUDGET_S = 20  # below this no trial can read its data, train an epoch and be tested
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "halving", "none")
STARTUP_TRIALS = 4  # random trials before TPE models the results
PRUNE_AFTER = 2  # finished trials before the median rule prunes anything: a budget of minutes holds few trials
WARMUP = 0.1  # the share of its schedule a trial trains before it may be pruned
TRIAL_SHARE = 0.5  # no trial may take more than this share of the budget: one slow model cannot eat the search


def parse_budget(budget: str | int | float) -> float:
    """Seconds from 90, '90s', '10m', '1.5h'."""
    text = str(budget).strip().lower()
    found = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|sec|m|min|h)?", text)
    if not found:
        raise ConfigError(f"--budget: expected a time such as 90s, 10m or 1h. Received: {budget!r}.")
    seconds = float(found.group(1)) * {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, None: 1}[found.group(2)]
    if seconds < MIN_BUDGET_S:
        raise ConfigError(f"--budget {budget} is too short for one trial: it must read the data, train at least one "
                          f"epoch and test. Expected at least {MIN_BUDGET_S}s. Received: {seconds:g}s.")
    return seconds


# --- the search -----------------------------------------------------------------------------------------------
class TrialReporter:
    """The callback inside each trial's run: reports the monitored validation score after every epoch, stops the
    trial when Optuna prunes it or when the search's budget runs out (checked after every step), and keeps the
    search's clock in the study."""

    def __init__(self, search: "Search", trial, monitor: str):
        self.search, self.trial, self.monitor = search, trial, monitor
        self.ends = time.monotonic() + min(search.remaining(), search.budget * TRIAL_SHARE)
        self.pruned = self.cut = False
        self.scores: list[float] = []

    def out_of_time(self, trainer) -> bool:
        if time.monotonic() < self.ends or trainer.stop_training:
            return False
        share = self.search.remaining() > 0
        trainer.stop_training = self.cut = True
        trainer.stop_reason = (f"its share of the AutoML budget ({TRIAL_SHARE:.0%}) ran out" if share else
                               "the AutoML budget ran out")
        return True

    def on_fit_start(self, trainer) -> None:
        self.trial.set_user_attr("schedule", trainer.epochs)
        for r in trainer.run.metrics():  # a continued trial: the epochs done before the interruption count
            if r.get("kind") == "epoch" and r["epoch"] <= trainer.epoch:
                self.report(r)

    def report(self, record: dict) -> float | None:
        value = record.get(self.monitor)
        if value is None or not math.isfinite(value):
            return None
        self.trial.report(value, record["epoch"])
        self.scores.append(value)
        return value

    def on_step_end(self, trainer) -> None:
        self.out_of_time(trainer)

    def on_epoch_end(self, trainer, record: dict) -> None:
        self.search.save_clock()
        value = self.report(record)
        done = record["epoch"] / trainer.epochs  # at 1, the trial has nothing left to save by stopping it
        if value is not None and done < 1 and not trainer.stop_training and self.prune(done):
            trainer.stop_training, trainer.stop_reason = True, "pruned by AutoML: worse than the median trial"
            self.pruned = True
        else:
            self.out_of_time(trainer)

    def prune(self, done: float) -> bool:
        """--pruner median: whether the trial's best score so far is worse than the median of the finished trials'
        scores at the same point of their schedules (`done`, the share of its epochs), each read off its curve
        between its epochs. Comparing after the same number of epochs would favour short schedules: a 15-epoch
        one-cycle schedule is still warming up after its first epoch, when a 3-epoch one is at full rate. Other
        pruners are Optuna's, by epoch."""
        if self.search.request["pruner"] != "median":
            return self.trial.should_prune()
        if done < WARMUP:
            return False
        from optuna.trial import TrialState

        others = [v for t in self.search.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                  if (v := value_at(t, done)) is not None]
        if len(others) < PRUNE_AFTER:
            return False
        maximize = self.search.study.direction.name == "MAXIMIZE"
        best, median = (max if maximize else min)(self.scores), statistics.median(others)
        return best < median if maximize else best > median


def value_at(trial, done: float) -> float | None:
    """A finished trial's score at `done` (a share of its schedule), linear between its epochs; None before its
    first epoch (no score to compare with yet); its last score past its end."""
    epochs = trial.user_attrs.get("schedule")
    points = sorted((step / epochs, v) for step, v in trial.intermediate_values.items()) if epochs else []
    if not points or done < points[0][0]:
        return None
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 <= done <= x1:
            return y0 + (y1 - y0) * (done - x0) / (x1 - x0)
    return points[-1][1]


class Search:
    """One AutoML search in its folder (see the module's docstring)."""

    def __init__(self, folder: Path, request: dict):
        self.folder, self.request = Path(folder), request
        self.trials_dir = self.folder / "trials"
        self.budget = request["budget_s"]
        self.spent_before, self.started = 0.0, time.monotonic()
        self.study = None
        self.notes: list[str] = []  # the data audit's warnings
        self.starts: list[tuple[dict, str]] = []  # the first trials: deepworks' defaults, then its portfolio
        self.dims: list[Dimension] = []
        self.fixed: dict = {}
        self.monitor = ""

    # --- the clock: the budget counts every session of the search ----------------------------------------
    def spent(self) -> float:
        return self.spent_before + time.monotonic() - self.started

    def remaining(self) -> float:
        return self.budget - self.spent()

    def save_clock(self) -> None:
        self.study.set_user_attr("spent_s", round(self.spent(), 2))

    # --- the study ------------------------------------------------------------------------------------------
    def open_study(self, direction: str):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = f"sqlite:///{(self.folder / 'study.db').resolve()}"
        study = optuna.create_study(storage=storage, study_name="deepworks", direction=direction,
                                    load_if_exists=True)
        seed = self.request["seed"] + len(study.trials)  # a continued search does not repeat the first draws
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.sampler = (optuna.samplers.RandomSampler(seed=seed) if self.request["sampler"] == "random" else
                             optuna.samplers.TPESampler(seed=seed, n_startup_trials=STARTUP_TRIALS, multivariate=True,
                                                        group=True))
        study.pruner = (optuna.pruners.SuccessiveHalvingPruner() if self.request["pruner"] == "halving" else
                        optuna.pruners.NopPruner())  # the median rule is deepworks' own (TrialReporter.prune)
        self.study = study
        self.spent_before = float(study.user_attrs.get("spent_s", 0.0))
        self.continue_interrupted()
        return study

    def continue_interrupted(self) -> None:
        """Trials left running by a process that died (this one holds the folder, so none is really running):
        each is closed as failed and queued again with its settings, to continue from its run's checkpoint."""
        from optuna.trial import TrialState

        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            self.study.tell(t.number, state=TrialState.FAIL)
            self.study.enqueue_trial(t.params, user_attrs={"continues": t.number, "run": t.user_attrs.get("run")})

    # --- one trial -------------------------------------------------------------------------------------------
    def trial_settings(self, trial) -> dict:
        """Every setting of the trial's run: the command's, the space's fixed ones, and the trial's choices."""
        chosen = {**self.request["settings"], "data.audit": False, **self.fixed}
        for d in self.dims:
            if d.applies(chosen):
                chosen[d.setting] = d.suggest(trial)
        return chosen

    def run_trial(self, trial):
        """The trial's run (a new one, or the interrupted run it continues), and its reporter."""
        from ..api.training import train_or_continue

        settings = self.trial_settings(trial)
        reporter = TrialReporter(self, trial, self.monitor)
        path = Path(trial.user_attrs.get("run") or self.trials_dir / f"trial-{trial.number:03d}")
        trial.set_user_attr("run", str(path))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a trial's notes are in its own report
            trained = train_or_continue(path, [reporter], False, **settings)
        return trained, reporter

    def objective(self, trial) -> float | None:
        import optuna

        trained, reporter = self.run_trial(trial)
        fit = trained.results["fit"]
        trial.set_user_attr("epochs", fit["epochs"])
        trial.set_user_attr("seconds", fit["wall_seconds"])
        trial.set_user_attr("val_samples", trained.results["splits"]["val"])  # the score's uncertainty, and
        trial.set_user_attr("parameters", trained.results["parameters"])  # the simpler of two trials it cannot split
        if reporter.cut:
            trial.set_user_attr("cut_by_budget", True)
        if reporter.pruned:
            raise optuna.TrialPruned()
        return fit["best_value"]

    # --- the whole search ------------------------------------------------------------------------------------
    def run(self, progress: bool | None = None) -> dict:
        self.started = time.monotonic()  # reading the data and writing the report count too
        self.folder.mkdir(parents=True, exist_ok=True)
        busy = f"The AutoML search in '{self.folder}' is running in another process{{pid}}. Wait for it, or stop it."
        with hold_folder(self.folder, busy):
            self.check_request()
            self.dims, self.fixed, self.monitor, direction = self.resolve()
            atomic_write_text(self.folder / "search.json", json.dumps(self.request, indent=1))
            study = self.open_study(direction)
            study.set_user_attr("monitor", self.monitor)  # which scores have a binomial error (board.py)
            if not study.trials:
                for params, note in self.starts:
                    study.enqueue_trial(params, user_attrs={"note": note})
            say = (lambda text: print(text, file=sys.stderr, flush=True)) if progress is not False else (lambda _: None)
            say(f"AutoML: {self.remaining():.0f} s left of {self.budget:.0f} s; trials in {self.trials_dir}")
            while self.remaining() > 0:
                self.run_one(study.ask(), say)
                self.save_clock()
            return self.finish(direction)

    def run_one(self, trial, say) -> None:
        """One trial, told to the study as finished, pruned or failed; an interruption leaves it running in the
        study, for the next session to continue."""
        import optuna
        from optuna.trial import TrialState

        try:
            value = self.objective(trial)
        except optuna.TrialPruned:
            self.study.tell(trial, state=TrialState.PRUNED)
            say(f"  trial {trial.number}: pruned after {trial.user_attrs.get('epochs')} epochs")
        except (KeyboardInterrupt, Interrupted):
            self.save_clock()
            raise Interrupted(f"AutoML interrupted; finished trials are kept and trial {trial.number} resumes from "
                              f"its checkpoint. Continue with the same command.") from None
        except DeepworksError as err:  # settings that cannot work together: a failed trial, not a failed search
            trial.set_user_attr("error", str(err))
            self.study.tell(trial, state=TrialState.FAIL)
            say(f"  trial {trial.number}: failed: {err}")
        else:
            if value is None:
                trial.set_user_attr("error", "no epoch ended within the budget")
                self.study.tell(trial, state=TrialState.FAIL)
                return
            self.study.tell(trial, value)
            say(f"  trial {trial.number}: {self.monitor} {value:.4f} ({trial.user_attrs.get('epochs')} epochs); best so "
                f"far {self.study.best_value:.4f} (trial {self.study.best_trial.number})")

    def check_request(self) -> None:
        """The same command continues a search (only the budget may change, to give it more time)."""
        if (self.folder / "study.db").is_file():  # a search that got as far as its study
            check_same_command(self.folder / "search.json", self.request, "a search", may_change=("budget_s",))

    def resolve(self) -> tuple[list[Dimension], dict, str, str]:
        """The space (the default for the task and its data, with the user's keys over it), the metric and its
        direction; the data is read once here, so a mistake in it is said before any trial starts."""
        from ..api.training import make_config
        from ..models.pretrained import PRETRAINED
        from ..registry import get_task

        r = self.request
        cfg = make_config(**r["settings"])
        task = get_task(cfg.task)(cfg)
        data = task.prepare(progress=False)
        if cfg.data.audit:  # once for the search; its trials share the data and skip it
            self.notes = task.audit_warnings(data)
        photos = data.meta.get("channels") == 3
        installed = all(_installed(w().module) for w in PRETRAINED.values())
        given = set(r["settings"])  # a setting the command fixes is not searched
        clash = sorted(k for k in r["space"] if setting_of(k) in given)
        if clash:
            raise ConfigError(f"'{clash[0]}' is both fixed on the command line and searched in "
                              f"{r.get('space_file') or 'the space'}. Drop one of the two.")
        default = {k: v for k, v in default_space(cfg.task, photos, installed, len(data.train[0])).items()
                   if setting_of(k) not in given}
        dims, fixed = parse_space({**default, **r["space"]}, r.get("space_file") or "the search space", r["settings"])
        if not len(data.val[0]):
            raise ConfigError("AutoML compares trials on a validation split, and this data has none. Set "
                              "--val-fraction above 0.")
        monitor = cfg.train.monitor or task.default_monitor
        cfg.train.epochs = cfg.train.epochs or task.default_epochs(data)
        settled = {**r["settings"], **fixed}
        start = starting_point(cfg, dims, settled)
        known = portfolio_point(cfg.task, dims, settled, self.budget, len(data.train[0]) * data_pixels(data))
        self.starts = first_trials(start, known, r.get("warm_start", True))
        return dims, fixed, monitor, "minimize" if task.monitor_mode(monitor) == "min" else "maximize"

    # --- what it leaves --------------------------------------------------------------------------------------
    def finish(self, direction: str) -> dict:
        from .report import write_report

        board = leaderboard(self.study)
        atomic_write_text(self.folder / "leaderboard.json", json.dumps(board, indent=1))
        best = next((row for row in board if row["state"] == "complete"), None)
        if best is not None:
            shutil.copyfile(Path(best["run"]) / "config.yaml", self.folder / "best.yaml")
        report = write_report(self.folder, self.study, board, self.monitor, self.notes)
        return {"folder": str(self.folder), "monitor": self.monitor, "direction": direction,
                "budget_s": self.budget, "spent_s": round(self.spent(), 1),
                "trials": len(board), "complete": sum(r["state"] == "complete" for r in board),
                "pruned": sum(r["state"] == "pruned" for r in board),
                "best": best, "best_config": str(self.folder / "best.yaml") if best else None,
                "report": str(report), "data_notes": self.notes, "leaderboard": board}


def need_optuna() -> None:
    if not _installed("optuna"):
        raise ConfigError("AutoML needs Optuna (MIT, about 40 MB with SQLAlchemy). Install it with: "
                          "pip install \"deepworks[automl]\"")


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def automl(data: str | None = None, *, budget: str | float = "10m", out: str | Path | None = None,
           space: str | Path | dict | None = None, sampler: str = "tpe", pruner: str = "median", retrain: bool = False,
           warm_start: bool = True, progress: bool | None = None, **settings) -> dict:
    """Search models and settings for `data` within `budget` (see the module's docstring); returns the summary with
    the leaderboard. `settings` are fixed for every trial (task="text", data_dir=..., seed=..., image_size=...).
    `retrain`: then train the best trial's settings again on the training and validation splits together, for its
    best number of epochs. `warm_start=False`: every trial from the sampler, none from deepworks' defaults or its
    known-good settings (a plain search, to compare against)."""
    need_optuna()
    if sampler not in SAMPLERS:
        raise ConfigError(f"--sampler must be one of {', '.join(SAMPLERS)}. Received: {sampler!r}.")
    if pruner not in PRUNERS:
        raise ConfigError(f"--pruner must be one of {', '.join(PRUNERS)}. Received: {pruner!r}.")
    from ..api.training import check_data_argument, make_config, settings_to_keys

    fixed = settings_to_keys(check_data_argument({**({"data": data} if data is not None else {}), **settings}))
    fixed["eval.baseline"] = False  # the random forest is for a run's report, not for comparing trials
    cfg = make_config(**fixed)  # every fixed setting checked before anything is written
    fixed = {k: value_of(cfg, k) for k in fixed}  # as typed values: the same command from the CLI or Python
    space_file = str(space) if isinstance(space, (str, Path)) else None
    raw = copy.deepcopy(space) if isinstance(space, dict) else read_space(space)
    parse_space(raw, space_file or "space")  # the user's keys checked before anything is written
    source = cfg.data.source or cfg.task
    folder = Path(out) if out else Path("automl") / Run.safe_name(Path(source).name or cfg.task)
    request = {"task": cfg.task, "settings": fixed, "space": raw, "space_file": space_file, "seed": cfg.seed,
               "sampler": sampler, "pruner": pruner, "budget_s": parse_budget(budget),
               **({} if warm_start else {"warm_start": False})}  # written when off: older searches stay the same
    summary = Search(folder, request).run(progress)
    if retrain and summary["best"]:
        summary["retrained"] = retrain_best(summary, progress)
    return summary


def retrain_best(summary: dict, progress: bool | None) -> dict:
    """The best trial's settings trained again with the validation split added to the training split, for the
    number of epochs that was best (there is no validation left to choose it)."""
    from ..api.training import train_run as train

    best = summary["best"]
    run = Run(best["run"])
    best_epoch = run.read_json(run.results_file)["fit"]["best_epoch"] or best["epochs"]
    trained = train(str(Path(summary["folder"]) / "best.yaml"), runs_dir=summary["folder"], name="best-retrained",
                    val_fraction=0.0, epochs=best_epoch, patience=0, monitor=None, progress=progress)
    headline = trained.task.headline
    trial_test = (run.read_json(run.results_file).get("test") or {}).get(headline)
    return {"run": str(trained.run.path), "epochs": best_epoch, "test": trained.results["test"], "metric": headline,
            "value": trained.results["test"].get(headline), "trial_value": trial_test}
