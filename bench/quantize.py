"""int8 exports against the float ONNX graph they come from (`deepworks export RUN --quantize int8`).

    python bench/quantize.py     # about 25 minutes on 2 cores

Three image classifiers are trained here: LeNet-5 on MNIST (2 epochs), a ResNet-20 (width 16) on Fashion-MNIST
(2 epochs: about 91 %, a model as sure of its answers as a user's), and the same ResNet on CIFAR-10's first 4,000
(15 epochs, the shared data's subset: about 55 %, a model unsure of many answers, where int8 changes more than 1 % of
them and is refused). Each is exported with --quantize int8 (ONNX Runtime's static quantisation, calibrated on 256
training images) and both graphs are measured on the run's test split: accuracy, the share of the same top answers,
the files' sizes, and images a second in ONNX Runtime (2 threads) at batch 1 and 32, the same inputs through both.
Then two more as their exports measure them (the card's checks and speed): the sound guide's default on FSDD's
spoken digits (static, its log-mel features in float, the 1-D CNN in int8) and the text default (a 2-layer LSTM, 3
epochs; dynamic quantisation of its weights, checked step by step on the validation text), and a detector of the
generated shapes (96 px, 10 epochs; its boxes' mAP@[.5:.95] on the test split), and bench/translate.py's GRU and
Transformer on Multi30k de->en, 3 epochs each (both graphs, dynamic; each checked teacher-forced at every word of the
test references: next words the same, and as often the reference's). Goals (issue 35): accuracy within 0.5
point (mAP within 1), top-1 agreement >= 99 %, >= 1.6x the float graph's speed at batch 1 and 32, files >= 3x smaller.

    python bench/quantize.py --only centernet_shapes    # one model, the others' figures kept
    python bench/quantize.py --only gru_multi30k,transformer_multi30k
Writes bench/results/quantize.json.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, calibrate, machine, write  # noqa: E402

import deepworks as dw  # noqa: E402

MODELS = {
    "lenet_mnist": dict(data="mnist", model="lenet", epochs=2),
    "resnet20_fashion_mnist": dict(data="fashion-mnist", model="resnet", depth=20, width=16, epochs=2),
    "resnet20_cifar10_4000": dict(data=str(SHARED_DATA / "cifar10_subset" / "cifar10_train_first4000.npz"),
                                  model="resnet", depth=20, width=16, epochs=15),
}


def images_per_s(sessions: dict, images: np.ndarray, batch: int, rounds: int = 4, seconds: float = 1.0) -> dict:
    """Images a second through each ONNX Runtime session at `batch`: `rounds` turns of about `seconds` each, the
    sessions taking turns, so that a busy moment of the machine falls on both."""
    feeds = [images[i:i + batch] for i in range(0, len(images) - batch + 1, batch)]
    done, spent = dict.fromkeys(sessions, 0), dict.fromkeys(sessions, 0.0)
    for session in sessions.values():
        session.run(None, {"images": feeds[0]})
    for _ in range(rounds):
        for name, session in sessions.items():
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                for feed in feeds[:8]:
                    session.run(None, {"images": feed})
                    done[name] += len(feed)
            spent[name] += time.perf_counter() - t0
    return {name: done[name] / spent[name] for name in sessions}


def measure(name: str, settings: dict, runs: Path) -> dict:
    import onnxruntime as ort

    trained = dw.train(**settings, name=name, runs_dir=str(runs), data_dir=str(SHARED_DATA), progress=False,
                       baseline=False)
    card = dw.export(trained.run.path, quantize="int8")
    graph, folder = card["graphs"][0], Path(card["folder"])
    int8 = graph["int8"]
    test = trained.examples("test")[0]
    images = np.ascontiguousarray(np.asarray(test[:512]).transpose(0, 2, 3, 1))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    files = {"float": graph["file"], **({"int8": int8["file"]} if int8["kept"] else {})}
    sessions = {k: ort.InferenceSession(str(folder / f), options, providers=["CPUExecutionProvider"])
                for k, f in files.items()}
    speed = {f"{k}_batch_{b}": round(v, 1) for b in (1, 32) for k, v in images_per_s(sessions, images, b).items()}
    return {"test_examples": int8["checked"]["examples"], "kept": int8["kept"], "reason": int8.get("reason"),
            "float_accuracy": round(int8["checked"]["float_accuracy"], 4),
            "int8_accuracy": round(int8["checked"]["int8_accuracy"], 4),
            "agreement": round(int8["checked"]["agreement"], 4),
            "float_mb": round(int8.get("float_bytes", 0) / 1e6, 3), "int8_mb": round(int8.get("bytes", 0) / 1e6, 3),
            "size_ratio": round(int8.get("float_bytes", 0) / max(int8.get("bytes", 1), 1), 2), "images_per_s": speed,
            "card_speed_vs_float": int8.get("speed_vs_float"),
            **({f"speed_ratio_batch_{b}": round(speed[f"int8_batch_{b}"] / speed[f"float_batch_{b}"], 2)
                for b in (1, 32)} if int8["kept"] else {})}


def translation_recipe(model: str) -> dict:
    """bench/translate.py's settings for its GRU or Transformer (its data folder and baseline are set here)."""
    from translate import COMMON, MODELS as TRANSLATORS

    return {k: v for k, v in {**COMMON, **TRANSLATORS[model]}.items() if k not in ("data_dir", "baseline")}


CARD_ONLY = {  # measured by the export itself (the card's checks and speed), as a user sees them
    "cnn1d_fsdd": dict(task="audio", data="fsdd"),  # the sound guide's default: spoken digits, 1-D CNN
    "lstm_text": dict(task="text", epochs=3),      # the text default: a 2-layer LSTM on Python's standard library
    "centernet_shapes": dict(task="detect", data="shapes:2000", image_size=96, epochs=10),  # the detector from scratch
    # Multi30k de->en, bench/translate.py's recipes for 3 epochs: both graphs (encoder, decoder step), dynamic
    "gru_multi30k": {**translation_recipe("gru"), "epochs": 3},
    "transformer_multi30k": {**translation_recipe("transformer"), "epochs": 3},
}


def measure_card(name: str, settings: dict, runs: Path) -> dict:
    """A run's int8 export as its card says it: the checks on the test split and the speed against float (batch 1 and
    32: clips, or text streams of the step graph), measured at export on this machine; per graph where the export
    has several (a translation's encoder and decoder step)."""
    trained = dw.train(**settings, name=name, runs_dir=str(runs), data_dir=str(SHARED_DATA), progress=False,
                       baseline=False)
    card = dw.export(trained.run.path, quantize="int8")
    graphs = {g["name"]: card_figures(g["int8"]) for g in card["graphs"]}
    if len(graphs) == 1:
        return next(iter(graphs.values()))
    return {"graphs": graphs, **(loop_bleu(trained, card) if settings.get("task") == "translate" else {})}


def loop_bleu(trained, card: dict) -> dict:
    """Test BLEU of greedy decoding through the exported graphs in ONNX Runtime, float and both in int8 (a graph the
    check refused is quantised again here: what it would have cost), and the share of sentences translated alike."""
    from deepworks.exporting.quantize import int8_name, quantize_graph
    from deepworks.tasks.translate import bleu_and_chrf

    folder = Path(card["folder"])
    for g in card["graphs"]:
        if not g["int8"]["kept"]:
            quantize_graph(folder / g["file"], folder / int8_name(g["file"]), None)
    sources = trained.prepared().test[0]
    references = trained.task.references["test"]  # (the recipe's, set by prepare)
    loops = {kind: greedy_loop(trained, card, sources, [folder / (int8_name(g["file"]) if kind == "int8" else
                                                                  g["file"]) for g in card["graphs"]])
             for kind in ("float", "int8")}
    bleu = {kind: round(bleu_and_chrf(hypotheses, references)["bleu"], 2) for kind, hypotheses in loops.items()}
    same = sum(a == b for a, b in zip(loops["float"], loops["int8"])) / len(references)
    return {"loop_bleu_float": bleu["float"], "loop_bleu_int8": bleu["int8"], "loop_same_sentences": round(same, 4)}


def greedy_loop(trained, card: dict, sources, files: list[Path], batch: int = 100) -> list[str]:
    """The sources (ids) translated greedily by the card's loop over the encoder and decoder step `files`."""
    import onnxruntime as ort

    encoder, step = (ort.InferenceSession(str(f), providers=["CPUExecutionProvider"]) for f in files)
    vocab, names = card["target_vocab"], [i["name"] for i in card["graphs"][1]["inputs"]]
    n_state, eos = len(card["graphs"][1]["outputs"]) - 2, vocab.index("</s>")
    translations = []
    for i in range(0, len(sources), batch):
        src = sources[i:i + batch]
        src = src[:, :max(1, int((src != 0).sum(1).max()))].numpy()
        outs = encoder.run(None, {"src": src})
        tensors, state = outs[:len(outs) - n_state], outs[len(outs) - n_state:]
        prev, rows = np.full(len(src), vocab.index("<s>")), np.zeros((len(src), 0), np.int64)
        for _ in range(2 * src.shape[1] + 10):
            logits, *rest = step.run(None, dict(zip(names, [prev, src, *tensors, *state])))
            prev, state = logits.argmax(1), rest[:n_state]
            rows = np.concatenate([rows, prev[:, None]], 1)
            if (rows == eos).any(1).all():
                break
        for row in rows.tolist():
            row = row[:row.index(eos)] if eos in row else row
            translations.append(trained.face.tokenizer.join([vocab[t] for t in row]))
    return translations


def card_figures(int8: dict) -> dict:
    checked = {k: round(v, 4) if isinstance(v, float) else v for k, v in int8["checked"].items()}
    return {"kept": int8["kept"], "reason": int8.get("reason"), "method": int8["method"], **checked,
            "size_ratio": round(int8.get("float_bytes", 0) / max(int8.get("bytes", 1), 1), 2),
            "card_speed_vs_float": int8.get("speed_vs_float")}


def main() -> None:
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="these models alone (comma-separated names), the others' figures kept from "
                                       "the last results")
    only = set(parser.parse_args().only.split(",")) if parser.parse_args().only else None
    before = calibrate()
    with tempfile.TemporaryDirectory() as runs:
        result = {name: measure(name, settings, Path(runs)) for name, settings in MODELS.items()
                  if only is None or name in only}
        result.update({name: measure_card(name, settings, Path(runs)) for name, settings in CARD_ONLY.items()
                       if only is None or name in only})
    if only is not None:
        from common import RESULTS

        last = json.loads((RESULTS / "quantize.json").read_text())
        result = {**last, **{name: {**figures, "measured": {"calibration_before": before,
                                                             "date": time.strftime("%Y-%m-%d %H:%M")}}
                             for name, figures in result.items()}}
    result.update(goal="accuracy within 0.5 point, agreement >= 0.99, >= 1.6x speed at batch 1 and 32, files >= 3x "
                       "smaller (issue 35)", machine=machine(), calibration={"before": before, "after": calibrate()},
                  load=list(__import__("os").getloadavg()))
    print(result)
    write("quantize", result)


if __name__ == "__main__":
    main()
