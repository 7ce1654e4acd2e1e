"""Training and evaluation read a TFDS ``ucf101`` dataset when ``data.tfds_name`` is set (mocked
TFDS data, no download), as Model Garden's ``tfds_name``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tensorflow_datasets as tfds

from components.evaluate import evaluate
from components.train import check_data, train
from model.errors import DataError

OVERRIDES = {
    "data.tfds_name": "ucf101",
    "data.num_classes": 101,
    "data.num_frames": 4,
    "data.image_size": 16,
    "data.shuffle_buffer": 4,
    "train.batch_size": 2,
    "train.steps": 2,
    "train.steps_per_execution": 1,
    "train.warmup_steps": 0,
    "train.checkpoint_every": 2,
    "train.log_every": 2,
    "eval.batch_size": 2,
}


def _standin(cfg):  # -> keras.Model
    import keras

    inputs = keras.Input((cfg.data.num_frames, cfg.data.image_size, cfg.data.image_size, 3))
    pooled = keras.layers.GlobalAveragePooling3D()(inputs)
    return keras.Model(inputs, keras.layers.Dense(cfg.data.num_classes)(pooled))


def test_train_and_evaluate_on_tfds_ucf101(tmp_path: Path) -> None:
    tfds_dir = tmp_path / "tfds"
    tfds_dir.mkdir()
    model_dir = tmp_path / "model"
    with tfds.testing.mock_data(num_examples=6, data_dir=str(tfds_dir)):
        summary = train(
            "synthetic",
            data_dir=str(tfds_dir),
            model_dir=str(model_dir),
            overrides=OVERRIDES,
            build_model_fn=_standin,
        )
        assert summary["steps"] == 2
        labels = (model_dir / "label_map.txt").read_text().splitlines()
        assert len(labels) == 101
        assert labels[0] == tfds.builder("ucf101").info.features["label"].names[0]
        metrics = evaluate(str(model_dir), str(tfds_dir), str(tmp_path / "eval"), split="test")
    # mock_data yields 6 test videos whatever the metadata says; every one is evaluated.
    assert metrics["num_clips"] == 6
    assert len(metrics["per_class"]) == 101
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["top_1"] == metrics["top_1"]


def test_tfds_label_count_mismatch_is_a_data_error(tmp_path: Path) -> None:
    from model.config import from_dict

    cfg = from_dict({}, {**OVERRIDES, "data.num_classes": 4}, "<test>")
    with tfds.testing.mock_data(num_examples=2), pytest.raises(DataError, match="101 classes"):
        check_data(str(tmp_path), cfg, "train")
