"""The use of a trained restorer: photos of any size (files, bytes, PIL images, arrays) in, the restored photos out,
as arrays, PNG files (--out) or base64 PNG over HTTP; the graph an export writes; the Open Inference Protocol's
tensors.

How a photo is restored (`restored`, the same in training's evaluation, `restore`, the server and the web UI): cut
into tiles of the run's tile size, each read with `halo` pixels of its neighbours around it (the network's reach,
models/restore.py), and only each tile's own pixels kept: every output pixel sees what it would in one pass over the
whole photo, so tiles join without seams (tests/test_restore.py checks that tiled equals whole). Transparent photos
keep their alpha channel, scaled with them. Made from the run's config and meta alone (tasks/face.py).
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..errors import DataError
from .image_face import PixelFace

TILE_BATCH = 4                   # tiles restored at once
MAX_CALL_PIXELS = 64_000_000     # output pixels of one call at most (16 photos of 4 MP): a 12 MP photo x2 is 48 MP
MAX_CALL_WORK = 2 * MAX_CALL_PIXELS  # and the pixels the network reads for them, halos included
MAX_V2_VALUES = 48_000_000       # numbers in a V2 answer at most (JSON: each one written out)
SUFFIX = {"sr": "x{scale}", "denoise": "denoised", "jpeg": "restored", "colorize": "colorized"}


def tile_corners(length: int, tile: int, multiple: int) -> list[int]:
    """Where tiles of `tile` pixels start along a side of `length` (both multiples of `multiple`); the last ends at the
    side's end, overlapping the one before (their shared pixels come out the same)."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, tile))
    return starts + [length - tile]


def tiling(h: int, w: int, tile: int, multiple: int) -> tuple[int, int, int, int, list]:
    """(padded height, padded width, tile height, tile width, the tiles' corners) of a photo h x w: padded to
    multiples of `multiple`, cut into tiles of at most `tile`."""
    ph, pw = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    th, tw = min(tile, ph), min(tile, pw)
    return ph, pw, th, tw, [(y, c) for y in tile_corners(ph, th, multiple) for c in tile_corners(pw, tw, multiple)]


def tiling_cost(h: int, w: int, tile: int, halo: int, multiple: int) -> int:
    """The pixels the network reads to restore a photo h x w: every tile with its halo. About 1.6 times the photo's
    own for a photo of some size; far more for a strip a few pixels thin, all halo."""
    _, _, th, tw, corners = tiling(h, w, tile, multiple)
    return len(corners) * (th + 2 * halo) * (tw + 2 * halo)


def mirrored(length: int, before: int, after: int) -> torch.Tensor:
    """The indices of a side of `length` pixels extended by `before` and `after`, mirrored at the ends (... 2 1 | 0 1
    2 ... n-1 | n-2 n-3 ...), repeatedly where the extension is longer than the side."""
    return torch.from_numpy(np.pad(np.arange(length), (before, after), mode="reflect" if length > 1 else "edge"))


def restored(model, image: torch.Tensor, tile: int, halo: int, multiple: int, scale: int,
             device: torch.device) -> torch.Tensor:
    """uint8 (3, h, w) -> uint8 (3, h * scale, w * scale): `model` (the serving graph: uint8 NHWC in and out) over
    tiles of `tile` pixels, each with `halo` pixels of context on every side (the photo mirrored beyond its border);
    the tiles' own pixels kept."""
    _, h, w = image.shape
    ph, pw, th, tw, corners = tiling(h, w, tile, multiple)
    rows, cols = mirrored(h, halo, halo + ph - h), mirrored(w, halo, halo + pw - w)
    padded = image[:, rows][:, :, cols]  # uint8, gathered: no float copy of a large photo
    out = torch.zeros(3, ph * scale, pw * scale, dtype=torch.uint8)
    for i in range(0, len(corners), TILE_BATCH):
        batch = corners[i:i + TILE_BATCH]
        tiles = torch.stack([padded[:, y:y + th + 2 * halo, c:c + tw + 2 * halo] for y, c in batch])
        answer = model(tiles.permute(0, 2, 3, 1).contiguous().to(device))
        answer = torch.as_tensor(np.asarray(answer.cpu()) if torch.is_tensor(answer) else answer)
        core = answer[:, halo * scale:(halo + th) * scale, halo * scale:(halo + tw) * scale].permute(0, 3, 1, 2)
        for (y, c), part in zip(batch, core):
            out[:, y * scale:(y + th) * scale, c * scale:(c + tw) * scale] = part
    return out[:, :h * scale, :w * scale]


def decode_photo(source, count=None) -> tuple[np.ndarray, np.ndarray | None]:
    """(uint8 RGB (h, w, 3) with transparent pixels on white, uint8 alpha (h, w) or None) of a file, bytes or a PIL
    image; UnreadableImage when it cannot be read. `count(width, height, name)`, where given, sees the size from the
    header before any pixel is decoded (and may refuse it)."""
    from PIL import Image

    from ..data.decode import MAX_PIXELS, UnreadableImage, eight_bit, open_image
    from ..data.photos import rgb_array

    def split(im):
        if count is not None:
            count(im.width, im.height, getattr(im, "filename", "") or "a photo")
        im = eight_bit(im)
        alpha = None
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            alpha = np.asarray(im.convert("RGBA"))[..., 3].copy()
        return rgb_array(im), alpha

    if isinstance(source, Image.Image):
        if source.width * source.height > MAX_PIXELS:
            raise UnreadableImage(f"too large: {source.width}x{source.height} pixels, over the {MAX_PIXELS:,} limit")
        return split(source)
    with open_image(source) as im:
        return split(im)


def array_photos(value, what: str) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """An array of one photo or a batch -> [(uint8 RGB (h, w, 3), alpha (h, w) or None)]: (H, W, 4) and (H, W, 2)
    (and batches of them) carry an alpha channel, kept apart; everything else as detection reads arrays."""
    from .detect_face import pixel_arrays

    a = value.detach().cpu().float().numpy() if torch.is_tensor(value) and value.is_floating_point() else value
    shape = np.shape(a)
    if len(shape) in (3, 4) and shape[-1] in (2, 4):
        batch = np.asarray(a)[None] if len(shape) == 3 else np.asarray(a)
        colours = pixel_arrays(batch[..., :-1], what)
        alphas = pixel_arrays(batch[..., -1:], what)
        return [(rgb, alpha[..., 0].copy()) for rgb, alpha in zip(colours, alphas)]
    return [(rgb, None) for rgb in pixel_arrays(a, what)]


class RestoreFace(PixelFace):
    """Restored photos, from a restorer and the meta its run kept (mode, scale, tile size, halo)."""

    verb = "restore"
    kind = "an image restoration"
    output_name = "restored"  # the exported graph's output
    batchable = False  # each call's cost is bounded on its own: the server must not pool calls into one
    max_items = 16

    @property
    def scale(self) -> int:
        return self.meta["scale"]

    def pixels_shape(self) -> tuple[int, int, int]:
        side = self.meta["tile"] + 2 * self.meta["halo"]
        return side, side, 3  # one tile with its context

    def pixels_input(self) -> dict:
        return {"name": "images", "dtype": "uint8", "shape": [None, None, None, 3], "layout": "NHWC",
                "range": [0, 255], "multiple": self.meta["multiple"]}  # a photo or a tile of any size

    def example_images(self, n: int, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        side = 16 + 2 * self.meta["halo"]  # a small tile: the graph takes any size the pooling divides
        side = -(-side // self.meta["multiple"]) * self.meta["multiple"]
        return torch.randint(0, 256, (n, side, side, 3), dtype=torch.uint8, generator=g)

    def decode_inputs(self, inputs, options: dict, trusted: bool = True) -> list:
        """Photos of any form -> [(name, uint8 (3, h, w), alpha (h, w) or None)]. What one call may cost is bounded
        from each file's header, before its pixels are decoded: the output pixels, and the pixels the network reads
        (MAX_CALL_PIXELS, MAX_CALL_WORK)."""
        from ..data.decode import walk_images

        spent = {"out": 0, "work": 0, "photos": 0}

        def count(w: int, h: int, name: str) -> None:
            m = self.meta
            spent["photos"] += 1
            spent["out"] += w * h * self.scale ** 2
            spent["work"] += tiling_cost(h, w, m["tile"], m["halo"], m["multiple"]) * self.scale ** 2
            if spent["out"] > MAX_CALL_PIXELS or spent["work"] > MAX_CALL_WORK:
                raise DataError(f"{self.verb}: Expected at most {MAX_CALL_PIXELS:,} pixels out of one call (and "
                                f"{MAX_CALL_WORK:,} read by the network, its tiles' borders included). Received: "
                                f"{spent['photos']} photo(s) of {spent['out']:,} pixels out and {spent['work']:,} "
                                f"read, up to {name} ({w}x{h}; a strip a few pixels thin is nearly all border); send "
                                f"fewer or smaller photos at a time.")

        def decode(source):
            return decode_photo(source, count)

        def from_array(array, n: int) -> list:
            found = array_photos(array, f"input {n}")
            named = [(f"array {n}" + (f"[{i}]" if len(found) > 1 else ""), photo) for i, photo in enumerate(found)]
            for name, (rgb, _) in named:
                count(rgb.shape[1], rgb.shape[0], name)
            return named

        photos = walk_images(inputs, self.max_items, trusted, decode, from_array)
        return [(name, rgb.transpose(2, 0, 1).copy(), alpha) for name, (rgb, alpha) in photos]

    def serving_model(self, model: nn.Module) -> nn.Module:
        from ..models.restore import RestorerServing

        return RestorerServing(model).eval()

    def restore_one(self, serving, pixels: torch.Tensor, device: torch.device) -> torch.Tensor:
        m = self.meta
        return restored(serving, pixels, m["tile"], m["halo"], m["multiple"], self.scale, device)

    @torch.inference_mode()
    def infer(self, model, items: list, device: torch.device, options: dict) -> list:
        """{'input', 'width', 'height', 'image': uint8 (H, W, 3 or 4), 'png': its PNG bytes} per photo, encoded here in
        the model's thread (a large PNG takes a while)."""
        from PIL import Image

        results = []
        for name, pixels, alpha in items:
            out = self.restore_one(model, torch.from_numpy(pixels), device).permute(1, 2, 0).numpy()
            h, w = out.shape[:2]
            if alpha is not None:
                grown = Image.fromarray(alpha).resize((w, h), Image.BICUBIC) if alpha.shape != (h, w) else alpha
                out = np.dstack([out, np.asarray(grown, np.uint8)])
            buffer = io.BytesIO()
            Image.fromarray(out).save(buffer, format="PNG")
            results.append({"input": name, "width": w, "height": h, "image": out, "png": buffer.getvalue()})
        return results

    def encode_result(self, result: dict, options: dict) -> dict:
        return {"input": result["input"], "width": result["width"], "height": result["height"],
                "image_png_base64": base64.b64encode(result["png"]).decode("ascii")}

    out_metavar = "DIR"
    out_help = "also write each restored photo (NAME-x2.png, NAME-denoised.png, ...) into this folder"

    def suffix(self) -> str:
        """What a written file's name ends with: NAME-SUFFIX.png."""
        return SUFFIX[self.meta["mode"]].format(scale=self.scale)

    def write_out(self, items: list, results: list, out: Path, options: dict) -> list[dict]:
        out.mkdir(parents=True, exist_ok=True)
        suffix = self.suffix()
        written, taken = [], set()
        for n, ((name, *_), result) in enumerate(zip(items, results)):
            stem = Path(name).stem if Path(name).suffix else re.sub(r"[^\w.-]+", "-", name).strip("-") or f"image-{n}"
            while stem in taken:
                stem += f"-{n}"
            taken.add(stem)
            path = out / f"{stem}-{suffix}.png"
            path.write_bytes(result["png"])
            written.append({"file": str(path)})
        return written

    def export_graphs(self, model: nn.Module) -> list:
        from ..inference import Graph

        return [Graph("restorer", self.serving_model(model), (self.example_images(2, 0),),
                      (self.example_images(3, 1),), ["images"], [self.output_name],
                      {"images": {0: "batch", 1: "height", 2: "width"}, self.output_name: {0: "batch", 1: "out_height",
                                                                                      2: "out_width"}},
                      f"uint8 pixels (N, h, w, 3) in, h and w multiples of {self.meta['multiple']}; uint8 pixels "
                      f"(N, h x {self.scale}, w x {self.scale}, 3) out")]

    def model_card(self) -> dict:
        m = self.meta
        return {"mode": m["mode"], "scale": self.scale, "inputs": [self.pixels_input()],
                "outputs": [{"name": self.output_name, "dtype": "uint8", "layout": "NHWC",
                             "shape": [None, f"h*{self.scale}", f"w*{self.scale}", 3]}],
                "preprocessing": {"tile": m["tile"], "halo": m["halo"], "multiple": m["multiple"],
                                  "inside_graph": "scaling to 0-1, the network, rounding to uint8"},
                "postprocessing": (f"cut the photo (padded to a multiple of {m['multiple']}) into tiles of "
                                   f"{m['tile']} pixels, give each {m['halo']} pixels of its neighbours on every side "
                                   f"(mirrored beyond the photo), and keep the answer's pixels of each tile's own "
                                   f"{m['tile'] * self.scale}-pixel square (the tile's, times the scale "
                                   f"{self.scale})")}

    v2_sized_by_input = True

    def v2_inputs(self) -> list[dict]:
        return [{"name": "images", "datatype": "UINT8", "shape": [-1, -1, -1, 3]}]

    def v2_outputs(self, results: list) -> dict:
        """'images' (N, H, W, 3) uint8; photos of different sizes are padded with black. A JSON answer writes out every
        number, so it is bounded (MAX_V2_VALUES): larger photos go through /v1 (PNG)."""
        h = max(r["height"] for r in results)
        w = max(r["width"] for r in results)
        if len(results) * h * w * 3 > MAX_V2_VALUES:
            raise DataError(f"{self.verb}: Expected at most {MAX_V2_VALUES:,} numbers in a V2 answer (JSON writes "
                            f"each out). Received photos that make {len(results)} x {h} x {w} x 3; send smaller ones, "
                            f"or use /v1/models/NAME/{self.verb}, which answers PNG.")
        out = np.zeros((len(results), h, w, 3), np.uint8)
        for i, r in enumerate(results):
            out[i, :r["height"], :r["width"]] = r["image"][..., :3]
        return {"images": out}
