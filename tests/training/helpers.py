"""Helpers for the training tests: tiny preprocessed data directories written with the real
record format (``model.data.schema``), so train/evaluate read exactly what preprocessing writes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def encode_jpeg(frame: np.ndarray) -> bytes:
    import simplejpeg

    return simplejpeg.encode_jpeg(np.ascontiguousarray(frame), quality=95, colorspace="RGB")


def write_data_dir(
    root: Path,
    clips: dict[str, Sequence[tuple[int, np.ndarray]]],
    class_names: Sequence[str],
    *,
    stats: bool = True,
) -> Path:
    """Writes ``root/{split}-00000-of-00001.tfrecord``, ``label_map.txt`` and ``stats.json``.

    Args:
        root: data directory to create.
        clips: split -> [(label index, uint8 frames [N, H, W, 3]), ...].
        class_names: K names in index order.
        stats: also write stats.json.
    """
    import tensorflow as tf

    from model.data import schema

    root.mkdir(parents=True, exist_ok=True)
    split_stats = {}
    for split, items in clips.items():
        path = root / schema.shard_name(split, 0, 1)
        per_class: dict[str, int] = {}
        with tf.io.TFRecordWriter(str(path)) as writer:
            for i, (label, frames) in enumerate(items):
                name = class_names[label]
                per_class[name] = per_class.get(name, 0) + 1
                writer.write(
                    schema.serialize_clip(
                        [encode_jpeg(f) for f in frames],
                        label_index=label,
                        label_name=name,
                        example_id=f"{split}-{i}",
                        data_path=f"synthetic/{split}/{i}.avi",
                        height=frames.shape[1],
                        width=frames.shape[2],
                        frame_rate=25.0,
                        timestamps_us=[t * 40_000 for t in range(len(frames))],
                    )
                )
        split_stats[split] = {
            "clips": len(items),
            "frames": int(sum(len(f) for _, f in items)),
            "per_class": per_class,
        }
    schema.write_label_map(root / schema.LABEL_MAP_FILE, list(class_names))
    if stats:
        (root / schema.STATS_FILE).write_text(
            json.dumps({"splits": split_stats, "failures": {}, "duration_s": 0.0})
        )
    return root


def moving_bar_clips(
    num_classes: int, per_class: int, *, frames: int = 8, size: int = 24, seed: int = 0
) -> list[tuple[int, np.ndarray]]:
    """Clips of a bright bar moving right (class 0), left (1), down (2) or up (3) over noise."""
    rng = np.random.default_rng(seed)
    out = []
    for label in range(num_classes):
        for _ in range(per_class):
            video = rng.integers(0, 60, size=(frames, size, size, 3), dtype=np.uint8)
            start = int(rng.integers(0, size // 2))
            for t in range(frames):
                pos = (start + t * 2) % size
                pos = pos if label % 2 == 0 else size - 1 - pos
                if label < 2:
                    video[t, :, pos] = 255
                else:
                    video[t, pos, :] = 255
            out.append((label, video))
    return out


def conv_standin(cfg):  # -> keras.Model
    """A small Conv3D + BatchNorm network with the experiment's input shape and classes, for
    tests of the training machinery that do not need AssembleNet itself."""
    import keras

    size, k = cfg.data.image_size, cfg.data.num_classes
    inputs = keras.Input((cfg.data.num_frames, size, size, 3), name="image")
    x = keras.layers.Conv3D(8, 3, strides=2, padding="same")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    x = keras.layers.ReLU()(x)
    logits = keras.layers.Dense(k)(keras.layers.GlobalAveragePooling3D()(x))
    return keras.Model(inputs, logits)
