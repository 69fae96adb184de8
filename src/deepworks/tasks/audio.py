"""Audio classification: recognise short spoken words and sounds from a folder of recordings.

Data (data/audio.py): a folder of class sub-folders of clips, a CSV of path,label[,speaker], or a built-in (`tones`,
generated; `fsdd`, the Free Spoken Digit Dataset with its official split). Every clip is float32 mono at one sample
rate and one length, kept in memory as (N, T) and sliced per batch by the default batch source. `--split
speaker:NAME` tests on one speaker's clips alone; `--split speaker` (crossval.py) trains a run for each speaker.
Model (models/audio.py): levelled log-mel features or MFCCs inside the network (torch.stft and a mel filterbank, no
weights), then a 1-D CNN over the frames, a GRU/LSTM over them, or an image model over the spectrogram as a picture.
Augmentation: a random time shift of the waveform, optionally speed perturbation and white noise, and SpecAugment's
frequency and time masks. Loss: cross-entropy. Metrics: accuracy each epoch; on the test split also per class, per
speaker (when the source knows the speakers) and the confusion matrix; the report adds the misheard clips.
This module is the recipe; the use of a trained model is tasks/audio_face.py (AudioFace: the class probabilities of
clips, files, bytes or arrays of samples at the run's rate, through the serving model, which is also what is
exported, the DFT as a convolution), and what a finished run shows is tasks/audio_report.py (AudioReport).
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
from .audio_face import AudioFace
from .audio_report import AudioReport
from .base import Prepared, Task

SHIFT = 0.1      # the time shift: up to a tenth of the clip either way
SPEEDS = (0.9, 1.1)   # --augment +speed: how much faster a clip may be played
NOISE_DB = (10.0, 40.0)  # --augment +noise: how far below the clip the noise is, in dB
MFCCS = 13
SPECTROGRAM_IMAGES = {"lenet": 32, "resnet": 64, "efficientnet_lite0": 96}  # image models, the picture's side
TONES_PER_CLASS = 120


class AudioClassification(Task):
    name = "audio"
    models = builtin_models("audio")
    defaults = builtin_defaults("audio")
    default_monitor = "val_accuracy"
    headline = "accuracy"
    unit = ("clip", 1)
    counted = ("clips", "clips")
    augments = ("none", "crop", "crop+noise", "crop+speed", "crop+noise+speed")
    splits_by_speaker = True
    pretrained_models = ("efficientnet_lite0",)
    face_class, report_class = AudioFace, AudioReport

    def __init__(self, cfg: Config, meta: dict | None = None):
        if cfg.model.pretrained and cfg.model.name is None:
            cfg.model.name = "efficientnet_lite0"
        super().__init__(cfg, meta)
        if cfg.model.pretrained and cfg.model.name not in self.pretrained_models:
            raise ConfigError(f"--pretrained starts audio from ImageNet's efficientnet_lite0, which hears the "
                              f"spectrogram as a picture. Received: --model {cfg.model.name}.")
        self.speakers: dict[str, list[str]] = {}

    @staticmethod
    def check_meta(meta: dict) -> None:
        if not isinstance(meta.get("rate"), int) or not 1000 <= meta["rate"] <= 192_000:
            raise ConfigError(f"rate {meta.get('rate')} is outside 1,000 to 192,000 Hz")
        if not isinstance(meta.get("length"), int) or not 256 <= meta["length"] <= 192_000 * 10:
            raise ConfigError(f"length {meta.get('length')} is outside 256 samples to 10 s")

    # --- data -----------------------------------------------------------------------------------------------
    def read(self):
        from ..data.audio import list_csv, list_folder, load_fsdd, make_tones, read_clips
        from ..data.builtin import default_data_dir

        d = self.cfg.data
        if d.source == "tones":
            return make_tones(TONES_PER_CLASS, self.cfg.seed)
        if d.source == "fsdd":
            return load_fsdd(Path(d.data_dir) if d.data_dir else default_data_dir(), d.strict)
        path = Path(d.source)
        speakers = None
        if path.is_dir():
            files, labels = list_folder(path)
        elif path.suffix.lower() == ".csv" and path.is_file():
            files, labels, speakers = list_csv(path)
        else:
            raise DataError(f"No such folder or CSV '{d.source}'. Expected a folder with one sub-folder of clips per "
                            f"class, a CSV of path,label[,speaker], or a built-in: tones, fsdd.")
        clips = read_clips(files, labels, None, None, d.strict, f"the clips in {path}")
        if speakers:
            speaker_of = dict(zip(map(str, files), speakers))
            clips.speakers = [speaker_of[name] for name in clips.names]
        return clips

    def speakers_of_data(self) -> list[str]:
        clips = self.read()
        if not clips.speakers:
            raise DataError(unknown_speakers(clips.description, "speaker"))
        return sorted(set(clips.speakers))

    def prepare(self, progress: bool | None = True) -> Prepared:
        from ..data.arrays import stratified_split

        clips = self.read()
        d, seed = self.cfg.data, self.cfg.seed
        everything = np.arange(len(clips.labels))
        if d.split != "source":
            train, test = speaker_split(clips, d.split)
        elif clips.split:
            train, test = np.array(clips.split["train"]), np.array(clips.split["test"])
        else:
            keep, held = stratified_split(clips.labels, d.test_fraction, seed)
            train, test = everything[keep], everything[held]
        keep, held = stratified_split(clips.labels[train], d.val_fraction, seed + 1)
        train, val = train[keep], train[held]
        if len(train) < 2 or len(test) == 0:
            raise DataError(f"{clips.description} leaves {len(train)} clip(s) to train on and {len(test)} to test. "
                            f"Add clips, or lower --val-fraction / --test-fraction.")
        self.speakers = ({k: [clips.speakers[i] for i in v] for k, v in (("train", train), ("val", val), ("test", test))}
                         if clips.speakers else {})
        self.names = {k: [clips.names[i] for i in v] for k, v in (("train", train), ("val", val), ("test", test))}
        x = torch.from_numpy(clips.samples)
        y = torch.from_numpy(clips.labels)
        front = {"level": True, "pool": "max", "mfcc": MFCCS if d.features == "mfcc" else 0}
        self.meta = {"classes": clips.classes, "rate": int(clips.rate), "length": int(clips.samples.shape[1]),
                     "n_mels": 40, "front": front, "source": clips.description,
                     **self.feature_stats(self.front(clips.rate, 40, front), x[torch.from_numpy(train)])}
        if d.split.startswith("speaker:"):
            self.meta["held_out"] = d.split.partition(":")[2]
        if self.cfg.model.pretrained:
            from ..models.pretrained import describe

            self.meta["pretrained"] = describe(self.cfg.model.name)

        def part(idx):
            idx = torch.from_numpy(np.asarray(idx, dtype=np.int64))
            return x[idx], y[idx]

        return Prepared(train=part(train), val=part(val), test=part(test), meta=self.meta, notes=list(clips.notes))

    @staticmethod
    def front(rate: int, n_mels: int, options: dict) -> nn.Module:
        """The features a run's network takes. Runs made before `front` was in their meta took plain log-mel
        averaged over time; new ones level each clip (models/audio.py LogMel) and take the maximum over time."""
        from ..models.audio import LogMel

        return LogMel(rate, n_mels, options.get("mfcc", 0), options.get("level", False))

    @staticmethod
    def feature_stats(front: nn.Module, waves: torch.Tensor) -> dict:
        """The training clips' feature mean and std per band: the network's input normalisation (saved in meta)."""
        with torch.no_grad():
            feats = torch.cat([front(waves[i:i + 256]) for i in range(0, len(waves), 256)])
        return {"band_mean": feats.mean((0, 2)).tolist(), "band_std": feats.std((0, 2)).clamp(min=1e-3).tolist()}

    # --- model and training -----------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        from ..models.audio import AudioClassifier

        m, meta = self.cfg.model, self.meta
        front = meta.get("front", {})
        model = AudioClassifier(meta["rate"], len(meta["classes"]), meta["n_mels"], front.get("mfcc", 0),
                                width=m.width or 64, dropout=m.dropout if m.dropout else 0.3,
                                level=front.get("level", False), pool=front.get("pool", "mean"),
                                head=self.other_head(front.get("mfcc", 0) or meta["n_mels"], len(meta["classes"])))
        if "band_mean" in meta:
            model.classifier.mean.copy_(torch.tensor(meta["band_mean"]).view(-1, 1))
            model.classifier.std.copy_(torch.tensor(meta["band_std"]).view(-1, 1))
        return model

    def other_head(self, bands: int, num_classes: int) -> nn.Module | None:
        """The network over the features when it is not the default 1-D CNN: an LSTM or GRU over the frames, or an
        image classifier over the spectrogram as a picture (--pretrained: EfficientNet-Lite0's ImageNet weights)."""
        from ..models import build_image_classifier
        from ..models.audio import FrameRNN, SpectrogramImage

        m = self.cfg.model
        if m.name in ("lstm", "gru"):
            return FrameRNN(bands, num_classes, m.name, m.width or 64, m.depth or 2, m.dropout if m.dropout else 0.3)
        if m.name not in SPECTROGRAM_IMAGES:
            return None
        size, channels = SPECTROGRAM_IMAGES[m.name], 3 if m.name == "efficientnet_lite0" else 1
        return SpectrogramImage(bands, build_image_classifier(m, channels, size, num_classes), size, channels)

    def start_from(self, model: nn.Module) -> None:
        if self.cfg.model.pretrained:
            from ..models.pretrained import load_pretrained

            found = load_pretrained(model.classifier.image, self.cfg.model.name)
            warnings.warn(f"Started from the pretrained {self.cfg.model.name}: {found['loaded']} of {found['of']} "
                          f"tensors (ImageNet); the spectrogram is shown to it as a "
                          f"{model.classifier.size} px picture.", stacklevel=2)

    def training_step(self, model: nn.Module, batch: tuple):
        x, y = batch
        mode = self.cfg.data.augment or "none"
        augmenting = model.training and mode != "none"
        if augmenting:
            if "speed" in mode:
                x = change_speed(x, SPEEDS)
            if "noise" in mode:
                x = add_noise(x, NOISE_DB)
            x = time_shift(x, SHIFT)
        features = model.features(x)
        if augmenting:
            features = spec_augment(features)
        logits = model.classifier(features)
        return F.cross_entropy(logits, y), {"accuracy": (logits.argmax(1) == y).sum()}

    # --- after training -------------------------------------------------------------------------------------
    @torch.no_grad()
    def probabilities(self, model: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 256):
        """The class probabilities of clips `x`, in eval mode: for the test's metrics and the report's misheard clips."""
        from ..models import evaluating

        with evaluating(model):
            return torch.cat([model(x[i:i + batch_size].to(device)).float().softmax(1).cpu()
                              for i in range(0, len(x), batch_size)])

    def test_metrics(self, model: nn.Module, split: tuple, device: torch.device) -> dict:
        from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

        x, y = split
        probs = self.probabilities(model, x, device)
        pred = probs.argmax(1)
        classes = self.meta["classes"]
        p, r, f1, support = precision_recall_fscore_support(y, pred, labels=list(range(len(classes))), zero_division=0)
        out = {"clips": len(y), "loss": float(F.nll_loss(probs.clamp(min=1e-12).log(), y)),
               "accuracy": float((pred == y).float().mean()),
               "per_class": [{"class": c, "precision": round(float(p[i]), 4), "recall": round(float(r[i]), 4),
                              "f1": round(float(f1[i]), 4), "support": int(support[i])} for i, c in enumerate(classes)],
               "confusion": confusion_matrix(y, pred, labels=list(range(len(classes)))).tolist()}
        speakers = self.speakers.get("test")
        if speakers and len(speakers) == len(y):
            right = (pred == y).numpy()
            out["per_speaker"] = [{"speaker": s, "accuracy": round(float(right[[i for i, t in enumerate(speakers)
                                                                                 if t == s]].mean()), 4),
                                   "clips": speakers.count(s)} for s in sorted(set(speakers))]
        return out

    def preview(self, prepared: Prepared, per_class: int = 3) -> dict:
        """The classes, the rate and clip length, and the first `per_class` training clips of each: a log-mel
        picture (PNG base64, low pitches at the bottom) and the sound (a 16-bit WAV, base64)."""
        import base64
        import io

        from ..data.audio import write_wav
        from ..inference import png_base64
        from .image import PREVIEW_CLASSES

        x, y = prepared.train
        front = self.front(self.meta["rate"], self.meta["n_mels"], self.meta["front"])
        rows = []
        for c, name in enumerate(self.meta["classes"][:PREVIEW_CLASSES]):
            clips = x[torch.from_numpy(np.flatnonzero(y.numpy() == c)[:per_class])]
            with torch.no_grad():
                pictures = front(clips).flip(1) if len(clips) else []
            sounds = []
            for clip, picture in zip(clips, pictures):
                low, high = picture.min(), picture.max()
                grey = ((picture - low) / (high - low).clamp(min=1e-6) * 255).to(torch.uint8)[None].numpy()
                wav = io.BytesIO()
                write_wav(wav, clip.numpy(), self.meta["rate"])
                sounds.append({"spectrogram": png_base64(grey), "wav": base64.b64encode(wav.getvalue()).decode()})
            rows.append({"class": name, "sounds": sounds})
        return {"sound_classes": list(self.meta["classes"]), "rate": self.meta["rate"],
                "seconds": self.meta["length"] / self.meta["rate"], "sound_examples": rows}


def time_shift(x: torch.Tensor, fraction: float) -> torch.Tensor:
    """Each clip moved in time by up to `fraction` of its length either way, silence filling the gap."""
    n, t = x.shape
    limit = int(t * fraction)
    shifts = torch.randint(-limit, limit + 1, (n, 1), device=x.device)
    index = torch.arange(t, device=x.device)[None, :] - shifts
    inside = (index >= 0) & (index < t)
    return torch.where(inside, x.gather(1, index.clamp(0, t - 1)), torch.zeros_like(x))


def spec_augment(features: torch.Tensor, bands: int = 6, frames: int = 10) -> torch.Tensor:
    """SpecAugment (Park et al. 2019): per clip, one band of up to `bands` features and one run of up to `frames`
    frames set to the clip's mean, so the network cannot lean on any one of them."""
    n, f, t = features.shape
    device = features.device
    fill = features.mean((1, 2), keepdim=True)
    width_f = torch.randint(0, bands + 1, (n, 1, 1), device=device)
    start_f = (torch.rand(n, 1, 1, device=device) * (f - width_f + 1)).long()
    width_t = torch.randint(0, frames + 1, (n, 1, 1), device=device)
    start_t = (torch.rand(n, 1, 1, device=device) * (t - width_t + 1).clamp(min=1)).long()
    fi = torch.arange(f, device=device)[None, :, None]
    ti = torch.arange(t, device=device)[None, None, :]
    masked = ((fi >= start_f) & (fi < start_f + width_f)) | ((ti >= start_t) & (ti < start_t + width_t))
    return torch.where(masked, fill.expand_as(features), features)


def speaker_split(clips, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices with one speaker's clips as the test set ('speaker:NAME')."""
    if not clips.speakers:
        raise DataError(unknown_speakers(clips.description, split))
    kind, _, name = split.partition(":")
    known = sorted(set(clips.speakers))
    if kind != "speaker" or name not in known:
        raise DataError(f"--split: Expected source, speaker, or speaker:NAME with NAME one of {', '.join(known)}. "
                        f"Received: {split!r}.")
    held = np.array([s == name for s in clips.speakers])
    if held.all():
        raise DataError(f"--split {split}: every clip is {name}'s, which leaves none to train on.")
    return np.flatnonzero(~held), np.flatnonzero(held)


def unknown_speakers(description: str, split: str) -> str:
    return (f"--split {split} needs to know who speaks each clip, and {description} does not say. Expected a "
            f"built-in that knows (fsdd) or a CSV of path,label,speaker.")


def change_speed(x: torch.Tensor, speeds: tuple[float, float]) -> torch.Tensor:
    """Each clip played a random `speeds[0]`..`speeds[1]` times as fast about its middle (Ko et al. 2015's speed
    perturbation: pitch and tempo change together, as between two speakers), by linear interpolation; silence
    fills what a slower clip leaves."""
    n, t = x.shape
    rate = torch.empty(n, 1, device=x.device).uniform_(*speeds)
    middle = t / 2
    where = middle + (torch.arange(t, device=x.device)[None, :].float() - middle) * rate
    left = where.floor().long()
    weight = where - left
    inside = (left >= 0) & (left + 1 < t)
    a, b = x.gather(1, left.clamp(0, t - 1)), x.gather(1, (left + 1).clamp(0, t - 1))
    return torch.where(inside, a + (b - a) * weight, torch.zeros_like(x))


def add_noise(x: torch.Tensor, below_db: tuple[float, float]) -> torch.Tensor:
    """Each clip with white noise mixed in, a random `below_db` dB under the clip's mean power over its sound (the
    samples above a hundredth of its peak, so that padding does not count)."""
    loud = x.abs() > 0.01 * x.abs().amax(1, keepdim=True)
    power = (x.square() * loud).sum(1, keepdim=True) / loud.sum(1, keepdim=True).clamp(min=1)
    db = torch.empty(len(x), 1, device=x.device).uniform_(*below_db)
    return x + torch.randn_like(x) * (power / 10 ** (db / 10)).sqrt()
