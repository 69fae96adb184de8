"""The people a face recogniser knows without retraining: a gallery of enrolled names, each with the unit embeddings of
a few photos, kept beside the run (gallery.safetensors: one tensor per person, their names and the embedding's size
in its metadata), written atomically. Identification compares a face with every enrolled photo by cosine and answers
the nearest person, or "unknown" below the run's threshold (calibrated on validation to a chosen false-accept rate);
verification compares two faces. The gallery never leaves the machine through a server: answers carry names and
scores, never embeddings, and an unknown face's nearest person is not said.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import unicodedata
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import DataError
from .common import plural

FILE = "gallery.safetensors"
MAX_PEOPLE = 10_000
MAX_PHOTOS_EACH = 100
NAME = re.compile(r"[\w][\w .'-]{0,63}")  # letters, digits, spaces, dots, apostrophes and hyphens; 64 at most
UNKNOWN = "unknown"


class Gallery:
    def __init__(self, folder: Path | str):
        self.path = Path(folder) / FILE
        self.people: dict[str, torch.Tensor] = {}
        if self.path.is_file():
            self.people = read(self.path)

    def names(self) -> list[str]:
        return sorted(self.people)

    def check_new(self, name) -> str:
        """The name as kept (spaces trimmed, Unicode composed), refused when it is not one deepworks writes or is
        enrolled already."""
        clean = unicodedata.normalize("NFC", name.strip()) if isinstance(name, str) else name
        if not isinstance(clean, str) or not NAME.fullmatch(clean) or clean.lower() == UNKNOWN:
            raise DataError(f"Expected a name of 1 to 64 letters, digits, spaces, dots, apostrophes or hyphens (not "
                            f"'{UNKNOWN}'). Received: {name!r}.")
        if clean in self.people:
            raise DataError(f"{clean} is enrolled already ({plural(len(self.people[clean]), 'photo')}). Forget them "
                            f"first (deepworks faces forget RUN --name '{clean}') to enrol them again.")
        return clean

    def enroll(self, name: str, embeddings: torch.Tensor) -> int:
        """Add a person from the embeddings (K, D) of K photos of them; how many are enrolled. A name already there
        is refused (forget it first), as is one that could not be read back as written."""
        name = self.check_new(name)
        if not 1 <= len(embeddings) <= MAX_PHOTOS_EACH:
            raise DataError(f"Expected 1 to {MAX_PHOTOS_EACH} photos with a face to enrol {name}. Received: "
                            f"{len(embeddings)}.")
        if len(self.people) >= MAX_PEOPLE:
            raise DataError(f"The gallery holds {MAX_PEOPLE:,} people, its limit. Forget some first.")
        sizes = {len(e[0]) for e in self.people.values()}
        if sizes and embeddings.shape[1] not in sizes:
            raise DataError(f"{self.path} holds embeddings of {sizes.pop()} numbers, and this run makes "
                            f"{embeddings.shape[1]}: it was written by another run. Delete it to start a new gallery.")
        self.people[name] = F.normalize(embeddings.detach().float().cpu(), dim=1)
        self.save()
        return len(embeddings)

    def forget(self, name: str) -> int:
        """Remove a person; how many photos of them were kept."""
        name = unicodedata.normalize("NFC", name.strip()) if isinstance(name, str) else name
        if name not in self.people:
            known = ", ".join(self.names()[:10]) or "nobody yet"
            raise DataError(f"Expected an enrolled name ({known}). Received: {name!r}.")
        n = len(self.people.pop(name))
        self.save()
        return n

    def identify(self, embeddings: torch.Tensor, threshold: float) -> list[dict]:
        """Per face (N, D): the nearest enrolled person and the cosine to their closest photo, or UNKNOWN when no
        one reaches `threshold` (and when nobody is enrolled). One product with every enrolled photo."""
        faces = F.normalize(embeddings.detach().float().cpu(), dim=1)
        if not self.people or not len(faces):
            return [{"name": UNKNOWN, "nearest": UNKNOWN, "score": -1.0} for _ in range(len(faces))]
        names = list(self.people)
        if faces.shape[1] != len(self.people[names[0]][0]):
            raise DataError(f"{self.path} holds embeddings of {len(self.people[names[0]][0])} numbers, and this run "
                            f"makes {faces.shape[1]}: it was written by another run. Delete it and enrol again.")
        photos = torch.cat([self.people[n] for n in names])
        owner = torch.cat([torch.full((len(self.people[n]),), i) for i, n in enumerate(names)])
        best, where = (faces @ photos.T).max(1)
        return [{"name": names[owner[w]] if b >= threshold else UNKNOWN, "nearest": names[owner[w]],
                 "score": round(float(b), 4)} for b, w in zip(best, where)]

    def save(self) -> None:
        from safetensors.torch import save_file

        self.path.parent.mkdir(parents=True, exist_ok=True)
        names = list(self.people)
        tensors = {f"person_{i}": self.people[n].contiguous() for i, n in enumerate(names)}
        handle, part = tempfile.mkstemp(prefix=".gallery-", suffix=".part", dir=self.path.parent)
        os.close(handle)
        save_file(tensors, part, metadata={"names": json.dumps(names)})
        os.replace(part, self.path)


def read(path: Path) -> dict[str, torch.Tensor]:
    """The gallery file: tensors only (safetensors never runs code), its names checked as enrolment checks them, its
    numbers finite and of one size; anything else is refused with what to do."""
    from safetensors import safe_open

    fix = f"Delete {path} and enrol the people again (deepworks faces enroll RUN --name NAME PHOTOS)."
    try:
        with safe_open(str(path), framework="pt") as f:
            names = json.loads((f.metadata() or {}).get("names", "[]"))
            if not isinstance(names, list) or not all(isinstance(n, str) and NAME.fullmatch(n) for n in names):
                raise ValueError("names it does not write")
            people = {n: f.get_tensor(f"person_{i}").float() for i, n in enumerate(names)}
    except Exception as err:  # a damaged or foreign file: safetensors', json's or a missing tensor's error
        raise DataError(f"{path} is not a gallery deepworks can read ({type(err).__name__}: {err}). {fix}") from None
    sizes = {tuple(e.shape[1:]) for e in people.values()}
    if len(sizes) > 1 or any(e.ndim != 2 or not torch.isfinite(e).all() for e in people.values()):
        raise DataError(f"{path} holds embeddings of several sizes or numbers that are not finite. {fix}")
    return people


def verify(a: torch.Tensor, b: torch.Tensor, threshold: float) -> dict:
    """Two faces' embeddings (D,) -> their cosine and whether it reaches `threshold` (the same person)."""
    score = float(F.normalize(a.float(), dim=0) @ F.normalize(b.float(), dim=0))
    return {"score": round(score, 4), "same_person": score >= threshold}
