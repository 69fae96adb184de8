"""What a finished restoration run shows: the test's PSNR and SSIM beside the classical answer a user would otherwise
take (bicubic upscaling, scikit-image's non-local means, the JPEG or the grey photo as it is), each photo's scores,
the summary the CLI prints, and the HTML report: crops side by side (input, classical answer, deepworks, the clean
photo) with a zoomed patch where deepworks errs most, and the worst photos."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..metrics.pixels import enlarge, scores
from .base import Prepared, notes_block, plural
from .report import Report

BASELINE_PIXELS = 8_000_000  # non-local means runs over this many test pixels at most (the first photos')
SHOWN = 4                    # photos side by side in the report
ZOOM = 48                    # the zoomed patch's side, in output pixels


def classical(task, given: torch.Tensor) -> torch.Tensor:
    """The answer without deep learning, uint8 (3, H, W), for uint8 input (3, h, w)."""
    if task.mode == "sr":
        return enlarge(given, task.scale)
    if task.mode == "denoise":
        from skimage.restoration import denoise_nl_means

        sigma = task.meta["noise_sigma"] / 255
        a = given.permute(1, 2, 0).numpy().astype(np.float64) / 255
        out = denoise_nl_means(a, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=True,
                               channel_axis=-1)
        return torch.from_numpy((out * 255).round().clip(0, 255).astype(np.uint8).transpose(2, 0, 1).copy())
    return given


def classical_words(task) -> str:
    return {"sr": "bicubic upscaling (MATLAB's imresize)", "denoise": "non-local means (scikit-image, the true sigma)",
            "jpeg": "the JPEG as it is", "colorize": "the grey photo as it is"}[task.mode]


def test_scores(task, model: nn.Module, split: tuple, device: torch.device) -> dict:
    """PSNR and SSIM of each test photo restored as `restore` restores it, their means, and the classical answer's
    (on the first BASELINE_PIXELS pixels' photos when eval.baseline is on)."""
    per_image, spent = [], 0
    names = split[1] if len(split) > 1 else []
    use_baseline = task.cfg.eval.baseline
    for i, (given, out, clean) in enumerate(task.outputs(model, split[0], device)):
        target = clean.permute(1, 2, 0).numpy()
        row = {"image": Path(names[i]).name if i < len(names) else f"photo {i}",
               "size": f"{clean.shape[2]}x{clean.shape[1]}",
               **scores(out.permute(1, 2, 0).numpy(), target, task.border, task.on_luma())}
        if use_baseline and spent < BASELINE_PIXELS:
            spent += clean.shape[1] * clean.shape[2]
            base = scores(classical(task, given).permute(1, 2, 0).numpy(), target, task.border, task.on_luma())
            row.update(baseline_psnr=base["psnr"], baseline_ssim=base["ssim"])
        per_image.append(row)
    found = {"images": len(per_image), "psnr": mean(per_image, "psnr"), "ssim": mean(per_image, "ssim"),
             "per_image": per_image}
    scored = [r for r in per_image if "baseline_psnr" in r]
    if scored:
        found.update(baseline_psnr=mean(scored, "baseline_psnr"), baseline_ssim=mean(scored, "baseline_ssim"),
                     baseline_images=len(scored), gain_db=round(mean(scored, "psnr") - mean(scored, "baseline_psnr"),
                                                                4))
    return found


def mean(rows: list[dict], key: str) -> float:
    values = [r[key] for r in rows if r.get(key) is not None and not np.isnan(r[key])]
    return round(float(np.mean(values)), 4) if values else float("nan")


class RestoreReport(Report):
    """A restoration run's test, summary and report."""

    overfit_remedies = "more photos, --augment flip, or fewer --epochs"

    def logged_test(self, results: dict) -> dict:
        return {k: v for k, v in results["test"].items() if not isinstance(v, list)}

    def convention(self) -> str:
        if self.meta["mode"] == "sr":
            return (f"PSNR and SSIM on the luma (Y of YCbCr, MATLAB's rgb2ycbcr) with a border of {self.meta['scale']} "
                    f"pixels left out, as the super-resolution papers score")
        return "PSNR and SSIM on RGB"

    def summary(self, results: dict) -> list[tuple[str, str]]:
        test, splits = results["test"], results["splits"]
        lines = [("data", f"{self.meta['source']}; {splits['train']:,} training patches of "
                          f"{self.meta['image_size']} px / {plural(splits['val'], 'validation photo')} / "
                          f"{plural(splits['test'], 'test photo')}"),
                 self.model_line(results),
                 ("test", f"PSNR {test['psnr']:.2f} dB  SSIM {test['ssim']:.4f}  ({plural(test['images'], 'photo')}; "
                          f"{self.convention()})")]
        if "baseline_psnr" in test:
            lines.append(("classical", f"PSNR {test['baseline_psnr']:.2f} dB  SSIM {test['baseline_ssim']:.4f}  "
                                       f"({classical_words(self.task)}; deepworks {test['gain_db']:+.2f} dB)"))
        return lines

    @staticmethod
    def describe_metrics(metrics: dict) -> list[str]:
        line = f"PSNR {metrics['psnr']:.2f} dB  SSIM {metrics['ssim']:.4f}"
        if "baseline_psnr" in metrics:
            line += f"  (classical answer: PSNR {metrics['baseline_psnr']:.2f} dB  SSIM {metrics['baseline_ssim']:.4f})"
        return [line]

    def report_sections(self, run, model: nn.Module, data: Prepared, results: dict, device) -> list[tuple[str, str]]:
        from ..report import image_tag, plot_history, table

        out, test, fit = run.report_dir, results["test"], results["fit"]
        curves = plot_history(run.metrics(), out / "curves.png", "psnr", "ssim",
                              titles={"psnr": "PSNR (dB)", "ssim": "SSIM"})
        rows = [{"answer": f"deepworks ({self.cfg.model.name})", "PSNR (dB)": test["psnr"], "SSIM": test["ssim"],
                 "parameters": results["parameters"]}]
        if "baseline_psnr" in test:
            rows.append({"answer": classical_words(self.task), "PSNR (dB)": test["baseline_psnr"],
                         "SSIM": test["baseline_ssim"], "parameters": ""})
        order = np.argsort([r["psnr"] for r in test["per_image"]], kind="stable")
        side = self.side_by_side(model, data.test[0], [int(i) for i in order[:SHOWN]], out / "side-by-side.png",
                                 device)
        return [
            ("Result on the test split", table(rows) + self.notes_html(results) + notes_block(data.notes)
             + f"<p>{html.escape(self.convention())}. {fit['epochs']} epochs; best validation {fit['monitor']} "
               f"{fit['best_value'] if fit['best_value'] is None else round(fit['best_value'], 4)} at epoch "
               f"{fit['best_epoch']}.</p>"),
            ("Data", f"<p>{html.escape(self.meta['source'])}: the clean photos are the targets, the inputs are made "
                     f"from them ({html.escape(self.meta['mode'])}).</p>" + table([results["splits"]])),
            ("Training curves", image_tag(curves, "loss, PSNR and SSIM per epoch")),
            ("Side by side: the worst test photos", "<p>Each photo, left to right: the input, the classical answer, "
             "deepworks, the clean photo, the worst photo first; below, the patch framed in red (where deepworks errs "
             "most) of each, magnified.</p>"
             + image_tag(side, "input, classical answer, deepworks and the clean photo")),
            ("Each test photo, worst first", table([test["per_image"][i] for i in order])),
        ]

    def side_by_side(self, model, photos, chosen: list[int], path: Path, device) -> Path | None:
        """One PNG: per chosen photo a row (the input enlarged to size, classical, deepworks, clean; each at most
        PANEL pixels wide, the worst patch framed in red) and a row of that ZOOM x ZOOM patch of each, magnified to
        PANEL."""
        from PIL import Image, ImageDraw

        if not chosen:
            return None
        subset = np.empty(len(chosen), dtype=object)
        subset[:] = [photos[i] for i in chosen]
        rows = []
        for given, out, clean in self.task.outputs(model, subset, device, chosen):
            shown = [enlarge_nearest(given, out.shape[1:]), classical(self.task, given), out, clean]
            y, x = worst_patch(out, clean)
            panels, patches = [], []
            for label, image in zip(("input", "classical", "deepworks", "clean"), shown):
                im = Image.fromarray(image.permute(1, 2, 0).numpy())
                patches.append(np.asarray(im.crop((x, y, x + ZOOM, y + ZOOM)).resize((PANEL, PANEL), Image.NEAREST)))
                ImageDraw.Draw(im).rectangle((x, y, x + ZOOM - 1, y + ZOOM - 1), outline=(255, 0, 0),
                                             width=max(1, im.width // PANEL))
                ratio = min(1.0, PANEL / im.width)
                small = im.resize((round(im.width * ratio), round(im.height * ratio)), Image.BILINEAR)
                ImageDraw.Draw(small).text((4, 2), label, fill=(255, 255, 0), stroke_width=2, stroke_fill=(0, 0, 0))
                panels.append(np.asarray(small))
            rows += [side_row(panels), side_row(patches)]
        width = max(r.shape[1] for r in rows)
        sheet = [np.pad(r, ((0, 12), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
        Image.fromarray(np.concatenate(sheet, 0)).save(path)
        return path


PANEL = 320  # the side-by-side's photos at most this wide, and their zoomed patches this wide


def side_row(images: list[np.ndarray]) -> np.ndarray:
    """uint8 (H, W, 3) images of one height side by side, with white gaps."""
    gap = np.full((images[0].shape[0], 6, 3), 255, np.uint8)
    return np.concatenate([part for image in images for part in (image, gap)][:-1], 1)


def enlarge_nearest(given: torch.Tensor, size) -> torch.Tensor:
    import torch.nn.functional as F

    if given.shape[1:] == tuple(size):
        return given
    return F.interpolate(given[None].float(), size=tuple(size), mode="nearest")[0].to(torch.uint8)


def worst_patch(out: torch.Tensor, clean: torch.Tensor) -> tuple[int, int]:
    """(top, left) of the ZOOM x ZOOM window with the largest mean absolute error (on a grid of half windows)."""
    error = (out.float() - clean.float()).abs().mean(0)
    h, w = error.shape
    best, where = -1.0, (0, 0)
    for y in range(0, max(1, h - ZOOM + 1), ZOOM // 2):
        for x in range(0, max(1, w - ZOOM + 1), ZOOM // 2):
            e = float(error[y:y + ZOOM, x:x + ZOOM].mean())
            if e > best:
                best, where = e, (y, x)
    return where
