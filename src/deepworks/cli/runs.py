"""`deepworks runs` and `evaluate`: what the runs are and how well they do."""

from __future__ import annotations

import json

from .common import add_command, add_json, add_run_command, add_runs_dir


def add(sub) -> None:
    add_evaluate(sub)
    add_runs(sub)


def add_evaluate(sub) -> None:
    p = add_run_command(sub, "evaluate", cmd_evaluate)
    p.add_argument("--split", default="test", choices=("test", "val"), help="which split of the run's data [default: test]")
    p.add_argument("--data", help="evaluate on all images of this labelled source instead (same classes)")
    add_json(p, "the metrics")


def add_runs(sub) -> None:
    p = add_command(sub, "runs", cmd_runs)
    add_runs_dir(p)
    add_json(p)


def fmt(value, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else ("-" if value is None else str(value))


def cmd_evaluate(args) -> int:
    """evaluate a trained run on its test split (or other labelled data)"""
    from .. import api

    metrics = api.evaluate(args.run, split=args.split, data=args.data)
    if args.json:
        print(json.dumps(metrics, indent=2))
        return 0
    from ..registry import get_task

    task = get_task(metrics["task"])
    key, word = task.counted
    size = f", {metrics[key]:,} {word}" if key in metrics else ""
    print(f"{metrics['run']} on {metrics['data']} ({metrics['split']}{size})")
    for line in task.report_class.describe_metrics(metrics):
        print(line)
    return 0


def cmd_runs(args) -> int:
    """list runs with their status and best metric"""
    from .. import api

    rows = api.runs(args.runs_dir)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"No runs in '{args.runs_dir}/'. Start one with: deepworks train")
        return 0
    print(f"{'name':<28} {'task':<9} {'model':<11} {'epochs':>7} {'best':>22} {'test':>15}  status")
    for r in rows:
        best = f"{r['monitor']} {fmt(r['best'])}" if r["best"] is not None else "-"
        test = f"{r['test_metric']} {fmt(r['test'])}" if r["test"] is not None else "-"
        print(f"{r['name'][:28]:<28} {r['task']:<9} {str(r['model'])[:11]:<11} {r['epochs']:>7} {best:>22} {test:>15}  "
              f"{r['status']}")
    return 0
