"""What a finished face-recognition run shows: verification (TAR at FAR 1 % and 0.1 %, the EER) and identification
of the test people, strangers to training; the ROC; the hardest pairs (the least alike faces of one person, the most
alike of two) side by side; and a 2-D map of the test people's embeddings (the trust tools' representations)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .base import Prepared, notes_block, plural
from .report import Report

HARDEST = 4  # pairs of each kind the report shows


class FacesReport(Report):
    overfit_remedies = "more people, --augment crop+flip, or fewer --epochs"

    def summary(self, results: dict) -> list[tuple[str, str]]:
        test, split = results["test"], self.meta["people_split"]
        return [("data", f"{self.meta['source']}; people {split['train']} to train on / {split['val']} to set the "
                         f"threshold / {split['test']} to test, strangers to training"),
                self.model_line(results),
                ("test", "  ".join(self.describe_metrics(test))),
                ("threshold", f"{self.meta.get('threshold') or 0.0:.4f}: accepts {self.meta['far']:.2%} of the "
                              f"validation people's impostor pairs")]

    @staticmethod
    def describe_metrics(metrics: dict) -> list[str]:
        return [f"TAR at FAR 1 % {metrics['tar_at_far_1']:.3f}  at FAR 0.1 % {metrics['tar_at_far_0.1']:.3f}  "
                f"EER {metrics['eer']:.3f}  rank-1 after enrolling 3 photos {metrics['rank1']:.3f}"]

    def report_sections(self, run, model: nn.Module, data: Prepared, results: dict, device) -> list[tuple[str, str]]:
        from ..metrics.verification import pair_scores
        from ..report import image_tag, plot_history, table
        from .faces import embed

        out, test = run.report_dir, results["test"]
        curves = plot_history(run.metrics(), out / "curves.png", "tar", "eer",
                              titles={"tar": "TAR at FAR 1 % (validation people)", "eer": "equal error rate"})
        faces, people = data.test[0], data.test[1].numpy()
        e = embed(model, faces, device)
        genuine, impostor = pair_scores(e, people)
        scalars = {k: v for k, v in test.items() if isinstance(v, (int, float))}
        return [
            ("Result on the test people",
             f"<p>{plural(test['people'], 'person')} never seen in training, {plural(test['faces'], 'face')}: every "
             f"pair of faces is scored by the cosine of their embeddings. TAR at FAR 1 % is the share of one "
             f"person's pairs accepted where 1 % of two people's pairs are; rank-1, the share of photos named right "
             f"after enrolling 3 photos of each person. Open set (half the people enrolled): 'identified' is named "
             f"right at the run's threshold, 'unknown_rejected' the strangers answered unknown.</p>"
             + table([scalars]) + self.notes_html(results) + notes_block(data.notes)),
            ("Training curves", image_tag(curves, "ArcFace loss, TAR and EER per epoch")),
            ("ROC", image_tag(plot_roc(genuine, impostor, self.meta["threshold"], out / "roc.png"),
                              "true-accept against false-accept rate")),
            ("The hardest pairs", "<p>Above: the least alike faces of one person (false rejects first). Below: the "
             "most alike faces of two people (false accepts first). The number is their cosine; the run's "
             f"threshold is {self.meta['threshold']:.3f}.</p>"
             + image_tag(hardest_pairs(faces, people, e, out / "hardest-pairs.png"), "hardest pairs")),
            ("The test people's embeddings", "<p>Each face's embedding, projected to 2-D by PCA, coloured by person: "
             "one person's faces should gather, apart from the others'.</p>"
             + image_tag(embedding_map(e, people, out / "embeddings.png"), "embeddings in 2-D")),
        ]


def plot_roc(genuine: np.ndarray, impostor: np.ndarray, threshold: float, path: Path) -> Path | None:
    """TAR against FAR (log scale), with the run's operating point."""
    from ..metrics.verification import roc
    from ..report import pyplot, save_figure

    if not len(genuine) or not len(impostor):
        return None
    far, tar, _ = roc(genuine, impostor)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.8))
    floor = 1 / max(len(impostor), 1)
    ax.plot(np.maximum(far, floor), tar)
    at = ((impostor >= threshold).mean(), (genuine >= threshold).mean())
    ax.plot([max(at[0], floor)], [at[1]], "o", label=f"the run's threshold: FAR {at[0]:.3f}, TAR {at[1]:.3f}")
    ax.set_xscale("log")
    ax.set_xlabel("false-accept rate (two people taken for one)")
    ax.set_ylabel("true-accept rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, path)
    return path


def hardest_pairs(faces: torch.Tensor, people: np.ndarray, e: torch.Tensor, path: Path) -> Path | None:
    """The HARDEST least alike genuine pairs, then the most alike impostor pairs, each pair side by side."""
    from ..report import plot_image_grid

    if len(e) < 2:
        return None
    cos = (e @ e.T).numpy()
    upper = np.triu(np.ones_like(cos, dtype=bool), 1)
    same = np.equal.outer(people, people)
    rows = []
    for mask, order in ((same & upper, 1), (~same & upper, -1)):
        i, j = np.nonzero(mask)
        ranked = np.argsort(order * cos[i, j])[:HARDEST]
        rows += [(i[k], j[k], cos[i[k], j[k]]) for k in ranked]
    if not rows:
        return None
    images = np.stack([faces[n].numpy() for a, b, _ in rows for n in (a, b)])
    titles = [f"{c:.2f}" if side == 0 else "" for _, _, c in rows for side in (0, 1)]
    return plot_image_grid(images, titles, ["black"] * len(titles), path, cols=2 * HARDEST)


def embedding_map(e: torch.Tensor, people: np.ndarray, path: Path) -> Path | None:
    from ..trust.representations import plot_projections, project

    if len(e) < 3:
        return None
    ids, labels = np.unique(people, return_inverse=True)
    points = project(e.numpy(), "pca")
    return plot_projections([{"title": "PCA of the embeddings", "points": points}], labels,
                            [f"person {i}" for i in ids], path, "test people")
