"""Text classifiers: token ids (N, L), 0 = padding, in; logits (N, C) out.

Four models, from cheapest to most capable: fastText's bag of n-grams (Joulin et al. 2016), Kim's word CNN (2014),
a bidirectional GRU with attention pooling (Yang et al. 2016, one level), and a small Transformer encoder. They share
one contract, which the task, the explainers and the exporters rely on:

- padding never changes the answer: a text padded to any longer length gets the same logits (to float rounding).
  Each model masks padding itself rather than trusting the padding embedding to stay zero, and finds the real
  tokens wherever they are in the row (the readers pad on the right, but nothing here assumes it);
- the token embedding is `model.embedding`, so Captum's LayerIntegratedGradients works the same on every model;
- no packed sequences or data-dependent Python control flow, so each exports to ONNX with a dynamic batch and
  length (packed sequences cannot be exported).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError, DataError

TEXT_CLASS_MODELS = ("fasttext", "cnn", "bigru", "transformer")
CNN_WIDTHS = (3, 4, 5)  # Kim's filter widths, in tokens


def real_tokens(ids: torch.Tensor) -> torch.Tensor:
    """(N, L) bool, true at real tokens. A row of padding alone counts its first place as real, so every model
    pools over at least one position and answers with finite numbers (the encoder never writes such a row)."""
    mask = ids != 0
    first = torch.arange(ids.shape[1], device=ids.device) == 0
    return mask | (first & ~mask.any(1, keepdim=True))


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x (N, L, D), mask (N, L) -> the mean over the masked-in positions, (N, D)."""
    weights = mask.to(x.dtype)[..., None]
    return (x * weights).sum(1) / weights.sum(1)


def gather_steps(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x (N, L, D) with each row's time steps reordered by index (N, L)."""
    return torch.gather(x, 1, index[..., None].expand(-1, -1, x.shape[2]))


def two_way(x: torch.Tensor, forward_gru: nn.ModuleList, backward_gru: nn.ModuleList, reverse: torch.Tensor,
            keep: torch.Tensor, drop: nn.Module) -> torch.Tensor:
    """A bidirectional GRU, each direction a GRU of its own, over rows whose real steps come first (x (N, L, D), zero
    past them): the backward GRUs read each row's real steps reversed (`reverse`, an index that is its own inverse),
    so neither direction meets padding before a real step, and packed sequences (which do not export) are not
    needed. `keep` (N, L, 1) zeroes the padding after each layer; `drop` comes between layers."""
    for k, (fwd, bwd) in enumerate(zip(forward_gru, backward_gru)):
        if k:
            x = drop(x)
        ahead, _ = fwd(x)
        behind, _ = bwd(gather_steps(x, reverse))
        x = torch.cat([ahead, gather_steps(behind, reverse)], 2) * keep
    return x


class BagOfNgrams(nn.Module):
    """fastText: the mean of the ids' embeddings (padding left out), dropout, one linear layer. Its ids are usually
    hashed words and bigrams (data/subwords.py, kind 'hashed'), which is where the n-grams come in. The table's
    gradient is sparse, as fastText's updates are: a batch touches a few thousand of its rows, and a dense gradient
    would make every step read and write all of them (262,144 x 64 on SST-2: 30 times slower)."""

    def __init__(self, vocab_size: int, num_classes: int, width: int = 64, dropout: float = 0.0):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, width, padding_idx=0, sparse=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(width, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(masked_mean(self.embedding(ids), real_tokens(ids))))


class WordCNN(nn.Module):
    """Kim 2014: 1-D convolutions of 3, 4 and 5 tokens (`width` maps each), ReLU, the maximum over time, dropout,
    a linear layer.

    The convolutions are wide (padded by width - 1 on both sides), so a text shorter than 5 tokens still has
    windows, and a window counts when it covers at least one real token. Padding tokens are zeroed, exactly like
    the convolution's own padding, so a window's value does not depend on how much padding follows. Windows of
    padding alone are set to 0 before the maximum: after the ReLU every real window is >= 0, so this is the same
    as masking them to -inf, and stays finite."""

    def __init__(self, vocab_size: int, num_classes: int, width: int = 100, embed_size: int = 128,
                 dropout: float = 0.5):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_size, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(embed_size, width, k, padding=k - 1) for k in CNN_WIDTHS)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(width * len(CNN_WIDTHS), num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = real_tokens(ids)
        x = (self.embedding(ids) * mask[..., None].to(self.embedding.weight.dtype)).transpose(1, 2)
        real = mask[:, None].float()  # (N, 1, L)
        pooled = []
        for conv in self.convs:
            k = conv.kernel_size[0]
            covered = F.conv1d(real, real.new_ones(1, 1, k), padding=k - 1) > 0  # (N, 1, L + k - 1)
            pooled.append(torch.relu(conv(x)).masked_fill(~covered, 0.0).amax(2))
        return self.head(self.drop(torch.cat(pooled, 1)))


class BiGRUAttention(nn.Module):
    """An embedding, a bidirectional GRU and additive attention pooling over its outputs (Bahdanau et al. 2015's
    scoring; Yang et al. 2016's pooling), then a linear layer. `last_attention` keeps the last call's weights
    (N, L), at the input's positions, for the report.

    torch's bidirectional GRU would read trailing padding before the last real token in its backward direction, and
    packed sequences do not export, so each direction is a GRU of its own: every row's real tokens are first moved
    to the front (stable), and the backward GRU reads each row's real tokens reversed, its first real token last.
    Both directions then meet padding only after the real tokens, where it can no longer reach them."""

    def __init__(self, vocab_size: int, num_classes: int, width: int = 128, embed_size: int = 128, depth: int = 1,
                 dropout: float = 0.2):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_size, padding_idx=0)
        sizes = [embed_size] + [2 * width] * (depth - 1)
        self.forward_gru = nn.ModuleList(nn.GRU(size, width, batch_first=True) for size in sizes)
        self.backward_gru = nn.ModuleList(nn.GRU(size, width, batch_first=True) for size in sizes)
        self.attention = nn.Linear(2 * width, width)
        self.score = nn.Linear(width, 1, bias=False)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(2 * width, num_classes)
        self.last_attention: torch.Tensor | None = None

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = real_tokens(ids)
        steps = torch.arange(ids.shape[1], device=ids.device)
        order = torch.argsort((~mask).long() * ids.shape[1] + steps, dim=1)  # real tokens first, in their order
        lengths = mask.sum(1, keepdim=True)
        packed = steps < lengths  # (N, L): the real tokens' places after the move
        reverse = torch.where(packed, lengths - 1 - steps, steps)  # reverses each row's real tokens; its own inverse
        keep = packed[..., None].to(self.embedding.weight.dtype)
        x = two_way(gather_steps(self.embedding(ids), order) * keep, self.forward_gru, self.backward_gru, reverse,
                    keep, self.drop)
        scores = self.score(torch.tanh(self.attention(x))).squeeze(2)
        weights = scores.masked_fill(~packed, torch.finfo(scores.dtype).min).softmax(1)
        summary = torch.bmm(weights[:, None].to(x.dtype), x).squeeze(1)
        self.last_attention = torch.gather(weights, 1, torch.argsort(order, dim=1)).detach()  # at input positions
        return self.head(self.drop(summary))


class TransformerClassifier(nn.Module):
    """Token embeddings plus learned positions, a pre-norm Transformer encoder (GELU), the mean over the real
    tokens, a LayerNorm and a linear layer. A token's position counts the real tokens before it, so where the
    padding is does not matter. torch's fast path (used in eval mode without gradients) gives the same numbers
    to float rounding and is left on."""

    def __init__(self, vocab_size: int, num_classes: int, width: int = 128, depth: int = 2, heads: int = 4,
                 ff_size: int | None = None, dropout: float = 0.1, max_len: int = 512):
        super().__init__()
        if width % heads:
            raise ConfigError(f"Expected a width divisible by the number of attention heads ({heads}). "
                              f"Received width {width}.")
        self.max_len = max_len
        self.embedding = nn.Embedding(vocab_size, width, padding_idx=0)
        self.position = nn.Embedding(max_len, width)
        nn.init.normal_(self.position.weight, std=0.02)
        layer = nn.TransformerEncoderLayer(width, heads, ff_size or 4 * width, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        # enable_nested_tensor only applies to post-norm layers; False says so instead of a warning
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if not torch.compiler.is_compiling() and not torch.jit.is_tracing() and ids.shape[1] > self.max_len:
            raise DataError(f"Expected at most {self.max_len} tokens per text (the model's max_len). "
                            f"Received {ids.shape[1]}. Encode the texts with max_len {self.max_len} or less.")
        mask = real_tokens(ids)
        positions = (mask.long().cumsum(1) - 1).clamp(0, self.max_len - 1)
        x = self.drop(self.embedding(ids) + self.position(positions))
        if torch.jit.is_tracing():  # the TorchScript-based ONNX exporter: see encoder_by_hand
            x = encoder_by_hand(self.encoder, x, mask)
        else:
            x = self.encoder(x, src_key_padding_mask=~mask)
        return self.head(self.norm(masked_mean(x, mask)))


def encoder_by_hand(encoder: nn.TransformerEncoder, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """nn.TransformerEncoder's pre-norm layers as inference runs them, written out on the layers' own weights.
    The TorchScript-based ONNX exporter records nn.MultiheadAttention's sequence length as the example's constant
    (pytorch/pytorch#122321), so its graph fails at any other length; this one never reads a length. The export
    check (torch against ONNX Runtime) is what keeps the two the same."""
    attend = mask[:, None, None, :]  # (N, 1, 1, L): the keys each query may look at
    for layer in encoder.layers:
        attn = layer.self_attn
        q, k, v = F.linear(layer.norm1(x), attn.in_proj_weight, attn.in_proj_bias).chunk(3, -1)
        q, k, v = (t.unflatten(2, (attn.num_heads, attn.head_dim)).transpose(1, 2) for t in (q, k, v))
        heads = F.scaled_dot_product_attention(q, k, v, attn_mask=attend)  # (N, heads, L, head_dim)
        x = x + attn.out_proj(heads.transpose(1, 2).flatten(2))
        x = x + layer.linear2(layer.activation(layer.linear1(layer.norm2(x))))
    return x


def build_text_classifier(name: str, vocab_size: int, num_classes: int, width: int | None = None,
                          depth: int | None = None, heads: int | None = None, embed_size: int | None = None,
                          dropout: float | None = None, max_len: int = 512) -> nn.Module:
    """One of TEXT_CLASS_MODELS. A setting left None takes the model's own default; a setting the model does not
    have (depth for fastText, heads for the CNN) is ignored."""
    if name not in TEXT_CLASS_MODELS:
        raise ConfigError(f"Expected a text classifier of {', '.join(TEXT_CLASS_MODELS)}. Received {name!r}.")
    check_sizes(vocab_size=(vocab_size, 3), num_classes=(num_classes, 2), width=(width, 1), depth=(depth, 1),
                heads=(heads, 1), embed_size=(embed_size, 1), max_len=(max_len, 1))
    if dropout is not None and not 0.0 <= dropout < 1.0:
        raise ConfigError(f"Expected a dropout from 0 up to (not including) 1. Received {dropout!r}.")
    given = {"width": width, "depth": depth, "heads": heads, "embed_size": embed_size, "dropout": dropout}
    model_class, takes = {
        "fasttext": (BagOfNgrams, ("width", "dropout")),
        "cnn": (WordCNN, ("width", "embed_size", "dropout")),
        "bigru": (BiGRUAttention, ("width", "embed_size", "depth", "dropout")),
        "transformer": (TransformerClassifier, ("width", "depth", "heads", "dropout")),
    }[name]
    kwargs = {key: given[key] for key in takes if given[key] is not None}
    if name == "transformer":
        kwargs["max_len"] = max_len
    return model_class(vocab_size, num_classes, **kwargs)


def check_sizes(**values: tuple) -> None:
    """name=(value, smallest): each value None or a whole number at least `smallest`."""
    for name, (value, smallest) in values.items():
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < smallest:
            raise ConfigError(f"Expected {name} to be a whole number of at least {smallest}. Received {value!r}.")
