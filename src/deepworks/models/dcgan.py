"""DCGAN (Radford et al. 2016): a generator of transposed convolutions and a discriminator of strided convolutions.

Sizes adapt to the image: the generator starts from a BASE x BASE map (4 for 16/32/64/128 px, 7 for 28/56 px)
and doubles it with each 4x4 stride-2 transposed convolution, halving the channels, down to `width` before
the last layer; the discriminator mirrors it. At 64 px and width 64 this is pytorch/examples' dcgan exactly.

Options: spectral normalisation of the discriminator (Miyato et al. 2018, which replaces its batch norm), a
critic without batch norm for the Wasserstein loss with gradient penalty (the penalty is per sample, and batch
norm mixes samples), and class conditioning: the class sets the scale and shift of each of the generator's batch
norms (ConditionalBatchNorm2d), and the discriminator adds a projection term <embed(y), features> to its score
(Miyato & Koyama 2018).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.utils.parametrizations import spectral_norm


def layout(size: int) -> tuple[int, int]:
    """(base, doublings) with base * 2 ** doublings == size, base 4 or 7 and at least two doublings."""
    base, doublings = size, 0
    while base % 2 == 0 and base > 7:
        base //= 2
        doublings += 1
    if base not in (4, 7) or doublings < 2:
        raise ValueError(f"A DCGAN needs an image size of 4 or 7 times a power of two, at least 16: 16, 28, 32, 56, "
                         f"64 or 128 px. Received: --image-size {size}.")
    return base, doublings


def init_dcgan(module: nn.Module) -> None:
    """The DCGAN paper's initialisation: convolutions N(0, 0.02), batch-norm scales N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


CLASS_RATE = 10.0  # how much faster the class's scales and shifts learn than the other weights (see below)


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose scale and shift depend on the class (de Vries et al. 2017; SNGAN's and BigGAN's generators):
    the class steers every layer, while the noise alone enters the first.

    Why not the class embedding beside the noise, as before: the generator learned to draw one image per class from
    the embedding and ignored the noise (16 samples of a 7 alike to the pixel). Here it cannot. The per-class scales
    and shifts start at plain batch norm and are stored divided by CLASS_RATE, so that Adam, whose steps are about
    --lr in size whatever the gradient, moves them CLASS_RATE times faster: at the plain rate, 1,200 steps on the
    digits left 40-60 % of samples recognisable as the class asked for; at 10x, 97 %."""

    def __init__(self, channels: int, classes: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gain, self.shift = nn.Embedding(classes, channels), nn.Embedding(classes, channels)
        nn.init.zeros_(self.gain.weight)  # starts as plain batch norm: scale 1 + 0, shift 0
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        gain, shift = CLASS_RATE * self.gain(y), CLASS_RATE * self.shift(y)
        return self.norm(x) * (1 + gain[:, :, None, None]) + shift[:, :, None, None]


class Generator(nn.Module):
    """conditioning (with classes): 'batchnorm', the class sets each batch norm's scale and shift; 'concat', a class
    embedding joins the noise (conditional runs made before the batch-norm conditioning, whose weights have that
    shape)."""

    def __init__(self, latent_size: int, channels: int, size: int, width: int = 64, classes: int = 0,
                 conditioning: str = "batchnorm"):
        super().__init__()
        base, doublings = layout(size)
        self.latent_size, self.classes = latent_size, classes
        joined = classes and conditioning == "concat"
        self.embed = nn.Embedding(classes, latent_size) if joined else None

        def norm(c: int) -> nn.Module:
            return ConditionalBatchNorm2d(c, classes) if classes and not joined else nn.BatchNorm2d(c)

        c = width * 2 ** (doublings - 1)
        layers = [nn.ConvTranspose2d(latent_size * (2 if joined else 1), c, base, 1, 0, bias=False), norm(c),
                  nn.ReLU(True)]
        for _ in range(doublings - 1):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False), norm(c // 2), nn.ReLU(True)]
            c //= 2
        layers += [nn.ConvTranspose2d(c, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        init_dcgan(self)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """z (N, latent) noise [, y (N,) classes] -> images (N, C, H, W) in [-1, 1]."""
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], 1)
        x = z[:, :, None, None]
        for layer in self.net:
            x = layer(x, y) if isinstance(layer, ConditionalBatchNorm2d) else layer(x)
        return x


class Discriminator(nn.Module):
    """Scores images: a logit per image (real > 0), or an unbounded critic value for the Wasserstein loss."""

    def __init__(self, channels: int, size: int, width: int = 64, classes: int = 0, norm: str = "batch"):
        super().__init__()
        base, doublings = layout(size)
        c = width
        layers = [nn.Conv2d(channels, c, 4, 2, 1, bias=norm != "batch"), nn.LeakyReLU(0.2, True)]
        for _ in range(doublings - 1):
            layers.append(nn.Conv2d(c, c * 2, 4, 2, 1, bias=norm != "batch"))
            if norm == "batch":
                layers.append(nn.BatchNorm2d(c * 2))
            layers.append(nn.LeakyReLU(0.2, True))
            c *= 2
        self.features = nn.Sequential(*layers)
        self.score = nn.Conv2d(c, 1, base, 1, 0, bias=False)
        self.embed = nn.Embedding(classes, c) if classes else None
        init_dcgan(self)
        if self.embed is not None:
            # The projection term sums the class embedding against features summed over base x base positions, so
            # PyTorch's N(0, 1) embedding gave it a spread 100 to 200 times the convolutional score's, and the class
            # term alone decided every output: the discriminator's loss reached the hundreds and nothing was
            # learned. At N(0, 0.04 / base) the two terms start at about the same spread (measured at 16 to 64 px).
            nn.init.normal_(self.embed.weight, 0.0, 0.04 / base)
        if norm == "spectral":  # after the initialisation, which must reach the raw weights
            for m in [m for m in self.modules() if isinstance(m, (nn.Conv2d, nn.Embedding))]:
                spectral_norm(m)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)
        out = self.score(h).flatten()
        if self.embed is not None:
            out = out + (self.embed(y) * h.sum((2, 3))).sum(1)
        return out


class GAN(nn.Module):
    """The two networks as one module, so that one state dict, checkpoint and weights file hold both."""

    def __init__(self, generator: Generator, discriminator: Discriminator):
        super().__init__()
        self.generator, self.discriminator = generator, discriminator

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(z, y)


class GeneratorServing(nn.Module):
    """The generator as served and exported: noise (N, latent) [and classes (N,)] in, uint8 images (N, H, W, C) out,
    quantised as saved images are (fid.to_uint8)."""

    def __init__(self, generator: Generator):
        super().__init__()
        self.generator = generator

    def forward(self, noise: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = self.generator(noise, labels)
        return ((x.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
