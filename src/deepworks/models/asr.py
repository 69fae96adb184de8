"""Speech recognition with CTC (Graves et al. 2006): waveforms in, per-step log-probabilities over characters out.

The model: log-mel features (models/audio.py's LogMel), each band levelled over the utterance's own frames (so
padding never changes an utterance's features), two strided convolutions that make a step of 40 ms out of four
frames of 10 ms (Amodei et al. 2016's subsampling), then a bidirectional GRU over the steps and a linear layer over
the alphabet, id 0 being CTC's blank. `--model conformer` puts Conformer blocks (Gulati et al. 2020: self-attention
for the whole utterance, a depthwise convolution for its neighbourhood) where the GRU was.

Padding never changes the answer: each direction of the GRU is a GRU of its own, and the backward one reads each
utterance's real steps reversed, so it meets padding only after them (as models/textclass.py's BiGRU does; packed
sequences would do the same but do not export to ONNX).

Decoding (`greedy`): the likeliest symbol at each step, repeats merged, blanks removed.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .audio import LogMel
from .textclass import two_way

BLANK = 0
SUBSAMPLING = 4   # feature frames per output step
N_MELS = 64


def output_steps(samples: int, rate: int) -> int:
    """The output steps of a recording of `samples` samples at `rate` Hz (what CTC has to spell its transcript in)."""
    from .audio import frame_sizes

    n_fft, hop = frame_sizes(rate)
    return int(halved(halved(torch.tensor(max(1, 1 + (samples - n_fft) // hop)))))


def halved(steps: torch.Tensor) -> torch.Tensor:
    """What a stride-2 convolution (kernel 3, padding 1) makes of `steps` steps: (n - 1) // 2 + 1."""
    return torch.div(steps - 1, 2, rounding_mode="floor") + 1


class CTCRecognizer(nn.Module):
    """The recogniser; `encoder` 'bigru' (a bidirectional GRU of `depth` layers) or 'conformer' (`depth` Conformer
    blocks, Gulati et al. 2020) over the subsampled steps."""

    def __init__(self, rate: int, symbols: int, width: int = 192, depth: int = 2, channels: int = 32,
                 dropout: float = 0.1, encoder: str = "bigru"):
        super().__init__()
        self.features = LogMel(rate, n_mels=N_MELS)
        self.subsample = nn.ModuleList([nn.Conv2d(1, channels, 3, stride=2, padding=1),
                                        nn.Conv2d(channels, channels, 3, stride=2, padding=1)])
        self.project = nn.Linear(channels * ((N_MELS - 1) // 2 // 2 + 1), width)
        if encoder == "conformer":
            self.blocks = nn.ModuleList(ConformerBlock(width, dropout=dropout) for _ in range(depth))
        else:
            sizes = [width] + [2 * width] * (depth - 1)
            self.forward_gru = nn.ModuleList(nn.GRU(size, width, batch_first=True) for size in sizes)
            self.backward_gru = nn.ModuleList(nn.GRU(size, width, batch_first=True) for size in sizes)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(width if encoder == "conformer" else 2 * width, symbols)

    def frames(self, lengths: torch.Tensor) -> torch.Tensor:
        """Feature frames of waveforms of `lengths` samples (at least 1)."""
        return (torch.div(lengths - self.features.n_fft, self.features.hop, rounding_mode="floor") + 1).clamp(min=1)

    def forward(self, waves: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """waves (N, T) float, lengths (N,) samples -> (log-probabilities (N, S, symbols), steps (N,))."""
        return self.recognise(self.features(waves), lengths)

    def recognise(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The same from the log-mel features (N, mels, F) of the waves (what serving computes its own way)."""
        frames = self.frames(lengths).clamp(max=features.shape[2])
        x = self.levelled(features, frames)  # (N, mels, F)
        x, steps = x[:, None], frames
        for conv in self.subsample:  # (N, C, mels', S): the steps past each utterance's end zeroed after each
            x, steps = torch.relu(conv(x)), halved(steps)
            x = x * (torch.arange(x.shape[3], device=x.device) < steps[:, None])[:, None, None].to(x.dtype)
        x = self.project(x.permute(0, 3, 1, 2).flatten(2))  # (N, S, width)
        steps = steps.clamp(max=x.shape[1])
        x = self.conformer(x, steps) if hasattr(self, "blocks") else self.bidirectional(x, steps)
        return self.head(self.drop(x)).log_softmax(-1), steps

    @staticmethod
    def levelled(x: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """Each band's mean and spread over the utterance's real frames taken out; padding frames set to 0."""
        real = (torch.arange(x.shape[2], device=x.device)[None] < frames[:, None]).to(x.dtype)[:, None]  # (N,1,F)
        count = real.sum(2, keepdim=True)
        mean = (x * real).sum(2, keepdim=True) / count
        spread = (((x - mean) * real) ** 2).sum(2, keepdim=True).div(count).add(1e-5).sqrt()
        return (x - mean) / spread * real

    def bidirectional(self, x: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        n, length = x.shape[:2]
        positions = torch.arange(length, device=x.device)[None].expand(n, -1)
        real = positions < steps[:, None]
        reverse = torch.where(real, steps[:, None] - 1 - positions, positions)  # its own inverse
        keep = real[..., None].to(x.dtype)
        return two_way(x * keep, self.forward_gru, self.backward_gru, reverse, keep, self.drop)


    def conformer(self, x: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        padding = torch.arange(x.shape[1], device=x.device)[None] >= steps[:, None]
        x = x + positions(x.shape[1], x.shape[2], x.device).to(x.dtype)
        for block in self.blocks:
            x = block(x, padding)
        return x


def positions(length: int, width: int, device) -> torch.Tensor:
    """Sinusoidal positions (Vaswani et al. 2017), (length, width)."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    rates = torch.exp(torch.arange(0, width, 2, device=device, dtype=torch.float32) * (-math.log(10_000.0) / width))
    table = torch.zeros(length, width, device=device)
    table[:, 0::2] = torch.sin(position * rates)
    table[:, 1::2] = torch.cos(position * rates[:width // 2])
    return table


def feed_forward(width: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 4 * width), nn.SiLU(), nn.Dropout(dropout),
                         nn.Linear(4 * width, width), nn.Dropout(dropout))


class ConformerBlock(nn.Module):
    """Half a feed-forward step, self-attention, a convolution module, half a feed-forward step (Gulati et al.
    2020). Padding steps are kept out of the attention's keys and zeroed before the depthwise convolution, so they
    never change a real step; the convolution's normalisation is a LayerNorm (a BatchNorm would mix utterances)."""

    def __init__(self, width: int, heads: int = 4, kernel: int = 15, dropout: float = 0.1):
        super().__init__()
        self.heads = heads
        self.first_half, self.second_half = feed_forward(width, dropout), feed_forward(width, dropout)
        self.attention_norm, self.qkv, self.attended = nn.LayerNorm(width), nn.Linear(width, 3 * width), \
            nn.Linear(width, width)
        self.conv_norm, self.expand = nn.LayerNorm(width), nn.Linear(width, 2 * width)
        self.depthwise = nn.Conv1d(width, width, kernel, padding=kernel // 2, groups=width)
        self.depthwise_norm, self.contract = nn.LayerNorm(width), nn.Linear(width, width)
        self.out_norm, self.drop = nn.LayerNorm(width), nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        x = x + 0.5 * self.first_half(x)
        x = x + self.drop(self.attend(self.attention_norm(x), padding))
        keep = (~padding)[..., None].to(x.dtype)
        h = F.glu(self.expand(self.conv_norm(x)), dim=-1) * keep
        h = self.depthwise(h.transpose(1, 2)).transpose(1, 2)
        x = x + self.drop(self.contract(F.silu(self.depthwise_norm(h))))
        return self.out_norm(x + 0.5 * self.second_half(x))

    def attend(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        n, length, width = x.shape
        q, k, v = (t.view(n, length, self.heads, -1).transpose(1, 2) for t in self.qkv(x).chunk(3, dim=-1))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(width // self.heads)
        scores = scores.masked_fill(padding[:, None, None, :], float("-inf"))
        out = scores.softmax(-1) @ v  # (N, heads, length, width / heads)
        return self.attended(out.transpose(1, 2).reshape(n, length, width))


def ctc_loss(log_probs: torch.Tensor, steps: torch.Tensor, targets: torch.Tensor,
             target_lengths: torch.Tensor) -> torch.Tensor:
    """CTC loss averaged over the batch, each utterance's divided by its transcript's length; an utterance too short
    for its transcript gives 0 rather than infinity (zero_infinity) and is kept out of training by the reader."""
    return F.ctc_loss(log_probs.transpose(0, 1).float(), targets, steps, target_lengths, blank=BLANK,
                      reduction="mean", zero_infinity=True)


def greedy(log_probs: torch.Tensor, steps: torch.Tensor) -> list[list[tuple[int, int]]]:
    """Each utterance's symbols with the step each starts at: the likeliest symbol per step, repeats merged, blanks
    removed."""
    best = log_probs.argmax(-1).cpu()
    out = []
    for row, n in zip(best, steps.tolist()):
        said, previous = [], BLANK
        for t, symbol in enumerate(row[:n].tolist()):
            if symbol != previous and symbol != BLANK:
                said.append((symbol, t))
            previous = symbol
        out.append(said)
    return out


def played_faster(waves: torch.Tensor, lengths: torch.Tensor, speeds: tuple[float, float]) -> tuple[torch.Tensor, ...]:
    """Speed perturbation (Ko et al. 2015): each recording played a random speeds[0]..speeds[1] times as fast (pitch
    and tempo together, by linear interpolation), so longer or shorter; the batch padded again."""
    factors = torch.empty(len(waves)).uniform_(*speeds).tolist()
    played = [F.interpolate(w[None, None, :n], size=max(1, round(n / f)), mode="linear", align_corners=False)[0, 0]
              for w, n, f in zip(waves, lengths.tolist(), factors)]
    out = waves.new_zeros(len(played), max(len(p) for p in played))
    for i, p in enumerate(played):
        out[i, :len(p)] = p
    return out, torch.tensor([len(p) for p in played], device=lengths.device)


def spec_augment(features: torch.Tensor, frames: torch.Tensor, masks: int = 2, bands: int = 8,
                 most_frames: int = 10, fraction: float = 0.05) -> torch.Tensor:
    """SpecAugment (Park et al. 2019) for utterances: `masks` runs of up to `bands` mel bands and `masks` runs of up
    to `most_frames` frames (and `fraction` of the utterance's own frames, so a short word is never all masked) set
    to the utterance's mean; features (N, mels, F), frames (N,) each utterance's real frames."""
    n, mels, length = features.shape
    device = features.device
    band, frame = torch.arange(mels, device=device)[None, :, None], torch.arange(length, device=device)[None, None]
    real = (frame < frames[:, None, None]).to(features.dtype)
    fill = (features * real).sum((1, 2), keepdim=True) / (real.sum((1, 2), keepdim=True) * mels).clamp(min=1)
    hidden = torch.zeros_like(features, dtype=torch.bool)
    widest = torch.minimum((frames * fraction).long(), torch.tensor(most_frames, device=device))
    for _ in range(masks):
        width = torch.randint(0, bands + 1, (n, 1, 1), device=device)
        start = (torch.rand(n, 1, 1, device=device) * (mels - width + 1)).long()
        hidden |= (band >= start) & (band < start + width)
        width = (torch.rand(n, 1, 1, device=device) * (widest[:, None, None] + 1)).long()
        start = (torch.rand(n, 1, 1, device=device) * (frames[:, None, None] - width + 1).clamp(min=1)).long()
        hidden |= (frame >= start) & (frame < start + width)
    return torch.where(hidden, fill.expand_as(features), features)

