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
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import DataError
from .image_face import PixelFace

TILE_BATCH = 4                   # tiles restored at once
MAX_CALL_PIXELS = 64_000_000     # output pixels of one call at most (16 photos of 4 MP): a 12 MP photo x2 is 48 MP
SUFFIX = {"sr": "x{scale}", "denoise": "denoised", "jpeg": "restored", "colorize": "colorized"}


def tile_corners(length: int, tile: int, multiple: int) -> list[int]:
    """Where tiles of `tile` pixels start along a side of `length` (both multiples of `multiple`); the last ends at the
    side's end, overlapping the one before (their shared pixels come out the same)."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, tile))
    return starts + [length - tile]


def restored(model, image: torch.Tensor, tile: int, halo: int, multiple: int, scale: int,
             device: torch.device) -> torch.Tensor:
    """uint8 (3, h, w) -> uint8 (3, h * scale, w * scale): `model` (the serving graph: uint8 NHWC in and out) over
    tiles of `tile` pixels, each with `halo` pixels of context on every side (the border mirrored beyond the photo)."""
    _, h, w = image.shape
    ph, pw = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    x = image[None].float()
    mode = "reflect" if halo < min(h, w) and max(ph - h, pw - w) + halo < min(h, w) else "replicate"
    padded = F.pad(x, (halo, halo + pw - w, halo, halo + ph - h), mode=mode).to(torch.uint8)[0]
    th, tw = min(tile, ph), min(tile, pw)
    corners = [(y, c) for y in tile_corners(ph, th, multiple) for c in tile_corners(pw, tw, multiple)]
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


def decode_photo(source) -> tuple[np.ndarray, np.ndarray | None]:
    """(uint8 RGB (h, w, 3) with transparent pixels on white, uint8 alpha (h, w) or None) of a file, bytes or a PIL
    image; UnreadableImage when it cannot be read."""
    from PIL import Image

    from ..data.images import MAX_PIXELS, UnreadableImage, eight_bit, open_image
    from ..data.photos import rgb_array

    def split(im):
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


class RestoreFace(PixelFace):
    """Restored photos, from a restorer and the meta its run kept (mode, scale, tile size, halo)."""

    verb = "restore"
    kind = "an image restoration"
    batchable = True
    max_items = 16

    @property
    def scale(self) -> int:
        return self.meta["scale"]

    def pixels_shape(self) -> tuple[int, int, int]:
        side = self.meta["tile"] + 2 * self.meta["halo"]
        return side, side, 3  # one tile with its context

    def example_images(self, n: int, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        side = 16 + 2 * self.meta["halo"]  # a small tile: the graph takes any size the pooling divides
        side = -(-side // self.meta["multiple"]) * self.meta["multiple"]
        return torch.randint(0, 256, (n, side, side, 3), dtype=torch.uint8, generator=g)

    def decode_inputs(self, inputs, options: dict, trusted: bool = True) -> list:
        """Photos of any form -> [(name, uint8 (3, h, w), alpha (h, w) or None)], their output pixels bounded."""
        from ..inference import walk_images
        from .detect_face import pixel_arrays

        def from_array(array, n: int) -> list:
            arrays = pixel_arrays(array, f"input {n}")
            return [(f"array {n}" + (f"[{i}]" if len(arrays) > 1 else ""), (a, None)) for i, a in enumerate(arrays)]

        photos = walk_images(inputs, self.max_items, trusted, decode_photo, from_array)
        total = sum(rgb.shape[0] * rgb.shape[1] for _, (rgb, _) in photos) * self.scale ** 2
        if total > MAX_CALL_PIXELS:
            raise DataError(f"{self.verb}: Expected at most {MAX_CALL_PIXELS:,} pixels out of one call. Received: "
                            f"{len(photos)} photo(s) that make {total:,} pixels; send fewer or smaller photos at a "
                            f"time.")
        small = [name for name, (rgb, _) in photos if min(rgb.shape[:2]) < 2]
        if small:
            raise DataError(f"{small[0]}: Expected a photo of at least 2 x 2 pixels. Received a smaller one.")
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

    def write_out(self, items: list, results: list, out: Path, options: dict) -> list[dict]:
        out.mkdir(parents=True, exist_ok=True)
        suffix = SUFFIX[self.meta["mode"]].format(scale=self.scale)
        written, taken = [], set()
        for n, ((name, *_), result) in enumerate(zip(items, results)):
            stem = Path(name).stem if Path(name).suffix else f"image-{n}"
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
                      (self.example_images(3, 1),), ["images"], ["restored"],
                      {"images": {0: "batch", 1: "height", 2: "width"}, "restored": {0: "batch", 1: "out_height",
                                                                                      2: "out_width"}},
                      f"uint8 pixels (N, h, w, 3) in, h and w multiples of {self.meta['multiple']}; uint8 pixels "
                      f"(N, h x {self.scale}, w x {self.scale}, 3) out")]

    def model_card(self) -> dict:
        m = self.meta
        return {"mode": m["mode"], "scale": self.scale, "inputs": [self.pixels_input()],
                "outputs": [{"name": "restored", "dtype": "uint8", "layout": "NHWC",
                             "shape": [None, f"h*{self.scale}", f"w*{self.scale}", 3]}],
                "preprocessing": {"tile": m["tile"], "halo": m["halo"], "multiple": m["multiple"],
                                  "inside_graph": "scaling to 0-1, the network, rounding to uint8"},
                "postprocessing": (f"cut the photo (padded to a multiple of {m['multiple']}) into tiles of "
                                   f"{m['tile']} pixels, give each {m['halo']} pixels of its neighbours on every side "
                                   f"(mirrored beyond the photo), and keep each tile's own {m['tile']} x "
                                   f"{self.scale} pixels of the answer")}

    v2_sized_by_input = True

    def v2_inputs(self) -> list[dict]:
        return [{"name": "images", "datatype": "UINT8", "shape": [-1, -1, -1, 3]}]

    def v2_outputs(self, results: list) -> dict:
        """'images' (N, H, W, 3) uint8; photos of different sizes are padded with black."""
        h = max(r["height"] for r in results)
        w = max(r["width"] for r in results)
        out = np.zeros((len(results), h, w, 3), np.uint8)
        for i, r in enumerate(results):
            out[i, :r["height"], :r["width"]] = r["image"][..., :3]
        return {"images": out}
