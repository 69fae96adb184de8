"""The people a face recogniser knows without retraining: a gallery of enrolled names, each with the unit embeddings of
a few photos, kept beside the run (gallery.safetensors: one tensor per person, their names in its metadata), written
atomically. Identification compares a face with every enrolled photo by cosine and answers the nearest person, or
"unknown" below the run's threshold (calibrated on validation to a chosen false-accept rate); verification compares
two faces. The gallery never leaves the machine through a server: answers carry names and scores, never embeddings.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import DataError

FILE = "gallery.safetensors"
MAX_PEOPLE = 10_000
MAX_PHOTOS_EACH = 100
NAME = re.compile(r"^[\w][\w .'-]{0,63}$")  # letters, digits, spaces, dots, apostrophes and hyphens; 64 at most
UNKNOWN = "unknown"


class Gallery:
    def __init__(self, folder: Path | str):
        self.path = Path(folder) / FILE
        self.people: dict[str, torch.Tensor] = {}
        if self.path.is_file():
            self.people = read(self.path)

    def names(self) -> list[str]:
        return sorted(self.people)

    def enroll(self, name: str, embeddings: torch.Tensor) -> int:
        """Add a person from the embeddings (K, D) of K photos of them; how many are enrolled. A name already there
        is refused (forget it first), as is one that could not be read back as written."""
        self.check_new(name)
        if not 1 <= len(embeddings) <= MAX_PHOTOS_EACH:
            raise DataError(f"Expected 1 to {MAX_PHOTOS_EACH} photos with a face to enrol {name}. Received: "
                            f"{len(embeddings)}.")
        if len(self.people) >= MAX_PEOPLE:
            raise DataError(f"The gallery holds {MAX_PEOPLE:,} people, its limit. Forget some first.")
        self.people[name] = F.normalize(embeddings.detach().float().cpu(), dim=1)
        self.save()
        return len(embeddings)

    def check_new(self, name: str) -> None:
        """Refuse a name that is not one deepworks writes, or that is enrolled already."""
        if not isinstance(name, str) or not NAME.match(name) or name == UNKNOWN:
            raise DataError(f"Expected a name of 1 to 64 letters, digits, spaces, dots, apostrophes or hyphens (not "
                            f"'{UNKNOWN}'). Received: {name!r}.")
        if name in self.people:
            raise DataError(f"{name} is enrolled already ({len(self.people[name])} photos). Forget them first "
                            f"(deepworks faces forget RUN --name '{name}') to enrol them again.")

    def forget(self, name: str) -> int:
        """Remove a person; how many photos of them were kept."""
        if name not in self.people:
            known = ", ".join(self.names()[:10]) or "nobody yet"
            raise DataError(f"Expected an enrolled name ({known}). Received: {name!r}.")
        n = len(self.people.pop(name))
        self.save()
        return n

    def identify(self, embeddings: torch.Tensor, threshold: float) -> list[dict]:
        """Per face (N, D): the nearest enrolled person and the cosine to their closest photo, or UNKNOWN when no
        one reaches `threshold` (and when nobody is enrolled)."""
        answers = []
        for e in F.normalize(embeddings.detach().float().cpu(), dim=1):
            best, who = -1.0, UNKNOWN
            for name, photos in self.people.items():
                score = float((photos @ e).max())
                if score > best:
                    best, who = score, name
            answers.append({"name": who if best >= threshold else UNKNOWN, "nearest": who,
                            "score": round(best, 4)})
        return answers

    def save(self) -> None:
        from safetensors.torch import save_file

        self.path.parent.mkdir(parents=True, exist_ok=True)
        names = list(self.people)
        tensors = {f"person_{i}": self.people[n].contiguous() for i, n in enumerate(names)}
        part = self.path.with_suffix(".part")
        save_file(tensors, str(part), metadata={"names": json.dumps(names)})
        os.replace(part, self.path)


def read(path: Path) -> dict[str, torch.Tensor]:
    """The gallery file: tensors only (safetensors never runs code), its names checked as enrolment checks them."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        names = json.loads((f.metadata() or {}).get("names", "[]"))
        if not isinstance(names, list) or not all(isinstance(n, str) and NAME.match(n) for n in names):
            raise DataError(f"{path} names its people in a way deepworks does not write. Expected the file "
                            f"`deepworks faces enroll` writes.")
        return {n: f.get_tensor(f"person_{i}").float() for i, n in enumerate(names)}


def verify(a: torch.Tensor, b: torch.Tensor, threshold: float) -> dict:
    """Two faces' embeddings (D,) -> their cosine and whether it reaches `threshold` (the same person)."""
    score = float(F.normalize(a.float(), dim=0) @ F.normalize(b.float(), dim=0))
    return {"score": round(score, 4), "same_person": score >= threshold}
