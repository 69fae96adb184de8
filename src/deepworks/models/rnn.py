"""A character-level language model: embedding -> stacked RNN / LSTM / GRU -> a linear layer over the vocabulary.

The recurrent layers are torch's own (cuDNN on a GPU, oneDNN-backed kernels on the CPU).
`forward` takes and returns the hidden state, so a caller can carry it across
batches (truncated backpropagation through time) or feed one character at a time
when sampling.
"""

from __future__ import annotations

import torch
import torch.nn as nn

RECURRENT = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None


class CharRNN(nn.Module):
    def __init__(self, vocab_size: int, kind: str = "lstm", embed_size: int = 64, hidden_size: int = 256,
                 layers: int = 2, dropout: float = 0.0, tie_weights: bool = False, act: str = "tanh",
                 init: str = "auto"):
        super().__init__()
        if tie_weights and embed_size != hidden_size:
            raise ValueError(f"Tied weights need the embedding size to equal the width: --embed-size {embed_size} "
                             f"and --width {hidden_size}. Set them equal, or leave --embed-size unset.")
        self.embed = nn.Embedding(vocab_size, embed_size)
        extra = {"nonlinearity": act} if kind == "rnn" else {}
        self.rnn = RECURRENT[kind](embed_size, hidden_size, layers, batch_first=True,
                                   dropout=dropout if layers > 1 else 0.0, **extra)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)
        if tie_weights:
            self.head.weight = self.embed.weight  # one matrix: the output layer scores characters by their embedding
        init_recurrent(self.rnn, init)
        self.kind = kind

    def forward(self, x: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        """x: (batch, time) character ids -> logits (batch, time, vocab) and the state after the last step."""
        out, state = self.rnn(self.drop(self.embed(x)), state)
        return self.head(self.drop(out)), state


    def step(self, ids: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        """One time step, for sampling: ids (batch,) -> logits (batch, vocab) and the new state, in the same layout
        as `forward`'s. The cell functions skip the sequence machinery of the full layer, which dominates at one
        character at a time (several times faster on a CPU)."""
        x = self.embed(ids)
        if state is None:
            zeros = x.new_zeros(self.rnn.num_layers, len(ids), self.rnn.hidden_size)
            state = (zeros, zeros) if self.kind == "lstm" else zeros
        x, state = step_layers(self.rnn, x, state)
        return self.head(x), state


CELLS = {"LSTM": torch.lstm_cell, "GRU": torch.gru_cell, "RNN_TANH": torch.rnn_tanh_cell, "RNN_RELU": torch.rnn_relu_cell}


def step_layers(rnn: nn.RNNBase, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
    """One time step of a stacked torch RNN / LSTM / GRU layer through torch's cell functions, on the layer's own
    weights: x (batch, input) -> the top layer's output (batch, hidden) and the new state, laid out as the layer's.
    Calling the whole-sequence layer once per step costs several times more; autograd works the same. Dropout
    between layers follows the layer's own setting, as the layer applies it."""
    cell, lstm = CELLS[rnn.mode], rnn.mode == "LSTM"
    hs, cs = [], []
    for k in range(rnn.num_layers):
        weights = [getattr(rnn, f"{name}_l{k}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        if lstm:
            h, c = cell(x, (state[0][k], state[1][k]), *weights)
            cs.append(c)
        else:
            h = cell(x, state[k], *weights)
        hs.append(h)
        last = k + 1 == rnn.num_layers
        x = h if last else nn.functional.dropout(h, rnn.dropout, rnn.training)
    return x, ((torch.stack(hs), torch.stack(cs)) if lstm else torch.stack(hs))


def init_recurrent(rnn: nn.Module, scheme: str) -> None:
    """'auto' and 'torch' keep torch's uniform(+-1/sqrt(hidden)); 'xavier' / 'he' set the input weights that way and
    the recurrent weights orthogonal (their repeated product then neither grows nor shrinks); 'zeros' zeroes all."""
    if scheme in ("auto", "torch"):
        return
    for name, w in rnn.named_parameters():
        if scheme == "zeros":
            nn.init.zeros_(w)
        elif name.startswith("weight_hh"):
            for gate in w.data.chunk(w.shape[0] // w.shape[1]):  # one square block per gate
                nn.init.orthogonal_(gate)
        elif name.startswith("weight_ih"):
            (nn.init.xavier_uniform_ if scheme == "xavier" else nn.init.kaiming_uniform_)(w)
        else:
            nn.init.zeros_(w)


def detach_state(state: State) -> State:
    if state is None:
        return None
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


class CharStep(nn.Module):
    """A CharRNN as one step for export: ids (N,) and the state as plain tensors in (h, and c for an LSTM, each
    (layers, N, hidden)), logits (N, V) and the new state out. It runs the whole recurrent layer on a sequence of one,
    which the ONNX exporters map onto their own LSTM / GRU / RNN operators."""

    def __init__(self, model: CharRNN):
        super().__init__()
        self.model = model
        self.layers, self.hidden = model.rnn.num_layers, model.rnn.hidden_size
        self.state_names = ["h", "c"] if model.kind == "lstm" else ["h"]

    def forward(self, ids: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None = None):
        state = (h, c) if c is not None else h
        out, state = self.model.rnn(self.model.embed(ids)[:, None], state)
        logits = self.model.head(out[:, 0])
        return (logits, *state) if isinstance(state, tuple) else (logits, state)
