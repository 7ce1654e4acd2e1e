"""Pure sampling and cropping ops: semantics, and eager == inside tf.data.map."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from model.data import video_ops
from model.data.video_io import encode_jpeg


def _encoded_clip(num_frames: int, height: int = 40, width: int = 56) -> tf.Tensor:
    rng = np.random.default_rng(1)
    frames = []
    for t in range(num_frames):
        frame = rng.integers(0, 60, size=(height, width, 3), dtype=np.uint8)
        frame[..., 0] = 8 * t  # the red level encodes the frame index
        frames.append(encode_jpeg(frame, quality=95))
    return tf.constant(frames)


def test_train_indices_offset_range_and_stride() -> None:
    offsets = set()
    for i in range(60):
        indices = video_ops.sample_train_indices(20, 4, 3, tf.constant([i, 7])).numpy()
        assert np.all(np.diff(indices) == 3)
        offsets.add(int(indices[0]))
    # max_offset = 20 - 3 * 3 = 11: offsets cover [0, 11) and nothing else.
    assert offsets <= set(range(11))
    assert len(offsets) > 6


def test_short_clip_loops() -> None:
    indices = video_ops.sample_train_indices(3, 8, 1, tf.constant([0, 0])).numpy()
    assert indices.tolist() == [(indices[0] + i) % 3 for i in range(8)]
    assert video_ops.sample_eval_indices(3, 5, 1).numpy().tolist() == [[0, 1, 2, 0, 1]]


def test_eval_indices_centre_and_linspace() -> None:
    assert video_ops.sample_eval_indices(20, 4, 2).numpy().tolist() == [[6, 8, 10, 12]]
    many = video_ops.sample_eval_indices(20, 4, 1, num_clips=3).numpy()
    assert many[:, 0].tolist() == [0, 8, 16]
    assert many[2].tolist() == [16, 17, 18, 19]


def test_crop_window_within_image_and_area_range() -> None:
    for i in range(20):
        y, x, h, w = video_ops.random_crop_window(tf.constant([40, 56, 3]), tf.constant([i, 1]))
        y, x, h, w = int(y), int(x), int(h), int(w)
        assert 0 <= y <= y + h <= 40
        assert 0 <= x <= x + w <= 56
        assert 0.45 <= h * w / (40 * 56) <= 1.0


def test_train_clip_eager_equals_tf_data_map() -> None:
    encoded = _encoded_clip(12)
    seeds = tf.constant([[1, 2], [3, 4], [5, 6]], tf.int64)

    def _clip(data: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        return video_ops.train_clip(data, num_frames=5, stride=2, image_size=24, seed=seed)

    eager = [_clip(encoded, seed).numpy() for seed in seeds]
    dataset = tf.data.Dataset.from_tensors(encoded).repeat(3)
    mapped = tf.data.Dataset.zip((dataset, tf.data.Dataset.from_tensor_slices(seeds))).map(_clip)
    graph = [clip.numpy() for clip in mapped]
    for one, two in zip(eager, graph, strict=True):
        assert one.shape == (5, 24, 24, 3)
        assert 0.0 <= one.min() <= one.max() <= 1.0
        np.testing.assert_allclose(one, two, atol=1e-6)
    # Consecutive frames are `stride` apart: the red level steps by 2 * 8 / 255 (mod looping).
    red = eager[0][..., 0].mean(axis=(1, 2)) * 255
    steps = np.round(np.diff(red) / 8).astype(int)
    assert set(steps.tolist()) <= {2, 2 - 12}


@pytest.mark.parametrize(("clips", "crops"), [(1, 1), (2, 3)])
def test_eval_clip_eager_equals_tf_data_map(clips: int, crops: int) -> None:
    encoded = _encoded_clip(10)

    def _clip(data: tf.Tensor) -> tf.Tensor:
        return video_ops.eval_clip(
            data, num_frames=4, stride=1, image_size=32, num_clips=clips, num_crops=crops
        )

    eager = _clip(encoded).numpy()
    graph = next(iter(tf.data.Dataset.from_tensors(encoded).map(_clip))).numpy()
    assert eager.shape == (clips * crops, 4, 32, 32, 3)
    np.testing.assert_allclose(eager, graph, atol=1e-6)
    if crops == 3:
        # Landscape frames: the three crops are left, centre and right, so they differ.
        assert not np.allclose(eager[0], eager[2])


def test_flip_is_one_decision_per_clip_and_bfloat16() -> None:
    frames = tf.reshape(tf.range(2 * 2 * 3 * 3, dtype=tf.float32), [2, 2, 3, 3])
    mirrored = frames.numpy()[:, :, ::-1]  # columns reversed, channel order kept
    flips = [video_ops.random_flip(frames, tf.constant([i, 0])).numpy() for i in range(10)]
    kinds = [
        "mirrored" if np.array_equal(f, mirrored) else "same" if np.array_equal(f, frames) else "?"
        for f in flips
    ]
    assert set(kinds) == {"mirrored", "same"}
    out = video_ops.to_unit_range(tf.constant([0.0, 255.0, 300.0]), "bfloat16")
    assert out.dtype == tf.bfloat16
    assert out.numpy().astype(np.float32).tolist() == [0.0, 1.0, 1.0]
