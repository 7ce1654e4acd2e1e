"""Training with the spatial augmentation on the accelerator (``data.spatial_augmentation:
device``) is the same training as with it on the host, and its checkpoints are the network's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from components.train import read_scalars, train
from tests.training.helpers import conv_standin


def _train(data: Path, model_dir: Path, steps: int, where: str) -> dict[str, Any]:
    overrides = {
        "data.num_classes": 4,
        "data.num_frames": 4,
        "data.image_size": 16,
        "data.spatial_augmentation": where,
        "data.frame_canvas_height": 24,  # the tiny clips are stored at 24x24
        "data.frame_canvas_width": 24,
        "train.batch_size": 4,
        "train.steps": steps,
        "train.steps_per_execution": 2,
        "train.checkpoint_every": 2,
        "train.log_every": 2,
        "train.warmup_steps": 0,
        "train.learning_rate": 0.05,
        "train.deterministic": True,
        "train.seed": 3,
    }
    return train(
        "synthetic",
        data_dir=str(data),
        model_dir=str(model_dir),
        overrides=overrides,
        build_model_fn=conv_standin,
    )


def _weights(model_dir: Path) -> list[np.ndarray]:
    return keras.saving.load_model(model_dir / "model.keras").get_weights()


def test_device_augmentation_trains_like_host_augmentation(tmp_path: Path, tiny_data: Path) -> None:
    host = _train(tiny_data, tmp_path / "host", 4, "host")
    device = _train(tiny_data, tmp_path / "device", 4, "device")
    assert (device["spatial_augmentation"], device["steps"]) == ("device", 4)
    assert device["num_params"] == host["num_params"]  # the exported model is the bare network
    # Same clips up to float rounding, so the same updates.
    assert device["final_loss"] == pytest.approx(host["final_loss"], rel=1e-3)
    for one, two in zip(_weights(tmp_path / "host"), _weights(tmp_path / "device"), strict=True):
        np.testing.assert_allclose(one, two, atol=1e-4)
    saved = keras.saving.load_model(tmp_path / "device" / "model.keras")
    assert saved.input_shape == (None, 4, 16, 16, 3)

    # Resuming keeps the exact input position while the pipeline is unchanged...
    resumed = _train(tiny_data, tmp_path / "device", 6, "device")
    assert (resumed["initial_step"], resumed["steps"]) == (4, 6)
    assert resumed["data_position_restored"] is True
    # ...and a job switched to the other side resumes the same weights with reseeded data.
    switched = _train(tiny_data, tmp_path / "device", 8, "host")
    assert (switched["initial_step"], switched["steps"]) == (6, 8)
    assert switched["data_position_restored"] is False
    assert np.isfinite(switched["final_loss"])
    # The three jobs' logs make one history, plotted in the model directory.
    curves = read_scalars(str(tmp_path / "device" / "logs" / "train"))
    assert [step for step, _ in curves["loss"]] == [2, 4, 6, 8]
    assert curves["loss"][-1][1] == pytest.approx(switched["final_loss"])
    png = (tmp_path / "device" / "training_curves.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
