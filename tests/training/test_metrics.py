"""Metric arithmetic checked against cases worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from model import metrics


def test_hand_computed_report() -> None:
    # 6 videos, 6 classes. Row i: probabilities; the true label is labels[i].
    probs = np.array(
        [
            [0.50, 0.20, 0.10, 0.10, 0.05, 0.05],  # label 0 -> pred 0 (top-1 hit)
            [0.10, 0.40, 0.30, 0.10, 0.05, 0.05],  # label 2 -> pred 1 (top-5 hit, rank 2)
            [0.05, 0.05, 0.60, 0.10, 0.10, 0.10],  # label 2 -> pred 2
            [0.30, 0.25, 0.20, 0.15, 0.10, 0.00],  # label 5 -> pred 0 (rank 6: top-5 miss)
            [0.10, 0.10, 0.10, 0.60, 0.05, 0.05],  # label 3 -> pred 3
            [0.05, 0.05, 0.05, 0.05, 0.10, 0.70],  # label 4 -> pred 5 (rank 2)
        ]
    )
    labels = np.array([0, 2, 2, 5, 3, 4])
    names = ["a", "b", "c", "d", "e", "f"]
    report = metrics.classification_report(probs, labels, names)
    assert report["top_1"] == pytest.approx(3 / 6)
    assert report["top_5"] == pytest.approx(5 / 6)
    # Per class: a 1/1, b no videos, c 1/2, d 1/1, e 0/1, f 0/1 -> mean over 5 present classes.
    assert report["per_class"] == {"a": 1.0, "b": None, "c": 0.5, "d": 1.0, "e": 0.0, "f": 0.0}
    assert report["mean_per_class_accuracy"] == pytest.approx((1 + 0.5 + 1 + 0 + 0) / 5)
    expected = np.zeros((6, 6), int)
    for true, pred in [(0, 0), (2, 1), (2, 2), (5, 0), (3, 3), (4, 5)]:
        expected[true, pred] += 1
    assert report["confusion_matrix"] == expected.tolist()
    assert report["num_clips"] == 6
    assert report["per_class_count"] == {"a": 1, "b": 0, "c": 2, "d": 1, "e": 1, "f": 1}


def test_view_averaging_is_clip_major() -> None:
    # 2 videos x 3 views; video 0's views disagree, their mean picks class 1.
    views = np.array(
        [[0.9, 0.1], [0.2, 0.8], [0.1, 0.9], [1.0, 0.0], [0.6, 0.4], [0.8, 0.2]], dtype=float
    )
    mean = metrics.average_views(views, 3)
    np.testing.assert_allclose(mean, [[0.4, 0.6], [0.8, 0.2]])
    with pytest.raises(ValueError, match=r"4-view"):
        metrics.average_views(views, 4)


def test_ties_and_small_k() -> None:
    probs = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    # Ties go to the lower index: row 0 predicts class 0.
    assert metrics.top_k_accuracy(probs, np.array([0, 2]), 1) == 1.0
    assert metrics.top_k_accuracy(probs, np.array([1, 0]), 1) == 0.0
    assert metrics.top_k_accuracy(probs, np.array([1, 0]), 5) == 1.0  # k > K: everything
    with pytest.raises(ValueError, match=r"do not match 4 classes"):
        metrics.classification_report(probs, np.array([0, 1]), ["x", "y", "z", "w"])
