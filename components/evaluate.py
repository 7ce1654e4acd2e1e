"""Evaluation step: a model directory + a data split -> metrics.json, a confusion-matrix image and
a short HTML report.

Each video is seen as ``clips x crops`` views (evenly spaced windows x centre or 3 crops); the
softmax probabilities of its views are averaged before scoring, as Model Garden's multi-view
evaluation does. The arithmetic lives in :mod:`model.metrics` (pure numpy).
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from components.train import (
    _join,
    check_data,
    load_experiment,
    make_split_dataset,
    publish,
    write_text,
)
from model import metrics as metrics_lib
from model.config import resolve_data_dtype
from model.errors import DataError

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
CONFUSION_FILE = "confusion_matrix.png"
REPORT_FILE = "report.html"


def load_trained_model(model_dir: str) -> Any:
    """Loads ``model_dir/model.keras`` (custom AssembleNet layers registered first)."""
    import keras
    import tensorflow as tf

    import model.train_lib  # registers the learning-rate schedule used in model.keras

    try:
        import model.assemblenet  # noqa: F401  (registers the custom layers)
    except ImportError:  # pragma: no cover - only while the model package is incomplete
        log.warning("model.assemblenet is not importable; loading plain Keras layers only")
    path = _join(model_dir, "model.keras")
    if not tf.io.gfile.exists(path):
        raise DataError(f"{model_dir} has no model.keras: train a model into it first")
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "model.keras"
        tf.io.gfile.copy(path, str(local))
        return keras.models.load_model(local, compile=False)


def predict_split(
    network: Any,
    dataset: Any,
    *,
    num_views: int,
    num_clips_expected: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Runs ``network`` over an evaluation dataset and averages the views.

    Args:
        network: keras model returning logits [B * V, K].
        dataset: yields (views [B * V, T, S, S, 3], one-hot labels [B, K]), finite.
        num_views: V.
        num_clips_expected: for the progress ETA only.

    Returns:
        (probabilities [N, K] averaged over views, labels [N]).
    """
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def probabilities(clips: tf.Tensor) -> tf.Tensor:
        return tf.nn.softmax(tf.cast(network(clips, training=False), tf.float32), axis=-1)

    all_probs, all_labels = [], []
    seen, start, last_log = 0, time.perf_counter(), time.perf_counter()
    for clips, labels in dataset:
        view_probs = probabilities(clips).numpy()
        all_probs.append(metrics_lib.average_views(view_probs, num_views))
        all_labels.append(np.argmax(labels.numpy(), axis=1))
        seen += int(labels.shape[0])
        now = time.perf_counter()
        if now - last_log > 10:
            rate = seen / (now - start)
            eta = (
                f", ETA {max(num_clips_expected - seen, 0) / rate:.0f}s"
                if num_clips_expected
                else ""
            )
            log.info("evaluated %d clips (%.1f clips/s%s)", seen, rate, eta)
            last_log = now
    if not all_probs:
        raise DataError("the evaluation split yielded no clips")
    return np.concatenate(all_probs), np.concatenate(all_labels)


def plot_confusion_matrix(matrix: np.ndarray, class_names: list[str]) -> bytes:
    """PNG bytes of the row-normalised confusion matrix with counts in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    k = len(class_names)
    size = min(4 + 0.35 * k, 30)
    figure, axes = plt.subplots(figsize=(size, size * 0.85))
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, np.maximum(rows, 1))
    image = axes.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="fraction of true class")
    axes.set_xticks(range(k), class_names, rotation=90 if k > 8 else 45, ha="right")
    axes.set_yticks(range(k), class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    if k <= 30:  # counts stay legible up to ~30 classes
        for i in range(k):
            for j in range(k):
                if matrix[i, j]:
                    colour = "white" if normalised[i, j] > 0.5 else "black"
                    axes.text(j, i, str(matrix[i, j]), ha="center", va="center", color=colour)
    axes.set_title("Confusion matrix")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def render_report(result: dict[str, Any], png: bytes) -> str:
    """A self-contained HTML page: headline metrics, per-class table, embedded image."""
    esc = html.escape
    rows = "\n".join(
        f"<tr><td>{esc(name)}</td><td>{result['per_class_count'][name]}</td>"
        f"<td>{'-' if acc is None else f'{acc:.3f}'}</td></tr>"
        for name, acc in result["per_class"].items()
    )
    image = base64.b64encode(png).decode("ascii")
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Evaluation: {esc(result["split"])}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}td:first-child{{text-align:left}}
</style></head><body>
<h1>Evaluation of {esc(result["model_dir"])}</h1>
<p>Split <b>{esc(result["split"])}</b> of {esc(result["data_dir"])}: {result["num_clips"]} videos,
{result["num_test_clips"]} clip(s) x {result["num_test_crops"]} crop(s) per video, probabilities
averaged over views.</p>
<table><tr><th>metric</th><th>value</th></tr>
<tr><td>top-1 accuracy</td><td>{result["top_1"]:.4f}</td></tr>
<tr><td>top-5 accuracy</td><td>{result["top_5"]:.4f}</td></tr>
<tr><td>mean per-class accuracy</td><td>{result["mean_per_class_accuracy"]:.4f}</td></tr>
</table>
<h2>Confusion matrix</h2>
<img alt="confusion matrix" src="data:image/png;base64,{image}">
<h2>Per-class accuracy</h2>
<table><tr><th>class</th><th>videos</th><th>accuracy</th></tr>
{rows}
</table></body></html>
"""


def evaluate(
    model_dir: str,
    data_dir: str,
    out_dir: str,
    *,
    split: str = "test",
    num_test_clips: int | None = None,
    num_test_crops: int | None = None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Evaluates a trained model directory on one split and writes the reports.

    Args:
        model_dir: written by :func:`components.train.train` (local or ``gs://``).
        data_dir: preprocessed data directory with ``<split>-*.tfrecord`` (a TFDS data
            directory when the experiment sets ``data.tfds_name``).
        out_dir: where ``metrics.json``, ``confusion_matrix.png`` and ``report.html`` go.
        split: ``test``, ``val`` or ``train``.
        num_test_clips: views in time per video (default: the experiment's eval section).
        num_test_crops: 1 or 3 crops per clip (default: the experiment's eval section).
        batch_size: videos per batch (default: the experiment's eval section).

    Returns:
        The metrics (see :func:`model.metrics.classification_report`) plus ``split``,
        ``num_test_clips``, ``num_test_crops``, ``model_dir``, ``data_dir``, ``wall_s``.

    Raises:
        DataError: missing model/data, empty split, or label maps that disagree.
    """
    from model.data import schema

    cfg = load_experiment(model_dir)
    clips = num_test_clips or cfg.eval.num_test_clips
    crops = num_test_crops or cfg.eval.num_test_crops
    if crops not in (1, 3):
        raise DataError(f"--crops must be 1 or 3, got {crops}")
    if clips < 1:
        raise DataError(f"--clips must be >= 1, got {clips}")
    data = check_data(data_dir, cfg, split)
    class_names = schema.read_label_map(model_dir)
    if class_names != data["class_names"]:
        raise DataError(
            f"the label map of {model_dir} differs from the one of {data_dir}: the model was "
            "trained on other classes"
        )
    network = load_trained_model(model_dir)
    dataset = make_split_dataset(
        cfg,
        data_dir,
        data["files"],
        split=split,
        batch_size=batch_size or cfg.eval.batch_size,
        training=False,
        num_test_clips=clips,
        num_test_crops=crops,
        dtype=resolve_data_dtype(cfg, on_tpu=False),
        deterministic=True,
        repeat=False,
        drop_remainder=False,
    )
    start = time.perf_counter()
    probabilities, labels = predict_split(
        network, dataset, num_views=clips * crops, num_clips_expected=data["clips"]
    )
    wall = time.perf_counter() - start
    result: dict[str, Any] = metrics_lib.classification_report(probabilities, labels, class_names)
    result.update(
        split=split,
        num_test_clips=clips,
        num_test_crops=crops,
        model_dir=model_dir,
        data_dir=data_dir,
        wall_s=round(wall, 3),
        clips_per_s=round(len(labels) / wall, 3) if wall > 0 else None,
    )
    log.info(
        "%s: top-1 %.4f, top-5 %.4f, mean per-class %.4f over %d videos (%d views each)",
        split,
        result["top_1"],
        result["top_5"],
        result["mean_per_class_accuracy"],
        result["num_clips"],
        clips * crops,
    )
    png = plot_confusion_matrix(np.asarray(result["confusion_matrix"]), class_names)
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / CONFUSION_FILE
        image.write_bytes(png)
        publish(image, _join(out_dir, CONFUSION_FILE))
    write_text(_join(out_dir, REPORT_FILE), render_report(result, png))
    write_text(_join(out_dir, METRICS_FILE), json.dumps(result, indent=2) + "\n")
    return result
