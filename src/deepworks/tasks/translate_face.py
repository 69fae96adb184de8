"""Translation's face: translate sentences with a trained encoder-decoder, greedily or with a beam search whose
hypotheses of every sentence share one decoder batch; export the encoder and one decoder step.

Made from the run's config and meta alone (the vocabularies, --max-len, the SentencePiece models), so it never
imports the recipe (tasks/translate.py); the recipe imports from here what both use: `encode`, `trim` and the
run's `Tokenizer`.
"""

from __future__ import annotations

import base64
import math
import warnings

import numpy as np
import torch
import torch.nn as nn

from ..data.pairs import BOS, EOS, UNK, PairWarning, detokenize, tokenize
from ..errors import DataError
from ..usage import stop_if_cancelled
from ..models import evaluating
from ..models.seq2seq import reorder_state
from .face import Face
from .text_face import TextFace


MAX_BEAM = 100  # hypotheses kept by beam search; beyond a few dozen BLEU no longer changes, only the time


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


def word_ids(meta: dict, side: str) -> dict[str, int]:
    """The id of each word of a side's vocabulary ('src' or 'tgt')."""
    return {t: i for i, t in enumerate(meta[f"{side}_vocab"])}


class Tokenizer:
    """How a run cuts sentences into tokens and joins them back: lower-case words with punctuation split off, or
    each side's SentencePiece model when the run uses subwords (`protos`: side -> the model as base64, as meta keeps
    it; None: words)."""

    def __init__(self, protos: dict[str, str | None]):
        self.protos = protos
        self.processors: dict = {}

    @classmethod
    def of(cls, meta: dict) -> Tokenizer:
        return cls({side: meta.get(f"{side}_subword") for side in ("src", "tgt")})

    def subword(self, side: str):
        """The side's SentencePiece processor when the run uses subwords, else None."""
        proto = self.protos.get(side)
        if proto is None:
            return None
        if side not in self.processors:
            import sentencepiece as spm

            self.processors[side] = spm.SentencePieceProcessor(model_proto=base64.b64decode(proto))
        return self.processors[side]

    def split(self, sentence: str, side: str) -> list[str]:
        sp = self.subword(side)
        return sp.encode(sentence.lower(), out_type=str) if sp else tokenize(sentence)

    def join(self, tokens: list[str]) -> str:
        sp = self.subword("tgt")
        return sp.decode_pieces(tokens) if sp else detokenize(tokens)


def per_hypothesis(enc: dict, n: int, beam: int, device: torch.device) -> tuple[dict, object]:
    """The encoder's outputs and its state with each of the `n` sentences' rows repeated `beam` times: a row for each
    hypothesis of beam search."""
    rows = torch.arange(n, device=device).repeat_interleave(beam)  # hypothesis row -> its sentence
    return ({k: (v.index_select(0, rows) if torch.is_tensor(v) else v) for k, v in enc.items() if k != "state"},
            reorder_state(enc["state"], rows))


def best_hypothesis(hypotheses: list[tuple], source_length: int) -> tuple[list[int], np.ndarray]:
    """The ids and attention weights (T, S) of the best of a sentence's (score, ids, attention) hypotheses."""
    _, ids, attn = max(hypotheses, key=lambda f: f[0])
    return ids, attn.numpy()[:, :source_length]


def best_continuations(candidates, beam: int, eos: int) -> tuple[list[tuple], list[tuple]]:
    """(the `beam` likeliest candidates (score, row, token) that go on, best first; the (score, row) of those
    likelier still that write </s> and so finish a hypothesis)."""
    kept, ended = [], []
    for score, r, token in sorted(candidates, key=lambda c: -c[0]):
        if token == eos:
            ended.append((score, r))
        else:
            kept.append((score, r, token))
        if len(kept) == beam:
            break
    return kept, ended


class TranslateFace(Face):
    verb, kind = "translate", "a translation"

    def __init__(self, cfg, meta: dict):
        super().__init__(cfg, meta)
        self.tokenizer = Tokenizer.of(meta)

    def vocab(self, side: str) -> dict[str, int]:
        return word_ids(self.meta, side)

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
        enc_rows, state = per_hypothesis(model.encode(src), n, beam, device)
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
                    kept, ended = best_continuations(((scores[b][r - b * beam] + top_scores[r][j], r, top_tokens[r][j])
                                                      for r in live[b] for j in range(beam)), beam, eos)
                    finished[b] += [(score / penalty(tokens.shape[1] + 1), tokens[r].tolist(),
                                     torch.cat([attention[r], w[r:r + 1]])) for score, r in ended]
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
        for b in range(n):  # when the step limit came first, the live hypotheses are all there is
            ends = finished[b] or [(scores[b][r - b * beam] / penalty(tokens.shape[1]), tokens[r].tolist(),
                                    attention[r]) for r in live[b]]
            out.append(best_hypothesis(ends, int((src[b] != 0).sum())))
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
            t = self.tokenizer.split(s, "src")
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
                    results.append({"source": sentences[i + j], "translation": self.tokenizer.join(words),
                                    "source_tokens": toks[i + j], "tokens": words, "attention": attn})
        return results

    # --- use: the inference face (inference.py) -------------------------------------------
    @property
    def use_options(self) -> dict:
        from ..usage import Option

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
        """The encoder, and one decoder step: greedy or beam search is a loop of steps (see `model_card`)."""
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

    # --- int8 (tasks/translate_int8.py) ------------------------------------------------
    int8_method = "dynamic"  # the products' weights in int8 (attention, the output layer, a Transformer's layers)

    def calibration_feeds(self, graph: str, split: tuple, most: int, model=None) -> list[dict] | None:
        """The encoder's source batches, or the decoder step's inputs at each word of their references."""
        from .translate_int8 import batch_sources, teacher_forced

        if model is None:
            return None
        return batch_sources(split, most) if graph == "encoder" else [f for f, _ in teacher_forced(model, split, most)]

    def int8_check(self, graph: str, runs: dict, split: tuple, model=None) -> dict:
        from .translate_int8 import int8_check

        return int8_check(graph, runs, split, model)

    def model_card(self) -> dict:
        m = self.meta
        return {"source_vocab": m["src_vocab"], "target_vocab": m["tgt_vocab"], "max_len": m["max_len"],
                "subwords": bool(m.get("src_subword")),
                "loop": "lower-case the sentence and split it into words and single punctuation marks (the regular "
                        "expression \\w+|[^\\w\\s]; or SentencePiece pieces, from the run's model.json), keep the "
                        "first max_len, and map them to source_vocab ids (1 = <unk>, 0 = padding); run the encoder "
                        "once; then start from prev = the id of <s> and the encoder's state outputs, and call "
                        "decoder_step with each state output fed back to the input of its name, taking the likeliest "
                        "id each time, until </s> or 2 x source length + 10 steps (at most max_len + 2); the words "
                        "are target_vocab at those ids, joined by spaces, then with no space before . , ! ? ; : % ) "
                        "] } nor after ( [ { nor around - ' / (pieces: decoded by the SentencePiece model)."}

    # A sentence in and one out per item, as text's prime and text: TextFace's V2 tensors, with these names.
    v2_text = ("source", "translation")
    v2_inputs, v2_outputs = TextFace.v2_inputs, TextFace.v2_outputs
