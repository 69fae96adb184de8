"""The use of a trained face recogniser: every face of a photo found (MTCNN), aligned, embedded and named from the
run's gallery (tasks/faces_gallery.py), or "unknown" below the run's threshold; enrolling, forgetting and verifying
people; the graphs an export writes (the embedder, and MTCNN's three networks).

Made from the run's config and meta alone (tasks/face.py); the gallery is the one state kept beside the run, found
through `run_folder`. Answers carry boxes, names and cosines, never an embedding or the gallery's contents.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import DataError
from .face import Face
from .faces_gallery import UNKNOWN, Gallery

MAX_PHOTOS = 64      # photos one identify call looks at
MAX_ENROL = 100      # photos one enrolment reads
MAX_CALL_PIXELS = 100_000_000  # pixels of photos one call reads at most (8 photos of 12 MP)
LEGACY_FIRST = ("legacy", "dynamo")  # MTCNN's small plain networks: the TorchScript exporter writes them 60x faster
SEARCH_SIDE = 2048   # photos are searched for faces at most this large a side (a 12 MP photo: 3 MP searched)


class FaceServing(nn.Module):
    """Aligned faces as uint8 (N, S, S, 3) -> unit embeddings (N, D): what `infer` runs and an export holds."""

    def __init__(self, embedder: nn.Module):
        super().__init__()
        self.embedder = embedder

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        return self.embedder(faces.permute(0, 3, 1, 2).float())


class FacesFace(Face):
    verb = "identify"
    kind = "a face recognition"
    max_items = MAX_PHOTOS

    def __init__(self, cfg, meta: dict):
        super().__init__(cfg, meta)
        self._detector = None

    @property
    def use_options(self) -> dict:
        from ..usage import Option

        return {"min_face": Option(int, int(self.cfg.eval.min_face), 12, 10_000, "the smallest face looked for, in "
                                   "pixels (smaller finds more, slower)"),
                "max_faces": Option(int, 50, 1, 200, "the most faces named per photo, the likeliest first")}

    @property
    def threshold(self) -> float:
        t = self.meta.get("threshold")
        return float(t) if t is not None else 0.5

    @property
    def detector(self):
        if self._detector is None:
            from ..models.face_weights import load_mtcnn

            self._detector = load_mtcnn()
        return self._detector

    def gallery(self) -> Gallery:
        if self.run_folder is None:
            raise DataError(f"{self.kind} model without its run has no gallery: load the run (deepworks.load(RUN)).")
        return Gallery(self.run_folder)

    # --- identify -------------------------------------------------------------------------------------------
    @property
    def chip(self) -> dict:
        """Where the run's model wants the five landmarks: {'side', 'points'} (runs without one: ArcFace's 112)."""
        from ..models.mtcnn import ALIGNED, REFERENCE

        return self.meta.get("chip") or {"side": ALIGNED, "points": REFERENCE.tolist()}

    def decode_inputs(self, inputs, options: dict, trusted: bool = True, limit: int | None = None) -> list:
        """Photos of any form -> [(name, uint8 RGB (h, w, 3))], at most MAX_CALL_PIXELS of them in all (counted from
        each file's header, before its pixels are decoded)."""
        from ..data.decode import walk_images
        from .restore_face import array_photos, decode_photo

        spent = [0]

        def count(w: int, h: int, name: str) -> None:
            spent[0] += w * h
            if spent[0] > MAX_CALL_PIXELS:
                raise DataError(f"{self.verb}: Expected at most {MAX_CALL_PIXELS:,} pixels of photos in one call. "
                                f"Received more by {name} ({w}x{h}). Send fewer or smaller photos a call.")

        return walk_images(inputs, limit or self.max_items, trusted, lambda source: decode_photo(source, count)[0],
                           lambda array, n: [(f"array {n}", rgb) for rgb, _ in array_photos(array, f"input {n}")])

    def found(self, rgb: np.ndarray, min_face: int, most: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(boxes (k, 5) in the photo's pixels with the detector's probability, aligned faces uint8 (k, S, S, 3)),
        likeliest first. The photo is searched no larger than SEARCH_SIDE pixels a side (the work one photo may
        cost), `min_face` scaled with it."""
        from ..data.faces import searched
        from ..models.mtcnn import aligned

        small, shrink, boxes, landmarks = searched(self.detector, rgb, min_face, SEARCH_SIDE)
        boxes, landmarks = boxes[:most], landmarks[:most]
        side, points = self.chip["side"], self.chip["points"]
        photo = torch.from_numpy(small)
        faces = torch.stack([aligned(photo, p, side, points) for p in landmarks]) if len(boxes) else \
            torch.zeros(0, side, side, 3, dtype=torch.uint8)
        boxes = torch.cat([boxes[:, :4] / shrink, boxes[:, 4:5]], 1) if len(boxes) else boxes
        return boxes, faces

    @torch.inference_mode()
    def embedded(self, model, faces: torch.Tensor, device: torch.device) -> torch.Tensor:
        if not len(faces):
            return torch.zeros(0, int(self.meta["size"]))
        out = model(faces.to(device))
        return torch.as_tensor(np.asarray(out.cpu()) if torch.is_tensor(out) else out[0]).float()

    def infer(self, model, items: list, device: torch.device, options: dict) -> list:
        """Per photo {'input', 'width', 'height', 'faces': [{'box', 'score' (a face's probability), 'name' (or
        unknown), 'similarity' (to the nearest enrolled photo)}]}. An unknown face's nearest person is not said: a
        client could list the gallery so."""
        from ..usage import stop_if_cancelled

        gallery = self.gallery()
        results = []
        for name, rgb in items:
            stop_if_cancelled()
            boxes, faces = self.found(rgb, options["min_face"], options["max_faces"])
            named = gallery.identify(self.embedded(model, faces, device), self.threshold)
            results.append({"input": name, "width": int(rgb.shape[1]), "height": int(rgb.shape[0]),
                            "faces": [{"box": [round(float(v), 1) for v in box[:4]], "score": round(float(box[4]), 4),
                                       "name": who["name"], "similarity": who["score"]}
                                      for box, who in zip(boxes, named)],
                            "nobody_enrolled": not gallery.people})
        return results

    def encode_result(self, result: dict, options: dict) -> dict:
        out = {k: v for k, v in result.items() if k != "nobody_enrolled"}
        if not result["faces"]:
            out["note"] = (f"No face of {options['min_face']} px or more found. A smaller --min-face looks for "
                           f"smaller ones.")
        elif result["nobody_enrolled"]:
            out["note"] = "Nobody is enrolled yet: deepworks faces enroll RUN --name NAME PHOTOS."
        return out

    def example_request(self) -> tuple:
        return np.zeros((64, 64, 3), np.uint8), {}

    out_metavar = "DIR"
    out_help = "also write each photo with its faces boxed and named into this folder (NAME-faces.png)"

    def write_out(self, items: list, results: list, out: Path, options: dict) -> list[dict]:
        from PIL import Image

        from ..metrics.boxes import draw_boxes

        out.mkdir(parents=True, exist_ok=True)
        written = []
        for n, ((name, rgb), r) in enumerate(zip(items, results)):
            stem = Path(name).stem if Path(name).suffix else f"image-{n}"
            path = out / f"{stem}-{n}-faces.png" if (out / f"{stem}-faces.png").exists() else out / f"{stem}-faces.png"
            colours = [(200, 200, 200) if f["name"] == UNKNOWN else (46, 160, 67) for f in r["faces"]]
            draw_boxes(Image.fromarray(rgb), [f["box"] for f in r["faces"]],
                       [f"{f['name']} {f['similarity']:.2f}" for f in r["faces"]], colours).save(path)
            written.append({"drawn": str(path)})
        return written

    # --- the gallery ----------------------------------------------------------------------------------------
    def min_face(self, value: int | None) -> int:
        """A smallest face asked for, checked as `identify`'s option is; None: the run's."""
        if value is None:
            return int(self.cfg.eval.min_face)
        if isinstance(value, bool) or not isinstance(value, int) or not 12 <= value <= 10_000:
            raise DataError(f"--min-face must be a whole number of pixels from 12 to 10,000. Received: {value!r}.")
        return value

    def largest_faces(self, model, photos, device: torch.device, min_face: int) -> tuple[torch.Tensor, list, list]:
        """(embeddings (K, D) of the largest face of each photo that has one, their names, the photos without)."""
        from ..data.faces import largest_face

        items = self.decode_inputs(photos, {}, True, MAX_ENROL) if not isinstance(photos, list) or photos else []
        faces, names, missed = [], [], []
        for name, rgb in items:
            face = largest_face(self.detector, rgb, min_face, self.chip)
            (faces.append(torch.from_numpy(face)), names.append(name)) if face is not None else missed.append(name)
        side = self.chip["side"]
        stacked = torch.stack(faces) if faces else torch.zeros(0, side, side, 3, dtype=torch.uint8)
        return self.embedded(model, stacked, device), names, missed

    def enroll(self, model, name: str, photos, device: torch.device, min_face: int | None = None) -> dict:
        """Enrol `name` from the largest face of each photo: {'name', 'photos', 'without_face', 'people'}."""
        gallery = self.gallery()
        name = gallery.check_new(name)
        smallest = self.min_face(min_face)
        embeddings, used, missed = self.largest_faces(model, photos, device, smallest)
        if not len(embeddings):
            given = f" ({', '.join(missed[:3])})" if missed else ""
            raise DataError(f"No face found in the photo(s) given for {name}{given}. Expected photos in which their "
                            f"face is at least {smallest} px; a smaller --min-face looks for smaller ones.")
        gallery.enroll(name, embeddings)
        return {"name": name, "photos": used, "without_face": missed, "people": len(gallery.people)}

    def verify(self, model, a, b, device: torch.device, min_face: int | None = None) -> dict:
        """Whether the largest faces of two photos are one person: {'similarity', 'same_person', 'threshold'}."""
        got, smallest = [], self.min_face(min_face)
        for photo in (a, b):
            e, _, missed = self.largest_faces(model, [photo], device, smallest)
            if not len(e):
                raise DataError(f"No face found in {missed[0] if missed else 'a photo'}. Expected a photo with a "
                                f"face; a smaller --min-face looks for smaller ones.")
            got.append(e[0])
        score = float(F.normalize(got[0], dim=0) @ F.normalize(got[1], dim=0))
        return {"similarity": round(score, 4), "same_person": score >= self.threshold,
                "threshold": round(self.threshold, 4)}

    # --- export ---------------------------------------------------------------------------------------------
    def serving_model(self, model: nn.Module) -> nn.Module:
        return FaceServing(model).eval()

    def export_graphs(self, model: nn.Module) -> list:
        from ..inference import Graph

        g, side = torch.Generator().manual_seed(0), self.chip["side"]
        faces = [torch.randint(0, 256, (n, side, side, 3), dtype=torch.uint8, generator=g) for n in (2, 3)]
        return [Graph("embedder", self.serving_model(model), (faces[0],), (faces[1],), ["faces"], ["embeddings"],
                      {"faces": {0: "batch"}, "embeddings": {0: "batch"}},
                      f"aligned faces, uint8 (N, {side}, {side}, 3), in; unit embeddings (N, D) out: two faces are one "
                      "person when the dot product of theirs reaches the threshold"),
                *mtcnn_graphs(self.detector)]

    def model_card(self) -> dict:
        from ..models.mtcnn import THRESHOLDS

        side = self.chip["side"]
        return {"inputs": [{"name": "faces", "dtype": "uint8", "shape": [None, side, side, 3], "layout": "NHWC"}],
                "outputs": [{"name": "embeddings", "dtype": "float32", "shape": [None, int(self.meta["size"])]}],
                "threshold": self.threshold, "far": self.meta.get("far"),
                "preprocessing": {"detector": "MTCNN (pnet, rnet, onet graphs), stage thresholds "
                                              f"{list(THRESHOLDS)}, pixels (p - 127.5) / 128",
                                  "alignment": "a similarity transform (least squares) of the five landmarks (eyes, "
                                               f"nose, mouth corners) onto {self.chip['points']} in {side} x {side}, "
                                               "bilinear"}}

    def v2_inputs(self) -> list[dict]:
        return [{"name": "images", "datatype": "UINT8", "shape": [-1, -1, -1, 3]}]

    def v2_outputs(self, results: list) -> dict:
        """'boxes' (N, k, 4), 'similarity' (N, k) and 'names' (N, k) BYTES, k the most faces of a photo; a photo
        with fewer has empty names, zero boxes and a similarity of -1 after its own."""
        k = max([len(r["faces"]) for r in results] + [1])
        boxes = np.zeros((len(results), k, 4), np.float32)
        similarity = np.full((len(results), k), -1.0, np.float32)
        names = np.full((len(results), k), "", dtype=object)
        for i, r in enumerate(results):
            for j, f in enumerate(r["faces"]):
                boxes[i, j], similarity[i, j], names[i, j] = f["box"], f["similarity"], f["name"]
        return {"boxes": boxes, "similarity": similarity, "names": names}


def mtcnn_graphs(detector) -> list:
    """MTCNN's three networks as graphs to export: PNet on pictures of any size, RNet and ONet on batches."""
    from ..inference import Graph

    g = torch.Generator().manual_seed(0)
    return [Graph("pnet", detector.pnet, (torch.randn(1, 3, 60, 80, generator=g),),
                  (torch.randn(2, 3, 44, 52, generator=g),), ["pixels"], ["offsets", "probability"],
                  {"pixels": {0: "batch", 2: "height", 3: "width"}, "offsets": {0: "batch", 2: "h", 3: "w"},
                   "probability": {0: "batch", 1: "h", 2: "w"}}, "MTCNN's proposal network", LEGACY_FIRST),
            Graph("rnet", detector.rnet, (torch.randn(4, 3, 24, 24, generator=g),),
                  (torch.randn(3, 3, 24, 24, generator=g),), ["crops"], ["offsets", "probability"],
                  {"crops": {0: "batch"}, "offsets": {0: "batch"}, "probability": {0: "batch"}},
                  "MTCNN's refinement network", LEGACY_FIRST),
            Graph("onet", detector.onet, (torch.randn(4, 3, 48, 48, generator=g),),
                  (torch.randn(3, 3, 48, 48, generator=g),), ["crops"], ["offsets", "landmarks", "probability"],
                  {"crops": {0: "batch"}, "offsets": {0: "batch"}, "landmarks": {0: "batch"},
                   "probability": {0: "batch"}}, "MTCNN's output network: boxes and five landmarks", LEGACY_FIRST)]
