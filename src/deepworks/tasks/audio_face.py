"""The use of a trained sound classifier: clips in (files, bytes, or arrays of samples), class probabilities out.

Built from the run's config and meta alone (tasks/face.py): the rate, the clip length and the classes that training
fixed. `infer` runs the serving model (models/audio.py AudioServing: the log-mel features inside, the DFT computed
as a convolution), which is also what an export writes and what ONNX Runtime can stand in for.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..errors import DataError
from .face import Face, spread_batches


class AudioFace(Face):
    verb, kind = "predict", "an audio classification"
    batchable = True
    fixed_cost_items = True  # one fixed-size input each: a lone request's forward time is known (Face)
    max_items = 256

    @property
    def use_options(self) -> dict:
        from ..usage import Option

        return {"top_k": Option(int, 3, 1, None, "how many of the likeliest classes to name per clip")}

    def decode_inputs(self, inputs, options: dict, trusted: bool = True) -> list:
        """Clips of any form -> [(name, float32 samples at the run's rate and length)]: paths of audio files (or
        folders of them), the bytes of a file, or arrays of samples already at the run's rate."""
        from ..data.audio import prepare_clip

        m = self.meta
        return audio_items(inputs, m["rate"], self.max_items, trusted,
                           lambda samples, rate: prepare_clip(samples, rate, m["rate"], m["length"]))

    def example_request(self) -> tuple:
        return np.zeros(self.meta["length"], dtype=np.float32), {}

    def serving_model(self, model: nn.Module) -> nn.Module:
        from ..models.audio import AudioServing

        return AudioServing(model).eval()

    @torch.inference_mode()
    def infer(self, model, items: list, device: torch.device, options: dict, batch_size: int = 256) -> list:
        """{'input': name, 'probabilities': (K,) array} per clip, from the serving model (or its ONNX export)."""
        x = torch.from_numpy(np.stack([a for _, a in items]))
        probs = np.concatenate([np.asarray(model(x[i:i + batch_size].to(device)).cpu())
                                for i in range(0, len(x), batch_size)])
        return [{"input": name, "probabilities": p} for (name, _), p in zip(items, probs)]

    def calibration_feeds(self, graph: str, split: tuple, most: int, model=None,
                          batch: int = 32) -> list[dict] | None:
        """The classifier's float32 clips (N, T) of `most` clips spread over a prepared split."""
        return [{"clips": np.ascontiguousarray(b, dtype=np.float32)} for b in spread_batches(split[0], most, batch)]

    def int8_float_nodes(self, graph: str, nodes: list) -> list[str]:
        """The features, through the logarithm of the mel energies, stay in float: a DFT's powers span many orders
        of magnitude, which 256 levels cannot hold; the network after them is what int8 speeds up."""
        logs = [i for i, node in enumerate(nodes) if node.op_type == "Log"]
        return [node.name for node in nodes[:logs[-1] + 1]] if logs else []

    def example_clips(self, n: int, seed: int) -> torch.Tensor:
        """n clips of tones in noise at the run's rate and length: what an export is traced and checked with."""
        g = torch.Generator().manual_seed(seed)
        t = torch.arange(self.meta["length"]) / self.meta["rate"]
        pitch = 200 + 1000 * torch.rand(n, 1, generator=g)
        return 0.5 * torch.sin(2 * torch.pi * pitch * t) + 0.05 * torch.randn(n, len(t), generator=g)

    def export_graphs(self, model: nn.Module) -> list:
        from ..inference import Graph

        return [Graph("classifier", self.serving_model(model), (self.example_clips(2, 0),), (self.example_clips(3, 1),),
                      ["clips"], ["probabilities"], {"clips": {0: "batch"}, "probabilities": {0: "batch"}},
                      "float32 samples (N, T) at the run's rate in, class probabilities (N, K) out; the log-mel "
                      "features are inside, the DFT computed as a convolution")]

    def model_card(self) -> dict:
        m = self.meta
        return {"classes": m["classes"],
                "inputs": [{"name": "clips", "dtype": "float32", "shape": [None, m["length"]],
                            "sample_rate": m["rate"], "range": [-1, 1]}],
                "outputs": [{"name": "probabilities", "dtype": "float32", "shape": [None, len(m["classes"])]}],
                "preprocessing": {"before_graph": f"mono (channels averaged), resampled to {m['rate']} Hz, the "
                                                  f"middle {m['length']} samples of a longer clip, a shorter one "
                                                  f"padded with zeros on both sides",
                                  "inside_graph": "log-mel spectrogram (32 ms Hann frames every 10 ms, "
                                                  f"{m['n_mels']} HTK mel bands)"
                                                  + (", each clip levelled to a peak of 1 and each band's mean over "
                                                     "time subtracted" if m.get("front", {}).get("level") else "")
                                                  + ", normalised per band, then the network"}}

    def encode_result(self, result: dict, options: dict) -> dict:
        from ..usage import top_classes

        return top_classes(result["input"], result["probabilities"], self.meta["classes"], options["top_k"])

    def v2_inputs(self) -> list[dict]:
        return [{"name": "clips", "datatype": "FP32", "shape": [-1, self.meta["length"]]}]

    def v2_outputs(self, results: list) -> dict:
        return {"probabilities": np.stack([r["probabilities"] for r in results]).astype(np.float32)}


def audio_items(inputs, rate: int, limit: int, trusted: bool, prepare) -> list:
    """Recordings of any form -> [(name, prepare(samples, their rate))]: paths of audio files (or folders of them;
    refused when not `trusted`: a server never reads paths on its own disk), the bytes of a file, or arrays of
    samples already at `rate` (one clip (T,) or a batch (N, T)). At most `limit` of them."""
    from ..data.audio import AUDIO_EXTENSIONS, UnreadableAudio, read_audio

    if isinstance(inputs, (str, Path, bytes, bytearray, np.ndarray)) or torch.is_tensor(inputs):
        inputs = [inputs]
    items = []
    for n, value in enumerate(inputs if isinstance(inputs, (list, tuple)) else [inputs]):
        if isinstance(value, (str, Path)):
            if not trusted:
                raise DataError(f"Input {n} is text. Expected a clip: a file upload, {{\"base64\": the file's "
                                f"bytes}}, or an array of samples (the server never reads paths on its own disk).")
            path = Path(value)
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS) if path.is_dir() else [path]
            if not path.exists() or not files:
                raise DataError(f"No such audio file '{path}'. Expected a WAV (or FLAC, OGG) file or a folder "
                                f"of them.")
            sources = [(str(f), f) for f in files]
        elif isinstance(value, (bytes, bytearray)):
            sources = [(f"clip {n}", bytes(value))]
        elif isinstance(value, np.ndarray) or torch.is_tensor(value):
            a = np.asarray(value.detach().cpu() if torch.is_tensor(value) else value, dtype=np.float32)
            if a.ndim not in (1, 2) or not np.isfinite(a).all():
                what = f"shape {a.shape}" if a.ndim not in (1, 2) else "samples that are not finite (NaN or inf)"
                raise DataError(f"Input {n}: Expected a clip as a 1-D array of finite samples at {rate:,} "
                                f"Hz, or a batch of them (N, T). Received: {what}.")
            rows = a if a.ndim == 2 else a[None]
            items += [(f"array {n}" + (f"[{i}]" if a.ndim == 2 else ""), prepare(row, rate))
                      for i, row in enumerate(rows)]
            continue
        elif value is None:
            raise DataError("Expected a clip: a file path, the bytes of a WAV (FLAC, OGG, MP3) file, or an array of "
                            "samples. Received nothing.")
        else:
            raise DataError(f"Cannot use a {type(value).__name__} as a clip. Expected a file path, the bytes of "
                            f"a WAV file, or an array of samples.")
        for name, source in sources:
            try:
                samples, found = read_audio(source, name=name)
            except UnreadableAudio as err:
                raise DataError(f"Cannot use '{name}' as a clip: {err}.") from None
            items.append((name, prepare(samples, found)))
        if len(items) > limit:
            raise DataError(f"Too many clips in one call: more than {limit:,}. Send them in smaller batches.")
    if not items:
        raise DataError("No clips were given. Expected a path, the bytes of a WAV file or an array of samples.")
    return items
