"""A classifier's test, class by class: precision, recall, F1 and support per class, their macro mean, and the
confusion matrix (rows: the true class, columns: the predicted one); and how far its confidence can be trusted
(`reliability`)."""

from __future__ import annotations

import numpy as np


def class_metrics(y: np.ndarray, pred: np.ndarray, classes: list[str]) -> dict:
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = list(range(len(classes)))
    p, r, f1, support = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    return {"macro_f1": float(np.mean(f1)),
            "per_class": [{"class": c, "precision": round(float(p[i]), 4), "recall": round(float(r[i]), 4),
                           "f1": round(float(f1[i]), 4), "support": int(support[i])} for i, c in enumerate(classes)],
            "confusion": confusion_matrix(y, pred, labels=labels).tolist()}


def reliability(probs: np.ndarray, y: np.ndarray, bins: int = 10) -> dict:
    """Calibration (Guo et al. 2017): the predictions grouped by their confidence (the likeliest class's
    probability) into `bins` equal-width bins, each bin's mean confidence against its accuracy, and the expected
    calibration error: their gap averaged over the predictions. A calibrated model that says 90 % is right 9 times
    in 10; a bin above the diagonal is under-confident, below it over-confident."""
    probs, y = np.asarray(probs, dtype=np.float64), np.asarray(y)
    confidence, right = probs.max(1), probs.argmax(1) == y
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    rows, gap = [], 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            mean_conf, accuracy = float(confidence[inside].mean()), float(right[inside].mean())
            rows.append({"low": b / bins, "high": (b + 1) / bins, "count": int(inside.sum()),
                         "confidence": round(mean_conf, 4), "accuracy": round(accuracy, 4)})
            gap += inside.sum() * abs(mean_conf - accuracy)
    return {"ece": round(gap / max(len(y), 1), 4), "bins": rows}
