"""Serving export: a SavedModel whose signatures take raw frames and return probabilities.

Two signatures, both with preprocessing inside the graph (the same ``model.data.video_ops``
functions the evaluation input uses, so serving and evaluation see identical pixels):

* ``serving_default``: ``frames`` uint8 [B, T, H, W, 3] (T = the model's clip length, any H, W)
  -> resize the shorter side to ``round(S * 256 / 224)``, centre-crop S x S, scale to [0, 1].
* ``serving_jpeg``: ``frames`` string [B, N] JPEG-encoded frames (any N >= 1) -> the centre
  window of T frames at the configured temporal stride, then as above.

Both return ``{"probabilities": float32 [B, K]}`` (softmax of the model's logits).
"""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from model.data import video_ops


def _min_size(image_size: int) -> int:
    # Model Garden evaluates 224 crops from frames resized to a 256 short side.
    return max(image_size, round(image_size * 256 / 224))


def preprocess_uint8(frames: tf.Tensor, image_size: int) -> tf.Tensor:
    """uint8 [B, T, H, W, 3] -> float32 [B, T, S, S, 3] in [0, 1]: resize, centre crop."""
    shape = tf.shape(frames)
    batch, time = shape[0], shape[1]
    flat = tf.reshape(frames, tf.concat([[batch * time], shape[2:]], axis=0))  # (B*T, H, W, 3)
    resized = video_ops.resize_smallest(flat, _min_size(image_size))
    cropped = video_ops.crop_views(resized, image_size, 1)[0]  # (B*T, S, S, 3)
    clips = tf.reshape(cropped, [batch, time, image_size, image_size, 3])
    return video_ops.to_unit_range(clips)


def preprocess_jpeg(
    encoded: tf.Tensor, *, num_frames: int, temporal_stride: int, image_size: int
) -> tf.Tensor:
    """string [B, N] JPEG frames -> float32 [B, T, S, S, 3]: centre window, resize, centre crop."""

    def one(clip: tf.Tensor) -> tf.Tensor:
        views = video_ops.eval_clip(
            clip,
            num_frames=num_frames,
            stride=temporal_stride,
            image_size=image_size,
            min_size=_min_size(image_size),
        )
        return views[0]  # one clip x one crop

    return tf.map_fn(
        one,
        encoded,
        fn_output_signature=tf.TensorSpec([num_frames, image_size, image_size, 3], tf.float32),
    )


def export_saved_model(
    model: keras.Model,
    path: str | Path,
    *,
    num_frames: int,
    image_size: int,
    temporal_stride: int = 1,
) -> None:
    """Writes the SavedModel with ``serving_default`` and ``serving_jpeg`` to ``path``.

    Args:
        model: takes float [B, T, S, S, 3] in [0, 1] (single ``image`` input) and returns
            logits [B, K].
        path: output directory (local or ``gs://``); it should not exist yet.
        num_frames: T.
        image_size: S.
        temporal_stride: stride of the JPEG signature's centre window.
    """
    archive = keras.export.ExportArchive()
    archive.track(model)

    def probabilities(clips: tf.Tensor) -> dict[str, tf.Tensor]:
        logits = model(tf.cast(clips, model.inputs[0].dtype), training=False)
        return {"probabilities": tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)}

    def serve_uint8(frames: tf.Tensor) -> dict[str, tf.Tensor]:
        return probabilities(preprocess_uint8(frames, image_size))

    def serve_jpeg(frames: tf.Tensor) -> dict[str, tf.Tensor]:
        clips = preprocess_jpeg(
            frames,
            num_frames=num_frames,
            temporal_stride=temporal_stride,
            image_size=image_size,
        )
        return probabilities(clips)

    archive.add_endpoint(
        "serving_default",
        serve_uint8,
        input_signature=[tf.TensorSpec([None, num_frames, None, None, 3], tf.uint8, "frames")],
    )
    archive.add_endpoint(
        "serving_jpeg",
        serve_jpeg,
        input_signature=[tf.TensorSpec([None, None], tf.string, "frames")],
    )
    archive.write_out(str(path), verbose=False)
