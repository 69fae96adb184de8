"""`deepworks attack`, `explain`, `visualize`, `represent`, `audit` and `demo`: whether to trust a model and its data."""

from __future__ import annotations

import argparse

from .common import add_class, add_command, add_json, add_out_folder, add_run_command, emit

TRUST_EXAMPLES = """examples:
  deepworks attack runs/mnist-smallcnn --eps 0.1                   PGD-40 on 1,000 test images, curve, triptychs
  deepworks attack runs/mnist-smallcnn --method fgsm --eps 0.05 --json
  deepworks attack runs/mnist-smallcnn --image seven.png --target 1 --eps 0.2
  deepworks attack runs/mnist-smallcnn --fool 3                    an image from noise that it calls 3 at 99%
  deepworks attack runs/sst2-fasttext --words 2                 a text classifier: words swapped for neighbours
  deepworks train --data mnist --adversarial pgd --eps 0.3      adversarial training, robust accuracy reported
"""


def add(sub) -> None:
    add_attack(sub)
    add_explain(sub)
    add_visualize(sub)
    add_represent(sub)
    add_audit(sub)
    add_demo(sub)


def add_attack(sub) -> None:
    p = run_tool_parser(sub, "attack", "figures", cmd_attack, examples=TRUST_EXAMPLES)
    p.add_argument("--method", default=None, choices=("fgsm", "pgd", "words"),
                   help="fgsm: one gradient-sign step (fast, weaker); pgd: projected gradient descent; words: a text "
                        "classifier's words swapped for their neighbours in its embedding [default: pgd for images, "
                        "words for text]")
    p.add_argument("--words", type=int, default=3, help="--method words: words changed per text at most [default: 3]")
    p.add_argument("--neighbours", type=int, default=10,
                   help="--method words: replacements tried for each word [default: 10]")
    p.add_argument("--eps", type=float, default=0.1, help="largest change allowed, in pixel units [default: 0.1]")
    p.add_argument("--norm", default="linf", choices=("linf", "l2"),
                   help="linf: each pixel moves at most eps; l2: the whole change has length at most eps (pgd only)")
    p.add_argument("--steps", type=int, default=40, help="pgd: gradient steps [default: 40]")
    p.add_argument("--step-size", type=float, help="pgd: size of each step [default: 2.5 * eps / steps]")
    p.add_argument("--restarts", type=int, default=1, help="pgd: tries from random starts; any success counts [default: 1]")
    p.add_argument("--random-start", action=argparse.BooleanOptionalAction,
                   help="start from a random point within eps [default: on for pgd, off for fgsm]")
    p.add_argument("--samples", type=int, help="test images or texts to attack (the first ones) [default: 1000 "
                                                "images, 200 texts]")
    p.add_argument("--curve", help="comma-separated epsilons for the curve [default: 0, eps/4, eps/2, eps, 1.5 eps, 2 eps]")
    p.add_argument("--show", type=int, default=6,
                   help="triptychs of this many test images, the first the model gets right [default: 6]")
    p.add_argument("--examples", metavar="I,J,...", help="triptychs of these test images instead (indices)")
    p.add_argument("--image", help="attack this one image file instead of the test split")
    p.add_argument("--target", metavar="CLASS", help="targeted attack: push the prediction to this class (name or index)")
    p.add_argument("--fool", metavar="CLASS",
                   help="instead: make an image from noise that the model calls CLASS with --confidence")
    p.add_argument("--confidence", type=float, default=0.99, help="--fool: confidence to reach [default: 0.99]")


def flipped_texts(r: dict):
    yield (f"word substitution on {r['texts']} test texts ({r['attacked']} right before the attack): flipped "
           + ", ".join(f"{p['success_rate']:.1%} with {p['words']} word{'s' if p['words'] > 1 else ''}"
                       for p in r["curve"]))
    for e in r["examples"][:3]:
        swaps = ", ".join(f"{a}->{b}" for a, b in e["changes"])
        yield f"  {e['label']} -> {e['now']}: {e['adversarial'][:100]!r} ({swaps})"
    yield "wrote " + ", ".join(r["files"].values())


def add_explain(sub) -> None:
    p = run_tool_parser(sub, "explain", "figure", cmd_explain)
    p.add_argument("image", help="an image file")
    add_class(p, "also explain this class (name or index)")
    p.add_argument("--steps", type=int, default=64, help="integration steps for integrated gradients [default: 64]")


def add_visualize(sub) -> None:
    p = run_tool_parser(sub, "visualize", "figures", cmd_visualize)
    add_class(p, "only this class (name or index) [default: all, up to 20]")
    p.add_argument("--layer", help="also show channels of this layer (an unknown name lists the layers)")
    p.add_argument("--channels", help="--layer's channels: 3, 0-7 or 1,4,9 [default: the first 8]")
    p.add_argument("--steps", type=int, default=128, help="optimisation steps per image [default: 128]")


def add_represent(sub) -> None:
    p = run_tool_parser(sub, "represent", "figure", cmd_represent)
    p.add_argument("--layer", help="layer to look at [default: the input of the output layer]")
    p.add_argument("--method", default="pca", choices=("pca", "tsne"), help="projection [default: pca]")
    p.add_argument("--samples", type=int, default=1000, help="test images (the first ones) [default: 1000]")


def add_audit(sub) -> None:
    p = add_command(sub, "audit", cmd_audit)
    p.add_argument("data", help="a folder with one sub-folder per class, a CSV, an .npz, or a built-in dataset")
    p.add_argument("--data-dir", help="where built-in datasets are looked for and downloaded to")
    p.add_argument("--image-size", type=int, help="side files are decoded at [default: 32 for folders and CSVs]")
    add_out_folder(p, "report", "audit-NAME")
    add_json(p, "the findings")


def add_demo(sub) -> None:
    p = add_command(sub, "demo", cmd_demo)
    p.add_argument("name", choices=("representation",), help="which demo")
    add_out_folder(p, "figures", "demo-representation", default="demo-representation")
    add_json(p, "the results")


def run_tool_parser(sub, name: str, what: str, handler, **kwargs) -> argparse.ArgumentParser:
    """A command that looks at a trained image run and writes `what` (figures) into its report folder or --out."""
    p = add_run_command(sub, name, handler, **kwargs)
    add_out_folder(p, what, "the run's report folder")
    add_json(p, "the results")
    return p


def cmd_attack(args) -> int:
    """adversarial examples: accuracy under attack, a curve, triptychs

    Attack an image classifier with small, deliberate changes to its inputs. Epsilon is in pixel units (pixels run
    from 0 to 1): 0.1 lets each pixel move by a tenth of its range. Writes an accuracy-against-epsilon curve,
    triptychs (original, amplified perturbation, adversarial image) and a JSON summary into the run's report folder
    (or --out)."""
    from .. import api
    from ..errors import ConfigError

    trained = api.load(args.run)
    method = args.method or ("words" if trained.face.verb == "classify" else "pgd")
    if method == "words":
        return emit(trained.attack("words", max_words=args.words, samples=args.samples or 200,
                                   neighbours=args.neighbours, out=args.out), args.json, flipped_texts)
    args.samples = args.samples or 1000
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
    result = trained.attack(method, args.eps, norm=args.norm, steps=args.steps, step_size=args.step_size,
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
    """saliency: which pixels made the model say a class

    Attributions for one image: integrated gradients (the attributions add up to the change of the class score from a
    black image) and gradient x input, for the predicted class and, with --class, another one. Writes a figure: the
    image, the attribution map (red for the class, blue against) and an overlay."""
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
    """feature visualisation: what each class and channel looks for

    Make images that the network responds to most strongly, from grey noise, with jitter and blur to keep them
    readable: one per class (or --class), one per channel of --layer, and the first layer's filters as images."""
    from .. import api

    def lines(r):
        yield "classes: " + ", ".join(f"{c['class']} {c['probability']:.0%}" for c in r["classes"])
        yield "wrote " + ", ".join(r["files"].values())

    return emit(api.load(args.run).visualize(args.label, args.layer, args.channels, args.out, args.steps), args.json,
                lines)


def cmd_represent(args) -> int:
    """a hidden layer's view of the test images in 2-D, over training

    Project a hidden layer's activations on the test images to 2-D (PCA or t-SNE), coloured by class, for each epoch
    snapshot the run kept (1, 2, 4, 8, ...) and the final model, with how well a linear classifier separates the
    classes there."""
    from .. import api

    def lines(r):
        yield f"{r['layer']}, {r['samples']} test images; a linear classifier on that layer gets:"
        for row in r["snapshots"]:
            yield f"  {row['snapshot']:<10} {row['linear_separability']:.1%}  ({row['dimensions']} dimensions)"
        yield f"wrote {r['file']}"

    return emit(api.load(args.run).representations(args.layer, args.method, args.samples, args.out), args.json, lines)


def cmd_audit(args) -> int:
    """check image data for imbalance, copies, leakage, corrupt files and shortcuts

    Audit labelled image data before trusting a model trained on it: class balance, exact and near copies within and
    across train/test (leakage), corrupt files, file sizes and modes, and classes that image statistics alone give
    away (a shortcut). Prints each finding with what to do, and writes a report."""
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
    """teaching demos that need no data

    representation: two spirals that no straight line separates, a one-hidden-layer network bending the plane until
    one does, and two rings made easy by polar coordinates."""
    from ..trust.demo import representation_demo

    def lines(r):
        s, g = r["spirals"], r["rings"]
        yield f"spirals: a straight line {s['linear']:.0%}, one hidden layer {s['hidden']:.0%}  -> {s['figure']}"
        yield f"rings:   a straight line {g['cartesian']:.0%} in x, y; {g['polar']:.0%} in polar coordinates  -> {g['figure']}"

    return emit(representation_demo(args.out), args.json, lines)
