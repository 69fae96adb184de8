"""`deepworks use RUN [INPUTS...] [--OPTION VALUE ...]`: the one verb that uses a trained run of any task, and its
aliases, the verbs the task cards declare (predict, generate, translate, sample, detect).

`use` takes the options the run's face declares (`face.use_options`), so its flags come from the run, not from
here: `deepworks use RUN --help` lists them, and each value is checked by the face, with the face's message, as
the API and the server check it. The aliases keep the flags, output and messages they had before `use`; a verb a
card declares without flags of its own here is `use` under that name, for runs of that verb."""

from __future__ import annotations

import argparse
import json
import sys

from .common import add_class, add_json, add_run_command, add_seed, common_options, seed_of

MAX_SCALE = 16  # `sample --scale`: 16 times a 64 px image is 1,024 px, plenty to look at


def add(sub) -> None:
    from ..cards import verbs

    add_use(sub)
    for verb in verbs():
        if verb in ALIASES:
            ALIASES[verb](sub)
        else:
            add_alias(sub, verb)


def add_use(sub) -> None:
    add_use_command(sub, "use", None)


def add_alias(sub, verb: str) -> None:
    """A verb of a card that has no flags of its own here: `use`, for runs whose face does `verb`."""
    add_use_command(sub, verb, verb, help=f"{verb} with a trained run (deepworks use RUN, for runs that {verb})",
                    description=f"The same as `deepworks use RUN ...` for a run that does '{verb}'. "
                                f"`deepworks {verb} RUN --help` lists the run's options.")


def add_use_command(sub, name: str, verb: str | None, **kwargs) -> None:
    """`use` as `name`: RUN, then everything after it left for the run's own parser (options_parser). A `verb`
    makes it refuse runs that do not do that verb; without one, it is `use` itself, with cmd_use's words."""
    p = add_run_command(sub, name, cmd_use, **kwargs)
    p.add_argument("rest", nargs=argparse.REMAINDER, metavar="INPUT/OPTION",
                   help="the inputs (files, folders or text, as the run takes them) and the run's options")
    p.set_defaults(verb=verb)


def cmd_use(args) -> int:
    """use a trained run of any task: its inputs, and the options its task declares

    Use a trained run as its task does (classify, detect, generate, translate, sample ...) and print the answers. The
    options after RUN are the run's own: `deepworks use RUN --help` lists them with their defaults and bounds."""
    from .. import api

    trained = api.load(args.run)
    if args.verb:
        trained.require(args.verb)
    face = trained.face
    given = vars(options_parser(f"deepworks {args.command} {args.run}", face).parse_args(args.rest))
    inputs, as_json, out, threads = (given.pop(k) for k in ("inputs", "json", "out", "threads"))
    engine, workers, shard_size = (given.pop(k) for k in ("engine", "workers", "shard_size"))
    if threads is not None:
        from ..training.threads import configure

        configure(threads)
    if engine or str(out or "").endswith(".parquet"):
        return use_batch(args.run, inputs, out, engine, workers or 2, shard_size or 256, as_json, given)
    if workers is not None or shard_size is not None:
        from ..errors import ConfigError

        raise ConfigError("--workers and --shard-size are for many inputs into Parquet. Expected --out "
                          "FOLDER.parquet (and --engine ray or spark for --workers) with them.")
    items, options = trained.decoded(inputs or None, **given)  # what trained(inputs, **given) does, keeping the
    results = face.infer(trained.serving, items, trained.device, options)  # items and native answers for --out
    answers = [face.encode_result(r, options) for r in results]
    if out:
        from pathlib import Path

        for answer, written in zip(answers, face.write_out(items, results, Path(out), options)):
            answer.update(written)
        print(f"wrote {out}", file=sys.stderr)
    if as_json:
        print(json.dumps(answers, indent=2))
        return 0
    for answer in answers:
        print("\n".join(answer_lines(answer)))
    return 0


def use_batch(run, inputs, out, engine, workers, shard_size, as_json: bool, options: dict) -> int:
    """`use ... --out FOLDER.parquet [--engine ray|spark]`: every input answered into Parquet, in shards (batch.py)."""
    from ..batch import run_batch
    from ..errors import ConfigError

    if not out:
        raise ConfigError(f"--engine {engine} writes the answers to a Parquet folder: add --out results.parquet.")
    done = run_batch(run, inputs, out, engine or "local", workers, shard_size, progress=not as_json, **options)
    if as_json:
        print(json.dumps(done, indent=2))
    else:
        print(f"wrote {done['out']}: {done['inputs']:,} inputs in {done['shards']} Parquet parts ({done['answered']} "
              f"answered on {done['engine']} now, {done['skipped']} done before); read it with "
              f"pandas.read_parquet('{done['out']}')")
    return 0


def options_parser(prog: str, face) -> argparse.ArgumentParser:
    """The arguments after RUN: the inputs, the options the run's face declares (values left as typed, so that the
    face checks them with its own message), --json and --out."""
    p = argparse.ArgumentParser(prog=prog, parents=[common_options()],
                                description=f"Use {face.kind} run ('{face.verb}') and print its answers.")
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="what the run takes: files or folders, or text; none for a run that makes its own")
    group = p.add_argument_group(f"options of '{face.verb}' (this run's own)")
    for name, option in face.use_options.items():
        kwargs = dict(dest=name, default=argparse.SUPPRESS, help=option_help(option).replace("%", "%%"))
        flag = "--" + name.replace("_", "-")
        if option.kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        else:
            group.add_argument(flag, metavar=name.upper(), **kwargs)
    p.add_argument("--out", metavar=face.out_metavar, help=face.out_help + "; FOLDER.parquet: every input's answer "
                   "as Parquet, in shards, resumable")
    batch = p.add_argument_group("many inputs at once (--out FOLDER.parquet)")
    batch.add_argument("--engine", choices=("local", "ray", "spark"),
                       help="where the shards are answered: this process, Ray Data's actors or Spark [default: local]")
    batch.add_argument("--workers", type=int, help="Ray actors or Spark tasks at once [default: 2]")
    batch.add_argument("--shard-size", type=int,
                       help="inputs per shard: one Parquet part each, the unit a second start skips [default: 256]")
    add_json(p, "the answers")
    return p


def option_help(option) -> str:
    """An option's help with its choices, bounds and default, as the face declares them."""
    from ..usage import bounds

    text = option.help or ""
    if option.choices:
        text += " One of: " + ", ".join(map(str, option.choices)) + "."
    if option.low is not None or option.high is not None:
        text += f"; {bounds(option.low, option.high)}"
    return text + (f" [default: {option.default}]" if option.default is not None else "")


def answer_lines(answer: dict) -> list[str]:
    """One answer for people: classes and boxes as `predict` and `detect` print them, any other answer field by
    field (a picture's base64 by its size: --json prints it, --out writes it)."""
    if "predictions" in answer:
        return [classes_line(answer)] + ([shares_line(answer["tokens"])] if "tokens" in answer else [])
    if "boxes" in answer:
        return boxes_lines(answer)
    if "faces" in answer:
        from .faces import faces_lines

        return faces_lines(answer)
    if "mask_png_base64" in answer or "masks_rle" in answer:
        return [mask_line(answer)]
    return [f"{key}: {shown(key, value)}" for key, value in answer.items()]


def shown(key: str, value) -> str:
    if key.endswith("base64"):
        return f"{len(value):,} characters of base64 (--json prints them; --out writes the pictures)"
    return value if isinstance(value, str) else json.dumps(value)


def classes_line(item: dict) -> str:
    top = "  ".join(f"{p['class']} {p['probability']:.1%}" for p in item["predictions"])
    return f"{item['input']}: {top}"


SPECIAL_TOKENS = ("[CLS]", "[SEP]", "<unk>")  # an encoder's markers: not words a reader can weigh


def shares_line(tokens: list[dict], shown_tokens: int = 6) -> str:
    """The tokens that pushed most toward the class given, then those that pushed most against it, strongest first."""
    words = [t for t in tokens if t["token"] not in SPECIAL_TOKENS]
    pro = sorted((t for t in words if t["share"] > 0), key=lambda t: -t["share"])[:shown_tokens]
    con = sorted((t for t in words if t["share"] < 0), key=lambda t: t["share"])[:max(1, shown_tokens // 2)]
    line = "  because of: " + ("  ".join(f"{t['token']!r} {t['share']:+.2f}" for t in pro) or "(no word for it)")
    return line + ("   despite: " + "  ".join(f"{t['token']!r} {t['share']:+.2f}" for t in con) if con else "")


def mask_line(item: dict) -> str:
    """A mask for people: each class's share of the image, and the files --out wrote."""
    shares = "  ".join(f"{c['class']} {c['share']:.1%}" for c in item["classes"])
    files = f"  -> {item['mask_file']}, {item['overlay_file']}" if "mask_file" in item else ""
    return f"{item['input']} ({item['width']}x{item['height']}): {shares}{files}"


def boxes_lines(item: dict) -> list[str]:
    drawn = f"  -> {item['drawn']}" if "drawn" in item else ""
    lines = [f"{item['input']} ({item['width']}x{item['height']}): {len(item['boxes'])} object(s){drawn}"]
    for b in item["boxes"]:
        x1, y1, x2, y2 = b["box"]
        lines.append(f"  {b['class']:<16} {b['score']:.2f}  {x1:g},{y1:g}-{x2:g},{y2:g}")
    return lines


def add_predict(sub) -> None:
    p = add_run_command(sub, "predict", cmd_predict)
    p.add_argument("images", nargs="+", metavar="FILE", help="image files or folders of images (audio runs: clips)")
    p.add_argument("--top-k", type=int, default=3, help="how many classes to show per image [default: 3]")
    add_json(p)


def add_detect(sub) -> None:
    p = add_run_command(sub, "detect", cmd_detect)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of images")
    p.add_argument("--threshold", type=float,
                   help="the lowest score shown, 0 to 1: lower finds more objects and more mistakes [default: the "
                        "run's, the best F1 on its validation split; 0.3 for runs without one]")
    p.add_argument("--class-iou", type=float,
                   help="boxes of different classes overlapping more than this, 0 to 1, are one object named by the "
                        "best score; 1 keeps a box per class [default: 0.7]")
    p.add_argument("--max-boxes", type=int, default=100, help="the most boxes per image, best first [default: 100]")
    p.add_argument("--out", metavar="DIR", help="write each image with its boxes drawn into this folder")
    add_json(p)


def add_generate(sub) -> None:
    p = add_run_command(sub, "generate", cmd_generate)
    p.add_argument("--prime", default="", help="text to start from and continue [default: a new line]")
    p.add_argument("--length", type=int, default=500, help="characters to generate [default: 500]")
    p.add_argument("--temperature", type=float, default=0.8, help="randomness of the sampling, 0 or above [default: 0.8]")
    p.add_argument("--top-k", type=int, help="sample only among the k likeliest characters [default: all]")
    add_seed(p, "output")
    add_json(p, "the text and settings", ", when done")


def add_translate(sub) -> None:
    p = add_run_command(sub, "translate", cmd_translate)
    p.add_argument("sentences", nargs="*", metavar="SENTENCE", help="sentences to translate")
    p.add_argument("--file", help="a text file with one sentence per line")
    p.add_argument("--encoding", default="utf-8", choices=("utf-8", "latin-1", "utf-16"),
                   help="how --file is decoded [default: utf-8; a UTF-16 file with its byte-order mark is recognised]")
    p.add_argument("--beam", type=int, default=1, help="beam width; 1 is greedy decoding [default: 1]")
    p.add_argument("--length-penalty", type=float, default=0.6,
                   help="beam search: alpha of the length penalty ((5 + length) / 6) ** alpha [default: 0.6]")
    p.add_argument("--plot", metavar="PNG", help="save an attention heatmap of the first sentence to this file")
    add_json(p, after=" (with the attention weights)")


def add_sample(sub) -> None:
    p = add_run_command(sub, "sample", cmd_sample)
    p.add_argument("--n", type=int, default=64, help="how many images [default: 64]")
    p.add_argument("--out", default="samples.png", help="the grid (or strip) PNG to write [default: samples.png]")
    p.add_argument("--images", metavar="FOLDER", help="also write every image as its own PNG into this folder")
    add_seed(p, "images")
    add_class(p, "make this class (name or index); needs a run trained with --conditional")
    p.add_argument("--interpolate", type=int, metavar="STEPS", help="write an interpolation strip of this many steps")
    p.add_argument("--scale", type=int, default=2, help="enlarge the PNG this many times, pixel for pixel [default: 2]")
    add_json(p, "the files written and the seed")


def cmd_predict(args) -> int:
    """name the top-k classes of image files (or audio clips, for an audio run)"""
    from .. import api

    predictions = api.load(args.run).predict(args.images, top_k=args.top_k)
    if args.json:
        print(json.dumps(predictions, indent=2))
        return 0
    for item in predictions:
        print(classes_line(item))
    return 0


def cmd_detect(args) -> int:
    """find the objects in images: a box, class and score for each

    Find objects with a detection run (deepworks train --task detect). Prints each image's boxes as x1,y1-x2,y2 in
    its own pixels with the class and score; --out writes the images with their boxes drawn."""
    from .. import api

    found = api.load(args.run).detect(args.images, threshold=args.threshold, max_boxes=args.max_boxes, out=args.out,
                                      class_iou=args.class_iou)
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    for item in found:
        print("\n".join(boxes_lines(item)))
    return 0


def cmd_generate(args) -> int:
    """write text with a trained text run, streamed as it is sampled

    Sample text one character at a time from a text run. Lower temperatures are safer and more repetitive, higher
    ones more inventive; 0 always takes the likeliest character."""
    import time

    from .. import api

    trained = api.load(args.run)
    seed = seed_of(args)
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
    """translate sentences with a trained translation run

    Translate sentences given as arguments, read from --file (one per line), or from standard input (one per line)
    when none are given."""
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
        from ..tasks.translate_report import plot_alignment

        plot_alignment(results[0], Path(args.plot))
        print(f"wrote {args.plot} (where attention looked while translating the first sentence)", file=sys.stderr)
    if args.json:
        print(json.dumps([{**r, "attention": r["attention"].round(4).tolist()} for r in results], indent=2))
        return 0
    for r in results:
        print(r["translation"] if len(results) == 1 and not args.file else f"{r['source']}\t{r['translation']}")
    return 0


def cmd_sample(args) -> int:
    """make new images with a trained GAN run

    Draw new images from a GAN run's generator: a grid of --n images, or with --interpolate a strip that walks
    between two random points of the noise space. The same --seed gives the same images."""
    from pathlib import Path

    from .. import api
    from ..errors import DataError
    from ..report import save_image_grid

    if not 1 <= args.scale <= MAX_SCALE:
        raise DataError(f"--scale must be from 1 to {MAX_SCALE}. Received: {args.scale}.")
    trained = api.load(args.run)
    seed = seed_of(args)
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


ALIASES = {"predict": add_predict, "detect": add_detect, "generate": add_generate, "translate": add_translate,
           "sample": add_sample}  # the verbs that had flags of their own before `use`, kept as they were
