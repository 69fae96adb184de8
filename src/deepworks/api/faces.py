"""Finding faces without a trained run: MTCNN's boxes and five landmarks in photos of any size, and each face aligned
to 112 x 112 (models/mtcnn.py), as `deepworks faces find` and `dw.find_faces` give them."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError

MAX_PHOTOS = 1000      # photos one call looks at, at most
MIN_FACE_RANGE = (12, 10_000)


def find_faces(photos, min_face: int = 20, out: str | Path | None = None) -> list[dict]:
    """Photos (paths or folders, bytes, PIL images, arrays) -> per photo {'input', 'width', 'height', 'faces': [{'box':
    [x1, y1, x2, y2], 'score', 'landmarks': [[x, y] x 5: eyes, nose, mouth corners], 'aligned': uint8 (112, 112, 3)}]},
    the most probable face first. `min_face`: the smallest face looked for, in pixels (smaller finds more, slower).
    With `out`, each aligned face is written there as NAME-face-K.png."""
    from ..data.decode import walk_images
    from ..models.face_weights import load_mtcnn
    from ..models.mtcnn import aligned
    from ..tasks.restore_face import array_photos, decode_photo

    low, high = MIN_FACE_RANGE
    if isinstance(min_face, bool) or not isinstance(min_face, int) or not low <= min_face <= high:
        raise ConfigError(f"--min-face must be a whole number of pixels from {low} to {high:,}. Received: "
                          f"{min_face!r}.")
    detector = load_mtcnn()
    items = walk_images(photos, MAX_PHOTOS, True, lambda source: decode_photo(source)[0],
                        lambda array, n: [(f"array {n}", rgb) for rgb, _ in array_photos(array, f"input {n}")])
    answers = []
    for name, rgb in items:
        boxes, landmarks = detector.find(rgb, min_face)
        faces = [{"box": [round(float(v), 1) for v in box[:4]], "score": round(float(box[4]), 4),
                  "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in points],
                  "aligned": aligned(rgb, points).numpy()}
                 for box, points in zip(boxes, landmarks)]
        answers.append({"input": name, "width": rgb.shape[1], "height": rgb.shape[0], "faces": faces})
    if out is not None:
        write_faces(answers, Path(out))
    return answers


def write_faces(answers: list[dict], out: Path) -> None:
    """Each aligned face as OUT/NAME-face-K.png, its path under 'file'."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    for n, answer in enumerate(answers):
        stem = Path(answer["input"]).stem if Path(answer["input"]).suffix else f"image-{n}"
        for k, face in enumerate(answer["faces"]):
            path = out / f"{stem}-face-{k}.png"
            Image.fromarray(face["aligned"]).save(path)
            face["file"] = str(path)
