"""tf.data input: round trip from a synthetic video, training/eval shapes, sharding, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from model.data import input as data_input
from model.data import schema, video_ops
from model.data.video_io import decode_video
from model.errors import DataError
from tests.data.conftest import NUM_CLASSES, NUM_FRAMES, SIZE


def _records(pattern: str) -> list[dict]:
    files = data_input.list_files(pattern)
    return [
        schema.parse_clip_proto(record.numpy())
        for path in files
        for record in tf.data.TFRecordDataset(path)
    ]


def test_round_trip_video_to_clip(preprocessed: Path, synth_root: Path) -> None:
    pattern = schema.split_pattern(str(preprocessed), "test")
    records = _records(pattern)
    dataset = data_input.make_dataset(
        pattern,
        num_classes=NUM_CLASSES,
        num_frames=NUM_FRAMES,
        image_size=SIZE,
        min_image_size=SIZE,  # no resize: the clip is the stored frames themselves
        batch_size=1,
        training=False,
        deterministic=True,
        cycle_length=1,
    )
    clips = list(dataset)
    assert len(clips) == len(records) == 6
    for (clip, label), record in zip(clips, records, strict=True):
        source = decode_video(record["data_path"])
        assert record["example_id"] == Path(record["data_path"]).stem
        assert len(record["frames"]) == source.frames.shape[0] == NUM_FRAMES
        assert record["timestamps_us"] == source.timestamps_us
        assert clip.shape == (1, NUM_FRAMES, SIZE, SIZE, 3)
        got = clip.numpy()[0] * 255.0
        # Same content within JPEG error, frame by frame in the same order.
        error = np.abs(got - source.frames.astype(np.float32)).mean(axis=(1, 2, 3))
        assert error.max() < 4.0, error
        distances = np.abs(got[:, None] - source.frames[None].astype(np.float32)).mean(
            axis=(2, 3, 4)
        )
        assert distances.argmin(axis=1).tolist() == list(range(NUM_FRAMES))
        assert label.numpy()[0].tolist() == np.eye(NUM_CLASSES)[record["label_index"]].tolist()


def test_training_batches_deterministic_and_bfloat16(preprocessed: Path) -> None:
    def _first_batches(seed: int) -> list[np.ndarray]:
        dataset = data_input.make_dataset(
            schema.split_pattern(str(preprocessed), "train"),
            num_classes=NUM_CLASSES,
            num_frames=4,
            image_size=24,
            batch_size=4,
            training=True,
            temporal_stride=2,
            dtype="bfloat16",
            seed=seed,
            deterministic=True,
        )
        return [clips.numpy().astype(np.float32) for clips, _ in dataset.take(3)]

    first, again, other = _first_batches(1), _first_batches(1), _first_batches(2)
    assert first[0].shape == (4, 4, 24, 24, 3)
    assert 0.0 <= first[0].min() <= first[0].max() <= 1.0
    for one, two in zip(first, again, strict=True):
        np.testing.assert_array_equal(one, two)
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_multi_view_eval_and_labels(preprocessed: Path) -> None:
    dataset = data_input.make_dataset(
        schema.split_pattern(str(preprocessed), "test"),
        num_classes=NUM_CLASSES,
        num_frames=4,
        image_size=24,
        batch_size=4,
        training=False,
        num_test_clips=2,
        num_test_crops=3,
    )
    batches = list(dataset)
    assert [clips.shape[0] for clips, _ in batches] == [24, 12]
    assert batches[0][0].shape[1:] == (4, 24, 24, 3)
    labels = np.concatenate([labels.numpy() for _, labels in batches])
    assert labels.shape == (6, NUM_CLASSES)
    assert labels.sum(axis=1).tolist() == [1.0] * 6
    assert data_input.split_size(str(preprocessed), "test") == 6
    assert data_input.count_examples(schema.split_pattern(str(preprocessed), "test")) == 6


@pytest.mark.parametrize("num_pipelines", [2, 3])
def test_input_context_shards_disjointly(preprocessed: Path, num_pipelines: int) -> None:
    # 2 files: 2 pipelines shard files, 3 pipelines shard records; both cover every clip once.
    seen: list[bytes] = []
    for pipeline_id in range(num_pipelines):
        context = tf.distribute.InputContext(num_pipelines, pipeline_id, num_pipelines)
        dataset = data_input.make_dataset(
            schema.split_pattern(str(preprocessed), "train"),
            num_classes=NUM_CLASSES,
            num_frames=2,
            image_size=16,
            batch_size=1,
            training=False,
            input_context=context,
        )
        seen += [clips.numpy().tobytes() for clips, _ in dataset]
    assert len(seen) == 6
    assert len(set(seen)) == 6


def test_no_files_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no input files"):
        data_input.make_dataset(
            str(tmp_path / "*.tfrecord"),
            num_classes=2,
            num_frames=2,
            image_size=8,
            batch_size=1,
            training=True,
        )


def test_device_canvas_batches_give_the_host_pipelines_clips(preprocessed: Path) -> None:
    """The accelerator's half applied to the packed batches reproduces the host pipeline."""
    stored = SIZE  # the synthetic frames are SIZE x SIZE

    def _dataset(**kwargs: object) -> tf.data.Dataset:
        return data_input.make_dataset(
            schema.split_pattern(str(preprocessed), "train"),
            num_classes=NUM_CLASSES,
            num_frames=4,
            image_size=24,
            batch_size=4,
            training=True,
            temporal_stride=2,
            seed=3,
            deterministic=True,
            **kwargs,
        )

    # A canvas taller than the frames and a width that is no multiple of 4 (rounded up).
    packed = _dataset(device_canvas=(stored + 5, stored + 2))
    width = -(-(stored + 2) // 4) * 4
    frames_spec, crop_spec = packed.element_spec[0]["frames"], packed.element_spec[0]["crop"]
    assert frames_spec.shape.as_list() == [4, 4, stored + 5, width * 3 // 4]  # static for XLA
    assert (frames_spec.dtype, crop_spec.dtype) == (tf.int32, tf.int32)
    assert crop_spec.shape.as_list() == [4, 3]
    to_clips = tf.function(
        lambda batch: video_ops.crop_resize_on_device(
            batch["frames"], batch["crop"], image_size=24
        ),
        jit_compile=True,
    )
    host_batches = list(_dataset().take(3))
    flips = set()
    for (batch, labels), (clips, host_labels) in zip(packed.take(3), host_batches, strict=True):
        np.testing.assert_array_equal(labels.numpy(), host_labels.numpy())
        crops = batch["crop"].numpy()
        assert (crops[:, :2] <= [stored, stored]).all()
        assert (crops[:, :2] >= 1).all()
        flips.update(crops[:, 2].tolist())
        np.testing.assert_allclose(to_clips(batch).numpy(), clips.numpy(), atol=2e-5)
    assert flips == {0, 1}
