"""Evaluation against a hand-computed case, the serving signatures, and the data checks.

The stand-in network has known outputs: it averages every pixel of the clip into one brightness
m and scores class k by -s (m - c_k)^2 with very sharp s, so a clip whose frames all have the
level c_k is classified as k with probability 1. Videos are built from 3 windows of such
frames, so single-view and 3-clip evaluation give different, hand-computable answers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from components.evaluate import evaluate
from components.train import check_data, write_model_dir
from model.config import from_dict
from model.errors import DataError

LEVELS = [25, 76, 127, 178]  # uint8 brightness of classes 0..3
NAMES = ["dark", "dim", "mid", "bright"]
T, S = 4, 8


def _video(windows: list[int]) -> np.ndarray:
    """12 frames of 16x16: 3 windows of T=4 constant frames with the given class levels."""
    frames = [np.full((T, 16, 16, 3), LEVELS[k], np.uint8) for k in windows]
    return np.concatenate(frames)


# (label, class level of windows 0, 1, 2). The centre window (single view) is window 1.
VIDEOS = [
    (0, [0, 0, 0]),
    (1, [1, 1, 1]),
    (2, [2, 2, 2]),
    (3, [3, 1, 3]),
    (2, [0, 0, 0]),
    (3, [3] * 3),
]


def _standin_model():  # -> keras.Model
    import keras

    sharp = 2000.0
    inputs = keras.Input((T, S, S, 3), name="image")
    rgb = keras.layers.GlobalAveragePooling3D()(inputs)  # (B, 3)
    m = keras.layers.Dense(1, use_bias=False, name="brightness")(rgb)  # mean of channels
    features = keras.layers.Concatenate()([m, keras.layers.Multiply()([m, m])])  # (B, 2)
    logits = keras.layers.Dense(4, name="logits")(features)
    model = keras.Model(inputs, logits)
    centres = np.array(LEVELS, "float32") / 255.0
    model.get_layer("brightness").set_weights([np.full((3, 1), 1 / 3, "float32")])
    # -s (m - c)^2 = 2 s c m - s m^2 - s c^2
    kernel = np.stack([2 * sharp * centres, -sharp * np.ones(4, "float32")])
    model.get_layer("logits").set_weights([kernel, -sharp * centres**2])
    return model


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from tests.training.helpers import write_data_dir

    root = tmp_path_factory.mktemp("eval")
    data = write_data_dir(
        root / "data", {"test": [(label, _video(w)) for label, w in VIDEOS]}, NAMES
    )
    cfg = from_dict(
        {
            "data": {"num_classes": 4, "num_frames": T, "image_size": S, "temporal_stride": 1},
            "eval": {"batch_size": 4},  # 6 videos: the last batch is partial
        }
    )
    model_dir = root / "model"
    write_model_dir(_standin_model(), cfg, str(model_dir), NAMES)
    return data, model_dir


def test_single_view_metrics_match_hand_computation(trained_dir, tmp_path: Path) -> None:
    data, model_dir = trained_dir
    result = evaluate(str(model_dir), str(data), str(tmp_path / "out"))
    # Centre windows -> predictions 0, 1, 2, 1, 0, 3 for labels 0, 1, 2, 3, 2, 3.
    assert result["top_1"] == pytest.approx(4 / 6)
    assert result["per_class"] == {"dark": 1.0, "dim": 1.0, "mid": 0.5, "bright": 0.5}
    assert result["mean_per_class_accuracy"] == pytest.approx(0.75)
    assert result["confusion_matrix"] == [[1, 0, 0, 0], [0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 1]]
    assert result["num_clips"] == 6
    written = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert written["top_1"] == result["top_1"]
    assert (tmp_path / "out" / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    report = (tmp_path / "out" / "report.html").read_text()
    assert "data:image/png;base64," in report
    assert "0.6667" in report


def test_three_clips_average_views(trained_dir, tmp_path: Path) -> None:
    data, model_dir = trained_dir
    result = evaluate(str(model_dir), str(data), str(tmp_path / "out"), num_test_clips=3)
    # Video 4 now sees windows (bright, dim, bright): mean probabilities (0, 1/3, 0, 2/3) -> 3.
    assert result["top_1"] == pytest.approx(5 / 6)
    assert result["per_class"]["bright"] == 1.0
    assert result["mean_per_class_accuracy"] == pytest.approx((1 + 1 + 0.5 + 1) / 4)
    assert result["num_test_clips"] == 3
    three_crops = evaluate(
        str(model_dir), str(data), str(tmp_path / "out3"), num_test_clips=3, num_test_crops=3
    )
    assert three_crops["confusion_matrix"] == result["confusion_matrix"]  # uniform frames


def test_serving_signatures_return_probabilities(trained_dir) -> None:
    import tensorflow as tf

    from tests.training.helpers import encode_jpeg

    _, model_dir = trained_dir
    loaded = tf.saved_model.load(str(model_dir / "saved_model"))
    video = _video([3, 1, 3])
    # uint8 signature: T frames of any size; 16x16 is resized to 9 and centre-cropped to 8.
    out = loaded.signatures["serving_default"](frames=tf.constant(video[None, :T]))
    probs = out["probabilities"].numpy()
    assert probs.shape == (1, 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert probs.argmax() == 3
    # JPEG signature: all 12 frames; it takes the centre window (frames 4..7, class 1).
    jpegs = tf.constant([[encode_jpeg(f) for f in video]] * 2)
    jpeg_probs = loaded.signatures["serving_jpeg"](frames=jpegs)["probabilities"].numpy()
    assert jpeg_probs.shape == (2, 4)
    assert list(jpeg_probs.argmax(axis=1)) == [1, 1]


def test_model_directory_contract(trained_dir) -> None:
    _, model_dir = trained_dir
    names = {p.name for p in model_dir.iterdir()}
    assert {"model.keras", "saved_model", "experiment.yaml", "label_map.txt"} <= names
    assert not [n for n in names if n.startswith(".")]  # no staging leftovers
    assert (model_dir / "label_map.txt").read_text().split() == NAMES


def test_data_errors_are_clear(tmp_path: Path, data_writer) -> None:
    cfg = from_dict({"data": {"num_classes": 2}})
    with pytest.raises(DataError, match=r"data directory not found"):
        check_data(str(tmp_path / "nowhere"), cfg)
    clip = [(0, _video([0, 0, 0])), (1, _video([1, 1, 1]))]
    three = data_writer("three", {"train": clip}, ["a", "b", "c"])
    with pytest.raises(DataError, match=r"lists 3 classes but the config has data.num_classes=2"):
        check_data(str(three), cfg)
    two = data_writer("two", {"train": clip}, ["a", "b"])
    assert check_data(str(two), cfg)["clips"] == 2
    with pytest.raises(DataError, match=r"no 'test' shards"):
        check_data(str(two), cfg, "test")
    stats = json.loads((two / "stats.json").read_text())
    stats["splits"]["train"]["clips"] = 0
    (two / "stats.json").write_text(json.dumps(stats))
    with pytest.raises(DataError, match=r"split 'train' .* is empty"):
        check_data(str(two), cfg)


def test_evaluate_rejects_a_model_trained_on_other_classes(trained_dir, data_writer) -> None:
    _, model_dir = trained_dir
    other = data_writer("other", {"test": [(0, _video([0, 0, 0]))]}, ["w", "x", "y", "z"])
    with pytest.raises(DataError, match=r"label map .* differs"):
        evaluate(str(model_dir), str(other), str(other / "out"))
    with pytest.raises(DataError, match=r"not a model directory"):
        evaluate(str(other), str(other), str(other / "out"))
