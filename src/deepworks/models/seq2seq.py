"""An encoder-decoder with attention (Bahdanau et al. 2015; Luong et al. 2015), on torch's GRU / LSTM layers.

The encoder reads the whole source at once (optionally in both directions). The decoder writes one token
per step: it scores every source position against its previous hidden state (additive, 'bahdanau', or
multiplicative, 'luong'), takes the weighted mean of the encoder outputs as the context, and feeds the
previous token's embedding with that context to its recurrent cell. attention='none' gives the decoder the
encoder's final summary as a fixed context instead: the model attention was invented to beat.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .rnn import step_layers

CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}


class Attention(nn.Module):
    def __init__(self, kind: str, query_size: int, key_size: int, size: int):
        super().__init__()
        self.kind = kind
        if kind == "bahdanau":
            self.query, self.key = nn.Linear(query_size, size, bias=False), nn.Linear(key_size, size)
            self.v = nn.Linear(size, 1, bias=False)
        else:
            self.key = nn.Linear(key_size, query_size, bias=False)

    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        """The source side's projection, computed once per sentence rather than once per decoder step."""
        return self.key(memory)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor):
        """query (B, Q), keys (B, S, K), memory (B, S, H), mask (B, S) true at real tokens -> context (B, H), weights (B, S)."""
        if self.kind == "bahdanau":
            scores = self.v(torch.tanh(self.query(query)[:, None] + keys)).squeeze(2)
        else:
            scores = torch.bmm(keys, query[:, :, None]).squeeze(2)
        weights = scores.masked_fill(~mask, float("-inf")).softmax(1)
        return torch.bmm(weights[:, None], memory).squeeze(1), weights


class Seq2Seq(nn.Module):
    def __init__(self, src_vocab: int, tgt_vocab: int, cell: str = "gru", embed_size: int = 256,
                 hidden_size: int = 512, layers: int = 1, bidirectional: bool = True, attention: str = "bahdanau",
                 dropout: float = 0.1, tie_weights: bool = False):
        super().__init__()
        if tie_weights and embed_size != hidden_size:
            raise ValueError(f"Tied weights need the embedding size to equal the width: --embed-size {embed_size} "
                             f"and --width {hidden_size}. Set them equal, or leave --embed-size unset.")
        self.cell, self.attention_kind, self.layers = cell, attention, layers
        self.step_needs = ("memory", "keys") if attention != "none" else ("summary",)  # of `encode`'s outputs
        directions = 2 if bidirectional else 1
        memory_size = hidden_size * directions
        self.src_embed = nn.Embedding(src_vocab, embed_size, padding_idx=0)
        self.tgt_embed = nn.Embedding(tgt_vocab, embed_size, padding_idx=0)
        self.encoder = CELLS[cell](embed_size, hidden_size, layers, batch_first=True, bidirectional=bidirectional,
                                   dropout=dropout if layers > 1 else 0.0)
        self.bridge = nn.Linear(memory_size, hidden_size)  # the encoder's summary -> the decoder's first state
        self.attend = Attention(attention, hidden_size, memory_size, hidden_size) if attention != "none" else None
        self.decoder = CELLS[cell](embed_size + memory_size, hidden_size, layers, batch_first=True,
                                   dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        # Luong's attentional layer: [output; context; embedding] -> hidden_size, then the vocabulary. The output
        # layer is most of the work per step, so it reads hidden_size numbers instead of about 3.5x as many.
        self.combine = nn.Linear(hidden_size + memory_size + embed_size, hidden_size)
        self.out = nn.Linear(hidden_size, tgt_vocab)
        if tie_weights:
            self.out.weight = self.tgt_embed.weight  # a target word is read and written with the same vector

    def encode(self, src: torch.Tensor) -> dict:
        """src (B, S) with 0 as padding -> what every decoder step needs."""
        mask = src != 0
        lengths = mask.sum(1).clamp(min=1)
        packed = nn.utils.rnn.pack_padded_sequence(self.drop(self.src_embed(src)), lengths.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        memory, _ = self.encoder(packed)
        memory, _ = nn.utils.rnn.pad_packed_sequence(memory, batch_first=True, total_length=src.shape[1])
        summary = (memory * mask[..., None]).sum(1) / lengths[:, None]  # mean over the real positions
        h0 = torch.tanh(self.bridge(summary))[None].repeat(self.layers, 1, 1).contiguous()
        state = (h0, torch.zeros_like(h0)) if self.cell == "lstm" else h0
        keys = self.attend.keys(memory) if self.attend is not None else None
        return {"memory": memory, "keys": keys, "mask": mask, "summary": summary, "state": state}

    def step(self, prev: torch.Tensor, state, enc: dict):
        """One decoder step: prev (B,) token ids -> logits (B, V), the new state and the attention weights (B, S)."""
        features, state, weights = self.step_features(prev, state, enc)
        return self.out(self.drop(features)), state, weights

    def step_features(self, prev: torch.Tensor, state, enc: dict):
        """A decoder step up to the output layer: (B, hidden) features, the new state, the attention weights."""
        emb = self.drop(self.tgt_embed(prev))
        top = (state[0] if self.cell == "lstm" else state)[-1]
        if self.attend is not None:
            context, weights = self.attend(top, enc["keys"], enc["memory"], enc["mask"])
        else:
            context, weights = enc["summary"], enc["mask"].float() / enc["mask"].sum(1, keepdim=True)
        out, state = step_layers(self.decoder, torch.cat([emb, context], 1), state)  # one word: cell functions
        return torch.tanh(self.combine(torch.cat([out, context, emb], 1))), state, weights

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor, teacher_forcing: float = 1.0):
        """Logits (B, T, V) for every target position; tgt_in starts with <s>. With teacher_forcing below 1, each
        step feeds the model's own previous guess instead of the true token with probability 1 - teacher_forcing."""
        enc = self.encode(src)
        state, prev, features = enc["state"], tgt_in[:, 0], []
        for t in range(tgt_in.shape[1]):
            step_features, state, _ = self.step_features(prev, state, enc)
            features.append(step_features)
            if t + 1 < tgt_in.shape[1]:
                prev = tgt_in[:, t + 1]
                if teacher_forcing < 1.0:  # only then is a step's own guess needed before the next step
                    own = torch.rand(prev.shape, device=prev.device) >= teacher_forcing
                    prev = torch.where(own, self.out(step_features).argmax(1), prev)
        return self.out(self.drop(torch.stack(features, 1)))  # one large matrix product for all steps


class DecoderLayer(nn.Module):
    """A post-norm Transformer decoder layer (Vaswani et al. 2017) that also returns its cross-attention weights,
    which torch's nn.TransformerDecoderLayer keeps to itself."""

    def __init__(self, size: int, heads: int, ff: int, dropout: float):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(size, heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(size, heads, dropout=dropout, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(size, ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ff, size))
        self.norms = nn.ModuleList(nn.LayerNorm(size) for _ in range(3))
        self.drop = nn.Dropout(dropout)

    def forward(self, x, memory, causal, memory_pad):
        a, _ = self.self_attn(x, x, x, attn_mask=causal, need_weights=False)
        return self.rest(x, a, memory, memory_pad)

    def step(self, x, inputs, memory, memory_pad):
        """The layer at one new position x (B, 1, E), given its inputs at every position so far (B, T, E)."""
        a, _ = self.self_attn(x, inputs, inputs, need_weights=False)
        return self.rest(x, a, memory, memory_pad)

    def rest(self, x, a, memory, memory_pad):
        x = self.norms[0](x + self.drop(a))
        a, weights = self.cross_attn(x, memory, memory, key_padding_mask=memory_pad)
        x = self.norms[1](x + self.drop(a))
        return self.norms[2](x + self.drop(self.ff(x))), weights


class TransformerSeq2Seq(nn.Module):
    """A small Transformer encoder-decoder with learned positions, with the same encode / step / forward
    interface as Seq2Seq. Its decoding 'state' is a cache of what each decoder layer took in at the positions
    written so far, (layers, batch, positions, width): a step computes the new position only, attending over the
    cache, instead of re-reading the whole prefix (what the output at the new position depends on is exactly that,
    since the attention is causal)."""

    def __init__(self, src_vocab: int, tgt_vocab: int, size: int = 256, heads: int = 4, layers: int = 3,
                 ff: int = 1024, dropout: float = 0.1, max_len: int = 256, tie_weights: bool = False):
        super().__init__()
        if size % heads:
            raise ValueError(f"The width ({size}) must be a multiple of the {heads} attention heads.")
        self.size, self.max_len = size, max_len
        self.step_needs = ("memory",)  # of `encode`'s outputs, with the padding mask
        self.src_embed = nn.Embedding(src_vocab, size, padding_idx=0)
        self.tgt_embed = nn.Embedding(tgt_vocab, size, padding_idx=0)
        self.position = nn.Embedding(max_len, size)
        layer = nn.TransformerEncoderLayer(size, heads, ff, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.decoder = nn.ModuleList(DecoderLayer(size, heads, ff, dropout) for _ in range(layers))
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(size, tgt_vocab)
        for table in (self.src_embed, self.tgt_embed):  # std size ** -0.5, so that the sqrt(size) scale gives 1
            nn.init.normal_(table.weight, 0.0, size ** -0.5)
            table.weight.data[0].zero_()
        if tie_weights:
            self.out.weight = self.tgt_embed.weight  # as in Vaswani et al.: a third fewer parameters at width 256

    def embed(self, table: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device).clamp(max=self.max_len - 1)
        return self.drop(table(ids) * self.size ** 0.5 + self.position(positions))

    def encode(self, src: torch.Tensor) -> dict:
        pad = src == 0
        memory = self.encoder(self.embed(self.src_embed, src), src_key_padding_mask=pad)
        empty = memory[None, :, :0].repeat(len(self.decoder), 1, 1, 1)  # (layers, batch, 0 positions, width)
        return {"memory": memory, "pad": pad, "mask": ~pad, "state": empty}

    def decode(self, tgt_in: torch.Tensor, enc: dict) -> tuple[torch.Tensor, torch.Tensor]:
        t = tgt_in.shape[1]
        causal = torch.triu(torch.full((t, t), float("-inf"), device=tgt_in.device), 1)
        x, weights = self.embed(self.tgt_embed, tgt_in), None
        for layer in self.decoder:
            x, weights = layer(x, enc["memory"], causal, enc["pad"])
        return self.out(x), weights

    def step(self, prev: torch.Tensor, state: torch.Tensor, enc: dict):
        """The next position's logits from the previous word and the layers' cached inputs (see the class)."""
        position = min(state.shape[2], self.max_len - 1)
        x = self.drop(self.tgt_embed(prev[:, None]) * self.size ** 0.5 + self.position.weight[position])
        seen, weights = [], None
        for layer, past in zip(self.decoder, state):
            inputs = torch.cat([past, x], 1)
            seen.append(inputs)
            x, weights = layer.step(x, inputs, enc["memory"], enc["pad"])
        return self.out(x)[:, -1], torch.stack(seen), weights[:, -1]

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor, teacher_forcing: float = 1.0):
        """Teacher forcing is always full here: every position is trained in parallel."""
        return self.decode(tgt_in, self.encode(src))[0]


def reorder_state(state, index: torch.Tensor):
    """Keep the beams in `index`: recurrent states are (layers, batch, hidden), a Transformer's cache is (layers,
    batch, positions, width): the batch is dimension 1 of both."""
    if isinstance(state, tuple):
        return tuple(s.index_select(1, index) for s in state)
    return state.index_select(1, index)


def state_parts(state) -> tuple:
    return state if isinstance(state, tuple) else (state,)


class EncoderGraph(nn.Module):
    """A translation model's `encode` for export: src (N, S) ids, 0 as padding, in; the tensors a decoder step needs
    (named in `names`: memory, and keys or the summary as the model has them) and the first state out."""

    def __init__(self, model: nn.Module, names: list[str]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, src: torch.Tensor):
        enc = self.model.encode(src)
        return (*(enc[k] for k in self.names), *state_parts(enc["state"]))


class StepGraph(nn.Module):
    """A translation model's decoder `step` for export: the previous token (N,), the source ids (for the padding
    mask), the encoder's tensors and the state in; logits (N, V), the new state and the attention weights (N, S)
    out."""

    def __init__(self, model: nn.Module, names: list[str], state_size: int):
        super().__init__()
        self.model, self.names, self.state_size = model, names, state_size

    def forward(self, prev: torch.Tensor, src: torch.Tensor, t0: torch.Tensor, t1: torch.Tensor,
                t2: torch.Tensor | None = None, t3: torch.Tensor | None = None):
        """Fixed arguments rather than *tensors, which torch.export cannot give dynamic shapes to: 2 to 4 tensors,
        the encoder's (`names`) and then the state's."""
        tensors = [t for t in (t0, t1, t2, t3) if t is not None]
        enc = dict(zip(self.names, tensors))
        enc["mask"], enc["pad"] = src != 0, src == 0
        state = tensors[len(self.names):]
        logits, state, weights = self.model.step(prev, state if self.state_size > 1 else state[0], enc)
        return (logits, *state_parts(state), weights)
