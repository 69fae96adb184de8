"""GANs: a generator turns noise into images, a discriminator tells them from real ones, and each learns from the other.

Data: any image source the image task reads (a folder, with or without class sub-folders; a CSV; an .npz; the
built-ins, and `faces`), resized to the model's size (16, 28, 32, 64 ... px) and scaled to [-1, 1].
Training (`update`, which steps both optimizers through the engine): each batch updates the discriminator on real
and generated images, then the generator through the updated discriminator (every --critic-steps batches
for the Wasserstein loss). The balance watch (gan_balance.py, a callback this recipe adds to training) traces the
losses and D(real) / D(fake) every TRACE_EVERY steps and warns of a discriminator that wins outright, losses that
run away, samples that all look alike.
Metrics per epoch: FID on the features of a classifier of the same data (see fid.py), from a fixed set of noise,
and sample diversity; the final FID uses --fid-samples images. The same fixed noise is drawn as a grid at a
few epochs, so the report shows the images form.
Use (gan_face.py): `sample` (a grid, with a seed, a class when conditional) and `interpolate` (a strip between two
points of the noise space). The report: gan_report.py.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import Config, fill_defaults
from ..data import BUILTINS, load_image_source
from ..data.images import IMAGE_EXTENSIONS, ImageSet, decode_many, find_image_files, image_files, unreadable_message, visible_children
from ..data.decode import UnreadableImage, probe_image
from ..errors import ConfigError, DataError
from ..metrics.fid import (Features, class_diversities, class_entropy_score, diversity, frechet_distance, statistics,
                           to_uint8, to_unit)
from ..models import evaluating
from ..models.dcgan import GAN, Discriminator, Generator, layout
from ..models.diffaugment import diff_augment, parse_policy
from ..report import save_image_grid
from .base import Prepared, Task
from ..registry import builtin_defaults, builtin_models
from ..data.arrays import DataWarning, resize, stratified_split
from ..data.decode import set_channels
from .gan_balance import GanBalance, GanWarning, scores_are_probabilities  # noqa: F401 (GanWarning: importable here)
from .gan_face import GRID, GRID_CLASSES, GRID_COLS, GanFace, grid_labels, noise
from .gan_report import GanReport
from .image import check_image_meta

RECIPE = 2  # in the checkpoint: 2 since the conditional recipe (conditional batch norm, DiffAugment)
EVAL_SEED = 12345  # the noise FID is measured on, the same every epoch
VAL_IMAGES = 2000  # real and generated images for the per-epoch FID (the final one uses --fid-samples)
SIZES = (16, 28, 32, 64)


def default_size(native: int) -> int:
    """The native size when a DCGAN can make it, else the next size up from SIZES (at most 64)."""
    try:
        layout(native)
        return native
    except ValueError:
        return next((s for s in SIZES if s >= native), SIZES[-1])


def read_image_folder(root: Path, size: int, channels: int | None, strict: bool, progress: bool) -> ImageSet:
    """A folder of images with no class sub-folders (or only one): every image, in sorted path order, unlabelled."""
    files, broken = find_image_files(root)
    if not files:
        raise DataError(f"No images found in '{root}' or its sub-folders. Pass a folder of .jpg/.png images, a "
                        f"folder with one sub-folder per class, or a built-in dataset: {', '.join(BUILTINS + ('faces',))}.")
    if broken and strict:
        raise DataError(unreadable_message(broken, strict=True))
    x, ok, skipped = decode_many(files, size, channels, strict, progress)
    return ImageSet(x, np.zeros(len(x), dtype=np.int64), [], skipped=broken + skipped,
                    names={"train": [str(files[i]) for i in ok]},
                    description=f"folder '{root}' ({len(files)} images, no classes)")


def survey(files: list[Path]) -> dict[tuple, int]:
    """How many images of each ((width, height), mode), from the file headers (nothing is decoded). Unusable files
    are left out here: decoding skips them with a warning that names them."""
    kinds: dict[tuple, int] = {}
    for p in files:
        try:
            key = probe_image(p)
        except UnreadableImage:
            continue
        kinds[key] = kinds.get(key, 0) + 1
    return kinds


def mixed_note(kinds: dict[tuple, int]) -> str | None:
    """A note when the images differ in size or colour mode (they are all converted to one)."""
    if len(kinds) < 2:
        return None
    shown = ", ".join(f"{n} x {w}x{h} {mode}" for ((w, h), mode), n in sorted(kinds.items(), key=lambda kv: -kv[1])[:4])
    return (f"The images differ in size or colour mode ({shown}{', ...' if len(kinds) > 4 else ''}); all were "
            f"converted to one size and mode.")


class GanTraining(Task):
    name = "gan"
    models = builtin_models("gan")
    defaults = builtin_defaults("gan")
    default_monitor = "val_fid"
    learning_curve = "val_fid"  # two adversaries' losses need not fall as they learn: D's gains raise G's loss
    headline = "fid"
    unit = ("img", 1)
    counted = ("images", "generated images")
    face_class, report_class = GanFace, GanReport

    def __init__(self, cfg: Config, meta: dict | None = None):
        # The conditional recipe (Miyato & Koyama 2018; Zhao et al. 2020): a projection discriminator with spectral
        # norm, the hinge loss and DiffAugment. With BCE and batch norm, a conditional DCGAN on a few thousand
        # images made one image per class (diversity within classes 0.1 of the real images'). The rates are
        # bench/gan.py's: 6e-4 beat DCGAN's 2e-4 on MNIST; with --conditional the digits varied less per class at it.
        conditional = bool(cfg.model.conditional)
        if meta is not None and "conditioning" not in meta:  # a finished run from before: no DiffAugment then
            fill_defaults(cfg, {"train.diffaugment": "none"})
        fill_defaults(cfg, {"train.lr": 4e-4 if conditional else 6e-4, "model.spectral_norm": conditional,
                            "train.gan_loss": "hinge" if conditional else "bce",
                            "train.diffaugment": "translation+cutout" if conditional else "none"})
        super().__init__(cfg, meta)
        t = cfg.train
        t.critic_steps = t.critic_steps or (5 if t.gan_loss == "wgan-gp" else 1)
        self._features: Features | None = None  # the FID's feature extractor, made once from the data (or a file)
        self._real: dict[tuple, tuple] = {}  # reference statistics, by the split tensor's storage and length
        # What the update itself carries from step to step (checkpointed by state_dict): the optimizer steps of D so
        # far, which decide when G steps (--critic-steps), and G's latest loss, which the steps between report.
        self.steps, self.last_g = 0, torch.zeros(())
        self.latest: dict[str, torch.Tensor] = {}  # the last step's losses and D(x), which GanBalance traces
        self.least_varied: tuple[int, float] | None = None  # the last evaluation's least varied class, for GanBalance

    @classmethod
    def monitor_mode(cls, metric: str | None) -> str:
        return "max" if metric and metric.endswith(("class_entropy", "diversity", "accuracy")) else "min"

    check_meta = staticmethod(check_image_meta)

    # --- data -------------------------------------------------------------------------
    def load(self, source: str, progress: bool | None) -> tuple[ImageSet, list[str]]:
        d = self.cfg.data
        size = d.image_size or 32  # decoded files (CSV); arrays keep their size and are resized below
        path = Path(source)
        notes = []
        if path.is_dir():
            kinds = survey(image_files(path))
            if kinds and not d.image_size:  # the commonest side, as a size the DCGAN can make
                common = max(kinds.items(), key=lambda kv: (kv[1], max(kv[0][0])))[0][0]
                size = default_size(min(max(common), 64))
            children = [p for p in visible_children(path) if p.is_dir()]
            loose = [p for p in visible_children(path) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
            if len(children) >= 2 and not loose:
                images = load_image_source(source, size, d.channels, d.data_dir, d.download, d.strict, progress is not False)
            else:
                images = read_image_folder(path, size, d.channels, d.strict, progress is not False)
            note = mixed_note(kinds)
            if note:
                notes.append(note)
        else:
            images = load_image_source(source, size, d.channels, d.data_dir, d.download, d.strict, progress is not False)
        if images.skipped:
            message = unreadable_message(images.skipped)
            warnings.warn(message, DataWarning, stacklevel=2)
            notes.append(message)
        return images, notes

    def prepare(self, progress: bool | None = True) -> Prepared:
        d, m, t = self.cfg.data, self.cfg.model, self.cfg.train
        if self.cfg.eval.fid_model:  # a bad extractor file should stop the run now, not after the first epoch
            self._features = Features.from_file(self.cfg.eval.fid_model)
        images, notes = self.load(d.source, progress)
        size = d.image_size or default_size(max(images.x.shape[-2:]))
        try:
            layout(size)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        channels = d.channels or images.x.shape[1]

        def fix(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(set_channels(resize(a, size), channels)))

        x, y = fix(images.x), torch.from_numpy(images.y.astype(np.int64))
        labelled = len(images.classes) >= 2
        if m.conditional and not labelled:
            raise DataError(f"--conditional needs class labels, and {images.description} has none. Put the images of "
                            f"each class in a sub-folder named after it (like faces/alice/1.jpg), or drop --conditional.")
        self.progress = progress
        if images.x_test is not None:  # the FID's real side: the test split where there is one
            ref_x, ref_y, ref_name = fix(images.x_test), torch.from_numpy(images.y_test.astype(np.int64)), "test"
        elif (self.meta or {}).get("fid_reference") == "train" or d.test_fraction == 0:  # (or a run from before)
            ref_x, ref_y, ref_name = x, y, "train"
        else:  # real images the generator never sees, so that real-against-real FID is a fair yardstick
            keep, held = stratified_split(y.numpy(), d.test_fraction, self.cfg.seed)
            ref_x, ref_y, ref_name = x[held], y[held], "held-out"
            x, y = x[keep], y[keep]
            notes.append(f"The data has no test split, so {len(held):,} images ({d.test_fraction:.0%}, --test-fraction) "
                         f"were held out as the FID's real reference; the generator trained on the other {len(keep):,}.")
        if len(x) < t.batch_size:
            raise DataError(f"{images.description} has {len(x)} image(s) to train on, fewer than one batch of "
                            f"--batch-size {t.batch_size}. Add images, or lower --batch-size to "
                            f"{max(2, len(x) // 4)} or less.")
        if len(ref_x) < 2:
            raise DataError(f"{images.description} leaves {len(ref_x)} real image(s) to measure the generator against. "
                            f"Add images, or raise --test-fraction.")
        rng = np.random.default_rng(self.cfg.seed)
        order = torch.from_numpy(rng.permutation(len(ref_x)))
        val_idx, test_idx = order[:VAL_IMAGES], order[:self.cfg.eval.fid_samples]
        if self.meta is None:
            self.meta = {"classes": images.classes, "labelled": labelled, "channels": int(channels),
                         "image_size": int(size), "source": images.description, "fid_reference": ref_name,
                         "train_images": len(x), "conditioning": "batchnorm"}
        d.image_size, d.channels = int(size), int(channels)
        self._train_images = (x, y if labelled else None)
        return Prepared(train=(x, y), val=(ref_x[val_idx], ref_y[val_idx]), test=(ref_x[test_idx], ref_y[test_idx]),
                        meta=self.meta, notes=notes)

    # --- model ----------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        m, t, meta = self.cfg.model, self.cfg.train, self.meta
        classes = len(meta["classes"]) if m.conditional else 0
        norm = "spectral" if m.spectral_norm else ("none" if t.gan_loss == "wgan-gp" else "batch")
        width = m.width or 64
        conditioning = meta.get("conditioning", "concat")  # runs from before the conditional recipe: concat
        return GAN(Generator(m.latent_size, meta["channels"], meta["image_size"], width, classes, conditioning),
                   Discriminator(meta["channels"], meta["image_size"], width, classes, norm))

    def optimizers(self, model: GAN) -> list[torch.optim.Optimizer]:
        """The generator's at --lr, the discriminator's at --lr-d (the two time-scale rule when they differ)."""
        from ..training.loop import make_optimizer

        t = self.cfg.train
        return [make_optimizer(model.generator.parameters(), t), make_optimizer(model.discriminator.parameters(), t,
                                                                               t.lr_d or t.lr)]

    # --- training -------------------------------------------------------------------------
    def update(self, model: GAN, batch, optimizers, engine) -> tuple[torch.Tensor, dict]:
        """One step of the discriminator, and of the generator every --critic-steps, each through the engine (which
        gives both networks mixed precision on a GPU and averaged gradients across processes). With --diffaugment,
        D sees every image, real or generated, through the same kind of random change (models/diffaugment.py)."""
        t = self.cfg.train
        G, D = model.generator, model.discriminator
        opt_g, opt_d = optimizers
        real = to_unit(batch[0])
        y = batch[1] if self.cfg.model.conditional else None
        n = len(real)
        policy = parse_policy(t.diffaugment)

        def judge(images: torch.Tensor) -> torch.Tensor:
            return D(diff_augment(images, policy) if policy else images, y).float()

        with engine.autocast():
            fake = G(torch.randn(n, self.cfg.model.latent_size, device=real.device), y)
            d_real, d_fake = judge(real), judge(fake.detach())
            d_loss = discriminator_loss(t.gan_loss, d_real, d_fake, t.label_smoothing)
            if t.gan_loss == "wgan-gp":
                penalty = gradient_penalty(lambda images, labels: judge(images), real, fake.detach(), y,
                                           engine.input_gradients)
                d_loss = d_loss + t.gp_weight * penalty
        engine.optimizer_step(opt_d, d_loss, t.clip_grad)
        self.steps += 1
        if self.steps % t.critic_steps == 0:
            D.requires_grad_(False)  # the generator's step needs gradients through D, not for D's weights
            with engine.autocast():
                g_loss = generator_loss(t.gan_loss, judge(fake))
            engine.optimizer_step(opt_g, g_loss, t.clip_grad)
            D.requires_grad_(True)
            self.last_g = g_loss.detach()
        if scores_are_probabilities(self.cfg):
            dr, df = torch.sigmoid(d_real.detach()).mean(), torch.sigmoid(d_fake.detach()).mean()
        else:
            dr, df = d_real.detach().mean(), d_fake.detach().mean()
        d_loss, g_loss = d_loss.detach(), self.last_g.to(d_loss.device)
        self.latest = {"d_loss": d_loss, "g_loss": g_loss, "d_real": dr, "d_fake": df}
        stats = {"d_loss": d_loss * n, "g_loss": g_loss * n, "d_real": dr * n, "d_fake": df * n}
        return d_loss + g_loss, stats

    def callbacks(self) -> list:
        """The balance watch (gan_balance.py), whose trace and warnings the checkpoint keeps."""
        return [GanBalance(self.cfg)]

    def state_dict(self) -> dict:
        return {"steps": self.steps, "last_g": float(self.last_g), "recipe": RECIPE}

    def before_resume(self, checkpoint: dict) -> None:
        """A run interrupted before the conditional recipe: its generator took the class beside the noise, and it
        trained without DiffAugment (its config.yaml has no such setting, which the defaults would have filled)."""
        if "recipe" not in (checkpoint.get("task") or {}):
            self.meta["conditioning"], self.cfg.train.diffaugment = "concat", "none"

    def load_state_dict(self, state: dict) -> None:
        self.steps, self.last_g = state["steps"], torch.tensor(state["last_g"])

    # --- measuring --------------------------------------------------------------------------
    def features(self) -> Features:
        if self._features is None and not hasattr(self, "_train_images"):
            self.prepare(progress=False)  # the FID classifier learns from (or is cached for) the training images
        if self._features is None:
            if self.cfg.eval.fid_model:
                self._features = Features.from_file(self.cfg.eval.fid_model)
            else:
                x, y = self._train_images
                self._features = Features.trained_on(x, y, self.meta["source"], getattr(self, "progress", False))
        return self._features

    def real_statistics(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> tuple:
        """(mean and covariance, diversity, {class: diversity}) of real images' features, cached per image set."""
        key = (images.data_ptr(), len(images))
        if key not in self._real:
            feats, _ = self.features()(images)
            self._real[key] = (statistics(feats), diversity(feats), class_diversities(feats, labels))
        return self._real[key]

    @torch.no_grad()
    def generate(self, model: GAN, n: int, seed: int, device: torch.device, labels: torch.Tensor | None = None,
                 batch_size: int = 500) -> torch.Tensor:
        """n images as uint8 (N, C, H, W) from seeded noise; the same seed gives the same images."""
        z = noise(n, self.cfg.model.latent_size, torch.Generator().manual_seed(seed))
        with evaluating(model):
            out = [to_uint8(model.generator(z[i:i + batch_size].to(device),
                                            None if labels is None else labels[i:i + batch_size].to(device))).cpu()
                   for i in range(0, n, batch_size)]
        return torch.cat(out)

    def evaluate(self, model: GAN, split, device: torch.device) -> dict:
        """FID, diversity (relative to the real images) and, with class labels, the class-entropy score."""
        real, labels = split
        if len(real) < 2:
            return {}
        conditional = self.cfg.model.conditional
        real_stats, real_div, real_by_class = self.real_statistics(real, labels if conditional else None)
        fake = self.generate(model, len(real), EVAL_SEED, device, labels if conditional else None)
        feats, probs = self.features()(fake)
        out = {"fid": frechet_distance(statistics(feats), real_stats), "diversity": diversity(feats) / max(real_div, 1e-12)}
        if probs is not None and self.meta["labelled"]:
            out["class_entropy"] = class_entropy_score(probs)
            if conditional:  # what a user asking for a class cares about: is it that class?
                out["class_accuracy"] = float((probs.argmax(1) == np.asarray(labels)).mean())
        if conditional:  # a generator can collapse within each class while the classes together look varied
            within = {c: d / max(real_by_class[c], 1e-12)
                      for c, d in class_diversities(feats, labels).items() if real_by_class.get(c)}
            if within:
                out["class_diversity"] = float(np.mean(list(within.values())))
                self.least_varied = min(within.items(), key=lambda kv: kv[1])
        return out

    def after_epoch(self, run, model: GAN, epoch: int, device: torch.device) -> None:
        """Draw the fixed noise at a few epochs (the balance watch, GanBalance, logs the trace and its warnings)."""
        if epoch in self.grid_epochs():
            run.report_dir.mkdir(exist_ok=True)
            cols = GRID_COLS if self.cfg.model.conditional else None
            save_image_grid(self.fixed_grid(model, device), run.report_dir / f"epoch-{epoch:03d}.png", cols=cols)

    def grid_epochs(self) -> set[int]:
        epochs = self.cfg.train.epochs
        return {int(e) for e in np.linspace(1, epochs, min(epochs, 8)).round()}

    def fixed_grid(self, model: GAN, device: torch.device) -> torch.Tensor:
        """GRID images of the fixed noise; for a conditional run, a row of GRID_COLS per class (the first
        GRID_CLASSES classes), so that the report shows each class forming, and whether its samples vary."""
        if not self.cfg.model.conditional:
            return self.generate(model, GRID, self.cfg.seed, device)
        labels = torch.arange(min(len(self.meta["classes"]), GRID_CLASSES)).repeat_interleave(GRID_COLS)
        return self.generate(model, len(labels), self.cfg.seed, device, labels)

    def labelled_examples(self, source: str, progress: bool | None = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Real images from another source, at the run's size and channels, to measure the generator against."""
        images, _ = self.load(source, progress)
        x = set_channels(resize(images.x, self.meta["image_size"]), self.meta["channels"])
        return torch.from_numpy(np.ascontiguousarray(x)), grid_labels(len(x), self.meta["classes"])

    # --- after training -------------------------------------------------------------------
    def test_metrics(self, model: GAN, split, device: torch.device) -> dict:
        return {"images": len(split[0]), **self.evaluate(model, split, device),
                "fid_features": self.features().name, "fid_reference": self.meta["fid_reference"]}


def discriminator_loss(kind: str, d_real: torch.Tensor, d_fake: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """bce: real -> 1 (1 - smoothing), fake -> 0; hinge: real above 1, fake below -1; wgan-gp: fake minus real (its
    gradient penalty is added by the caller)."""
    if kind == "wgan-gp":
        return d_fake.mean() - d_real.mean()
    if kind == "hinge":
        return F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()
    return (F.binary_cross_entropy_with_logits(d_real, torch.full_like(d_real, 1.0 - smoothing))
            + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))


def generator_loss(kind: str, score: torch.Tensor) -> torch.Tensor:
    """The non-saturating loss for bce; minus the mean score for hinge and wgan-gp."""
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(score, torch.ones_like(score))
    return -score.mean()


def input_gradients(output: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    grad, = torch.autograd.grad(output.sum(), inputs, create_graph=True)
    return grad


def gradient_penalty(D: nn.Module, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None,
                     gradients=input_gradients) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): (||grad D(x)|| - 1)^2 at random points between real and fake images.
    `gradients` is the engine's (it unscales them under float16)."""
    alpha = torch.rand(len(real), 1, 1, 1, device=real.device)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    grad = gradients(D(mixed, y).float(), mixed)
    return ((grad.float().flatten(1).norm(dim=1) - 1) ** 2).mean()


