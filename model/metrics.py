"""Classification metrics as pure numpy functions (no TensorFlow), so they are easy to check by
hand and run anywhere the predictions can be loaded.

Shapes: ``probabilities`` is [N, K] (rows are class distributions), ``labels`` is [N] integer
class indices in [0, K).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def average_views(view_probabilities: np.ndarray, num_views: int) -> np.ndarray:
    """Averages the per-view probabilities of each video.

    Args:
        view_probabilities: [N * V, K]; rows ``i * V .. i * V + V - 1`` are the V views of
            video i (the input pipeline's clip-major view order).
        num_views: V = clips x crops.

    Returns:
        [N, K] mean probability per video.
    """
    rows, classes = view_probabilities.shape
    if rows % num_views:
        raise ValueError(f"{rows} rows are not a whole number of {num_views}-view groups")
    return view_probabilities.reshape(rows // num_views, num_views, classes).mean(axis=1)


def top_k_accuracy(probabilities: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of rows whose label is among the k highest probabilities.

    Ties are broken towards the lower class index (a stable sort of -p), so the result does
    not depend on the platform's sort.
    """
    k = min(k, probabilities.shape[1])
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(order == labels[:, None], axis=1))) if len(labels) else 0.0


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """[K, K] int64 counts; row = true class, column = predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """[K] recall per class from a confusion matrix; NaN for classes with no examples."""
    totals = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(matrix) / np.maximum(totals, 1), np.nan)


def classification_report(
    probabilities: np.ndarray, labels: np.ndarray, class_names: Sequence[str]
) -> dict[str, object]:
    """All evaluation metrics for one split, as JSON-safe values.

    Args:
        probabilities: [N, K] per-video probabilities (views already averaged).
        labels: [N] true class indices.
        class_names: K names in index order.

    Returns:
        ``top_1``, ``top_5``, ``mean_per_class_accuracy`` (mean over classes that have
        examples), ``per_class`` ({name: accuracy or None}), ``per_class_count``,
        ``confusion_matrix`` (K x K list), ``class_names``, ``num_clips``.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    num_classes = len(class_names)
    if probabilities.ndim != 2 or probabilities.shape[1] != num_classes:
        raise ValueError(f"probabilities {probabilities.shape} do not match {num_classes} classes")
    if labels.shape != (probabilities.shape[0],):
        raise ValueError(f"labels {labels.shape} do not match {probabilities.shape[0]} rows")
    predictions = np.argmax(probabilities, axis=1)
    matrix = confusion_matrix(labels, predictions, num_classes)
    per_class = per_class_accuracy(matrix)
    present = ~np.isnan(per_class)
    return {
        "top_1": top_k_accuracy(probabilities, labels, 1),
        "top_5": top_k_accuracy(probabilities, labels, 5),
        "mean_per_class_accuracy": float(np.mean(per_class[present])) if present.any() else 0.0,
        "per_class": {
            name: (None if np.isnan(acc) else float(acc))
            for name, acc in zip(class_names, per_class, strict=True)
        },
        "per_class_count": {
            name: int(n) for name, n in zip(class_names, matrix.sum(axis=1), strict=True)
        },
        "confusion_matrix": matrix.tolist(),
        "class_names": list(class_names),
        "num_clips": int(labels.shape[0]),
    }
