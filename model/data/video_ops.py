"""Pure video ops: temporal sampling, JPEG decoding of sampled frames, cropping, scaling.

Every function here is a pure TensorFlow function of its inputs (randomness comes from an explicit
stateless ``seed`` of shape [2]), so it gives the same result run eagerly, inside
``tf.data.Dataset.map``, or in a serving graph. The semantics follow Model Garden's video
classification input (``official/vision/ops/preprocess_ops_3d.py``):

* training: a random temporal offset, frames ``offset + i * stride``; clips shorter than the window
  loop (indices wrap around) instead of being padded;
* evaluation: the centre window, or ``num_clips`` evenly spaced windows;
* training space: one Inception-style random box (``sample_distorted_bounding_box``, area
  [0.49, 1], aspect [0.5, 2] x W/H) and one horizontal flip per clip, resized to ``image_size``;
* evaluation space: resize the smallest side to ``min_size``, then a centre crop or 3 crops along
  the long side.

Frames are uint8 until :func:`to_unit_range` scales them to [0, 1].

Training's spatial work can also run on the accelerator instead of the host (the input
pipeline's ``device_canvas``): the host then only samples, decodes the crop and pads it into a
fixed canvas (:func:`train_crop_for_device`), ships it as bytes packed four to an int32
(:func:`pack_bytes`; TPUs take no uint8), and :func:`crop_resize_on_device` flips, resizes and
scales the batch with two small matrix products, giving the same clips as :func:`train_clip`.
"""

from __future__ import annotations

import sys

import tensorflow as tf

# Inception-style crop ranges used by Model Garden's random_crop_resize.
CROP_AREA_RANGE = (0.49, 1.0)
CROP_ASPECT_RANGE = (0.5, 2.0)
CROP_MIN_OBJECT_COVERED = 0.1
CROP_MAX_ATTEMPTS = 100


def sample_train_indices(
    num_available: tf.Tensor | int, num_frames: int, stride: int, seed: tf.Tensor
) -> tf.Tensor:
    """Return int32 [num_frames] frame indices of a random training window.

    The offset is uniform in ``[0, max_offset)`` with ``max_offset = len - (T - 1) * stride``, or
    ``len`` when the clip is shorter than the window; indices past the end wrap around (looping).

    Args:
        num_available: number of frames in the clip (scalar).
        num_frames: T, frames to sample.
        stride: temporal stride between sampled frames.
        seed: int32/int64 [2] stateless seed.
    """
    length = tf.cast(num_available, tf.int32)
    span = (num_frames - 1) * stride
    max_offset = tf.where(length - span > 0, length - span, length)
    offset = tf.random.stateless_uniform((), seed, minval=0, maxval=max_offset, dtype=tf.int32)
    return tf.math.floormod(offset + tf.range(num_frames, dtype=tf.int32) * stride, length)


def sample_eval_indices(
    num_available: tf.Tensor | int, num_frames: int, stride: int, num_clips: int = 1
) -> tf.Tensor:
    """Return int32 [num_clips, num_frames] indices of evaluation windows.

    One clip is the centre window (offset ``max(0, (len - T * stride) // 2)``); several clips have
    offsets evenly spaced over ``[0, len - T * stride]``. Indices wrap for short clips.
    """
    length = tf.cast(num_available, tf.int32)
    max_offset = tf.maximum(0, length - num_frames * stride)
    if num_clips == 1:
        offsets = tf.reshape(max_offset // 2, [1])
    else:
        offsets = tf.cast(
            tf.round(tf.linspace(0.0, tf.cast(max_offset, tf.float32), num_clips)), tf.int32
        )
    steps = tf.range(num_frames, dtype=tf.int32) * stride
    return tf.math.floormod(offsets[:, None] + steps[None, :], length)


def random_crop_window(image_shape: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Return int32 [4] ``(offset_y, offset_x, height, width)`` of one random training box.

    Args:
        image_shape: int32 [3] ``(H, W, C)`` of the stored frames.
        seed: [2] stateless seed.
    """
    # The op takes the aspect range as Python floats, so the box is drawn on a square virtual
    # image and scaled to the real one: the crop's aspect is then (0.5, 2) x W/H as in Model
    # Garden, whatever the stored size.
    virtual = 1024
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        image_size=tf.constant([virtual, virtual, 3], tf.int32),
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seed,
        min_object_covered=CROP_MIN_OBJECT_COVERED,
        aspect_ratio_range=CROP_ASPECT_RANGE,
        area_range=CROP_AREA_RANGE,
        max_attempts=CROP_MAX_ATTEMPTS,
        use_image_if_no_bounding_boxes=True,
    )
    hw = tf.cast(image_shape[:2], tf.float32)
    offset = tf.cast(tf.math.floor(tf.cast(begin[:2], tf.float32) / virtual * hw), tf.int32)
    extent = tf.cast(tf.math.round(tf.cast(size[:2], tf.float32) / virtual * hw), tf.int32)
    extent = tf.maximum(1, tf.minimum(extent, tf.cast(image_shape[:2], tf.int32) - offset))
    return tf.concat([offset, extent], 0)


def decode_jpegs(encoded: tf.Tensor, crop_window: tf.Tensor | None = None) -> tf.Tensor:
    """Decode JPEG strings [N] to uint8 RGB frames [N, H, W, 3].

    With ``crop_window`` (``(y, x, h, w)``) only that region is decoded
    (``decode_and_crop_jpeg`` skips the rest of the image), giving [N, h, w, 3].
    """

    def _decode(data: tf.Tensor) -> tf.Tensor:
        if crop_window is None:
            return tf.io.decode_jpeg(data, channels=3)
        return tf.io.decode_and_crop_jpeg(data, crop_window, channels=3)

    return tf.map_fn(
        _decode,
        encoded,
        fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8),
        parallel_iterations=8,
    )


def flip_left_right(frames: tf.Tensor) -> tf.Tensor:
    """Mirror frames [..., H, W, C] left-right (channel order kept)."""
    # Reverse a [rows, W, C] view: TensorFlow's reverse kernel is about 2.5x faster on three
    # dimensions than on a clip's four (measured on uint8 crops).
    shape = tf.shape(frames)
    rows = tf.reshape(frames, tf.stack([-1, shape[-2], shape[-1]]))
    return tf.reshape(tf.reverse(rows, axis=[1]), shape)


def _flip_decision(seed: tf.Tensor) -> tf.Tensor:
    return tf.random.stateless_uniform((), seed) < 0.5


def random_flip(frames: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Flip a whole clip [..., H, W, C] left-right with probability 1/2 (one decision per clip)."""
    return tf.cond(_flip_decision(seed), lambda: flip_left_right(frames), lambda: frames)


def resize(frames: tf.Tensor, height: int | tf.Tensor, width: int | tf.Tensor) -> tf.Tensor:
    """Bilinear resize of frames [N, H, W, C] to float32 [N, height, width, C], same range."""
    return tf.image.resize(frames, tf.stack([height, width]), method="bilinear")


def resize_smallest(frames: tf.Tensor, min_size: int) -> tf.Tensor:
    """Resize frames [N, H, W, C] so the smallest side is ``min_size`` (aspect kept), float32."""
    shape = tf.shape(frames)
    height = tf.cast(shape[1], tf.float32)
    width = tf.cast(shape[2], tf.float32)
    scale = tf.cast(min_size, tf.float32) / tf.minimum(height, width)
    new_h = tf.cast(tf.round(height * scale), tf.int32)
    new_w = tf.cast(tf.round(width * scale), tf.int32)
    return tf.cond(
        tf.logical_and(tf.equal(new_h, shape[1]), tf.equal(new_w, shape[2])),
        lambda: tf.cast(frames, tf.float32),
        lambda: resize(frames, new_h, new_w),
    )


def crop_views(frames: tf.Tensor, size: int, num_crops: int) -> tf.Tensor:
    """Return [num_crops, N, size, size, C] crops of frames [N, H, W, C] (H, W >= size).

    One crop is the centre; three crops are the start, centre and end of the long side (as Model
    Garden's 3-crop evaluation).
    """
    if num_crops not in (1, 3):
        raise ValueError(f"num_crops must be 1 or 3, got {num_crops}")
    shape = tf.shape(frames)
    height, width = shape[1], shape[2]
    centre_y = (height - size) // 2
    centre_x = (width - size) // 2
    if num_crops == 1:
        offsets = [(centre_y, centre_x)]
    else:
        landscape = width >= height
        last_y = tf.where(landscape, centre_y, height - size)
        last_x = tf.where(landscape, width - size, centre_x)
        first_y = tf.where(landscape, centre_y, 0)
        first_x = tf.where(landscape, 0, centre_x)
        offsets = [(first_y, first_x), (centre_y, centre_x), (last_y, last_x)]
    return tf.stack([frames[:, y : y + size, x : x + size, :] for y, x in offsets])


def to_unit_range(frames: tf.Tensor, dtype: tf.DType | str = tf.float32) -> tf.Tensor:
    """Scale 0..255 frames to [0, 1] and cast to ``dtype`` (float32 or bfloat16)."""
    scaled = tf.clip_by_value(tf.cast(frames, tf.float32) / 255.0, 0.0, 1.0)
    return tf.cast(scaled, dtype)


def _train_crop(
    encoded: tf.Tensor, *, num_frames: int, stride: int, seed: tf.Tensor, random_flip_lr: bool
) -> tuple[tf.Tensor, tf.Tensor]:
    """The sampled and cropped uint8 frames [T, h, w, 3] of a training clip, and whether to flip.

    The temporal offset, crop box and flip use independent sub-seeds of ``seed``.
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=3)
    indices = sample_train_indices(tf.shape(encoded)[0], num_frames, stride, seeds[0])
    sampled = tf.gather(encoded, indices)
    window = random_crop_window(tf.image.extract_jpeg_shape(sampled[0]), seeds[1])
    frames = decode_jpegs(sampled, crop_window=window)  # (T, h, w, 3) uint8
    flip = _flip_decision(seeds[2]) if random_flip_lr else tf.constant(False)
    return frames, flip


def train_clip(
    encoded: tf.Tensor,
    *,
    num_frames: int,
    stride: int,
    image_size: int,
    seed: tf.Tensor,
    dtype: tf.DType | str = tf.float32,
    random_flip_lr: bool = True,
) -> tf.Tensor:
    """Sample, decode and augment one training clip.

    Args:
        encoded: string [N] JPEG frames of the stored clip.
        num_frames: T.
        stride: temporal stride.
        image_size: S, output side.
        seed: [2] stateless seed; the temporal offset, crop box and flip use independent
            sub-seeds of it.
        dtype: output dtype.
        random_flip_lr: apply the random horizontal flip (off for datasets whose labels are
            left/right or clockwise/anticlockwise motion, which a flip would swap).

    Returns:
        [T, S, S, 3] in [0, 1].
    """
    frames, flip = _train_crop(
        encoded, num_frames=num_frames, stride=stride, seed=seed, random_flip_lr=random_flip_lr
    )
    # Flip the small uint8 crop rather than the float clip: flipping commutes with the
    # (symmetric, half-pixel-centred) bilinear resize and moves 4x fewer bytes.
    frames = tf.cond(flip, lambda: flip_left_right(frames), lambda: frames)
    # Scale before resizing: resizing is linear, so the result is the same up to float rounding,
    # and TensorFlow's bilinear kernel is markedly faster on float32 input than on uint8.
    # Bilinear interpolation is a convex combination, so values stay in [0, 1] (no clipping).
    frames = resize(tf.cast(frames, tf.float32) * (1.0 / 255.0), image_size, image_size)
    return tf.cast(frames, dtype)  # (T, S, S, 3)


def train_crop_for_device(
    encoded: tf.Tensor,
    *,
    num_frames: int,
    stride: int,
    seed: tf.Tensor,
    max_height: int,
    max_width: int,
    random_flip_lr: bool = True,
) -> tuple[tf.Tensor, tf.Tensor]:
    """The host's half of :func:`train_clip` when the accelerator does the spatial work.

    Samples and decodes exactly the frames and crop :func:`train_clip` would for the same
    ``seed``, but leaves flipping, resizing and scaling to :func:`crop_resize_on_device`.

    Args:
        encoded, num_frames, stride, seed, random_flip_lr: as :func:`train_clip`.
        max_height, max_width: the canvas the crop must fit. A larger crop (frames stored
            bigger than the canvas) is shrunk here to fit, aspect kept, which costs a host
            resize; size the canvas to the stored frames to avoid it.

    Returns:
        ``(frames, crop)``: uint8 [T, h, w, 3] with h <= max_height and w <= max_width, and int32
        [3] ``(h, w, flip)``.
    """
    frames, flip = _train_crop(
        encoded, num_frames=num_frames, stride=stride, seed=seed, random_flip_lr=random_flip_lr
    )
    shape = tf.shape(frames)
    height = tf.cast(shape[1], tf.float32)
    width = tf.cast(shape[2], tf.float32)
    scale = tf.minimum(max_height / height, max_width / width)

    def _shrink() -> tf.Tensor:
        new_h = tf.clip_by_value(tf.cast(tf.round(height * scale), tf.int32), 1, max_height)
        new_w = tf.clip_by_value(tf.cast(tf.round(width * scale), tf.int32), 1, max_width)
        shrunk = resize(tf.cast(frames, tf.float32), new_h, new_w)
        return tf.cast(tf.clip_by_value(tf.round(shrunk), 0.0, 255.0), tf.uint8)

    frames = tf.cond(scale < 1.0, _shrink, lambda: frames)
    shape = tf.shape(frames)
    return frames, tf.stack([shape[1], shape[2], tf.cast(flip, tf.int32)])


def pack_bytes(frames: tf.Tensor) -> tf.Tensor:
    """Pack uint8 [..., W, C] into int32 [..., W * C / 4], four bytes per word (a free view).

    TPUs accept no uint8 tensors, and widening to int32 or float32 would quadruple the bytes
    the host sends; packing keeps one byte per value. ``W * C`` must be a multiple of 4.
    """
    if sys.byteorder != "little":  # unpack_bytes reads byte k from bits 8k..8k+7
        raise NotImplementedError("pack_bytes assumes a little-endian host")
    shape = tf.shape(frames)
    words = tf.reshape(frames, tf.concat([shape[:-2], [-1, 4]], 0))
    return tf.bitcast(words, tf.int32)


def unpack_bytes(packed: tf.Tensor, channels: int) -> tf.Tensor:
    """Inverse of :func:`pack_bytes`: int32 [..., N] to int32 [..., 4N / channels, channels]."""
    shifts = tf.constant([0, 8, 16, 24], tf.int32)
    values = tf.bitwise.bitwise_and(tf.bitwise.right_shift(packed[..., None], shifts), 0xFF)
    shape = tf.shape(packed)
    return tf.reshape(values, tf.concat([shape[:-1], [-1, channels]], 0))


def _interpolation_matrix(extent: tf.Tensor, in_size: tf.Tensor, out_size: int) -> tf.Tensor:
    """float32 [B, out_size, in_size]: bilinear resampling of rows ``[0, extent)`` to out_size.

    The weights are those of ``tf.image.resize(method="bilinear")`` on the region alone
    (half-pixel centres, no antialiasing, sample positions clamped to the region), so padding
    beyond ``extent`` never contributes.
    """
    extent = tf.cast(extent, tf.int32)[:, None]  # (B, 1)
    scale = tf.cast(extent, tf.float32) / out_size
    centres = (tf.range(out_size, dtype=tf.float32)[None, :] + 0.5) * scale - 0.5
    below = tf.floor(centres)
    lerp = (centres - below)[..., None]
    lower = tf.maximum(tf.cast(below, tf.int32), 0)
    upper = tf.minimum(tf.cast(tf.math.ceil(centres), tf.int32), extent - 1)
    return (1.0 - lerp) * tf.one_hot(lower, in_size) + lerp * tf.one_hot(upper, in_size)


def crop_resize_on_device(
    packed: tf.Tensor, crop: tf.Tensor, *, image_size: int, dtype: tf.DType | str = tf.float32
) -> tf.Tensor:
    """The accelerator's half of :func:`train_clip`: flip, resize to S x S and scale a batch.

    Resizing is two matrix products per frame (columns, then rows) with interpolation weights
    built from each clip's crop size, so every shape is static (XLA) and the work lands on the
    matrix units. Multiplications round as the device's matmul precision does (TF32 on recent
    GPUs, bfloat16 passes on TPU): within about 1/256 of :func:`train_clip`'s values there,
    and within float32 rounding on CPU.

    Args:
        packed: int32 [B, T, H, W * 3 / 4], canvases from :func:`pack_bytes`, each holding a
            crop at its top-left corner.
        crop: int32 [B, 3], ``(h, w, flip)`` of each clip's crop.
        image_size: S.
        dtype: output dtype.

    Returns:
        [B, T, S, S, 3] in [0, 1].
    """
    frames = tf.cast(unpack_bytes(packed, 3), tf.float32)  # (B, T, H, W, 3), 0..255
    shape = tf.shape(frames)
    crop = tf.cast(crop, tf.int32)
    # 1/255 is folded into the small row matrix instead of a pass over the clip.
    rows = _interpolation_matrix(crop[:, 0], shape[2], image_size) * (1.0 / 255.0)
    columns = _interpolation_matrix(crop[:, 1], shape[3], image_size)
    # A flip reverses the output columns (the resize is symmetric, so this equals resizing
    # the mirrored crop).
    flip = crop[:, 2, None, None] > 0
    columns = tf.where(flip, tf.reverse(columns, axis=[1]), columns)
    narrow = tf.einsum("bthwc,bxw->bthxc", frames, columns)  # (B, T, H, S, 3)
    clips = tf.einsum("byh,bthxc->btyxc", rows, narrow)  # (B, T, S, S, 3)
    return tf.cast(clips, dtype)


def eval_clip(
    encoded: tf.Tensor,
    *,
    num_frames: int,
    stride: int,
    image_size: int,
    min_size: int | None = None,
    num_clips: int = 1,
    num_crops: int = 1,
    dtype: tf.DType | str = tf.float32,
) -> tf.Tensor:
    """Sample, decode and crop the evaluation views of one clip.

    Args:
        encoded: string [N] JPEG frames.
        num_frames: T.
        stride: temporal stride.
        image_size: S, crop side.
        min_size: smallest side after resizing, before cropping (default ``S * 256 / 224`` as
            Model Garden's 256 for 224).
        num_clips: evenly spaced temporal windows.
        num_crops: 1 (centre) or 3 spatial crops.
        dtype: output dtype.

    Returns:
        [num_clips * num_crops, T, S, S, 3] in [0, 1]; views are ordered clip-major.
    """
    min_size = min_size or round(image_size * 256 / 224)
    indices = sample_eval_indices(tf.shape(encoded)[0], num_frames, stride, num_clips)
    frames = decode_jpegs(tf.gather(encoded, tf.reshape(indices, [-1])))  # (V*T, H, W, 3)
    frames = resize_smallest(frames, max(min_size, image_size))
    crops = crop_views(frames, image_size, num_crops)  # (crops, clips*T, S, S, 3)
    crops = tf.reshape(crops, [num_crops, num_clips, num_frames, image_size, image_size, 3])
    views = tf.reshape(
        tf.transpose(crops, [1, 0, 2, 3, 4, 5]),
        [num_clips * num_crops, num_frames, image_size, image_size, 3],
    )
    return to_unit_range(views, dtype)
