"""Translation: an encoder-decoder with attention that learns from sentence pairs.

Data: pairs become word ids (lowercased, punctuation split off) over vocabularies built from the training
pairs (words seen fewer than --min-freq times become <unk>); sources are padded with 0, targets are wrapped
in <s> ... </s>. A dataset's own validation / test pairs are kept; otherwise seeded splits are held out.
Loss: cross-entropy per target word. Metrics: validation loss and perplexity each epoch; BLEU and chrF
(sacrebleu, 13a tokenisation, lowercased references) on the validation and test pairs at the end.
Use: `translate` (greedy or beam search with a length penalty) and `plot_alignment` (attention heatmaps).
"""

from __future__ import annotations

import base64
import html
import io
import math
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import Config
from ..data.pairs import BOS, EOS, UNK, PairWarning, Pairs, build_vocab, detokenize, load_pairs, read_aligned, read_tsv, tokenize
from ..errors import ConfigError, DataError
from ..inference import stop_if_cancelled
from ..models import evaluating
from ..models.seq2seq import Seq2Seq, TransformerSeq2Seq, reorder_state
from ..report import image_tag, plot_history, pyplot, save_figure, table
from .base import Prepared, Task, notes_block
from ..registry import builtin_models
from ..data.arrays import stratified_split


def encode(sentences: list[list[str]], vocab: dict[str, int], wrap: bool) -> torch.Tensor:
    """Token lists -> a (N, longest) id tensor padded with 0; `wrap` adds <s> and </s> around each."""
    unk = vocab[UNK]
    rows = [[vocab.get(t, unk) for t in s] for s in sentences]
    if wrap:
        rows = [[vocab[BOS], *r, vocab[EOS]] for r in rows]
    out = torch.zeros(len(rows), max((len(r) for r in rows), default=1), dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, :len(r)] = torch.tensor(r, dtype=torch.long)
    return out


def trim(x: torch.Tensor) -> torch.Tensor:
    """Drop the columns that are padding in every row of the batch."""
    return x[:, :max(1, int((x != 0).sum(1).max()))]


MAX_BEAM = 100  # hypotheses kept by beam search; beyond a few dozen BLEU no longer changes, only the time


class Translation(Task):
    name = "translate"
    models = builtin_models("translate")
    defaults = {"data.source": "dates", "model.name": "gru", "model.activation": "tanh", "train.batch_size": 64,
                "train.clip_grad": 1.0}
    default_monitor = "val_loss"
    headline = "bleu"
    unit = ("pair", 1)
    counted = ("pairs", "sentence pairs")
    use, kind = "translate", "a translation"
    overfit_remedies = "--dropout 0.3, --label-smoothing 0.1, --tie-weights, or more pairs"

    def __init__(self, cfg: Config, meta: dict | None = None):
        super().__init__(cfg, meta)
        self.references: dict[str, list[str]] = {}  # lowercased reference translations of val and test
        self.sources: dict[str, list[str]] = {}
        self._protos: dict[str, str] = {}  # subword models trained by prepare, before they are in meta
        self._processors: dict = {}

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

    def subword(self, side: str):
        """The side's SentencePiece model when the run uses subwords (kept in meta as base64), else None."""
        proto = (self.meta or {}).get(f"{side}_subword") or self._protos.get(side)
        if proto is None:
            return None
        if side not in self._processors:
            import sentencepiece as spm

            self._processors[side] = spm.SentencePieceProcessor(model_proto=base64.b64decode(proto))
        return self._processors[side]

    def split(self, sentence: str, side: str) -> list[str]:
        sp = self.subword(side)
        return sp.encode(sentence.lower(), out_type=str) if sp else tokenize(sentence)

    def join(self, tokens: list[str]) -> str:
        sp = self.subword("tgt")
        return sp.decode_pieces(tokens) if sp else detokenize(tokens)

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
        notes = list(pairs.notes)
        if self.meta is None and d.tokenizer == "subword":
            self._protos = {side: train_subword(sentences, d.vocab_size) for side, sentences in zip(("src", "tgt"), train)}
        train_tok = [self.tokens(sentences, side, f"training {name}", notes)
                     for sentences, side, name in zip(train, ("src", "tgt"), ("source", "target"))]
        if self.meta is None:
            self.meta = {"src_vocab": build_vocab(train_tok[0], d.min_freq), "tgt_vocab": build_vocab(train_tok[1], d.min_freq),
                         "max_len": d.max_len, "source": pairs.description,
                         **{f"{side}_subword": proto for side, proto in self._protos.items()}}
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
        return {t: i for i, t in enumerate(self.meta[f"{side}_vocab"])}

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

    # --- decoding -----------------------------------------------------------------------
    @torch.no_grad()
    def greedy(self, model: nn.Module, src: torch.Tensor, max_steps: int) -> list[tuple[list[int], np.ndarray]]:
        """Batched greedy decoding: (target ids without <s> and </s>, attention weights (T, S)) per sentence."""
        bos, eos = self.vocab("tgt")[BOS], self.vocab("tgt")[EOS]
        enc = model.encode(src)
        state, prev = enc["state"], torch.full((len(src),), bos, dtype=torch.long, device=src.device)
        steps, weights, done = [], [], torch.zeros(len(src), dtype=torch.bool, device=src.device)
        for _ in range(max_steps):
            stop_if_cancelled()  # a server's request whose client is gone stops here
            logits, state, w = model.step(prev, state, enc)
            prev = logits.argmax(1)
            steps.append(prev)
            weights.append(w)
            done |= prev == eos
            if bool(done.all()):
                break
        ids, attn = torch.stack(steps, 1).cpu(), torch.stack(weights, 1).float().cpu()
        out = []
        for row, a, n in zip(ids.tolist(), attn, (src != 0).sum(1).tolist()):
            end = row.index(eos) if eos in row else len(row)
            out.append((row[:end], a[:end + 1, :n].numpy()))
        return out

    @torch.no_grad()
    def beam_search(self, model: nn.Module, src: torch.Tensor, beam: int, alpha: float,
                    max_steps: int) -> list[tuple[list[int], np.ndarray]]:
        """Beam search for a batch of sentences at once: the `beam` hypotheses of every sentence are rows of one
        decoder batch, so each step is one forward pass however many sentences there are. Each hypothesis proposes
        its `beam` likeliest next words; per sentence the best of those continue, and a hypothesis that writes </s>
        is finished with the score log-probability / ((5 + length) / 6) ** alpha (Wu et al. 2016). A sentence is
        done when it has `beam` finished hypotheses, or nothing left to continue. Returns, per sentence, the best
        hypothesis's ids and its attention weights (T, S)."""
        bos, eos = self.vocab("tgt")[BOS], self.vocab("tgt")[EOS]
        n, device = len(src), src.device
        enc = model.encode(src)
        rows = torch.arange(n, device=device).repeat_interleave(beam)  # hypothesis row -> its sentence
        enc_rows = {k: (v.index_select(0, rows) if torch.is_tensor(v) else v) for k, v in enc.items() if k != "state"}
        state = reorder_state(enc["state"], rows)
        scores = [[0.0] + [float("-inf")] * (beam - 1) for _ in range(n)]  # one live hypothesis to start from
        tokens = torch.zeros(n * beam, 0, dtype=torch.long)
        attention = torch.zeros(n * beam, 0, src.shape[1])
        prev = torch.full((n * beam,), bos, dtype=torch.long, device=device)
        finished: list[list[tuple]] = [[] for _ in range(n)]
        live: list[list[int]] = [[b * beam] for b in range(n)]  # rows of each sentence's live hypotheses
        done = [False] * n

        def penalty(length: int) -> float:
            return ((5 + length) / 6) ** alpha

        for _ in range(max_steps):
            stop_if_cancelled()
            logits, state, w = model.step(prev, state, enc_rows)
            w = w.float().cpu()
            top_scores, top_tokens = logits.float().log_softmax(1).topk(beam, 1)
            top_scores, top_tokens = top_scores.cpu().tolist(), top_tokens.cpu().tolist()
            parents, words = [], []
            for b in range(n):
                kept = []
                if not done[b]:
                    candidates = sorted(((scores[b][r - b * beam] + top_scores[r][j], r, top_tokens[r][j])
                                         for r in live[b] for j in range(beam)), key=lambda c: -c[0])
                    for score, r, token in candidates:
                        if token == eos:
                            finished[b].append((score / penalty(tokens.shape[1] + 1), tokens[r].tolist(),
                                                torch.cat([attention[r], w[r:r + 1]])))
                        else:
                            kept.append((score, r, token))
                        if len(kept) == beam:
                            break
                    if len(finished[b]) >= beam or not kept:
                        done[b], kept = True, []
                kept += [(float("-inf"), b * beam, bos)] * (beam - len(kept))  # unused rows keep the batch whole
                scores[b] = [k[0] for k in kept]
                live[b] = [b * beam + i for i, k in enumerate(kept) if k[0] > float("-inf")]
                parents += [k[1] for k in kept]
                words += [k[2] for k in kept]
            if all(done):
                break
            index = torch.tensor(parents)
            tokens = torch.cat([tokens[index], torch.tensor(words)[:, None]], 1)
            attention = torch.cat([attention[index], w[index][:, None]], 1)
            state = reorder_state(state, index.to(device))
            prev = torch.tensor(words, device=device)
        out = []
        for b in range(n):
            if not finished[b]:  # the step limit came first: the live hypotheses are all there is
                finished[b] = [(scores[b][r - b * beam] / penalty(tokens.shape[1]), tokens[r].tolist(), attention[r])
                               for r in live[b]]
            _, ids, attn = max(finished[b], key=lambda f: f[0])
            out.append((ids, attn.numpy()[:, :int((src[b] != 0).sum())]))
        return out

    def translate(self, model: nn.Module, sentences: list[str], device: torch.device, beam: int = 1,
                  alpha: float = 0.6, batch_size: int = 128) -> list[dict]:
        """Translate sentences: [{'source', 'translation', 'source_tokens', 'tokens', 'attention'}] per sentence.
        Words the model never saw become <unk> on the way in; nothing unknown can crash it."""
        if not 1 <= beam <= MAX_BEAM:
            raise DataError(f"--beam must be from 1 to {MAX_BEAM}. Received: {beam:,}.")
        if not math.isfinite(alpha):
            raise DataError(f"--length-penalty must be a finite number. Received: {alpha}.")
        cap = self.meta["max_len"]
        toks = []
        for s in sentences:
            t = self.split(s, "src")
            if len(t) > cap:
                warnings.warn(f"A sentence of {len(t)} words was cut to the model's --max-len of {cap}: "
                              f"'{s[:60]}...'", PairWarning, stacklevel=2)
            toks.append(t[:cap])
        words = [i for i, t in enumerate(toks) if t]  # a sentence without words translates to nothing
        out = [{"source": s, "translation": "", "source_tokens": [], "tokens": [], "attention": np.zeros((1, 0))}
               for s in sentences]
        for i, r in zip(words, self.decode(model, [sentences[i] for i in words], [toks[i] for i in words], device,
                                           beam, alpha, batch_size)):
            out[i] = r
        return out

    def decode(self, model: nn.Module, sentences: list[str], toks: list[list[str]], device: torch.device, beam: int,
               alpha: float, batch_size: int) -> list[dict]:
        tgt_vocab, cap = self.meta["tgt_vocab"], self.meta["max_len"]
        src_all = encode(toks, self.vocab("src"), False)
        results = []
        with evaluating(model):
            for i in range(0, len(toks), batch_size):
                src = trim(src_all[i:i + batch_size]).to(device)
                max_steps = int(min(2 * src.shape[1] + 10, cap + 2))
                if beam == 1:
                    decoded = self.greedy(model, src, max_steps)
                else:
                    decoded = self.beam_search(model, src, beam, alpha, max_steps)
                for j, (ids, attn) in enumerate(decoded):
                    words = [tgt_vocab[k] for k in ids]
                    results.append({"source": sentences[i + j], "translation": self.join(words),
                                    "source_tokens": toks[i + j], "tokens": words, "attention": attn})
        return results

    # --- use: the inference face (inference.py) -------------------------------------------
    max_items = 1024

    @property
    def use_options(self) -> dict:
        from ..inference import Option

        return {"beam": Option(int, self.cfg.eval.beam, 1, MAX_BEAM, "beam width; 1 is greedy decoding"),
                "length_penalty": Option(float, self.cfg.eval.length_penalty, help="beam search's length "
                                         "normalisation alpha (Wu et al. 2016); 0 favours short translations"),
                "attention": Option(bool, False, help="also return the attention weights (target x source tokens)")}

    def decode_inputs(self, inputs, options: dict, trusted: bool = True) -> list:
        """A sentence, or a list of sentences."""
        from ..inference import text_items

        sentences = text_items([] if inputs is None else inputs, "translate", "sentence", self.max_items)
        if not sentences:
            raise DataError("translate: no sentences were given. Expected a sentence or a list of sentences.")
        return sentences

    def example_request(self) -> tuple:
        return "a", {}

    def infer(self, model: nn.Module, items: list, device: torch.device, options: dict) -> list:
        return self.translate(model, items, device, options["beam"], options["length_penalty"])

    def encode_result(self, result: dict, options: dict) -> dict:
        out = {k: v for k, v in result.items() if k != "attention"}
        if options.get("attention"):
            out["attention"] = np.round(result["attention"], 4).tolist()
        return out

    def export_graphs(self, model: nn.Module) -> list:
        """The encoder, and one decoder step: greedy or beam search is a loop of steps (see `card`)."""
        from ..inference import Graph
        from ..models.seq2seq import EncoderGraph, StepGraph, state_parts

        def source(n: int, length: int) -> torch.Tensor:
            g = torch.Generator().manual_seed(n)
            src = torch.randint(4, len(self.meta["src_vocab"]), (n, length), generator=g)
            src[1:, length - 2:] = 0  # padding after the words, as batches have it
            return src

        with torch.no_grad(), evaluating(model):
            enc = model.encode(source(2, 5))
            names = list(model.step_needs)
            encoder = EncoderGraph(model, names)
            n_state = len(state_parts(enc["state"]))
            step = StepGraph(model, names, n_state)

            def step_inputs(n: int, length: int, steps: int) -> tuple:
                src = source(n, length)
                out = encoder(src)
                prev = torch.full((n,), self.vocab("tgt")[BOS])
                tensors, state = out[:len(names)], out[len(names):]
                for _ in range(steps):  # a Transformer's cache grows by a position per step
                    result = step(prev, src, *tensors, *state)
                    prev, state = result[0].argmax(1), result[1:1 + n_state]
                return (prev, src, *tensors, *state)

            example, check = step_inputs(2, 5, 2), step_inputs(3, 7, 3)  # (a size of 1 would be taken as fixed)
        state_names = [f"state{i}" for i in range(n_state)]
        transformer = enc["state"].dim() == 4 if n_state == 1 else False
        state_axes = {1: "batch", 2: "positions"} if transformer else {1: "batch"}
        tensor_axes = {name: {0: "batch", 1: "source_len"} if enc[name].dim() == 3 else {0: "batch"} for name in names}
        encoder_dynamic = {"src": {0: "batch", 1: "source_len"}, **tensor_axes,
                           **{n: {1: "batch"} for n in state_names}}
        step_dynamic = {"prev": {0: "batch"}, "src": {0: "batch", 1: "source_len"}, **tensor_axes,
                        **{n: state_axes for n in state_names}, "logits": {0: "batch"},
                        **{f"{n}_out": state_axes for n in state_names}, "attention": {0: "batch", 1: "source_len"}}
        return [Graph("encoder", encoder, (source(2, 5),), (source(3, 7),), ["src"], [*names, *state_names],
                      encoder_dynamic, "source ids (N, S), 0 as padding, in; what each decoder step needs out"),
                Graph("decoder_step", step, example, check, ["prev", "src", *names, *state_names],
                      ["logits", *(f"{n}_out" for n in state_names), "attention"], step_dynamic,
                      "the previous target id (N,), the source ids, the encoder's outputs and the state in; the next "
                      "id's logits (N, V), the new state and the attention over the source out")]

    def card(self) -> dict:
        m = self.meta
        return {"source_vocab": m["src_vocab"], "target_vocab": m["tgt_vocab"], "max_len": m["max_len"],
                "subwords": bool(m.get("src_subword")),
                "loop": "split the sentence into lower-case words (or SentencePiece pieces, from the run's model.json) "
                        "and map them to source_vocab ids (1 = <unk>, 0 = padding); run the encoder once; then start "
                        "from prev = the id of <s> and the encoder's state outputs, and call decoder_step with its "
                        "outputs fed back, taking the likeliest id each time, until </s> or 2 x source length + 10 "
                        "steps; the words are target_vocab at those ids."}

    def v2_inputs(self) -> list[dict]:
        return [{"name": "source", "datatype": "BYTES", "shape": [-1]}]

    def v2_outputs(self, results: list) -> dict:
        return {"translation": np.array([r["translation"] for r in results], dtype=object)}

    def scores(self, model: nn.Module, split: str, device: torch.device, beam: int = 1) -> dict:
        out = self.translate(model, self.sources[split], device, beam, self.cfg.eval.length_penalty)
        return {**bleu_and_chrf([r["translation"] for r in out], self.references[split]), "pairs": len(out),
                "beam": beam, "translations": out}

    # --- after training -------------------------------------------------------------------
    def test_results(self, run, model: nn.Module, data: Prepared, device: torch.device) -> dict:
        beam = self.cfg.eval.beam
        test = {**self.evaluate(model, data.test, device), **self.scores(model, "test", device, beam)}
        val = self.scores(model, "val", device, beam) if len(self.sources["val"]) else None
        samples = [{"source": r["source"], "translation": r["translation"], "reference": ref}
                   for r, ref in zip(test.pop("translations")[:12], self.references["test"])]
        if val:
            val.pop("translations")
        return {"test": test, "baseline": None, "val": val,
                "vocab": {"source": len(self.meta["src_vocab"]), "target": len(self.meta["tgt_vocab"])},
                "samples": samples}

    def logged_test(self, results: dict) -> dict:
        return {k: v for k, v in results["test"].items() if k != "bleu_signature"}

    def report_sections(self, run, model: nn.Module, data: Prepared, results: dict, device) -> list[tuple[str, str]]:
        out = run.report_dir
        curves = plot_history(run.metrics(), out / "curves.png", "perplexity", "accuracy")
        sentences = self.sources["test"][:3]
        alignments = [plot_alignment(r, out / f"alignment-{i + 1}.png")
                      for i, r in enumerate(self.translate(model, sentences, device))]
        test, val, fit = results["test"], results["val"], results["fit"]
        rows = [{"split": "test", "BLEU": test["bleu"], "chrF": test["chrf"], "loss": test["loss"],
                 "perplexity": test["perplexity"], "pairs": test["pairs"]}]
        if val:
            rows.append({"split": "validation", "BLEU": val["bleu"], "chrF": val["chrf"], "loss": "", "perplexity": "",
                         "pairs": val["pairs"]})
        notes = notes_block(data.notes)
        return [
            ("Result", table(rows) + self.notes_html(results) + f"<p>{self.describe_model()}, {results['parameters']:,} parameters; {fit['epochs']} epochs; decoding "
             f"{'greedy' if test['beam'] == 1 else 'beam ' + str(test['beam'])}. BLEU: <code>"
             f"{html.escape(test['bleu_signature'])}</code>, lowercased.</p>"),
            ("Sample translations", table(results["samples"])),
            ("Where attention looked", "<p>Each row is a word the model wrote; the bright cells are the source words it "
             "attended to while writing it.</p>" + "".join(image_tag(a, "attention alignment") for a in alignments)),
            ("Training curves", image_tag(curves, "loss, perplexity and word accuracy per epoch")),
            ("Data", f"<p>{html.escape(self.meta['source'])}</p>" + table([results["splits"]])
             + table([results["vocab"]]) + notes),
        ]

    # --- what the CLI prints ----------------------------------------------------------------
    def summary(self, results: dict) -> list[tuple[str, str]]:
        test, splits = results["test"], results["splits"]
        lines = [
            ("data", f"{self.meta['source']}; train {splits['train']:,} / val {splits['val']:,} / test {splits['test']:,}"),
            self.model_line(results),
            ("test", f"BLEU {test['bleu']:.2f}  chrF {test['chrf']:.2f}  loss {test['loss']:.4f}  "
                     f"perplexity {test['perplexity']:.2f}"),
        ]
        for s in results["samples"][:3]:
            lines.append(("sample", f"{s['source']}  ->  {s['translation']}   (reference: {s['reference']})"))
        return lines

    def describe_model(self) -> str:
        m = self.cfg.model
        return "transformer" if m.name == "transformer" else f"{m.name} + {m.attention} attention"

    @staticmethod
    def describe_metrics(metrics: dict) -> list[str]:
        return [f"loss {metrics['loss']:.4f}  perplexity {metrics['perplexity']:.2f}"]

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


def plot_alignment(result: dict, path: Path) -> Path:
    """The attention weights of one translation as a heatmap: target words down, source words across."""
    plt = pyplot()
    attn, src, tgt = result["attention"], result["source_tokens"], result["tokens"] + ["</s>"]
    attn = attn[:len(tgt), :len(src)]
    tgt = tgt[:len(attn)]  # no </s> row when decoding stopped at the length limit
    fig, ax = plt.subplots(figsize=(max(4, 0.45 * len(src) + 2), max(3, 0.4 * len(tgt) + 1.5)))
    ax.imshow(attn, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(src)), src, rotation=60, ha="right")
    ax.set_yticks(range(len(tgt)), tgt)
    ax.set_title(result["translation"][:60], fontsize=9)
    save_figure(fig, path)
    return path
