"""Image classification: from a folder of labelled images (or a built-in set) to a model that names new ones.

Data: images become uint8 tensors (N, C, S, S) at one square size S, split into
train / validation / test with a seeded stratified split (a dataset's own test
split is kept). The network sees them normalised with the training split's
per-channel mean and std, which are saved with the model.
Loss: cross-entropy. Metrics: accuracy each epoch; on the test split also top-k
accuracy, per-class precision / recall / F1 and the confusion matrix, with a
random forest on the raw pixels of the same split as a baseline.
Use: the face (tasks/image_face.py) gives the class probabilities of images (files, bytes, PIL images or arrays);
the report (tasks/image_report.py) shows the test, beside the forest, with its figures.
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import Config, fill_defaults, set_values, value_of
from ..data import FILE_IMAGE_SIZE, load_image_source
from ..data.arrays import DataWarning, channel_stats, resize, stratified_split  # noqa: F401 (re-exported)
from ..data.decode import set_channels
from ..data.images import unreadable_message
from ..errors import ConfigError, DataError
from ..models import build_image_classifier, min_image_size
from ..models.airbench import WHITEN_IMAGES
from ..training.engine import autocast_for
from .base import Prepared, Task
from .image_augment import AugmentedBatches, augment  # noqa: F401 (augment: re-exported)
from .image_recipes import MANY_PHOTOS, MODEL_DEFAULTS, MODEL_STEPS, RECIPE_KEYS, unset_part
from .image_face import ImageFace, Normalise, class_logits, pixel_model
from .image_report import ImageReport
from .image_robust import AdversarialTraining, RobustnessWarning  # noqa: F401 (RobustnessWarning: re-exported)
from ..registry import builtin_defaults, builtin_models


class PretrainedNote(UserWarning):
    """What --pretrained loaded, said once at the start of training."""


PRETRAINED_SIZE = 128  # EfficientNet-Lite0 at 128 px: a third of 224 px's cost on a CPU; on 32 px CIFAR-10 photos,
# fine-tuned at 128 px it beat 96 px by about ten points (75 % against 66 %) for under twice the time
PREVIEW_CLASSES = 12  # classes a data preview shows examples of
FINE_TUNE_DEFAULTS = {"train.optimizer": "nesterov", "train.lr": 0.01, "train.batch_size": 32, "train.epochs": 8}
# lr 0.01 is kept though it can collapse on tiny data: on 3 CIFAR-10 classes x 30 photos (72 to train, 3 steps an
# epoch), seed 0's training accuracy fell 0.97 -> 0.71 at the one-cycle peak and recovered (300 unseen photos: 0.78;
# at 0.003 and 0.001, no fall, 0.83 and 0.82), while seed 1 did not fall (0.85 at 0.01 and at 0.003). Too mixed to
# move the default bench/pretrained.py measured; a run that collapses says so (Report.collapse_note).


def check_image_meta(meta: dict) -> None:
    """A saved run's image settings, checked before they size anything (a damaged model.json must not make
    `predict` resize every image to 100,000 px)."""
    from ..config import MAX_IMAGE_SIZE

    size, channels = meta["image_size"], meta["channels"]
    if not isinstance(size, int) or not 1 <= size <= MAX_IMAGE_SIZE:
        raise ConfigError(f"image_size {size} is outside 1 to {MAX_IMAGE_SIZE} pixels")
    if channels not in (1, 3):
        raise ConfigError(f"channels {channels} is neither 1 (grey) nor 3 (colour)")
    if not isinstance(meta["classes"], list):
        raise ConfigError("classes is not a list of class names")


class ImageClassification(AdversarialTraining, Task):
    unit = ("img", 1)
    counted = ("samples", "images")
    name = "image"
    models = builtin_models("image")
    defaults = builtin_defaults("image")
    # model.name and data.augment are chosen from the data (see data_defaults); patience from the run's length
    headline = "accuracy"
    fine_tuning = True
    pretrained_models = ("efficientnet_lite0",)
    face_class = ImageFace      # the use of a trained classifier (tasks/image_face.py)
    report_class = ImageReport  # its test, summary and report (tasks/image_report.py)

    def __init__(self, cfg: Config, meta: dict | None = None):
        if cfg.model.pretrained:  # fine-tuning's own defaults, for what the user left unset
            fill_defaults(cfg, FINE_TUNE_DEFAULTS)
        # the settings a model's recipe may give, once the data has chosen the model (data_defaults)
        self.left_unset = {key for key in RECIPE_KEYS if value_of(cfg, key) is None}
        super().__init__(cfg, meta)

    @property
    def default_monitor(self) -> str:
        """Adversarially trained runs keep their most robust epoch: single-step (FGSM) training can lose its
        robustness within an epoch ("catastrophic overfitting", Wong et al. 2020), and early stopping on the
        validation split's accuracy under PGD is their remedy."""
        return "val_robust_accuracy" if self.cfg.train.adversarial != "none" else "val_accuracy"

    check_meta = staticmethod(check_image_meta)

    @property
    def meta(self) -> dict | None:
        return self._meta

    @meta.setter
    def meta(self, value: dict | None) -> None:
        """A new meta (`prepare` sets one) brings its own normalisation: to_input caches tensors made from the
        meta's mean and std, which must not outlive it."""
        self._meta, self._normalise = value, Normalise(value)

    # --- data -------------------------------------------------------------------------
    def check_before_data(self) -> None:
        if self.cfg.data.image_size is not None:
            self.image_size()  # refuses a size below what the model needs

    def image_size(self, native: int | None = None) -> int:
        d, m = self.cfg.data, self.cfg.model
        need = min_image_size(m.name) if m.name else 1
        if d.image_size is not None:
            if d.image_size < need:
                raise ConfigError(f"The {m.name} model needs images of at least {need} px; --image-size {d.image_size} "
                                  f"is too small. Use --image-size {need} or more, or another --model.")
            return d.image_size
        if m.pretrained:
            return PRETRAINED_SIZE
        return max(native or FILE_IMAGE_SIZE, need)

    def load(self, source: str, progress: bool | None = True):
        d = self.cfg.data
        images = load_image_source(source, self.image_size(), d.channels, d.data_dir, d.download, d.strict, progress is not False)
        if images.skipped:
            warnings.warn(unreadable_message(images.skipped), DataWarning, stacklevel=2)
        return images

    def data_defaults(self, channels: int, count: int) -> None:
        """The settings left unset that depend on the data (`count`: the images read). Colour photos get a ResNet-20
        with crop-and-flip augmentation: a LeNet-5 on a thousand photos overfits within ten epochs and barely beats
        a random forest, where the ResNet with augmentation gains about ten points; from MANY_PHOTOS on, the
        airbench model and its recipe (tasks/image_recipes.py: the CIFAR-10 speed runs'). Small grey images (digits,
        scans) get the small CNN (models/smallcnn.py) with label smoothing and no augmentation, which reaches 99 %
        on MNIST in one epoch (LeNet-5 took three)."""
        d, m = self.cfg.data, self.cfg.model
        photos = channels == 3
        if m.name is None:
            m.name = ("efficientnet_lite0" if m.pretrained else "layers" if m.layers else "smallcnn" if not photos
                      else "airbench" if count >= MANY_PHOTOS else "resnet")
        set_values(self.cfg, unset_part(self.model_recipe(MODEL_DEFAULTS, {}), self.left_unset))
        fill_defaults(self.cfg, {"train.label_smoothing": 0.0})
        if m.pretrained and d.channels is None:
            d.channels = 3  # the weights see colour: grey images are given as three equal channels
        if d.augment is None:
            d.augment = "crop+flip" if photos else "none"

    def default_epochs(self, data: Prepared) -> int:
        """About loop.TARGET_STEPS optimizer steps, between 3 and 50 epochs; a model that learns faster aims at its
        own number of steps (MODEL_STEPS)."""
        from ..training.loop import default_epochs

        steps, least = self.model_recipe(MODEL_STEPS, (None, 3))
        return default_epochs(len(data.train[0]), self.cfg.train.batch_size, steps, least)

    def model_recipe(self, recipes: dict, otherwise):
        """The chosen model's entry in `recipes` (MODEL_DEFAULTS, MODEL_STEPS), or `otherwise` for a model without
        one and for adversarial training."""
        if self.cfg.train.adversarial != "none":
            return otherwise
        return recipes.get(self.cfg.model.name, otherwise)

    @staticmethod
    def default_patience(epochs: int) -> int:
        """Early stopping by default: a quarter of the run without a better validation score, and at least 5."""
        return max(5, math.ceil(epochs / 4))

    def stream_listing(self) -> dict | None:
        """The folder's listing when its images should stream from disk (--stream on, or auto and their decoded
        size above --memory-budget), else None: decoded into memory, the fastest when they fit."""
        from ..data.images import list_csv, list_folder
        from ..data.stream import decoded_bytes

        d = self.cfg.data
        path = Path(d.source)
        is_csv = path.suffix.lower() == ".csv" and path.is_file()
        if d.stream == "on" and not (path.is_dir() or is_csv):
            warnings.warn(f"--stream on applies to image folders and CSVs; '{d.source}' is read into memory.",
                          DataWarning, stacklevel=3)
        if d.stream == "off" or not (path.is_dir() or is_csv):
            return None
        listing = list_csv(path) if is_csv else list_folder(path)
        size = self.image_size(None)
        if d.stream == "on" or decoded_bytes(len(listing["files"]), size, d.channels or 3) > d.memory_budget * 1e9:
            return listing
        return None

    def prepare(self, progress: bool | None = True) -> Prepared:
        d, seed = self.cfg.data, self.cfg.seed
        listing = self.stream_listing()
        if listing is not None:
            return self.prepare_streamed(listing, progress)
        images = self.load(d.source, progress)
        self.data_defaults(d.channels or images.x.shape[1], len(images.x))
        size = self.image_size(max(images.x.shape[-2:]))
        channels = d.channels or images.x.shape[1]

        def fix(a: np.ndarray) -> np.ndarray:
            return set_channels(resize(a, size), channels)

        x, y = fix(images.x), images.y
        names = np.asarray([images.name_of("train", i) for i in range(len(x))], dtype=object)
        if images.x_test is not None:
            x_test, y_test = fix(images.x_test), images.y_test
            names_test = np.asarray([images.name_of("test", i) for i in range(len(x_test))], dtype=object)
        else:
            keep, held = stratified_split(y, d.test_fraction, seed)
            x, y, x_test, y_test, names, names_test = x[keep], y[keep], x[held], y[held], names[keep], names[held]
        if images.x_val is not None:
            x_val, y_val = fix(images.x_val), images.y_val
            names_val = np.asarray([images.name_of("val", i) for i in range(len(x_val))], dtype=object)
        else:
            keep, held = stratified_split(y, d.val_fraction, seed + 1)
            x, y, x_val, y_val, names, names_val = x[keep], y[keep], x[held], y[held], names[keep], names[held]
        notes = ([unreadable_message(images.skipped)] if images.skipped else []) + self.check_splits(
            images.description, y, len(x_test), images.classes)
        self.names = {"train": list(names), "val": list(names_val), "test": list(names_test)}
        mean, std = self.normalisation(lambda: channel_stats(x, seed))
        self.meta = {"classes": images.classes, "channels": int(channels), "image_size": int(size),
                     "mean": mean, "std": std, "source": images.description, **self.pretrained_meta()}
        d.image_size, d.channels = int(size), int(channels)  # the saved config is the resolved one

        def tensors(a: np.ndarray, b: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
            return torch.from_numpy(np.ascontiguousarray(a)), torch.from_numpy(np.ascontiguousarray(b))

        return Prepared(train=tensors(x, y), val=tensors(x_val, y_val), test=tensors(x_test, y_test),
                        meta=self.meta, notes=notes)

    def normalisation(self, from_data) -> tuple[list[float], list[float]]:
        """The training split's per-channel mean and std; pretrained weights keep the normalisation they learned with."""
        if self.cfg.model.pretrained:
            from ..models.pretrained import weights_for

            w = weights_for(self.cfg.model.name)
            return list(w.mean), list(w.std)
        return from_data()

    def pretrained_meta(self) -> dict:
        """Where the starting weights came from (package, file, sha256, licence), for model.json and the report."""
        if not self.cfg.model.pretrained:
            return {}
        from ..models.pretrained import describe

        return {"pretrained": describe(self.cfg.model.name)}

    def head_features(self, model: nn.Module, head: nn.Module, train: tuple, device: torch.device):
        """What reaches the head for each training image and its mirror image (the cheapest augmentation), for
        fine-tuning's head-first step. Images streamed from disk are skipped: the epochs train the head instead."""
        from ..training.finetune import captured_inputs

        x, y = train
        if not torch.is_tensor(x):
            return None
        with captured_inputs(head) as seen:
            for i in range(0, len(x), 250):
                batch = x[i:i + 250]
                self.logits(model, batch, device)
                self.logits(model, batch.flip(-1), device)
        return torch.cat(seen), torch.cat([y[i:i + 250].repeat(2) for i in range(0, len(y), 250)])

    def start_from(self, model: nn.Module) -> None:
        if self.cfg.model.pretrained:
            from ..models.pretrained import load_pretrained

            found = load_pretrained(model, self.cfg.model.name)
            warnings.warn(f"Started from the pretrained {self.cfg.model.name}: {found['loaded']} of {found['of']} "
                          f"tensors loaded; new: {', '.join(found['new'])} (a head for your "
                          f"{len(self.meta['classes'])} classes).", PretrainedNote, stacklevel=2)

    def start_from_data(self, model: nn.Module, train: tuple) -> None:
        """A model with layers set from the data (the airbench model's whitening filters) sees a seeded sample of
        `WHITEN_IMAGES` training images, normalised as in training (the first ones of a folder read class by
        class would all be airplanes)."""
        init = getattr(model, "init_from_data", None)
        if init is not None:
            x = train[0]
            sample = np.random.default_rng(self.cfg.seed).choice(len(x), min(len(x), WHITEN_IMAGES), replace=False)
            init(x[np.sort(sample)], self.to_input)

    def check_splits(self, description: str, y_train: np.ndarray, n_test: int, classes: list[str]) -> list[str]:
        """What both ways of preparing check once the splits are made: images left to train and to test on (else
        DataError), and classes with fewer than 5 training images (a warning, returned as a note for the report)."""
        if len(y_train) < 2:
            raise DataError(f"{description} leaves {len(y_train)} image(s) for training after the validation and test "
                            f"splits. Add images, or lower --val-fraction / --test-fraction.")
        if n_test == 0:
            raise DataError(f"{description} leaves no image to test the model on (--test-fraction "
                            f"{self.cfg.data.test_fraction:g}). Raise --test-fraction, add images, or give a test/ "
                            f"folder beside train/.")
        counts = np.bincount(y_train, minlength=len(classes))
        tiny = [classes[i] for i, c in enumerate(counts) if c < 5]
        if not tiny:
            return []
        message = f"Class(es) {tiny} have fewer than 5 training images; the model cannot learn them well. Add images."
        warnings.warn(message, DataWarning, stacklevel=3)
        return [message]

    def prepare_streamed(self, listing: dict, progress: bool | None) -> Prepared:
        """As `prepare`, for images that stay on disk: the same seeded splits, by index; the normalisation from a
        seeded sample of 1,000 training images; each split a FileImages that decodes on access."""
        from ..data.stream import stream_folder

        d, seed = self.cfg.data, self.cfg.seed
        size = self.image_size(None)
        found = stream_folder(listing, size, d.channels, d.strict, progress is not False)
        if found["skipped"]:
            warnings.warn(unreadable_message(found["skipped"]), DataWarning, stacklevel=2)
        channels = found["channels"]
        self.data_defaults(channels, len(found["splits"]["train"][0]))
        size = self.image_size(None)  # the model is known now: it may need a larger size
        splits = {k: (x if x.size == size else type(x)(x.files, size, channels), y)
                  for k, (x, y) in found["splits"].items()}
        x, y = splits["train"]
        if "test" not in splits:
            keep, held = stratified_split(y.numpy(), d.test_fraction, seed)
            splits["test"] = (x.subset(held), y[held])
            x, y = x.subset(keep), y[keep]
        if "val" not in splits:
            keep, held = stratified_split(y.numpy(), d.val_fraction, seed + 1)
            splits["val"] = (x.subset(held), y[held])
            x, y = x.subset(keep), y[keep]
        splits["train"] = (x, y)
        notes = ([unreadable_message(found["skipped"])] if found["skipped"] else []) + self.check_splits(
            found["description"], y.numpy(), len(splits["test"][0]), found["classes"])
        self.names = {k: list(v[0].files) for k, v in splits.items()}
        sample = np.sort(np.random.default_rng(seed).choice(len(x), min(1000, len(x)), replace=False))
        mean, std = self.normalisation(lambda: channel_stats(x[sample].numpy(), seed))
        self.meta = {"classes": found["classes"], "channels": int(channels), "image_size": int(size),
                     "mean": mean, "std": std, "source": found["description"], **self.pretrained_meta()}
        d.image_size, d.channels = int(size), int(channels)
        return Prepared(train=splits["train"], val=splits["val"], test=splits["test"], meta=self.meta, notes=notes)

    def batch_source(self, train: tuple):
        """Streamed images come through DataLoader workers, which also augment them; tensors in memory are sliced,
        and augmented on the device as each batch is taken (AugmentedBatches)."""
        from ..data.stream import FileImages, StreamDataset
        from ..training.batches import DatasetBatches, default_workers

        d, t = self.cfg.data, self.cfg.train
        if not isinstance(train[0], FileImages):
            if d.augment in (None, "none"):
                return super().batch_source(train)
            return AugmentedBatches(train, t.batch_size, self.cfg.seed, d.augment)
        return DatasetBatches(StreamDataset(train[0], train[1], d.augment, self.cfg.seed), t.batch_size, self.cfg.seed,
                              workers=default_workers() if d.workers is None else d.workers, whole_batches=True,
                              prefetch=4, idle_workers=True, pin_memory=True, spawn=True)

    def audit_warnings(self, data: Prepared) -> list[str]:
        """The quick checks of `deepworks audit` (balance, copies, leakage), as warnings before training. `dw.train`
        calls this after `prepare`, so re-preparing a run's data (evaluate, attack) does not repeat them."""
        from ..data.audit import audit_splits

        if not torch.is_tensor(data.train[0]):
            return ["The images stream from disk, so the quick checks for copies and leakage were not made before "
                    "training: run `deepworks audit` on the folder."]
        splits = {name: (x.numpy(), y.numpy()) for name, (x, y) in
                  (("train", data.train), ("val", data.val), ("test", data.test))}
        notes = []
        names = getattr(self, "names", None)
        for finding in audit_splits(splits, self.meta["classes"], self.cfg.seed, thorough=False, names=names):
            if finding.severity == "warning":
                warnings.warn(f"{finding.text()} (`deepworks audit` checks more.)", DataWarning, stacklevel=3)
                notes.append(finding.text())
        return notes

    def to_input(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images -> normalised float, on x's device (the scale and shift are cached per device)."""
        return self._normalise(x)

    # --- model, loss, metrics -------------------------------------------------------------
    def build_model(self) -> nn.Module:
        m = self.meta
        return build_image_classifier(self.cfg.model, m["channels"], m["image_size"], len(m["classes"]),
                                      mirrored="flip" in (self.cfg.data.augment or ""))

    def pixel_model(self, model: nn.Module) -> nn.Module:
        """The model seen from pixels in [0, 1] (what adversarial training attacks)."""
        return pixel_model(model, self.meta)

    def training_step(self, model: nn.Module, batch):
        x, y = batch  # augmented already, by the batch source (batch_source)
        t = self.cfg.train
        if t.adversarial != "none":
            x = self.adversarial(model, x, y, t.adversarial, t.attack_steps) * 255.0  # to_input's scale
        logits = model(self.to_input(x))
        loss = F.cross_entropy(logits, y, label_smoothing=self.cfg.train.label_smoothing)
        return loss, {"accuracy": (logits.argmax(1) == y).sum()}

    def logits(self, model: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 1000) -> torch.Tensor:
        return class_logits(model, x, device, self._normalise, len(self.meta["classes"]), batch_size)

    def evaluate(self, model: nn.Module, split, device: torch.device) -> dict:
        """Each epoch's validation, at the training's precision (as Lightning validates): in bf16 on a CPU, a third of
        float32's time for the airbench model. The test and every later use of the model are in float32."""
        x, y = split
        with autocast_for(device, self.cfg.train.amp, model)[0]():
            logits = self.logits(model, x, device).float()
        out = {"loss": F.cross_entropy(logits, y).item(), "accuracy": (logits.argmax(1) == y).float().mean().item()}
        if self.cfg.train.adversarial != "none":
            out["robust_accuracy"] = self.robust_accuracy(model, split, device, "pgd")
        return out

    def test_metrics(self, model: nn.Module, split, device: torch.device) -> dict:
        from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

        x, y = split
        logits = self.logits(model, x, device)
        k = min(self.cfg.eval.top_k, max(1, logits.shape[1] - 1))  # top-k over all classes would always be 1.0
        pred = logits.argmax(1)
        classes = self.meta["classes"]
        labels = list(range(len(classes)))
        p, r, f1, support = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
        return {
            "samples": len(y),
            "loss": F.cross_entropy(logits, y).item(),
            "accuracy": (pred == y).float().mean().item(),
            f"top{k}_accuracy": (logits.topk(k, 1).indices == y[:, None]).any(1).float().mean().item(),
            "macro_f1": float(np.mean(f1)),
            "per_class": [{"class": c, "precision": float(p[i]), "recall": float(r[i]), "f1": float(f1[i]),
                           "support": int(support[i])} for i, c in enumerate(classes)],
            "confusion": confusion_matrix(y, pred, labels=labels).tolist(),
            **self.robust_metrics(model, split, device),
        }

    def baseline(self, train, test) -> dict:
        """A random forest on the raw pixels of the same training split, scored on the same test split."""
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.metrics import f1_score

        from ..data.stream import materialize

        x, y = train[0], train[1].numpy()
        cap = self.cfg.eval.baseline_samples
        if cap and len(x) > cap:
            pick = np.random.default_rng(self.cfg.seed).choice(len(x), cap, replace=False)
            x, y = x[pick], y[pick]
        x = materialize(x)
        x = x.reshape(len(x), -1).numpy()
        t0 = time.perf_counter()
        forest = RandomForestClassifier(n_estimators=100, n_jobs=-1, random_state=self.cfg.seed).fit(x, y)
        test_x = materialize(test[0])
        pred = forest.predict(test_x.reshape(len(test_x), -1).numpy())
        yt = test[1].numpy()
        return {"model": "random forest (100 trees, raw pixels)", "train_samples": len(x),
                "accuracy": float((pred == yt).mean()), "macro_f1": float(f1_score(yt, pred, average="macro")),
                "seconds": round(time.perf_counter() - t0, 2)}

    def after_epoch(self, run, model: nn.Module, epoch: int, device: torch.device) -> None:
        """Keep the weights of epochs 1, 2, 4, 8, ... in RUN/snapshots/ (for `deepworks represent`): a handful of
        files however long the run, early epochs, when representations change most, included."""
        if epoch & (epoch - 1) == 0:
            from ..run import cpu_state_dict

            folder = run.path / "snapshots"
            folder.mkdir(exist_ok=True)
            run.save_weights(cpu_state_dict(model), folder / f"epoch-{epoch}.safetensors")

    def preview(self, prepared: Prepared, per_class: int = 6) -> dict:
        """The classes, the size the model gets, and the first `per_class` training images of each (PNG base64)."""
        from ..inference import png_base64

        x, y = prepared.train  # tensors, or images streamed from files: either gives a batch for a list of indices
        labels, classes = np.asarray(y), self.meta["classes"]
        rows = []
        for c, name in enumerate(classes[:PREVIEW_CLASSES]):
            picked = np.flatnonzero(labels == c)[:per_class]
            images = np.asarray(x[torch.from_numpy(picked)]) if len(picked) else []
            rows.append({"class": name, "images": [png_base64(a) for a in images]})
        return {"classes": list(classes), "image_size": self.meta["image_size"], "channels": self.meta["channels"],
                "examples": rows}

    def labelled_examples(self, source: str, progress: bool | None = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Every labelled image of another source (its splits together), prepared as this model expects."""
        images = self.load(source, progress)
        classes = self.meta["classes"]
        unknown = [c for c in images.classes if c not in classes]
        if unknown:
            raise DataError(f"'{source}' has class(es) {unknown} that the model was not trained on. "
                            f"It knows: {', '.join(classes)}.")
        parts = [(a, b) for a, b in ((images.x, images.y), (images.x_val, images.y_val), (images.x_test, images.y_test))
                 if a is not None]
        x = np.concatenate([set_channels(resize(a, self.meta["image_size"]), self.meta["channels"]) for a, _ in parts])
        remap = np.array([classes.index(c) for c in images.classes])
        y = np.concatenate([remap[b] for _, b in parts])
        return torch.from_numpy(x), torch.from_numpy(y)
