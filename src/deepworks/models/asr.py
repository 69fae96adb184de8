"""Speech recognition with CTC (Graves et al. 2006): waveforms in, per-step log-probabilities over characters out.

The model: log-mel features (models/audio.py's LogMel), each band levelled over the utterance's own frames (so
padding never changes an utterance's features), two strided convolutions that make a step of 40 ms out of four
frames of 10 ms (Amodei et al. 2016's subsampling), then a bidirectional GRU over the steps and a linear layer over
the alphabet, id 0 being CTC's blank.

Padding never changes the answer: each direction of the GRU is a GRU of its own, and the backward one reads each
utterance's real steps reversed, so it meets padding only after them (as models/textclass.py's BiGRU does; packed
sequences would do the same but do not export to ONNX).

Decoding (`greedy`): the likeliest symbol at each step, repeats merged, blanks removed.
"""

from __future__ import annotations

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
    def __init__(self, rate: int, symbols: int, width: int = 192, depth: int = 2, channels: int = 32,
                 dropout: float = 0.1):
        super().__init__()
        self.features = LogMel(rate, n_mels=N_MELS)
        self.subsample = nn.ModuleList([nn.Conv2d(1, channels, 3, stride=2, padding=1),
                                        nn.Conv2d(channels, channels, 3, stride=2, padding=1)])
        self.project = nn.Linear(channels * ((N_MELS - 1) // 2 // 2 + 1), width)
        sizes = [width] + [2 * width] * (depth - 1)
        self.forward_gru = nn.ModuleList(nn.GRU(size, width, batch_first=True) for size in sizes)
        self.backward_gru = nn.ModuleList(nn.GRU(size, width, batch_first=True) for size in sizes)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(2 * width, symbols)

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
        x = self.bidirectional(x, steps)
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
