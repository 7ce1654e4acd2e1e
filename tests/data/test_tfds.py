"""The TFDS ucf101 source, on mocked data (no download)."""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from model.data.input import make_tfds_dataset


def test_tfds_ucf101_train_and_eval_from_mock_data() -> None:
    with tfds.testing.mock_data(num_examples=4):
        train = make_tfds_dataset(
            "ucf101",
            split="train",
            data_dir=None,
            num_classes=101,
            num_frames=4,
            image_size=32,
            batch_size=2,
            training=True,
            seed=0,
        )
        clips, labels = next(iter(train))
        assert clips.shape == (2, 4, 32, 32, 3)
        assert labels.shape == (2, 101)
        assert labels.numpy().sum(axis=1).tolist() == [1.0, 1.0]
        test = make_tfds_dataset(
            "ucf101",
            split="test",
            data_dir=None,
            num_classes=101,
            num_frames=4,
            image_size=32,
            batch_size=2,
            training=False,
            num_test_crops=3,
        )
        clips, labels = next(iter(test))
        assert clips.shape == (6, 4, 32, 32, 3)
        assert 0.0 <= float(np.min(clips)) <= float(np.max(clips)) <= 1.0
