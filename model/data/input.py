"""The ``tf.data`` input pipeline: TFRecord shards (or TFDS ``ucf101``) to batches of clips.

Reading follows Model Garden's ``input_reader``: the files are listed, shuffled each epoch in
training, sharded across input pipelines (multi-host TPU) when there are at least as many files as
pipelines (otherwise every pipeline reads every file and keeps every n-th record), interleaved,
shuffled, parsed, and batched. Temporal sampling happens before JPEG decoding, so only the sampled
frames are decoded (:mod:`model.data.video_ops`).

Output: ``(clips, labels)`` with clips in [0, 1], float32 or bfloat16, shape [B, T, S, S, 3]
(evaluation with several views: [B * views, T, S, S, 3], consecutive rows are the views of one
clip) and labels float32 one-hot (k-hot for multi-label records) [B, K].

Training with ``device_canvas=(H, W)`` leaves the spatial augmentation to the accelerator: the
clips are then ``{"frames": int32 [B, T, H, W' * 3 / 4], "crop": int32 [B, 3]}``, each clip's
decoded crop padded into an H x W' canvas (W rounded up to a multiple of 4) and packed four bytes
to a word, which :func:`model.data.video_ops.crop_resize_on_device` turns into the same
[B, T, S, S, 3] clips on the device. The host then decodes and copies bytes only, and sends a
quarter of the float32 clips' bytes per pixel.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from model.data import schema, video_ops
from model.errors import DataError

logger = logging.getLogger(__name__)

_DTYPES = {"float32": tf.float32, "bfloat16": tf.bfloat16}


def list_files(file_pattern: str | Sequence[str]) -> list[str]:
    """Expand one or more glob patterns (local or ``gs://``) to a sorted, de-duplicated file list.

    Raises:
        DataError: nothing matches.
    """
    patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
    files = sorted({path for pattern in patterns for path in tf.io.gfile.glob(pattern)})
    if not files:
        raise DataError(f"no input files match {patterns}")
    return files


def count_examples(file_pattern: str | Sequence[str]) -> int:
    """Count the records in the matching files (reads them; prefer ``stats.json`` when present)."""
    dataset = tf.data.TFRecordDataset(list_files(file_pattern))
    return int(dataset.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1).numpy())


def split_size(data_dir: str, split: str) -> int:
    """Return the number of clips in ``split`` from ``stats.json`` (or by counting the shards)."""
    try:
        stats = schema.read_stats(data_dir)
        return int(stats["splits"][split]["clips"])
    except (DataError, KeyError, json.JSONDecodeError):
        return count_examples(schema.split_pattern(data_dir, split))


def _resolve_dtype(dtype: Any) -> tf.DType:
    if isinstance(dtype, tf.DType):
        return dtype
    if dtype not in _DTYPES:
        raise DataError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    return _DTYPES[dtype]


def _labels(label_index: tf.Tensor, num_classes: int) -> tf.Tensor:
    # Sum of one-hots: one label gives one-hot, several labels give k-hot (as Model Garden).
    one_hot = tf.one_hot(tf.cast(label_index, tf.int32), num_classes, dtype=tf.float32)
    return tf.reduce_sum(one_hot, axis=0)


def _process(
    dataset: tf.data.Dataset,
    *,
    num_classes: int,
    num_frames: int,
    image_size: int,
    batch_size: int,
    training: bool,
    temporal_stride: int,
    num_test_clips: int,
    num_test_crops: int,
    min_image_size: int | None,
    dtype: Any,
    shuffle_buffer: int,
    seed: int | None,
    deterministic: bool,
    repeat: bool | None,
    drop_remainder: bool | None,
    random_flip: bool = True,
    device_canvas: tuple[int, int] | None = None,
) -> tf.data.Dataset:
    """Shared tail of both sources: dataset of ``{IMAGE_KEY: [N] str, LABEL_KEY: [k]}`` dicts."""
    if num_frames < 1 or image_size < 1 or batch_size < 1 or temporal_stride < 1:
        raise DataError("num_frames, image_size, batch_size and temporal_stride must be >= 1")
    if num_test_crops not in (1, 3):
        raise DataError(f"num_test_crops must be 1 or 3, got {num_test_crops}")
    if num_test_clips < 1:
        raise DataError(f"num_test_clips must be >= 1, got {num_test_clips}")
    if device_canvas is not None and min(device_canvas) < 1:
        raise DataError(f"device_canvas must be (height, width) >= 1, got {device_canvas}")
    out_dtype = _resolve_dtype(dtype)
    repeat = training if repeat is None else repeat
    drop_remainder = training if drop_remainder is None else drop_remainder
    if repeat:
        dataset = dataset.repeat()
    if training and shuffle_buffer > 1:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed)
    parallel = tf.data.AUTOTUNE
    if training:
        # One stateless seed per clip; with a fixed seed the whole stream is reproducible.
        seeds = tf.data.Dataset.random(seed=seed).batch(2)
        dataset = tf.data.Dataset.zip((dataset, seeds))
        if device_canvas is not None:
            dataset = _batch_for_device(
                dataset,
                device_canvas,
                num_classes=num_classes,
                num_frames=num_frames,
                temporal_stride=temporal_stride,
                batch_size=batch_size,
                random_flip=random_flip,
                deterministic=deterministic,
                drop_remainder=drop_remainder,
            )
        else:

            def _train(features: dict[str, tf.Tensor], clip_seed: tf.Tensor) -> tuple[Any, Any]:
                clip = video_ops.train_clip(
                    features[schema.IMAGE_KEY],
                    num_frames=num_frames,
                    stride=temporal_stride,
                    image_size=image_size,
                    seed=clip_seed,
                    dtype=out_dtype,
                    random_flip_lr=random_flip,
                )
                return clip, _labels(features[schema.LABEL_KEY], num_classes)

            dataset = dataset.map(_train, num_parallel_calls=parallel, deterministic=deterministic)
            dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    else:
        views = num_test_clips * num_test_crops

        def _eval(features: dict[str, tf.Tensor]) -> tuple[Any, Any]:
            clip = video_ops.eval_clip(
                features[schema.IMAGE_KEY],
                num_frames=num_frames,
                stride=temporal_stride,
                image_size=image_size,
                min_size=min_image_size,
                num_clips=num_test_clips,
                num_crops=num_test_crops,
                dtype=out_dtype,
            )
            if views == 1:
                clip = clip[0]
            return clip, _labels(features[schema.LABEL_KEY], num_classes)

        dataset = dataset.map(_eval, num_parallel_calls=parallel, deterministic=deterministic)
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
        if views > 1:

            def _fold_views(clips: tf.Tensor, labels: tf.Tensor) -> tuple[Any, Any]:
                # (B, V, T, S, S, 3) -> (B*V, T, S, S, 3): rows of one clip stay adjacent.
                shape = tf.shape(clips)
                folded = tf.reshape(clips, tf.concat([[shape[0] * views], shape[2:]], 0))
                return folded, labels

            dataset = dataset.map(_fold_views)
    options = tf.data.Options()
    options.deterministic = deterministic
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def _batch_for_device(
    dataset: tf.data.Dataset,
    canvas: tuple[int, int],
    *,
    num_classes: int,
    num_frames: int,
    temporal_stride: int,
    batch_size: int,
    random_flip: bool,
    deterministic: bool,
    drop_remainder: bool,
) -> tf.data.Dataset:
    """Training batches of packed crops for :func:`video_ops.crop_resize_on_device`."""
    height, width = canvas[0], -(-canvas[1] // 4) * 4  # packing needs W * 3 % 4 == 0

    def _crop(features: dict[str, tf.Tensor], clip_seed: tf.Tensor) -> tuple[Any, Any]:
        frames, crop = video_ops.train_crop_for_device(
            features[schema.IMAGE_KEY],
            num_frames=num_frames,
            stride=temporal_stride,
            seed=clip_seed,
            max_height=height,
            max_width=width,
            random_flip_lr=random_flip,
        )
        return {"frames": frames, "crop": crop}, _labels(features[schema.LABEL_KEY], num_classes)

    def _pack(clips: dict[str, tf.Tensor], labels: tf.Tensor) -> tuple[Any, Any]:
        return {"frames": video_ops.pack_bytes(clips["frames"]), "crop": clips["crop"]}, labels

    dataset = dataset.map(_crop, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    # Padding to a fixed canvas (not the batch's largest crop) keeps shapes static for XLA and
    # costs no extra copy: padded_batch writes each crop into the batch buffer once.
    dataset = dataset.padded_batch(
        batch_size,
        padded_shapes=({"frames": [num_frames, height, width, 3], "crop": [3]}, [num_classes]),
        drop_remainder=drop_remainder,
    )
    return dataset.map(_pack)


def make_dataset(
    file_pattern: str | Sequence[str],
    *,
    num_classes: int,
    num_frames: int,
    image_size: int,
    batch_size: int,
    training: bool,
    temporal_stride: int = 1,
    num_test_clips: int = 1,
    num_test_crops: int = 1,
    min_image_size: int | None = None,
    dtype: Any = "float32",
    shuffle_buffer: int = 64,
    seed: int | None = None,
    deterministic: bool = False,
    input_context: tf.distribute.InputContext | None = None,
    repeat: bool | None = None,
    drop_remainder: bool | None = None,
    random_flip: bool = True,
    cycle_length: int = 10,
    device_canvas: tuple[int, int] | None = None,
) -> tf.data.Dataset:
    """Build the input pipeline over TFRecord shards written by ``assemblenet data preprocess``.

    Args:
        file_pattern: glob(s) of the shards, e.g. ``schema.split_pattern(dir, "train")``.
        num_classes: K, width of the one-hot labels.
        num_frames: T, frames per clip.
        image_size: S, output side in pixels.
        batch_size: B, clips per batch (per replica when ``input_context`` is given, as the caller
            passes ``input_context.get_per_replica_batch_size(global_batch)``).
        training: random window, crop and flip (else deterministic evaluation views).
        temporal_stride: step between sampled frames.
        num_test_clips: evaluation windows per clip.
        num_test_crops: evaluation crops per window (1 or 3).
        min_image_size: evaluation resize of the smallest side (default ``S * 256 / 224``).
        dtype: ``"float32"`` or ``"bfloat16"``.
        shuffle_buffer: records held for shuffling in training.
        seed: seeds file order, shuffle and augmentation (reproducible with ``deterministic``).
        deterministic: keep element order fixed (for tests and reproducible runs).
        input_context: ``tf.distribute.InputContext`` for multi-pipeline sharding.
        repeat: repeat forever (default: ``training``).
        drop_remainder: drop the last partial batch (default: ``training``).
        random_flip: random horizontal flip in training (off when labels are directions).
        cycle_length: files read concurrently.
        device_canvas: ``(H, W)`` to leave training's flip, resize and scaling to the
            accelerator (see the module docstring); at least the stored frame size, else larger
            crops are shrunk on the host. ``dtype`` then applies on the device. Ignored in
            evaluation.

    Returns:
        Dataset of ``(clips, labels)`` as described in the module docstring.

    Raises:
        DataError: no files match, or invalid sizes.
    """
    files = list_files(file_pattern)
    num_pipelines = input_context.num_input_pipelines if input_context else 1
    pipeline_id = input_context.input_pipeline_id if input_context else 0
    dataset = tf.data.Dataset.from_tensor_slices(files)
    shard_records = num_pipelines > 1 and len(files) < num_pipelines
    if num_pipelines > 1 and not shard_records:
        dataset = dataset.shard(num_pipelines, pipeline_id)
    # Sharding records by position needs the same record order in every pipeline: no per-host
    # file shuffle and a deterministic interleave (the shuffle buffer still mixes records).
    if training and not shard_records:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.interleave(
        tf.data.TFRecordDataset,
        cycle_length=max(1, min(cycle_length, len(files))),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic or shard_records,
    )
    if shard_records:
        dataset = dataset.shard(num_pipelines, pipeline_id)
    dataset = dataset.map(schema.parse_clip, num_parallel_calls=tf.data.AUTOTUNE)
    logger.info(
        "input: %d files (%s), pipeline %d/%d, training=%s",
        len(files),
        "records sharded" if shard_records else "files sharded",
        pipeline_id,
        num_pipelines,
        training,
    )
    return _process(
        dataset,
        num_classes=num_classes,
        num_frames=num_frames,
        image_size=image_size,
        batch_size=batch_size,
        training=training,
        temporal_stride=temporal_stride,
        num_test_clips=num_test_clips,
        num_test_crops=num_test_crops,
        min_image_size=min_image_size,
        dtype=dtype,
        shuffle_buffer=shuffle_buffer,
        seed=seed,
        deterministic=deterministic,
        repeat=repeat,
        drop_remainder=drop_remainder,
        random_flip=random_flip,
        device_canvas=device_canvas,
    )


def tfds_metadata(name: str, data_dir: str | None, split: str) -> tuple[list[str], int | None]:
    """Return the class names and the number of examples in ``split`` of a TFDS dataset.

    The size is ``None`` when the dataset's metadata does not record it.

    Raises:
        DataError: the dataset or split is not prepared under ``data_dir``, or it has no
            ``label`` class feature.
    """
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
        names = list(builder.info.features["label"].names)
    except (tfds.core.registered.DatasetNotFoundError, KeyError, AttributeError) as error:
        raise DataError(
            f"TFDS dataset {name!r} (data dir {data_dir}) unavailable: {error}"
        ) from error
    splits = builder.info.splits
    if splits and split not in splits:
        raise DataError(f"TFDS dataset {name!r} has no split {split!r} (has {sorted(splits)})")
    return names, int(splits[split].num_examples) if splits else None


def make_tfds_dataset(
    name: str = "ucf101",
    *,
    split: str,
    data_dir: str | None,
    num_classes: int,
    num_frames: int,
    image_size: int,
    batch_size: int,
    training: bool,
    temporal_stride: int = 1,
    num_test_clips: int = 1,
    num_test_crops: int = 1,
    min_image_size: int | None = None,
    dtype: Any = "float32",
    shuffle_buffer: int = 64,
    seed: int | None = None,
    deterministic: bool = False,
    input_context: tf.distribute.InputContext | None = None,
    repeat: bool | None = None,
    drop_remainder: bool | None = None,
    random_flip: bool = True,
    device_canvas: tuple[int, int] | None = None,
) -> tf.data.Dataset:
    """Build the same pipeline over a prepared TFDS video dataset (e.g. ``ucf101/ucf101_1_256``).

    The ``video`` feature is read with decoding skipped, so it stays a string [N] of encoded
    frames and only the sampled frames are decoded (Model Garden's ``tfds_skip_decoding_feature``).

    Args:
        name: TFDS name, optionally with config (``ucf101/ucf101_1_256``).
        split: TFDS split, e.g. ``"train"`` or ``"test"``.
        data_dir: TFDS data directory (local or ``gs://``), ``None`` for the default.
        Others: as :func:`make_dataset`.
    """
    import tensorflow_datasets as tfds

    read_config = tfds.ReadConfig(
        input_context=input_context, shuffle_seed=seed, interleave_cycle_length=16
    )
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        raw = builder.as_dataset(
            split=split,
            shuffle_files=training,
            decoders={"video": tfds.decode.SkipDecoding()},
            read_config=read_config,
        )
    except (tfds.core.registered.DatasetNotFoundError, AssertionError, ValueError) as error:
        raise DataError(f"TFDS dataset {name!r} split {split!r} unavailable: {error}") from error

    def _to_record(features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return {
            schema.IMAGE_KEY: features["video"],
            schema.LABEL_KEY: tf.reshape(tf.cast(features["label"], tf.int64), [-1]),
        }

    dataset = raw.map(_to_record, num_parallel_calls=tf.data.AUTOTUNE)
    return _process(
        dataset,
        num_classes=num_classes,
        num_frames=num_frames,
        image_size=image_size,
        batch_size=batch_size,
        training=training,
        temporal_stride=temporal_stride,
        num_test_clips=num_test_clips,
        num_test_crops=num_test_crops,
        min_image_size=min_image_size,
        dtype=dtype,
        shuffle_buffer=shuffle_buffer,
        seed=seed,
        deterministic=deterministic,
        repeat=repeat,
        drop_remainder=drop_remainder,
        random_flip=random_flip,
        device_canvas=device_canvas,
    )
