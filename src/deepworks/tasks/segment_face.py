"""The use of a trained segmenter: a class for every pixel of images (files, bytes, PIL images, arrays), at their own
size; the mask as a palette PNG or COCO RLE, an overlay on the image, the graph an export writes and the Open
Inference Protocol's tensors.

How an image is segmented (`probabilities`), the same in training's evaluation, `segment`, the server and the web UI:
scaled so that its longer side is the run's working side (meta 'side'), then cut into tiles of the training size
(meta 'image_size', overlapping by a quarter) that the serving graph scores; the tiles' class probabilities are
blended (weighted toward each tile's centre), and scaled back to the image's own pixels before each pixel takes its
likeliest class. Made from the run's config and meta alone (tasks/face.py): the recipe (tasks/segment.py) imports
what it shares from here.
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import DataError
from ..metrics.boxes import PAD_VALUE, letterbox_size
from ..metrics.masks import colours_for, mask_png, overlay, rle
from .detect_face import pil_images
from .image_face import PixelFace

TILE_BATCH = 16     # tiles scored at once
MAX_OUT_VALUES = 64_000_000  # class probabilities scaled back to an image at most (C x H x W); past it, nearest
MAX_CALL_PIXELS = 64_000_000  # the images of one call together (16 photos of 4 MP): each gets a mask of its size


def tile_starts(length: int, tile: int) -> list[int]:
    """Where tiles of `tile` pixels start along a side of `length` >= tile, overlapping by about a quarter; the last
    ends at the side's end."""
    if length <= tile:
        return [0]
    step = max(1, tile - tile // 4)
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def tile_weights(tile: int, device) -> torch.Tensor:
    """(tile, tile) weights that fall toward the tile's edges, so that where tiles overlap the one that sees a pixel
    nearer its centre counts more."""
    margin = max(1, tile // 8)
    ramp = torch.clamp((torch.minimum(torch.arange(tile) + 1, tile - torch.arange(tile)).float()) / margin, max=1.0)
    return (ramp[:, None] * ramp[None, :]).to(device)


def tiled_probabilities(model, image: torch.Tensor, tile: int, device: torch.device, num_classes: int) -> torch.Tensor:
    """uint8 (3, H, W) -> class probabilities (C, H, W): the image padded with grey to at least tile x tile, cut into
    overlapping tiles that `model` (the serving graph: uint8 NHWC in, probabilities out) scores, blended."""
    _, h, w = image.shape
    ph, pw = max(h, tile), max(w, tile)
    padded = torch.full((3, ph, pw), PAD_VALUE, dtype=torch.uint8)
    padded[:, :h, :w] = image
    corners = [(y, x) for y in tile_starts(ph, tile) for x in tile_starts(pw, tile)]
    total = torch.zeros(num_classes, ph, pw)
    weight = torch.zeros(1, ph, pw)
    ramp = tile_weights(tile, "cpu")
    for i in range(0, len(corners), TILE_BATCH):
        batch = corners[i:i + TILE_BATCH]
        tiles = torch.stack([padded[:, y:y + tile, x:x + tile] for y, x in batch]).permute(0, 2, 3, 1)
        out = model(tiles.contiguous().to(device))
        probs = torch.as_tensor(np.asarray(out.cpu()) if torch.is_tensor(out) else out).float()
        for (y, x), p in zip(batch, probs):
            total[:, y:y + tile, x:x + tile] += p * ramp
            weight[:, y:y + tile, x:x + tile] += ramp
    return (total / weight)[:, :h, :w]


def working_size(width: int, height: int, side: int) -> tuple[int, int]:
    """(width, height) of an image scaled to the run's working side, its aspect ratio kept."""
    return letterbox_size(width, height, side)


def class_map(probs: torch.Tensor, width: int, height: int) -> np.ndarray:
    """Class probabilities (C, h, w) at the working size -> uint8 (height, width) classes at the image's own size:
    probabilities scaled bilinearly, then the likeliest class per pixel (for a huge image, the classes scaled)."""
    c = probs.shape[0]
    if probs.shape[1:] == (height, width):
        return probs.argmax(0).numpy().astype(np.uint8)
    if c * width * height <= MAX_OUT_VALUES:
        big = F.interpolate(probs[None], size=(height, width), mode="bilinear", align_corners=False)[0]
        return big.argmax(0).numpy().astype(np.uint8)
    small = probs.argmax(0)[None, None].float()
    return F.interpolate(small, size=(height, width), mode="nearest")[0, 0].numpy().astype(np.uint8)


class SegmentFace(PixelFace):
    """A class per pixel, from a segmenter and the meta its run kept (classes, tile size, working side, mean and
    std, the classes' colours and which one is the background)."""

    verb = "segment"
    kind = "a segmentation"
    batchable = False  # each call's pixels are bounded on its own: the server must not pool calls into one
    max_items = 16

    @property
    def use_options(self) -> dict:
        from ..usage import Option

        return {"rle": Option(bool, False, help="each mask as COCO's RLE per class (for pycocotools) instead of a "
                              "palette PNG (base64; its pixels are the class indices)"),
                "opacity": Option(float, 0.5, 0.0, 1.0, "how strongly the overlay tints the image (the overlays --out "
                                  "writes; the server sends masks, not overlays)")}

    @property
    def classes(self) -> list[str]:
        return self.meta["classes"]

    @property
    def colours(self) -> list[tuple]:
        return colours_for(len(self.classes), self.meta.get("colours"), self.meta.get("background"))

    def pixels_shape(self) -> tuple[int, int, int]:
        return self.meta["image_size"], self.meta["image_size"], 3  # one tile

    def decode_inputs(self, inputs, options: dict, trusted: bool = True) -> list:
        """Images of any form -> [(name, uint8 (3, h, w) at the working size, (width, height), the PIL image)]."""
        from PIL import Image

        side, items = self.meta["side"], []
        images = pil_images(inputs, self.max_items, paths=trusted)
        total = sum(im.width * im.height for _, im in images)
        if total > MAX_CALL_PIXELS:
            raise DataError(f"segment: Expected at most {MAX_CALL_PIXELS:,} pixels in the images of one call (each "
                            f"gets a mask of its own size). Received: {len(images)} images of {total:,} pixels; send "
                            f"fewer at a time.")
        for name, im in images:
            w, h = working_size(im.width, im.height, side)
            items.append((name, np.asarray(im.resize((w, h), Image.BILINEAR)).transpose(2, 0, 1).copy(), im.size, im))
        return items

    def serving_model(self, model: nn.Module) -> nn.Module:
        from ..models.unet import SegmenterServing

        return SegmenterServing(model, self.meta["mean"], self.meta["std"]).eval()

    @torch.inference_mode()
    def infer(self, model, items: list, device: torch.device, options: dict) -> list:
        """{'input', 'width', 'height', 'mask': uint8 (height, width) class indices, 'encoded': the mask as it is
        sent (PNG bytes, or RLE with the rle option)} per image: encoded here, in the model's thread, since a mask
        of many megapixels takes a while."""
        results = []
        for name, pixels, (w, h), _ in items:
            probs = tiled_probabilities(model, torch.from_numpy(pixels), self.meta["image_size"], device,
                                        len(self.classes))
            mask = class_map(probs, w, h)
            encoded = rle(mask) if options.get("rle") else mask_png(mask, self.colours, self.meta.get("background"))
            results.append({"input": name, "width": w, "height": h, "mask": mask, "encoded": encoded})
        return results

    def shares(self, mask: np.ndarray) -> list[dict]:
        counts = np.bincount(mask.reshape(-1), minlength=len(self.classes))
        return [{"class": name, "pixels": int(counts[k]), "share": round(float(counts[k] / mask.size), 4)}
                for k, name in enumerate(self.classes) if counts[k]]

    def encode_result(self, result: dict, options: dict) -> dict:
        out = {"input": result["input"], "width": result["width"], "height": result["height"],
               "classes": self.shares(result["mask"])}
        if isinstance(result["encoded"], bytes):
            out["mask_png_base64"] = base64.b64encode(result["encoded"]).decode("ascii")
        else:
            out["masks_rle"] = [{**r, "class": self.classes[r["class"]]} for r in result["encoded"]]
        return out

    out_metavar = "DIR"
    out_help = "also write each image's mask (NAME-mask.png: its pixels are the classes) and the image with the mask " \
               "over it (NAME-overlay.png) into this folder"

    def write_out(self, items: list, results: list, out: Path, options: dict) -> list[dict]:
        return [{"mask_file": str(m), "overlay_file": str(o)}
                for m, o in self.write(items, results, out, options.get("opacity", 0.5))]

    def write(self, items: list, results: list, folder: Path, opacity: float = 0.5) -> list[tuple[Path, Path]]:
        """Each image's mask (FOLDER/NAME-mask.png, a palette PNG of class indices) and the image with the mask over
        it (FOLDER/NAME-overlay.png); NAME from its file, or image-N."""
        from PIL import Image

        folder.mkdir(parents=True, exist_ok=True)
        written, taken = [], set()
        for n, ((name, *_, image), result) in enumerate(zip(items, results)):
            stem = Path(name).stem if Path(name).suffix else f"image-{n}"
            while stem in taken:
                stem += f"-{n}"
            taken.add(stem)
            mask_path, over_path = folder / f"{stem}-mask.png", folder / f"{stem}-overlay.png"
            mask_path.write_bytes(mask_png(result["mask"], self.colours, self.meta.get("background")))
            tinted = overlay(np.asarray(image), result["mask"], self.colours, self.meta.get("background"), opacity)
            Image.fromarray(tinted).save(over_path)
            written.append((mask_path, over_path))
        return written

    def export_graphs(self, model: nn.Module) -> list:
        from ..inference import Graph

        return [Graph("segmenter", self.serving_model(model), (self.example_images(2, 0),),
                      (self.example_images(3, 1),), ["images"], ["probabilities"],
                      {"images": {0: "batch"}, "probabilities": {0: "batch"}},
                      "uint8 pixels of tiles (N, S, S, 3) in; each pixel's class probabilities (N, C, S, S) out")]

    def model_card(self) -> dict:
        m = self.meta
        s = m["image_size"]
        return {"classes": m["classes"], "inputs": [self.pixels_input()],
                "outputs": [{"name": "probabilities", "dtype": "float32", "shape": [None, len(m["classes"]), s, s]}],
                "preprocessing": {"scale_longer_side_to": m["side"], "resample": "bilinear", "tile": s,
                                  "tile_overlap": s // 4, "pad": f"grey {PAD_VALUE}, bottom and right",
                                  "mean": m["mean"], "std": m["std"],
                                  "inside_graph": "normalisation, the network, softmax"},
                "postprocessing": ("blend the tiles' probabilities where they overlap (weights falling linearly over "
                                   f"the outer {max(1, s // 8)} pixels of a tile), crop the padding, scale bilinearly "
                                   "to the image's own size, and take each pixel's likeliest class"),
                "background": m.get("background"), "colours": [list(c) for c in self.colours]}

    v2_sized_by_input = True

    def v2_inputs(self) -> list[dict]:
        return [{"name": "images", "datatype": "UINT8", "shape": [-1, -1, -1, 3]}]  # any size: masks come back at it

    def v2_outputs(self, results: list) -> dict:
        """'masks' (N, H, W) uint8 class indices; images of different sizes are padded with 255."""
        h = max(r["height"] for r in results)
        w = max(r["width"] for r in results)
        out = np.full((len(results), h, w), 255, np.uint8)
        for i, r in enumerate(results):
            out[i, :r["height"], :r["width"]] = r["mask"]
        return {"masks": out}

