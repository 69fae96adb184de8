"""The `deepworks` command: parses, calls the API, prints. Nothing here that a script could not do with the API."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import warnings

from . import __version__
from .config import SECTIONS, fields_by_key

EXAMPLES = """examples:
  deepworks train                                   LeNet-5 on scikit-learn's digits (no download)
  deepworks train --data photos/ --model resnet     your images: one sub-folder per class
  deepworks train --data mnist --data-dir ../shared/data --epochs 3
  deepworks train --data labels.csv --image-size 64 --augment crop+flip --lr 0.003
  deepworks train --config my.yaml --batch-size 64  a YAML config, with a flag on top
  deepworks train --resume runs/photos-resnet       continue an interrupted run exactly
  deepworks predict runs/photos-resnet cat.jpg      top-k classes with probabilities
  deepworks evaluate runs/photos-resnet             test metrics again
  deepworks runs                                    every run with its best metric
"""


def flag_name(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per config field, grouped by section, with the field's help and default."""
    groups = {None: parser.add_argument_group("run")}
    for section in SECTIONS:
        groups[section] = parser.add_argument_group(f"{section} settings (YAML section '{section}:')")
    for key, (section, f, typ) in fields_by_key().items():
        choices = f.metadata.get("choices")
        help_text = f.metadata["help"]
        if choices:
            help_text += " One of: " + ", ".join(str(c) for c in choices if c is not None) + "."
        default = f.default if f.default is not dataclasses.MISSING else None
        if default is not None:  # None defaults are explained in the help text itself
            help_text += f" [default: {default}]"
        kwargs = dict(dest=key, default=argparse.SUPPRESS, help=help_text.replace("%", "%%"))
        if typ is bool:
            groups[section].add_argument(flag_name(f), action=argparse.BooleanOptionalAction, **kwargs)
        else:
            groups[section].add_argument(flag_name(f), metavar=f.name.upper(), **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepworks", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="Train, evaluate and use deep-learning models on your own data.")
    parser.add_argument("--version", action="version", version=f"deepworks {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("train", help="train a model and write a run directory with metrics, weights and a report",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
                       description="Train a model. With no flags: LeNet-5 on scikit-learn's digits. Every setting below "
                                   "can also come from a YAML file (--config); flags override it.")
    p.add_argument("--config", help="YAML file of settings, sections data/model/train/eval (see a run's config.yaml)")
    p.add_argument("--resume", metavar="RUN", help="continue an interrupted run from its last checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    add_config_flags(p)

    p = sub.add_parser("evaluate", help="evaluate a trained run on its test split (or other labelled data)")
    p.add_argument("run", help="run directory, or a run name inside runs/")
    p.add_argument("--split", default="test", choices=("test", "val"), help="which split of the run's data [default: test]")
    p.add_argument("--data", help="evaluate on all images of this labelled source instead (same classes)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON on stdout")

    p = sub.add_parser("predict", help="name the top-k classes of image files")
    p.add_argument("run", help="run directory, or a run name inside runs/")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of images")
    p.add_argument("--top-k", type=int, default=3, help="how many classes to show per image [default: 3]")
    p.add_argument("--json", action="store_true", help="print JSON on stdout")

    p = sub.add_parser("runs", help="list runs with their status and best metric")
    p.add_argument("--runs-dir", default="runs", help="folder of run directories [default: runs]")
    p.add_argument("--json", action="store_true", help="print JSON on stdout")
    return parser


def fmt(value, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else ("-" if value is None else str(value))


def cmd_train(args) -> int:
    from . import api

    overrides = {k: v for k, v in vars(args).items() if k in fields_by_key()}
    progress = False if args.quiet else None
    if args.resume:
        trained = api.train(resume=args.resume, progress=progress, **overrides)
    else:
        trained = api.train(args.config, progress=progress, **overrides)
    results = trained.results
    if args.json:
        print(json.dumps({"run": str(trained.run.path), **results}, indent=2))
        return 0
    test, base, fit = results["test"], results["baseline"], results["fit"]
    k = next(key for key in test if key.startswith("top"))
    lines = [
        ("run", str(trained.run.path)),
        ("data", f"{trained.task.meta['source']}; train {results['splits']['train']} / val {results['splits']['val']} "
                 f"/ test {results['splits']['test']}"),
        ("model", f"{trained.cfg.model.name}, {results['parameters']:,} parameters, {fit['epochs']} epochs in "
                  f"{fit['train_seconds']:.1f} s" + (" (stopped early)" if fit["stopped_early"] else "")),
        ("test", f"accuracy {fmt(test['accuracy'])}  {k.replace('_', ' ')} {fmt(test[k])}  macro F1 {fmt(test['macro_f1'])}"),
    ]
    if base:
        lines.append(("baseline", f"accuracy {fmt(base['accuracy'])}  macro F1 {fmt(base['macro_f1'])}  ({base['model']})"))
    lines.append(("report", str(trained.run.report_dir / "index.html")))
    for label, text in lines:
        print(f"{label:<9} {text}")
    return 0


def cmd_evaluate(args) -> int:
    from . import api

    metrics = api.evaluate(args.run, split=args.split, data=args.data)
    if args.json:
        print(json.dumps(metrics, indent=2))
        return 0
    k = next(key for key in metrics if key.startswith("top"))
    print(f"{metrics['run']} on {metrics['data']} ({metrics['split']}, {metrics['samples']} images)")
    print(f"accuracy {fmt(metrics['accuracy'])}  {k.replace('_', ' ')} {fmt(metrics[k])}  "
          f"macro F1 {fmt(metrics['macro_f1'])}  loss {fmt(metrics['loss'])}")
    print(f"{'class':<20} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}")
    for row in metrics["per_class"]:
        print(f"{row['class'][:20]:<20} {row['precision']:>9.4f} {row['recall']:>9.4f} {row['f1']:>9.4f} {row['support']:>8}")
    return 0


def cmd_predict(args) -> int:
    from . import api

    predictions = api.load(args.run).predict(args.images, top_k=args.top_k)
    if args.json:
        print(json.dumps(predictions, indent=2))
        return 0
    for item in predictions:
        shown = "  ".join(f"{p['class']} {p['probability']:.1%}" for p in item["predictions"])
        print(f"{item['file']}: {shown}")
    return 0


def cmd_runs(args) -> int:
    from . import api

    rows = api.runs(args.runs_dir)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"No runs in '{args.runs_dir}/'. Start one with: deepworks train")
        return 0
    print(f"{'name':<28} {'task':<6} {'model':<7} {'epochs':>7} {'best':>18} {'test acc':>9}  status")
    for r in rows:
        best = f"{r['monitor']} {fmt(r['best'])}" if r["best"] is not None else "-"
        print(f"{r['name'][:28]:<28} {r['task']:<6} {r['model']:<7} {r['epochs']:>7} {best:>18} "
              f"{fmt(r['test_accuracy']):>9}  {r['status']}")
    return 0


def show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    from .errors import DeepworksError, TrainingError
    from .train import Interrupted

    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    warnings.showwarning = show_warning
    commands = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "runs": cmd_runs}
    try:
        return commands[args.command](args)
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


if __name__ == "__main__":
    sys.exit(main())
