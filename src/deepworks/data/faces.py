"""Faces to learn people from: a folder with one sub-folder of photos per person, each photo's face found by MTCNN
(models/mtcnn.py) and aligned to 112 x 112 on its five landmarks; or a built-in: `olivetti` (40 people x 10 photos,
AT&T Laboratories Cambridge, found and aligned the same way) and `cartoons` (people drawn on the spot, already
aligned: seconds to make, for a first try and the tests).

The largest face of a photo is taken as its person's: a photo of one person is what training and enrolling expect.
Photos are looked at no larger than MAX_SIDE pixels a side (a portrait's face stays far over 112 pixels), so that a
folder of phone photos is not searched at 12 megapixels each.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError

SIDE = 112          # an aligned face's side, in pixels
MAX_SIDE = 1024     # photos are searched for faces at most this large a side
MIN_PEOPLE = 6      # people a run needs: at least two each to train, to calibrate and to test on
OLIVETTI_PAD = 32   # Olivetti's 64 px crops are padded by this (edge pixels) and doubled, so MTCNN sees a whole head


@dataclass
class FaceSet:
    faces: np.ndarray            # uint8 (N, 112, 112, 3), aligned
    people: np.ndarray           # int64 (N,), an index into `names`
    names: list[str]             # the people's names
    files: list[str]             # where each face came from
    description: str
    notes: list[str] = field(default_factory=list)  # what was skipped or looks wrong, said before training
    test_people: list[int] | None = None  # the people a built-in tests on (its own split), else None


def searched(detector, rgb: np.ndarray, min_face: int, most_side: int):
    """(the photo as searched: shrunk to at most `most_side` pixels a side, the factor it was shrunk by, its boxes,
    their landmarks): MTCNN looks for faces of `min_face` pixels of the photo, scaled with it (12 at least)."""
    shrink = min(1.0, most_side / max(rgb.shape[:2]))
    small = np.array(rgb if shrink == 1.0 else resized(rgb, shrink))
    boxes, landmarks = detector.find(small, max(12, round(min_face * shrink)))
    return small, shrink, boxes, landmarks


def largest_face(detector, rgb: np.ndarray, min_face: int, chip: dict | None = None):
    """The aligned uint8 face (side, side, 3) with the largest box in `rgb`, or None when no face is found; the photo
    is shrunk to MAX_SIDE first. `chip`: {'side', 'points'}, where the five landmarks go (default ArcFace's 112)."""
    import torch

    from ..models.mtcnn import aligned

    small, _, boxes, landmarks = searched(detector, rgb, min_face, MAX_SIDE)
    if len(boxes) == 0:
        return None
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    chip = chip or {"side": SIDE, "points": None}
    return aligned(torch.from_numpy(small), landmarks[int(areas.argmax())], chip["side"], chip["points"]).numpy()


def resized(rgb: np.ndarray, factor: float) -> np.ndarray:
    from PIL import Image

    h, w = rgb.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))


def person_folders(root: Path) -> list[Path]:
    """The person sub-folders of `root` that hold images; refused with the layout when there are none."""
    from .images import image_files, visible_children

    if not root.is_dir():
        raise DataError(f"No such folder '{root}'. Expected a folder with one sub-folder of photos per person, like "
                        f"'{root}/alice/1.jpg' and '{root}/bob/1.jpg', or a built-in: olivetti, cartoons.")
    folders = [p for p in visible_children(root) if p.is_dir() and image_files(p)]
    if not folders:
        raise DataError(f"Expected one sub-folder of photos per person in '{root}/', like '{root}/alice/1.jpg'. "
                        f"Received: no sub-folder with images.")
    return folders


def read_people(root: str | Path, min_face: int = 20, strict: bool = False, progress: bool | None = False,
                chip: dict | None = None) -> FaceSet:
    """A folder of person folders -> their faces. A photo whose face is not found (or that cannot be read) is left
    out and named in `notes`; the same photo under two people is refused."""
    from ..models.face_weights import load_mtcnn
    from .images import find_image_files, unreadable_message
    from .decode import UnreadableImage
    from .photos import decoded

    root = Path(root).expanduser()
    folders, detector = person_folders(root), load_mtcnn()
    faces, people, files, skipped, seen = [], [], [], [], {}
    for person, folder in enumerate(folders):
        found, broken = find_image_files(folder)
        skipped += broken
        for path in found:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest in seen and seen[digest].parent != path.parent:
                raise DataError(f"The same photo is under two people: '{seen[digest]}' and '{path}'. Expected each "
                                f"photo under its one person; remove it from the wrong folder.")
            seen[digest] = path
            try:
                face = largest_face(detector, decoded(path), min_face, chip)
            except UnreadableImage as err:
                skipped.append((str(path), str(err)))
                continue
            if face is None:
                skipped.append((str(path), f"no face of {min_face} px or more found (a smaller --min-face looks for "
                                           f"smaller ones)"))
                continue
            faces.append(face), people.append(person), files.append(str(path))
    if skipped and (strict or not faces):
        raise DataError(unreadable_message(skipped, strict, none_left=not faces))
    names = [f.name for f in folders]
    notes = [unreadable_message(skipped)] if skipped else []
    notes += few_photos(np.array(people, dtype=np.int64), names)
    side = (chip or {}).get("side", SIDE)
    return FaceSet(np.stack(faces) if faces else np.zeros((0, side, side, 3), np.uint8),
                   np.array(people, dtype=np.int64), names, files,
                   f"folder '{root}' ({len(faces)} faces of {len(folders)} people)", notes)


def few_photos(people: np.ndarray, names: list[str]) -> list[str]:
    """A warning naming the people with a single face: too few to learn them from (they are still fine to enrol)."""
    counts = np.bincount(people, minlength=len(names))
    alone = [names[i] for i in np.flatnonzero(counts == 1)]
    if not alone:
        return []
    listed = ", ".join(alone[:5]) + (" ..." if len(alone) > 5 else "")
    return [f"{len(alone)} person(s) have one photo with a face ({listed}): too few to learn from (a person is "
            f"learned from how their photos differ). Add photos, or enrol them instead with deepworks faces enroll."]


def olivetti(data_dir: Path, download: bool, chip: dict | None = None) -> FaceSet:
    """Olivetti's 400 grey faces of 40 people, found and aligned like a folder's (3 of 400 are not found)."""
    from ..models.face_weights import load_mtcnn
    from .builtin import load_faces

    grey = load_faces(data_dir, download)
    detector, faces, people, files = load_mtcnn(), [], [], []
    for i, (image, person) in enumerate(zip(grey.x[:, 0], grey.y)):
        padded = np.pad(np.repeat(image[:, :, None], 3, 2), ((OLIVETTI_PAD,) * 2, (OLIVETTI_PAD,) * 2, (0, 0)),
                        mode="edge")
        face = largest_face(detector, resized(padded, 2.0), 40, chip)
        if face is not None:
            faces.append(face), people.append(int(person)), files.append(f"olivetti {i}")
    missed = len(grey.y) - len(faces)
    notes = [f"{missed} of Olivetti's {len(grey.y)} photos had no face MTCNN found; they are left out."] \
        if missed else []
    return FaceSet(np.stack(faces), np.array(people, dtype=np.int64), list(grey.classes), files,
                   "Olivetti faces (AT&T Laboratories Cambridge): 40 people x 10 photos, found and aligned by MTCNN; "
                   "the last 10 people are the test's", notes, test_people=list(range(30, 40)))


def person_split(people: np.ndarray, val_fraction: float, test_fraction: float, seed: int,
                 test_people: list[int] | None = None):
    """(train, val, test) indices with whole people in each: nobody tested on was trained on or calibrated on, so
    the scores are those of strangers. At least two people in each split. `test_people`: a built-in's own test."""
    everyone = np.unique(people)
    if len(everyone) < MIN_PEOPLE:
        raise DataError(f"Expected at least {MIN_PEOPLE} people with faces to train on (two each to learn from, to "
                        f"set the threshold with and to test on). Received: {len(everyone)}. Train on more people, "
                        f"or on the built-in olivetti, and enrol yours with deepworks faces enroll.")
    if test_people is not None:
        rest = np.setdiff1d(everyone, test_people)
        order = np.random.default_rng(seed).permutation(rest)
        n_val = min(max(2, round(len(rest) * val_fraction)), len(rest) - 2)
        return tuple(np.flatnonzero(np.isin(people, group))
                     for group in (order[n_val:], order[:n_val], np.asarray(test_people)))
    order = np.random.default_rng(seed).permutation(everyone)
    n_test = max(2, round(len(everyone) * test_fraction))
    n_val = max(2, round((len(everyone) - n_test) * val_fraction))
    n_test, n_val = min(n_test, len(everyone) - 4), min(n_val, len(everyone) - n_test - 2)
    test, val, train = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
    return tuple(np.flatnonzero(np.isin(people, group)) for group in (train, val, test))


def cartoons(people: int = 24, each: int = 8, seed: int = 0, chip: dict | None = None) -> FaceSet:
    """`people` made-up people, `each` photos of each: a person is a face shape, skin, hair, eye spacing and size,
    nose and mouth; each photo moves, scales and lights them a little and changes the smile and the background. Each
    is aligned as a photo's face is, on the five points where its eyes, nose and mouth were drawn. Seconds to make:
    a first run, and the tests. The last quarter of the people are tested."""
    import torch
    from PIL import Image, ImageDraw

    from ..models.mtcnn import aligned

    if not MIN_PEOPLE <= people <= 1000:
        raise DataError(f"cartoons:N draws N people, from {MIN_PEOPLE} to 1,000. Received: {people}.")
    rng = np.random.default_rng(seed)
    faces = []
    for _ in range(people):
        look = {"skin": tuple(int(v) for v in rng.integers(90, 240, 3)),
                "hair": tuple(int(v) for v in rng.integers(0, 200, 3)),
                "iris": tuple(int(v) for v in rng.integers(0, 160, 3)),
                "size": rng.uniform((30, 40, 14, 3, 6, 8), (44, 52, 24, 7, 18, 22))}
        for _ in range(each):
            im = Image.new("RGB", (SIDE, SIDE), tuple(int(v) for v in rng.integers(0, 256, 3)))
            points = draw_face(ImageDraw.Draw(im), look, rng)
            pixels = np.asarray(im, dtype=np.float32) * rng.uniform(0.8, 1.2) + rng.normal(0, 6, (SIDE, SIDE, 3))
            drawn = torch.from_numpy(pixels.clip(0, 255).astype(np.uint8))
            chip = chip or {"side": SIDE, "points": None}
            faces.append(aligned(drawn, torch.tensor(points), chip["side"], chip["points"]).numpy())
    ids = np.repeat(np.arange(people, dtype=np.int64), each)
    tested = max(2, people // 4)  # and at least 4 others: 2 to learn from, 2 to set the threshold with
    return FaceSet(np.stack(faces), ids, [f"cartoon {i + 1}" for i in range(people)],
                   [f"cartoon {p + 1} photo {k + 1}" for p in range(people) for k in range(each)],
                   f"cartoons: {people} drawn people x {each} photos, made on the spot; the last {tested} people are "
                   f"the test's", test_people=list(range(people - tested, people)))


def draw_face(draw, look: dict, rng) -> list:
    """One photo of one cartoon person, a little moved, scaled and smiling differently each time; where its eyes,
    nose tip and mouth corners are, as MTCNN's landmarks are given."""
    width, height, eyes, eye, nose, mouth = look["size"] * rng.uniform(0.93, 1.07)
    x, y = SIDE / 2 + rng.normal(0, 2), SIDE / 2 + 4 + rng.normal(0, 2)
    draw.ellipse([x - width - 4, y - height - 7, x + width + 4, y + height * 0.3], fill=look["hair"])
    draw.ellipse([x - width, y - height, x + width, y + height], fill=look["skin"])
    for side in (-1, 1):
        ex, ey = x + side * eyes, y - height * 0.2
        draw.ellipse([ex - eye * 1.6, ey - eye, ex + eye * 1.6, ey + eye], fill=(250, 250, 250))
        draw.ellipse([ex - eye * 0.7, ey - eye * 0.7, ex + eye * 0.7, ey + eye * 0.7], fill=look["iris"])
    draw.line([x, y - height * 0.1, x, y - height * 0.1 + nose], fill=(60, 40, 30), width=2)
    smile, top = rng.uniform(2, 8), y + height * 0.45
    draw.arc([x - mouth, top - smile, x + mouth, top + smile], 10, 170, fill=(150, 30, 40), width=3)
    eye_y, corner_y = y - height * 0.2, top + smile * 0.2
    return [[x - eyes, eye_y], [x + eyes, eye_y], [x, y - height * 0.1 + nose], [x - mouth, corner_y],
            [x + mouth, corner_y]]
