"""Pixels against pixels, as the image-restoration papers measure them, and the resampling and colour maps they use.

- `resize`: MATLAB's `imresize` bicubic (Keys' cubic with a = -0.5, widened by the factor when shrinking, so that it
  also smooths; the border mirrored). The super-resolution papers make their low-resolution inputs and their
  bicubic baseline with it; deepworks makes its training inputs, its test inputs and its bicubic answer with this
  same function, so that its figures sit beside the published ones. torch's own bicubic uses a = -0.75.
- `y_channel`: ITU-R BT.601's luma in 16-235, MATLAB's `rgb2ycbcr`, on which super-resolution is scored.
- `psnr` and `ssim` (Wang et al. 2004: an 11x11 Gaussian window of sigma 1.5, scikit-image's implementation), on
  images cropped by `border` pixels on each side (the scale, for super-resolution).
- `rgb_to_lab`, `lab_to_rgb`: CIE L*a*b* under D65 in torch, inside the colouriser's graph (so that it exports).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

Y_WEIGHTS = (65.481, 128.553, 24.966)  # MATLAB rgb2ycbcr, for RGB in 0-1
WHITE = (0.950456, 1.0, 1.088754)      # D65
RGB_TO_XYZ = ((0.412453, 0.357580, 0.180423), (0.212671, 0.715160, 0.072169), (0.019334, 0.119193, 0.950227))
XYZ_TO_RGB = tuple(map(tuple, np.linalg.inv(np.array(RGB_TO_XYZ)).tolist()))


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's bicubic)."""
    a = np.abs(x)
    return np.where(a <= 1, 1.5 * a ** 3 - 2.5 * a ** 2 + 1,
                    np.where(a <= 2, -0.5 * a ** 3 + 2.5 * a ** 2 - 4 * a + 2, 0.0))


@functools.lru_cache(maxsize=16)
def resize_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) sparse float64 weights that resample a line of n_in pixels to n_out as MATLAB's imresize does:
    the kernel widened by n_in / n_out when shrinking, taps beyond the ends mirrored onto the line (symmetric).
    Sparse: a few taps per output pixel, so a side of thousands of pixels costs kilobytes, not a dense matrix."""
    scale = n_out / n_in
    width = 4.0 / min(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) / scale - 0.5
    taps = np.floor(centres - width / 2)[:, None] + np.arange(int(np.ceil(width)) + 2)[None]
    weights = cubic((centres[:, None] - taps) * min(scale, 1.0))
    weights /= weights.sum(1, keepdims=True)
    period = 2 * n_in
    mirrored = np.mod(taps.astype(np.int64), period)  # -1 -> 0, -2 -> 1, n -> n - 1: symmetric padding
    mirrored = np.where(mirrored >= n_in, period - 1 - mirrored, mirrored)
    rows = np.repeat(np.arange(n_out), taps.shape[1])
    index = torch.from_numpy(np.stack([rows, mirrored.reshape(-1)]))
    return torch.sparse_coo_tensor(index, torch.from_numpy(weights.reshape(-1)), (n_out, n_in),
                                   check_invariants=True).coalesce()


def along(x: torch.Tensor, matrix: torch.Tensor, dim: int) -> torch.Tensor:
    """`matrix` (n_out, n_in) applied along dimension `dim` (of size n_in) of x."""
    moved = x.movedim(dim, 0)
    flat = moved.reshape(moved.shape[0], -1)
    out = torch.sparse.mm(matrix.to(x.device, x.dtype), flat)
    return out.reshape(matrix.shape[0], *moved.shape[1:]).movedim(0, dim)


def resize(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Float images (..., H, W) resampled to (..., height, width) by MATLAB's bicubic (not clamped or rounded)."""
    x = along(x, resize_matrix(x.shape[-2], height), x.dim() - 2)
    return along(x, resize_matrix(x.shape[-1], width), x.dim() - 1)


def shrink(x: torch.Tensor, scale: int) -> torch.Tensor:
    """uint8 or float 0-255 images (..., H, W), H and W multiples of `scale` -> the low-resolution images as uint8
    files hold them: bicubic by 1/scale, rounded and clipped."""
    h, w = x.shape[-2:]
    return resize(x.double(), h // scale, w // scale).round().clamp(0, 255).to(torch.uint8)


def enlarge(x: torch.Tensor, scale: int) -> torch.Tensor:
    """The bicubic answer: uint8 images (..., h, w) -> uint8 (..., h * scale, w * scale)."""
    h, w = x.shape[-2:]
    return resize(x.double(), h * scale, w * scale).round().clamp(0, 255).to(torch.uint8)


def y_channel(rgb: np.ndarray) -> np.ndarray:
    """uint8 or 0-255 float (H, W, 3) -> float64 luma (H, W) in 16-235; a (H, W) image is taken as grey."""
    a = np.asarray(rgb, dtype=np.float64)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, -1)
    return 16.0 + a[..., :3] @ np.array(Y_WEIGHTS) / 255.0


def cropped(a: np.ndarray, border: int) -> np.ndarray:
    return a[border:a.shape[0] - border, border:a.shape[1] - border] if border else a


def psnr(a: np.ndarray, b: np.ndarray, border: int = 0) -> float:
    """Peak signal-to-noise ratio in dB of two images of 0-255 values (either layout, the same shape), the border
    left out; 100 for identical images."""
    mse = float(np.mean((cropped(np.asarray(a, np.float64), border) - cropped(np.asarray(b, np.float64), border)) ** 2))
    return 100.0 if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def ssim(a: np.ndarray, b: np.ndarray, border: int = 0) -> float:
    """Structural similarity (Wang et al. 2004's Gaussian window) of two (H, W) or (H, W, 3) images of 0-255 values,
    the border left out; a colour image's is the mean over its channels."""
    from skimage.metrics import structural_similarity

    a, b = cropped(np.asarray(a, np.float64), border), cropped(np.asarray(b, np.float64), border)
    if min(a.shape[:2]) < 7:
        return float("nan")
    return float(structural_similarity(a, b, data_range=255.0, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False, channel_axis=-1 if a.ndim == 3 else None))


def scores(output: np.ndarray, target: np.ndarray, border: int, on_luma: bool) -> dict:
    """{'psnr', 'ssim'} of uint8 (H, W, 3) images: on the luma (super-resolution's convention) or on RGB."""
    if on_luma:
        output, target = y_channel(output), y_channel(target)
    return {"psnr": round(psnr(output, target, border), 4), "ssim": round(ssim(output, target, border), 4)}


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in 0-1 (N, 3, H, W) -> L* (0-100), a*, b* (about -110 to 110), D65."""
    linear = torch.where(rgb > 0.04045, ((rgb.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = torch.einsum("ij,njhw->nihw", torch.tensor(RGB_TO_XYZ, dtype=rgb.dtype, device=rgb.device), linear)
    xyz = xyz / torch.tensor(WHITE, dtype=rgb.dtype, device=rgb.device)[None, :, None, None]
    delta = 6 / 29
    f = torch.where(xyz > delta ** 3, xyz.clamp_min(delta ** 3) ** (1 / 3), xyz / (3 * delta ** 2) + 4 / 29)
    return torch.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], 1)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """L*a*b* (N, 3, H, W) -> sRGB in 0-1, clipped."""
    fy = (lab[:, 0] + 16) / 116
    f = torch.stack([fy + lab[:, 1] / 500, fy, fy - lab[:, 2] / 200], 1)
    delta = 6 / 29
    xyz = torch.where(f > delta, f ** 3, 3 * delta ** 2 * (f - 4 / 29))
    xyz = xyz * torch.tensor(WHITE, dtype=lab.dtype, device=lab.device)[None, :, None, None]
    linear = torch.einsum("ij,njhw->nihw", torch.tensor(XYZ_TO_RGB, dtype=lab.dtype, device=lab.device),
                          xyz).clamp(0, 1)
    return torch.where(linear > 0.0031308, 1.055 * linear.clamp_min(0.0031308) ** (1 / 2.4) - 0.055,
                       12.92 * linear).clamp(0, 1)
