"""A classifier's test, class by class: precision, recall, F1 and support per class, their macro mean, and the
confusion matrix (rows: the true class, columns: the predicted one)."""

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
