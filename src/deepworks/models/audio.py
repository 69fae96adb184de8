"""Sound as a model sees it: log-mel spectrograms computed with torch.stft and a mel filterbank of our own (torchaudio
cannot be installed beside this torch), MFCCs as their DCT, and a small 1-D CNN over the frames.

Framing: frames of `n_fft` samples (32 ms) every `hop` samples (10 ms), Hann-windowed, not centred: frame i is
samples i*hop .. i*hop + n_fft - 1, so a clip of T samples gives 1 + (T - n_fft) // hop frames. The mel scale is
HTK's, 2595 * log10(1 + f / 700), with triangular filters of peak 1 between neighbouring centres.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_mels: int, n_fft: int, rate: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) weights: filter m rises linearly from centre m-1 to 1 at centre m and falls to 0 at
    centre m+1, the n_mels + 2 centres equally spaced on the mel scale from fmin to fmax (default: half the rate)."""
    fmax = rate / 2 if fmax is None else fmax
    centres = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    bins = np.arange(n_fft // 2 + 1) * rate / n_fft
    low, mid, high = centres[:-2, None], centres[1:-1, None], centres[2:, None]
    rising = (bins[None, :] - low) / (mid - low)
    falling = (high - bins[None, :]) / (high - mid)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


def frame_sizes(rate: int) -> tuple[int, int]:
    """(n_fft, hop) for a sample rate: 32 ms frames (a power of two of samples) every 10 ms."""
    return 2 ** round(math.log2(0.032 * rate)), max(1, round(0.010 * rate))


class LogMel(nn.Module):
    """Waveforms (N, T) -> log-mel spectrograms (N, n_mels, frames), or with `mfcc` the first `mfcc` coefficients of
    their DCT-II (N, mfcc, frames).

    With `level`, each clip is first scaled to a peak of 1, and each band's mean over the clip is subtracted from the
    features (cepstral mean normalisation): what is left does not depend on how loud the speaker was or on the
    colour of the microphone. On FSDD with one speaker left out, this took the small CNN from a mean of 69 % to 83 %
    over the six speakers, measured fold by fold (the README's sound section; bench/results/audio.json has the
    default recipe's figures)."""

    def __init__(self, rate: int, n_mels: int = 40, mfcc: int = 0, level: bool = False):
        super().__init__()
        self.level = level
        self.n_fft, self.hop = frame_sizes(rate)
        self.register_buffer("window", torch.hann_window(self.n_fft, periodic=True), persistent=False)
        self.register_buffer("mel", torch.from_numpy(mel_filterbank(n_mels, self.n_fft, rate)), persistent=False)
        self.mfcc = mfcc
        if mfcc:
            self.register_buffer("dct", dct_matrix(mfcc, n_mels), persistent=False)

    def frames(self, length: int) -> int:
        return 1 + (length - self.n_fft) // self.hop

    def power(self, x: torch.Tensor) -> torch.Tensor:
        """|STFT|^2: (N, n_fft // 2 + 1, frames)."""
        spec = torch.stft(x.float(), self.n_fft, self.hop, window=self.window, center=False, return_complex=True)
        return spec.real ** 2 + spec.imag ** 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.from_power(self.power(self.levelled(x)))

    def levelled(self, x: torch.Tensor) -> torch.Tensor:
        return x / x.abs().amax(1, keepdim=True).clamp(min=1e-4) if self.level else x

    def from_power(self, power: torch.Tensor) -> torch.Tensor:
        out = torch.log(torch.matmul(self.mel, power) + 1e-6)
        if self.mfcc:
            out = torch.matmul(self.dct, out)
        return out - out.mean(2, keepdim=True) if self.level else out


def dct_matrix(n_out: int, n_in: int) -> torch.Tensor:
    """The orthonormal DCT-II as a matrix (n_out, n_in): MFCCs are it times the log-mel frame."""
    k = torch.arange(n_out, dtype=torch.float64)[:, None]
    n = torch.arange(n_in, dtype=torch.float64)[None, :]
    m = torch.cos(math.pi / n_in * (n + 0.5) * k) * math.sqrt(2.0 / n_in)
    m[0] /= math.sqrt(2.0)
    return m.float()


class BandNormalised(nn.Module):
    """A head over features (N, F, frames) that first normalises each band by the training clips' mean and std."""

    def __init__(self, bands: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(bands, 1))
        self.register_buffer("std", torch.ones(bands, 1))

    def normalise(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.mean) / self.std


class AudioCNN(BandNormalised):
    """Features (N, F, frames) -> class logits: the features normalised per band (the training clips' mean and std),
    three blocks of Conv1d (kernel 5) -> batch norm -> ReLU -> max-pool over time, global pooling over time (average,
    or max: a short word then weighs as much as a long one, since the silence around it is not averaged in),
    dropout, a linear layer. About 66 k parameters at width 64 over 40 mel bands."""

    def __init__(self, bands: int, num_classes: int, width: int = 64, dropout: float = 0.3, pool: str = "mean"):
        super().__init__(bands)
        self.pool = pool
        chans = [bands, width, width, width * 3 // 2]
        blocks = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            blocks += [nn.Conv1d(cin, cout, 5, padding=2, bias=False), nn.BatchNorm1d(cout), nn.ReLU(inplace=True),
                       nn.MaxPool1d(2, ceil_mode=True)]
        self.body = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(chans[-1], num_classes))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.body(self.normalise(features))
        return self.head(x.amax(-1) if self.pool == "max" else x.mean(-1))


class FrameRNN(BandNormalised):
    """Features (N, F, frames) -> class logits: a bidirectional LSTM or GRU reads the frames in order, both ways;
    the maximum of its outputs over time, dropout and a linear layer give the classes."""

    def __init__(self, bands: int, num_classes: int, kind: str = "gru", width: int = 64, layers: int = 2,
                 dropout: float = 0.3):
        super().__init__(bands)
        cell = nn.LSTM if kind == "lstm" else nn.GRU
        self.rnn = cell(bands, width, num_layers=layers, batch_first=True, bidirectional=True,
                        dropout=dropout if layers > 1 else 0.0)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * width, num_classes))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.normalise(features).transpose(1, 2))
        return self.head(out.amax(1))


class SpectrogramImage(BandNormalised):
    """Features (N, F, frames) -> class logits through an image classifier: the normalised spectrogram resized to a
    square picture of `size` pixels (bilinear), repeated to the `channels` the image model takes (three for
    ImageNet weights)."""

    def __init__(self, bands: int, image_model: nn.Module, size: int, channels: int = 1):
        super().__init__(bands)
        self.image = image_model
        self.size, self.channels = size, channels

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = nn.functional.interpolate(self.normalise(features)[:, None], size=(self.size, self.size), mode="bilinear",
                                      align_corners=False)
        return self.image(x.expand(-1, self.channels, -1, -1))


class AudioClassifier(nn.Module):
    """Waveforms (N, T) at the run's sample rate -> class logits: LogMel (no weights), then a head over its features
    (AudioCNN by default)."""

    def __init__(self, rate: int, num_classes: int, n_mels: int = 40, mfcc: int = 0, width: int = 64,
                 dropout: float = 0.3, level: bool = False, pool: str = "mean", head: nn.Module | None = None):
        super().__init__()
        self.features = LogMel(rate, n_mels, mfcc, level)
        self.classifier = head if head is not None else AudioCNN(mfcc or n_mels, num_classes, width, dropout, pool)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(waves))


class ConvPower(nn.Module):
    """|STFT|^2 as LogMel.power computes it, but as a convolution with the windowed cosines and sines of the DFT:
    the same numbers (to float rounding) from an operation every ONNX runtime has, where torch.stft's complex
    output cannot be exported."""

    def __init__(self, n_fft: int, hop: int, window: torch.Tensor):
        super().__init__()
        self.hop = hop
        n = torch.arange(n_fft, dtype=torch.float64)
        k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
        angle = 2 * math.pi * k * n / n_fft
        kernels = torch.cat([torch.cos(angle), -torch.sin(angle)]) * window.double()
        self.register_buffer("kernels", kernels.float()[:, None, :], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = nn.functional.conv1d(x.float()[:, None, :], self.kernels, stride=self.hop)
        real, imag = out.chunk(2, dim=1)
        return real ** 2 + imag ** 2


class AudioServing(nn.Module):
    """What a trained audio classifier serves and exports: clips (N, T) of float samples at the run's rate in,
    class probabilities (N, K) out, the features inside with the DFT as a convolution (ConvPower)."""

    def __init__(self, model: AudioClassifier):
        super().__init__()
        self.features = model.features
        self.classifier = model.classifier
        self.power = ConvPower(self.features.n_fft, self.features.hop, self.features.window)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        f = self.features
        return self.classifier(f.from_power(self.power(f.levelled(clips.float())))).softmax(1)
