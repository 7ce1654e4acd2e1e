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


def test_pack_bytes_round_trip_keeps_every_byte_value() -> None:
    frames = tf.constant(np.arange(2 * 3 * 4 * 3 * 3).reshape(2, 3, 4 * 3, 3) % 256, tf.uint8)
    packed = video_ops.pack_bytes(frames)
    assert (packed.dtype, packed.shape.as_list()) == (tf.int32, [2, 3, 9])  # 4 bytes a word
    # Values >= 128 in the top byte make negative words; unpacking must not sign-extend.
    assert packed.numpy().min() < 0
    unpacked = video_ops.unpack_bytes(packed, 3).numpy()
    np.testing.assert_array_equal(unpacked, frames.numpy().astype(np.int32))


def test_device_half_equals_train_clip_and_ignores_the_padding() -> None:
    encoded = _encoded_clip(12)
    height, width = 44, 60  # canvas larger than the 40x56 frames
    frames, crops, expected = [], [], []
    for i in range(8):
        seed = tf.constant([i, 5])
        options = {"num_frames": 5, "stride": 2, "seed": seed}
        expected.append(video_ops.train_clip(encoded, image_size=24, **options).numpy())
        crop_frames, crop = video_ops.train_crop_for_device(
            encoded, max_height=height, max_width=width, **options
        )
        h, w = crop_frames.shape[1:3]
        assert crop.numpy().tolist()[:2] == [h, w]
        # Fill the canvas around the crop with white: none of it may reach the clip.
        canvas = np.full((5, height, width, 3), 255, np.uint8)
        canvas[:, :h, :w] = crop_frames.numpy()
        frames.append(canvas)
        crops.append(crop)
    clips = video_ops.crop_resize_on_device(
        video_ops.pack_bytes(tf.constant(np.stack(frames))), tf.stack(crops), image_size=24
    )
    assert {int(c[2]) for c in crops} == {0, 1}  # both flip decisions are covered
    np.testing.assert_allclose(clips.numpy(), np.stack(expected), atol=2e-5)


def test_crops_larger_than_the_canvas_are_shrunk_to_fit() -> None:
    encoded = _encoded_clip(6)  # 40x56 frames
    for i in range(5):
        frames, crop = video_ops.train_crop_for_device(
            encoded, num_frames=3, stride=1, seed=tf.constant([i, 9]), max_height=20, max_width=24
        )
        h, w, _ = crop.numpy().tolist()
        assert frames.shape[1:] == (h, w, 3)
        assert frames.dtype == tf.uint8
        assert h <= 20
        assert w <= 24
        assert h == 20 or w == 24  # fills the canvas on one side
