"""What every command module of the CLI shares: the top-level examples, the options every command takes, the
making of a command (its handler, whose docstring gives its help and description; RUN for a command on a trained
run), the flags that recur with their wording (--json, --out, --runs-dir, --class, --seed), the flags of the two
servers, and the printing of results."""

from __future__ import annotations

import argparse
import inspect


EXAMPLES = """examples:
  deepworks train                                   a small CNN on scikit-learn's digits (no download)
  deepworks train --data photos/ --model resnet     your images: one sub-folder per class
  deepworks train --data mnist --data-dir ../shared/data   99 % in one epoch, seconds on a CPU
  deepworks train --data labels.csv --image-size 64 --augment crop+flip --lr 0.003
  deepworks train --config my.yaml --batch-size 64  a YAML config, with a flag on top
  deepworks train --resume runs/photos-resnet       continue an interrupted run exactly
  deepworks train --data big-photos/ --stream on --workers 4     decode from disk, batch by batch
  deepworks train --data photos/ --engine torchrun --nproc 2     several processes (also: ray, spark)
  deepworks train --task mytasks:MyTask             a deepworks.tasks.Task subclass of your own
  deepworks predict runs/photos-resnet cat.jpg      top-k classes with probabilities
  deepworks use runs/photos-resnet cat.jpg --top-k 2   any run, with its own options (see: use RUN --help)
  deepworks evaluate runs/photos-resnet             test metrics again
  deepworks runs                                    every run with its best metric
  deepworks export runs/photos-resnet               ONNX with preprocessing inside, a model card, a README

  deepworks train --task text                       a 2-layer LSTM on Python's own source (no download)
  deepworks train --task text --data notes.txt --model gru --epochs 20
  deepworks train --task text --data tiny-shakespeare --data-dir ../shared/data
  deepworks generate runs/notes-gru --prime "Dear " --length 300 --temperature 0.8

  deepworks train --task translate                  dates written many ways -> ISO form (generated, no download)
  deepworks train --task translate --data pairs.tsv --attention luong --epochs 10
  deepworks train --task translate --source a.de --target a.en --val-data val.de,val.en
  deepworks translate runs/dates-gru "the 3rd of march 1998" --beam 5 --plot alignment.png

  deepworks train --task gan                        a DCGAN on scikit-learn's digits (no download)
  deepworks train --task gan --data faces/ --image-size 64 --spectral-norm
  deepworks train --task gan --data mnist --data-dir ../shared/data --conditional
  deepworks sample runs/mnist-dcgan --n 64 --out grid.png --class 7 --seed 1

  deepworks train --task detect                     find shapes in generated images (boxes; no download)
  deepworks train --task detect --data voc-folder/ --pretrained  your Pascal VOC, COCO .json or YOLO boxes
  deepworks detect runs/shapes-centernet photo.jpg --out drawn/    boxes with class and score

  deepworks train --task audio                      tell generated tones and chirps apart (no download)
  deepworks train --task audio --data recordings/   your clips: one sub-folder of WAV files per class
  deepworks predict runs/tones-cnn1d clip.wav       the likeliest classes of a clip

  deepworks attack runs/photos-resnet --eps 0.03                adversarial examples (see attack --help)
  deepworks explain runs/photos-resnet cat.jpg --class dogs      which pixels made it say so
  deepworks audit photos/                                        copies, leakage, imbalance, shortcuts
  deepworks demo representation                                  why hidden layers matter (no data)
"""


def common_options() -> argparse.ArgumentParser:
    """Options every command takes."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--threads", metavar="N",
                   help="CPU threads for torch: a number, or auto (the cores no other process is busy on) "
                        "[default: $DEEPWORKS_THREADS, else auto]")
    return p


def help_of(handler) -> dict[str, str]:
    """A command's words from its handler's docstring, as click and typer read them: the first line is its `help`
    (its line in `deepworks --help`), the paragraphs after it its `description` (atop `deepworks CMD --help`), each
    paragraph's lines joined with single spaces, so that a description shown as written (a command with `examples`)
    is one line a paragraph. Empty for a handler without a docstring."""
    doc = inspect.cleandoc(handler.__doc__ or "") if handler is not None else ""
    first, _, rest = doc.partition("\n")
    paragraphs = [" ".join(line.strip() for line in p.splitlines()) for p in rest.strip().split("\n\n") if p.strip()]
    words = {"help": first.strip(), "description": "\n\n".join(paragraphs)}
    return {key: text for key, text in words.items() if text}


def add_command(sub, name: str, handler=None, examples: str | None = None, **kwargs) -> argparse.ArgumentParser:
    """A command's parser, with the options every command takes and `handler` as what `main` calls. Its help and
    description are the handler's docstring's (help_of), unless given (a description made from the cards).
    `examples` is an epilog shown as written (argparse would otherwise refill its lines)."""
    kwargs = {**help_of(handler), **kwargs}
    if examples is not None:
        kwargs.update(formatter_class=argparse.RawDescriptionHelpFormatter, epilog=examples)
    p = sub.add_parser(name, parents=[common_options()], **kwargs)
    if handler is not None:
        p.set_defaults(handler=handler)
    return p


def add_run_command(sub, name: str, handler, **kwargs) -> argparse.ArgumentParser:
    """A command on one trained run: RUN is its first argument."""
    p = add_command(sub, name, handler, **kwargs)
    p.add_argument("run", help="run directory, or a run name inside runs/")
    return p


def add_json(p, what: str = "", after: str = "") -> None:
    """--json: print WHAT (the command's result) as JSON on stdout, for scripts; `after` ends the help."""
    p.add_argument("--json", action="store_true", help=f"print {what + ' as ' if what else ''}JSON on stdout{after}")


def add_out_folder(p, what: str, default_words: str, default: str | None = None) -> None:
    """--out: the folder a command writes its WHAT (figures, a report) into."""
    p.add_argument("--out", default=default, help=f"folder for the {what} [default: {default_words}]")


def add_runs_dir(p, help: str = "folder of run directories [default: runs]") -> None:
    """--runs-dir: the folder of run directories a command lists or writes into."""
    p.add_argument("--runs-dir", default="runs", help=help)


def add_class(p, help: str) -> None:
    """--class CLASS (as `label`: `class` is a Python keyword), a class of the run named or numbered."""
    p.add_argument("--class", dest="label", metavar="CLASS", help=help)


def add_seed(p, what: str) -> None:
    """--seed for a command that samples: without one, a new seed each time, which --json shows."""
    p.add_argument("--seed", type=int,
                   help=f"seed for repeatable {what} [default: a new one each time, shown with --json]")


def seed_of(args) -> int:
    """--seed, or a new random one (shown with --json, so that the output can be made again)."""
    import secrets

    return secrets.randbits(31) if args.seed is None else args.seed


def print_labelled(lines: list[tuple[str, str]]) -> None:
    for label, text in lines:
        print(f"{label:<9} {text}")


def emit(result: dict, as_json: bool, lines) -> int:
    """Print a command's result as JSON (for scripts), or as the lines `lines(result)` yields (for people)."""
    from ..trust.tools import dumps

    print(dumps(result) if as_json else "\n".join(lines(result)))
    return 0
