"""int8 graphs beside an export's float ones (`deepworks export RUN --quantize int8`).

ONNX Runtime quantises each graph: statically (int8 weights per channel, uint8 activations, in QDQ form; the softmax
and what the face names (`Face.int8_float_nodes`: a sound classifier's features, a detector's decoding) left in
float) where the run's face says how its training examples become the graph's inputs (`Face.calibration_feeds`), the
activations' ranges measured on CALIBRATION of them; dynamically where the face says so (`Face.int8_method`: int8
weights per channel, activations quantised as they come: a character model's recurrent step, a translation's
encoder and decoder step). Each int8 graph is then checked on the run's test split against the float graph it came
from: the share of examples whose top answer is the same (AGREEMENT at least) and, where the test split has labels,
the accuracy (at most ACCURACY_DROP lower), as the face counts them where it has its own check (`Face.int8_check`: a
translation's next words at each word of the first references), or the face's own metric (a detector's mAP, at most a
point lower: METRIC_DROPS). A graph that fails is not kept, and the card says why: the float graph is still there,
and works. A kept graph's speed against the float one is measured on this machine (batch 1 and 32) and written on
the card: int8 pays on convolutions and products of some width (a ResNet-20: 1.4-2.2x), not on a LeNet-5's
6-channel layers, where the conversions cost more than they save (0.6x).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ..errors import DeepworksError

CALIBRATION = 256      # training examples the activations' ranges are measured on
AGREEMENT = 0.99       # the share of test examples whose top answer int8 must keep
ACCURACY_DROP = 0.005  # the most accuracy int8 may lose on the test split
MOST_CHECKED = 2000    # test examples an int8 graph is checked on, at most (a translation's: words, a batch over)
METRIC_DROPS = {"map": (0.01, "mAP@[.5:.95]")}  # a face's own metric (Face.int8_check) -> the most int8 may lose
TIMED_S = 0.25         # seconds each graph runs at each batch size when their speeds are compared
FLOAT_OPS = ("Softmax",)  # left in float: probabilities keep their precision and still sum to 1 (measured on a
                          # ResNet-20: every other operation in int8 is 1.65x / 2.2x the float graph at batch 1 / 32,
                          # the convolutions and products alone 1.2x / 1.3x: fewer conversions between them)


def int8_name(file: str) -> str:
    return file.replace(".onnx", ".int8.onnx")


def quantize_export(trained, folder: Path, graphs: list[dict]) -> None:
    """Write NAME.int8.onnx beside each float graph that int8 keeps close enough; record on each graph's entry
    'int8': {file, method, checked: {...}} or {'kept': False, 'reason'}."""
    data = prepared_splits(trained)
    if data is None:
        raise DeepworksError(f"--quantize int8 measures and checks the int8 graph on the run's own data, and "
                             f"'{trained.run.path}' was imported without any. Export it without --quantize.")
    face, model = trained.face, trained.model
    test = tuple(x[:MOST_CHECKED] for x in data.test)  # what each int8 graph is checked on
    for g in graphs:
        fp32, int8 = folder / g["file"], folder / int8_name(g["file"])
        calibration = (face.calibration_feeds(g["name"], data.train, CALIBRATION, model)
                       if face.int8_method == "static" else None)
        method = quantize_graph(fp32, int8, calibration, functools.partial(face.int8_float_nodes, g["name"]))
        feeds = face.calibration_feeds(g["name"], test, MOST_CHECKED, model)
        checked = checked_on_test(fp32, int8, feeds, test, functools.partial(face.int8_check, g["name"], model=model))
        reason = refusal(checked)
        if reason:
            int8.unlink(missing_ok=True)
            g["int8"] = {"kept": False, "method": method, "checked": checked, "reason": reason}
        else:  # (checked: there were test feeds)
            speed = speed_vs_float(fp32, int8, calibration or feeds, batch_axes(g))
            g["int8"] = {"kept": True, "file": int8.name, "method": method, "checked": checked,
                         "bytes": int8.stat().st_size, "float_bytes": fp32.stat().st_size,
                         **({"speed_vs_float": speed} if speed else {})}


def batch_axes(graph: dict) -> dict:
    """{input name: its batch axis} of an exported graph's entry (the axis its card leaves unsized)."""
    return {spec["name"]: spec["shape"].index(None) for spec in graph["inputs"] if None in spec["shape"]}


def prepared_splits(trained):
    """The run's splits as in training (None for a run without data of its own: an imported model)."""
    return None if trained.imported else trained.prepared()


def float_nodes(path: Path, chosen=None) -> list[str]:
    """The names of a graph's nodes that stay in float: those of FLOAT_OPS, and those `chosen(nodes)` names (the
    face's int8_float_nodes)."""
    import onnx

    nodes = list(onnx.load(str(path)).graph.node)
    return [n.name for n in nodes if n.op_type in FLOAT_OPS] + (chosen(nodes) if chosen else [])


class Feeds:
    """onnxruntime's CalibrationDataReader over a list of {input name: array}."""

    def __init__(self, feeds: list[dict]):
        self.items = iter(feeds)

    def get_next(self):
        return next(self.items, None)


def quantize_graph(fp32: Path, int8: Path, calibration: list[dict] | None, chosen=None) -> str:
    """Quantise one ONNX file, leaving the float_nodes(chosen) in float; 'static' or 'dynamic'."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = int8.with_name(f".pre-{int8.name}")
    try:
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        if calibration:
            quantize_static(str(prepared), str(int8), Feeds(calibration), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            nodes_to_exclude=float_nodes(prepared, chosen))
            return "static"
        quantize_dynamic(str(prepared), str(int8), weight_type=QuantType.QInt8, per_channel=True)
        return "dynamic"
    except Exception as err:  # onnxruntime's own words: this graph cannot be quantised
        int8.unlink(missing_ok=True)
        raise DeepworksError(f"ONNX Runtime could not quantise {fp32.name} to int8 ({type(err).__name__}: "
                             f"{str(err).splitlines()[0][:200] if str(err) else ''}). Export without --quantize; "
                             f"the float graph works.") from None
    finally:
        prepared.unlink(missing_ok=True)


def checked_on_test(fp32: Path, int8: Path, feeds: list[dict] | None, test: tuple, own_check) -> dict:
    """The int8 graph against the float one on `feeds` of the `test` split: the face's own check where it has one
    (`own_check(runs, test)`, Face.int8_check for this graph: detection's mAP, translation's next words), else
    the top answer's agreement, and both accuracies where the split has a label per answer. Empty when the face
    gives no test inputs for this graph."""
    from .runtime import onnx_session

    if not feeds:
        return {}
    sessions = {"float": onnx_session(fp32), "int8": onnx_session(int8)}
    runs = {key: [session.run(None, feed) for feed in feeds] for key, session in sessions.items()}
    own = own_check(runs, test)
    if own is not None:
        return own
    first = {key: np.concatenate([out[0] for out in outs]) for key, outs in runs.items()}
    if first["float"].ndim != 2:
        return {"examples": len(first["float"]), "max_abs_diff": float(np.abs(first["float"] - first["int8"]).max())}
    return top_answers(first, np.asarray(test[1]) if len(test) > 1 else np.zeros(0))


def top_answers(scores: dict, labels: np.ndarray) -> dict:
    """The float and int8 graphs' top answers ({'float': scores (N, K), 'int8': ...}) against each other: 'examples'
    and 'agreement'; and both accuracies where `labels` holds one per answer."""
    top = {key: value.argmax(1) for key, value in scores.items()}
    found = {"examples": len(top["float"]), "agreement": float((top["float"] == top["int8"]).mean())}
    if labels.ndim == 1 and len(labels) == len(top["float"]):
        found.update(float_accuracy=float((top["float"] == labels).mean()),
                     int8_accuracy=float((top["int8"] == labels).mean()))
    return found


def speed_vs_float(fp32: Path, int8: Path, feeds: list[dict], axes: dict) -> dict:
    """{'batch_1': x, 'batch_32': x}: the int8 graph's examples a second over the float graph's, on this machine,
    the two taking turns on the same inputs (a busy moment falls on both) for about TIMED_S each; `axes`: each
    input's batch axis (a batch of fewer examples where the feeds hold fewer). Empty where it cannot be measured:
    the figure is a note, not a check."""
    from ..sessions import onnx_session

    try:
        sessions = [onnx_session(fp32), onnx_session(int8)]
        return {f"batch_{batch}": examples_per_s_ratio(sessions, feeds, axes, batch) for batch in (1, 32)}
    except Exception:  # (onnxruntime's errors have no common class; the checks above passed)
        return {}


def examples_per_s_ratio(sessions: list, feeds: list[dict], axes: dict, batch: int) -> float:
    """The second session's examples a second over the first's, on the feeds cut to `batch` along their batch axes."""
    import time

    inputs = [{k: np.take(v, np.arange(min(batch, v.shape[axes[k]])), axis=axes[k]) if k in axes else v
               for k, v in feed.items()} for feed in feeds[:4]]
    size = next(v.shape[axes[k]] for k, v in inputs[0].items() if k in axes)
    done, spent = [0, 0], [0.0, 0.0]
    for _ in range(4):
        for i, session in enumerate(sessions):
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < TIMED_S / 4:
                session.run(None, inputs[done[i] // size % len(inputs)])
                done[i] += size
            spent[i] += time.perf_counter() - t0
    return round((done[1] / spent[1]) / (done[0] / spent[0]), 2)


def speed_words(speed: dict) -> str:
    """A card's speed_vs_float in words: 'Ax the float graph's speed at batch 1 and Bx at 32'."""
    return f"{speed['batch_1']:g}x the float graph's speed at batch 1 and {speed['batch_32']:g}x at 32"


def slower(speed: dict | None) -> bool:
    """Whether int8 ran slower than the float graph at every batch size measured (a LeNet's few channels)."""
    return bool(speed) and max(speed.values()) < 1


def own_metric(checked: dict) -> tuple | None:
    """(name, the most int8 may lose, its words) of the face's own metric in a check (Face.int8_check), or None."""
    return next(((metric, *spec) for metric, spec in METRIC_DROPS.items() if f"int8_{metric}" in checked), None)


def checked_words(checked: dict) -> str:
    """What the check found, in words ('' when there was nothing to check): the same top answer for a share of the
    test examples (or what the face's check counts: 'of'), with both accuracies where there are labels, or the face's
    own metric against the float graph's."""
    own = own_metric(checked)
    if own is not None:
        metric, drop, words = own
        return (f"test {words} {checked[f'int8_{metric}']:.4f} against the float graph's "
                f"{checked[f'float_{metric}']:.4f} on {checked['examples']} test examples (kept at most {drop:.2f} "
                f"lower)")
    if "agreement" not in checked:
        return ""
    said = (f"the same top answer for {checked['agreement']:.2%} of {checked['examples']} "
            f"{checked.get('of', 'test examples')}")
    if "int8_accuracy" in checked:
        said += f", accuracy {checked['int8_accuracy']:.4f} against the float graph's {checked['float_accuracy']:.4f}"
    return said


def refusal(checked: dict) -> str | None:
    """Why an int8 graph is not kept, or None."""
    own = own_metric(checked)
    if own is not None:
        metric, drop, words = own
        if checked[f"float_{metric}"] - checked[f"int8_{metric}"] <= drop:
            return None
        return (f"int8's test {words} is {checked[f'int8_{metric}']:.4f} against the float graph's "
                f"{checked[f'float_{metric}']:.4f} (at most {drop:.2f} lower allowed)")
    if "agreement" not in checked:
        return "the test split holds no example to check it on (the float graph's answers could not be compared)"
    if checked["agreement"] < AGREEMENT:
        return (f"int8 changed the top answer of {1 - checked['agreement']:.1%} of the test examples (at most "
                f"{1 - AGREEMENT:.0%} allowed)")
    if "int8_accuracy" in checked and checked["float_accuracy"] - checked["int8_accuracy"] > ACCURACY_DROP:
        return (f"int8's test accuracy is {checked['int8_accuracy']:.4f} against the float graph's "
                f"{checked['float_accuracy']:.4f} (at most {ACCURACY_DROP:.1%} lower allowed)")
    return None
