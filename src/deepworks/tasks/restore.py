"""Image restoration: upscaling (super-resolution), denoising, JPEG artefact removal and colourisation, learned from
clean photos alone.

Data (data/photos.py): a folder of photos, or a built-in (photos, sr-benchmarks, cifar10). The clean photos are the
targets; the inputs are made from them as training goes (`degrade`): shrunk by --scale with MATLAB's bicubic
(metrics/pixels.py, as the papers make theirs), noise of --noise-sigma added, saved as a JPEG of quality 10-40, or
turned grey; each rounded to 8 bits as a file would be. The draws come from torch's generator, which the loop seeds
and checkpoints, so a resumed run makes the same inputs. Training photos are cut into overlapping patches of
--image-size, kept in memory as uint8 (N, 3, P, P) and turned by one of the eight flips and quarter turns per
patch; validation and test photos are whole, degraded the same way with a fixed seed per photo.
Models (models/restore.py): EDSR and ESPCN upscale, a U-Net denoises, removes artefacts and colourises.
Loss: L1 (EDSR's choice: sharper than L2). Metrics: PSNR and SSIM of whole photos restored as `restore` restores
them (tiled: tasks/restore_face.py), on the luma with the border of --scale pixels left out for super-resolution
(the papers' convention), on RGB otherwise.
Report (tasks/restore_report.py): the classical answer beside the network (bicubic upscaling, the JPEG or grey
photo as it is, scikit-image's non-local means), crops side by side, each photo's scores, the worst photos.
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import Config
from ..errors import ConfigError, DataError
from ..metrics.pixels import lab_to_rgb, rgb_to_lab, scores, shrink
from ..models import evaluating
from ..registry import builtin_defaults, builtin_models
from .base import Prepared, Task
from .restore_face import RestoreFace, restored
from .restore_report import RestoreReport, test_scores

MODES = ("sr", "denoise", "jpeg", "colorize")
PATCH = {"sr": 48, "denoise": 64, "jpeg": 64, "colorize": 64}  # the default training patch, in output pixels
MIN_INPUT = 8            # the smallest side, in input pixels, a patch or a photo may have
TILE = 256               # the tile inference restores at once, in input pixels
MAX_PATCHES = 60_000     # training patches at most (an even choice of them)
VAL_PIXELS = 2_000_000   # validation photos scored each epoch at most, by their pixels
JPEG_QUALITY = (10, 40)  # training's JPEGs; validation and test use the middle
NOTE_WORDS = {"sr": "bicubic upscaling", "denoise": "scikit-image's non-local means",
              "jpeg": "the JPEG as it is", "colorize": "the grey photo"}


class RestoreNote(UserWarning):
    """What a restoration run's data means for it, said once."""


class Restoration(Task):
    name = "restore"
    models = builtin_models("restore")
    augments = ("none", "flip")
    defaults = builtin_defaults("restore")
    default_monitor = "val_psnr"
    headline = "psnr"
    unit = ("patch", 1)
    counted = ("images", "images")
    face_class = RestoreFace
    report_class = RestoreReport

    def __init__(self, cfg: Config, meta: dict | None = None):
        mode = self.mode_of(cfg, meta)
        self.choose_model(cfg, mode)
        super().__init__(cfg, meta)
        self.mode = mode
        self.fixed_inputs: dict = {}  # evaluation's inputs, made once per photo

    @staticmethod
    def mode_of(cfg: Config, meta: dict | None) -> str:
        return (meta or {}).get("mode", cfg.data.mode)

    @staticmethod
    def choose_model(cfg: Config, mode: str) -> None:
        """--model's default for the mode, and a model that does not fit it refused."""
        if cfg.model.name is None:
            cfg.model.name = "edsr" if mode == "sr" else "unet"
        upscaler = cfg.model.name in ("edsr", "espcn")
        if upscaler != (mode == "sr"):
            raise ConfigError(f"--model {cfg.model.name} does not fit --mode {mode}: edsr and espcn upscale (--mode "
                              f"sr), unet denoises, removes JPEG artefacts and colourises.")

    @staticmethod
    def check_meta(meta: dict) -> None:
        mode, scale = meta.get("mode"), meta.get("scale")
        if mode not in MODES:
            raise ConfigError(f"mode {mode!r} is not one of {', '.join(MODES)}")
        if scale not in ((2, 3, 4) if mode == "sr" else (1,)):
            raise ConfigError(f"scale {scale!r} does not fit mode {mode}")
        Restoration.check_sizes(meta)
        sigma = meta.get("noise_sigma")
        if not isinstance(sigma, (int, float)) or not 0 < sigma <= 100:
            raise ConfigError(f"noise_sigma {sigma!r} is outside 0 to 100")

    @staticmethod
    def check_sizes(meta: dict) -> None:
        """The patch, tile, halo and pooling step a run recorded: each in its range, the tile and halo whole steps."""
        for key, low, high in (("image_size", 8, 1024), ("tile", 8, 1024), ("halo", 0, 512), ("multiple", 1, 64)):
            value = meta.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ConfigError(f"{key} {value!r} is outside {low} to {high}")
        if meta["tile"] % meta["multiple"] or meta["halo"] % meta["multiple"]:
            raise ConfigError(f"tile {meta['tile']} and halo {meta['halo']} are not multiples of {meta['multiple']}")

    # --- data -----------------------------------------------------------------------------------------------
    @property
    def scale(self) -> int:
        return self.cfg.data.scale if self.mode == "sr" else 1

    @property
    def default_patch(self) -> int:
        return PATCH[self.mode]

    def patch_size(self, photos: list, multiple: int) -> int:
        """--image-size, else the mode's default made no larger than the photos' typical shorter side: a multiple
        of the scale (sr), or of 8 and of the U-Net's pooling step, at least two of those steps (each level halves
        the patch)."""
        step = self.scale if self.mode == "sr" else math.lcm(8, multiple)
        least = max(MIN_INPUT * self.scale, 2 * multiple)
        given = self.cfg.data.image_size
        if given is not None:
            if given % step or given < least:
                raise ConfigError(f"--image-size for --mode {self.mode} must be a multiple of {step}, at least "
                                  f"{least}. Received: {given}.")
            return given
        shorter = int(np.median([min(a.shape[:2]) for a in photos])) if photos else self.default_patch
        size = min(self.default_patch, shorter) // step * step
        return max(size, -(-least // step) * step)

    def prepare(self, progress: bool | None = True) -> Prepared:
        from ..data.builtin import default_data_dir
        from ..data.photos import read_photos

        d = self.cfg.data
        found = read_photos(d.source, Path(d.data_dir) if d.data_dir else default_data_dir(), d.strict)
        notes = list(found.problems)
        found = self.colour_only(found, notes)
        parts = self.split(found)
        from ..models.restore import halo_of

        probe = self.build_model()
        size = self.patch_size(parts["train"].images, probe.multiple)
        patches, skipped = cut_patches(parts["train"].images, size, self.patch_cap(d.source))
        if skipped:
            notes.append(f"{skipped} training photo(s) smaller than the {size}-pixel patches (--image-size) were left "
                         f"out; a smaller --image-size keeps them.")
        if not len(patches):
            raise DataError(f"{found.description}: no training photo is {size} x {size} pixels or larger. Expected "
                            f"larger photos, or a smaller --image-size (a multiple of "
                            f"{self.scale if self.mode == 'sr' else math.lcm(8, probe.multiple)}).")
        evals = {k: self.whole(parts[k], notes, k) for k in ("val", "test")}
        self.meta = {"mode": self.mode, "scale": self.scale, "noise_sigma": float(d.noise_sigma),
                     "image_size": int(size), "tile": TILE, "halo": halo_of(probe), "multiple": probe.multiple,
                     "source": found.description, "train_photos": len(parts["train"])}
        self.cfg.data.image_size = int(size)
        for note in notes:
            warnings.warn(note, RestoreNote, stacklevel=3)
        return Prepared(train=(patches,), val=evals["val"], test=evals["test"], meta=self.meta, notes=notes)

    def patch_cap(self, source: str) -> int:
        """photos:N takes N training patches (a quick run); else MAX_PATCHES."""
        from ..data.builtin import built_in_size

        head, _, size = source.partition(":")
        if head == "photos" and size:
            return built_in_size(source, size, 16, MAX_PATCHES, "training patches")
        return MAX_PATCHES

    def colour_only(self, found, notes: list):
        """Colourisation learns colour: grey photos are left out (named in a note), and none left is an error."""
        from ..data.photos import is_grey

        if self.mode != "colorize":
            return found
        grey = [i for i, a in enumerate(found.images) if is_grey(a)]
        if not grey:
            return found
        if len(grey) == len(found):
            raise DataError(f"{found.description}: every photo is grey. Expected colour photos: colourisation learns "
                            f"their colours from them (grey photos are what a trained colouriser takes).")
        keep = [i for i in range(len(found)) if i not in set(grey)]
        shown = ", ".join(found.names[i] for i in grey[:5]) + (" ..." if len(grey) > 5 else "")
        notes.append(f"{len(grey)} grey photo(s) were left out: they have no colour to learn ({shown}).")
        kept = found.take(keep)
        if found.split:
            where = {old: new for new, old in enumerate(keep)}
            kept.split = {k: [where[i] for i in v if i in where] for k, v in found.split.items()}
        kept.problems = found.problems
        return kept

    def split(self, found) -> dict:
        """The source's own split (a validation split taken from training when it has none), else a seeded one by
        --val-fraction and --test-fraction, by photo."""
        d, rng = self.cfg.data, np.random.default_rng(self.cfg.seed)
        split = dict(found.split or {})
        if not split:
            order = rng.permutation(len(found))
            n_test = max(1, int(round(len(order) * d.test_fraction)))
            n_val = max(1, int(round(len(order) * d.val_fraction)))
            if len(order) - n_test - n_val < 1:
                raise DataError(f"{found.description} has {len(order)} photo(s): too few to train on, validate and "
                                f"test. Expected at least 3; add photos.")
            split = {"test": sorted(order[:n_test]), "val": sorted(order[n_test:n_test + n_val]),
                     "train": sorted(order[n_test + n_val:])}
        if not split.get("train"):
            raise DataError(f"{found.description}: no photos to train on. Expected photos in train/ (or beside the "
                            f"val/ and test/ folders).")
        if not split.get("val"):
            train = rng.permutation(split["train"])
            n_val = max(1, int(round(len(train) * d.val_fraction)))
            split["val"], split["train"] = sorted(train[:n_val]), sorted(train[n_val:])
        if not split.get("test"):
            split["test"] = split["val"]
        return {k: found.take(split[k]) for k in ("train", "val", "test")}

    def whole(self, part, notes: list, which: str) -> tuple[np.ndarray, np.ndarray]:
        """(an object array of uint8 (3, H, W) tensors, an array of their names): each photo cropped to a multiple of
        the scale (the papers' 'mod crop'), those too small for the scale left out; validation at most VAL_PIXELS."""
        kept, names, small, pixels = [], [], [], 0
        for a, name in zip(part.images, part.names):
            h, w = (a.shape[0] // self.scale) * self.scale, (a.shape[1] // self.scale) * self.scale
            if min(h, w) < MIN_INPUT * self.scale:
                small.append(name)
                continue
            if which == "val" and kept and pixels + h * w > VAL_PIXELS:
                break
            pixels += h * w
            kept.append(torch.from_numpy(np.ascontiguousarray(a[:h, :w].transpose(2, 0, 1))))
            names.append(name)
        if small:
            notes.append(f"{len(small)} {which} photo(s) smaller than {MIN_INPUT * self.scale} pixels a side were "
                         f"left out ({', '.join(small[:3])}).")
        out = np.empty(len(kept), dtype=object)
        out[:] = kept
        return out, np.array(names, dtype=object)

    def default_epochs(self, data: Prepared) -> int:
        """About 1,500 optimizer steps, between 2 and 100 epochs."""
        from ..training.batches import steps_per_epoch

        steps = steps_per_epoch(len(data.train[0]), self.cfg.train.batch_size)
        return int(min(100, max(2, -(-1500 // steps))))

    # --- degradation ------------------------------------------------------------------------------------------
    def degrade(self, clean: torch.Tensor, generator: torch.Generator | None = None, quality: int | None = None):
        """uint8 clean photos (N, 3, H, W) -> uint8 inputs: shrunk by the scale, noisy, JPEG'd or grey, as the mode
        says; random draws from `generator` (None: torch's global one, which the loop seeds)."""
        if self.mode == "sr":
            return shrink(clean, self.scale)
        if self.mode == "denoise":
            noise = torch.randn(clean.shape, generator=generator, device=clean.device) * self.meta["noise_sigma"]
            return (clean.float() + noise).round().clamp(0, 255).to(torch.uint8)
        if self.mode == "jpeg":
            low, high = JPEG_QUALITY
            qualities = [quality] * len(clean) if quality else torch.randint(low, high + 1, (len(clean),),
                                                                             generator=generator).tolist()
            return torch.stack([jpeg_copy(x, q) for x, q in zip(clean, qualities)]).to(clean.device)
        lightness = rgb_to_lab(clean.float() / 255)[:, :1]
        grey = lab_to_rgb(torch.cat([lightness, torch.zeros_like(lightness).repeat(1, 2, 1, 1)], 1))
        return (grey * 255).round().clamp(0, 255).to(torch.uint8)

    def fixed_input(self, clean: torch.Tensor, index: int) -> torch.Tensor:
        """The input evaluation restores for clean photo `index` (3, H, W): the same draws every epoch and run, made
        once (validation scores the same photos every epoch)."""
        key = (index, clean.data_ptr(), tuple(clean.shape))
        if key not in self.fixed_inputs:
            g = torch.Generator().manual_seed(self.cfg.seed * 100_003 + index)
            self.fixed_inputs[key] = self.degrade(clean[None], g, quality=sum(JPEG_QUALITY) // 2)[0]
        return self.fixed_inputs[key]

    # --- model and training -----------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        from ..models.restore import build_restorer

        m = self.cfg.model
        edsr = m.name == "edsr"
        if m.depth is not None and m.name != "espcn" and not (1 <= m.depth <= 64 if edsr else 2 <= m.depth <= 5):
            what = "residual blocks, 1 to 64" if edsr else "levels, 2 to 5"
            raise ConfigError(f"--depth for {m.name} counts its {what}. Received: {m.depth}.")
        return build_restorer(m.name, self.mode, self.scale, m.width, m.depth)

    def training_step(self, model: nn.Module, batch: tuple):
        clean = batch[0]
        if self.cfg.data.augment == "flip":
            clean = dihedral(clean)
        inputs = self.degrade(clean)
        output = model(inputs.float() / 255)
        loss = F.l1_loss(output.float(), clean.float() / 255)
        return loss, {}

    # --- evaluation -------------------------------------------------------------------------------------------
    def on_luma(self) -> bool:
        return self.mode == "sr"

    @property
    def border(self) -> int:
        """The pixels scores leave out at each edge: the scale for super-resolution (the papers' convention), else 0."""
        return self.scale if self.mode == "sr" else 0

    @torch.no_grad()
    def outputs(self, model: nn.Module, photos, device: torch.device, indices=None):
        """(input, restored, clean) uint8 (3, H, W) of each photo, restored as `restore` restores it; `indices`, the
        photos' places in their split (which fix their inputs' draws) when `photos` is a part of it."""
        from ..models.restore import RestorerServing

        serving = RestorerServing(model).to(device)
        m = self.meta
        with evaluating(model):
            for i, clean in zip(range(len(photos)) if indices is None else indices, photos):
                given = self.fixed_input(clean, i)
                yield given, restored(serving, given, m["tile"], m["halo"], m["multiple"], self.scale, device), clean

    def evaluate(self, model: nn.Module, split: tuple, device: torch.device) -> dict:
        """Mean L1 loss (0-1 pixels), PSNR and SSIM over the split's whole photos."""
        totals = {"loss": 0.0, "psnr": 0.0, "ssim": 0.0}
        for _, out, clean in self.outputs(model, split[0], device):
            s = scores(out.permute(1, 2, 0).numpy(), clean.permute(1, 2, 0).numpy(), self.border, self.on_luma())
            totals["loss"] += float((out.float() - clean.float()).abs().mean() / 255)
            totals["psnr"] += s["psnr"]
            totals["ssim"] += s["ssim"]
        return {k: v / max(len(split[0]), 1) for k, v in totals.items()}

    def test_metrics(self, model: nn.Module, split: tuple, device: torch.device) -> dict:
        return test_scores(self, model, split, device)

    def preview(self, prepared: Prepared, n: int = 12) -> dict:
        """A few training patches, clean, beside the inputs made from them."""
        from ..inference import png_base64

        clean = prepared.train[0][:: max(1, len(prepared.train[0]) // n)][:n]
        given = self.degrade(clean, torch.Generator().manual_seed(0))
        if self.scale > 1:
            given = F.interpolate(given.float(), scale_factor=self.scale, mode="nearest").to(torch.uint8)
        return {"image_size": self.meta["image_size"], "channels": 3,
                "examples": [{"class": "clean photos (targets)", "images": [png_base64(x.numpy()) for x in clean]},
                             {"class": f"inputs made from them ({self.mode})",
                              "images": [png_base64(x.numpy()) for x in given]}]}


def cut_patches(photos: list, size: int, cap: int) -> tuple[torch.Tensor, int]:
    """(uint8 (N, 3, size, size) patches cut from each photo at a stride of half a patch, at most `cap` of them
    taken evenly; how many photos were too small for one)."""
    patches, skipped, stride = [], 0, max(1, size // 2)
    for a in photos:
        h, w = a.shape[:2]
        if min(h, w) < size:
            skipped += 1
            continue
        for y in range(0, h - size + 1, stride):
            for x in range(0, w - size + 1, stride):
                patches.append(a[y:y + size, x:x + size])
    if len(patches) > cap:
        patches = [patches[i] for i in np.linspace(0, len(patches) - 1, cap).round().astype(int)]
    if not patches:
        return torch.zeros(0, 3, size, size, dtype=torch.uint8), skipped
    return torch.from_numpy(np.stack(patches).transpose(0, 3, 1, 2).copy()), skipped


def dihedral(x: torch.Tensor) -> torch.Tensor:
    """Each square patch of (N, C, P, P) mirrored, flipped and transposed at random: one of the eight symmetries of
    a square, drawn from torch's global generator."""
    flips = torch.rand(3, len(x)) < 0.5
    x = torch.where(flips[0].view(-1, 1, 1, 1).to(x.device), x.flip(-1), x)
    x = torch.where(flips[1].view(-1, 1, 1, 1).to(x.device), x.flip(-2), x)
    return torch.where(flips[2].view(-1, 1, 1, 1).to(x.device), x.transpose(-1, -2), x)


def jpeg_copy(x: torch.Tensor, quality: int) -> torch.Tensor:
    """uint8 (3, H, W) saved as a JPEG of `quality` and read back."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(x.permute(1, 2, 0).cpu().numpy()).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as im:
        return torch.from_numpy(np.asarray(im.convert("RGB")).transpose(2, 0, 1).copy())
