"""Face recognition: an embedding in which one person's faces lie close, so that people never trained on can be
enrolled from a few photos and recognised (tasks/faces_gallery.py).

Data (data/faces.py): a folder with one sub-folder of photos per person, each face found by MTCNN and aligned where
the model wants its five landmarks (its chip: dlib's 150 px, ArcFace's 112), or a built-in (`olivetti`; `cartoons:N`,
drawn). The splits hold whole people: the test people and the validation people (who set the threshold) are
strangers to training, as the people a user enrols will be.
Model (models/arcface.py FaceEmbedder): a trunk, its features pooled and projected linearly to numbers of length 1.
The trunk is dlib's face network (`dlib_resnet`, the default: models/dlib_face.py, trained on 3 million faces, its
own last linear map the projection), EfficientNet-Lite0's first blocks with their ImageNet weights (their features
on a 3 x 3 grid; the projection starts as the training people's linear discriminants, PCA then LDA in closed form),
both kept fixed, or a small residual network from scratch (`resnet`). Training refines the projection (all of the
network from scratch) with ArcFace's additive angular margin loss. Metrics: each epoch the validation people's TAR at
FAR 1 % and EER; after training, the threshold at --far on the validation people (calibrate), and on the test
people the verification scores and identification after enrolling 3 photos each (metrics/verification.py).
The use of a trained model is tasks/faces_face.py (FacesFace: every face of a photo, found, aligned, embedded and
named from the run's gallery); what a finished run shows is tasks/faces_report.py.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import Config
from ..errors import ConfigError, DataError
from ..registry import builtin_defaults, builtin_models
from .base import Prepared, Task
from .faces_face import FacesFace
from .faces_report import FacesReport

ENROLLED = 3          # photos of each test person enrolled when identification is measured
PCA_AT_LEAST = 40     # components PCA keeps before LDA at least (bench/faces.py: 40 for Olivetti's 27 people;
                      # more let LDA fit the training people's faces rather than people)
SIZE_RANGE = (8, 1024)
PREVIEW_PEOPLE = 12   # people the data page shows


class FaceNote(UserWarning):
    """What a face run says about its data and its start (single-photo people, LDA's start)."""


class FaceRecognition(Task):
    name = "faces"
    models = builtin_models("faces")
    defaults = builtin_defaults("faces")
    default_monitor = "val_tar"
    headline = "tar_at_far_1"
    unit = ("face", 1)
    counted = ("faces", "faces")
    augments = ("none", "flip", "crop+flip")
    pretrained_models = ("dlib_resnet", "efficientnet_lite0")
    face_class, report_class = FacesFace, FacesReport

    def __init__(self, cfg: Config, meta: dict | None = None):
        cfg.model.name = cfg.model.name or "dlib_resnet"
        if cfg.model.name in self.pretrained_models:  # always their learned weights, the trunk kept fixed
            cfg.model.pretrained, cfg.model.freeze = True, True
        elif cfg.model.pretrained:
            raise ConfigError(f"--model {cfg.model.name} learns from scratch; --pretrained faces start from "
                              f"{' or '.join(self.pretrained_models)}.")
        super().__init__(cfg, meta)
        if meta is None:  # a run to train: its starting weights must be here before any photo is read
            self.check_before_data()
        self.names: dict[str, list[str]] = {}   # per split, the file of each face (for the report)
        self.people_names: list[str] = []

    def check_before_data(self) -> None:
        """dlib's weights are fetched apart (deepworks weights fetch dlib-face): say so before reading any photo."""
        if self.cfg.model.name == "dlib_resnet":
            from ..models.face_weights import DLIB_FILE, DLIB_HOW, dlib_folder

            if not (dlib_folder() / DLIB_FILE[0]).is_file():
                raise ConfigError(f"dlib's face recognition weights are not in {dlib_folder()}. {DLIB_HOW}.")

    @staticmethod
    def check_meta(meta: dict) -> None:
        low, high = SIZE_RANGE
        if not isinstance(meta.get("size"), int) or not low <= meta["size"] <= high:
            raise ConfigError(f"size {meta.get('size')} is outside {low} to {high}")
        if not isinstance(meta.get("people"), int) or not 2 <= meta["people"] <= 1_000_000:
            raise ConfigError(f"people {meta.get('people')} is outside 2 to 1,000,000")

    @classmethod
    def monitor_mode(cls, metric: str | None) -> str:
        return "min" if metric and metric.endswith("eer") else super().monitor_mode(metric)

    # --- data -----------------------------------------------------------------------------------------------
    def read(self, progress: bool | None = False):
        from ..data import faces
        from ..data.builtin import default_data_dir

        d = self.cfg.data
        name, _, count = str(d.source).partition(":")
        if name == "cartoons":
            if count and not count.isdigit():
                raise DataError(f"--data cartoons:N draws N people. Received: {d.source}.")
            return faces.cartoons(int(count) if count else 24, seed=self.cfg.seed, chip=self.chip)
        if name == "olivetti" and not count:
            return faces.olivetti(Path(d.data_dir) if d.data_dir else default_data_dir(), d.download, self.chip)
        return faces.read_people(d.source, self.cfg.eval.min_face, d.strict, progress, self.chip)

    @property
    def chip(self) -> dict:
        """Where the model wants a face's five landmarks: {'side', 'points'} (dlib's chip, or ArcFace's 112)."""
        return chip_of(self.cfg.model.name)

    def prepare(self, progress: bool | None = True) -> Prepared:
        from ..data.faces import person_split

        found = self.read(progress)
        d = self.cfg.data
        train, val, test = person_split(found.people, d.val_fraction, d.test_fraction, self.cfg.seed,
                                        found.test_people)
        x = torch.from_numpy(found.faces).permute(0, 3, 1, 2).contiguous()
        people = torch.from_numpy(found.people)
        train_people = np.unique(found.people[train])
        own = torch.full((len(found.names),), -1, dtype=torch.int64)
        own[torch.from_numpy(train_people)] = torch.arange(len(train_people))  # ArcFace's directions, per person
        self.start_faces = (x[torch.from_numpy(train)], own[people[torch.from_numpy(train)]])
        self.names = {k: [found.files[i] for i in v] for k, v in (("train", train), ("val", val), ("test", test))}
        self.people_names = list(found.names)
        self.train_people = [found.names[p] for p in train_people]  # ArcFace's order
        mean, std = self.normalisation(x[torch.from_numpy(train)])
        self.meta = {"size": 128 if self.cfg.model.name == "dlib_resnet" else int(self.cfg.model.width or 128),
                     "chip": self.chip, "people": int(len(train_people)), "mean": mean,
                     "std": std, "far": float(self.cfg.eval.far), "threshold": None, "source": found.description,
                     "people_split": {k: int(len(np.unique(found.people[v])))
                                      for k, v in (("train", train), ("val", val), ("test", test))}}
        if self.cfg.model.name == "efficientnet_lite0":
            from ..models.pretrained import describe

            self.meta["pretrained"] = describe("efficientnet_lite0")
        elif self.cfg.model.name == "dlib_resnet":
            from ..models.dlib_face import describe

            self.meta["pretrained"] = describe()

        def part(idx, labels):
            idx = torch.from_numpy(idx)
            return x[idx], labels[idx]

        return Prepared(train=part(train, own[people]), val=part(val, people), test=part(test, people),
                        meta=self.meta, notes=list(found.notes))

    def labelled_examples(self, source: str, progress: bool | None = False) -> tuple:
        """Every face of a folder of person folders (`deepworks evaluate --data`, the audit's --data)."""
        from ..data.faces import read_people

        found = read_people(source, self.cfg.eval.min_face, self.cfg.data.strict, progress, self.meta.get("chip"))
        self.people_names = list(found.names)
        return torch.from_numpy(found.faces).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(found.people)

    def normalisation(self, train: torch.Tensor) -> tuple[list[float], list[float]]:
        """dlib's or ImageNet's mean and std for pretrained weights, else the training faces' own, per channel."""
        if self.cfg.model.name == "dlib_resnet":
            from ..models.dlib_face import MEAN, SCALE

            return [m / 255 for m in MEAN], [SCALE / 255] * 3
        if self.cfg.model.pretrained:
            from ..models.pretrained import weights_for

            w = weights_for("efficientnet_lite0")
            return list(w.mean), list(w.std)
        pixels = train.float().div(255).transpose(0, 1).flatten(1)
        return pixels.mean(1).tolist(), pixels.std(1).clamp(min=1e-3).tolist()

    def preview(self, prepared: Prepared, per_class: int = 6) -> dict:
        """The first `per_class` aligned faces of the first training people (PNG base64), as the network sees them,
        and how many people each split holds."""
        from ..inference import png_base64

        faces, people = prepared.train
        rows = [{"class": name, "images": [png_base64(faces[i].numpy()) for i in
                                           np.flatnonzero(people.numpy() == k)[:per_class]]}
                for k, name in enumerate(self.train_people[:PREVIEW_PEOPLE])]
        split = self.meta["people_split"]
        counts = (f"People: {split['train']} to train on, {split['val']} to set the threshold with, {split['test']} to "
                  f"test on, never trained on.")
        return {"examples": rows, "notes": list(prepared.notes) + [counts]}

    def default_epochs(self, data: Prepared) -> int:
        """About 300 steps: the projection starts fitted (Lite0) or the network is small (from scratch)."""
        from ..training.loop import steps_per_epoch

        return int(min(30, max(3, -(-300 // steps_per_epoch(len(data.train[0]), self.cfg.train.batch_size)))))

    def audit_warnings(self, data: Prepared) -> list[str]:
        return [n for n in data.notes if "one photo" in n]

    # --- model and training ---------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        from ..models.arcface import FaceEmbedder, Lite0Trunk, ScratchTrunk
        from ..models.dlib_face import DlibResNet

        m, name = self.meta, self.cfg.model.name
        if name == "dlib_resnet":
            return FaceEmbedder(DlibResNet(), DlibResNet.channels, m["size"], m["people"], m["mean"], m["std"], grid=1)
        trunk = Lite0Trunk() if name == "efficientnet_lite0" else ScratchTrunk(32)
        return FaceEmbedder(trunk, trunk.channels, m["size"], m["people"], m["mean"], m["std"])

    def start_from(self, model: nn.Module) -> None:
        """The pretrained weights: dlib's whole network (its last linear map the projection), or Lite0's ImageNet
        weights with the projection fitted to the training people as their linear discriminants. Then each training
        person's direction is their faces' mean embedding, so that ArcFace starts from a separation, not chance."""
        if not self.cfg.model.pretrained:
            return
        faces, people = self.start_faces
        both, twice = torch.cat([faces, faces.flip(3)]), torch.cat([people, people])
        with torch.no_grad():
            if self.cfg.model.name == "dlib_resnet":
                from ..models.face_weights import load_dlib_face

                state = load_dlib_face()
                model.project.weight.copy_(state.pop("project.weight")), model.project.bias.zero_()
                model.backbone.load_state_dict(state)
                features = features_of(model, both)
            else:
                features = self.lda_start(model, both, twice)
            embedded = F.normalize(model.project(features.to(model.project.weight.device)), dim=1).cpu()
            means = torch.zeros(model.margin.directions.shape).index_add_(0, twice, embedded)
            model.margin.directions.copy_(F.normalize(means, dim=1))

    def lda_start(self, model: nn.Module, faces: torch.Tensor, people: torch.Tensor) -> torch.Tensor:
        """Lite0's ImageNet weights, and the projection as the training people's linear discriminants; the
        training faces' features."""
        from ..models.pretrained import load_init_from, weights_file

        load_init_from(model.backbone, weights_file("efficientnet_lite0"), allow_partial=True)
        features = features_of(model, faces)
        weight, bias = lda_projection(features.numpy(), people.numpy(), model.project.out_features, self.cfg.seed)
        model.project.weight.zero_(), model.project.bias.zero_()
        model.project.weight[:len(weight)] = torch.from_numpy(weight)
        model.project.bias[:len(bias)] = torch.from_numpy(bias)
        return features

    def training_step(self, model: nn.Module, batch: tuple):
        x, people = batch
        if model.training and (self.cfg.data.augment or "none") != "none":
            from .image import augment

            x = augment(x, self.cfg.data.augment)
        embeddings = model(x)
        logits = model.margin(embeddings, people)
        loss = F.cross_entropy(logits, people)
        return loss, {}

    def evaluate(self, model: nn.Module, split: tuple, device: torch.device) -> dict:
        """The validation people's verification scores: TAR at FAR 1 % and the EER."""
        from ..metrics.verification import verification

        found = verification(embed(model, split[0], device), split[1].numpy())
        return {"tar": found["tar_at_far_1"], "eer": found["eer"]}

    # --- after training -------------------------------------------------------------------------------------
    def calibrate(self, model: nn.Module, data: Prepared, device: torch.device) -> None:
        """The threshold that accepts --far of the validation people's impostor pairs."""
        from ..metrics.verification import pair_scores, threshold_at_far

        _, impostor = pair_scores(embed(model, data.val[0], device), data.val[1].numpy())
        self.meta["threshold"] = float(np.nextafter(threshold_at_far(impostor, self.cfg.eval.far), 2.0))

    def test_metrics(self, model: nn.Module, split: tuple, device: torch.device) -> dict:
        from ..metrics.verification import identification, verification

        e, people = embed(model, split[0], device), split[1].numpy()
        threshold = self.meta.get("threshold") or 0.5
        return {"faces": len(people), "people": int(len(np.unique(people))), **verification(e, people),
                **identification(e, people, threshold, ENROLLED, self.cfg.seed), "threshold": threshold}


def chip_of(model: str) -> dict:
    """Where a model wants the five landmarks of a face: dlib's 150 px chip, or ArcFace's 112 px square."""
    from ..models import dlib_face, mtcnn

    if model == "dlib_resnet":
        return {"side": dlib_face.SIDE, "points": [list(p) for p in dlib_face.CHIP]}
    return {"side": mtcnn.ALIGNED, "points": mtcnn.REFERENCE.tolist()}


def embed(model: nn.Module, x: torch.Tensor, device: torch.device, size: int = 64) -> torch.Tensor:
    """Unit embeddings (N, D) of uint8 faces (N, 3, 112, 112), in eval mode, on the CPU."""
    from ..models import evaluating

    with torch.no_grad(), evaluating(model):
        return torch.cat([model(x[i:i + size].to(device)).float().cpu() for i in range(0, len(x), size)]) \
            if len(x) else torch.zeros(0, model.project.out_features)


def features_of(model: nn.Module, faces: torch.Tensor, size: int = 64) -> torch.Tensor:
    """What the projection takes of uint8 faces (N, 3, S, S), `size` at a time, in eval mode, on the model's
    device, back on the CPU."""
    from ..models import evaluating

    device = next(model.parameters()).device
    with torch.no_grad(), evaluating(model):
        return torch.cat([model.features(faces[i:i + size].to(device)).float().cpu()
                          for i in range(0, len(faces), size)])


def lda_projection(features: np.ndarray, people: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(weight (k, F), bias (k,)) of the linear map PCA then LDA fit on the training faces' features, k = the people
    less one (at most `size`): what a linear projection that separates these people best starts from."""
    from sklearn.decomposition import PCA
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    classes = len(np.unique(people))
    components = min(max(PCA_AT_LEAST, min(size, classes - 1) + 1), len(features) - classes, features.shape[1])
    if components < 1:
        raise DataError("Too few training faces to fit a projection: add photos of each person.")
    pca = PCA(components, random_state=seed).fit(features)
    lda = LinearDiscriminantAnalysis().fit(pca.transform(features), people)
    k = min(size, lda.scalings_.shape[1], classes - 1)
    scalings = lda.scalings_[:, :k]  # LDA's transform: (PCA's transform - xbar) @ scalings
    weight = (pca.components_.T @ scalings).T  # (k, F)
    bias = -(pca.mean_ @ weight.T) - lda.xbar_ @ scalings
    warnings.warn(f"The projection starts as {k} linear discriminants of the {classes} training people (PCA to "
                  f"{components}, then LDA); ArcFace refines it.", FaceNote, stacklevel=2)
    return weight.astype(np.float32), bias.astype(np.float32)
