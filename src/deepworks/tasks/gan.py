"""GANs: a generator turns noise into images, a discriminator tells them from real ones, and each learns from the other.

Data: any image source the image task reads (a folder, with or without class sub-folders; a CSV; an .npz; the
built-ins, and `faces`), resized to the model's size (16, 28, 32, 64 ... px) and scaled to [-1, 1].
Training (`update`, which steps both optimizers through the engine): each batch updates the discriminator on real
and generated images, then the generator through the updated discriminator (every --critic-steps batches
for the Wasserstein loss). Every TRACE_EVERY steps the losses and D(real) / D(fake) are traced, and the
balance is checked: a discriminator that wins outright, losses that run away, samples that all look alike.
Metrics per epoch: FID on the features of a classifier of the same data (see fid.py), from a fixed set of noise,
and sample diversity; the final FID uses --fid-samples images. The same fixed noise is drawn as a grid at a
few epochs, so the report shows the images form.
Use: `sample` (a grid, with a seed, a class when conditional) and `interpolate` (a strip between two points of
the noise space).
"""

from __future__ import annotations

import html
import math
import secrets
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import Config
from ..data import BUILTINS, load_image_source
from ..data.images import (IMAGE_EXTENSIONS, ImageSet, UnreadableImage, decode_many, find_image_files, image_files,
                           probe_image, unreadable_message, visible_children)
from ..errors import ConfigError, DataError
from ..metrics.fid import (Features, class_diversities, class_entropy_score, diversity, frechet_distance, statistics, to_uint8,
                   to_unit)
from ..models import count_parameters, evaluating
from ..models.dcgan import GAN, Discriminator, Generator, layout
from ..report import image_tag, plot_history, pyplot, save_figure, save_image_grid, table
from .base import Prepared, Task, notes_block
from ..registry import builtin_models
from ..data.arrays import DataWarning, resize, set_channels, stratified_split
from .image import check_image_meta

TRACE_EVERY = 20  # steps between two points of the loss / D(x) trace
EVIDENCE_STEPS = 500  # optimizer steps before low diversity means collapse rather than a generator still at its start
SHORT_RUN = 1000  # fewer optimizer steps than this: the run is told it is too short to judge
EVAL_SEED = 12345  # the noise FID is measured on, the same every epoch
VAL_IMAGES = 2000  # real and generated images for the per-epoch FID (the final one uses --fid-samples)
GRID = 64  # images in the fixed-noise grids
MAX_SAMPLES = 10_000  # images one `sample` call makes: more is no picture, and 10**8 would fill the memory
SIZES = (16, 28, 32, 64)


class GanWarning(UserWarning):
    """The two networks are out of balance."""


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
    defaults = {"data.source": "digits", "model.name": "dcgan", "model.width": 64, "train.batch_size": 64,
                "train.optimizer": "adam", "train.lr": 2e-4, "train.momentum": 0.5, "train.weight_decay": 0.0,
                "train.schedule": "constant", "train.clip_grad": 0.0, "train.ema": 0.999}
    default_monitor = "val_fid"
    headline = "fid"
    unit = ("img", 1)
    counted = ("images", "generated images")
    use, kind = "sample", "a GAN"

    def __init__(self, cfg: Config, meta: dict | None = None):
        super().__init__(cfg, meta)
        t = cfg.train
        t.critic_steps = t.critic_steps or (5 if t.gan_loss == "wgan-gp" else 1)
        self._features: Features | None = None
        self._real: dict[tuple, tuple] = {}  # reference statistics, by the split tensor's storage and length
        self.steps, self.last_g = 0, torch.zeros(())  # optimizer steps of D so far; G's latest loss
        self.trace: list[dict] = []  # this epoch's trace points, logged at its end
        self.alerts: list[tuple[str, str]] = []  # this epoch's balance warnings, (kind, message)
        self.last_eval: dict = {}

    @classmethod
    def monitor_mode(cls, metric: str | None) -> str:
        return "max" if metric and metric.endswith(("class_entropy", "diversity")) else "min"

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
                         "train_images": len(x)}
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
        return GAN(Generator(m.latent_size, meta["channels"], meta["image_size"], width, classes),
                   Discriminator(meta["channels"], meta["image_size"], width, classes, norm))

    def optimizers(self, model: GAN) -> list[torch.optim.Optimizer]:
        """The generator's at --lr, the discriminator's at --lr-d (the two time-scale rule when they differ)."""
        from ..training.loop import make_optimizer

        t = self.cfg.train
        return [make_optimizer(model.generator.parameters(), t), make_optimizer(model.discriminator.parameters(), t,
                                                                               t.lr_d or t.lr)]

    def noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n noise vectors, drawn 64 at a time so that the first k are the same however many are asked for."""
        chunks = [torch.randn(64, self.cfg.model.latent_size, generator=generator) for _ in range(0, n, 64)]
        return torch.cat(chunks)[:n]

    # --- training -------------------------------------------------------------------------
    def update(self, model: GAN, batch, optimizers, engine) -> tuple[torch.Tensor, dict]:
        """One step of the discriminator, and of the generator every --critic-steps, each through the engine (which
        gives both networks mixed precision on a GPU and averaged gradients across processes)."""
        t = self.cfg.train
        G, D = model.generator, model.discriminator
        opt_g, opt_d = optimizers
        real = to_unit(batch[0])
        y = batch[1] if self.cfg.model.conditional else None
        n = len(real)
        with engine.autocast():
            fake = G(torch.randn(n, self.cfg.model.latent_size, device=real.device), y)
            d_real, d_fake = D(real, y).float(), D(fake.detach(), y).float()
            if t.gan_loss == "wgan-gp":
                penalty = gradient_penalty(D, real, fake.detach(), y, engine.input_gradients)
                d_loss = d_fake.mean() - d_real.mean() + t.gp_weight * penalty
            else:
                d_loss = (F.binary_cross_entropy_with_logits(d_real, torch.full_like(d_real, 1.0 - t.label_smoothing))
                          + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
        engine.optimizer_step(opt_d, d_loss, t.clip_grad)
        self.steps += 1
        if self.steps % t.critic_steps == 0:
            D.requires_grad_(False)  # the generator's step needs gradients through D, not for D's weights
            with engine.autocast():
                score = D(fake, y).float()
                g_loss = -score.mean() if t.gan_loss == "wgan-gp" else F.binary_cross_entropy_with_logits(
                    score, torch.ones_like(score))
            engine.optimizer_step(opt_g, g_loss, t.clip_grad)
            D.requires_grad_(True)
            self.last_g = g_loss.detach()
        if t.gan_loss == "wgan-gp":
            dr, df = d_real.detach().mean(), d_fake.detach().mean()
        else:
            dr, df = torch.sigmoid(d_real.detach()).mean(), torch.sigmoid(d_fake.detach()).mean()
        d_loss, g_loss = d_loss.detach(), self.last_g.to(d_loss.device)
        if self.steps % TRACE_EVERY == 0:
            self.record_trace(float(d_loss), float(g_loss), float(dr), float(df))
        stats = {"d_loss": d_loss * n, "g_loss": g_loss * n, "d_real": dr * n, "d_fake": df * n}
        return d_loss + g_loss, stats

    def record_trace(self, d_loss: float, g_loss: float, d_real: float, d_fake: float) -> None:
        self.trace.append({"step": self.steps, "d_loss": d_loss, "g_loss": g_loss, "d_real": d_real, "d_fake": d_fake})
        self.check_balance()

    def check_balance(self) -> None:
        """Warn once per epoch (each kind) when the last 10 trace points show the networks out of balance."""
        last = self.trace[-10:]
        if len(last) < 10:
            return
        wgan = self.cfg.train.gan_loss == "wgan-gp"
        if not wgan and max(p["d_fake"] for p in last) < 0.05:
            self.alert("winning", f"The discriminator is winning outright: D(fake) stayed below 0.05 for "
                       f"{10 * TRACE_EVERY} steps, so the generator learns little. Try "
                       f"{self.remedies('--label-smoothing 0.1', 'a lower --lr-d', '--spectral-norm')}.")
        total = [abs(p["d_loss"]) + abs(p["g_loss"]) for p in last]
        if total[-1] > 20 and all(b >= a for a, b in zip(total[-5:], total[-4:])):
            self.alert("diverging", f"The losses are running away (D {last[-1]['d_loss']:.3g}, G {last[-1]['g_loss']:.3g} and "
                       f"rising). Try {self.remedies('a lower --lr and --lr-d', '--gan-loss wgan-gp')}.")

    def remedies(self, *options: str) -> str:
        """The options worth trying, less those the run already uses."""
        t, m = self.cfg.train, self.cfg.model
        used = {"--spectral-norm": m.spectral_norm, "--gan-loss wgan-gp": t.gan_loss == "wgan-gp",
                "--label-smoothing 0.1": t.label_smoothing > 0}
        left = [o for o in options if not used.get(o)] or list(options[-1:])
        return ", ".join(left[:-1]) + (" or " if len(left) > 1 else "") + left[-1]

    def alert(self, kind: str, message: str) -> None:
        """Warn (once per epoch and kind): the CLI prints it under the progress bar, the report lists it."""
        if kind not in {k for k, _ in self.alerts}:
            self.alerts.append((kind, message))
            warnings.warn(message, GanWarning, stacklevel=2)

    def start_epoch(self) -> None:
        self.trace, self.alerts = [], []

    def state_dict(self) -> dict:
        return {"steps": self.steps, "last_g": float(self.last_g), "trace": self.trace, "alerts": self.alerts}

    def load_state_dict(self, state: dict) -> None:
        self.steps, self.last_g = state["steps"], torch.tensor(state["last_g"])
        self.trace, self.alerts = list(state["trace"]), [tuple(a) for a in state["alerts"]]

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
        g = torch.Generator().manual_seed(seed)
        z = self.noise(n, g)
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
        if conditional:  # a generator can collapse within each class while the classes together look varied
            within = {c: d / max(real_by_class[c], 1e-12)
                      for c, d in class_diversities(feats, labels).items() if real_by_class.get(c)}
            if within:
                out["class_diversity"] = float(np.mean(list(within.values())))
                self.least_varied = min(within.items(), key=lambda kv: kv[1])
        self.last_eval = out
        return out

    def after_epoch(self, run, model: GAN, epoch: int, device: torch.device) -> None:
        """Log the epoch's trace and warnings, check the samples' diversity, and draw the fixed noise at a few epochs."""
        for point in self.trace:
            run.log(kind="trace", epoch=epoch, **point)
        spread = self.last_eval.get("diversity")
        judged = self.steps >= EVIDENCE_STEPS  # before that, samples alike are a generator still near its start
        if judged and spread is not None and spread < 0.5:
            self.alert("collapse", f"Mode collapse: the samples are {spread:.0%} as varied as the real images (epoch {epoch}), "
                       f"so the generator makes few kinds of image. Try "
                       f"{self.remedies('--spectral-norm', '--gan-loss wgan-gp', 'a lower --lr')}.")
        least = getattr(self, "least_varied", None)
        if judged and least is not None and least[1] < 0.5 and "collapse" not in {k for k, _ in self.alerts}:
            name = self.meta["classes"][least[0]]
            self.alert("class-collapse", f"Mode collapse within a class: the samples of class {name} are {least[1]:.0%} "
                       f"as varied as its real images (epoch {epoch}), so asking for that class gives nearly the same "
                       f"image each time. Try {self.remedies('--spectral-norm', '--gan-loss wgan-gp', 'a lower --lr')}.")
        for kind, message in self.alerts:
            run.log(kind="warning", epoch=epoch, problem=kind, message=message)
        if epoch in self.grid_epochs():
            run.report_dir.mkdir(exist_ok=True)
            save_image_grid(self.fixed_grid(model, device), run.report_dir / f"epoch-{epoch:03d}.png")

    def grid_epochs(self) -> set[int]:
        epochs = self.cfg.train.epochs
        return {int(e) for e in np.linspace(1, epochs, min(epochs, 8)).round()}

    def fixed_grid(self, model: GAN, device: torch.device) -> torch.Tensor:
        labels = self.grid_labels(GRID) if self.cfg.model.conditional else None
        return self.generate(model, GRID, self.cfg.seed, device, labels)

    def grid_labels(self, n: int) -> torch.Tensor:
        """Every class in turn (class 0 for data without classes)."""
        return torch.arange(n) % max(1, len(self.meta["classes"]))

    # --- use ------------------------------------------------------------------------------
    def class_label(self, name: str | int | None) -> int | None:
        """The index of a class named by the user (its name, or its index), for a conditional run."""
        if name is None:
            return None
        classes = self.meta["classes"]
        if not self.cfg.model.conditional:
            raise DataError("This run was trained without --conditional, so it cannot make a chosen class. Train it "
                            "again with --conditional (on data with class sub-folders or a labelled built-in).")
        if str(name) in classes:
            return classes.index(str(name))
        if str(name).isdigit() and int(name) < len(classes):
            return int(name)
        shown = ", ".join(classes[:12]) + (", ..." if len(classes) > 12 else "")
        raise DataError(f"Unknown class '{name}'. This run knows {len(classes)} classes: {shown}.")

    def sample(self, model: GAN, n: int, seed: int, device: torch.device, label: str | int | None = None) -> torch.Tensor:
        """n new images, uint8 (N, C, H, W); with a conditional run, of class `label` (else of every class in turn)."""
        options = self.check_use({"n": n, "seed": seed, "label": label})
        results = self.infer(self.serving_model(model), self.decode_inputs(None, options), device, options)
        return torch.from_numpy(np.stack([r["image"] for r in results]))

    # --- use: the inference face (inference.py) -------------------------------------------
    batchable = True
    max_items = MAX_SAMPLES

    @property
    def use_options(self) -> dict:
        from ..inference import Option

        return {"n": Option(int, 16, 1, MAX_SAMPLES, "how many images to make"),
                "seed": Option(int, None, 0, 2 ** 63 - 1, "the same seed makes the same images (default: random)"),
                "label": Option(str, None, help="the class to make, by name or index (conditional runs)")}

    def check_use(self, options: dict) -> dict:
        from ..inference import check_options

        return check_options(self.use_options, options, "sample")

    def decode_inputs(self, inputs, options: dict, trusted: bool = True) -> list:
        """Nothing (n images from noise drawn with `seed`), or noise vectors of your own, (latent,) or (N, latent)
        (a walk through the noise space): [(noise, class index or None, seed or None)]."""
        index = self.class_label(options["label"])
        latent = self.cfg.model.latent_size
        given = None
        if isinstance(inputs, dict):  # the Open Inference Protocol's named tensors
            inputs, given = inputs.get("noise"), inputs.get("labels")
        if inputs is None:
            seed = secrets.randbits(31) if options["seed"] is None else options["seed"]
            n = options["n"]
            z = self.noise(n, torch.Generator().manual_seed(seed))
        else:
            seed = None
            z = torch.as_tensor(np.asarray(inputs.detach().cpu() if torch.is_tensor(inputs) else inputs, dtype=np.float32))
            z = z[None] if z.ndim == 1 else z
            if z.ndim != 2 or z.shape[1] != latent or not len(z):
                raise DataError(f"sample: noise must have shape (N, {latent}) or ({latent},). Received: "
                                f"{tuple(z.shape)}.")
            if len(z) > MAX_SAMPLES:
                raise DataError(f"sample: at most {MAX_SAMPLES:,} noise vectors in one call. Received: {len(z):,}.")
            if not torch.isfinite(z).all():
                raise DataError("sample: noise must be finite numbers. Received: NaN or infinity.")
        labels = [None] * len(z)
        if self.cfg.model.conditional:
            labels = ([index] * len(z) if index is not None else self.grid_labels(len(z)).tolist())
            if given is not None:
                labels = [self.class_label(str(int(c))) for c in np.asarray(given).reshape(-1)]
                if len(labels) != len(z):
                    raise DataError(f"sample: {len(labels)} labels for {len(z)} noise vectors. Expected one each.")
        return [(row, y, seed) for row, y in zip(z, labels)]

    def example_request(self) -> tuple:
        return None, {"n": 1, "seed": 0}

    def as_png(self, results: list) -> bytes:
        import io

        buffer = io.BytesIO()
        save_image_grid(torch.from_numpy(np.stack([r["image"] for r in results])), buffer)
        return buffer.getvalue()

    def serving_model(self, model: GAN) -> nn.Module:
        from ..models.dcgan import GeneratorServing

        return GeneratorServing(model.generator).eval()

    @torch.inference_mode()
    def infer(self, model, items: list, device: torch.device, options: dict, batch_size: int = 500) -> list:
        """{'image': uint8 (C, H, W), 'seed', 'class'} per noise vector."""
        z = torch.stack([row for row, _, _ in items])
        conditional = self.cfg.model.conditional
        y = torch.tensor([label for _, label, _ in items]) if conditional else None
        parts = []
        for i in range(0, len(z), batch_size):
            inputs = (z[i:i + batch_size].to(device),) + ((y[i:i + batch_size].to(device),) if conditional else ())
            parts.append(np.asarray(torch.as_tensor(model(*inputs)).cpu()))
        images = np.concatenate(parts).transpose(0, 3, 1, 2)
        classes = self.meta["classes"]
        return [{"image": image, "seed": seed, "class": classes[label] if label is not None else None}
                for image, (_, label, seed) in zip(images, items)]

    def encode_result(self, result: dict, options: dict) -> dict:
        from ..inference import png_base64

        return {"image_png_base64": png_base64(result["image"]), "seed": result["seed"], "class": result["class"]}

    def export_graphs(self, model: GAN) -> list:
        from ..inference import Graph

        conditional = self.cfg.model.conditional

        def example(n: int) -> tuple:
            z = torch.randn(n, self.cfg.model.latent_size, generator=torch.Generator().manual_seed(n))
            return (z, torch.arange(n) % len(self.meta["classes"])) if conditional else (z,)

        names = ["noise", "labels"] if conditional else ["noise"]
        return [Graph("generator", self.serving_model(model), example(2), example(3), names, ["images"],
                      {k: {0: "batch"} for k in names + ["images"]},
                      "noise (N, latent) from a standard normal [and class indices (N,)] in, uint8 images (N, H, W, C) out")]

    def card(self) -> dict:
        m = self.meta
        return {"classes": m["classes"], "conditional": bool(self.cfg.model.conditional),
                "latent_size": self.cfg.model.latent_size,
                "outputs": [{"name": "images", "dtype": "uint8", "shape": [None, m["image_size"], m["image_size"],
                                                                          m["channels"]], "layout": "NHWC"}]}

    def v2_inputs(self) -> list[dict]:
        inputs = [{"name": "noise", "datatype": "FP32", "shape": [-1, self.cfg.model.latent_size]}]
        return inputs + ([{"name": "labels", "datatype": "INT64", "shape": [-1]}] if self.cfg.model.conditional else [])

    def v2_outputs(self, results: list) -> dict:
        return {"images": np.stack([r["image"] for r in results]).transpose(0, 2, 3, 1)}

    @torch.no_grad()
    def interpolate(self, model: GAN, steps: int, seed: int, device: torch.device,
                    label: str | int | None = None) -> torch.Tensor:
        """`steps` images on the great circle between two seeded noise vectors (spherical interpolation, which
        keeps every point as likely under the Gaussian as the ends)."""
        if not 2 <= steps <= MAX_SAMPLES:
            raise DataError(f"An interpolation needs from 2 to {MAX_SAMPLES:,} steps. Received: {steps:,}.")
        a, b = self.noise(2, torch.Generator().manual_seed(seed))
        omega = torch.arccos(torch.clamp((a / a.norm()) @ (b / b.norm()), -1.0, 1.0))
        t = torch.linspace(0, 1, steps)[:, None]
        z = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)
        index = self.class_label(label)
        y = None
        if self.cfg.model.conditional:
            y = torch.full((steps,), index if index is not None else 0, device=device)
        with evaluating(model):
            return to_uint8(model.generator(z.to(device), y)).cpu()

    def labelled_examples(self, source: str, progress: bool | None = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Real images from another source, at the run's size and channels, to measure the generator against."""
        images, _ = self.load(source, progress)
        x = set_channels(resize(images.x, self.meta["image_size"]), self.meta["channels"])
        return torch.from_numpy(np.ascontiguousarray(x)), self.grid_labels(len(x))

    # --- after training -------------------------------------------------------------------
    def test_metrics(self, model: GAN, split, device: torch.device) -> dict:
        return {"images": len(split[0]), **self.evaluate(model, split, device),
                "fid_features": self.features().name, "fid_reference": self.meta["fid_reference"]}

    def real_baseline(self, data: Prepared) -> dict | None:
        """FID of as many real training images against the same real reference: what a perfect generator would
        score with this many images (FID has a floor above 0 that grows as the sets shrink). None when the
        reference is the training set itself (--test-fraction 0), where the answer would be 0 by construction."""
        if self.meta["fid_reference"] == "train":
            return None
        x, y = data.train
        n = min(len(x), len(data.test[0]))
        pick = torch.from_numpy(np.random.default_rng(self.cfg.seed + 1).choice(len(x), n, replace=False))
        real_stats, real_div, _ = self.real_statistics(data.test[0])
        feats, probs = self.features()(x[pick])
        out = {"model": f"{n:,} real training images", "fid": frechet_distance(statistics(feats), real_stats),
               "diversity": diversity(feats) / max(real_div, 1e-12)}
        if probs is not None and self.meta["labelled"]:
            out["class_entropy"] = class_entropy_score(probs)
        return out

    def short_run_warning(self, data: Prepared) -> str | None:
        """A run of few optimizer steps cannot be judged yet; say how many epochs would give a first look."""
        if self.steps >= SHORT_RUN:
            return None
        from ..training.loop import steps_per_epoch

        per_epoch = steps_per_epoch(len(data.train[0]), self.cfg.train.batch_size)
        epochs = math.ceil(2 * SHORT_RUN / per_epoch)
        return (f"Only {self.steps:,} optimizer steps ran: a GAN needs thousands before its images look like the data, "
                f"so these images and scores say little yet. Train longer: --epochs {epochs} gives about "
                f"{epochs * per_epoch:,} steps.")

    def test_results(self, run, model: GAN, data: Prepared, device: torch.device) -> dict:
        test = self.test_metrics(model, data.test, device)
        short = self.short_run_warning(data)
        out = run.report_dir
        out.mkdir(exist_ok=True)
        save_image_grid(self.sample(model, GRID, self.cfg.seed, device), out / "samples.png", scale=2)
        save_image_grid(self.interpolate(model, 10, self.cfg.seed, device), out / "interpolation.png", cols=10, scale=2)
        return {"test": test, "baseline": self.real_baseline(data),
                "parameters_each": {"generator": count_parameters(model.generator),
                                    "discriminator": count_parameters(model.discriminator)},
                "warnings": [short] * bool(short) + [r["message"] for r in run.metrics() if r.get("kind") == "warning"]}

    def split_sizes(self, data: Prepared) -> dict:
        return {"train": len(data.train[0]), "fid_reference": len(data.test[0])}

    def logged_test(self, results: dict) -> dict:
        baseline = results["baseline"]
        return {**{k: v for k, v in results["test"].items() if k not in ("fid_features", "fid_reference")},
                "baseline_fid": baseline["fid"] if baseline else None}

    def report_sections(self, run, model: GAN, data: Prepared, results: dict, device) -> list[tuple[str, str]]:
        out = run.report_dir
        records = run.metrics()
        balance = plot_balance(records, out / "balance.png", self.cfg.train.gan_loss == "wgan-gp")
        metrics = ("diversity", "class_entropy") if self.meta["labelled"] else ("diversity",)
        curves = plot_history(records, out / "curves.png", "fid", *metrics,
                              titles={"loss": "D + G loss", "fid": "FID (lower is better)",
                                      "diversity": "Diversity (generated / real)", "class_entropy": "Class-entropy score"})
        grids = sorted(out.glob("epoch-*.png"))
        progress = "".join(f"<figure style='display:inline-block;margin:4px'>{image_tag(p, p.stem)}"
                           f"<figcaption>{p.stem.replace('-', ' ')}</figcaption></figure>" for p in grids)
        test, base, fit = results["test"], results["baseline"], results["fit"]
        row = {"model": f"{self.describe_model()} generator", "FID": test.get("fid"),
               "diversity": test.get("diversity")}
        base_row = ({"model": base["model"], "FID": base["fid"], "diversity": base["diversity"]} if base else
                    {"model": "real images: none held out (--test-fraction 0)", "FID": "", "diversity": ""})
        if "class_entropy" in test:
            row["class entropy"], base_row["class entropy"] = test["class_entropy"], (base or {}).get("class_entropy", "")
        if "class_diversity" in test:
            row["diversity within classes"], base_row["diversity within classes"] = test["class_diversity"], ""
        warned = results["warnings"]
        notes = notes_block(data.notes)
        best = fit["best_value"]
        return [
            ("Result", table([row, base_row]) + f"<p>FID on {test['images']:,} generated and {test['images']:,} real "
             f"{self.meta['fid_reference']} images: the distance between the two clouds of features, lower is better. "
             f"The real-image row is what a perfect generator would score with as many images: FID has a floor above "
             f"0 that rises as the sets get smaller. Features: {html.escape(test['fid_features'])}."
             f" Diversity: how far apart two samples are, relative to two real images (well below 1: mode collapse);"
             f" within classes, the same for samples asked for one class."
             f" {fit['epochs']} epochs; best validation {fit['monitor']} {best if best is None else round(best, 3)} at "
             f"epoch {fit['best_epoch']}, whose weights were kept.</p>"),
            ("New images", image_tag(out / "samples.png", "samples") + "<p>A walk through the noise space between two "
             "points (spherical interpolation):</p>" + image_tag(out / "interpolation.png", "interpolation")),
            ("The images forming", "<p>The same fixed noise, decoded by the generator at several epochs.</p>" + progress),
            ("Balance of the two networks", (
                "".join(f"<pre class='note'>{html.escape(w)}</pre>" for w in warned) if warned else
                "<p>No balance warnings: the discriminator never won outright, the losses did not run away, and the "
                "samples stayed varied.</p>") + image_tag(balance, "losses and D(x) over training steps")
             + "<p>D(real) and D(fake) are the discriminator's mean probability that an image is real (for wgan-gp: "
               "its raw critic scores). A healthy run keeps them apart but not at 1 and 0.</p>"),
            ("FID and diversity per epoch", image_tag(curves, "FID and diversity per epoch")),
            ("Data", f"<p>{html.escape(self.meta['source'])}</p>" + table([results["splits"]]) + notes),
        ]

    # --- what the CLI prints ----------------------------------------------------------------
    def describe_model(self) -> str:
        m = self.cfg.model
        extras = [x for x, on in (("conditional", m.conditional), ("spectral norm", m.spectral_norm),
                                  ("wgan-gp", self.cfg.train.gan_loss == "wgan-gp")) if on]
        return "dcgan" + (f" ({', '.join(extras)})" if extras else "")

    def summary(self, results: dict) -> list[tuple[str, str]]:
        test, base, splits = results["test"], results["baseline"], results["splits"]
        lines = [("data", f"{self.meta['source']}; {splits['train']:,} training images at "
                          f"{self.meta['image_size']} px"),
                 self.model_line(results),
                 ("test", "  ".join(self.describe_metrics(test)))]
        if base:
            lines.append(("real", f"FID {base['fid']:.2f} for {base['model']} against the same "
                                  f"{self.meta['fid_reference']} images (a perfect generator's score)"))
        lines += [("warning", w) for w in results["warnings"][:3]]
        return lines

    @staticmethod
    def describe_metrics(metrics: dict) -> list[str]:
        parts = [f"FID {metrics['fid']:.2f}", f"diversity {metrics['diversity']:.2f}"]
        if "class_entropy" in metrics:
            parts.append(f"class entropy {metrics['class_entropy']:.2f}")
        if "class_diversity" in metrics:
            parts.append(f"diversity within classes {metrics['class_diversity']:.2f}")
        return ["  ".join(parts)]


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


def plot_balance(records: list[dict], path: Path, wgan: bool) -> Path | None:
    """Both losses, and D(real) / D(fake), against the training step."""
    trace = [r for r in records if r.get("kind") == "trace"]
    if not trace:
        return None
    plt = pyplot()
    steps = [r["step"] for r in trace]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.6))
    a.plot(steps, [r["d_loss"] for r in trace], label="discriminator")
    a.plot(steps, [r["g_loss"] for r in trace], label="generator")
    a.set_title("Losses")
    b.plot(steps, [r["d_real"] for r in trace], label="D(real)")
    b.plot(steps, [r["d_fake"] for r in trace], label="D(fake)")
    b.set_title("Critic scores" if wgan else "D(x): probability of 'real'")
    for ax in (a, b):
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(fig, path)
    return path
