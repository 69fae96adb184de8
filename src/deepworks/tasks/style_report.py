"""What a finished style-transfer run shows: the style and content distances of the painted test photos beside the
photo's own style distance as it is (where an unpainted photo stands), each photo's, and the HTML report: the style
picture, then each test photo beside its painted self."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .base import Prepared, notes_block, plural
from .report import Report
from .restore_report import PANEL, mean, side_row

SHOWN = 4  # test photos in the report
COLUMNS = {"loss": "loss", "style_loss": "style distance", "content_loss": "content distance",
           "photo_style_loss": "style distance as it is"}


def test_scores(task, model: nn.Module, split: tuple, device: torch.device) -> dict:
    """Each test photo's distances painted, and its style distance as it is; their means."""
    per_image = []
    names = split[1] if len(split) > 1 else []
    for i, (photo, out, _) in enumerate(task.outputs(model, split[0], device)):
        row = {"image": Path(names[i]).name if i < len(names) else f"photo {i}",
               "size": f"{photo.shape[2]}x{photo.shape[1]}", **task.photo_scores(out, photo, device)}
        row["photo_style_loss"] = task.photo_scores(photo, photo, device)["style_loss"]
        per_image.append(row)
    keys = ("loss", "style_loss", "content_loss", "photo_style_loss")
    return {"images": len(per_image), **{k: mean(per_image, k) for k in keys}, "per_image": per_image}


class StyleReport(Report):
    """A style-transfer run's test, summary and report."""

    overfit_remedies = "more photos, --augment flip, or fewer --epochs"

    def logged_test(self, results: dict) -> dict:
        return {k: v for k, v in results["test"].items() if not isinstance(v, list)}

    def summary(self, results: dict) -> list[tuple[str, str]]:
        test, splits = results["test"], results["splits"]
        return [("data", f"{self.meta['source']}; {splits['train']:,} training patches of {self.meta['image_size']} "
                         f"px / {plural(splits['val'], 'validation photo')} / {plural(splits['test'], 'test photo')}; "
                         f"style {self.meta['style']}"),
                self.model_line(results),
                ("test", f"style distance {test['style_loss']:.3f} (the photos as they are: "
                         f"{test['photo_style_loss']:.3f}), content distance {test['content_loss']:.3f} "
                         f"({plural(test['images'], 'photo')}; 0 is the same, 1 as far as nothing at all)")]

    @staticmethod
    def describe_metrics(metrics: dict) -> list[str]:
        return [f"style distance {metrics['style_loss']:.3f}  content distance {metrics['content_loss']:.3f}"]

    def report_sections(self, run, model: nn.Module, data: Prepared, results: dict, device) -> list[tuple[str, str]]:
        from ..report import image_tag, plot_history, table

        out, test = run.report_dir, results["test"]
        curves = plot_history(run.metrics(), out / "curves.png", "style_loss", "content_loss",
                              titles={"style_loss": "style distance", "content_loss": "content distance"})
        chosen = list(range(min(SHOWN, len(data.test[0]))))
        side = self.side_by_side(model, data.test[0], chosen, out / "side-by-side.png", device)
        return [
            ("Result on the test split",
             f"<p>Painted in the style of {html.escape(self.meta['style'])} (weight {self.cfg.train.style_weight}). "
             f"The style distance compares EfficientNet-Lite0's feature statistics with the style picture's, the "
             f"content distance its features with the photo's own: 0 is the same, 1 as far as nothing at all.</p>"
             + table([{"photos": "painted by deepworks", "style distance": test["style_loss"],
                       "content distance": test["content_loss"]},
                      {"photos": "as they are", "style distance": test["photo_style_loss"], "content distance": 0.0}])
             + self.notes_html(results) + notes_block(data.notes)),
            ("Training curves", image_tag(curves, "loss, style and content distances per epoch")),
            ("The style and the painted test photos", "<p>The style picture as the loss sees it, then each test photo "
             "beside its painted self.</p>" + image_tag(side, "the style, and each photo before and after")),
            ("Each test photo", table([{COLUMNS.get(k, k): v for k, v in row.items()} for row in test["per_image"]])),
        ]

    def side_by_side(self, model, photos, chosen: list[int], path: Path, device) -> Path | None:
        from PIL import Image

        style = self.task.style_picture
        if style is None or not chosen:
            return None
        subset = np.empty(len(chosen), dtype=object)
        subset[:] = [photos[i] for i in chosen]
        rows = [side_row([fit(style)])]
        for photo, out, _ in self.task.outputs(model, subset, device, chosen):
            rows.append(side_row([fit(photo), fit(out)]))
        width = max(r.shape[1] for r in rows)
        sheet = [np.pad(r, ((0, 12), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
        Image.fromarray(np.concatenate(sheet, 0)).save(path)
        return path


def fit(image: torch.Tensor) -> np.ndarray:
    """uint8 (3, H, W) -> (h, w, 3) at most PANEL pixels wide."""
    from PIL import Image

    im = Image.fromarray(image.permute(1, 2, 0).numpy())
    ratio = min(1.0, PANEL / im.width)
    return np.asarray(im.resize((round(im.width * ratio), round(im.height * ratio)), Image.BILINEAR))
