"""A task's face: how a trained model of it is used. Decode what a caller gives, infer, encode a JSON-able answer;
export graphs; the Open Inference Protocol's tensors.

A face is built from the run's config and its fitted metadata alone (`Face(cfg, meta)`): the classes, the
vocabulary, the normalisation that training fixed and model.json keeps. It never sees the training data, the
optimizer or the recipe's per-run state, so that the API's `Trained`, the CLI, the HTTP server, the web UI's Try and
the exporter all call one object that serving can build without training anything. LitServe's `LitAPI` (decode
request, predict, encode response) and Ultralytics' predictors draw the same line.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..config import Config
from ..errors import DeepworksError


def spread_batches(x, most: int, batch: int = 32) -> list:
    """`most` examples of `x` spread evenly over it (all of them when it holds fewer), as numpy batches of `batch`:
    a split read in class order would give the first classes alone to whatever takes its first examples. `x`: a
    tensor, or images streamed from files (either gives a batch for a tensor of indices)."""
    import numpy as np

    picked = torch.as_tensor(np.linspace(0, len(x) - 1, min(most, len(x))).round().astype(np.int64))
    return [np.asarray(x[picked[i:i + batch]]) for i in range(0, len(picked), batch)]


class Face:
    """The use of a trained model. Override what your task needs; the defaults say what happens otherwise."""

    verb = "use"                  # what the use is called (the server's route, the CLI's alias): predict, generate ...
    kind = "a model"              # how messages name a run of this task ('an image classification run')
    use_options: dict = {}        # name -> inference.Option: the settings `use` takes (top_k, temperature ...)
    batchable = False             # True: requests can be answered together in one batch (the server batches them)
    max_items = 1024              # the most inputs one call may carry (a server also holds a request to its
                                  # --max-items, and its card shows the lower of the two)
    run_folder = None             # the run's folder (a Path), set by whoever loads the run: where a face that keeps
                                  # state of its own beside the weights finds it (a face recogniser's gallery)

    def __init__(self, cfg: Config, meta: dict):
        self.cfg = cfg
        self.meta = meta

    def decode_inputs(self, inputs, options: dict, trusted: bool = True) -> list:
        """What a caller gives (paths, bytes, PIL images, arrays, text, or a list of them) -> the list of items
        `infer` takes. A user's mistake is a DataError that says what was expected and what was received.
        `trusted` is False for what arrives over the network: text is then never read as a path on this machine."""
        raise DeepworksError(f"{self.kind} run has no use: its task's face defines no decode_inputs.")

    def infer(self, model, items: list, device: torch.device, options: dict) -> list:
        """One answer per item (native values: arrays, tensors). `model` is what `serving_model` returned."""
        raise DeepworksError(f"{self.kind} run has no use: its task's face defines no infer.")

    def encode_result(self, result, options: dict) -> dict:
        """One answer as JSON-able values (what the server sends, and `--json` prints)."""
        return result

    def infer_stream(self, model, items: list, device: torch.device, options: dict):
        """Answers as they are made, encoded: by default each whole answer in turn (text streams characters)."""
        for result in self.infer(model, items, device, options):
            yield self.encode_result(result, options)

    def example_request(self) -> tuple:
        """(inputs, options) of a small request: what the server warms a model up with before it says it is ready."""
        return None, {}

    def as_png(self, results: list) -> bytes | None:
        """The answers as one PNG (a GAN's grid), for a client that asks for an image; None: this task has none."""
        return None

    out_metavar = "PNG"           # what `use --out` names, and its help
    out_help = "also write the answers as one PNG, for a run that makes images"

    def write_out(self, items: list, results: list, out, options: dict) -> list[dict]:
        """`use --out`: write what the answers show to `out` (a Path); returns, per answer, what to add to it (the
        files written for it). By default the answers as one PNG (`as_png`), for a task that makes images."""
        from ..errors import DataError

        png = self.as_png(results)
        if png is None:
            raise DataError(f"--out writes the images a run makes, and {self.kind} run's answers are not images. "
                            f"Use --json for its answers, or --out FOLDER.parquet for many inputs' answers in "
                            f"Parquet.")
        out.write_bytes(png)
        return []

    def serving_model(self, model: nn.Module):
        """What `infer` runs: by default the trained model. A task whose use is one forward pass returns a module
        with the preprocessing inside (uint8 pixels in, probabilities out), which is also what it exports, and which
        ONNX Runtime can stand in for (`runtime='onnx'`)."""
        return model

    def export_graphs(self, model: nn.Module) -> list:
        """The graphs an export writes (inference.Graph): one for a forward pass, several for a loop (a decoder's
        step). The loop itself is documented in the model card."""
        raise DeepworksError(f"{self.kind} run cannot be exported: its task's face defines no export_graphs.")

    fixed_cost_items = False  # True: every item costs the same to compute whatever it holds and whatever the options
                              # (fixed-size images, fixed-length clips), so that a lone request's forward time is
                              # known from the last ones and a short one may run in the server's event loop

    int8_method = "static"  # how --quantize int8 quantises this task's graphs: 'static' (activations' ranges measured
                            # on calibration_feeds of the training split) or 'dynamic' (measured as they come: recurrent
                            # and Transformer graphs, where ONNX Runtime quantises the weights of their layers)

    def calibration_feeds(self, graph: str, split: tuple, most: int, model=None) -> list[dict] | None:
        """`most` examples spread over a prepared split (as the recipe's `prepare` made it; `spread_batches`) as
        inputs of the export's graph `graph`: [{input name: numpy array}], a batch each; what int8 quantisation
        measures activations on and checks its graphs with (exporting/quantize.py). `model` is the trained model,
        for a step graph whose state inputs come from running it. None: this task says not, and --quantize refuses
        it."""
        return None

    def int8_check(self, graph: str, runs: dict, split: tuple, model=None) -> dict | None:
        """How the int8 graph `graph` answers the test split against the float one, from both graphs' outputs
        ({'float': [each feed's outputs], 'int8': [...]}) on calibration_feeds of `split` (`model`: the trained
        model): a task whose metric is not a top answer's (detection's mAP) returns {'examples', 'float_METRIC',
        'int8_METRIC'} with METRIC in exporting/quantize.py's METRIC_DROPS; one whose top answers' labels are not the
        split's own (translation's next words) returns {'examples', 'agreement', 'float_accuracy', 'int8_accuracy'}.
        None: the top answer's agreement and the accuracy, as for a classifier (exporting/quantize.py)."""
        return None

    def int8_float_nodes(self, graph: str, nodes: list) -> list[str]:
        """The names of the nodes of graph `graph` (onnx NodeProtos, in order) that int8 quantisation leaves in float,
        beyond the softmax: a front end whose precision the rest depends on (a sound classifier's log-mel features)."""
        return []

    def model_card(self) -> dict:
        """What a user of an exported or served model needs to know beyond its graphs: classes or vocabulary,
        preprocessing, and how to run the loop around a step graph."""
        return {}

    def export_card(self) -> dict:
        """What an exported model's card holds: the model card, and what only a copy on its own needs (a recogniser's
        language model and word list, which a server's listing leaves out); by default the model card."""
        return self.model_card()

    def v2_inputs(self) -> list[dict]:
        """The Open Inference Protocol's view of the inputs: [{'name', 'datatype', 'shape'}]; a V2 request's
        tensors are handed to `decode_inputs` by name (one tensor: as the inputs)."""
        return []

    v2_sized_by_input = False  # True: the V2 outputs' sizes follow the input's (a mask per pixel), not fixed

    def v2_outputs(self, results: list) -> dict:
        """{name: numpy array} for a V2 response, from `infer`'s answers."""
        return {}
