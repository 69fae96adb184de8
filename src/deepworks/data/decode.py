"""Turning one image (a file, its bytes, a PIL image) or an array of pixels into uint8 pixels, with every way it can
be unusable said plainly. Pillow and numpy only, no torch: a package made by `deepworks package` serves without
torch and ships this module unchanged, so that it reads an upload exactly as `deepworks serve` does. data/images.py
(training's readers) and inference.py (every face's decoding) import from here.
"""

from __future__ import annotations

import io
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from ..errors import DataError

MAX_PIXELS = 40_000_000  # a 40-megapixel photo is fine; a 1-gigapixel PNG of a few KB is a decompression bomb

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error to report, not grey pixels to learn from


class UnreadableImage(Exception):
    pass


@contextmanager
def open_image(path: Path | bytes):
    """The one way deepworks opens an image file (or the bytes of one, as a server receives them): Pillow's lazy
    open, with every way a file can be unusable (empty, not an image, truncated, a decompression bomb: a few KB that
    claim billions of pixels) turned into UnreadableImage with the reason. Training, prediction, the server, the
    GAN's survey and the audit all go through here."""
    try:
        if (len(path) if isinstance(path, bytes) else path.stat().st_size) == 0:
            raise UnreadableImage("empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(path) if isinstance(path, bytes) else path) as im:
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise UnreadableImage(f"too large: {w}x{h} pixels, over the {MAX_PIXELS:,} limit (a decompression "
                                          f"bomb?)")
                yield im
    except UnreadableImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise UnreadableImage(f"too large (a decompression bomb?): {err}") from None
    except Image.UnidentifiedImageError:
        raise UnreadableImage("not an image, or a format Pillow cannot read") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise UnreadableImage(f"corrupt or truncated ({err})") from None


def probe_image(path: Path) -> tuple[tuple[int, int], str]:
    """((width, height), mode) of an image file, from its header; UnreadableImage when it cannot be used."""
    with open_image(path) as im:
        return im.size, im.mode


def decode_image(path: Path | bytes | Image.Image, size: int) -> np.ndarray:
    """Decode one image (a file, its bytes, or a PIL image) of any mode to RGB uint8 (3, size, size), transparency
    on white."""
    if isinstance(path, Image.Image):
        if path.width * path.height > MAX_PIXELS:
            raise UnreadableImage(f"too large: {path.width}x{path.height} pixels, over the {MAX_PIXELS:,} limit")
        return image_to_array(path, size)
    with open_image(path) as im:
        if im.format == "JPEG":
            im.draft("RGB", (size, size))  # let the JPEG decoder downscale for us: much faster on big photos
        return image_to_array(im, size)


def eight_bit(im: Image.Image) -> Image.Image:
    """A 16-bit, 32-bit or float greyscale image (microscopy, scans) stretched from its own darkest to its own
    brightest pixel into 8 bits; any other image as it is (converting would clip it to white)."""
    if im.mode not in ("I;16", "I;16B", "I;16L", "I", "F"):
        return im
    arr = np.asarray(im, dtype=np.float64)
    span = max(arr.max() - arr.min(), 1e-12)
    return Image.fromarray(((arr - arr.min()) / span * 255).astype(np.uint8))


def on_white(im: Image.Image) -> Image.Image:
    """Any image as RGB: 16-bit stretched into 8 bits (eight_bit), a palette expanded, transparent pixels laid on
    white. Pixels are decoded here, lazily: a corrupt file raises OSError, SyntaxError, ValueError or EOFError."""
    im = eight_bit(im)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im.convert("RGBA"))
    return im if im.mode == "RGB" else im.convert("RGB")


def image_to_array(im: Image.Image, size: int) -> np.ndarray:
    try:
        im = on_white(im)
        if im.size != (size, size):  # (Pillow would return a copy of an image already at the size)
            im = im.resize((size, size), Image.BILINEAR)
        return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).copy()
    except (OSError, SyntaxError, ValueError, EOFError) as err:  # pixels are decoded only now, lazily
        raise UnreadableImage(f"corrupt or truncated ({err})") from None


def rgb_to_grey(x: np.ndarray) -> np.ndarray:
    w = np.array([0.299, 0.587, 0.114], dtype=np.float32)[None, :, None, None]
    return (x.astype(np.float32) * w).sum(1, keepdims=True).round().clip(0, 255).astype(np.uint8)


def images_to_nchw(x: np.ndarray, path: Path, key: str) -> np.ndarray:
    """Accept (N,H,W), (N,H,W,C) or (N,C,H,W) with C in 1/3/4; uint8, or floats in [0,1] or [0,255]."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        x = x.transpose(0, 3, 1, 2)
    elif x.ndim == 2:
        side = int(round(np.sqrt(x.shape[1])))
        if side * side != x.shape[1]:
            raise DataError(f"'{path}': {key} has shape {x.shape}: rows of {x.shape[1]} values are not square images. "
                            f"Store images as (N, H, W) or (N, H, W, C).")
        x = x.reshape(len(x), 1, side, side)
    if x.ndim != 4 or x.shape[1] not in (1, 3, 4):
        raise DataError(f"'{path}': {key} has shape {x.shape}. Expected (N, H, W), (N, H, W, C) or (N, C, H, W) "
                        f"with 1, 3 or 4 channels.")
    if x.shape[1] == 4:
        x = x[:, :3]
    if x.dtype != np.uint8:
        if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
            raise DataError(f"'{path}': {key} must be numeric, got dtype {x.dtype}.")
        x = pixel_range(x, path, key)
    return np.ascontiguousarray(x)


def pixel_range(x: np.ndarray, path: Path, key: str) -> np.ndarray:
    """Numbers other than uint8 -> uint8 pixels: floats in [0, 1] are scaled by 255, values in [0, 255] kept.
    Anything else (NaN, infinity, negative values, values above 255) is refused: guessing would train on
    altered data without a word."""
    if x.size == 0:
        return x.astype(np.uint8)
    finite = np.isfinite(x) if np.issubdtype(x.dtype, np.floating) else None  # (whole numbers always are)
    if finite is not None and not finite.all():
        first = np.unravel_index(int(np.argmin(finite.reshape(-1))), x.shape)
        raise DataError(f"'{path}': {key} holds {int((~finite).sum()):,} value(s) that are NaN or infinite (the first "
                        f"in image {first[0]}). Pixels must be numbers: fix or drop those images.")
    low, high = x.min(), x.max()
    if low < 0 or high > 255:
        raise DataError(f"'{path}': {key} holds values from {low:g} to {high:g}. Pixels must lie in 0..1 (floats) or "
                        f"0..255: rescale them, for example x / x.max() * 255.")
    top = 1.0 if high <= 1.0 else 255.0
    if top == 255.0 and np.issubdtype(x.dtype, np.integer):
        return x.astype(np.uint8)  # whole numbers in 0..255 already are pixels
    return (x.astype(np.float64) / top * 255).round().astype(np.uint8)


def walk_images(inputs, limit: int, paths: bool, decode, from_array) -> list[tuple[str, object]]:
    """What every image face shares: paths (files or folders), bytes, PIL images, numpy arrays or tensors, or a list
    of them -> [(name, item)], each file, bytes or PIL image made an item by `decode(source)` and each array by
    `from_array(array, n)` (-> a list of (name, item)); at most `limit`; with paths=False text is refused rather
    than read as a file of this machine. A user's mistake is a DataError that says what was expected."""
    if inputs is None:
        inputs = []
    if isinstance(inputs, (str, Path, bytes, bytearray, Image.Image, np.ndarray)) or is_tensor(inputs):
        inputs = [inputs]
    if not isinstance(inputs, (list, tuple)):
        raise DataError(f"Cannot use a {type(inputs).__name__} as images. Expected a file path, the bytes of an image "
                        f"file, a PIL image, an array of pixels, or a list of them.")
    items: list[tuple[str, object]] = []
    for n, value in enumerate(inputs):
        if isinstance(value, (str, Path)) and not paths:
            raise DataError(f"Input {n} is text. Expected an image: a file upload, {{\"base64\": the file's bytes in "
                            f"base64}}, or an array of pixels (the server never reads paths on its own disk).")
        if isinstance(value, (str, Path)):
            files = files_at(Path(value))
            for f in files:
                try:
                    items.append((str(f), decode(f)))
                except UnreadableImage as err:
                    raise DataError(f"Cannot read '{f}' as an image: {err}. Expected a JPEG, PNG or other image "
                                    f"file.") from None
        elif isinstance(value, (bytes, bytearray, Image.Image)):
            name = f"image {n}"
            try:
                items.append((name, decode(value if isinstance(value, Image.Image) else bytes(value))))
            except UnreadableImage as err:
                raise DataError(f"Cannot read {name} as an image: {err}. Expected the bytes of a JPEG, PNG or other "
                                f"image file.") from None
        elif isinstance(value, np.ndarray) or is_tensor(value):
            items += from_array(np.asarray(value.detach().cpu() if is_tensor(value) else value), n)
        else:
            raise DataError(f"Cannot use a {type(value).__name__} as an image. Expected a file path, the bytes of an "
                            f"image file, a PIL image, or a numpy array or tensor of pixels.")
        if len(items) > limit:
            raise DataError(f"Too many images in one call: more than {limit:,}. Send them in smaller batches.")
    if not items:
        raise DataError("No images were given. Expected a path, bytes, a PIL image or an array of pixels.")
    return items


def files_at(path: Path) -> list[Path]:
    """The image files a path names: itself, or those of a folder (the images of a user's own disk, never a
    client's: walk_images reads paths only where it may)."""
    from .images import IMAGE_EXTENSIONS, image_files

    if path.is_dir():
        files = image_files(path)
        if not files:
            raise DataError(f"No images found in '{path}'. Expected image files ({', '.join(IMAGE_EXTENSIONS)}).")
        return files
    if not path.exists():
        raise DataError(f"No such image file '{path}'. Check the path.")
    return [path]


def is_tensor(value) -> bool:
    """A torch tensor, without importing torch: where torch was never imported, nothing is one."""
    torch = sys.modules.get("torch")
    return torch is not None and torch.is_tensor(value)


def set_channels(x: np.ndarray, channels: int) -> np.ndarray:
    if x.shape[1] == channels:
        return x
    return np.repeat(x, 3, axis=1) if channels == 3 else rgb_to_grey(x)


def one_or_many(x: np.ndarray, what: str, channels: int) -> np.ndarray:
    """A single image (H, W), (H, W, C) or (C, H, W) gets a batch axis; a batch (N, ...) is kept. A 3-D array is
    one image when its last axis holds 1, 3 or 4 channels, or its first axis the model's own number of channels;
    else it is a batch of grey images (N, H, W)."""
    if x.ndim == 2 or (x.ndim == 3 and (x.shape[-1] in (1, 3, 4) or x.shape[0] == channels)):
        return x[None]
    if x.ndim in (3, 4):
        return x
    raise DataError(f"{what} has shape {tuple(x.shape)}. Expected one image (H, W), (H, W, C) or (C, H, W), or a "
                    f"batch (N, H, W, C) or (N, C, H, W).")


def array_images(array: np.ndarray, n: int, channels: int) -> np.ndarray:
    """Input `n`, an array of one image or a batch, as uint8 (N, C, H, W) at its own size (one_or_many says how its
    axes are read; images_to_nchw, its numbers)."""
    x = images_to_nchw(one_or_many(array, f"input {n}", channels), f"input {n}", "the array")
    if x.shape[0] and 0 in x.shape[2:]:
        raise DataError(f"input {n} has shape {tuple(np.shape(array))}: images with no pixels. Expected images "
                        f"of at least 1 x 1 pixels.")
    return x


def resize_like_torch(x: np.ndarray, size: int) -> np.ndarray:
    """uint8 images (N, C, H, W) -> (N, C, size, size), antialiased bilinear as data/arrays.resize makes them with
    torch (each output pixel a triangle-weighted mean of the input's, the triangle widened when shrinking), in numpy:
    what a package's runtime resizes arrays with. Shrinking, the two agree; enlarging, about 1 pixel in 50 differs
    by one level, where a value lands on a half and the two sums' float rounding send it either way."""
    if x.shape[-2:] == (size, size):
        return x
    rows, cols = triangle_weights(x.shape[2], size), triangle_weights(x.shape[3], size)
    across = np.einsum("nchw,pw->nchp", x.astype(np.float32), cols)
    return np.clip(np.round(np.einsum("oh,nchp->ncop", rows, across)), 0, 255).astype(np.uint8)


def triangle_weights(given: int, size: int) -> np.ndarray:
    """(size, given): each output position's weights over the input positions, summing to 1."""
    scale = given / size
    reach = max(scale, 1.0)
    centres = (np.arange(size) + 0.5) * scale
    weights = np.maximum(0.0, 1.0 - np.abs((np.arange(given)[None, :] + 0.5 - centres[:, None]) / reach))
    return (weights / weights.sum(1, keepdims=True)).astype(np.float32)
