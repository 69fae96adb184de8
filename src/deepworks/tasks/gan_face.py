"""The GAN's face: new images from a trained generator.

`sample` decodes n noise vectors drawn with a seed (or noise vectors of the caller's own) into images, of one class
or of every class in turn for a conditional run; `interpolate` walks the noise space between two seeded points. The
server answers with PNGs (one per image, or one grid), export writes the generator as one graph from noise to uint8
pixels. Built from the config and the run's meta alone (the classes, the image size and channels), as every face is.

`noise` and `grid_labels` are shared with the recipe (tasks/gan.py), whose per-epoch grids and FID draw their
noise the same way.
"""

from __future__ import annotations

import secrets

import numpy as np
import torch
import torch.nn as nn

from ..errors import DataError
from ..usage import Option, check_options
from ..metrics.fid import to_uint8
from ..models import evaluating
from .face import Face

GRID = 64  # images in the fixed-noise grids (per epoch) and in the report's sample grid
GRID_COLS, GRID_CLASSES = 8, 16  # a conditional run's grids over training: a row of 8 samples for each of 16 classes
MAX_SAMPLES = 10_000  # images one `sample` call makes: more is no picture, and 10**8 would fill the memory


def noise(n: int, latent_size: int, generator: torch.Generator) -> torch.Tensor:
    """n noise vectors, drawn 64 at a time so that the first k are the same however many are asked for."""
    chunks = [torch.randn(64, latent_size, generator=generator) for _ in range(0, n, 64)]
    return torch.cat(chunks)[:n]


def grid_labels(n: int, classes: list[str]) -> torch.Tensor:
    """Every class in turn (class 0 for data without classes)."""
    return torch.arange(n) % max(1, len(classes))


class GanFace(Face):
    verb, kind = "sample", "a GAN"
    batchable = True
    max_items = MAX_SAMPLES
    use_options = {"n": Option(int, 16, 1, MAX_SAMPLES, "how many images to make"),
                   "seed": Option(int, None, 0, 2 ** 63 - 1, "the same seed makes the same images (default: random)"),
                   "label": Option(str, None, help="the class to make, by name or index (conditional runs)")}

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

    def sample(self, model: nn.Module, n: int, seed: int, device: torch.device,
               label: str | int | None = None) -> torch.Tensor:
        """n new images, uint8 (N, C, H, W); with a conditional run, of class `label` (else of every class in turn).
        `model` is the trained GAN (its generator is what runs)."""
        options = check_options(self.use_options, {"n": n, "seed": seed, "label": label}, "sample")
        results = self.infer(self.serving_model(model), self.decode_inputs(None, options), device, options)
        return torch.from_numpy(np.stack([r["image"] for r in results]))

    @torch.no_grad()
    def interpolate(self, model: nn.Module, steps: int, seed: int, device: torch.device,
                    label: str | int | None = None) -> torch.Tensor:
        """`steps` images on the great circle between two seeded noise vectors (spherical interpolation, which
        keeps every point as likely under the Gaussian as the ends)."""
        if not 2 <= steps <= MAX_SAMPLES:
            raise DataError(f"An interpolation needs from 2 to {MAX_SAMPLES:,} steps. Received: {steps:,}.")
        a, b = noise(2, self.cfg.model.latent_size, torch.Generator().manual_seed(seed))
        omega = torch.arccos(torch.clamp((a / a.norm()) @ (b / b.norm()), -1.0, 1.0))
        t = torch.linspace(0, 1, steps)[:, None]
        z = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)
        index = self.class_label(label)
        y = None
        if self.cfg.model.conditional:
            y = torch.full((steps,), index if index is not None else 0, device=device)
        with evaluating(model):
            return to_uint8(model.generator(z.to(device), y)).cpu()

    # --- the inference face (inference.py) -------------------------------------------------------
    def decode_inputs(self, inputs, options: dict, trusted: bool = True) -> list:
        """Nothing (n images from noise drawn with `seed`), or noise vectors of your own, (latent,) or (N, latent)
        (a walk through the noise space): [(noise, class index or None, seed or None)]."""
        index = self.class_label(options["label"])
        given = None
        if isinstance(inputs, dict):  # the Open Inference Protocol's named tensors
            inputs, given = inputs.get("noise"), inputs.get("labels")
        if inputs is None:
            seed = secrets.randbits(31) if options["seed"] is None else options["seed"]
            z = noise(options["n"], self.cfg.model.latent_size, torch.Generator().manual_seed(seed))
        else:
            seed, z = None, self.given_noise(inputs)
        labels = [None] * len(z)
        if self.cfg.model.conditional:
            labels = ([index] * len(z) if index is not None else grid_labels(len(z), self.meta["classes"]).tolist())
            if given is not None:
                labels = [self.class_label(str(int(c))) for c in np.asarray(given).reshape(-1)]
                if len(labels) != len(z):
                    raise DataError(f"sample: {len(labels)} labels for {len(z)} noise vectors. Expected one each.")
        return [(row, y, seed) for row, y in zip(z, labels)]

    def given_noise(self, inputs) -> torch.Tensor:
        """The caller's noise vectors as float32 (N, latent), refused (DataError) when of another shape, too many,
        or not finite."""
        latent = self.cfg.model.latent_size
        try:
            z = torch.as_tensor(np.asarray(inputs.detach().cpu() if torch.is_tensor(inputs) else inputs,
                                           dtype=np.float32))
        except (TypeError, ValueError):  # a mapping, a string, lists of uneven lengths
            raise DataError(f"sample: noise must be numbers of shape (N, {latent}) or ({latent},). Received: "
                            f"{type(inputs).__name__} {str(inputs)[:60]}.") from None
        z = z[None] if z.ndim == 1 else z
        if z.ndim != 2 or z.shape[1] != latent or not len(z):
            raise DataError(f"sample: noise must have shape (N, {latent}) or ({latent},). Received: "
                            f"{tuple(z.shape)}.")
        if len(z) > MAX_SAMPLES:
            raise DataError(f"sample: at most {MAX_SAMPLES:,} noise vectors in one call. Received: {len(z):,}.")
        if not torch.isfinite(z).all():
            raise DataError("sample: noise must be finite numbers. Received: NaN or infinity.")
        return z

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

    def example_request(self) -> tuple:
        return None, {"n": 1, "seed": 0}

    def as_png(self, results: list) -> bytes:
        import io

        from ..report import save_image_grid

        buffer = io.BytesIO()
        save_image_grid(torch.from_numpy(np.stack([r["image"] for r in results])), buffer)
        return buffer.getvalue()

    def serving_model(self, model: nn.Module) -> nn.Module:
        from ..models.dcgan import GeneratorServing

        return GeneratorServing(model.generator).eval()

    # --- export and the Open Inference Protocol ----------------------------------------------------
    def export_graphs(self, model: nn.Module) -> list:
        from ..inference import Graph

        conditional = self.cfg.model.conditional

        def example(n: int) -> tuple:
            z = torch.randn(n, self.cfg.model.latent_size, generator=torch.Generator().manual_seed(n))
            return (z, torch.arange(n) % len(self.meta["classes"])) if conditional else (z,)

        names = ["noise", "labels"] if conditional else ["noise"]
        return [Graph("generator", self.serving_model(model), example(2), example(3), names, ["images"],
                      {k: {0: "batch"} for k in names + ["images"]},
                      "noise (N, latent) from a standard normal [and class indices (N,)] in, uint8 images (N, H, W, C) out")]

    def model_card(self) -> dict:
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
