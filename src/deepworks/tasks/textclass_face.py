"""The use of a trained text classifier: texts in, class probabilities out.

Built from the run's config and meta alone (tasks/face.py): the classes and the encoder that training fitted (its
hashed n-grams' rule, or its SentencePiece model, kept in meta). `infer` turns the texts into ids with that encoder
and runs the network with a softmax after it; that network is also what an export writes (ids in, probabilities
out), the tokenisation written in the model card so that another runtime can do it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn as nn

from ..errors import DataError
from .face import Face

MAX_CHARS = 100_000  # one text's length at most in a call (a document, not a book): more is refused, not cut
BATCH_IDS = 65_536   # ids through the network at once in `infer`: rows of 256 ids in batches of 256
GROUP = 16           # texts through the network at once in `infer`, sorted by length: MiniLM answered SST-2's dev
# sentences in calls of 64 at 177 a second in groups of 16, against 113 padded to each call's longest
ECHOED = 200         # characters of a text given back with its answer (the answer names it; it needs no copy)
MAX_EXPLAINED = 64   # texts whose words' shares one call may ask for
STEPS_WORDS = "32 forward and backward passes"  # trust/text_attributions.py STEPS, as a message says it


def encoder_of(meta: dict):
    """The run's text encoder (data/subwords.py), as its meta describes it: made once per encoder (a SentencePiece
    model is parsed once, however many calls use it)."""
    described = meta.get("encoder")
    if not isinstance(described, dict):
        from ..errors import ConfigError

        raise ConfigError(f"Expected the run's meta to describe its text encoder. Received: "
                          f"{type(described).__name__}.")
    key = tuple(sorted((k, v) for k, v in described.items() if isinstance(v, (str, int, float, bool))))
    return made_encoder(key)


@lru_cache(maxsize=8)
def made_encoder(key: tuple):
    from ..data.subwords import TextEncoder

    return TextEncoder.from_meta(dict(key))


class Probabilities(nn.Module):
    """A classifier of id rows with a softmax after it: what is served and exported."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model(ids).float().softmax(1)


class TextClassFace(Face):
    verb, kind = "classify", "a text classification"
    batchable = True
    max_items = 1024

    @property
    def use_options(self) -> dict:
        from ..usage import Option

        return {"top_k": Option(int, 3, 1, None, "how many of the likeliest classes to name per text"),
                "explain": Option(bool, False, help="also give each token's share in the likeliest class "
                                                    "(Integrated Gradients; at most 64 texts a call)")}

    def decode_inputs(self, inputs, options: dict, trusted: bool = True) -> list:
        """A text or a list of texts (each one example; a path is read as text, never as a file)."""
        from ..inference import text_items

        texts = text_items(inputs, "classify", "text", self.max_items)
        if not texts:
            raise DataError("classify: Expected one or more texts. Received: none.")
        long = next((i for i, t in enumerate(texts) if len(t) > MAX_CHARS), None)
        if long is not None:
            raise DataError(f"classify: text {long} has {len(texts[long]):,} characters. Expected at most "
                            f"{MAX_CHARS:,}: send a document's paragraphs as texts of their own.")
        return texts

    def example_request(self) -> tuple:
        return ["a short example text"], {}

    def serving_model(self, model: nn.Module) -> nn.Module:
        return Probabilities(model).eval()

    def infer(self, model, items: list, device: torch.device, options: dict) -> list:
        """{'input': the text (cleaned of what JSON cannot carry, and shortened), 'probabilities': (K,)} per text,
        with its 'tokens' and their 'shares' when `explain` is asked. Texts go through the network in batches of at
        most BATCH_IDS ids, so a request's memory is bounded by its count of ids, however long its texts."""
        from ..data.subwords import UNSAFE

        if options.get("explain"):
            self.check_explainable(model, items)
        from .textclass import by_length, trimmed

        ids = torch.from_numpy(encoder_of(self.meta).encode(items))
        # a call of many texts: similar lengths together, each group cut to its longest (less padding to compute)
        order = by_length(ids) if len(ids) > GROUP else torch.arange(len(ids))
        size = max(1, min(GROUP, BATCH_IDS // ids.shape[1]))
        with torch.inference_mode():
            probs = np.concatenate([np.asarray(model(trimmed(ids[order[i:i + size]]).to(device)).cpu())
                                    for i in range(0, len(ids), size)])[torch.argsort(order).numpy()]
        out = [{"input": UNSAFE.sub(" ", text[:ECHOED]), "probabilities": p} for text, p in zip(items, probs)]
        if options.get("explain"):
            self.explain(model.model, ids, probs.argmax(1), items, out, device)
        return out

    def check_explainable(self, model, items: list) -> None:
        if not isinstance(model, Probabilities):
            raise DataError("classify: explain needs the model in torch: ONNX Runtime gives no gradients. Serve the "
                            "run without --runtime onnx to ask for the words' shares.")
        if len(items) > MAX_EXPLAINED:
            raise DataError(f"classify: explain takes at most {MAX_EXPLAINED} texts a call (each costs "
                            f"{STEPS_WORDS}). Received: {len(items):,}.")

    def explain(self, model: nn.Module, ids: torch.Tensor, chosen: np.ndarray, items: list, out: list, device) -> None:
        """Each text's tokens with their shares in the class it was given (trust/text_attributions.py)."""
        from ..trust.text_attributions import token_attributions

        encoder = encoder_of(self.meta)
        shares = token_attributions(model, ids.to(device), torch.from_numpy(chosen).to(device),
                                    unknown=encoder.unk_id).cpu().numpy()
        for row, (text, result) in enumerate(zip(items, out)):
            tokens = encoder.pieces(text)[:ids.shape[1]]
            result["tokens"], result["shares"] = tokens, shares[row, :len(tokens)]

    def encode_result(self, result: dict, options: dict) -> dict:
        from ..usage import top_classes

        out = top_classes(result["input"], result["probabilities"], self.meta["classes"], options["top_k"])
        if "tokens" in result:
            out["tokens"] = [{"token": t, "share": round(float(v), 4)} for t, v in zip(result["tokens"],
                                                                                     result["shares"])]
        return out

    def example_ids(self, n: int, length: int, seed: int) -> torch.Tensor:
        """n rows of `length` random ids (some padding at the end of each but the first): what an export is traced
        and checked with."""
        g = torch.Generator().manual_seed(seed)
        ids = torch.randint(2, encoder_of(self.meta).vocab_size, (n, length), generator=g)
        for row in range(1, n):
            ids[row, max(1, length - row):] = 0
        return ids

    def export_graphs(self, model: nn.Module) -> list:
        from ..inference import Graph

        longest = encoder_of(self.meta).max_len  # a Transformer's positions stop there
        traced, checked = min(9, longest), min(17, longest)
        return [Graph("classifier", self.serving_model(model), (self.example_ids(2, traced, 0),),
                      (self.example_ids(5, checked, 1),), ["ids"], ["probabilities"],
                      {"ids": {0: "batch", 1: "length"}, "probabilities": {0: "batch"}},
                      "int64 token ids (N, L), 0 as padding, in; class probabilities (N, K) out")]

    def model_card(self) -> dict:
        encoder = encoder_of(self.meta)
        how = {"hashed": "control characters and lone surrogates removed, lower-case, words = the regex "
                         "\\w+|[^\\w\\s], then each word followed by the pair it ends ('w1 w2'), each hashed: 2 + "
                         "crc32(its UTF-8) mod (vocab_size - 2)",
               "sentencepiece": "control characters removed, lower-case, then SentencePiece (the model in 'encoder', "
                                "base64): its piece ids",
               "wordpiece": "control characters made spaces, then the WordPiece tokenizer in 'encoder' (a "
                            "tokenizer.json: tokenizers.Tokenizer.from_str(encoder['model']), which pads and cuts "
                            "nothing itself): its ids, [CLS] first and [SEP] last; a longer text cut to max_len "
                            "ids, keeping its [SEP]"
               }[encoder.kind]
        return {"classes": self.meta["classes"], "encoder": self.meta["encoder"],
                "inputs": [{"name": "ids", "dtype": "int64", "shape": [None, None], "padding_id": 0,
                            "unknown_id": encoder.unk_id}],
                "outputs": [{"name": "probabilities", "dtype": "float32",
                             "shape": [None, len(self.meta["classes"])]}],
                "preprocessing": {"before_graph": f"{how}; at most {encoder.max_len} ids per text, rows padded with "
                                                  f"0 to the longest of the batch",
                                  "inside_graph": "the network, then a softmax"}}

    def v2_inputs(self) -> list[dict]:
        return [{"name": "texts", "datatype": "BYTES", "shape": [-1]}]

    def v2_outputs(self, results: list) -> dict:
        return {"probabilities": np.stack([r["probabilities"] for r in results]).astype(np.float32)}
