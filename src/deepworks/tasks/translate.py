"""Translation: an encoder-decoder with attention that learns from sentence pairs.

Data: pairs become word ids (lowercased, punctuation split off) over vocabularies built from the training
pairs (words seen fewer than --min-freq times become <unk>); sources are padded with 0, targets are wrapped
in <s> ... </s>. A dataset's own validation / test pairs are kept; otherwise seeded splits are held out.
Loss: cross-entropy per target word. Metrics: validation loss and perplexity each epoch; BLEU and chrF
(sacrebleu, 13a tokenisation, lowercased references) on the validation and test pairs at the end.
Use (tasks/translate_face.py): `translate` (greedy or beam search with a length penalty); `plot_alignment`
(attention heatmaps) and the report are in tasks/translate_report.py.
"""

from __future__ import annotations

import base64
import io
import math
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import Config
from ..data.pairs import PairWarning, Pairs, build_vocab, load_pairs, read_aligned, read_tsv
from ..errors import ConfigError, DataError
from ..models import evaluating
from ..models.seq2seq import Seq2Seq, TransformerSeq2Seq
from .base import Prepared, Task
from ..registry import builtin_defaults, builtin_models
from ..data.arrays import stratified_split
from .translate_face import MAX_BEAM, Tokenizer, TranslateFace, encode, trim, word_ids
from .translate_report import TranslateReport, plot_alignment

__all__ = ["MAX_BEAM", "Translation", "bleu_and_chrf", "encode", "plot_alignment", "train_subword", "trim"]


class Translation(Task):
    name = "translate"
    models = builtin_models("translate")
    defaults = builtin_defaults("translate")
    default_monitor = "val_loss"
    headline = "bleu"
    unit = ("pair", 1)
    counted = ("pairs", "sentence pairs")
    face_class, report_class = TranslateFace, TranslateReport

    def __init__(self, cfg: Config, meta: dict | None = None):
        super().__init__(cfg, meta)
        self.references: dict[str, list[str]] = {}  # lowercased reference translations of val and test
        self.sources: dict[str, list[str]] = {}
        self.tokenizer = Tokenizer.of(meta or {})  # words, or the run's subwords once prepare has trained them

    # --- data -------------------------------------------------------------------------
    def read(self, spec: str) -> tuple[list[str], list[str]]:
        """Extra pairs named on the command line: a TSV, or 'SOURCE_FILE,TARGET_FILE'."""
        if "," in spec and not Path(spec).exists():
            a, b = spec.split(",", 1)
            return read_aligned(Path(a), Path(b), self.cfg.data.encoding)
        if not Path(spec).is_file():
            raise DataError(f"No such file '{spec}'. Pass a TSV of source<TAB>target, or 'SOURCE_FILE,TARGET_FILE'.")
        src, tgt, _ = read_tsv(Path(spec), self.cfg.data.strict, self.cfg.data.encoding)
        return src, tgt

    def split(self, sentence: str, side: str) -> list[str]:
        """A sentence of a side ('src' or 'tgt') as the run's tokens: words, or subwords."""
        return self.tokenizer.split(sentence, side)

    def tokens(self, sentences: list[str], side: str, what: str, notes: list[str]) -> list[list[str]]:
        cap = self.cfg.data.max_len
        out = [self.split(s, side) for s in sentences]
        long = sum(len(t) > cap for t in out)
        if long:
            message = f"{long} {what} sentence(s) are longer than --max-len {cap} words and were cut to that length."
            warnings.warn(message, PairWarning, stacklevel=2)
            notes.append(message)
        return [t[:cap] for t in out]

    def prepare(self, progress: bool | None = True) -> Prepared:
        d, seed = self.cfg.data, self.cfg.seed
        pairs: Pairs = load_pairs(d.source, d.target, d.data_dir, d.download, d.strict, d.encoding)
        src, tgt = pairs.source, pairs.target
        index = np.arange(len(src))
        test = pairs.test or (self.read(d.test_data) if d.test_data else None)
        val = pairs.val or (self.read(d.val_data) if d.val_data else None)
        if test is None:
            index, held = stratified_split(np.zeros(len(index), dtype=np.int64), d.test_fraction, seed)
            test = ([src[i] for i in held], [tgt[i] for i in held])
        if val is None:
            keep, held = stratified_split(np.zeros(len(index), dtype=np.int64), d.val_fraction, seed + 1)
            val = ([src[index[i]] for i in held], [tgt[index[i]] for i in held])
            index = index[keep]
        train = ([src[i] for i in index], [tgt[i] for i in index])
        if len(train[0]) < 2:
            raise DataError(f"{pairs.description} leaves {len(train[0])} pair(s) for training. Add pairs, or lower "
                            f"--val-fraction / --test-fraction.")
        if not test[0]:
            raise DataError(f"{pairs.description} leaves no pair to test the model on (--test-fraction "
                            f"{d.test_fraction:g} of {len(src)} pairs rounds to none). Add pairs (at least 10), raise "
                            f"--test-fraction, or give --test-data.")
        notes, protos = list(pairs.notes), {}
        if self.meta is None and d.tokenizer == "subword":
            protos = {side: train_subword(sentences, d.vocab_size) for side, sentences in zip(("src", "tgt"), train)}
            self.tokenizer = Tokenizer(protos)
        train_tok = [self.tokens(sentences, side, f"training {name}", notes)
                     for sentences, side, name in zip(train, ("src", "tgt"), ("source", "target"))]
        if self.meta is None:
            self.meta = {"src_vocab": build_vocab(train_tok[0], d.min_freq), "tgt_vocab": build_vocab(train_tok[1], d.min_freq),
                         "max_len": d.max_len, "source": pairs.description,
                         **{f"{side}_subword": proto for side, proto in protos.items()}}
        self.references = {"val": [t.lower() for t in val[1]], "test": [t.lower() for t in test[1]]}
        self.sources = {"val": val[0], "test": test[0]}

        def tensors(side_src, side_tgt, toks=None):
            s_tok, t_tok = toks or (self.tokens(side_src, "src", "source", notes), self.tokens(side_tgt, "tgt", "target", notes))
            return encode(s_tok, self.vocab("src"), False), encode(t_tok, self.vocab("tgt"), True)

        return Prepared(train=tensors(*train, train_tok), val=tensors(*val), test=tensors(*test), meta=self.meta,
                        notes=notes)

    def preview(self, prepared: Prepared, per_class: int = 6) -> dict:
        """The vocabularies' sizes and the first validation pairs, as written."""
        pairs = list(zip(self.sources["val"], self.references["val"]))[:2 * per_class]
        return {"source_vocabulary": len(self.meta["src_vocab"]), "target_vocabulary": len(self.meta["tgt_vocab"]),
                "pairs": [{"source": a, "target": b} for a, b in pairs]}

    def vocab(self, side: str) -> dict[str, int]:
        return word_ids(self.meta, side)

    def batch_order(self, order: torch.Tensor, train, batch_size: int, seed: int) -> torch.Tensor:
        """Batches of sentences of similar length, in random order (fastai's SortishSampler): the shuffled order is
        cut into runs of 50 batches, each run sorted by target length and cut into batches, and the full batches
        shuffled. A batch is then padded to barely more than its sentences, which saves about a third of the
        decoder's steps on Multi30k. The short last batch stays last, where the loop expects it."""
        lengths = (train[1] != 0).sum(1).to(order.device) * 1000 + (train[0] != 0).sum(1).to(order.device)
        runs = [idx[lengths[idx].argsort(descending=True, stable=True)] for idx in order.split(50 * batch_size)]
        batches = list(torch.cat(runs).split(batch_size))
        full, tail = (batches[:-1], batches[-1:]) if len(batches[-1]) < batch_size else (batches, [])
        shuffled = torch.randperm(len(full), generator=torch.Generator().manual_seed(seed)).tolist()
        return torch.cat([full[i] for i in shuffled] + tail)

    # --- model, loss, metrics -------------------------------------------------------------
    def build_model(self) -> nn.Module:
        m = self.cfg.model
        layers = m.depth if m.depth is not None else 1
        if layers < 1:
            raise ConfigError("--depth must be at least 1 for a translation model (it counts stacked layers).")
        vocabs = len(self.meta["src_vocab"]), len(self.meta["tgt_vocab"])
        if m.name == "transformer":
            try:
                return TransformerSeq2Seq(*vocabs, m.width or 256, m.heads, m.depth or 3, m.ff_size or 4 * (m.width or 256),
                                          m.dropout, self.meta["max_len"] + 2, m.tie_weights)
            except ValueError as err:
                raise ConfigError(str(err)) from None
        width = m.width or 256
        try:
            return Seq2Seq(*vocabs, m.name, m.embed_size or (width if m.tie_weights else 128), width, layers,
                           m.bidirectional, m.attention, m.dropout, m.tie_weights)
        except ValueError as err:
            raise ConfigError(str(err)) from None

    def training_step(self, model: nn.Module, batch):
        src, tgt = trim(batch[0]), trim(batch[1])
        logits = model(src, tgt[:, :-1], self.cfg.train.teacher_forcing)
        gold = tgt[:, 1:]
        loss = F.cross_entropy(logits.flatten(0, 1), gold.flatten(), ignore_index=0,
                               label_smoothing=self.cfg.train.label_smoothing)
        real = gold != 0
        row_accuracy = ((logits.argmax(2) == gold) & real).sum(1) / real.sum(1).clamp(min=1)
        return loss, {"accuracy": row_accuracy.sum()}  # per-row word accuracy, summed as the loop expects

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split, device: torch.device, batch_size: int = 256) -> dict:
        total, words = 0.0, 0
        with evaluating(model):
            for i in range(0, len(split[0]), batch_size):
                src, tgt = trim(split[0][i:i + batch_size].to(device)), trim(split[1][i:i + batch_size].to(device))
                logits = model(src, tgt[:, :-1])
                total += F.cross_entropy(logits.flatten(0, 1).float(), tgt[:, 1:].flatten(), ignore_index=0,
                                         reduction="sum").item()
                words += int((tgt[:, 1:] != 0).sum())
        loss = total / max(words, 1)
        return {"loss": loss, "perplexity": math.exp(min(loss, 50))}

    def scores(self, model: nn.Module, split: str, device: torch.device, beam: int = 1) -> dict:
        """BLEU and chrF of the model's translations of a split's ('val' or 'test') sources, and the translations."""
        out = self.make_face().translate(model, self.sources[split], device, beam, self.cfg.eval.length_penalty)
        return {**bleu_and_chrf([r["translation"] for r in out], self.references[split]), "pairs": len(out),
                "beam": beam, "translations": out}

    def test_metrics(self, model: nn.Module, split, device: torch.device) -> dict:
        return {"pairs": len(split[0]), **self.evaluate(model, split, device)}


def train_subword(sentences: list[str], vocab_size: int) -> str:
    """A SentencePiece unigram model of the lowercased sentences, as base64 text (it travels inside model.json).
    The vocabulary may come out smaller than asked for on a small corpus."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(s.lower() for s in sentences), model_writer=model,
                                   vocab_size=vocab_size, model_type="unigram", character_coverage=1.0,
                                   hard_vocab_limit=False, minloglevel=2)
    return base64.b64encode(model.getvalue()).decode("ascii")


def bleu_and_chrf(hypotheses: list[str], references: list[str]) -> dict:
    """sacrebleu's corpus BLEU (13a tokenisation) and chrF of lowercased hypotheses against lowercased references."""
    import sacrebleu

    bleu, chrf = sacrebleu.metrics.BLEU(), sacrebleu.metrics.CHRF()
    hyps, refs = [h.lower() for h in hypotheses], [[r.lower() for r in references]]
    return {"bleu": bleu.corpus_score(hyps, refs).score, "chrf": chrf.corpus_score(hyps, refs).score,
            "bleu_signature": str(bleu.get_signature())}


