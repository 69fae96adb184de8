"""The `deepworks` command: parses, calls the API, prints. Nothing here that a script could not do with the API."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import warnings

from .._version import __version__
from ..config import COMMAND_LINE, SECTIONS, Config, apply_overrides, choices_of, fields_by_key, flag_names

EXAMPLES = """examples:
  deepworks train                                   LeNet-5 on scikit-learn's digits (no download)
  deepworks train --data photos/ --model resnet     your images: one sub-folder per class
  deepworks train --data mnist --data-dir ../shared/data --epochs 3
  deepworks train --data labels.csv --image-size 64 --augment crop+flip --lr 0.003
  deepworks train --config my.yaml --batch-size 64  a YAML config, with a flag on top
  deepworks train --resume runs/photos-resnet       continue an interrupted run exactly
  deepworks train --data big-photos/ --stream on --workers 4     decode from disk, batch by batch
  deepworks train --data photos/ --engine torchrun --nproc 2     several processes (also: ray, spark)
  deepworks train --task mytasks:MyTask             a deepworks.tasks.Task subclass of your own
  deepworks predict runs/photos-resnet cat.jpg      top-k classes with probabilities
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


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per config field, grouped by section, with the field's help and default."""
    groups = {None: parser.add_argument_group("run")}
    for section in SECTIONS:
        groups[section] = parser.add_argument_group(f"{section} settings (YAML section '{section}:')")
    for key, (section, f, typ) in fields_by_key().items():
        choices = choices_of(f)
        help_text = f.metadata["help"]
        if choices:
            help_text += " One of: " + ", ".join(str(c) for c in choices if c is not None) + "."
        default = f.default if f.default is not dataclasses.MISSING else None
        if default is not None:  # None defaults are explained in the help text itself
            help_text += f" [default: {default}]"
        kwargs = dict(dest=key, default=argparse.SUPPRESS, help=help_text.replace("%", "%%"))
        if typ is bool:
            groups[section].add_argument(*flag_names(f), action=argparse.BooleanOptionalAction, **kwargs)
        else:
            groups[section].add_argument(*flag_names(f), metavar=f.name.upper(), **kwargs)


def common_options() -> argparse.ArgumentParser:
    """Options every command takes."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--threads", metavar="N",
                   help="CPU threads for torch: a number, or auto (the cores no other process is busy on) "
                        "[default: $DEEPWORKS_THREADS, else auto]")
    return p


def add_command(sub, name: str, **kwargs) -> argparse.ArgumentParser:
    return sub.add_parser(name, parents=[common_options()], **kwargs)


def run_tool_parser(sub, name: str, what: str, **kwargs) -> argparse.ArgumentParser:
    """A command that looks at a trained image run and writes `what` (figures) into its report folder or --out."""
    p = add_command(sub, name, **kwargs)
    p.add_argument("run", help="run directory, or a run name inside runs/")
    p.add_argument("--out", help=f"folder for the {what} [default: the run's report folder]")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    return p


def add_exposure_flags(p, port: int, token_scope: str, token_default: str = "none",
                       insecure_help: str = "allow another --host than this machine without a token") -> None:
    """--host, --port, --token and --insecure, as `serve` and `ui` both take them."""
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; another than this machine's needs --token [default: 127.0.0.1]")
    p.add_argument("--port", type=int, default=port, help=f"[default: {port}]")
    p.add_argument("--token", help=f"require 'Authorization: Bearer TOKEN' on {token_scope}; at least 8 characters "
                                   f"[default: $DEEPWORKS_TOKEN, else {token_default}]")
    p.add_argument("--insecure", action="store_true", help=insecure_help)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepworks", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="Train, evaluate and use deep-learning models on your own data.")
    parser.add_argument("--version", action="version", version=f"deepworks {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = add_command(sub, "train", help="train a model and write a run directory with metrics, weights and a report",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
                       description="Train a model. With no flags: LeNet-5 on scikit-learn's digits; with --task text alone: "
                                   "a 2-layer LSTM on Python's own standard-library source; with --task translate: "
                                   "dates written many ways to ISO form; with --task gan: a DCGAN that learns to "
                                   "draw the digits; with --task detect: a detector that finds circles, squares and "
                                   "triangles in generated images; with --task audio: a 1-D CNN that tells generated "
                                   "tones and chirps apart. Every setting below "
                                   "can also come from a YAML file (--config); flags override it.")
    p.add_argument("--config", help="YAML file of settings, sections data/model/train/eval (see a run's config.yaml)")
    p.add_argument("--resume", metavar="RUN", help="continue an interrupted run from its last checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    add_config_flags(p)

    p = add_command(sub, "automl", help="search models and settings for your data within a time budget",
                    formatter_class=argparse.RawDescriptionHelpFormatter, epilog=AUTOML_EXAMPLES,
                    description="Let the machine pick the model and its settings: Optuna's TPE tries model families "
                                "and sizes, optimizer, learning rate, weight decay, dropout, batch size, "
                                "augmentation, schedule and epochs, one trial at a time with all the cores, and "
                                "stops poor trials early. Every trial is an ordinary run in OUT/trials/. Stop it "
                                "any time (even kill -9): the same command continues the search. The flags of "
                                "`deepworks train` fix a setting for every trial.")
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
    p.add_argument("--quiet", action="store_true", help="no per-trial lines")
    p.add_argument("--json", action="store_true", help="print the summary and leaderboard as JSON on stdout")
    add_config_flags(p)

    p = add_command(sub, "compare", help="train variants of one setting side by side over several seeds (ablations)",
                    formatter_class=argparse.RawDescriptionHelpFormatter, epilog=COMPARE_EXAMPLES,
                    description="Train every combination of the --vary values, once per seed, on identical splits, "
                                "data order and initialisation seeds, and compare them: overlaid learning curves, a "
                                "table of test scores (mean and spread over seeds) with the winner, and for "
                                "activations and initialisations the gradient norm of every layer over the first "
                                "steps. Runs go to OUT/runs/; run the same command again to continue it. The flags "
                                "of `deepworks train` fix the other settings.")
    p.add_argument("--vary", action="append", metavar="SETTING=A,B", required=True,
                   help="a setting and the values to compare (repeat for a grid): optimizer=sgd,adam")
    p.add_argument("--seeds", type=int, default=3, help="seeds per variant, from --seed on [default: 3]")
    p.add_argument("--out", metavar="FOLDER", help="the comparison's folder [default: compare/DATA-SETTINGS]")
    p.add_argument("--quiet", action="store_true", help="no per-run lines")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    add_config_flags(p)

    p = add_command(sub, "evaluate", help="evaluate a trained run on its test split (or other labelled data)")
    p.add_argument("run", help="run directory, or a run name inside runs/")
    p.add_argument("--split", default="test", choices=("test", "val"), help="which split of the run's data [default: test]")
    p.add_argument("--data", help="evaluate on all images of this labelled source instead (same classes)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON on stdout")

    p = add_command(sub, "predict", help="name the top-k classes of image files (or audio clips, for an audio run)")
    p.add_argument("run", help="run directory, or a run name inside runs/")
    p.add_argument("images", nargs="+", metavar="FILE", help="image files or folders of images (audio runs: clips)")
    p.add_argument("--top-k", type=int, default=3, help="how many classes to show per image [default: 3]")
    p.add_argument("--json", action="store_true", help="print JSON on stdout")

    p = add_command(sub, "detect", help="find the objects in images: a box, class and score for each",
                    description="Find objects with a detection run (deepworks train --task detect). Prints each "
                                "image's boxes as x1,y1-x2,y2 in its own pixels with the class and score; --out "
                                "writes the images with their boxes drawn.")
    p.add_argument("run", help="run directory, or a run name inside runs/")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of images")
    p.add_argument("--threshold", type=float,
                   help="the lowest score shown, 0 to 1: lower finds more objects and more mistakes [default: the "
                        "run's, the best F1 on its validation split; 0.3 for runs without one]")
    p.add_argument("--class-iou", type=float,
                   help="boxes of different classes overlapping more than this, 0 to 1, are one object named by the "
                        "best score; 1 keeps a box per class [default: 0.7]")
    p.add_argument("--max-boxes", type=int, default=100, help="the most boxes per image, best first [default: 100]")
    p.add_argument("--out", metavar="DIR", help="write each image with its boxes drawn into this folder")
    p.add_argument("--json", action="store_true", help="print JSON on stdout")

    p = add_command(sub, "generate", help="write text with a trained text run, streamed as it is sampled",
                       description="Sample text one character at a time from a text run. Lower temperatures are "
                                   "safer and more repetitive, higher ones more inventive; 0 always takes the "
                                   "likeliest character.")
    p.add_argument("run", help="run directory, or a run name inside runs/")
    p.add_argument("--prime", default="", help="text to start from and continue [default: a new line]")
    p.add_argument("--length", type=int, default=500, help="characters to generate [default: 500]")
    p.add_argument("--temperature", type=float, default=0.8, help="randomness of the sampling, 0 or above [default: 0.8]")
    p.add_argument("--top-k", type=int, help="sample only among the k likeliest characters [default: all]")
    p.add_argument("--seed", type=int, help="seed for repeatable output [default: a new one each time, shown with --json]")
    p.add_argument("--json", action="store_true", help="print the text and settings as JSON on stdout, when done")

    p = add_command(sub, "translate", help="translate sentences with a trained translation run",
                       description="Translate sentences given as arguments, read from --file (one per line), or from "
                                   "standard input (one per line) when none are given.")
    p.add_argument("run", help="run directory, or a run name inside runs/")
    p.add_argument("sentences", nargs="*", metavar="SENTENCE", help="sentences to translate")
    p.add_argument("--file", help="a text file with one sentence per line")
    p.add_argument("--encoding", default="utf-8", choices=("utf-8", "latin-1", "utf-16"),
                   help="how --file is decoded [default: utf-8; a UTF-16 file with its byte-order mark is recognised]")
    p.add_argument("--beam", type=int, default=1, help="beam width; 1 is greedy decoding [default: 1]")
    p.add_argument("--length-penalty", type=float, default=0.6,
                   help="beam search: alpha of the length penalty ((5 + length) / 6) ** alpha [default: 0.6]")
    p.add_argument("--plot", metavar="PNG", help="save an attention heatmap of the first sentence to this file")
    p.add_argument("--json", action="store_true", help="print JSON on stdout (with the attention weights)")

    p = add_command(sub, "sample", help="make new images with a trained GAN run",
                       description="Draw new images from a GAN run's generator: a grid of --n images, or with "
                                   "--interpolate a strip that walks between two random points of the noise space. "
                                   "The same --seed gives the same images.")
    p.add_argument("run", help="run directory, or a run name inside runs/")
    p.add_argument("--n", type=int, default=64, help="how many images [default: 64]")
    p.add_argument("--out", default="samples.png", help="the grid (or strip) PNG to write [default: samples.png]")
    p.add_argument("--images", metavar="FOLDER", help="also write every image as its own PNG into this folder")
    p.add_argument("--seed", type=int, help="seed for repeatable images [default: a new one each time, shown with --json]")
    p.add_argument("--class", dest="label", metavar="CLASS",
                   help="make this class (name or index); needs a run trained with --conditional")
    p.add_argument("--interpolate", type=int, metavar="STEPS", help="write an interpolation strip of this many steps")
    p.add_argument("--scale", type=int, default=2, help="enlarge the PNG this many times, pixel for pixel [default: 2]")
    p.add_argument("--json", action="store_true", help="print the files written and the seed as JSON on stdout")

    p = run_tool_parser(sub, "attack", "figures", help="adversarial examples: accuracy under attack, a curve, triptychs",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=TRUST_EXAMPLES,
                       description="Attack an image classifier with small, deliberate changes to its inputs. "
                                   "Epsilon is in pixel units (pixels run from 0 to 1): 0.1 lets each pixel move "
                                   "by a tenth of its range. Writes an accuracy-against-epsilon curve, triptychs "
                                   "(original, amplified perturbation, adversarial image) and a JSON summary into "
                                   "the run's report folder (or --out).")
    p.add_argument("--method", default="pgd", choices=("fgsm", "pgd"),
                   help="fgsm: one gradient-sign step (fast, weaker); pgd: projected gradient descent [default: pgd]")
    p.add_argument("--eps", type=float, default=0.1, help="largest change allowed, in pixel units [default: 0.1]")
    p.add_argument("--norm", default="linf", choices=("linf", "l2"),
                   help="linf: each pixel moves at most eps; l2: the whole change has length at most eps (pgd only)")
    p.add_argument("--steps", type=int, default=40, help="pgd: gradient steps [default: 40]")
    p.add_argument("--step-size", type=float, help="pgd: size of each step [default: 2.5 * eps / steps]")
    p.add_argument("--restarts", type=int, default=1, help="pgd: tries from random starts; any success counts [default: 1]")
    p.add_argument("--random-start", action=argparse.BooleanOptionalAction,
                   help="start from a random point within eps [default: on for pgd, off for fgsm]")
    p.add_argument("--samples", type=int, default=1000, help="test images to attack (the first ones) [default: 1000]")
    p.add_argument("--curve", help="comma-separated epsilons for the curve [default: 0, eps/4, eps/2, eps, 1.5 eps, 2 eps]")
    p.add_argument("--show", type=int, default=6,
                   help="triptychs of this many test images, the first the model gets right [default: 6]")
    p.add_argument("--examples", metavar="I,J,...", help="triptychs of these test images instead (indices)")
    p.add_argument("--image", help="attack this one image file instead of the test split")
    p.add_argument("--target", metavar="CLASS", help="targeted attack: push the prediction to this class (name or index)")
    p.add_argument("--fool", metavar="CLASS",
                   help="instead: make an image from noise that the model calls CLASS with --confidence")
    p.add_argument("--confidence", type=float, default=0.99, help="--fool: confidence to reach [default: 0.99]")

    p = run_tool_parser(sub, "explain", "figure", help="saliency: which pixels made the model say a class",
                       description="Attributions for one image: integrated gradients (the attributions add up to the "
                                   "change of the class score from a black image) and gradient x input, for the "
                                   "predicted class and, with --class, another one. Writes a figure: the image, the "
                                   "attribution map (red for the class, blue against) and an overlay.")
    p.add_argument("image", help="an image file")
    p.add_argument("--class", dest="label", metavar="CLASS", help="also explain this class (name or index)")
    p.add_argument("--steps", type=int, default=64, help="integration steps for integrated gradients [default: 64]")

    p = run_tool_parser(sub, "visualize", "figures", help="feature visualisation: what each class and channel looks for",
                       description="Make images that the network responds to most strongly, from grey noise, with "
                                   "jitter and blur to keep them readable: one per class (or --class), one per "
                                   "channel of --layer, and the first layer's filters as images.")
    p.add_argument("--class", dest="label", metavar="CLASS", help="only this class (name or index) [default: all, up to 20]")
    p.add_argument("--layer", help="also show channels of this layer (an unknown name lists the layers)")
    p.add_argument("--channels", help="--layer's channels: 3, 0-7 or 1,4,9 [default: the first 8]")
    p.add_argument("--steps", type=int, default=128, help="optimisation steps per image [default: 128]")

    p = run_tool_parser(sub, "represent", "figure", help="a hidden layer's view of the test images in 2-D, over training",
                       description="Project a hidden layer's activations on the test images to 2-D (PCA or t-SNE), "
                                   "coloured by class, for each epoch snapshot the run kept (1, 2, 4, 8, ...) and "
                                   "the final model, with how well a linear classifier separates the classes there.")
    p.add_argument("--layer", help="layer to look at [default: the input of the output layer]")
    p.add_argument("--method", default="pca", choices=("pca", "tsne"), help="projection [default: pca]")
    p.add_argument("--samples", type=int, default=1000, help="test images (the first ones) [default: 1000]")

    p = add_command(sub, "audit", help="check image data for imbalance, copies, leakage, corrupt files and shortcuts",
                       description="Audit labelled image data before trusting a model trained on it: class balance, "
                                   "exact and near copies within and across train/test (leakage), corrupt files, "
                                   "file sizes and modes, and classes that image statistics alone give away "
                                   "(a shortcut). Prints each finding with what to do, and writes a report.")
    p.add_argument("data", help="a folder with one sub-folder per class, a CSV, an .npz, or a built-in dataset")
    p.add_argument("--data-dir", help="where built-in datasets are looked for and downloaded to")
    p.add_argument("--image-size", type=int, help="side files are decoded at [default: 32 for folders and CSVs]")
    p.add_argument("--out", help="folder for the report [default: audit-NAME]")
    p.add_argument("--json", action="store_true", help="print the findings as JSON on stdout")

    p = add_command(sub, "demo", help="teaching demos that need no data",
                       description="representation: two spirals that no straight line separates, a one-hidden-layer "
                                   "network bending the plane until one does, and two rings made easy by polar "
                                   "coordinates.")
    p.add_argument("name", choices=("representation",), help="which demo")
    p.add_argument("--out", default="demo-representation", help="folder for the figures [default: demo-representation]")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")

    p = add_command(sub, "export", help="export a run to ONNX, torch.export (.pt2) or TorchScript, usable without deepworks",
                    description="Write a folder that works without deepworks: the model's graphs with their "
                                "preprocessing inside (an image model takes uint8 pixels and returns probabilities), "
                                "model.json (classes or vocabulary, inputs and outputs, metrics, the weights' "
                                "sha256), the weights as safetensors with that card inside, and a README. Each graph "
                                "is loaded back and checked against torch at another batch size before it is kept. "
                                "Text and translation runs export their step (and encoder) graphs; the card says "
                                "how to run the loop around them.")
    p.add_argument("run", help="run directory, or a run name inside runs/")
    p.add_argument("--format", default="onnx", choices=("onnx", "pt2", "torchscript"), help="[default: onnx]")
    p.add_argument("--out", help="the folder to write [default: RUN/export/FORMAT]")
    p.add_argument("--exporter", default="auto", choices=("auto", "dynamo", "legacy"),
                   help="ONNX: torch's dynamo exporter, the legacy TorchScript-based one, or auto: dynamo, and legacy "
                        "where dynamo fails or does not match torch [default: auto]")
    p.add_argument("--json", action="store_true", help="print the model card as JSON on stdout")

    p = add_command(sub, "import", help="wrap a classifier trained elsewhere (ONNX, .pt2, safetensors) in a run",
                    description="Make a run directory from a model made elsewhere, so that evaluate, predict, export "
                                "and serve work on it (and attack and explain, except on ONNX, which has no "
                                "gradients). The model takes float images (N, C, H, W), normalised per channel with "
                                "--normalise (default: pixels in [0, 1]), and returns one score per class.")
    p.add_argument("file", help="an .onnx file, a torch.export .pt2 program, or .safetensors weights of a deepworks "
                                "architecture (with --model)")
    p.add_argument("--task", default="image", help="the task of the model [default: image, the only one for now]")
    p.add_argument("--classes", help="the classes of the outputs, in order: cat,dog,bird (read from a deepworks "
                                     "safetensors file when it says)")
    p.add_argument("--image-size", type=int, help="the side the model takes (read from the file when it says)")
    p.add_argument("--channels", type=int, help="1 or 3 (read from the file when it says)")
    p.add_argument("--normalise", "--normalize", dest="normalise", metavar="MEAN,STD",
                   help="per-channel normalisation of pixels in [0, 1]: MEAN,STD or M1,M2,M3,S1,S2,S3 [default: 0,1]")
    p.add_argument("--model", help="safetensors: the deepworks architecture the weights are for (lenet, resnet, mlp)")
    p.add_argument("--name", help="the run's name [default: FILE-imported]")
    p.add_argument("--runs-dir", default="runs", help="[default: runs]")

    p = add_command(sub, "serve", help="serve runs over HTTP: friendly JSON routes and the Open Inference Protocol (V2)",
                    formatter_class=argparse.RawDescriptionHelpFormatter, epilog=SERVE_EXAMPLES,
                    description="Serve trained runs on FastAPI + uvicorn until Ctrl-C (requests in flight are "
                                "finished). Each run is a model named after its folder (or NAME=RUN): GET /v1/models "
                                "lists them with their cards, POST /v1/models/NAME/VERB uses one (predict, generate, "
                                "translate or sample, as its task does), and the V2 routes (/v2/models/NAME/infer, "
                                "/v2/health/ready ...) answer KServe, Triton and MLServer clients. Image and GAN "
                                "requests are micro-batched when they arrive together. Prometheus metrics at /metrics; "
                                "the OpenAPI schema at /openapi.json.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories (or names inside runs/), or NAME=RUN")
    add_exposure_flags(p, 8000, "every request but the health probes")
    p.add_argument("--runtime", default="torch", choices=("torch", "onnx"),
                   help="onnx: answer image and GAN requests from the run's ONNX export in ONNX Runtime (exported "
                        "now if needed) [default: torch]")
    p.add_argument("--max-batch", type=int, default=32, help="most items in one micro-batch; 1 turns batching off "
                                                              "[default: 32]")
    p.add_argument("--max-wait-ms", type=float, default=2.0,
                   help="longest a batch waits for requests still arriving; a lone request never waits [default: 2]")
    p.add_argument("--max-body-mb", type=float, default=32.0, help="largest request body [default: 32]")
    p.add_argument("--max-items", type=int, default=256, help="most inputs in one request [default: 256]")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds one request may take [default: 60]")
    p.add_argument("--max-length", type=int, default=10_000,
                   help="most characters one generate request may ask for [default: 10,000]")
    p.add_argument("--max-beam", type=int, default=16, help="widest beam one translate request may ask for [default: 16]")
    p.add_argument("--max-work", type=int, default=100_000,
                   help="most characters one generate request may write in all, inputs x length [default: 100,000]")
    p.add_argument("--header-timeout", type=float, default=10.0,
                   help="seconds a request's line and headers may take to arrive [default: 10]")
    p.add_argument("--body-timeout", type=float, default=60.0,
                   help="seconds a request's body may take to arrive [default: 60]")
    p.add_argument("--max-connections", type=int, default=500, help="most open connections [default: 500]")
    p.add_argument("--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug"),
                   help="uvicorn's logging; info logs every request [default: warning]")

    p = add_command(sub, "ui", help="the web UI on this machine: data, designer, training, results, try, trust, export",
                    description="Serve the web UI on http://HOST:PORT/ until Ctrl-C: choose or upload data, pick a "
                                "model or design one from layer cards, train with live curves (in a worker process; "
                                "stop and resume) or let AutoML choose, read the results, try the model, attack and "
                                "explain it, and export it. Runs go to --runs-dir, as from the command "
                                "line. The page is a client of a REST API (/api/..., in /openapi.json) on the same "
                                "app as `deepworks serve`, whose /v1 routes answer for the runs it tries.")
    p.add_argument("--runs-dir", default="runs", help="folder of run directories [default: runs]")
    add_exposure_flags(p, 8080, "every request (a browser: the login link printed at the start)",
                       token_default="a random token per launch",
                       insecure_help="no token at all: any program or web page that reaches the port may use the UI")
    p.add_argument("--data-root", action="append", default=[], metavar="FOLDER",
                   help="a folder whose data the UI may read, besides --runs-dir and its uploads (repeat for more)")

    p = add_command(sub, "runs", help="list runs with their status and best metric")
    p.add_argument("--runs-dir", default="runs", help="folder of run directories [default: runs]")
    p.add_argument("--json", action="store_true", help="print JSON on stdout")
    return parser


SERVE_EXAMPLES = """examples:
  deepworks serve runs/photos-resnet                            http://127.0.0.1:8000, no token needed locally
  deepworks serve runs/photos-resnet runs/notes-gru --token s3cret-token --runtime onnx
  deepworks serve photos=runs/photos-resnet --host 0.0.0.0 --token s3cret-token

  curl -s localhost:8000/v1/models
  curl -s -F file=@cat.jpg -F top_k=2 localhost:8000/v1/models/photos-resnet/predict
  curl -s -H 'Content-Type: application/json' -d '{"inputs": "Dear ", "length": 100, "stream": true}' \\
       localhost:8000/v1/models/notes-gru/generate
"""


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

TRUST_EXAMPLES = """examples:
  deepworks attack runs/mnist-lenet --eps 0.1                   PGD-40 on 1,000 test images, curve, triptychs
  deepworks attack runs/mnist-lenet --method fgsm --eps 0.05 --json
  deepworks attack runs/mnist-lenet --image seven.png --target 1 --eps 0.2
  deepworks attack runs/mnist-lenet --fool 3                    an image from noise that it calls 3 at 99%
  deepworks train --data mnist --adversarial pgd --eps 0.3      adversarial training, robust accuracy reported
"""


def fmt(value, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else ("-" if value is None else str(value))


def cmd_train(args) -> int:
    from .. import api

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
    if hasattr(trained, "summary"):  # --split speaker: a run per speaker (crossval.Folds)
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
    lines += [("speaker", f"{r['speaker']:<12} accuracy {r['accuracy']:.4f} on {r['clips']} clips never heard in "
                          f"training") for r in summary["speakers"]]
    lines += [("mean", f"{summary['mean_accuracy']:.4f} (worst: {summary['worst']['speaker']}, "
                       f"{summary['worst']['accuracy']:.4f})"), ("report", summary["report"])]
    print_labelled(lines)
    return 0


def setting_flags(args) -> dict:
    """The settings given as flags, checked (a bad flag is named as the user typed it)."""
    overrides = {k: v for k, v in vars(args).items() if k in fields_by_key()}
    apply_overrides(Config(), overrides, COMMAND_LINE)
    return overrides


def print_labelled(lines: list[tuple[str, str]]) -> None:
    for label, text in lines:
        print(f"{label:<9} {text}")


def cmd_automl(args) -> int:
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


def cmd_evaluate(args) -> int:
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
    for line in (task.report_class or task).describe_metrics(metrics):
        print(line)
    return 0


def cmd_predict(args) -> int:
    from .. import api

    predictions = api.load(args.run).predict(args.images, top_k=args.top_k)
    if args.json:
        print(json.dumps(predictions, indent=2))
        return 0
    for item in predictions:
        shown = "  ".join(f"{p['class']} {p['probability']:.1%}" for p in item["predictions"])
        print(f"{item['input']}: {shown}")
    return 0


def cmd_detect(args) -> int:
    from .. import api

    found = api.load(args.run).detect(args.images, threshold=args.threshold, max_boxes=args.max_boxes, out=args.out,
                                      class_iou=args.class_iou)
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    for item in found:
        drawn = f"  -> {item['drawn']}" if "drawn" in item else ""
        print(f"{item['input']} ({item['width']}x{item['height']}): {len(item['boxes'])} object(s){drawn}")
        for b in item["boxes"]:
            x1, y1, x2, y2 = b["box"]
            print(f"  {b['class']:<16} {b['score']:.2f}  {x1:g},{y1:g}-{x2:g},{y2:g}")
    return 0


def cmd_generate(args) -> int:
    import secrets
    import time

    from .. import api

    trained = api.load(args.run)
    seed = secrets.randbits(31) if args.seed is None else args.seed
    chars = trained.stream(args.prime, args.length, args.temperature, args.top_k, seed)
    t0 = time.perf_counter()
    if args.json:
        text = "".join(chars)
        print(json.dumps({"run": str(trained.run.path), "prime": args.prime, "temperature": args.temperature,
                          "top_k": args.top_k, "seed": seed, "length": args.length, "text": args.prime + text,
                          "chars_per_s": round(len(text) / max(time.perf_counter() - t0, 1e-9), 1)}, indent=2))
        return 0
    live = sys.stdout.isatty()
    sys.stdout.write(args.prime)
    for ch in chars:
        sys.stdout.write(ch)
        if live:
            sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def cmd_translate(args) -> int:
    from pathlib import Path

    from .. import api
    from ..data.pairs import read_lines
    from ..errors import DataError

    empty = [i + 1 for i, s in enumerate(args.sentences) if not s.strip()]
    if empty:
        raise DataError(f"Sentence {empty[0]} on the command line is empty. Give each sentence some words.")
    sentences = list(args.sentences)
    if args.file:
        sentences += [line for line in read_lines(Path(args.file), args.encoding) if line.strip()]
    if not sentences and not sys.stdin.isatty():
        sentences = [line.strip() for line in sys.stdin if line.strip()]
    if not sentences:
        raise DataError("No sentences to translate. Give them as arguments, with --file FILE, or on standard input.")
    trained = api.load(args.run)
    results = trained.translate(sentences, beam=args.beam, length_penalty=args.length_penalty)
    if args.plot:
        from ..tasks.translate import plot_alignment

        plot_alignment(results[0], Path(args.plot))
        print(f"wrote {args.plot} (where attention looked while translating the first sentence)", file=sys.stderr)
    if args.json:
        print(json.dumps([{**r, "attention": r["attention"].round(4).tolist()} for r in results], indent=2))
        return 0
    for r in results:
        print(r["translation"] if len(results) == 1 and not args.file else f"{r['source']}\t{r['translation']}")
    return 0


def cmd_sample(args) -> int:
    import secrets
    from pathlib import Path

    from .. import api
    from ..errors import DataError
    from ..report import save_image_grid

    if not 1 <= args.scale <= MAX_SCALE:
        raise DataError(f"--scale must be from 1 to {MAX_SCALE}. Received: {args.scale}.")
    trained = api.load(args.run)
    seed = secrets.randbits(31) if args.seed is None else args.seed
    if args.interpolate is not None:
        images = trained.interpolate(args.interpolate, seed, args.label)
        grid = save_image_grid(images, Path(args.out), cols=len(images), scale=args.scale)
    else:
        images = trained.sample(args.n, seed, args.label)
        grid = save_image_grid(images, Path(args.out), scale=args.scale)
    files = []
    if args.images:
        for i, img in enumerate(images):
            files.append(str(save_image_grid(img[None], Path(args.images) / f"sample-{seed}-{i:04d}.png", pad=0)))
    if args.json:
        print(json.dumps({"run": str(trained.run.path), "grid": str(grid), "images": files, "seed": seed,
                          "n": len(images), "class": args.label, "interpolation": args.interpolate is not None}, indent=2))
        return 0
    print(f"wrote {grid} ({len(images)} images, seed {seed})" + (f" and {len(files)} PNGs in {args.images}" if files else ""))
    return 0


MAX_SCALE = 16  # `sample --scale`: 16 times a 64 px image is 1,024 px, plenty to look at


def emit(result: dict, as_json: bool, lines) -> int:
    """Print a command's result as JSON (for scripts), or as the lines `lines(result)` yields (for people)."""
    from ..trust.tools import dumps

    print(dumps(result) if as_json else "\n".join(lines(result)))
    return 0


def cmd_attack(args) -> int:
    from .. import api
    from ..errors import ConfigError

    trained = api.load(args.run)
    if args.fool is not None:
        def fooled(r):
            verdict = "reached" if r["reached"] else f"did not reach {r['asked']:.0%} in {r['steps']} steps"
            yield (f"wrote {r['file']}: the model says {r['class']} with {r['confidence']:.2%} ({verdict}) to an "
                   f"image made from noise")
        return emit(trained.fool(args.fool, args.confidence, args.out), args.json, fooled)
    try:
        curve = None if args.curve is None else [float(e) for e in args.curve.split(",") if e.strip()]
        examples = None if args.examples is None else [int(i) for i in args.examples.split(",") if i.strip()]
    except ValueError:
        raise ConfigError(f"--curve and --examples take comma-separated numbers, like 0,0.05,0.1 and 3,17,42. "
                          f"Received: {args.curve!r}, {args.examples!r}.") from None
    result = trained.attack(args.method, args.eps, norm=args.norm, steps=args.steps, step_size=args.step_size,
                            restarts=args.restarts, random_start=args.random_start, samples=args.samples, curve=curve,
                            show=args.show, examples=examples, image=args.image, target=args.target, out=args.out,
                            progress=False if args.json else None)

    def one_image(r):
        if r["note"]:
            yield f"note: {r['note']}"
        b, a = r["before"], r["after"]
        yield (f"{args.image}: {b['class']} {b['probability']:.1%} -> {a['class']} {a['probability']:.1%} "
               f"({'fooled' if r['success'] else 'not fooled'}; largest pixel change {r['max_change']:.3f})")
        yield f"wrote {r['files']['triptych']} and {r['files']['adversarial_image']}"

    def test_split(r):
        yield (f"{r['method']} eps {r['eps']:g} on {r['samples']} test images: accuracy {r['clean_accuracy']:.4f} "
               f"clean -> {r['adversarial_accuracy']:.4f} under attack")
        if "target_success" in r:
            yield f"pushed to {r['target']}: {r['target_success']:.1%} of the images of other classes"
        yield "eps       " + "  ".join(f"{p['eps']:>7.4g}" for p in r["curve"])
        yield "accuracy  " + "  ".join(f"{p['accuracy']:>7.4f}" for p in r["curve"])
        yield "wrote " + ", ".join(r["files"].values())

    return emit(result, args.json, one_image if args.image else test_split)


def cmd_explain(args) -> int:
    from .. import api

    def lines(r):
        if r["note"]:
            yield f"note: {r['note']}"
        yield f"{args.image}: {r['predicted']} {r['probability']:.1%}"
        for a in r["attributions"]:
            yield (f"  {a['method']:<22} {a['class']:<14} attributions sum {a['attribution_sum']:+.3f}  "
                   f"completeness gap {a['completeness_gap']:+.4f}")
        yield f"wrote {r['file']}"

    return emit(api.load(args.run).explain(args.image, args.label, args.out, args.steps), args.json, lines)


def cmd_visualize(args) -> int:
    from .. import api

    def lines(r):
        yield "classes: " + ", ".join(f"{c['class']} {c['probability']:.0%}" for c in r["classes"])
        yield "wrote " + ", ".join(r["files"].values())

    return emit(api.load(args.run).visualize(args.label, args.layer, args.channels, args.out, args.steps), args.json,
                lines)


def cmd_represent(args) -> int:
    from .. import api

    def lines(r):
        yield f"{r['layer']}, {r['samples']} test images; a linear classifier on that layer gets:"
        for row in r["snapshots"]:
            yield f"  {row['snapshot']:<10} {row['linear_separability']:.1%}  ({row['dimensions']} dimensions)"
        yield f"wrote {r['file']}"

    return emit(api.load(args.run).representations(args.layer, args.method, args.samples, args.out), args.json, lines)


def cmd_audit(args) -> int:
    from pathlib import Path

    from .. import api

    def lines(r):
        yield f"{r['description']}: " + ", ".join(f"{k} {v:,}" for k, v in r["splits"].items())
        for f in r["findings"]:
            yield f"{f['severity']:<8} {f['check']}: {f['message']}"
            if f["advice"]:
                yield f"{'':<9}what to do: {f['advice']}"
        yield f"report   {r['report']}"

    name = Path(args.data).name or "data"
    result = api.audit(args.data, data_dir=args.data_dir, image_size=args.image_size,
                       out=args.out or f"audit-{name}", progress=not args.json)
    return emit(result, args.json, lines)


def cmd_demo(args) -> int:
    from ..trust.demo import representation_demo

    def lines(r):
        s, g = r["spirals"], r["rings"]
        yield f"spirals: a straight line {s['linear']:.0%}, one hidden layer {s['hidden']:.0%}  -> {s['figure']}"
        yield f"rings:   a straight line {g['cartesian']:.0%} in x, y; {g['polar']:.0%} in polar coordinates  -> {g['figure']}"

    return emit(representation_demo(args.out), args.json, lines)


def cmd_export(args) -> int:
    from ..exporting.exporter import export_run

    card = export_run(args.run, args.format, args.out, args.exporter)
    if args.json:
        print(json.dumps(card, indent=2))
        return 0
    for g in card["graphs"]:
        print(f"wrote {card['folder']}/{g['file']} ({g['exporter']}; matches torch to {g['max_abs_diff']:.1g} at batch "
              f"{g['verified']['batch']})" + (f"; dynamo failed: {g['fallback_reason']}" if g.get("fallback_reason") else ""))
    print(f"wrote {card['folder']}/model.json, weights.safetensors and README.md (how to use it without deepworks)")
    return 0


def cmd_import(args) -> int:
    from ..exporting.importer import import_model

    trained = import_model(args.file, args.task, args.classes, args.image_size, args.normalise, args.channels,
                           args.model, args.name, args.runs_dir)
    meta = trained.task.meta
    print(f"wrote {trained.run.path}: {len(meta['classes'])} classes, {meta['channels']}x{meta['image_size']}x"
          f"{meta['image_size']} images. Try: deepworks predict {trained.run.path} IMAGE; deepworks evaluate "
          f"{trained.run.path} --data LABELLED-FOLDER; deepworks serve {trained.run.path}")
    return 0


def cmd_serve(args) -> int:
    import os

    from ..errors import ConfigError
    from ..serving import Limits, serve

    for flag, value, low in (("--port", args.port, 1), ("--max-batch", args.max_batch, 1),
                             ("--max-items", args.max_items, 1), ("--max-length", args.max_length, 1),
                             ("--max-beam", args.max_beam, 1), ("--max-work", args.max_work, 1),
                             ("--max-connections", args.max_connections, 1)):
        if value < low or (flag == "--port" and value > 65535):
            raise ConfigError(f"{flag} must be {'from 1 to 65,535' if flag == '--port' else 'at least 1'}. "
                              f"Received: {value}.")
    for flag, value in (("--max-wait-ms", args.max_wait_ms), ("--max-body-mb", args.max_body_mb),
                        ("--timeout", args.timeout), ("--header-timeout", args.header_timeout),
                        ("--body-timeout", args.body_timeout)):
        if not 0 <= value < float("inf") or (flag != "--max-wait-ms" and value == 0):
            raise ConfigError(f"{flag} must be a positive number. Received: {value}.")
    limits = Limits(args.max_body_mb, args.max_items, args.timeout, args.max_batch, args.max_wait_ms, args.max_length,
                    args.max_beam, args.max_work, args.header_timeout, args.body_timeout, args.max_connections)
    token = args.token or os.environ.get("DEEPWORKS_TOKEN") or None
    serve(args.runs, args.host, args.port, token, args.runtime, limits, args.insecure, args.log_level)
    return 0


def cmd_ui(args) -> int:
    import os

    from ..errors import ConfigError
    from ..ui import ui

    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port must be from 1 to 65,535. Received: {args.port}.")
    ui(args.runs_dir, args.host, args.port, args.token or os.environ.get("DEEPWORKS_TOKEN") or None, args.insecure,
       data_roots=args.data_root)
    return 0


def cmd_runs(args) -> int:
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
    commands = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "detect": cmd_detect,
                "generate": cmd_generate,
                "translate": cmd_translate, "sample": cmd_sample, "attack": cmd_attack, "explain": cmd_explain,
                "visualize": cmd_visualize, "represent": cmd_represent, "audit": cmd_audit, "demo": cmd_demo,
                "export": cmd_export, "import": cmd_import, "serve": cmd_serve, "ui": cmd_ui, "runs": cmd_runs,
                "automl": cmd_automl, "compare": cmd_compare}
    try:
        from ..training.threads import configure

        configure(args.threads)
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


if __name__ == "__main__":
    sys.exit(main())
