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


def test_tfds_random_flip_can_be_turned_off() -> None:
    # Direction-labelled datasets must not be flipped: the switch reaches the TFDS source too.
    def clips(random_flip: bool) -> np.ndarray:
        dataset = make_tfds_dataset(
            "ucf101",
            split="train",
            data_dir=None,
            num_classes=101,
            num_frames=2,
            image_size=16,
            batch_size=8,
            training=True,
            seed=0,
            deterministic=True,
            shuffle_buffer=1,
            random_flip=random_flip,
        )
        return next(iter(dataset))[0].numpy()

    with tfds.testing.mock_data(num_examples=8):
        plain, maybe_flipped = clips(False), clips(True)
    flipped = [i for i in range(8) if not np.allclose(plain[i], maybe_flipped[i], atol=1e-6)]
    assert flipped, "with random_flip=True some of 8 clips should be flipped"
    for i in flipped:  # the only difference is the horizontal flip
        np.testing.assert_allclose(maybe_flipped[i], plain[i][:, :, ::-1], atol=1e-5)
