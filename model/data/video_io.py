"""Video decoding with PyAV and JPEG encoding with simplejpeg.

Decoding reads from a local path or any binary file object (e.g. Beam's ``FileSystems.open`` for
``gs://``), so no temporary copy is made. One decoder thread is used: Beam and Dataflow already
run one element per core. Frames can be resized on the short side inside swscale
(``VideoFrame.to_ndarray(width=, height=)``) and downsampled to a target frame rate.

A truncated AVI decodes *silently short* in every library; the container header still promises
the full frame count, so the decoded count is compared with it and a clip that falls short of
``min_frame_fraction`` of the promise is rejected as ``truncated``.
"""

from __future__ import annotations

import io
import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np

from model.errors import DataError

logger = logging.getLogger(__name__)

VideoSource = str | os.PathLike[str] | IO[bytes]
_T = TypeVar("_T")

# Failure reasons (stable strings: dead letters and stats.json count them by these names).
REASON_MISSING = "missing"
REASON_EMPTY = "empty"
REASON_UNREADABLE = "unreadable"
REASON_NO_VIDEO = "no_video_stream"
REASON_TRUNCATED = "truncated"
REASON_TOO_SHORT = "too_short"
REASON_ERROR = "error"


class VideoDecodeError(DataError):
    """A video cannot be used; ``reason`` is one of the ``REASON_*`` names."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video and what decoding will produce.

    Attributes:
        width: output frame width in pixels (after any resize).
        height: output frame height in pixels.
        frame_rate: output frames per second (after any resampling).
        source_frame_rate: the stream's average frame rate.
        expected_frames: frames the header promises at the output rate (0 if unknown).
        codec: decoder name, e.g. ``mpeg4``.
    """

    width: int
    height: int
    frame_rate: float
    source_frame_rate: float
    expected_frames: int
    codec: str


@dataclass(frozen=True)
class DecodedVideo:
    """A fully decoded clip.

    Attributes:
        frames: uint8 RGB frames, shape [T, H, W, 3].
        timestamps_us: T presentation timestamps in microseconds (first frame at its pts).
        info: container metadata.
    """

    frames: np.ndarray
    timestamps_us: list[int]
    info: VideoInfo


@dataclass(frozen=True)
class EncodedVideo:
    """A clip as JPEG frames (what a record stores).

    Attributes:
        jpeg_frames: T JPEG byte strings.
        timestamps_us: T timestamps in microseconds.
        info: container metadata (width/height are the stored frame size).
    """

    jpeg_frames: list[bytes]
    timestamps_us: list[int]
    info: VideoInfo


def short_side_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """Return ``(width, height)`` scaled so the short side is ``short_side`` (aspect kept).

    ``None`` or a short side equal to the current one leaves the size unchanged. Sizes are rounded
    to even numbers because 4:2:0 chroma needs them.
    """
    if short_side is None or min(width, height) == short_side:
        return width, height
    if short_side <= 0:
        raise DataError(f"short side must be positive, got {short_side}")
    scale = short_side / min(width, height)

    def _even(value: float) -> int:
        return max(2, round(value / 2) * 2)

    if width <= height:
        return short_side, _even(height * scale)
    return _even(width * scale), short_side


def _source_name(source: VideoSource) -> str:
    if isinstance(source, str | os.PathLike):
        return str(source)
    return str(getattr(source, "name", "<file object>"))


def _source_is_empty(source: VideoSource) -> bool:
    if isinstance(source, str | os.PathLike):
        return Path(source).stat().st_size == 0
    try:
        position = source.tell()
        source.seek(0, io.SEEK_END)
        size = source.tell()
        source.seek(position)
    except (OSError, AttributeError, io.UnsupportedOperation):
        return False
    return size == 0


def iter_frames(
    source: VideoSource,
    *,
    short_side: int | None = None,
    fps: float | None = None,
    min_frame_fraction: float = 0.9,
    min_frames: int = 1,
    transform: Callable[[np.ndarray], _T] | None = None,
) -> tuple[VideoInfo, Iterator[tuple[Any, int]]]:
    """Open a video and return its metadata and a lazy frame iterator.

    Frames are produced one at a time, so a caller that encodes each frame never holds the whole
    decoded clip. The iterator raises :class:`VideoDecodeError` when it ends with fewer than
    ``min_frame_fraction`` of the header's frame count (``truncated``) or fewer than
    ``min_frames`` frames (``too_short``).

    Args:
        source: local path or binary file object.
        short_side: resize so the short side has this many pixels (``None``: keep the size).
        fps: downsample to at most this frame rate (``None`` or >= the source rate: keep all).
        min_frame_fraction: truncation threshold relative to the header's frame count.
        min_frames: fewest frames a usable clip has.
        transform: applied to each uint8 [H, W, 3] frame before it is yielded (e.g. JPEG encode).

    Returns:
        ``(info, frames)`` where ``frames`` yields ``(frame_or_transformed, timestamp_us)``.

    Raises:
        VideoDecodeError: missing, empty, unreadable or non-video input (at open time).
    """
    import av

    name = _source_name(source)
    try:
        if _source_is_empty(source):
            raise VideoDecodeError(f"{name}: file is empty", REASON_EMPTY)
    except FileNotFoundError as error:
        raise VideoDecodeError(f"{name}: file not found", REASON_MISSING) from error
    try:
        container = av.open(source if not isinstance(source, os.PathLike) else os.fspath(source))
    except FileNotFoundError as error:
        raise VideoDecodeError(f"{name}: file not found", REASON_MISSING) from error
    except (av.error.FFmpegError, OSError, ValueError) as error:
        message = f"{name}: not a readable video ({error})"
        raise VideoDecodeError(message, REASON_UNREADABLE) from error
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(f"{name}: no video stream", REASON_NO_VIDEO)
    stream = container.streams.video[0]
    # One decoder thread: the caller (Beam, tf.data) already parallelises across clips.
    stream.thread_type = "NONE"
    stream.codec_context.thread_count = 1
    source_rate = float(stream.average_rate or stream.guessed_rate or 0.0) or 25.0
    header_frames = int(stream.frames or 0)
    if header_frames <= 0 and stream.duration and stream.time_base:
        header_frames = round(float(stream.duration * stream.time_base) * source_rate)
    if header_frames <= 0 and container.duration:
        header_frames = round(container.duration / 1_000_000 * source_rate)
    out_rate = source_rate if fps is None or fps >= source_rate else float(fps)
    expected = round(header_frames * out_rate / source_rate) if header_frames else 0
    src_w = stream.codec_context.width
    src_h = stream.codec_context.height
    width, height = short_side_size(src_w, src_h, short_side)
    info = VideoInfo(
        width=width,
        height=height,
        frame_rate=out_rate,
        source_frame_rate=source_rate,
        expected_frames=expected,
        codec=stream.codec_context.name,
    )
    resize = (width, height) != (src_w, src_h)

    def _frames() -> Iterator[tuple[Any, int]]:
        count = 0
        next_slot = 0
        first_time: float | None = None
        try:
            for frame in container.decode(stream):
                time_s = float(frame.time) if frame.time is not None else count / source_rate
                if out_rate < source_rate:
                    # Keep a frame when it is the first to reach the next output slot k/out_rate.
                    if first_time is None:
                        first_time = time_s
                    slot = math.floor((time_s - first_time) * out_rate + 1e-6)
                    if slot < next_slot:
                        continue
                    next_slot = slot + 1
                if resize:
                    array = frame.to_ndarray(width=width, height=height, format="rgb24")
                else:
                    array = frame.to_ndarray(format="rgb24")
                count += 1
                yield (transform(array) if transform else array), round(time_s * 1e6)
        except av.error.FFmpegError as error:
            raise VideoDecodeError(
                f"{name}: decoding failed after {count} frames ({error})", REASON_UNREADABLE
            ) from error
        finally:
            container.close()
        if count < max(1, min_frames):
            raise VideoDecodeError(
                f"{name}: {count} frames decoded, at least {max(1, min_frames)} needed",
                REASON_TOO_SHORT,
            )
        if expected and count < min_frame_fraction * expected:
            raise VideoDecodeError(
                f"{name}: truncated, {count} of {expected} frames the header promises decoded",
                REASON_TRUNCATED,
            )

    return info, _frames()


def decode_video(
    source: VideoSource,
    *,
    short_side: int | None = None,
    fps: float | None = None,
    min_frame_fraction: float = 0.9,
    min_frames: int = 1,
) -> DecodedVideo:
    """Decode a whole video to uint8 RGB frames [T, H, W, 3] (see :func:`iter_frames`)."""
    info, frames = iter_frames(
        source,
        short_side=short_side,
        fps=fps,
        min_frame_fraction=min_frame_fraction,
        min_frames=min_frames,
    )
    arrays: list[np.ndarray] = []
    stamps: list[int] = []
    for array, stamp in frames:
        arrays.append(array)
        stamps.append(stamp)
    return DecodedVideo(frames=np.stack(arrays), timestamps_us=stamps, info=info)


def encode_jpeg(frame: np.ndarray, quality: int = 90) -> bytes:
    """JPEG-encode one uint8 RGB frame [H, W, 3] with 4:2:0 chroma subsampling."""
    import simplejpeg

    return simplejpeg.encode_jpeg(
        np.ascontiguousarray(frame), quality=quality, colorspace="RGB", colorsubsampling="420"
    )


def decode_jpeg(data: bytes) -> np.ndarray:
    """Decode one JPEG to a uint8 RGB frame [H, W, 3]."""
    import simplejpeg

    return simplejpeg.decode_jpeg(data, colorspace="RGB")


def decode_video_to_jpegs(
    source: VideoSource,
    *,
    quality: int = 90,
    short_side: int | None = None,
    fps: float | None = None,
    min_frame_fraction: float = 0.9,
    min_frames: int = 1,
) -> EncodedVideo:
    """Decode a video and JPEG-encode each frame as it is decoded (one RGB frame held at a time)."""
    if not 1 <= quality <= 100:
        raise DataError(f"JPEG quality must be in [1, 100], got {quality}")
    info, frames = iter_frames(
        source,
        short_side=short_side,
        fps=fps,
        min_frame_fraction=min_frame_fraction,
        min_frames=min_frames,
        transform=lambda array: encode_jpeg(array, quality),
    )
    jpegs: list[bytes] = []
    stamps: list[int] = []
    for jpeg, stamp in frames:
        jpegs.append(jpeg)
        stamps.append(stamp)
    return EncodedVideo(jpeg_frames=jpegs, timestamps_us=stamps, info=info)


def write_video(
    target: str | os.PathLike[str] | IO[bytes],
    frames: Sequence[np.ndarray] | np.ndarray,
    *,
    fps: float = 25.0,
    codec: str = "mpeg4",
    container_format: str | None = None,
    bit_rate: int | None = None,
) -> None:
    """Encode uint8 RGB frames [T, H, W, 3] to a video file (AVI/MPEG-4 like UCF101 by default).

    Args:
        target: output path (format from its suffix) or binary file object.
        frames: T frames of equal even size.
        fps: frame rate written to the header.
        codec: FFmpeg encoder name.
        container_format: e.g. ``"avi"``; needed for file objects.
        bit_rate: encoder bit rate in bits/s (default: about 0.3 bits per pixel per frame).
    """
    from fractions import Fraction

    import av

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise DataError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    _, height, width, _ = frames.shape
    target_arg = os.fspath(target) if isinstance(target, os.PathLike) else target
    with av.open(target_arg, "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = bit_rate or max(200_000, int(0.3 * width * height * fps))
        for array in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
