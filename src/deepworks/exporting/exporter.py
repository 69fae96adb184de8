"""Export a trained run as a folder that works without deepworks: ONNX, torch.export (.pt2) or TorchScript.

The folder holds each of the task's graphs (Face.export_graphs: the model with its pre- and post-processing inside,
or a decoder's step for a loop), `model.json` (the card: task, classes or vocabulary, inputs and outputs with their
shapes and dtypes, preprocessing, test metrics, how each graph was made and verified, the weights' sha256, the
deepworks version), the weights as safetensors with that card in their metadata, and a README that shows how to
call the graphs from onnxruntime or torch alone.

Every graph is verified when it is written: the file is loaded back (onnxruntime, torch.export.load, torch.jit.load)
and run on inputs of another batch size than it was traced with, and its outputs must match torch's to 1e-4 (relative
where torch's value is above 1; uint8 images to one level). ONNX goes through the dynamo exporter first; where it
fails or the check does not pass (a recurrent layer's dynamic length, for one), the legacy TorchScript-based
exporter is used, and the card says which and why.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import hashlib
import json
import os
import warnings
from pathlib import Path

import torch

from .._version import __version__
from ..errors import ConfigError, DeepworksError, DiskFull
from ..inference import Graph
from ..model_files import load_pt2
from ..run import atomic_write_bytes, atomic_write_json, atomic_write_text, cpu_state_dict, temp_beside, write_error
from ..tasks.face import Face
from .runtime import onnx_session

FORMATS = {"onnx": ".onnx", "pt2": ".pt2", "torchscript": ".ts.pt"}
EXPORTERS = ("auto", "dynamo", "legacy")
TOLERANCE = 1e-4
FORMAT_NAMES = {"onnx": "ONNX", "pt2": "torch.export", "torchscript": "TorchScript"}


def first_words(err: Exception) -> str:
    """An exporter's error as one plain line: its type and first line, without terminal colours."""
    import re

    while err.__cause__ is not None and "Failed to export" in str(err):  # the exporter's wrapper: say the cause
        err = err.__cause__
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:300] if text else ''}"


def export_run(run_path: str | Path, format: str = "onnx", out: str | Path | None = None, exporter: str = "auto",
               runs_dir: str | Path = "runs", quantize: str | None = None) -> dict:
    """Export a run (see the module's docstring); returns the card, with 'folder' set to where it was written.
    quantize='int8' also writes each ONNX graph in int8 where that keeps its answers (exporting/quantize.py)."""
    from ..api.trained import load

    if format not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}. Received: {format!r}.")
    if exporter not in EXPORTERS:
        raise ConfigError(f"--exporter must be one of {', '.join(EXPORTERS)}. Received: {exporter!r}.")
    if quantize not in (None, "int8"):
        raise ConfigError(f"--quantize takes int8. Received: {quantize!r}.")
    if quantize and format != "onnx":
        raise ConfigError(f"--quantize int8 writes ONNX graphs for ONNX Runtime. Received: --format {format}; use "
                          f"--format onnx.")
    if format == "onnx":
        check_onnx_runtime()
    trained = load(run_path, device="cpu", runs_dir=runs_dir)
    if quantize and not quantizable(trained.face):
        raise ConfigError(f"--quantize int8 is built for these tasks' runs so far: {int8_tasks()}; "
                          f"'{trained.run.path}' is {trained.face.kind} run. Export it without --quantize.")
    kind = (trained.imported or {}).get("kind")
    if kind in ("onnx", "pt2"):
        raise DeepworksError(f"'{trained.run.path}' is an imported {'ONNX file' if kind == 'onnx' else 'torch.export program'} "
                             f"({trained.imported['file']} in the run): it already runs without deepworks, and is not "
                             f"traced again. Use that file (it takes normalised float images (N, C, H, W); the run's "
                             f"model.json has the classes and the normalisation).")
    folder = Path(out) if out is not None else trained.run.path / "export" / format
    prepare_folder(folder)
    model = trained.model.float().eval()
    graphs = trained.face.export_graphs(model)
    check_free_space(folder, model, len(graphs))
    written = [write_graph(g, folder, format, exporter) for g in graphs]
    if quantize:
        from .quantize import quantize_export

        quantize_export(trained, folder, written)
    elif format == "onnx":  # an int8 twin left by an earlier export is another model's now: not beside this card
        from .quantize import int8_name

        for g in written:
            (folder / int8_name(g["file"])).unlink(missing_ok=True)
    card = model_card(trained, format, written)
    weights = folder / "weights.safetensors"
    state = cpu_state_dict(model)
    card["weights"] = {"file": weights.name, "sha256": save_with_card(state, weights, card)}
    atomic_write_json(folder / "model.json", card)
    atomic_write_text(folder / "README.md", usage_text(card))
    return {**card, "folder": str(folder)}


def quantizable(face) -> bool:
    """Whether --quantize int8 is built for this task: its face (or face class) gives the graph's inputs
    (Face.calibration_feeds)."""
    return (face if isinstance(face, type) else type(face)).calibration_feeds is not Face.calibration_feeds


def int8_tasks() -> str:
    """The tasks --quantize int8 is built for, in their cards' words, read off the registered tasks' faces (once
    each)."""
    from ..registry import get_card, get_task, task_names

    words = (get_card(name).words for name in task_names() if quantizable(get_task(name).face_class))
    return ", ".join(dict.fromkeys(words))


def prepare_folder(folder: Path) -> None:
    """The export's folder exists (made if needed) and can be written, or a message says why not and what to do."""
    try:
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"--out '{folder}' is a file. Expected a folder to write the export into (a new one is "
                              f"made). Received: an existing file; pass --out a folder.")
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a name too long, a path through a file, a folder it may not make
        raise DeepworksError(f"Cannot make the folder '{folder}' ({err.strerror or err}). Expected --out to be a "
                             f"folder you may write to; pass --out another folder.") from None
    Path(temp_beside(folder / "probe")).unlink()  # says plainly when the folder cannot be written (read-only)


def check_free_space(folder: Path, model: torch.nn.Module, graphs: int) -> None:
    """Refuse before writing anything when the disk cannot hold the export: each graph and the weights file hold
    the weights once (plus a margin for the graphs themselves and the temporary copy of the largest file)."""
    import shutil

    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    needed = (graphs + 2) * weights + (1 << 20)
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < needed:
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty: a folder made for this export, not one the user had
        raise DiskFull(f"The disk is full: the export needs about {needed / 1e6:.1f} MB and '{folder}' has "
                       f"{free / 1e6:.1f} MB free. Nothing was written. Free some space, or pass --out a folder on "
                       f"another disk.")


def model_settings(cfg) -> dict:
    """The run's model settings that its task takes (cards.applies): a detector's card does not list a translation
    model's attention or a GAN's latent size."""
    from ..cards import applies

    return {k: v for k, v in dataclasses.asdict(cfg.model).items() if applies(f"model.{k}", cfg.task)}


def model_card(trained, format: str, graphs: list[dict]) -> dict:
    face, cfg = trained.face, trained.cfg
    results = trained.results
    test = {k: v for k, v in (results.get("test") or {}).items() if isinstance(v, (int, float))}
    return {"format": "deepworks-export/1", "deepworks_version": __version__, "torch_version": torch.__version__,
            "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "run": trained.run.name, "task": cfg.task, "use": face.verb, "model": model_settings(cfg),
            "graph_format": format, "graphs": graphs, "test_metrics": test,
            "options": {k: o.describe() for k, o in face.use_options.items()}, **face.export_card()}


def save_with_card(state: dict, path: Path, card: dict) -> str:
    """The weights as safetensors with the card (as JSON) in the file's metadata; returns the weights' sha256, taken
    over the tensors alone so that it names the weights whatever the metadata says."""
    from safetensors.torch import save

    sha = state_digest(state)
    atomic_write_bytes(path, save(state, metadata={"deepworks": json.dumps({**card, "weights_sha256": sha})}))
    return sha


def state_digest(state: dict) -> str:
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].numpy().tobytes())
    return digest.hexdigest()


def weights_digest(model: torch.nn.Module) -> str:
    """The sha256 an export's card gives its weights (names and bytes of every tensor, in name order)."""
    return state_digest(cpu_state_dict(model.float()))


def read_card(folder: Path) -> dict | None:
    """An export folder's model.json, or None when there is none (or it cannot be read)."""
    try:
        return json.loads((Path(folder) / "model.json").read_text())
    except (OSError, ValueError):
        return None


def write_graph(graph: Graph, folder: Path, format: str, exporter: str) -> dict:
    """Write one graph in `format`, load it back and check it; its entry in the card."""
    path = folder / f"{graph.name}{FORMATS[format]}"
    graph.module.eval()  # dropout off, however the last graph's exporter left the model the graphs share
    with torch.no_grad():
        expected = as_tuple(graph.module(*graph.check))
    if format == "onnx":
        info = write_onnx(graph, path, expected, exporter)
    else:
        save = write_pt2 if format == "pt2" else write_torchscript
        try:
            save(graph, path)
        except DeepworksError:
            raise
        except Exception as err:  # the tracer's own words, with what to do instead
            raise DeepworksError(f"{FORMAT_NAMES[format]} cannot trace the {graph.name} graph ({first_words(err)}). "
                                 f"Export with --format {'onnx' if format == 'pt2' else 'pt2'} instead.") from None
        got = run_torch_file(path, format, graph.check)
        info = {"exporter": "torch.export" if format == "pt2" else "torch.jit.trace",
                "max_abs_diff": max_difference(expected, got)}
        check_difference(max_difference(expected, got, scaled=True), expected, path)
    return {"name": graph.name, "file": path.name, "doc": graph.doc,
            "inputs": tensor_specs(graph.inputs, graph.example, graph.dynamic),
            "outputs": tensor_specs(graph.outputs, expected, graph.dynamic),
            "verified": {"runtime": "onnxruntime" if format == "onnx" else "torch", "batch": len(graph.check[0]),
                         "tolerance": TOLERANCE}, **info}


def write_onnx(graph: Graph, path: Path, expected: tuple, exporter: str) -> dict:
    tried = []
    for name in (list(graph.exporters) if exporter == "auto" else [exporter]):
        try:
            export_onnx(graph, path, dynamo=name == "dynamo")
            got = run_onnx(path, graph)
            diff, scaled = max_difference(expected, got), max_difference(expected, got, scaled=True)
        except OSError as err:
            if err.errno is None:
                raise
            raise write_error(path, err) from None  # a full disk or a read-only folder: the other exporter fails too
        except Exception as err:  # an exporter's failure is a reason to try the other, and is reported
            tried.append(f"{name}: {first_words(err)}")
            continue
        if scaled <= limit_for(expected):
            return {"exporter": name, "max_abs_diff": diff, **({"fallback_reason": tried[0]} if tried else {})}
        tried.append(f"{name}: the exported graph differs from torch by {diff:.3g} at batch {len(graph.check[0])}")
    path.unlink(missing_ok=True)
    raise DeepworksError(f"Could not export the {graph.name} graph to ONNX: " + "; ".join(tried)
                         + ". Try --format pt2, which keeps it in torch.")


def export_onnx(graph: Graph, path: Path, dynamo: bool) -> None:
    import io

    tmp = temp_name(path)
    kwargs = dict(input_names=graph.inputs, output_names=graph.outputs, opset_version=18)
    if dynamo:
        kwargs.update(dynamo=True, dynamic_shapes=dynamic_shapes(graph), external_data=False)
        reuse_torchlib_table()
    else:
        kwargs.update(dynamo=False, dynamic_axes=graph.dynamic)
    try:
        with contextlib.redirect_stdout(io.StringIO()), quiet_loggers():
            torch.onnx.export(graph.module, graph.example, str(tmp), **kwargs)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def reuse_torchlib_table() -> None:
    """Make the table of ONNX functions for torch's operators once per process. The dynamo exporter asks onnxscript
    for it on every export, and onnxscript (0.7) reads and parses the source of its ~500 functions each time: 0.6-0.8
    s of every graph's export here, half of a small model's. The table is the same list every time (functions
    defined when onnxscript is imported). onnxscript's later API modules import the function from torch_2_5 by name,
    so each one loaded holds it too; where onnxscript no longer has it, nothing changes."""
    import sys

    try:
        from onnxscript._framework_apis import torch_2_5 as apis
    except ImportError:
        return
    made = getattr(apis, "get_torchlib_ops", None)
    if made is None:
        return
    original = getattr(made, "__wrapped__", made)
    cached = made if made is not original else functools.lru_cache(maxsize=1)(original)
    for name, module in list(sys.modules.items()):
        if name.startswith("onnxscript._framework_apis.torch_") and getattr(module, "get_torchlib_ops", None) is \
                original:
            module.get_torchlib_ops = cached


@contextlib.contextmanager
def quiet_loggers():
    """The exporters log progress and notes (torchvision's operators are not installed) that are not the user's
    business: the card says what was used and how it was checked."""
    import logging

    import tempfile

    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._export", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    saved_stderr = os.dup(2)  # the legacy exporter's C++ shape-inference notes go straight to file descriptor 2
    try:
        with tempfile.TemporaryFile() as sink, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            os.dup2(sink.fileno(), 2)
            yield
    finally:
        os.dup2(saved_stderr, 2)
        os.close(saved_stderr)
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def temp_name(path: Path) -> Path:
    """A name beside `path` with the same ending (torch.export.save wants .pt2), renamed into place when complete."""
    return path.with_name(f".partial-{path.name}")


def dynamic_shapes(graph: Graph) -> tuple:
    """The graph's dynamic axes as torch.export Dims, one Dim per axis name so that shared names stay equal."""
    dims: dict[str, torch.export.Dim] = {}

    def dim(name: str):
        if name not in dims:
            dims[name] = torch.export.Dim(name, min=1, max=1 << 20)
        return dims[name]

    return tuple({axis: dim(n) for axis, n in graph.dynamic.get(name, {}).items()} or None for name in graph.inputs)


def write_pt2(graph: Graph, path: Path) -> None:
    """Saved into memory, then written atomically: a full disk is then a clear error, never half a file."""
    import io

    with quiet_loggers():
        program = torch.export.export(graph.module, graph.example, dynamic_shapes=dynamic_shapes(graph))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def write_torchscript(graph: Graph, path: Path) -> None:
    """Saved into memory, then written atomically: torch.jit.save to a full disk aborts the whole process."""
    import io

    with quiet_loggers():  # torch.jit is deprecated in favour of torch.export, and still widely loaded
        traced = torch.jit.trace(graph.module, graph.example, check_trace=False)
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def run_onnx(path: Path, graph: Graph) -> tuple:
    session = onnx_session(path)
    feed = {name: t.numpy() for name, t in zip(graph.inputs, graph.check)}
    return tuple(torch.from_numpy(a) for a in session.run(None, feed))


def run_torch_file(path: Path, format: str, inputs: tuple) -> tuple:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = load_pt2(path).module() if format == "pt2" else torch.jit.load(str(path))
        return as_tuple(module(*inputs))


def as_tuple(out) -> tuple:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def max_difference(expected: tuple, got: tuple, scaled: bool = False) -> float:
    """The largest difference between torch's outputs and the export's; `scaled`: each relative to the size of
    torch's value where that is above 1 (float32 sums round in proportion to their size: a GRU encoder's outputs of
    tens differ by 1e-4 between two correct runtimes)."""
    if len(expected) != len(got) or any(tuple(a.shape) != tuple(b.shape) for a, b in zip(expected, got)):
        raise DeepworksError(f"the exported graph gives outputs of shapes {[tuple(b.shape) for b in got]} where torch "
                             f"gives {[tuple(a.shape) for a in expected]}")

    def scale(a: torch.Tensor):
        return a.double().abs().clamp(min=1) if scaled and a.is_floating_point() else 1

    return max(float(((a.double() - b.double()).abs() / scale(a)).max()) if a.numel() else 0.0
               for a, b in zip(expected, got))


def limit_for(expected: tuple) -> float:
    """1e-4, or one level for uint8 images (a float rounding a hair apart can round a pixel the other way)."""
    return 1.0 if any(t.dtype == torch.uint8 for t in expected) else TOLERANCE


def check_difference(diff: float, expected: tuple, path: Path) -> None:
    if diff > limit_for(expected):
        raise DeepworksError(f"'{path}' does not reproduce the model: its outputs differ from torch's by {diff:.3g} "
                             f"(relative where torch's value is above 1).")


def tensor_specs(names: list[str], tensors: tuple, dynamic: dict) -> list[dict]:
    return [{"name": n, "dtype": str(t.dtype).replace("torch.", ""),
             "shape": [None if axis in dynamic.get(n, {}) else size for axis, size in enumerate(t.shape)]}
            for n, t in zip(names, tensors)]


def int8_lines(int8: dict | None) -> list[str]:
    """What the README says of a graph's int8 copy (--quantize int8)."""
    if not int8:
        return []
    if not int8["kept"]:
        return [f"- int8: not kept ({int8['reason']}); use the float graph"]
    from .quantize import checked_words, speed_words

    found = checked_words(int8.get("checked") or {})
    on_test = f"; {found}" if found else ""

    speed = int8.get("speed_vs_float")
    timed = f"; {speed_words(speed)} where it was exported" if speed else ""
    return [f"- int8 ({int8['method']} quantisation, ONNX Runtime): {int8['file']}, {int8['bytes'] / 1e6:.2f} MB "
            f"against {int8['float_bytes'] / 1e6:.2f}{on_test}{timed}; same inputs and outputs"]


def usage_text(card: dict) -> str:
    """The export folder's README: what is in it and how to call it without deepworks."""
    lines = [f"# {card['run']}: a deepworks {card['task']} model ({card['graph_format']})", "",
             f"Exported by deepworks {card['deepworks_version']} on {card['exported']}. `model.json` describes every "
             f"input and output; `weights.safetensors` holds the weights (sha256 {card['weights']['sha256'][:16]}...) "
             f"with the same card in its metadata.", ""]
    for g in card["graphs"]:
        ins = ", ".join(f"{i['name']} {i['dtype']} {i['shape']}" for i in g["inputs"])
        outs = ", ".join(f"{o['name']} {o['dtype']} {o['shape']}" for o in g["outputs"])
        lines += [f"## {g['file']}", "", g["doc"] + ".", "", f"- inputs: {ins}", f"- outputs: {outs}",
                  f"- made by {g['exporter']}; checked against torch at batch {g['verified']['batch']}: max abs "
                  f"difference {g['max_abs_diff']:.2g}", *int8_lines(g.get("int8")), ""]
    first = card["graphs"][0]
    if card["graph_format"] == "onnx":
        feed = ", ".join(f"'{i['name']}': {i['name']}" for i in first["inputs"])
        lines += ["```python", "import onnxruntime as ort", f"session = ort.InferenceSession('{first['file']}')",
                  f"outputs = session.run(None, {{{feed}}})  # numpy arrays, dtypes and shapes as above", "```", ""]
    elif card["graph_format"] == "pt2":
        lines += ["```python", "import torch", f"model = torch.export.load('{first['file']}').module()", "```", ""]
    else:
        lines += ["```python", "import torch", f"model = torch.jit.load('{first['file']}')", "```", ""]
    if card.get("loop"):
        lines += ["The loop around the step graph: " + card["loop"], ""]
    pre = card.get("preprocessing")
    if isinstance(pre, dict) and pre:
        lines += preprocessing_lines(pre)
    if card.get("postprocessing"):
        lines += ["After the graph: " + card["postprocessing"], ""]
    return "\n".join(lines).rstrip() + "\n"


def preprocessing_lines(pre: dict) -> list[str]:
    """The card's preprocessing in words: what a caller does before the graph, then what the graph does itself
    (with the mean and std it normalises by, where it says it normalises)."""
    inside = {k: pre[k] for k in ("inside_graph", "mean", "std") if k in pre} if "inside_graph" in pre else {}
    before = {k: v for k, v in pre.items() if k not in inside}

    def words(part: dict) -> str:
        return "; ".join(str(v) if k in ("before_graph", "inside_graph") else f"{k.replace('_', ' ')}: {v}"
                         for k, v in part.items())

    return [f"{where} the graph: {words(part)}" + "\n" for where, part in (("Before", before), ("Inside", inside))
            if part]


def check_onnx_runtime() -> None:
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is None:
        raise DeepworksError("ONNX export and the onnx runtime need onnxruntime and onnx: pip install "
                             "'deepworks[export]'.")

