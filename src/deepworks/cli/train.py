"""`deepworks train`, `automl` and `compare`: the commands that train.

Their setting flags are made from the config's fields (config.fields_by_key, flag_names, choices_of), one flag per
field with its help and default, so that a YAML file and the flags are one path into the same Config."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing

from ..cards import applies, data_in_words, default_runs_in_words
from ..config import COMMAND_LINE, SECTIONS, Config, apply_overrides, choices_of, fields_by_key, flag_names
from .common import EXAMPLES, add_command, add_json, print_labelled

AUTOML_EXAMPLES = """examples:
  deepworks automl --data photos/ --budget 10m           search for 10 minutes; the leaderboard and best.yaml
  deepworks automl --data photos/ --budget 20m           the same folder again: continues, with 10 more minutes
  deepworks automl --data mnist --budget 5m --retrain    then retrain the best on train + validation data
  deepworks automl --task text --data notes.txt --space space.yaml   your own search space (YAML)
"""

COMPARE_EXAMPLES = """examples:
  deepworks compare --vary optimizer=sgd,momentum,adagrad,rmsprop,adam --seeds 3     which optimizer, on digits
  deepworks compare --model mlp --depth 5 --vary activation=sigmoid,tanh,relu --vary init=zeros,xavier,he
                                                   vanishing gradients and symmetry, with gradient-norm plots
  deepworks compare --data photos/ --vary dropout=0,0.3 --seeds 2                    does dropout help here?
"""


def add(sub) -> None:
    add_train(sub)
    add_automl(sub)
    add_compare(sub)


def add_train(sub) -> None:
    p = add_command(sub, "train", cmd_train, examples=EXAMPLES,
                    description="Train a model. " + default_runs_in_words() + " Every setting below can also "
                                "come from a YAML file (--config); flags override it. With a task, --help lists "
                                "only the settings it takes: deepworks train --task gan --help.")
    p.add_argument("--config", help="YAML file of settings, sections data/model/train/eval (see a run's config.yaml)")
    p.add_argument("--resume", metavar="RUN", help="continue an interrupted run from its last checkpoint")
    add_training_flags(p, "no progress bar or per-epoch lines", "the results")


def add_automl(sub) -> None:
    p = add_command(sub, "automl", cmd_automl, examples=AUTOML_EXAMPLES)
    p.add_argument("--budget", default="10m", help="wall-clock time for the whole search: 90s, 10m, 1h [default: 10m]")
    p.add_argument("--space", metavar="YAML",
                   help="search space: setting keys mapped to choices [a, b], ranges {low, high, log}, or one value; "
                        "its keys replace the defaults' (see the deepworks.experiments.search module)")
    p.add_argument("--out", metavar="FOLDER", help="the search's folder [default: automl/DATA]")
    p.add_argument("--sampler", default="tpe", choices=("tpe", "random"),
                   help="tpe learns from finished trials; random is the baseline [default: tpe]")
    p.add_argument("--pruner", default="median", choices=("median", "halving", "none"),
                   help="stop a trial whose score is worse than the median trial's at the same point of its "
                        "schedule (median), successive halving, or never [default: median]")
    p.add_argument("--no-warm-start", dest="warm_start", action="store_false",
                   help="every trial from the sampler: none from deepworks' defaults for the data or its known-good "
                        "settings for the task, which are otherwise tried first")
    p.add_argument("--retrain", action="store_true",
                   help="then train the best settings again on the training and validation data together")
    add_training_flags(p, "no per-trial lines", "the summary and leaderboard")


def add_compare(sub) -> None:
    p = add_command(sub, "compare", cmd_compare, examples=COMPARE_EXAMPLES)
    p.add_argument("--vary", action="append", metavar="SETTING=A,B", required=True,
                   help="a setting and the values to compare (repeat for a grid): optimizer=sgd,adam")
    p.add_argument("--seeds", type=int, default=3, help="seeds per variant, from --seed on [default: 3]")
    p.add_argument("--out", metavar="FOLDER", help="the comparison's folder [default: compare/DATA-SETTINGS]")
    add_training_flags(p, "no per-run lines", "the summary")


def add_training_flags(p: argparse.ArgumentParser, quiet_help: str, json_what: str) -> None:
    """What train, automl and compare end with: --quiet, --json and a flag per setting (add_config_flags)."""
    p.add_argument("--quiet", action="store_true", help=quiet_help)
    add_json(p, json_what)
    add_config_flags(p)


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per config field, grouped by section, with the field's help and default. Every flag parses whatever
    the task, but --help with a --task lists only the settings that task takes (narrow_help_to_task)."""
    groups = {None: parser.add_argument_group("run")}
    for section in SECTIONS:
        groups[section] = parser.add_argument_group(f"{section} settings (YAML section '{section}:')")
    flags = {}
    for key, (section, f, typ) in fields_by_key().items():
        choices = choices_of(f)
        help_text = f.metadata["help"] + (" " + data_in_words() if key == "data.source" else "")
        if choices:
            help_text += " One of: " + ", ".join(str(c) for c in choices if c is not None) + "."
        default = f.default if f.default is not dataclasses.MISSING else None
        if default is not None:  # None defaults are explained in the help text itself
            help_text += f" [default: {default}]"
        kwargs = dict(dest=key, default=argparse.SUPPRESS, help=help_text.replace("%", "%%"))
        if bool in (typ, *typing.get_args(typ)):
            flags[key] = groups[section].add_argument(*flag_names(f), action=argparse.BooleanOptionalAction, **kwargs)
        else:
            flags[key] = groups[section].add_argument(*flag_names(f), metavar=f.name.upper(), **kwargs)
    narrow_help_to_task(parser, flags)


def narrow_help_to_task(parser: argparse.ArgumentParser, flags: dict[str, argparse.Action]) -> None:
    """Before each parse, hide from --help (argparse.SUPPRESS) the flags of the settings that the task the arguments
    name does not take (cards.applies), and show them all again when they name none. The flags stay: a setting of
    another task still parses and is checked as from a YAML file. The command's parser is wrapped rather than
    subclassed because argparse makes the parsers of subcommands itself; it hands this one only its own arguments,
    so `train --help --task gan` narrows as `train --task gan --help` does."""
    helps = {key: action.help for key, action in flags.items()}
    description = parser.description
    parse = parser.parse_known_args

    def parse_known_args(args=None, namespace=None):
        arguments = sys.argv[1:] if args is None else args
        task = task_named(arguments)
        hidden = set() if task is None else {key for key in flags if not applies(key, task)}
        own = task_defaults(task) if task is not None and {"-h", "--help"} & set(arguments) else {}
        for key, action in flags.items():
            action.help = argparse.SUPPRESS if key in hidden else helps[key]
            if key in own and key not in hidden:
                action.help += f" [{task}'s default: {own[key]}]"
        if task is not None and "data.source" in flags:  # --data: what this task takes, not every task's
            flags["data.source"].help = helps["data.source"].replace(data_in_words(), data_in_words(task))
        narrowed = f" The settings below are those that --task {task} takes; --help without --task lists them all."
        parser.description = description + (narrowed if hidden else "")
        return parse(args, namespace)

    parser.parse_known_args = parse_known_args


def task_defaults(task: str) -> dict:
    """The settings a task sets otherwise than every task, from its card (no import of its recipe, nor of torch),
    for --help; none for a task this process does not know (the parse then says so)."""
    from ..cards import card_of

    card = card_of(task)
    return dict(card.defaults) if card is not None else {}


def task_named(args: list[str]) -> str | None:
    """The task a command's arguments name, --task X or --task=X (the last one, as argparse takes), else None."""
    task = None
    for i, arg in enumerate(args):
        if arg == "--task" and i + 1 < len(args):
            task = args[i + 1]
        elif arg.startswith("--task="):
            task = arg.partition("=")[2]
    return task


def setting_flags(args) -> dict:
    """The settings given as flags, checked (a bad flag is named as the user typed it)."""
    overrides = {k: v for k, v in vars(args).items() if k in fields_by_key()}
    apply_overrides(Config(), overrides, COMMAND_LINE)
    return overrides


def cmd_train(args) -> int:
    """train a model and write a run directory with metrics, weights and a report"""
    from .. import api
    from ..experiments.crossval import Folds

    overrides = setting_flags(args)
    progress = False if args.quiet else None
    if args.resume:
        trained = api.train(resume=args.resume, progress=progress, **overrides)
    else:
        trained = api.train(args.config, progress=progress, **overrides)
    if trained is None:  # machine 1 and up of a torchrun group
        where = f"machine 0 ({overrides.get('engine.master_addr', '127.0.0.1')})"
        if args.json:
            print(json.dumps({"node_rank": int(overrides.get("engine.node_rank", 0)), "written_on": where}))
        else:
            print(f"This machine's processes have finished; the run, its results and report are written on {where}.")
        return 0
    if isinstance(trained, Folds):  # --split speaker: a run per speaker
        return print_folds(trained.summary, args.json)
    results = trained.results
    if args.json:
        print(json.dumps({"run": str(trained.run.path), **results}, indent=2))
        return 0
    notes = [n for n in (results.get("fit", {}).get(k) for k in ("overfit", "collapse")) if n]
    lines = [("run", str(trained.run.path)), *trained.task.make_report().summary(results), *[("note", n) for n in notes],
             ("report", str(trained.run.report_dir / "index.html"))]
    print_labelled(lines)
    return 0


def print_folds(summary: dict, as_json: bool) -> int:
    if as_json:
        print(json.dumps(summary, indent=2))
        return 0
    lines = [("runs", summary["folder"])]
    metric, counted = summary["metric"], summary["counted"]
    lines += [("speaker", f"{r['speaker']:<12} {metric} {r[metric]:.4f} on {r[counted]} {counted} never heard in "
                          f"training") for r in summary["speakers"]]
    lines += [("mean", f"{metric} {summary[f'mean_{metric}']:.4f} (worst: {summary['worst']['speaker']}, "
                       f"{summary['worst'][metric]:.4f})"), ("report", summary["report"])]
    print_labelled(lines)
    return 0


def cmd_automl(args) -> int:
    """search models and settings for your data within a time budget

    Let the machine pick the model and its settings: Optuna's TPE tries model families and sizes, optimizer, learning
    rate, weight decay, dropout, batch size, augmentation, schedule and epochs, one trial at a time with all the
    cores, and stops poor trials early. Every trial is an ordinary run in OUT/trials/. Stop it any time (even
    kill -9): the same command continues the search. The flags of `deepworks train` fix a setting for every trial
    (with --task X, --help lists only those task X takes)."""
    from ..experiments.search import automl
    from ..experiments.report import leaderboard_text, plus_minus, why_chosen

    overrides = setting_flags(args)
    summary = automl(budget=args.budget, out=args.out, space=args.space, sampler=args.sampler, pruner=args.pruner,
                     warm_start=args.warm_start,
                     retrain=args.retrain, progress=False if args.quiet or args.json else None, **overrides)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(leaderboard_text(summary["leaderboard"], summary["monitor"]))
    best = summary["best"]
    lines = [("trials", f"{summary['trials']} ({summary['complete']} finished, {summary['pruned']} pruned) in "
                        f"{summary['spent_s']:.0f} s of {summary['budget_s']:.0f} s"),
             ("best", f"trial {best['trial']}: {summary['monitor']} {best['value']:.4f}{plus_minus(best)}, run "
                      f"{best['run']}" if best else "none finished: give the search a longer --budget"),
             *([("why", why_chosen(best))] if best and why_chosen(best) else []),
             *([("config", summary["best_config"])] if best else []),
             *([("retrained", retrained_words(summary["retrained"], best))] if summary.get("retrained") else []),
             ("report", summary["report"])]
    print_labelled(lines)
    return 0


def retrained_words(retrained: dict, best: dict) -> str:
    """The retrained run and its test score beside the trial's own: retraining on more data can score lower."""
    value, trial = retrained.get("value"), retrained.get("trial_value")
    score = f": test {retrained['metric']} {value:.4f}" if isinstance(value, float) else ""
    before = f" (trial {best['trial']} alone: {trial:.4f})" if score and isinstance(trial, float) else ""
    return f"{retrained['run']}{score}{before}"


def cmd_compare(args) -> int:
    """train variants of one setting side by side over several seeds (ablations)

    Train every combination of the --vary values, once per seed, on identical splits, data order and initialisation
    seeds, and compare them: overlaid learning curves, a table of test scores (mean and spread over seeds) with the
    winner, and for activations and initialisations the gradient norm of every layer over the first steps. Runs go to
    OUT/runs/; run the same command again to continue it. The flags of `deepworks train` fix the other settings."""
    from ..experiments.ablation import compare

    overrides = setting_flags(args)
    summary = compare(args.vary, seeds=args.seeds, out=args.out, progress=False if args.quiet or args.json else None,
                      **overrides)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    key = f"test {summary['metric']} mean"
    width = max(len(r["variant"]) for r in summary["variants"])
    print(f"{'variant':<{width}}  {key:>{len(key)}}  spread   seeds")
    for r in summary["variants"]:
        print(f"{r['variant']:<{width}}  {r[key]:>{len(key)}.4f}  {r['spread (sd)']:.4f}   {r['seeds']}")
    print(f"{summary['verdict']}.\nreport    {summary['report']}")
    return 0
