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
                 dropout: float = 0.1):
        super().__init__()
        self.cell, self.attention_kind, self.layers = cell, attention, layers
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
        self.out = nn.Linear(hidden_size + memory_size + embed_size, tgt_vocab)

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
        emb = self.drop(self.tgt_embed(prev))
        top = (state[0] if self.cell == "lstm" else state)[-1]
        if self.attend is not None:
            context, weights = self.attend(top, enc["keys"], enc["memory"], enc["mask"])
        else:
            context, weights = enc["summary"], enc["mask"].float() / enc["mask"].sum(1, keepdim=True)
        out, state = self.decoder(torch.cat([emb, context], 1)[:, None], state)
        logits = self.out(self.drop(torch.cat([out[:, 0], context, emb], 1)))
        return logits, state, weights

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor, teacher_forcing: float = 1.0):
        """Logits (B, T, V) for every target position; tgt_in starts with <s>. With teacher_forcing below 1, each
        step feeds the model's own previous guess instead of the true token with probability 1 - teacher_forcing."""
        enc = self.encode(src)
        state, prev, logits = enc["state"], tgt_in[:, 0], []
        for t in range(tgt_in.shape[1]):
            step_logits, state, _ = self.step(prev, state, enc)
            logits.append(step_logits)
            if t + 1 < tgt_in.shape[1]:
                prev = tgt_in[:, t + 1]
                if teacher_forcing < 1.0:
                    own = torch.rand(prev.shape, device=prev.device) >= teacher_forcing
                    prev = torch.where(own, step_logits.argmax(1), prev)
        return torch.stack(logits, 1)
