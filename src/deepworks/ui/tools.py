"""The work behind the Results, Try and Trust pages on a trained run: the confusion matrix's test predictions, the
trust tools (attack, explain, visualize) and a GAN's walk. Every number a request brings is range-checked before
any work starts (steps, eps, index, label), so one request costs seconds, not for ever; and the work runs in a
daemon thread (`off_loop`), so Ctrl-C stops the server even while a request computes."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import threading
from pathlib import Path

from ..registry import get_card
from ..serving.requests import ClientError

TRUST_SAMPLES = 200  # test images an attack from the page is measured on: a second or two for a small model
TRUST_STEPS = {"attack": (10, 100), "explain": (32, 256), "visualize": (64, 512)}  # tool: (default, most)
TOOLS = tuple(TRUST_STEPS)
THREAD_PREFIX = "deepworks-ui-"  # the name of off_loop's threads


async def off_loop(fn, *args):
    """`fn(*args)` in a daemon thread, awaited. Unlike the thread pool's threads, which the interpreter waits for
    at exit, a daemon thread never keeps a stopped server alive: Ctrl-C ends `deepworks ui` while a request is
    still computing (its answer is dropped)."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(method, value):
        if not future.done():
            method(value)

    def work():
        try:
            result = fn(*args)
        except BaseException as err:  # the request's error, raised in the request
            outcome = (future.set_exception, err)
        else:
            outcome = (future.set_result, result)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:  # the server stopped meanwhile: nobody waits for the answer
            pass

    threading.Thread(target=work, name=THREAD_PREFIX + getattr(fn, "__name__", "work"), daemon=True).start()
    return await future


def exit_if_work_is_left() -> None:
    """After Ctrl-C, a request's work may still be computing in its daemon thread: Python's finalisation would pull
    the interpreter from under torch mid-operation ("terminate called without an active exception", an abort).
    The server is stopped and its jobs closed, so the process ends here, at once and cleanly."""
    if any(t.name.startswith(THREAD_PREFIX) and t.is_alive() for t in threading.enumerate()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def test_predictions(path: Path) -> tuple:
    """The run's test images (its own split, as in training), their labels, the model's predictions, the classes."""
    from ..api import load

    trained = load(path, device="cpu")
    if not get_card(trained.cfg.task).trust:
        raise ClientError(400, f"The confusion matrix's images are for image classification runs. Received: a "
                               f"{trained.cfg.task} run.")
    x, y = trained.examples("test")
    pred = trained.face.logits(trained.model, x, trained.device).argmax(1)
    return x.numpy(), y.numpy(), pred.numpy(), list(trained.classes)


def is_whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def checked_label(label):
    """A class named by name or number (or None: every class, or the model's own answer)."""
    if label is not None and not isinstance(label, str) and not is_whole(label):
        raise ClientError(400, f"Expected label as a class name or number. Received: {str(label)[:40]}.")
    return label


def trust_options(body: dict) -> dict:
    """The tool, its steps, eps, method and label, checked before the run is loaded: whole numbers are whole
    numbers (true is no index), steps are bounded per tool, eps is a finite number (its range is the CLI's check)."""
    tool = body.get("tool")
    if tool not in TOOLS:
        raise ClientError(400, f"Expected tool attack, explain or visualize. Received: {str(tool)[:40]!r}.")
    default, most = TRUST_STEPS[tool]
    steps = body.get("steps", default)
    if not is_whole(steps) or not 1 <= steps <= most:
        raise ClientError(400, f"Expected steps from 1 to {most} for {tool} from the page (the command line takes "
                               f"more). Received: {str(steps)[:40]}.")
    eps = body.get("eps", 0.1)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not -1e6 < eps < 1e6:
        raise ClientError(400, f"Expected eps as a number from 0 to 1. Received: {str(eps)[:40]}.")
    label = checked_label(body.get("label"))
    method = body.get("method", "pgd")
    if not isinstance(method, str):
        raise ClientError(400, f"Expected method as fgsm or pgd. Received: {str(method)[:40]}.")
    return {"tool": tool, "steps": steps, "eps": float(eps), "label": label, "method": method}


def trust_tool(path: Path, body: dict) -> dict:
    """One of the trust tools on a run's test image `index`, as the Trust page asks: attack (method, eps), explain
    (saliency), visualize (what each class looks like to the network); figures as PNG data URLs."""
    import tempfile

    from ..api import load

    options = trust_options(body)
    index = body.get("index", 0)
    if not is_whole(index) or index < 0:
        raise ClientError(400, f"Expected index as a test image's number, 0 or more. Received: {str(index)[:40]}.")
    trained = load(path, device="cpu")
    if not get_card(trained.cfg.task).trust:
        raise ClientError(400, f"The trust tools look at image classifiers. Received: a {trained.cfg.task} run.")
    x, _ = trained.examples("test")
    if not index < len(x):
        raise ClientError(400, f"Expected a test image from 0 to {len(x) - 1}. Received: {index!r}.")
    with tempfile.TemporaryDirectory() as out:
        result, figures = run_tool(trained, x, index, options, Path(out))
        images = ["data:image/png;base64," + base64.b64encode(Path(f).read_bytes()).decode() for f in figures]
    result.pop("files", None)
    result.pop("file", None)
    return {"tool": options["tool"], "index": index, "result": json.loads(json.dumps(result, default=str)),
            "images": images}


def run_tool(trained, x, index: int, options: dict, out: Path) -> tuple[dict, list]:
    """(the tool's result, its figures' files)."""
    from PIL import Image

    from ..trust.tools import attack_run, explain_image, visualize_run

    tool, steps = options["tool"], options["steps"]
    if tool == "attack":
        result = attack_run(trained, options["method"], options["eps"], steps=steps, samples=TRUST_SAMPLES, show=1,
                            examples=[index], out=out, progress=False)
        return result, [result["files"]["examples"], result["files"]["curve"]]
    if tool == "explain":
        image = out / f"test-{index}.png"
        a = x[index].numpy()
        Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)).save(image)
        result = explain_image(trained, image, options["label"], out=out, steps=steps)
        return result, [result["file"]]
    result = visualize_run(trained, options["label"], out=out, steps=steps)
    return result, list(result["files"].values())


def latent_walk(path: Path, body: dict) -> dict:
    """A GAN run's walk between two seeded points of its noise space: `steps` images for the page's slider."""
    from ..api import load
    steps, seed = body.get("steps", 9), body.get("seed", 0)
    if not (is_whole(steps) and is_whole(seed)) or not 2 <= steps <= 32 or not 0 <= seed < 2 ** 32:
        raise ClientError(400, f"Expected steps from 2 to 32 and a whole-number seed from 0 to 4294967295. Received: "
                               f"steps {str(steps)[:40]}, seed {str(seed)[:40]}.")
    label = checked_label(body.get("label"))
    trained = load(path, device="cpu")
    images = trained.interpolate(steps, seed, label)
    return {"seed": seed, "images": [png_data_url(a) for a in images]}


def png_data_url(image) -> str:
    """One uint8 (C, H, W) image as a PNG data URL (the page sizes it)."""
    from ..inference import png_base64

    return "data:image/png;base64," + png_base64(image)
