"""The use of a trained detector: the boxes of images (files, bytes, PIL images, arrays) in their own pixels, the
images with their boxes drawn, the graph an export writes and the Open Inference Protocol's tensors.

Made from the run's config and meta alone (tasks/face.py), so it does not import the recipe (tasks/detect.py); the
numbers both use (how boxes become one per object, the default score threshold) live here and the recipe imports
them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..errors import DataError
from ..metrics.boxes import clip_boxes, draw_boxes, letterbox, one_box_per_object
from ..models.centernet import DetectorServing, top_detections
from .image_face import PixelFace, pixel_feeds

NMS_IOU = 0.6           # boxes of one class overlapping more than this are one object (after the peak decode)
CLASS_IOU = 0.7         # boxes of different classes overlapping more than this are one object too: the best names it
THRESHOLD = 0.3         # the lowest score shown when the run has no threshold calibrated on validation
SCORE_FLOOR = 0.01      # detections kept for the metric (COCO ranks them; low scores only add recall)


def scored_detections(boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, size: int) -> list:
    """The k best peaks of letterboxed images (top_detections) as COCO's mAP scores them: [(boxes (n, 4), scores
    (n,), classes (n,))] per image, clipped to the image, above SCORE_FLOOR, per class overlaps above NMS_IOU
    merged."""
    found = []
    for b, s, c in zip(clip_boxes(boxes, size, size).cpu(), scores.cpu(), classes.cpu()):
        keep = s > SCORE_FLOOR
        b, s, c = b[keep], s[keep], c[keep]
        kept = one_box_per_object(b, s, c, NMS_IOU, class_iou=1.0)
        found.append((b[kept].numpy(), s[kept].numpy(), c[kept].numpy()))
    return found


def run_threshold(meta: dict | None) -> float:
    """The run's score threshold: the best F1 on its validation split (the recipe's `calibrate`), else THRESHOLD."""
    return float((meta or {}).get("threshold", THRESHOLD))


class DetectFace(PixelFace):
    """Boxes, their classes and scores, from a detector and the meta its run kept (classes, image size, mean and
    std, the calibrated threshold)."""

    verb = "detect"
    kind = "an object detection"
    batchable = True
    max_items = 256

    @property
    def use_options(self) -> dict:
        from ..usage import Option

        return {"threshold": Option(float, self.threshold, 0.0, 1.0, "the lowest score of a box shown (default: the "
                                    "run's, calibrated on its validation split)"),
                "max_boxes": Option(int, 100, 1, 100, "the most boxes per image, best first"),
                "class_iou": Option(float, CLASS_IOU, 0.0, 1.0, "boxes of different classes overlapping more than this "
                                    "are one object, named by the best score (1 keeps a box per class)")}

    @property
    def threshold(self) -> float:
        return run_threshold(self.meta)

    def pixels_shape(self) -> tuple[int, int, int]:
        return self.meta["image_size"], self.meta["image_size"], 3  # letterboxed RGB, whatever the files were

    def decode_inputs(self, inputs, options: dict, trusted: bool = True) -> list:
        """Images of any form -> [(name, letterboxed uint8 (3, S, S), (sx, sy), (width, height), the PIL image)]."""
        return [(name, *letterbox(im, self.meta["image_size"]), im.size, im)
                for name, im in pil_images(inputs, self.max_items, paths=trusted)]

    out_metavar = "DIR"
    out_help = "also write each image with its boxes drawn into this folder (NAME-boxes.png)"

    def write_out(self, items: list, results: list, out: Path, options: dict) -> list[dict]:
        answers = [self.encode_result(r, options) for r in results]
        return [{"drawn": str(path)} for path in self.draw(items, answers, out)]

    def draw(self, items: list, answers: list[dict], folder: Path) -> list[Path]:
        """Each image with its boxes drawn, as FOLDER/NAME-boxes.png (NAME from its file, or image-N)."""
        from ..metrics.boxes import PALETTE

        folder.mkdir(parents=True, exist_ok=True)
        classes, written, taken = self.meta["classes"], [], set()
        for n, ((name, *_, image), answer) in enumerate(zip(items, answers)):
            stem = Path(name).stem if Path(name).suffix else f"image-{n}"
            while stem in taken:
                stem += f"-{n}"
            taken.add(stem)
            boxes = [b["box"] for b in answer["boxes"]]
            drawn = draw_boxes(image, boxes, [f"{b['class']} {b['score']:.2f}" for b in answer["boxes"]],
                               [PALETTE[classes.index(b["class"]) % len(PALETTE)] for b in answer["boxes"]])
            path = folder / f"{stem}-boxes.png"
            drawn.save(path)
            written.append(path)
        return written

    def serving_model(self, model: nn.Module) -> nn.Module:
        return DetectorServing(model, self.meta["mean"], self.meta["std"]).eval()

    def calibration_feeds(self, graph: str, split: tuple, most: int, model=None,
                          batch: int = 32) -> list[dict] | None:
        """Letterboxed uint8 pixels (N, S, S, 3), as the image classifier's (image_face.pixel_feeds)."""
        return pixel_feeds(split, most, batch)

    def int8_float_nodes(self, graph: str, nodes: list) -> list[str]:
        """What follows the heads' last convolution stays in float: the peak finding (a score equal to its
        neighbourhood's maximum, where int8's steps make ties) and the boxes' decoding (the exponential of the
        regression, which magnifies int8's error). With them in int8, a shapes detector lost 1.3 to 2.2 points of
        mAP; in float, none, at 1.5x the float graph's speed."""
        last = max((i for i, node in enumerate(nodes) if node.op_type == "Conv"), default=len(nodes))
        return [node.name for node in nodes[last + 1:]]

    def int8_check(self, graph: str, runs: dict, split: tuple, model=None) -> dict:
        """COCO's mAP@[.5:.95] of the float and the int8 graph's boxes on the test split (letterboxed images and
        their padded boxes), each graph's (scores, boxes) decoded as the recipe's evaluation decodes them."""
        from ..metrics.boxes import mean_average_precision, unpad_boxes

        outputs = {key: [np.concatenate([out[i] for out in outs]) for i in (0, 1)] for key, outs in runs.items()}
        n = len(outputs["float"][0])
        truth = unpad_boxes(split[1][:n])
        maps = {}
        for key, (scores, boxes) in outputs.items():
            picked = top_detections(torch.from_numpy(scores).float(), torch.from_numpy(boxes).float())
            found = scored_detections(*picked, self.meta["image_size"])
            maps[key] = mean_average_precision(truth, found, len(self.meta["classes"]))["map"]
        return {"examples": n, "float_map": float(maps["float"]), "int8_map": float(maps["int8"])}

    @torch.inference_mode()
    def infer(self, model, items: list, device: torch.device, options: dict, batch_size: int = 32) -> list:
        """{'input', 'width', 'height', 'boxes' (k, 4) in the image's pixels, 'scores', 'classes'} per image. `model`
        is the serving graph (torch, or ONNX Runtime in its place); the best peaks are picked here."""
        results = []
        for i, dense in self.serving_batches(model, items, device, batch_size):
            scores, boxes = (torch.as_tensor(np.asarray(t.cpu()) if torch.is_tensor(t) else t) for t in dense)
            boxes, scores, classes = top_detections(scores, boxes)
            for j in range(len(boxes)):
                name, _, (sx, sy), (w, h), _ = items[i + j]
                keep = scores[j] >= options["threshold"]
                b = clip_boxes(boxes[j][keep] / torch.tensor([sx, sy, sx, sy]), w, h)
                s, c = scores[j][keep], classes[j][keep]
                kept = one_box_per_object(b, s, c, NMS_IOU, options["class_iou"])[:options["max_boxes"]]
                results.append({"input": name, "width": w, "height": h, "boxes": b[kept].numpy(),
                                "scores": s[kept].numpy(), "classes": c[kept].numpy()})
        return results

    def encode_result(self, result: dict, options: dict) -> dict:
        classes = self.meta["classes"]
        return {"input": result["input"], "width": result["width"], "height": result["height"],
                "boxes": [{"class": classes[int(c)], "score": round(float(s), 4),
                           "box": [round(float(v), 1) for v in b]}
                          for b, s, c in zip(result["boxes"], result["scores"], result["classes"])]}

    def export_graphs(self, model: nn.Module) -> list:
        from ..inference import Graph

        return [Graph("detector", self.serving_model(model), (self.example_images(2, 0),), (self.example_images(3, 1),),
                      ["images"], ["scores", "boxes"], {"images": {0: "batch"}, "scores": {0: "batch"}, "boxes": {0: "batch"}},
                      "letterboxed uint8 pixels (N, S, S, 3) in; per cell of the S/4 grid, each class's score where "
                      "the cell is a peak (else 0), (N, C, S/4, S/4), and the cell's box as x1, y1, x2, y2 in those "
                      "pixels, (N, 4, S/4, S/4)")]

    def model_card(self) -> dict:
        m = self.meta
        grid = m["image_size"] // 4
        return {"classes": m["classes"], "inputs": [self.pixels_input()],
                "outputs": [{"name": "scores", "dtype": "float32", "shape": [None, len(m["classes"]), grid, grid]},
                            {"name": "boxes", "dtype": "float32", "shape": [None, 4, grid, grid]}],
                "preprocessing": {"letterbox": m["image_size"], "resample": "bilinear", "pad": "grey 114, bottom and right",
                                  "mean": m["mean"], "std": m["std"],
                                  "inside_graph": "normalisation, the network, sigmoid, 3x3 max-pool peaks, boxes"},
                "postprocessing": (f"take the cells and classes whose score is at least a threshold ({self.threshold:g}, "
                                   "the run's; or the 100 best), read each one's box at its cell, divide x by the "
                                   "letterbox scale (new width / old width) and y likewise, per class drop boxes "
                                   f"overlapping a better one by IoU > {NMS_IOU}, then drop boxes overlapping a better "
                                   f"one of another class by IoU > {CLASS_IOU} (one class per object)")}

    def v2_outputs(self, results: list) -> dict:
        k = max([len(r["scores"]) for r in results] + [1])

        def padded(key: str, shape: tuple, fill, dtype) -> np.ndarray:
            out = np.full((len(results), k, *shape), fill, dtype=dtype)
            for i, r in enumerate(results):
                out[i, :len(r[key])] = r[key]
            return out

        return {"boxes": padded("boxes", (4,), 0, np.float32), "scores": padded("scores", (), 0, np.float32),
                "classes": padded("classes", (), -1, np.int64)}


def pil_images(inputs, limit: int, paths: bool = True) -> list:
    """[(name, RGB PIL image at its own size)] from anything inference.walk_images takes."""
    from PIL import Image

    from ..data.decode import MAX_PIXELS, UnreadableImage, eight_bit, open_image
    from ..data.decode import walk_images

    def decode(source):
        if isinstance(source, Image.Image):
            if source.width * source.height > MAX_PIXELS:
                raise UnreadableImage(f"too large: {source.width}x{source.height} pixels, over the {MAX_PIXELS:,} limit")
            return eight_bit(source).convert("RGB")
        with open_image(source) as im:
            return eight_bit(im).convert("RGB")

    def from_array(array: np.ndarray, n: int) -> list:
        arrays = pixel_arrays(array, f"input {n}")
        return [(f"array {n}" + (f"[{i}]" if len(arrays) > 1 else ""), Image.fromarray(a)) for i, a in enumerate(arrays)]

    return walk_images(inputs, limit, paths, decode, from_array)


def pixel_arrays(value, what: str) -> list[np.ndarray]:
    """An array of one image (H, W, 3), (3, H, W), (H, W) or a batch of them -> uint8 (H, W, 3) arrays."""
    if torch.is_tensor(value):  # numpy has no bfloat16: float tensors come as float32
        value = value.detach().cpu().float() if value.is_floating_point() else value.detach().cpu()
    a = np.asarray(value)
    if a.dtype != np.uint8:
        if not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a) or not np.isfinite(a).all():
            raise DataError(f"{what}: Expected pixels as numbers. Received: dtype {a.dtype}.")
        a = (np.clip(a, 0, 1) * 255).round().astype(np.uint8) if a.max(initial=0) <= 1 else np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 2 or (a.ndim == 3 and (a.shape[-1] in (1, 3) or a.shape[0] in (1, 3))):
        a = a[None]
    if a.ndim == 3:
        a = a[..., None]
    if a.ndim != 4:
        raise DataError(f"{what}: Expected an image (H, W, 3), (3, H, W) or (H, W), or a batch of them. Received: "
                        f"shape {tuple(a.shape)}.")
    if a.shape[1] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(0, 2, 3, 1)
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, -1)
    if a.shape[1] < 2 or a.shape[2] < 2:
        raise DataError(f"{what}: Expected an image of at least 2x2 pixels. Received: shape {tuple(a.shape)}.")
    return [np.ascontiguousarray(img) for img in a]
